package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/sandbox"
)

// instance is one warm process and the Runtime API server it talks to.
//
// Lock order: output.mu is the only lock held while calling out (to a
// Host for log lines); nothing else is locked under it.
type instance struct {
	m    *module
	name string
	log  *slog.Logger
	dir  string // private writable dir (TMPDIR)
	proc *sandbox.Proc
	ln   net.Listener
	out  *output
	shm  *shmRegion // events and results for SDKs that map it; nil if it could not be made

	next     chan *call    // hands an event to a waiting GET …/next
	quit     chan struct{} // closed by Close
	ready    chan struct{} // closed at the first GET …/next
	initErr  chan []byte   // an init/error body, at most one
	cur      atomic.Pointer[call]
	inv      atomic.Pointer[invChannel] // the function's invocation channel, once open
	busy     atomic.Bool
	reusable atomic.Bool

	oomSeen uint64 // OOM kills counted so far; read on failures only

	// memPeak is the cgroup's peak memory as read at memReadAt, by
	// Invoke (one invocation at a time).
	memPeak   int64
	memReadAt time.Time

	// Freezing between invocations. freezeTimer fires FreezeAfter after
	// the last invocation ended (each end pushes it back, so an instance
	// under steady traffic costs no wakeup). fz orders a freeze against
	// the next invocation's thaw: the timer freezes only an instance that
	// is not busy, under fz; Invoke marks it busy first, then thaws under
	// fz.
	freezeTimer *time.Timer
	fz          sync.Mutex
	frozen      bool
	closing     bool         // set by Close under fz: no freeze after it
	idleSince   atomic.Int64 // when the last invocation ended, in Runtime.since units

	readyOnce, closeOnce sync.Once
	// setup is held while newInstance sets the instance up, and by
	// Close, so that Close never races a start's writes.
	setup sync.Mutex
}

// call is one invocation in flight.
type call struct {
	id       string
	ev       *runtime.Event
	ctx      context.Context
	deadline time.Time

	once   sync.Once
	done   chan struct{}
	output []byte
	err    error
}

// finish records the outcome; the first caller wins (the function's
// response racing the deadline, say).
func (c *call) finish(out []byte, err error) bool {
	won := false
	c.once.Do(func() {
		c.output, c.err = out, err
		close(c.done)
		won = true
	})
	return won
}

// NewInstance starts a sandboxed process and waits until it asks for its
// first event (a cold start). A handler that fails to start, exits, or
// reports an init error gives an init_error with the tail of its output.
//
// With a spare (spare.go), the spare is handed out if it is ready, and a
// new one starts in the background after every instance handed out.
func (m *module) NewInstance(ctx context.Context) (runtime.Instance, error) {
	if in := m.spare.take(); in != nil {
		m.spare.refill(m)
		return in, nil
	}
	in, err := m.newInstance(ctx)
	if err != nil {
		return nil, err
	}
	m.spare.refill(m)
	return in, nil
}

// newInstance starts a sandboxed process and waits until it asks for its
// first event.
func (m *module) newInstance(ctx context.Context) (*instance, error) {
	rt := m.rt
	name := fmt.Sprintf("i%d-%s", rt.seq.Add(1), randHex(4))
	in := &instance{
		m: m, name: name,
		log:     rt.log.With("fn", m.spec.Function, "instance", name),
		dir:     filepath.Join(rt.cfg.BaseDir, name),
		next:    make(chan *call),
		quit:    make(chan struct{}),
		ready:   make(chan struct{}),
		initErr: make(chan []byte, 1),
	}
	if err := rt.track(in); err != nil {
		return nil, err
	}
	// Close may come at any time (Runtime.Close while a spare starts):
	// it waits for the set-up under in.setup, and the wait for the
	// first GET …/next ends with it.
	in.setup.Lock()
	err := in.launch()
	in.setup.Unlock()
	if err == nil {
		err = in.awaitReady(ctx)
	}
	if err != nil {
		_ = in.Close(context.Background())
		return nil, err
	}
	in.setup.Lock()
	defer in.setup.Unlock()
	if in.closed() {
		return nil, errs.E(errs.Unavailable, "process: instance closed while starting")
	}
	in.idleSince.Store(rt.since())
	in.reusable.Store(true)
	if rt.freeze {
		in.freezeTimer = time.AfterFunc(rt.cfg.FreezeAfter, func() { in.freezeIfIdle() })
	}
	return in, nil
}

