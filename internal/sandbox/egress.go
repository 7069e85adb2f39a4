package sandbox

// Egress for networked functions.
//
// A networked function gets its own network namespace like every other
// function (so its Runtime API at RuntimeAPIAddr stays on a loopback only
// it can reach) plus one veth pair: "eth0" inside, with the second address
// of a /30 taken from Config.EgressPool, and "mote-vN" on the host, with
// the first address, which is the function's default gateway. The host
// forwards and masquerades what comes out of the link, and one nftables
// table per Sandbox makes sure that nothing from a function's link
//
//   - is delivered to the host itself: not the gateway address, not any
//     other local address, so neither the management API nor any other
//     host service (127.0.0.0/8 is never routed from a link either, as
//     route_localnet stays off), nor goes where the host redirects
//     traffic for one of its addresses (destination NAT);
//   - reaches another function's link, of this Mote or another;
//   - reaches link-local addresses (where clouds serve instance
//     credentials) or Config.EgressDeny;
//   - is IPv6 (there is no IPv6 egress);
//
// and that nothing from outside opens a connection to a function.
//
// The rules match the links by their name prefix, so every Mote on a host
// installs the same ones and each also guards the others' links. The
// table holds no per-instance state.
//
// Creating a network namespace and a veth pair takes milliseconds (more
// on a busy host: the kernel serialises it under one lock with every
// namespace being torn down), so a Sandbox keeps Config.EgressWarm
// namespaces ready, each with its link up and routed, refilled in the
// background, and a networked function's init is started inside one
// (forked from a thread that entered it) instead of in a new, empty one.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// linkPrefix names the host end of every function's link; the filter
	// rules match it.
	linkPrefix = "mote-v"
	// tablePrefix names Mote's nftables tables: tablePrefix + PID + "-" + n.
	tablePrefix = "mote-egress-"
	// linkAlias marks a host end with the PID of the Mote that made it.
	linkAlias = "mote pid="
	// peerName is the function's end, inside its namespace.
	peerName = "eth0"
	// ipsDstNAT is conntrack's IPS_DST_NAT status bit: the destination
	// was rewritten.
	ipsDstNAT = 1 << 5
	// defaultWarm is Config.EgressWarm's default.
	defaultWarm = 2
	// attachTries bounds the addresses tried when other Motes on the host
	// hold the ones this one thinks free.
	attachTries = 64
)

// DefaultEgressPool is where networked functions' addresses come from when
// Config.EgressPool is not set: outside the ranges Docker, Kubernetes and
// the clouds' default networks use, 16384 instances at once.
var DefaultEgressPool = netip.MustParsePrefix("10.201.0.0/16")

// linkLocal is always denied: clouds serve instance metadata and
// credentials at 169.254.169.254.
var linkLocal = netip.MustParsePrefix("169.254.0.0/16")

// Files on /run (a tmpfs, cleared at boot like ip_forward itself) through
// which the Motes of a host agree on ip_forward: lockPath serialises the
// decision, markPath exists while ip_forward is on because a Mote turned
// it on.
const (
	lockPath    = "/run/mote-egress.lock"
	markPath    = "/run/mote-egress.forwarding"
	forwardPath = "/proc/sys/net/ipv4/ip_forward"
)

var tableSeq atomic.Int64

// validateEgress applies the egress defaults and checks them.
func (c *Config) validateEgress() error {
	if !c.EgressPool.IsValid() {
		c.EgressPool = DefaultEgressPool
	}
	if c.EgressWarm == 0 {
		c.EgressWarm = defaultWarm
	}
	p := c.EgressPool
	if !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
		return fmt.Errorf("sandbox: egress pool %s must be an IPv4 prefix from /8 to /30", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("sandbox: egress pool %s has host bits set (want %s)", p, p.Masked())
	}
	for _, d := range c.EgressDeny {
		if !d.IsValid() || !d.Addr().Is4() {
			return fmt.Errorf("sandbox: egress deny %s must be an IPv4 prefix", d)
		}
	}
	return nil
}

// egress hands out links and owns this Sandbox's nftables table. It is
// safe for concurrent use.
type egress struct {
	log   *slog.Logger
	pool  netip.Prefix
	deny  []netip.Prefix
	slots int // /30s in pool

	mu     sync.Mutex
	closed bool
	table  *nftables.Table // nil until the first networked start
	next   int             // next slot to try: addresses are reused last
	links  map[int]*egressLink
	freed  *sync.Cond // on mu: a link being deleted released its slot
	nDel   int        // links being deleted in the background
	ready  []*egressLink

	warm     int           // len(ready) the filler keeps
	refill   chan struct{} // wakes the filler
	stop     chan struct{} // closed by close
	filler   sync.WaitGroup
	deleting sync.WaitGroup
}

