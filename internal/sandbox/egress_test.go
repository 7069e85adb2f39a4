package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The tests below send traffic only to addresses they create on this
// machine: the host's own, functions' links and a "remote host" network
// namespace standing in for the Internet, on 198.18.0.0/15 (reserved for
// benchmarking, never routed), wired to the host by a veth pair.

// needEgress skips unless networked sandboxes get their own namespace.
func needEgress(t *testing.T, s *Sandbox) {
	t.Helper()
	if os.Geteuid() != 0 || s.flags&unix.CLONE_NEWNET == 0 {
		t.Skip("needs root and network namespaces")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash for /dev/tcp")
	}
}

// listener accepts TCP connections, greets each with "hello" and counts
// them with the peer address.
type listener struct {
	net.Listener
	mu    sync.Mutex
	peers []netip.Addr
}

func serve(t *testing.T, ln net.Listener) *listener {
	t.Helper()
	l := &listener{Listener: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.peers = append(l.peers, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			l.mu.Unlock()
			fmt.Fprintln(c, "hello")
			c.Close()
		}
	}()
	return l
}

func (l *listener) accepted() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.peers)
}

func (l *listener) port() int { return l.Addr().(*net.TCPAddr).Port }

// remote is a network namespace wired to the host by a veth pair: host
// end gw, its own end addr.
type remote struct {
	ns       netns.NsHandle
	gw, addr netip.Addr
	ln       *listener
}

var remoteSeq atomic.Int32

func newRemote(t *testing.T) *remote { return newRemoteIn(t, [2]byte{198, 18}) }

