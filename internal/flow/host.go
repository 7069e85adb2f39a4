package flow

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// The flow host ops. Their arguments and results are encoded with
// host.AppendArgs; docs/flows.md is the reference for SDK authors.
const (
	// OpInvoke calls a function and waits. Args: [function, payload].
	// Result: the child's output; failure: the child's error code and
	// message (function_error, timeout, limit_exceeded, ...).
	OpInvoke = "invoke"
	// OpInvokeAsync starts a function and returns at once. Args:
	// [function, payload]. Result: a handle (the child's invocation id).
	OpInvokeAsync = "invoke_async"
	// OpAwait waits for handles from OpInvokeAsync. Args: [mode ("all" or
	// "any"), timeout in ms as decimal ("0": none), handle...]. Result: for
	// each handle, two args: code and data (see Results).
	OpAwait = "await"
	// OpMap calls a function once per event with bounded concurrency and
	// waits for all. Args: [function, concurrency as decimal ("0": the
	// default), event...]. Result: two args per event, in event order.
	OpMap = "map"
)

// Results per call, as OpAwait and OpMap return them: a code then data for
// each. An empty code is success and data is the output; "pending" (await
// any only) is a call not yet done; any other code is the call's error
// code and data its message.
const codePending = "pending"

// attempt is one attempt of one invocation, and the host.Host its function
// sees. Call sequence numbers and handles are per attempt, so a retried
// attempt numbers its calls from 0 again and replays journaled ones.
type attempt struct {
	e  *Engine
	in *inv
	ev runtime.Event // what the Runner runs; one allocation with the attempt

	// The attempt's context, which children derive from: made at the
	// start for a Runner that needs it, otherwise on first use (see
	// Policy.RunnerDeadline), from parent and deadline.
	parent   context.Context
	deadline time.Time
	ctxMu    sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc

	seq atomic.Uint64

	mu      sync.Mutex
	handles map[string]*pending

	fbOnce sync.Once
	fb     host.Host

	report Attempt // what Config.OnAttempt is given
}

var _ host.Host = (*attempt)(nil)

// pending is an async child call.
type pending struct {
	done chan struct{}
	out  []byte
	err  error
}

// context returns the attempt's context, bounded by its deadline, making
// it if it was not made at the start.
func (a *attempt) context() context.Context {
	a.ctxMu.Lock()
	defer a.ctxMu.Unlock()
	if a.ctx == nil {
		a.ctx, a.cancel = context.WithDeadline(a.parent, a.deadline)
	}
	return a.ctx
}