func newEgress(cfg Config) *egress {
	deny := append([]netip.Prefix{linkLocal}, cfg.EgressDeny...)
	e := &egress{
		log:    cfg.Logger,
		pool:   cfg.EgressPool,
		deny:   deny,
		slots:  1 << (30 - cfg.EgressPool.Bits()),
		links:  map[int]*egressLink{},
		warm:   max(cfg.EgressWarm, 0),
		refill: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	e.freed = sync.NewCond(&e.mu)
	return e
}

// egressLink is one function's network namespace and its link out.
type egressLink struct {
	e     *egress
	slot  int
	name  string
	index int        // the host end's interface index
	gw    netip.Addr // host end
	addr  netip.Addr // function's end
	ns    netns.NsHandle

	deleting bool // Close was called; guarded by e.mu
}

// getEgress returns a network namespace with a link out for a networked
// process, ready or made now. The first call on a Sandbox installs its
// table and, where it is off, turns ip_forward on.
func (s *Sandbox) getEgress() (*egressLink, error) {
	e := s.eg
	if err := e.setUp(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	var l *egressLink
	if n := len(e.ready); n > 0 {
		l, e.ready = e.ready[n-1], e.ready[:n-1]
	}
	e.mu.Unlock()
	select {
	case e.refill <- struct{}{}:
	default:
	}
	if l != nil {
		return l, nil
	}
	return e.prepare()
}

// fill keeps e.warm namespaces ready.
func (e *egress) fill() {
	defer e.filler.Done()
	for {
		select {
		case <-e.stop:
			return
		case <-e.refill:
		}
		for {
			e.mu.Lock()
			need := !e.closed && len(e.ready) < e.warm
			e.mu.Unlock()
			if !need {
				break
			}
			l, err := e.prepare()
			if err != nil {
				e.mu.Lock()
				closed := e.closed
				e.mu.Unlock()
				if !closed {
					e.log.Warn("sandbox: egress: prepare a network namespace", "err", err)
				}
				break // until the next start asks again
			}
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				_ = l.delete()
				l.closeNS()
				return
			}
			e.ready = append(e.ready, l)
			e.mu.Unlock()
		}
	}
}

// prepare makes a network namespace with its link out.
func (e *egress) prepare() (*egressLink, error) {
	ns, err := newNetns()
	if err != nil {
		return nil, fmt.Errorf("sandbox: egress: new network namespace: %w", err)
	}
	l, err := e.attach(ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	l.ns = ns
	return l, nil
}

// newNetns returns a new network namespace, made on a locked thread that
// then goes back to Mote's.
func newNetns() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			// Where it stands is unknown: the thread dies with the goroutine.
			ch <- result{netns.None(), err}
			return
		}
		if err := netns.Set(orig); err != nil {
			ns.Close()
			ch <- result{netns.None(), err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ns, nil}
	}()
	r := <-ch
	return r.ns, r.err
}

// start starts cmd inside l's namespace: forked from a thread that
// entered it, so the child is born there. An error means cmd did not
// start.
func (l *egressLink) start(cmd *exec.Cmd) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(l.ns); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("sandbox: egress: enter network namespace: %w", err)
			return
		}
		err = cmd.Start()
		if e := netns.Set(orig); e != nil {
			// The thread dies with the goroutine, and the child with it
			// (Pdeathsig): Done reports it.
			l.e.log.Error("sandbox: egress: leave network namespace", "err", e)
			ch <- err
			return
		}
		runtime.UnlockOSThread()
		ch <- err
	}()
	return <-ch
}

// attach gives ns a link out.
func (e *egress) attach(ns netns.NsHandle) (*egressLink, error) {
	for range attachTries {
		l, err := e.reserve()
		if err != nil {
			return nil, err
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: l.name},
			PeerName:      peerName,
			PeerNamespace: netlink.NsFd(int(ns)),
		}
		err = netlink.LinkAdd(veth)
		if errors.Is(err, unix.EEXIST) {
			// Another Mote on this host holds the slot.
			e.release(l)
			continue
		}
		if err != nil {
			e.release(l)
			return nil, fmt.Errorf("sandbox: egress: create link %s: %w", l.name, err)
		}
		l.index = veth.Index
		if err := l.configure(ns); err != nil {
			_ = l.delete()
			return nil, err
		}
		return l, nil
	}
	return nil, fmt.Errorf("sandbox: egress: no free address in %s after %d tries", e.pool, attachTries)
}