// newRemoteIn makes a remote host with addresses in net16/16.
func newRemoteIn(t *testing.T, net16 [2]byte) *remote {
	t.Helper()
	n := int(remoteSeq.Add(1))
	third := (os.Getpid()*7 + n) % 256
	r := &remote{
		gw:   netip.AddrFrom4([4]byte{net16[0], net16[1], byte(third), byte(4*n + 1)}),
		addr: netip.AddrFrom4([4]byte{net16[0], net16[1], byte(third), byte(4*n + 2)}),
	}
	// A new namespace for a locked thread, which goes back to the host's
	// once it has the listener.
	type made struct {
		ns  netns.NsHandle
		ln  net.Listener
		err error
	}
	ch := make(chan made, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- made{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			ch <- made{err: err}
			return // the thread dies with the goroutine
		}
		ln, err := net.Listen("tcp4", "0.0.0.0:0")
		if e := netns.Set(orig); e != nil {
			ch <- made{err: e}
			return
		}
		runtime.UnlockOSThread()
		ch <- made{ns, ln, err}
	}()
	m := <-ch
	if m.err != nil {
		t.Fatal(m.err)
	}
	r.ns = m.ns
	t.Cleanup(func() { r.ns.Close() })
	r.ln = serve(t, m.ln)
	name := fmt.Sprintf("mtr%d-%d", os.Getpid()%100000, n)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(r.ns))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(veth) })
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: ipNet(r.gw)}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(r.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, name := range []string{"lo", "eth0"} {
		link, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "eth0" {
			if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(r.addr)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// routeVia routes other's link through the host.
func (r *remote) routeVia(t *testing.T, other *remote) {
	t.Helper()
	h, err := netlink.NewHandleAt(r.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.IPNet{IP: netip.PrefixFrom(other.addr, 30).Masked().Addr().AsSlice(), Mask: net.CIDRMask(30, 32)}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: dst, Gw: r.gw.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

func (r *remote) target() string { return r.addr.String() + "/" + strconv.Itoa(r.ln.port()) }

// What a connection attempt met.
const (
	dialOpen    = "open"
	dialRefused = "refused" // at once: a reset or an ICMP error
	dialTimeout = "timeout" // nothing within 2 s: dropped
)

// dialFrom starts a networked sandbox that tries to connect to each
// target ("ADDR/PORT", from targets once the sandbox has its link) and
// reports what each attempt met.
func dialFrom(t *testing.T, s *Sandbox, name string, targets func(*Proc) []string) map[string]string {
	t.Helper()
	script := `for t in "$@"; do
		timeout 2 bash -c "exec 3<>/dev/tcp/$t" 2>/dev/null
		case $? in 0) echo "$t open";; 124) echo "$t timeout";; *) echo "$t refused";; esac
	done`
	out, p := runArgv(t, s, Options{Name: name, Network: true}, func(p *Proc) []string {
		return append([]string{"bash", "-c", script, "probe"}, targets(p)...)
	})
	if got := p.ExitStatus(); got != "exit status 0" {
		t.Fatalf("probe: %s: %s", got, out)
	}
	res := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		target, state, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("probe output: %q", out)
		}
		res[target] = state
	}
	return res
}

// runArgv is run with an argv of its own.
func runArgv(t *testing.T, s *Sandbox, o Options, argv func(*Proc) []string) (string, *Proc) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o.Stdout, o.Stderr = w, w
	p, err := s.Start(o)
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Exec(argv(p), []string{"PATH=/usr/bin:/bin"}, "/"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	r.Close()
	<-p.Done()
	return strings.TrimSpace(b.String()), p
}

// TestEgressReachesOutsideThroughNAT: a networked function reaches a host
// outside the machine, which sees the host's address, not the function's.
func TestEgressReachesOutsideThroughNAT(t *testing.T) {
	s := newSandbox(t)
	needEgress(t, s)
	r := newRemote(t)
	out, p := runArgv(t, s, Options{Name: "egress-nat", Network: true},
		func(*Proc) []string { return []string{"bash", "-c", `exec 3<>/dev/tcp/$0 && head -n1 <&3`, r.target()} })
	if out != "hello" {
		t.Fatalf("function reading the remote host: got %q (%s), want hello", out, p.ExitStatus())
	}
	peers := r.ln.accepted()
	if len(peers) != 1 || peers[0] != r.gw {
		t.Errorf("remote saw peers %v, want the host's address %v (masqueraded)", peers, r.gw)
	}
}

// TestEgressCannotReachHost: nothing on the host answers a networked
// function: not its loopback, not its gateway, not any other host
// address. Before egress.go a networked function shared the host's
// network namespace and reached all of them (fails without the fix).
func TestEgressCannotReachHost(t *testing.T) {
	s := newSandbox(t)
	needEgress(t, s)
	r := newRemote(t)
	ln, err := net.Listen("tcp4", "0.0.0.0:0") // every host address, loopback too
	if err != nil {
		t.Fatal(err)
	}
	host := serve(t, ln)
	port := "/" + strconv.Itoa(host.port())
	targets := []string{"127.0.0.1" + port, "127.0.0.2" + port, r.gw.String() + port}
	if a := hostAddr(t, s); a.IsValid() {
		targets = append(targets, a.String()+port)
	}
	targets = append(targets, r.target())
	got := dialFrom(t, s, "egress-host", func(p *Proc) []string {
		if p.egress != nil { // and the function's own gateway
			targets = append(targets, p.egress.gw.String()+port)
		}
		return targets
	})
	for _, tg := range targets {
		want := dialRefused
		if tg == r.target() {
			want = dialOpen
		}
		if got[tg] != want {
			t.Errorf("connect %s: got %s, want %s", tg, got[tg], want)
		}
	}
	if a := host.accepted(); len(a) != 0 {
		t.Errorf("host listener accepted %v, want nothing", a)
	}
}

// hostAddr is an IPv4 address of the host outside loopback, Mote's pool
// and the test's links, if it has one.
func hostAddr(t *testing.T, s *Sandbox) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr()
		if ip.Is4() && !ip.IsLoopback() && !s.cfg.EgressPool.Contains(ip) && !netip.MustParsePrefix("198.18.0.0/15").Contains(ip) {
			return ip
		}
	}
	return netip.Addr{}
}

// TestEgressCannotReachOtherFunction: a networked function reaches
// neither another networked function's Runtime API (where that one's
// Listen says it is: before egress.go a host loopback port, which a
// neighbour found in /proc/net/tcp and hijacked; fails without the fix)
// nor anything listening on the other's link address.
func TestEgressCannotReachOtherFunction(t *testing.T) {
	s := newSandbox(t)
	needEgress(t, s)
	b, err := s.Start(Options{Name: "egress-victim", Network: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	api, err := b.Listen()
	if err != nil {
		t.Fatal(err)
	}
	apiLn := serve(t, api)
	all, err := listenInNetns(b.Pid(), "0.0.0.0:9002")
	if err != nil {
		t.Fatal(err)
	}
	allLn := serve(t, all)
	ap := api.Addr().(*net.TCPAddr)
	targets := []string{ap.IP.String() + "/" + strconv.Itoa(ap.Port)}
	if b.egress != nil {
		targets = append(targets,
			b.egress.addr.String()+"/"+strconv.Itoa(ap.Port),
			b.egress.addr.String()+"/9002",
			b.egress.gw.String()+"/9002")
	}
	got := dialFrom(t, s, "egress-attacker", func(*Proc) []string { return targets })
	for _, tg := range targets {
		if got[tg] != dialRefused {
			t.Errorf("connect %s: got %s, want %s", tg, got[tg], dialRefused)
		}
	}
	if a := append(apiLn.accepted(), allLn.accepted()...); len(a) != 0 {
		t.Errorf("victim accepted %v, want nothing", a)
	}
}

// TestNetworkInterfaces: a function without Network has only loopback; a
// networked one has loopback and its link, with a default route.
func TestNetworkInterfaces(t *testing.T) {
	s := newSandbox(t)
	needEgress(t, s)
	script := `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '; echo; tail -n +2 /proc/net/route | wc -l`
	tests := []struct {
		network        bool
		ifaces, routes string
	}{
		{false, "lo", "0"},
		{true, "eth0 lo", "2"}, // default and the link's /30
	}
	for _, tt := range tests {
		out, _ := run(t, s, Options{Name: "ifaces", Network: tt.network}, script)
		ifaces, routes, _ := strings.Cut(out, "\n")
		if strings.TrimSpace(ifaces) != tt.ifaces || routes != tt.routes {
			t.Errorf("network=%v: got interfaces %q, %s routes; want %q, %s", tt.network, ifaces, routes, tt.ifaces, tt.routes)
		}
	}
}

// TestEgressAddressesReused: a small pool serves many instances in turn,
// refuses one too many with a clear error, and leaves no link behind.
func TestEgressAddressesReused(t *testing.T) {
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 202, byte(os.Getpid() % 256), 0}), 28) // 4 slots
	s, err := New(Config{EgressPool: pool, EgressWarm: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	needEgress(t, s)
	for i := range 10 {
		p, err := s.Start(Options{Name: "reuse", Network: true})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if !pool.Contains(p.egress.addr) {
			t.Errorf("address %v not in pool %v", p.egress.addr, pool)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	var held []*Proc
	for i := range 4 {
		p, err := s.Start(Options{Name: "hold" + strconv.Itoa(i), Network: true})
		if err != nil {
			t.Fatalf("start %d of 4: %v", i, err)
		}
		t.Cleanup(func() { p.Close() })
		held = append(held, p)
	}
	if p, err := s.Start(Options{Name: "fifth", Network: true}); err == nil {
		p.Close()
		t.Errorf("fifth instance in a pool of 4: got no error")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("fifth instance: got %v, want all addresses in use", err)
	}
	for _, p := range held {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}
	s.eg.deleting.Wait()
	if n := len(s.eg.links); n != 0 {
		t.Errorf("links held after Close: got %d, want 0", n)
	}
	if left := ownLinks(t); len(left) != 0 {
		t.Errorf("links left on the host: %v", left)
	}
}

// ownLinks lists the host ends this process made.
func ownLinks(t *testing.T) []string {
	t.Helper()
	links, err := linkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if l.Attrs().Alias == linkAlias+strconv.Itoa(os.Getpid()) {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// TestEgressRemovesStale: a Mote killed with its state in place (a link
// and a table, as a kill between creating them and the function's exit
// leaves) has both removed by the next Mote's New.
func TestEgressRemovesStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(dead.Process.Pid)
	name := linkPrefix + "9" + pid // beyond the default pool's slots
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "mts" + pid}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetAlias(veth, linkAlias+pid); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(veth)
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: tablePrefix + pid + "-1"})
	if err := c.Flush(); err != nil {
		t.Skipf("no nftables: %v", err)
	}
	defer delTable(table)
	s := newSandbox(t)
	needEgress(t, s)
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("stale link %s: still there", name)
	}
	tables, err := moteTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == table.Name {
			t.Errorf("stale table %s: still there", tb.Name)
		}
	}
}