// end cancels the attempt's context, if it was made.
func (a *attempt) end() {
	a.ctxMu.Lock()
	cancel := a.cancel
	a.ctxMu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// dispatch serves the flow ops and hands every other op to Config.Fallback.
//
// args may alias the caller's memory (a wasm guest's) only for the
// duration of the call, and children, the journal and async runs outlive
// it: the flow ops copy what they keep.
func (a *attempt) dispatch(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	// From a host call on, the invocation's id may be known outside
	// (Policy.LazyListing).
	a.e.list(a.in)
	switch op {
	case OpInvoke, OpInvokeAsync, OpMap:
		args = cloneArgs(args)
	}
	switch op {
	case OpInvoke:
		if len(args) != 2 {
			return nil, errs.E(errs.BadRequest, "flow: invoke takes [function, payload]")
		}
		return a.call(ctx, string(args[0]), args[1], a.seq.Add(1)-1)
	case OpInvokeAsync:
		if len(args) != 2 {
			return nil, errs.E(errs.BadRequest, "flow: invoke_async takes [function, payload]")
		}
		return a.invokeAsync(ctx, string(args[0]), args[1])
	case OpAwait:
		return a.await(ctx, args)
	case OpMap:
		return a.mapCall(ctx, args)
	}
	a.fbOnce.Do(func() {
		a.in.tree.hosted.Store(true)
		if a.e.cfg.Fallback != nil {
			n := &a.in.node
			a.fb = a.e.cfg.Fallback(Ref{ID: n.ID, Parent: n.Parent, Root: n.Root, Function: n.Function, Depth: n.Depth})
		}
	})
	if a.fb == nil {
		return nil, errs.E(errs.BadRequest, "flow: unknown host op %q", op)
	}
	return a.fb.Call(ctx, op, args)
}

// call is a synchronous child call with sequence number seq. It runs under
// the attempt's context, marked as called from hctx, the host call's: the
// child may run on the caller's thread, and its runtime needs to know.
func (a *attempt) call(hctx context.Context, fn string, payload []byte, seq uint64) ([]byte, error) {
	if err := a.mayInvoke(fn); err != nil {
		return nil, err
	}
	return a.callGranted(hctx, fn, payload, seq)
}

// mayInvoke checks that the attempt's function may call fn (Grants).
func (a *attempt) mayInvoke(fn string) error {
	if a.e.grants == nil {
		return nil
	}
	return a.e.grants.MayInvoke(a.in.node.Function, fn)
}

// callGranted is call once the grant is checked.
func (a *attempt) callGranted(hctx context.Context, fn string, payload []byte, seq uint64) ([]byte, error) {
	if j := a.in.replayed(seq, fn, payload); j != nil {
		return j.Output, nil
	}
	c, err := a.e.child(a.in, fn, payload)
	if err != nil {
		return nil, err
	}
	o, err := a.e.run(a.e.childContext(runtime.InheritCaller(a.context(), hctx), hctx), c)
	if err != nil {
		return nil, err
	}
	a.e.journal(a.in, seq, c.node.ID, fn, payload, o.Output)
	return o.Output, nil
}

func (a *attempt) invokeAsync(hctx context.Context, fn string, payload []byte) ([]byte, error) {
	// A refused call uses its sequence number too, as invoke's does, so
	// the calls after it number alike whatever the grant says.
	seq := a.seq.Add(1) - 1
	if err := a.mayInvoke(fn); err != nil {
		return nil, err
	}
	if j := a.in.replayed(seq, fn, payload); j != nil {
		p := &pending{done: make(chan struct{}), out: j.Output}
		close(p.done)
		a.addHandle(j.Child, p)
		return []byte(j.Child), nil
	}
	c, err := a.e.child(a.in, fn, payload)
	if err != nil {
		return nil, err
	}
	c.node.Async = true
	// The child outlives this attempt if the attempt succeeds, so its
	// context hangs off the engine's; failures stop it through kids.
	kctx, cancel := context.WithCancel(a.e.childContext(a.e.base, hctx))
	c.cancel = cancel
	p := &pending{done: make(chan struct{})}
	id := c.node.ID
	a.addHandle(id, p)
	a.in.mu.Lock()
	a.in.kids = append(a.in.kids, c)
	a.in.mu.Unlock()
	err = a.e.goAsync(func() {
		o, err := a.e.run(kctx, c)
		if err == nil {
			p.out = o.Output
			a.e.journal(a.in, seq, id, fn, payload, o.Output)
		}
		p.err = err
		close(p.done)
	})
	if err != nil {
		// Closing: the child never runs; end it so its tree can end.
		cancel()
		_, _ = a.e.finish(c, nil, err)
		return nil, err
	}
	return []byte(id), nil
}

func (a *attempt) addHandle(id string, p *pending) {
	a.mu.Lock()
	if a.handles == nil {
		a.handles = make(map[string]*pending)
	}
	a.handles[id] = p
	a.mu.Unlock()
}

func (a *attempt) await(ctx context.Context, args [][]byte) ([]byte, error) {
	if len(args) < 2 {
		return nil, errs.E(errs.BadRequest, "flow: await takes [mode, timeout_ms, handle...]")
	}
	mode := string(args[0])
	if mode != "all" && mode != "any" {
		return nil, errs.E(errs.BadRequest, "flow: await mode must be all or any, not %q", mode)
	}
	ms, err := strconv.ParseUint(string(args[1]), 10, 63)
	if err != nil {
		return nil, errs.E(errs.BadRequest, "flow: await timeout must be a decimal number of milliseconds, not %q", args[1])
	}
	ps := make([]*pending, len(args)-2)
	a.mu.Lock()
	for i, h := range args[2:] {
		ps[i] = a.handles[string(h)]
		if ps[i] == nil {
			a.mu.Unlock()
			return nil, errs.E(errs.BadRequest, "flow: unknown handle %q: await takes handles this invocation's invoke_async returned", h)
		}
	}
	a.mu.Unlock()

	var timeout <-chan time.Time
	if ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	actx := a.context()
	wait := func(p *pending) error {
		select {
		case <-p.done:
			return nil
		case <-actx.Done():
			return ctxError(actx, a.in.node.Function)
		case <-ctx.Done():
			return ctxError(ctx, a.in.node.Function)
		case <-timeout:
			return errs.E(errs.Timeout, "flow: await timed out after %d ms", ms)
		}
	}
	if mode == "all" {
		for _, p := range ps {
			if err := wait(p); err != nil {
				return nil, err
			}
		}
	} else if len(ps) > 0 {
		any := make(chan struct{}, 1)
		stop := make(chan struct{})
		defer close(stop)
		for _, p := range ps {
			go func() {
				select {
				case <-p.done:
					select {
					case any <- struct{}{}:
					default:
					}
				case <-stop:
				}
			}()
		}
		if err := wait(&pending{done: any}); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, 16*len(ps))
	for _, p := range ps {
		select {
		case <-p.done:
			out = appendResult(out, p.out, p.err)
		default:
			out = host.AppendArgs(out, []byte(codePending), nil)
		}
	}
	return out, nil
}

func appendResult(dst, out []byte, err error) []byte {
	if err != nil {
		return host.AppendArgs(dst, []byte(errs.CodeOf(err)), []byte(errs.MessageOf(err)))
	}
	return host.AppendArgs(dst, nil, out)
}

func (a *attempt) mapCall(hctx context.Context, args [][]byte) ([]byte, error) {
	if len(args) < 2 {
		return nil, errs.E(errs.BadRequest, "flow: map takes [function, concurrency, event...]")
	}
	fn := string(args[0])
	conc, err := strconv.ParseUint(string(args[1]), 10, 31)
	if err != nil {
		return nil, errs.E(errs.BadRequest, "flow: map concurrency must be a decimal number, not %q", args[1])
	}
	events := args[2:]
	n := uint64(len(events))
	if n == 0 {
		return nil, nil
	}
	// Reserve the sequence numbers up front: event i is call base+i
	// whatever order the calls end in, so a retry replays the same ones.
	base := a.seq.Add(n) - n
	// One check for the whole map: a refused map starts no call.
	if err := a.mayInvoke(fn); err != nil {
		return nil, err
	}
	if conc == 0 {
		conc = uint64(a.e.cfg.MapConcurrency)
	}
	workers := min(conc, n)
	outs := make([][]byte, n)
	errsOut := make([]error, n)
	var next atomic.Uint64
	work := func() {
		for {
			i := next.Add(1) - 1
			if i >= n {
				return
			}
			outs[i], errsOut[i] = a.callGranted(hctx, fn, events[i], base+i)
		}
	}
	var wg sync.WaitGroup
	for w := uint64(1); w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
	size := 0
	for _, o := range outs {
		size += len(o) + 4
	}
	out := make([]byte, 0, size)
	for i := range outs {
		out = appendResult(out, outs[i], errsOut[i])
	}
	return out, nil
}

// replayed returns the journaled result of in's call seq if the call is
// the same one (function and payload) that completed before.
func (in *inv) replayed(seq uint64, fn string, payload []byte) *journalEntry {
	if !in.replay {
		return nil
	}
	in.mu.Lock()
	j := in.journal[seq]
	in.mu.Unlock()
	if j == nil || j.Function != fn || j.Hash != callHash(fn, payload) {
		return nil
	}
	return j
}

// journal keeps a completed child call of in, in memory for in's own
// retries and, when in comes from the durable queue, in the store for its
// re-run after a crash.
func (e *Engine) journal(in *inv, seq uint64, child, fn string, payload, out []byte) {
	if !in.replay {
		return
	}
	j := &journalEntry{Child: child, Function: fn, Hash: callHash(fn, payload), Output: out}
	in.mu.Lock()
	if in.journal == nil {
		in.journal = make(map[uint64]*journalEntry)
	}
	in.journal[seq] = j
	in.mu.Unlock()
	if in.durable {
		in.tree.journaled.Store(true)
		e.w.set(true, journalKey(in.node.Root, in.node.ID, seq), encodeJournal(j))
	}
}

// cloneArgs copies args into one allocation.
func cloneArgs(args [][]byte) [][]byte {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(args))
	for i, a := range args {
		buf = append(buf, a...)
		out[i] = buf[len(buf)-len(a) : len(buf) : len(buf)]
	}
	return out
}