// launch starts the sandbox, its Runtime API listener and the command.
func (in *instance) launch() error {
	cfg := in.m.rt.cfg
	var err error
	in.out, err = newOutput(in)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "process: output pipes")
	}
	opts := sandbox.Options{
		Name:        in.name,
		MemoryLimit: in.m.spec.MemoryLimit,
		PidsLimit:   cfg.PidsLimit,
		Network:     in.m.spec.Network,
		Stdout:      in.out.stdoutW,
		Stderr:      in.out.stderrW,
		ReadOnly:    in.m.rt.readOnly,
	}
	// Without a region the Go SDK uses the channel over the socket alone.
	if in.shm, err = newShmRegion(); err != nil {
		in.log.Warn("process: no shared memory for invocations", "err", err)
		in.shm = nil
	} else {
		opts.Files = []*os.File{in.shm.file}
	}
	in.proc, err = in.m.rt.sb.Start(opts)
	in.out.closeWriters()
	if in.shm != nil {
		in.shm.closeFile()
	}
	if err != nil {
		return errs.Wrap(errs.Internal, err, "process: start sandbox")
	}
	in.out.start()
	tmp, err := in.tmpDir()
	if err != nil {
		return err
	}
	ln, err := in.proc.Listen()
	if err != nil {
		return errs.Wrap(errs.Internal, err, "process: runtime api listener")
	}
	in.ln = newDemuxListener(ln, in.serveHostConn, in.serveHTTPConn, connLimits{maxConns: cfg.MaxAPIConns, first: cfg.APIHeaderTimeout})
	api := sandbox.RuntimeAPIAddr
	if !in.proc.NewNetwork() {
		api = in.ln.Addr().String()
	}
	env := in.m.env(api, in.name, tmp)
	if in.shm != nil {
		env = append(env, EnvShmFD+"=3")
	}
	if err := in.proc.Exec(in.m.argv, env, in.m.spec.Dir); err != nil {
		return in.initError("could not start: " + err.Error())
	}
	return nil
}

// awaitReady waits until the command asks for its first event (a cold
// start's end), fails, or the instance is closed.
func (in *instance) awaitReady(ctx context.Context) error {
	cfg := in.m.rt.cfg
	timer := time.NewTimer(cfg.InitTimeout)
	defer timer.Stop()
	select {
	case <-in.quit:
		return errs.E(errs.Unavailable, "process: instance closed while starting")
	case <-in.ready:
		return nil
	case body := <-in.initErr:
		return in.initError("reported an init error: " + lambdaErrorText(body))
	case <-in.proc.Done():
		return in.initError("exited at start (" + in.proc.ExitStatus() + ")")
	case <-timer.C:
		return in.initError(fmt.Sprintf("did not ask for an event within %v", cfg.InitTimeout))
	case <-ctx.Done():
		return errs.Wrap(errs.Cancelled, ctx.Err(), "process: cold start cancelled")
	}
}

// tmpDir returns the instance's TMPDIR: /tmp in a root of its own, where
// it is private; else a directory of Mote's that only the instance's user
// may enter.
func (in *instance) tmpDir() (string, error) {
	if in.proc.OwnRoot() {
		return "/tmp", nil
	}
	tmp := filepath.Join(in.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", errs.Wrap(errs.Internal, err, "process: create instance dir")
	}
	_ = os.Chmod(in.dir, 0o711)
	if uid := in.proc.UID(); uid != 0 {
		if err := os.Chown(tmp, uid, uid); err != nil {
			return "", errs.Wrap(errs.Internal, err, "process: chown instance dir")
		}
	}
	return tmp, nil
}

// initError builds the init_error for a failed cold start, with the tail
// of the function's output, which usually says why.
func (in *instance) initError(what string) error {
	if in.closed() { // Close killed it: its output is gone
		return errs.E(errs.Unavailable, "process: instance closed while starting")
	}
	in.proc.Kill()
	select {
	case <-in.proc.Done():
	case <-time.After(time.Second):
	}
	in.out.drain(nil)
	msg := fmt.Sprintf("process: handler %q %s", in.m.spec.Handler, what)
	if tail := in.out.tail(); tail != "" {
		msg += ": " + tail
	}
	return errs.E(errs.InitError, "%s", msg)
}