// TestEgressForwarding: ip_forward goes on with the first networked
// function, and off again with the last Mote table, and while Mote holds
// it on, the host forwards nothing else: one remote host cannot reach
// another through it.
func TestEgressForwarding(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	unlock, err := lockForwarding()
	if err != nil {
		t.Fatal(err)
	}
	on, _ := forwarding()
	tables, _ := moteTables()
	unlock()
	if on || len(tables) > 0 {
		t.Skip("ip_forward is on or another Mote uses egress: cannot watch it change")
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	needEgress(t, s)
	r1, r2 := newRemote(t), newRemote(t)
	_, p := run(t, s, Options{Name: "fwd", Network: true}, "true")
	if on, _ := forwarding(); !on {
		t.Errorf("ip_forward with a networked function: got off, want on")
	}
	// r1 and r2 route each other's addresses through the host.
	r1.routeVia(t, r2)
	r2.routeVia(t, r1)
	if err := dialInNetns(r1.ns, r2.addr.String()+":"+strconv.Itoa(r2.ln.port())); err == nil {
		t.Errorf("remote host to remote host through Mote's forwarding: connected, want dropped")
	}
	p.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables, _ = moteTables()
	if on, _ := forwarding(); on && len(tables) == 0 {
		t.Errorf("ip_forward after the last Mote table went: got on, want off")
	}
}

// dialInNetns connects to addr from inside ns, for half a second at most.
func dialInNetns(ns netns.NsHandle, addr string) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			ch <- err
			return
		}
		c, err := net.DialTimeout("tcp4", addr, 500*time.Millisecond)
		if c != nil {
			c.Close()
		}
		if e := netns.Set(orig); e != nil {
			ch <- errors.Join(err, e)
			return // the thread dies with the goroutine
		}
		runtime.UnlockOSThread()
		ch <- err
	}()
	return <-ch
}

