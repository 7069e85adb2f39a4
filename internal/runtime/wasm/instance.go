package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/meter"
	"github.com/mote-run/mote/internal/runtime"
)

// instance is one instance of a Module. A reactor's holds its live wazero
// module; a command's only the buffers its invocations reuse.
//
// Lock order: mu (held for a whole Invoke, and by Close to wait for one)
// before cmu (guards closed, the run in flight and the stop global, so
// Close, the deadline and the caller's cancellation can stop it without
// waiting for mu), before a run's own lock (run.mu). The runtime's
// watchdog.mu is taken before cmu.
type instance struct {
	m *Module
	g *guest

	mu     sync.Mutex
	mod    api.Module   // reactor only
	handle api.Function // reactor only
	stack  [2]uint64
	out    boundedBuffer // command only: stdout

	cmu     sync.Mutex
	closed  bool
	cur     *run              // the invocation (or initialisation) in flight
	stop    api.MutableGlobal // the live module's stop global, if instrumented
	stopped bool              // stop is set
	// watched: the instance is in its runtime's watchdog set; idleTicks
	// counts the watchdog's looks that found it idle.
	watched   bool
	idleTicks int

	reusable atomic.Bool
	memBytes atomic.Int64 // linear memory size, for Memory
	peak     atomic.Int64 // the largest linear memory seen, for PeakMemory
}

var (
	_ runtime.Instance       = (*instance)(nil)
	_ runtime.MemoryReporter = (*instance)(nil)

	_ runtime.PeakMemoryReporter = (*instance)(nil)
)

// setMem records the live module's memory size; keep is false once the
// module can no longer be used (it holds nothing for Memory then).
func (i *instance) setMem(n int64, keep bool) {
	if keep {
		i.memBytes.Store(n)
	} else {
		i.memBytes.Store(0)
	}
	if n > i.peak.Load() { // writers hold i.mu
		i.peak.Store(n)
	}
}

// PeakMemory reports the largest linear memory any of the instance's
// modules reached (a command's: any invocation's), in bytes.
func (i *instance) PeakMemory() int64 { return i.peak.Load() }

// instanceOverhead estimates the host memory an instance holds besides its
// linear memory: wazero's module instance, its stack, the guest state.
const instanceOverhead = 64 << 10

// initReactor instantiates the module and runs _initialize.
func (i *instance) initReactor(ctx context.Context) error {
	m, g := i.m, i.g
	now := time.Now()
	r := i.begin(ctx, now, now.Add(m.timeout))
	if r == nil {
		return errs.E(errs.Unavailable, "wasm: instance is closed")
	}
	defer i.end(r)
	ctx = experimental.WithMemoryAllocator(withGuest(r, g), &g.alloc)
	cfg := m.config.WithStdout(&g.stdout).WithStderr(&g.stderr).WithNanosleep(g.sleepFn)
	g.ctx = ctx // for sleeps (g.sleep); g.end clears it
	mod, err := i.instantiate(ctx, cfg)
	g.end()
	if err != nil {
		cause := i.guestError(ctx, err)
		return errs.Wrap(errs.InitError, err, "function failed to initialise: "+errs.MessageOf(cause))
	}
	i.mod = mod
	i.handle = mod.ExportedFunction(exportHandle)
	i.setMem(int64(mod.Memory().Size()), true)
	return nil
}

// instantiate instantiates the module and runs its start function. An
// instrumented module is instantiated without it, so that its stop global
// is reachable (and set at once if ctx has already ended) before any of
// its code runs; the start function then runs as wazero would run it.
func (i *instance) instantiate(ctx context.Context, cfg wazero.ModuleConfig) (api.Module, error) {
	m := i.m
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil || m.stopName == "" {
		return mod, err
	}
	stop, ok := mod.ExportedGlobal(m.stopName).(api.MutableGlobal)
	if !ok {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("wasm: instrumented module lacks its stop global %q", m.stopName)
	}
	i.cmu.Lock()
	i.stop, i.stopped = stop, false
	if i.cur != nil && i.cur.Err() != nil {
		stop.Set(1)
		i.stopped = true
	}
	i.cmu.Unlock()
	if m.start == "" {
		return mod, nil
	}
	if _, err := mod.ExportedFunction(m.start).Call(ctx); err != nil {
		_ = mod.Close(ctx)
		var exit *sys.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == 0 {
				return mod, nil
			}
			return nil, err
		}
		return nil, fmt.Errorf("module[] function[%s] failed: %w", m.start, err)
	}
	return mod, nil
}