// Invoke hands ev to the function and waits for its response, its error,
// its death or the deadline. Usage.CPU is the instance cgroup's CPU time
// over the invocation: the whole process tree, not counting time blocked.
func (in *instance) Invoke(ctx context.Context, ev *runtime.Event) (runtime.Result, runtime.Usage, error) {
	if !in.reusable.Load() {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.Unavailable, "process: instance is not reusable")
	}
	if !in.busy.CompareAndSwap(false, true) {
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.Conflict, "process: instance is busy with another invocation")
	}
	defer in.idle()
	in.thaw()

	deadline := ev.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(in.m.spec.Timeout)
	}
	id := ev.ID
	if id == "" {
		id = newID()
	}
	c := &call{id: id, ev: ev, ctx: ctx, deadline: deadline, done: make(chan struct{})}
	cpu0, cpuErr := in.proc.CPU()
	start := time.Now()
	in.out.setCall(c)
	in.cur.Store(c)

	crashed := func() {
		c.finish(nil, errs.E(errs.FunctionError, "process: function exited during the invocation (%s)", in.proc.ExitStatus()))
	}
	timedOut := func() {
		c.finish(nil, errs.E(errs.Timeout, "process: invocation timed out after %v", deadline.Sub(start).Round(time.Millisecond)))
	}
	cancelled := func() { c.finish(nil, errs.Wrap(errs.Cancelled, ctx.Err(), "process: invocation cancelled")) }
	if ch := in.inv.Load(); ch != nil {
		if err := in.invokeChannel(ch, c); err != nil {
			// The exchange broke off: say why, most specific first. The
			// channel is unusable now (a frame may be half read).
			ch.kill()
			switch {
			case ctx.Err() != nil:
				cancelled()
			case !time.Now().Before(deadline):
				timedOut()
			case in.closed():
				c.finish(nil, errs.E(errs.Unavailable, "process: instance closed"))
			case in.exited(100 * time.Millisecond):
				crashed()
			default:
				c.finish(nil, errs.Wrap(errs.FunctionError, err, "process: lost the function's invocation channel"))
			}
			in.reusable.Store(false)
		}
	} else {
		in.invokeNext(ctx, c, crashed, timedOut, cancelled)
	}
	in.cur.Store(nil)

	err := c.err
	if err != nil && errs.CodeOf(err) != errs.FunctionError || err != nil && in.processGone() {
		// Timed out, cancelled or dead: kill the whole tree now so nothing
		// keeps running (or billing) past the invocation.
		in.reusable.Store(false)
		in.proc.Kill()
	}
	// The OOM counter only grows; it is read on failures only, to keep
	// the warm path to two reads of the CPU counter.
	if err != nil {
		if oom := in.proc.OOMKills(); oom > in.oomSeen {
			in.oomSeen = oom
			in.reusable.Store(false)
			in.proc.Kill()
			err = errs.E(errs.OutOfMemory, "process: function exceeded its memory limit of %d MiB", in.m.spec.MemoryLimit>>20)
		}
	}
	var u runtime.Usage
	u.Wall = time.Since(start)
	if cpu1, err1 := in.proc.CPU(); cpuErr == nil && err1 == nil {
		u.CPU = cpu1 - cpu0
	}
	// The instance's peak memory (the REPORT line's Max Memory Used) is
	// a third read of the cgroup: done at most once a second, so that
	// the warm path stays at two.
	if end := start.Add(u.Wall); in.memReadAt.IsZero() || end.Sub(in.memReadAt) >= time.Second {
		in.memPeak, in.memReadAt = in.proc.MemoryPeak(), end
	}
	u.Memory = in.memPeak
	// Lines the function wrote before answering belong to this invocation.
	in.out.drain(c)
	in.out.setCall(nil)
	return runtime.Result{Output: c.output}, u, err
}