// BenchmarkStart measures starting and closing a sandbox (its init only),
// without and with a link out.
func BenchmarkStart(b *testing.B) {
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, network := range []bool{false, true} {
		b.Run("network="+strconv.FormatBool(network), func(b *testing.B) {
			for b.Loop() {
				p, err := s.Start(Options{Name: "bench", Network: network})
				if err != nil {
					b.Fatal(err)
				}
				p.Close()
			}
		})
	}
}

// TestEgressCannotFollowHostRedirect: a port of a host address that the
// host redirects elsewhere (destination NAT, as for a port a container
// publishes) is the host's service, closed to functions like the rest
// (fails without the conntrack DNAT rule: the redirected connection is
// forwarded, not delivered, and passed the input chain).
func TestEgressCannotFollowHostRedirect(t *testing.T) {
	s := newSandbox(t)
	needEgress(t, s)
	r := newRemote(t)
	const port = 8088
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "mote-test-dnat-" + strconv.Itoa(os.Getpid())})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	to := r.addr.As4()
	var exprs []expr.Any
	exprs = append(exprs, nftPrefix(16, netip.PrefixFrom(r.gw, 32))...)
	exprs = append(exprs, nftTCP...)
	exprs = append(exprs,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Immediate{Register: 1, Data: to[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(r.ln.port()))},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
	)
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: exprs})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	defer delTable(tb)
	target := r.gw.String() + "/" + strconv.Itoa(port)
	got := dialFrom(t, s, "egress-dnat", func(*Proc) []string { return []string{target, r.target()} })
	if got[target] != dialRefused || got[r.target()] != dialOpen {
		t.Errorf("got %v; want %s refused (redirected host port) and %s open", got, target, r.target())
	}
}