// begin makes r, a run of guest code under parent until deadline (or
// parent's, if earlier), the one in flight; end undoes it. What stops a
// run is the runtime's watchdog, which looks at every busy instance each
// watchEvery: a run past its deadline, or whose parent context has ended,
// is stopped then. A run costs no timer and no registration on its
// parent: only the first run after the instance has been idle a while
// (re-)enters the watchdog's set. A module that is not instrumented is
// stopped by wazero instead, through r's Done channel. begin returns nil
// if the instance is closed.
func (i *instance) begin(parent context.Context, now, deadline time.Time) *run {
	if dl, ok := parent.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	r := &run{parent: parent, deadline: deadline}
	i.cmu.Lock()
	if i.closed {
		i.cmu.Unlock()
		return nil
	}
	i.cur = r
	if i.stopped {
		i.stop.Set(0)
		i.stopped = false
	}
	if err := parent.Err(); err != nil {
		i.stopLocked(r, err)
	} else if !now.Before(deadline) {
		i.stopLocked(r, context.DeadlineExceeded)
	}
	watch := !i.watched
	i.watched, i.idleTicks = true, 0
	i.cmu.Unlock()
	if watch {
		i.m.r.watch.add(i)
	}
	return r
}

// end ends r (its context is cancelled, as a derived context's is when
// its function returns).
func (i *instance) end(r *run) {
	i.cmu.Lock()
	i.cur = nil
	i.cmu.Unlock()
	r.cancel(context.Canceled)
}

// check is the watchdog's look at the instance at now. It stops the guest
// if the run in flight has passed its deadline or its parent context has
// ended: it sets the stop global, and the guest traps at its next loop
// iteration or call; it also ends the run's context, which wakes a guest
// asleep or in a host call. It reports whether the instance has been idle
// for watchIdle ticks, and then marks it unwatched: the watchdog drops it,
// and its next run enters again.
func (i *instance) check(now time.Time) (idle bool) {
	i.cmu.Lock()
	defer i.cmu.Unlock()
	r := i.cur
	if r == nil {
		i.idleTicks++
		if i.idleTicks < watchIdle && !i.closed {
			return false
		}
		i.watched = false
		return true
	}
	i.idleTicks = 0
	if r.Err() != nil {
		return false
	}
	if err := r.parent.Err(); err != nil {
		i.stopLocked(r, err)
	} else if !now.Before(r.deadline) {
		i.stopLocked(r, context.DeadlineExceeded)
	}
	return false
}

// stopLocked ends r for the reason why and stops its guest. i.cmu is held.
func (i *instance) stopLocked(r *run, why error) {
	r.cancel(why)
	if i.stop != nil {
		i.stop.Set(1)
		i.stopped = true
	}
}

// Invoke runs one invocation.
func (i *instance) Invoke(ctx context.Context, ev *runtime.Event) (runtime.Result, runtime.Usage, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if uint64(len(ev.Payload)) > i.m.limit {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.PayloadTooLarge,
			"event of %d bytes exceeds the function's memory limit", len(ev.Payload))
	}

	// The earliest of the function's timeout, the event's deadline and
	// the caller's (begin).
	now := time.Now()
	deadline := now.Add(i.m.timeout)
	if !ev.Deadline.IsZero() && ev.Deadline.Before(deadline) {
		deadline = ev.Deadline
	}
	r := i.begin(ctx, now, deadline)
	if r == nil {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.Unavailable, "wasm: instance is closed")
	}
	defer i.end(r)

	if i.m.conv == conventionReactor {
		return i.invokeReactor(r, ev, now)
	}
	return i.invokeCommand(r, ev, r.deadline)
}