// reserve takes the next free slot of the pool; when all are taken but
// some are being deleted, it waits for one.
func (e *egress) reserve() (*egressLink, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if e.closed {
			return nil, errors.New("sandbox: egress: sandbox is closed")
		}
		if l := e.take(); l != nil {
			return l, nil
		}
		if e.nDel == 0 {
			return nil, fmt.Errorf("sandbox: egress: all %d addresses of %s in use", e.slots, e.pool)
		}
		e.freed.Wait()
	}
}

// take takes the next free slot, or returns nil; e.mu is held.
func (e *egress) take() *egressLink {
	for range e.slots {
		slot := e.next
		e.next = (e.next + 1) % e.slots
		if e.links[slot] != nil {
			continue
		}
		base := e.pool.Addr().As4()
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		v += uint32(slot) * 4
		l := &egressLink{
			e:    e,
			slot: slot,
			name: linkPrefix + strconv.Itoa(slot),
			gw:   netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v + 1)}),
			addr: netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v + 2)}),
			ns:   netns.None(),
		}
		e.links[slot] = l
		return l
	}
	return nil
}

func (e *egress) release(l *egressLink) {
	e.mu.Lock()
	if e.links[l.slot] == l {
		delete(e.links, l.slot)
		if l.deleting {
			e.nDel--
			e.freed.Broadcast()
		}
	}
	e.mu.Unlock()
}

// configure addresses both ends and routes the function's traffic to the
// host end. The host end gets no IPv6 (so not even a link-local address
// to talk to) and strict reverse-path filtering, so only the function's
// own address comes in from it.
func (l *egressLink) configure(ns netns.NsHandle) error {
	// The kernel ignores an alias given at creation.
	host := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.name, Index: l.index}}
	if err := netlink.LinkSetAlias(host, linkAlias+strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("sandbox: egress: name %s's owner: %w", l.name, err)
	}
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv6/conf/" + l.name + "/disable_ipv6", "1"},
		{"/proc/sys/net/ipv4/conf/" + l.name + "/rp_filter", "1"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0); err != nil && !(os.IsNotExist(err) && strings.Contains(s.path, "ipv6")) {
			return fmt.Errorf("sandbox: egress: %w", err)
		}
	}
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: ipNet(l.gw)}); err != nil {
		return fmt.Errorf("sandbox: egress: address %s: %w", l.name, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("sandbox: egress: bring %s up: %w", l.name, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("sandbox: egress: netlink in function namespace: %w", err)
	}
	defer h.Close()
	peer, err := h.LinkByName(peerName)
	if err != nil {
		return fmt.Errorf("sandbox: egress: find %s: %w", peerName, err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("sandbox: egress: find lo: %w", err)
	}
	if err := h.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(l.addr)}); err != nil {
		return fmt.Errorf("sandbox: egress: address %s: %w", peerName, err)
	}
	for _, link := range []netlink.Link{lo, peer} {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("sandbox: egress: bring %s up: %w", link.Attrs().Name, err)
		}
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: l.gw.AsSlice()}); err != nil {
		return fmt.Errorf("sandbox: egress: default route: %w", err)
	}
	return nil
}

func ipNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(30, 32)}
}

// Close deletes the link (both ends) and then frees its address, in the
// background: deleting a network device waits for RCU grace periods, tens
// of milliseconds on a busy host, which a function's Close need not wait
// for. Sandbox.Close waits for them.
func (l *egressLink) Close() error {
	l.closeNS()
	l.e.mu.Lock()
	if l.deleting || l.e.links[l.slot] != l {
		l.e.mu.Unlock()
		return nil
	}
	l.deleting = true
	l.e.nDel++
	l.e.mu.Unlock()
	l.e.deleting.Add(1)
	go func() {
		defer l.e.deleting.Done()
		if err := l.delete(); err != nil {
			l.e.log.Warn("sandbox: egress: delete link", "err", err)
		}
	}()
	return nil
}

// closeNS lets the namespace go once its processes and sockets have.
func (l *egressLink) closeNS() {
	if l.ns.IsOpen() {
		l.ns.Close()
		l.ns = netns.None()
	}
}

// delete deletes the link and frees its address. Usually the kernel has
// deleted it already, with the function's namespace.
func (l *egressLink) delete() error {
	defer l.e.release(l)
	link, err := netlink.LinkByIndex(l.index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("sandbox: egress: find %s: %w", l.name, err)
	}
	if link.Attrs().Name != l.name {
		return nil // gone, and its index taken by another interface
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("sandbox: egress: delete %s: %w", l.name, err)
	}
	return nil
}

