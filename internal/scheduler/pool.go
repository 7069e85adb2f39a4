// Package scheduler keeps one pool of warm instances per function version
// and decides, for every invocation, which instance runs it: a warm one if
// any is idle, a new one (a cold start) while the pool is below its
// ceiling, or a place in a bounded queue until one frees up. Idle instances
// above min_warm stop after the idle timeout, so an unused function scales
// to zero; a pool under concurrent load starts one spare instance ahead of
// demand, so the next arrival finds it warm.
//
// The scheduler sees runtimes only through runtime.Module and
// runtime.Instance, so its logic is tested with a harness of fake modules
// and exercised end to end with real wasm in the system tests.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// PoolConfig sizes one pool.
type PoolConfig struct {
	MinWarm      int           // instances kept ready even when idle
	MaxInstances int           // ceiling on live instances
	MaxQueue     int           // invocations that may wait for an instance
	IdleTimeout  time.Duration // idle instances above MinWarm stop after this
	StartTimeout time.Duration // how long a cold start may take
	// NestedHeadroom is how many instances beyond MaxInstances invocations
	// made by functions (depth > 0) may start when the pool is full. A
	// function calling itself synchronously holds an instance per level;
	// without headroom, recursion as deep as MaxInstances would wait
	// forever for an instance its own ancestors hold.
	NestedHeadroom int
}

// Validate checks c and fills defaults.
func (c *PoolConfig) Validate() error {
	if c.MaxInstances <= 0 {
		c.MaxInstances = 16
	}
	if c.MinWarm < 0 || c.MinWarm > c.MaxInstances {
		return errs.E(errs.BadRequest, "scheduler: min_warm %d out of range 0..%d", c.MinWarm, c.MaxInstances)
	}
	if c.MaxQueue < 0 {
		return errs.E(errs.BadRequest, "scheduler: max_queue must not be negative")
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	return nil
}

// Stats is a snapshot of a pool's state and counters.
type Stats struct {
	Live, Idle, Busy, Waiting int
	Invocations, ColdStarts   uint64
	Rejected, Retired         uint64

	// Observed use of this version's instances (usage.go): the most
	// memory one instance held (bytes; 0 when the runtime cannot say),
	// CPU per invocation (mean and most), and the memory limit Mote
	// would set from it (bytes; 0 before any observation).
	PeakMemory        int64
	MeanCPU, MaxCPU   time.Duration
	RecommendedMemory int64
	// Predicted is how many instances the pool keeps live ahead of
	// arrivals (usage.predict); their memory is about Predicted ×
	// PeakMemory.
	Predicted int
}

type slot struct {
	inst     runtime.Instance
	mod      runtime.Module // the module inst was started from
	lastUsed time.Time
	// fresh: started and not yet used. An invocation that waited for a
	// fresh instance (one Prewarm was starting) is a cold start too.
	fresh bool
	init  time.Duration // how long the instance took to start
}

type grant struct {
	s    *slot
	cold bool
	err  error
}

type waiter struct {
	ch chan grant // buffered 1: whoever serves the waiter never blocks
}

// Pool is the set of instances of one function version.
//
// Lock order: Pool.mu is a leaf; nothing is called on a runtime while it is
// held (instances are started and closed outside it).
type Pool struct {
	key  string
	cfg  PoolConfig
	log  *slog.Logger
	now  func() time.Time
	done chan struct{} // closed by Close

	mu sync.Mutex
	// invocations sits by mu: every invocation writes both, and on one
	// cache line they cost one transfer between cores, not two.
	invocations atomic.Uint64
	idle        []*slot // LIFO: the most recently used instance is the warmest
	live        int     // started or starting instances
	busy        int     // instances running an invocation (or promised to a waiter)
	waiters     []*waiter
	closed      bool
	retiring    bool // no longer current: scale to zero when idle
	prewarming  int  // Prewarm starts in flight: one at a time
	predicted   int  // instances the arrival model keeps live (usage.predict)

	// mod is the module new instances start from; Replace changes it.
	// uses counts, per module, the instances started or starting from it:
	// a module Replace took out of service is closed when its count falls
	// to zero, and with the pool otherwise (closeModules).
	mod        runtime.Module
	uses       map[runtime.Module]int
	modsClosed bool

	coldStarts, rejected, retired atomic.Uint64

	onStart func(key string, took time.Duration, err error) // Config.OnStart

	usage usage // what invocations used, for right-sizing (usage.go)
}

func newPool(key string, mod runtime.Module, cfg PoolConfig, log *slog.Logger, now func() time.Time) *Pool {
	return &Pool{key: key, mod: mod, uses: map[runtime.Module]int{}, cfg: cfg, log: log.With("pool", key), now: now, done: make(chan struct{})}
}

// Key returns the pool's function version key.
func (p *Pool) Key() string { return p.key }

// Module returns the loaded module the pool starts instances of.
func (p *Pool) Module() runtime.Module {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mod
}

// Replace makes the pool start new instances from mod (the same version
// loaded again, with a new environment: a rotated secret). Idle instances
// of the module it replaces stop now; busy ones finish their invocation
// and stop instead of going back to the idle list, so every invocation
// that starts after Replace returns runs on an instance of mod. The old
// module is closed once its last instance has stopped. On a closed pool
// Replace closes mod and returns an error.
func (p *Pool) Replace(ctx context.Context, mod runtime.Module) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = mod.Close(ctx)
		return errs.E(errs.Unavailable, "function version %s is shutting down", p.key)
	}
	old := p.mod
	p.mod = mod
	idle := p.idle
	p.idle = nil
	p.live -= len(idle)
	p.serveWaiterLocked()
	unused := p.uses[old] == 0
	if unused {
		delete(p.uses, old)
	}
	p.mu.Unlock()
	p.retired.Add(uint64(len(idle)))
	for _, s := range idle {
		p.closeInstance(s)
	}
	if unused {
		_ = old.Close(ctx)
	}
	return nil
}