func (i *instance) invokeReactor(ctx context.Context, ev *runtime.Event, start time.Time) (runtime.Result, runtime.Usage, error) {
	if !i.reusable.Load() {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.Unavailable, "wasm: instance failed earlier and cannot be reused")
	}
	g := i.g
	var caller *guest
	if ev.Depth > 0 { // a root invocation is nobody's host call
		caller = callerOf(ctx)
	}
	ctx = withGuest(ctx, g)
	g.begin(ctx, ev)
	defer g.end()
	i.stack[0], i.stack[1] = uint64(len(g.meta)), uint64(len(ev.Payload))

	goruntime.LockOSThread()
	cpu0 := meter.ThreadCPU()
	err := i.handle.CallWithStack(ctx, i.stack[:])
	cpu := meter.ThreadCPU() - cpu0
	if caller != nil {
		caller.nested.add(cpu)
	}
	usage := runtime.Usage{CPU: cpu - g.nested.onThisThread(), Wall: time.Since(start)}
	goruntime.UnlockOSThread()

	if err != nil {
		i.setMem(int64(i.mod.Memory().Size()), false)
		i.reusable.Store(false)
		return runtime.Result{}, usage, i.guestError(ctx, err)
	}
	if g.failed {
		if g.fatal {
			i.reusable.Store(false)
		}
		return runtime.Result{}, usage, errs.E(errs.FunctionError, "%s", g.failMsg)
	}
	usage.Memory = int64(i.mod.Memory().Size())
	i.setMem(usage.Memory, true)
	ptr, n := uint32(i.stack[0]>>32), uint32(i.stack[0])
	if n == 0 {
		return runtime.Result{}, usage, nil
	}
	if int64(n) > int64(i.m.r.cfg.MaxOutput) {
		return runtime.Result{}, usage, errs.E(errs.FunctionError,
			"output too large: %d bytes, limit %d", n, i.m.r.cfg.MaxOutput)
	}
	out, ok := i.mod.Memory().Read(ptr, n)
	if !ok {
		i.reusable.Store(false)
		return runtime.Result{}, usage, errs.E(errs.FunctionError, "function returned a result outside its memory")
	}
	return runtime.Result{Output: bytes.Clone(out)}, usage, nil
}

func (i *instance) invokeCommand(ctx context.Context, ev *runtime.Event, deadline time.Time) (runtime.Result, runtime.Usage, error) {
	m, g := i.m, i.g
	caller := callerOf(ctx)
	ctx = withGuest(ctx, g)
	g.begin(ctx, ev)
	defer g.end()
	i.out = boundedBuffer{buf: i.out.buf[:0], max: m.r.cfg.MaxOutput}
	stdin := ev.Payload
	var cgiEnv []string
	if m.spec.CGI {
		var err error
		if cgiEnv, stdin, err = runtime.DecodeCGI(ev.Payload); err != nil {
			return runtime.Result{}, runtime.Usage{}, errs.Wrap(errs.BadRequest, err, "wasm: a WAGI function's event is not a CGI frame")
		}
	}
	cfg := m.config.
		WithStdin(bytes.NewReader(stdin)).
		WithStdout(&i.out).
		WithStderr(&g.stderr).
		WithEnv(envInvocation, ev.ID).
		WithEnv(envDeadline, strconv.FormatInt(deadline.UnixMilli(), 10)).
		WithNanosleep(g.sleepFn)
	for _, kv := range cgiEnv {
		k, v, _ := strings.Cut(kv, "=")
		cfg = cfg.WithEnv(k, v)
	}
	ictx := experimental.WithMemoryAllocator(ctx, &g.alloc)
	g.alloc.mem = nil

	// The whole instantiation is the command's run: its runtime's start-up
	// is work done for this invocation alone, so it is billed.
	goruntime.LockOSThread()
	start := time.Now()
	cpu0 := meter.ThreadCPU()
	mod, err := i.instantiate(ictx, cfg)
	cpu := meter.ThreadCPU() - cpu0
	if caller != nil {
		caller.nested.add(cpu)
	}
	usage := runtime.Usage{CPU: cpu - g.nested.onThisThread(), Wall: time.Since(start)}
	goruntime.UnlockOSThread()
	if lm := g.alloc.mem; lm != nil {
		i.setMem(int64(len(lm.buf)), false) // before Close frees it
	}
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	i.cmu.Lock()
	i.stop, i.stopped = nil, false // closed with the module
	i.cmu.Unlock()
	if err != nil {
		err = i.guestError(ctx, err)
	}
	g.alloc.mem = nil // closed with the module
	if err != nil {
		return runtime.Result{}, usage, err
	}
	if i.out.overflow {
		return runtime.Result{}, usage, errs.E(errs.FunctionError,
			"output too large: more than %d bytes", m.r.cfg.MaxOutput)
	}
	var out []byte
	if len(i.out.buf) > 0 {
		out = bytes.Clone(i.out.buf)
	}
	if cap(i.out.buf) > 64<<10 {
		i.out.buf = nil // don't keep a large result's buffer while idle
	}
	return runtime.Result{Output: out}, usage, nil
}

