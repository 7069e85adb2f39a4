package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// Headers of a handed-over invocation and of its host calls.
const (
	hFn       = "Mote-Fn"
	hVersion  = "Mote-Version"
	hID       = "Mote-Id"
	hRoot     = "Mote-Root"
	hParent   = "Mote-Parent"
	hDepth    = "Mote-Depth"
	hDeadline = "Mote-Deadline" // unix ns
	hOrigin   = "Mote-Origin"
	hToken    = "Mote-Token"
	hOp       = "Mote-Op"
	hCode     = "Mote-Code"
	hErr      = "Mote-Err"
	hNotRun   = "Mote-Not-Run"
	hCPU      = "Mote-Cpu" // ns
	hWall     = "Mote-Wall"
	hCold     = "Mote-Cold"
)

// slack is how long past an invocation's deadline the node that handed it
// over waits for the answer: the runtime enforces the deadline itself.
const slack = 2 * time.Second

// ErrNotRun marks a handed-over invocation the other node did not start
// (it has no such version, or is shutting down): the caller runs it here.
var ErrNotRun = errors.New("cluster: not run on the node it was handed to")

// router tracks the invocations this node handed to others, to fail them
// when their node dies, and serves their host calls.
type router struct {
	mu       sync.Mutex
	inflight map[string]map[*forward]struct{} // by node
	hosts    sync.Map                         // token -> *forward
}

type forward struct {
	ctx    context.Context
	h      host.Host
	node   string
	cancel context.CancelCauseFunc
}

var errNodeDied = errors.New("node stopped answering")

func (r *router) add(f *forward) {
	r.mu.Lock()
	if r.inflight == nil {
		r.inflight = map[string]map[*forward]struct{}{}
	}
	m := r.inflight[f.node]
	if m == nil {
		m = map[*forward]struct{}{}
		r.inflight[f.node] = m
	}
	m[f] = struct{}{}
	r.mu.Unlock()
}

func (r *router) done(f *forward) {
	r.mu.Lock()
	delete(r.inflight[f.node], f)
	r.mu.Unlock()
}

func (r *router) failNode(node string) {
	r.mu.Lock()
	for f := range r.inflight[node] {
		f.cancel(errNodeDied)
	}
	r.mu.Unlock()
}

func (r *router) closeAll() {
	r.mu.Lock()
	for _, m := range r.inflight {
		for f := range m {
			f.cancel(errs.E(errs.Unavailable, "server is shutting down"))
		}
	}
	r.mu.Unlock()
}

type placeKey struct{}

// WithNode asks that the invocations run under ctx run on node (the
// bench's and the operator's way to reach one node; "" for any).
func WithNode(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, placeKey{}, node)
}

// Pinned reports whether ctx names the node its invocations run on.
func Pinned(ctx context.Context) bool {
	want, _ := ctx.Value(placeKey{}).(string)
	return want != ""
}

// Route returns the node to hand an attempt of version of fn to, or ""
// to run it here: here when idleHere (a warm instance is free), else a
// live node that advertised an idle instance of that version, in turn.
// A node named by WithNode is taken as it is.
func (n *Node) Route(ctx context.Context, fn string, version int, idleHere bool) string {
	if want, ok := ctx.Value(placeKey{}).(string); ok && want != "" {
		if want == n.cfg.Node {
			return ""
		}
		return want
	}
	if idleHere {
		return ""
	}
	live := *n.live.Load()
	if len(live) == 0 {
		return ""
	}
	start := int(n.next.Add(1))
	for i := range live {
		p := live[(start+i)%len(live)]
		if l, ok := p.hb.Functions[fn]; ok && l.Version == version && l.Idle > 0 {
			return p.hb.Node
		}
	}
	return ""
}