// idle marks the instance free, and when, for the freezer.
func (in *instance) idle() {
	in.idleSince.Store(in.m.rt.since())
	in.busy.Store(false)
	if in.freezeTimer != nil {
		in.freezeTimer.Reset(in.m.rt.cfg.FreezeAfter)
	}
}

// thaw lets a frozen instance run again; the caller has marked it busy.
func (in *instance) thaw() {
	in.fz.Lock()
	if in.frozen {
		if err := in.proc.Thaw(); err != nil {
			in.log.Warn("process: thaw", "err", err)
		}
		in.frozen = false
	}
	in.fz.Unlock()
}

// isFrozen reports whether the instance is frozen.
func (in *instance) isFrozen() bool {
	in.fz.Lock()
	defer in.fz.Unlock()
	return in.frozen
}

// freezeIfIdle freezes the instance if it is warm and has been idle for
// FreezeAfter (freezeTimer calls it), and reports whether it did.
func (in *instance) freezeIfIdle() bool {
	cutoff := in.m.rt.since() - int64(in.m.rt.cfg.FreezeAfter)
	if in.busy.Load() || !in.reusable.Load() || in.idleSince.Load() > cutoff {
		return false
	}
	in.fz.Lock()
	defer in.fz.Unlock()
	if in.frozen || in.closing || in.busy.Load() {
		return false
	}
	if err := in.proc.Freeze(); err != nil {
		return false
	}
	in.frozen = true
	return true
}

// invokeNext hands c to the function's waiting GET …/next and waits for
// the outcome. Until the event is handed over, Close ends the wait; after
// it, Close kills the process, which ends it.
func (in *instance) invokeNext(ctx context.Context, c *call, crashed, timedOut, cancelled func()) {
	timer := time.NewTimer(time.Until(c.deadline))
	defer timer.Stop()
	next, quit := in.next, in.quit
	for {
		select {
		case next <- c:
			next, quit = nil, nil
			continue
		case <-c.done:
		case <-in.proc.Done():
			crashed()
		case <-timer.C:
			timedOut()
		case <-ctx.Done():
			cancelled()
		case <-quit:
			c.finish(nil, errs.E(errs.Unavailable, "process: instance closed"))
		}
		return
	}
}

// exited reports whether the sandbox's init exits within d: a function
// that closed its channel is usually on its way out.
func (in *instance) exited(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-in.proc.Done():
		return true
	case <-t.C:
		return false
	}
}

// closed reports whether Close has begun.
func (in *instance) closed() bool {
	select {
	case <-in.quit:
		return true
	default:
		return false
	}
}

// processGone reports whether the sandbox's init has exited.
func (in *instance) processGone() bool {
	select {
	case <-in.proc.Done():
		return true
	default:
		return false
	}
}

// Reusable reports whether the instance can take another invocation.
func (in *instance) Reusable() bool { return in.reusable.Load() && !in.processGone() }

// Memory reports the instance's memory charge (its cgroup's), in bytes.
func (in *instance) Memory() int64 {
	if in.proc == nil {
		return 0
	}
	return in.proc.Memory()
}

// PeakMemory reports the most memory the instance's cgroup has been
// charged, in bytes.
func (in *instance) PeakMemory() int64 {
	if in.proc == nil {
		return 0
	}
	return in.proc.MemoryPeak()
}

// Close kills the process tree, stops the Runtime API server and removes
// the instance's cgroup and directory.
func (in *instance) Close(ctx context.Context) error {
	var err error
	in.closeOnce.Do(func() {
		in.setup.Lock() // not under a start's set-up (see newInstance)
		defer in.setup.Unlock()
		in.reusable.Store(false)
		// A process frozen after Kill's thaw would never die: once closing
		// is set the freezer leaves the instance alone (Kill thaws one
		// frozen before).
		in.fz.Lock()
		in.closing = true
		in.fz.Unlock()
		if in.freezeTimer != nil {
			in.freezeTimer.Stop()
		}
		close(in.quit)
		if in.proc != nil {
			err = in.proc.Close()
		}
		if in.ln != nil {
			in.ln.Close()
		}
		if in.out != nil {
			in.out.close()
		}
		if in.shm != nil {
			in.shm.release()
		}
		_ = os.RemoveAll(in.dir)
		in.m.rt.untrack(in)
	})
	return err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