// guestError classifies an error from running guest code.
func (i *instance) guestError(ctx context.Context, err error) error {
	oom := i.g.alloc.mem != nil && i.g.alloc.mem.refused
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch code := exit.ExitCode(); code {
		case sys.ExitCodeDeadlineExceeded:
			return errs.Wrap(errs.Timeout, err, "function timed out")
		case sys.ExitCodeContextCanceled:
			return errs.Wrap(errs.Cancelled, err, "invocation was cancelled")
		default:
			if oom {
				return i.oomError(err)
			}
			msg := fmt.Sprintf("function exited with status %d", code)
			if s := i.g.stderr.summary(); s != "" {
				msg += ": " + s
			}
			return errs.Wrap(errs.FunctionError, err, msg)
		}
	}
	if oom {
		return i.oomError(err)
	}
	// An instrumented guest stopped by the watchdog or Close traps at
	// "unreachable": the context says why it was stopped.
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return errs.Wrap(errs.Timeout, err, "function timed out")
	case context.Canceled:
		return errs.Wrap(errs.Cancelled, err, "invocation was cancelled")
	}
	var e *errs.Error
	if errors.As(err, &e) { // a trap raised by a host function
		return errs.Wrap(e.Code, err, "function trapped: "+e.Message)
	}
	return errs.Wrap(errs.FunctionError, err, "function trapped: "+firstLine(err.Error()))
}

func (i *instance) oomError(err error) error {
	return errs.Wrap(errs.OutOfMemory, err,
		fmt.Sprintf("function ran out of memory (limit %d MiB)", i.m.limit>>20))
}

// Reusable reports whether the instance can take another invocation. A
// command's always can (each invocation is a fresh instance); a reactor's
// cannot after a trap, a panic, a timeout or an exit.
func (i *instance) Reusable() bool {
	i.cmu.Lock()
	closed := i.closed
	i.cmu.Unlock()
	return !closed && i.reusable.Load()
}

// Memory reports the instance's linear memory plus an estimate of wazero's
// own state; a command holds no linear memory between invocations.
func (i *instance) Memory() int64 {
	i.cmu.Lock()
	defer i.cmu.Unlock()
	if i.closed {
		return 0
	}
	return i.memBytes.Load() + instanceOverhead
}

// Close stops an invocation in flight (its run is cancelled, which
// sets the guest's stop global, or makes wazero stop it), waits for it to return, then releases the
// instance. The module's memory is unmapped only then, never under a
// running guest.
func (i *instance) Close(ctx context.Context) error {
	i.cmu.Lock()
	if i.closed {
		i.cmu.Unlock()
		return nil
	}
	i.closed = true
	if i.cur != nil {
		i.stopLocked(i.cur, context.Canceled)
	}
	i.cmu.Unlock()

	i.mu.Lock()
	i.closeModule()
	i.mu.Unlock()
	i.m.forget(i)
	return nil
}

func (i *instance) closeModule() {
	if i.mod != nil {
		_ = i.mod.Close(context.Background())
		i.mod, i.handle = nil, nil
	}
	i.cmu.Lock()
	i.stop, i.stopped = nil, false
	i.cmu.Unlock()
	i.g.alloc.mem = nil
}

// run is the context of one run of guest code in an instance (an
// invocation, or a reactor's initialisation): its parent's values, its
// deadline, and an end that the instance reports (the watchdog, Close,
// end). It stands in for the context.WithDeadline and context.AfterFunc
// an invocation used to make: its Done channel is made only if something
// waits on it (a sleeping guest, a host call, wazero's close-on-done), and
// the runtime's watchdog stands in for a timer per invocation.
type run struct {
	parent   context.Context
	deadline time.Time

	mu    sync.Mutex
	err   error
	done  chan struct{}
	funcs []*afterRun
}

var _ context.Context = (*run)(nil)

type afterRun struct{ f func() }

// closedChan is the Done channel of a run that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (r *run) Deadline() (time.Time, bool) { return r.deadline, true }

func (r *run) Value(key any) any { return r.parent.Value(key) }

func (r *run) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		if r.err != nil {
			r.done = closedChan
		} else {
			r.done = make(chan struct{})
		}
	}
	return r.done
}

func (r *run) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// AfterFunc arranges for f to run on its own goroutine once r ends; the
// context package uses it for contexts derived from r, instead of a
// goroutine per derived context.
func (r *run) AfterFunc(f func()) (stop func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterRun{f: f}
	r.funcs = append(r.funcs, a)
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for k, x := range r.funcs {
			if x == a {
				r.funcs = append(r.funcs[:k], r.funcs[k+1:]...)
				return true
			}
		}
		return false
	}
}

// cancel ends r with err, unless it has ended already.
func (r *run) cancel(err error) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	funcs := r.funcs
	r.funcs = nil
	r.mu.Unlock()
	for _, a := range funcs {
		go a.f()
	}
}