// dropUse counts an instance of mod as stopped (or never started), and
// closes mod if Replace took it out of service and this was its last.
func (p *Pool) dropUse(mod runtime.Module) {
	p.mu.Lock()
	p.uses[mod]--
	last := p.uses[mod] <= 0 && mod != p.mod && !p.modsClosed
	if p.uses[mod] <= 0 {
		delete(p.uses, mod)
	}
	p.mu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = mod.Close(ctx)
	}
}

// closeModules closes the pool's module and every replaced one still in
// use, after close: what Remove, Reap and Close do with a dropped pool.
func (p *Pool) closeModules(ctx context.Context) {
	p.mu.Lock()
	p.modsClosed = true
	mods := []runtime.Module{p.mod}
	for m := range p.uses {
		if m != p.mod {
			mods = append(mods, m)
		}
	}
	p.mu.Unlock()
	for _, m := range mods {
		_ = m.Close(ctx)
	}
}

// Invoke runs ev on an instance of the pool and reports whether that
// instance was started for it (a cold start).
func (p *Pool) Invoke(ctx context.Context, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error) {
	s, cold, err := p.acquire(ctx, ev.Depth > 0, ev.Deadline)
	if err != nil {
		return runtime.Result{}, runtime.Usage{}, cold, err
	}
	n := p.invocations.Add(1)
	s.fresh = false
	res, u, err := s.inst.Invoke(ctx, ev)
	p.usage.observe(s.inst, u, n, err != nil)
	if cold {
		u.Init = s.init
	}
	p.release(s, err == nil || s.inst.Reusable())
	return res, u, cold, err
}