// TestEgressNoInbound: nothing outside opens a connection to a networked
// function, even where it routes the functions' addresses through the
// host; replies to the function's own connections come in.
func TestEgressNoInbound(t *testing.T) {
	s := newSandbox(t)
	needEgress(t, s)
	r := newRemote(t)
	p, err := s.Start(Options{Name: "egress-inbound", Network: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln, err := listenInNetns(p.Pid(), "0.0.0.0:9002")
	if err != nil {
		t.Fatal(err)
	}
	fn := serve(t, ln)
	h, err := netlink.NewHandleAt(r.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	pool := s.cfg.EgressPool
	dst := &net.IPNet{IP: pool.Addr().AsSlice(), Mask: net.CIDRMask(pool.Bits(), 32)}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: dst, Gw: r.gw.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	if err := dialInNetns(r.ns, p.egress.addr.String()+":9002"); err == nil {
		t.Errorf("remote host to function: connected, want dropped")
	}
	if a := fn.accepted(); len(a) != 0 {
		t.Errorf("function accepted %v, want nothing", a)
	}
}

// TestEgressDeny: link-local addresses (cloud metadata) and the
// configured deny list are refused; other destinations are not.
func TestEgressDeny(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	metadata := newRemoteIn(t, [2]byte{169, 254})
	denied, allowed := newRemote(t), newRemote(t)
	s, err := New(Config{EgressDeny: []netip.Prefix{netip.PrefixFrom(denied.addr, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	needEgress(t, s)
	want := map[string]string{metadata.target(): dialRefused, denied.target(): dialRefused, allowed.target(): dialOpen}
	got := dialFrom(t, s, "egress-deny", func(*Proc) []string { return slices.Collect(maps.Keys(want)) })
	for tg, w := range want {
		if got[tg] != w {
			t.Errorf("connect %s: got %s, want %s", tg, got[tg], w)
		}
	}
}

// TestEgressWarm: after the first networked start the Sandbox keeps
// EgressWarm namespaces ready, the next start takes one of them, and
// Close lets every one go with its link.
func TestEgressWarm(t *testing.T) {
	s, err := New(Config{EgressWarm: 2})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	needEgress(t, s)
	first, err := s.Start(Options{Name: "warm-first", Network: true})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var ready []*egressLink
	deadline := time.Now().Add(10 * time.Second)
	for len(ready) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		s.eg.mu.Lock()
		ready = slices.Clone(s.eg.ready)
		s.eg.mu.Unlock()
	}
	if len(ready) != 2 {
		t.Fatalf("ready namespaces: got %d, want 2", len(ready))
	}
	out, p := run(t, s, Options{Name: "warm-second", Network: true}, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '")
	if !slices.Contains(ready, p.egress) {
		t.Errorf("second start: got a namespace made on the spot, want a ready one")
	}
	if out != "eth0 lo" {
		t.Errorf("interfaces in a ready namespace: got %q, want \"eth0 lo\"", out)
	}
	p.Close()
	first.Close()
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := ownLinks(t); len(left) != 0 {
		t.Errorf("links left after Close: %v", left)
	}
}

func TestEgressConfig(t *testing.T) {
	tests := []struct {
		pool string
		deny []string
		ok   bool
	}{
		{"", nil, true},
		{"10.9.0.0/24", []string{"192.168.0.0/16"}, true},
		{"10.9.0.0/30", nil, true},
		{"10.9.0.1/24", nil, false}, // host bits
		{"10.9.0.0/31", nil, false}, // no room for a /30
		{"10.0.0.0/7", nil, false},
		{"fd00::/64", nil, false},
		{"10.9.0.0/24", []string{"fd00::/8"}, false},
	}
	for _, tt := range tests {
		var c Config
		if tt.pool != "" {
			c.EgressPool = netip.MustParsePrefix(tt.pool)
		}
		for _, d := range tt.deny {
			c.EgressDeny = append(c.EgressDeny, netip.MustParsePrefix(d))
		}
		err := c.validateEgress()
		if got := err == nil; got != tt.ok {
			t.Errorf("pool %q deny %v: got err %v, want ok=%v", tt.pool, tt.deny, err, tt.ok)
		}
	}
	var c Config
	if err := c.validateEgress(); err != nil || c.EgressPool != DefaultEgressPool || c.EgressWarm != defaultWarm {
		t.Errorf("defaults: got %v, %v, %v", err, c.EgressPool, c.EgressWarm)
	}
}