// setUp installs the table on first use.
func (e *egress) setUp() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("sandbox: egress: sandbox is closed")
	}
	if e.table != nil {
		return nil
	}
	unlock, err := lockForwarding()
	if err != nil {
		return err
	}
	defer unlock()
	on, err := forwarding()
	if err != nil {
		return err
	}
	// Mote guards forwarding when it is the one that turns it on (now, or
	// another Mote before), so the host routes nothing but functions'
	// traffic that it did not route before.
	guard := !on || pathExists(markPath)
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: tablePrefix + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(tableSeq.Add(1), 10)}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("sandbox: egress: nftables: %w", err)
	}
	e.rules(c, t, guard)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("sandbox: egress: install nftables table %s: %w", t.Name, err)
	}
	if !on {
		if err := os.WriteFile(markPath, nil, 0o600); err != nil {
			delTable(t)
			return fmt.Errorf("sandbox: egress: %w", err)
		}
		if err := os.WriteFile(forwardPath, []byte("1"), 0); err != nil {
			delTable(t)
			_ = os.Remove(markPath)
			return fmt.Errorf("sandbox: egress: turn ip_forward on: %w", err)
		}
		e.log.Info("sandbox: turned ip_forward on for networked functions; Mote's table forwards nothing else", "table", t.Name)
	}
	e.table = t
	e.filler.Add(1)
	go e.fill()
	return nil
}

// rules queues the table's chains and rules on c.
func (e *egress) rules(c *nftables.Conn, t *nftables.Table, guard bool) {
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	input := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	forward := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	add := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, x := range exprs {
			all = append(all, x...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	// A refusal answers TCP with a reset, at once: an ICMP error would be
	// rate-limited to one a second per function and leave the others to
	// time out.
	refuse := func(ch *nftables.Chain, match ...[]expr.Any) {
		add(ch, append(match, nftTCP, nftResetTCP)...)
		add(ch, append(match, nftUnreachable)...)
	}
	fromFn, toFn := nftIfname(expr.MetaKeyIIFNAME, expr.CmpOpEq), nftIfname(expr.MetaKeyOIFNAME, expr.CmpOpEq)
	// Nothing from a function is for the host.
	refuse(input, fromFn)
	// Nor for another function, nor for a host address whose traffic the
	// host redirects elsewhere (a port a container publishes, say).
	refuse(forward, fromFn, toFn)
	refuse(forward, fromFn, nftDNATed)
	// Into a function: replies only.
	add(forward, toFn, nftReplies, nftVerdict(expr.VerdictAccept))
	add(forward, toFn, nftVerdict(expr.VerdictDrop))
	// Out of a function: IPv4, not to the deny list.
	add(forward, fromFn, nftNotIPv4, nftVerdict(expr.VerdictDrop))
	for _, d := range e.deny {
		refuse(forward, fromFn, nftIPv4, nftPrefix(16, d))
	}
	if guard {
		add(forward, nftIfname(expr.MetaKeyIIFNAME, expr.CmpOpNeq), nftIfname(expr.MetaKeyOIFNAME, expr.CmpOpNeq), nftVerdict(expr.VerdictDrop))
	}
	add(post, nftIPv4, nftPrefix(12, e.pool), nftIfname(expr.MetaKeyOIFNAME, expr.CmpOpNeq), []expr.Any{&expr.Masq{}})
}

// nftIfname matches the input or output interface's name against linkPrefix
// (a prefix match: the comparison is as long as the prefix).
func nftIfname(key expr.MetaKey, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte(linkPrefix)},
	}
}

var (
	nftIPv4 = []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	nftNotIPv4 = []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	nftReplies = []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
	nftDNATed = []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
	nftTCP = []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
	nftResetTCP    = []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	nftUnreachable = []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}
)

func nftVerdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// nftPrefix matches the IPv4 address at offset (12 source, 16 destination)
// of the network header against p.
func nftPrefix(offset uint32, p netip.Prefix) []expr.Any {
	mask := net.CIDRMask(p.Bits(), 32)
	addr := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
	}
}