// acquire returns an instance for one invocation: idle, new, or queued.
// nested invocations may go NestedHeadroom past the ceiling. A queued
// invocation waits until ctx ends or its deadline (zero: none) passes,
// whichever is first: a runtime that enforces ev.Deadline itself is
// handed a context without one.
func (p *Pool) acquire(ctx context.Context, nested bool, deadline time.Time) (*slot, bool, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, errs.E(errs.Unavailable, "function version %s is shutting down", p.key)
	}
	if n := len(p.idle); n > 0 {
		s := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.busy++
		prewarm := n == 1 && p.busy > 1 && p.live < p.cfg.MaxInstances && !p.retiring
		if prewarm {
			p.live++
		}
		p.mu.Unlock()
		if prewarm {
			go p.startIdle()
		}
		return s, false, nil
	}
	ceiling := p.cfg.MaxInstances
	if nested {
		ceiling += p.cfg.NestedHeadroom
	}
	// An instance Prewarm is starting goes to the first waiter when it is
	// ready: waiting for it beats starting another beside it.
	forPrewarm := p.prewarming > len(p.waiters)
	if p.live < ceiling && !forPrewarm {
		p.live++
		p.busy++
		p.mu.Unlock()
		s, err := p.start(ctx)
		if err != nil {
			p.startFailed(true)
			return nil, true, err
		}
		return s, true, nil
	}
	if len(p.waiters) >= p.cfg.MaxQueue && !forPrewarm {
		p.mu.Unlock()
		p.rejected.Add(1)
		return nil, false, errs.E(errs.Overloaded, "function %s is at its limit of %d instances and %d queued invocations", p.key, p.cfg.MaxInstances, p.cfg.MaxQueue)
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	why := context.DeadlineExceeded
	select {
	case g := <-w.ch:
		return g.s, g.cold, g.err
	case <-ctx.Done():
		why = ctx.Err()
	case <-expired:
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			p.rejected.Add(1)
			return nil, false, errs.Wrap(errs.Overloaded, why, "function "+p.key+": no instance became free before the deadline")
		}
	}
	p.mu.Unlock()
	// Served while we gave up: hand the instance back.
	if g := <-w.ch; g.err == nil {
		p.release(g.s, true)
	}
	return nil, false, errs.Wrap(errs.Overloaded, why, "function "+p.key+": no instance became free before the deadline")
}

// start starts one instance (a cold start).
func (p *Pool) start(ctx context.Context) (*slot, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.StartTimeout)
	defer cancel()
	p.mu.Lock()
	mod := p.mod
	p.uses[mod]++
	p.mu.Unlock()
	began := time.Now()
	inst, err := mod.NewInstance(ctx)
	if p.onStart != nil {
		p.onStart(p.key, time.Since(began), err)
	}
	if err != nil {
		p.dropUse(mod)
		if errs.CodeOf(err) == errs.Internal {
			err = errs.Wrap(errs.InitError, err, "function "+p.key+" failed to start: "+err.Error())
		}
		return nil, err
	}
	p.coldStarts.Add(1)
	return &slot{inst: inst, mod: mod, fresh: true, init: time.Since(began)}, nil
}

// startIdle starts an instance in the background (live already counts it)
// and gives it to a waiter or the idle list.
func (p *Pool) startIdle() {
	s, err := p.start(context.Background())
	if err != nil {
		p.log.Warn("pre-warm failed", "err", err)
		p.startFailed(false)
		return
	}
	p.mu.Lock()
	p.busy++
	p.mu.Unlock()
	p.release(s, true)
}

// release returns an instance after an invocation; reuse false retires it.
func (p *Pool) release(s *slot, reuse bool) {
	p.mu.Lock()
	p.busy--
	if reuse && !p.closed && s.mod == p.mod {
		if len(p.waiters) > 0 {
			w := p.waiters[0]
			p.waiters = p.waiters[1:]
			p.busy++
			p.mu.Unlock()
			w.ch <- grant{s: s, cold: s.fresh}
			return
		}
		s.lastUsed = p.now()
		p.idle = append(p.idle, s)
		p.mu.Unlock()
		return
	}
	p.live--
	p.retired.Add(1)
	p.serveWaiterLocked()
	p.mu.Unlock()
	go p.closeInstance(s)
}

// serveWaiterLocked starts an instance for the first waiter if a slot below
// the ceiling is free. p.mu is held.
func (p *Pool) serveWaiterLocked() {
	if len(p.waiters) == 0 || p.live >= p.cfg.MaxInstances || p.closed {
		return
	}
	w := p.waiters[0]
	p.waiters = p.waiters[1:]
	p.live++
	p.busy++
	go func() {
		s, err := p.start(context.Background())
		if err != nil {
			p.startFailed(true)
		}
		w.ch <- grant{s: s, cold: true, err: err}
	}()
}

