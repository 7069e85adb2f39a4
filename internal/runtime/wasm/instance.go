package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strconv"
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
// before cmu (guards closed, the context and cancel of the invocation in
// flight and the stop global, so Close and the deadline can stop it
// without waiting for mu).
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
	ctx     context.Context // of the invocation (or initialisation) in flight
	cancel  context.CancelFunc
	stop    api.MutableGlobal // the live module's stop global, if instrumented
	stopped bool              // stop is set
	// interruptFn is interrupt as a func value made once, so arming it
	// for an invocation does not allocate one.
	interruptFn func()

	reusable atomic.Bool
	memBytes atomic.Int64 // linear memory size, for Memory
}

var (
	_ runtime.Instance       = (*instance)(nil)
	_ runtime.MemoryReporter = (*instance)(nil)
)

// instanceOverhead estimates the host memory an instance holds besides its
// linear memory: wazero's module instance, its stack, the guest state.
const instanceOverhead = 64 << 10

// initReactor instantiates the module and runs _initialize.
func (i *instance) initReactor(ctx context.Context) error {
	m, g := i.m, i.g
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	ctx = experimental.WithMemoryAllocator(withGuest(ctx, g), &g.alloc)
	cfg := m.config.WithStdout(&g.stdout).WithStderr(&g.stderr).WithNanosleep(g.sleepFn)
	g.ctx = ctx // for sleeps (g.sleep); g.end clears it
	unwatch := i.watch(ctx)
	mod, err := i.instantiate(ctx, cfg)
	i.unwatch(unwatch)
	g.end()
	if err != nil {
		cause := i.guestError(ctx, err)
		return errs.Wrap(errs.InitError, err, "function failed to initialise: "+errs.MessageOf(cause))
	}
	i.mod = mod
	i.handle = mod.ExportedFunction(exportHandle)
	i.memBytes.Store(int64(mod.Memory().Size()))
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
	if i.ctx != nil && i.ctx.Err() != nil {
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

// watch makes the end of ctx, the context of the invocation (or
// initialisation) about to run, stop the guest; unwatch undoes it. A
// module that is not instrumented is stopped by wazero instead.
func (i *instance) watch(ctx context.Context) (stopWatching func() bool) {
	i.cmu.Lock()
	i.ctx = ctx
	if i.stopped {
		i.stop.Set(0)
		i.stopped = false
	}
	i.cmu.Unlock()
	if i.m.stopName == "" {
		return nil
	}
	return context.AfterFunc(ctx, i.interruptFn)
}

func (i *instance) unwatch(stopWatching func() bool) {
	if stopWatching != nil {
		stopWatching()
	}
	i.cmu.Lock()
	i.ctx = nil
	i.cmu.Unlock()
}

// interrupt stops the guest if the context of the invocation in flight
// has ended: it sets the stop global, and the guest traps at its next loop
// iteration or call. It runs on its own goroutine (context.AfterFunc); it
// may run late, after its invocation returned, so it checks the context in
// flight now instead of trusting that it is still its own.
func (i *instance) interrupt() {
	i.cmu.Lock()
	defer i.cmu.Unlock()
	if i.ctx == nil || i.ctx.Err() == nil || i.stop == nil {
		return
	}
	i.stop.Set(1)
	i.stopped = true
}

// Invoke runs one invocation.
func (i *instance) Invoke(ctx context.Context, ev *runtime.Event) (runtime.Result, runtime.Usage, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if uint64(len(ev.Payload)) > i.m.limit {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.PayloadTooLarge,
			"event of %d bytes exceeds the function's memory limit", len(ev.Payload))
	}

	deadline := time.Now().Add(i.m.timeout)
	if !ev.Deadline.IsZero() && ev.Deadline.Before(deadline) {
		deadline = ev.Deadline
	}
	i.cmu.Lock()
	if i.closed {
		i.cmu.Unlock()
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.Unavailable, "wasm: instance is closed")
	}
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); ok && !dl.After(deadline) {
		// The caller's deadline comes first (the flow engine sets one for
		// every attempt): a cancel of our own is enough, no second timer.
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	i.cancel = cancel
	i.cmu.Unlock()
	unwatch := i.watch(ctx)
	defer func() {
		i.unwatch(unwatch)
		i.cmu.Lock()
		i.cancel = nil
		i.cmu.Unlock()
		cancel()
	}()

	if i.m.conv == conventionReactor {
		return i.invokeReactor(ctx, ev)
	}
	return i.invokeCommand(ctx, ev, deadline)
}

func (i *instance) invokeReactor(ctx context.Context, ev *runtime.Event) (runtime.Result, runtime.Usage, error) {
	if !i.reusable.Load() {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.Unavailable, "wasm: instance failed earlier and cannot be reused")
	}
	g := i.g
	caller := callerOf(ctx)
	ctx = withGuest(ctx, g)
	g.begin(ctx, ev)
	defer g.end()
	i.stack[0], i.stack[1] = uint64(len(g.meta)), uint64(len(ev.Payload))

	goruntime.LockOSThread()
	start := time.Now()
	cpu0 := meter.ThreadCPU()
	err := i.handle.CallWithStack(ctx, i.stack[:])
	cpu := meter.ThreadCPU() - cpu0
	if caller != nil {
		caller.nested.add(cpu)
	}
	usage := runtime.Usage{CPU: cpu - g.nested.onThisThread(), Wall: time.Since(start)}
	goruntime.UnlockOSThread()

	if err != nil {
		i.memBytes.Store(0)
		i.reusable.Store(false)
		return runtime.Result{}, usage, i.guestError(ctx, err)
	}
	if g.failed {
		if g.fatal {
			i.reusable.Store(false)
		}
		return runtime.Result{}, usage, errs.E(errs.FunctionError, "%s", g.failMsg)
	}
	i.memBytes.Store(int64(i.mod.Memory().Size()))
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
	cfg := m.config.
		WithStdin(bytes.NewReader(ev.Payload)).
		WithStdout(&i.out).
		WithStderr(&g.stderr).
		WithEnv(envInvocation, ev.ID).
		WithEnv(envDeadline, strconv.FormatInt(deadline.UnixMilli(), 10)).
		WithNanosleep(g.sleepFn)
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
	// An instrumented guest stopped by interrupt traps at "unreachable":
	// the context says why it was stopped.
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

// Close stops an invocation in flight (its context is cancelled, which
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
	if i.cancel != nil {
		i.cancel()
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