// close deletes every link still attached, then the table, and turns
// ip_forward off again if a Mote turned it on and no Mote table is left.
func (e *egress) close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	t := e.table
	e.table, e.closed = nil, true
	e.freed.Broadcast()
	e.mu.Unlock()
	close(e.stop)
	e.filler.Wait()
	e.mu.Lock()
	ready := e.ready
	e.ready = nil
	var links []*egressLink
	for _, l := range e.links {
		links = append(links, l)
	}
	e.mu.Unlock()
	for _, l := range ready {
		l.closeNS()
	}
	if t == nil {
		return nil
	}
	var first error
	for _, l := range links {
		if err := l.delete(); err != nil && first == nil {
			first = err
		}
	}
	e.deleting.Wait()
	if err := delTable(t); err != nil && first == nil {
		first = err
	}
	if err := releaseForwarding(e.log); err != nil && first == nil {
		first = err
	}
	return first
}

func delTable(t *nftables.Table) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("sandbox: egress: nftables: %w", err)
	}
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("sandbox: egress: delete table %s: %w", t.Name, err)
	}
	return nil
}

// removeStale deletes what Motes that died left behind: host ends of
// links whose Mote is gone (normally the kernel deletes a link with its
// function's namespace) and their tables; then ip_forward goes back off
// if no Mote needs it. Errors are logged: a host without nftables or
// netlink simply has nothing to clean.
func (e *egress) removeStale() {
	links, err := linkList()
	if err != nil {
		e.log.Warn("sandbox: egress: list links", "err", err)
	}
	for _, l := range links {
		a := l.Attrs()
		pid, ok := strings.CutPrefix(a.Alias, linkAlias)
		if !strings.HasPrefix(a.Name, linkPrefix) || !ok || pidAlive(pid) {
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			e.log.Warn("sandbox: egress: delete stale link", "link", a.Name, "err", err)
		} else {
			e.log.Info("sandbox: egress: deleted stale link", "link", a.Name, "pid", pid)
		}
	}
	tables, err := moteTables()
	if err != nil {
		e.log.Warn("sandbox: egress: list nftables tables", "err", err)
		return
	}
	dead := 0
	for _, t := range tables {
		pid, _, _ := strings.Cut(strings.TrimPrefix(t.Name, tablePrefix), "-")
		if pidAlive(pid) {
			continue
		}
		if err := delTable(t); err != nil {
			e.log.Warn("sandbox: egress: delete stale table", "table", t.Name, "err", err)
			continue
		}
		e.log.Info("sandbox: egress: deleted stale table", "table", t.Name)
		dead++
	}
	if dead > 0 {
		if err := releaseForwarding(e.log); err != nil {
			e.log.Warn("sandbox: egress", "err", err)
		}
	}
}

// linkList lists the host's links, again when a change interrupted the
// kernel's dump.
func linkList() ([]netlink.Link, error) {
	for range 10 {
		links, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return nil, errors.New("sandbox: egress: list links: interrupted 10 times")
}

// moteTables lists every Mote's tables on the host.
func moteTables() ([]*nftables.Table, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	all, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var mine []*nftables.Table
	for _, t := range all {
		if strings.HasPrefix(t.Name, tablePrefix) {
			mine = append(mine, t)
		}
	}
	return mine, nil
}

// pidAlive reports whether the process pid (in decimal) exists.
func pidAlive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return true // not ours to judge
	}
	return unix.Kill(n, 0) != unix.ESRCH
}

// releaseForwarding turns ip_forward off if a Mote turned it on and no
// Mote table is left.
func releaseForwarding(log *slog.Logger) error {
	unlock, err := lockForwarding()
	if err != nil {
		return err
	}
	defer unlock()
	if !pathExists(markPath) {
		return nil
	}
	tables, err := moteTables()
	if err != nil {
		return fmt.Errorf("sandbox: egress: list nftables tables: %w", err)
	}
	if len(tables) > 0 {
		return nil
	}
	if err := os.WriteFile(forwardPath, []byte("0"), 0); err != nil {
		return fmt.Errorf("sandbox: egress: turn ip_forward off: %w", err)
	}
	log.Info("sandbox: turned ip_forward off: no networked function left")
	return os.Remove(markPath)
}

// lockForwarding takes the host-wide lock on the ip_forward decision.
func lockForwarding() (unlock func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sandbox: egress: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: egress: lock %s: %w", lockPath, err)
	}
	return func() { f.Close() }, nil
}

func forwarding() (bool, error) {
	b, err := os.ReadFile(forwardPath)
	if err != nil {
		return false, fmt.Errorf("sandbox: egress: %w", err)
	}
	return strings.TrimSpace(string(b)) != "0", nil
}

func pathExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// startCmd starts p's init: inside its namespace with a link out, or in
// Mote's to be cloned into new ones by p.flags.
func (p *Proc) startCmd() error {
	if p.egress == nil {
		return p.cmd.Start()
	}
	return p.egress.start(p.cmd)
}