// startFailed gives back the place a failed start held (and the busy
// count it was promised under), and lets a waiter try a start of its own.
func (p *Pool) startFailed(busy bool) {
	p.mu.Lock()
	p.live--
	if busy {
		p.busy--
	}
	p.serveWaiterLocked()
	p.mu.Unlock()
}

func (p *Pool) closeInstance(s *slot) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.usage.observeMemory(s.inst)
	if err := s.inst.Close(ctx); err != nil {
		p.log.Debug("closing instance", "err", err)
	}
	p.dropUse(s.mod)
}

// Prewarm starts an instance in the background if the pool has none idle
// and room for one, so that the next invocation finds one ready: for the
// callees of a function that gets traffic. It reports whether it started
// one.
func (p *Pool) Prewarm() bool {
	p.mu.Lock()
	if p.closed || p.retiring || p.prewarming > 0 || len(p.idle) > 0 || len(p.waiters) > 0 || p.live >= p.cfg.MaxInstances {
		p.mu.Unlock()
		return false
	}
	p.live++
	p.prewarming++
	p.mu.Unlock()
	go func() {
		p.startIdle()
		p.mu.Lock()
		p.prewarming--
		p.mu.Unlock()
	}()
	return true
}

// Warm starts instances until n are live (at most MaxInstances), waiting
// for them: a deploy warms the new version before it takes traffic, and
// learns of start failures then.
func (p *Pool) Warm(ctx context.Context, n int) error {
	var errOut error
	for {
		p.mu.Lock()
		if p.closed || p.live >= n || p.live >= p.cfg.MaxInstances {
			p.mu.Unlock()
			return errOut
		}
		p.live++
		p.busy++
		p.mu.Unlock()
		s, err := p.start(ctx)
		if err != nil {
			p.startFailed(true)
			return err
		}
		p.release(s, true)
	}
}

// unretire takes a retiring pool back into service.
func (p *Pool) unretire() {
	p.mu.Lock()
	p.retiring = false
	p.mu.Unlock()
}

// reap stops idle instances past the idle timeout (keeping MinWarm unless
// retiring) and starts instances up to MinWarm. It reports whether the pool
// is retired and empty, so it can be dropped.
func (p *Pool) reap() (empty bool) {
	now := p.now()
	p.mu.Lock()
	p.predicted = min(p.usage.predict(now), p.cfg.MaxInstances)
	keep := max(p.cfg.MinWarm, p.predicted)
	if p.retiring {
		keep = 0
	}
	var stop []*slot
	// idle is LIFO: the oldest are at the front.
	for len(p.idle) > 0 && p.live > keep {
		s := p.idle[0]
		if !p.retiring && now.Sub(s.lastUsed) < p.cfg.IdleTimeout {
			break
		}
		p.idle = p.idle[1:]
		p.live--
		stop = append(stop, s)
	}
	missing := 0
	if !p.retiring && !p.closed && p.live < keep {
		missing = keep - p.live
		p.live += missing
	}
	empty = p.retiring && p.live == 0
	p.mu.Unlock()
	for _, s := range stop {
		p.closeInstance(s)
	}
	for i := 0; i < missing; i++ {
		go p.startIdle()
	}
	return empty
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	st := Stats{Live: p.live, Idle: len(p.idle), Busy: p.busy, Waiting: len(p.waiters), Predicted: p.predicted}
	p.mu.Unlock()
	st.Invocations = p.invocations.Load()
	st.ColdStarts = p.coldStarts.Load()
	st.Rejected = p.rejected.Load()
	st.Retired = p.retired.Load()
	p.usage.fill(&st)
	return st
}

// Memory sums what the pool's idle instances report holding (bytes), for
// instances that implement runtime.MemoryReporter.
func (p *Pool) Memory() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total int64
	for _, s := range p.idle {
		if m, ok := s.inst.(runtime.MemoryReporter); ok {
			total += m.Memory()
		}
	}
	return total
}

// close stops the pool: waiters fail, idle instances stop now, busy ones
// when their invocation ends.
func (p *Pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	idle := p.idle
	p.idle = nil
	p.live -= len(idle)
	ws := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range ws {
		w.ch <- grant{err: errs.E(errs.Unavailable, "function version %s is shutting down", p.key)}
	}
	for _, s := range idle {
		p.closeInstance(s)
	}
}