// Forward runs one attempt of ev on version of fn on node and returns
// what it did. Host calls the function makes come back here to ev.Host.
// If the node dies meanwhile (no heartbeat for DeadAfter) or does not
// answer, the attempt fails with errs.Unavailable; an error wrapping
// ErrNotRun says it never started there.
func (n *Node) Forward(ctx context.Context, node, fn string, version int, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error) {
	var tok [12]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !ev.Deadline.IsZero() {
		var c2 context.CancelFunc
		fctx, c2 = context.WithDeadline(fctx, ev.Deadline.Add(slack))
		defer c2()
	}
	f := &forward{ctx: fctx, h: ev.Host, node: node, cancel: cancel}
	n.route.add(f)
	defer n.route.done(f)
	n.route.hosts.Store(token, f)
	defer n.route.hosts.Delete(token)

	m := nats.NewMsg(n.prefix + "run." + node)
	m.Header.Set(hFn, fn)
	m.Header.Set(hVersion, strconv.Itoa(version))
	m.Header.Set(hID, ev.ID)
	m.Header.Set(hRoot, ev.Root)
	m.Header.Set(hParent, ev.Parent)
	m.Header.Set(hDepth, strconv.Itoa(ev.Depth))
	if !ev.Deadline.IsZero() {
		m.Header.Set(hDeadline, strconv.FormatInt(ev.Deadline.UnixNano(), 10))
	}
	m.Header.Set(hOrigin, n.cfg.Node)
	m.Header.Set(hToken, token)
	m.Data = ev.Payload
	resp, err := n.nc.RequestMsgWithContext(fctx, m)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return runtime.Result{}, runtime.Usage{}, false, errs.Wrap(errs.Unavailable, ErrNotRun, "node "+node+" is not serving invocations")
		case errors.Is(context.Cause(fctx), errNodeDied):
			return runtime.Result{}, runtime.Usage{}, false, errs.E(errs.Unavailable, "node %s stopped answering while running %s: the invocation may or may not have run", node, fn)
		case ctx.Err() != nil:
			return runtime.Result{}, runtime.Usage{}, false, ctx.Err()
		case fctx.Err() != nil:
			return runtime.Result{}, runtime.Usage{}, false, errs.E(errs.Unavailable, "node %s did not answer for %s past the deadline", node, fn)
		}
		return runtime.Result{}, runtime.Usage{}, false, errs.Wrap(errs.Unavailable, err, "handing "+fn+" to node "+node+": "+err.Error())
	}
	var u runtime.Usage
	cpu, _ := strconv.ParseInt(resp.Header.Get(hCPU), 10, 64)
	wall, _ := strconv.ParseInt(resp.Header.Get(hWall), 10, 64)
	u.CPU, u.Wall = time.Duration(cpu), time.Duration(wall)
	cold := resp.Header.Get(hCold) == "1"
	if code := resp.Header.Get(hCode); code != "" {
		e := errs.E(errs.Code(code), "%s", resp.Header.Get(hErr))
		if resp.Header.Get(hNotRun) == "1" {
			e.Err = ErrNotRun
		}
		return runtime.Result{}, u, cold, e
	}
	return runtime.Result{Output: resp.Data}, u, cold, nil
}

// onRun runs an invocation another node handed over.
func (n *Node) onRun(m *nats.Msg) {
	go n.runHandedOver(m)
}

func (n *Node) runHandedOver(m *nats.Msg) {
	h := m.Header
	version, _ := strconv.Atoi(h.Get(hVersion))
	depth, _ := strconv.Atoi(h.Get(hDepth))
	ev := &runtime.Event{ID: h.Get(hID), Root: h.Get(hRoot), Parent: h.Get(hParent), Depth: depth, Payload: m.Data}
	ctx := context.Background()
	if d, err := strconv.ParseInt(h.Get(hDeadline), 10, 64); err == nil && d > 0 {
		ev.Deadline = time.Unix(0, d)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, ev.Deadline.Add(slack))
		defer cancel()
	}
	ev.Host = &remoteHost{n: n, origin: h.Get(hOrigin), token: h.Get(hToken)}
	res, u, cold, err := n.local.RunVersion(ctx, h.Get(hFn), version, ev)
	r := nats.NewMsg(m.Reply)
	r.Header.Set(hCPU, strconv.FormatInt(int64(u.CPU), 10))
	r.Header.Set(hWall, strconv.FormatInt(int64(u.Wall), 10))
	if cold {
		r.Header.Set(hCold, "1")
	}
	if err != nil {
		setErr(r, err)
		if errors.Is(err, ErrNotRun) {
			r.Header.Set(hNotRun, "1")
		}
	} else {
		r.Data = res.Output
	}
	if err := m.RespondMsg(r); err != nil {
		n.log.Warn("answering a handed-over invocation", "id", ev.ID, "err", err)
	}
}

func setErr(m *nats.Msg, err error) {
	m.Header.Set(hCode, string(errs.CodeOf(err)))
	m.Header.Set(hErr, errs.MessageOf(err))
}

// remoteHost serves the host calls of a handed-over invocation by sending
// them to the node that owns the invocation.
type remoteHost struct {
	n      *Node
	origin string
	token  string
}

func (h *remoteHost) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	m := nats.NewMsg(h.n.prefix + "host." + h.origin)
	m.Header.Set(hToken, h.token)
	m.Header.Set(hOp, op)
	m.Data = host.AppendArgs(nil, args...)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	resp, err := h.n.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errs.Wrap(errs.Unavailable, err, "host call "+op+": node "+h.origin+" does not answer")
	}
	if code := resp.Header.Get(hCode); code != "" {
		return nil, errs.E(errs.Code(code), "%s", resp.Header.Get(hErr))
	}
	return resp.Data, nil
}

// onHostCall serves a host call of an invocation this node handed over.
func (n *Node) onHostCall(m *nats.Msg) {
	v, ok := n.route.hosts.Load(m.Header.Get(hToken))
	if !ok {
		r := nats.NewMsg(m.Reply)
		setErr(r, errs.E(errs.Unavailable, "the invocation is over"))
		m.RespondMsg(r)
		return
	}
	f := v.(*forward)
	go func() {
		r := nats.NewMsg(m.Reply)
		args, err := host.ParseArgs(m.Data)
		var out []byte
		if err == nil {
			out, err = f.h.Call(f.ctx, m.Header.Get(hOp), args)
		} else {
			err = errs.E(errs.BadRequest, "host call arguments: %v", err)
		}
		if err != nil {
			setErr(r, err)
		} else {
			r.Data = out
		}
		m.RespondMsg(r)
	}()
}
