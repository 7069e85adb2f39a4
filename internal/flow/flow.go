// Package flow is Mote's invocation flow engine. Every invocation, from
// outside or from inside a function, goes through an Engine: it gets an id
// and a place in a call tree (parent, root, depth), runs under the limits
// that stop runaway flows (depth, descendants per root, concurrency per
// function), is retried by its function's policy, and is recorded in the
// store with its CPU and billed time. Functions compose others through the
// host ops the Engine serves (invoke, invoke_async, await, map; see
// docs/flows.md); completed child results are journaled so that a retried
// parent replays them instead of running its children again. Async
// invocations from outside wait in a durable queue in Pebble and end, after
// their last attempt, in a dead-letter list that can be re-driven.
//
// Below the Engine is a Runner (the scheduler), which runs one attempt on a
// warm instance; the Engine never looks inside a function.
package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/meter"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/store"
)

// Runner runs one attempt of one invocation on a warm instance. The
// scheduler implements it. ev.Host is set by the Engine; the Runner hands
// ev to the instance unchanged. Usage must be the function's own: the CPU
// it used, not time it waited on host calls.
type Runner interface {
	Run(ctx context.Context, fn string, ev *runtime.Event) (res runtime.Result, u runtime.Usage, cold bool, version string, err error)
}

// Functions resolves per-function flow settings from the functions'
// configuration.
type Functions interface {
	// Policy returns fn's settings, or an *errs.Error with code not_found
	// for an unknown function.
	Policy(fn string) (Policy, error)
}

// Grants is an optional capability of Functions: which functions a
// function may call. When Config.Functions implements it, every invoke,
// invoke_async and map a function makes is checked before the call starts
// (and before a journaled result is replayed), with the caller's grants as
// they are at the time of the call, so a redeploy that removes a grant
// takes effect at the next call. Without it every call is allowed.
// Destinations (Policy.OnSuccess, OnFailure) are not checked: they are set
// by whoever deployed the function, not chosen by its code.
type Grants interface {
	// MayInvoke returns nil if caller may invoke callee, or an
	// *errs.Error with code forbidden that names both.
	MayInvoke(caller, callee string) error
}

// Policy is how the Engine runs one function. The zero value is usable:
// one attempt, no cap, the Engine's default timeout.
type Policy struct {
	// MaxAttempts is how many times an invocation is tried in all; 0 is 1.
	MaxAttempts int
	Backoff     Backoff
	// RetryOn lists the error codes worth another attempt; nil means
	// function_error and timeout.
	RetryOn []errs.Code
	// OnSuccess and OnFailure name destination functions that an async
	// invocation's result or final error is sent to, as a new async
	// invocation (see docs/flows.md for the event).
	OnSuccess, OnFailure string
	// Concurrency caps how many attempts of the function run at once; 0 is
	// no cap. A call over the cap fails with limit_exceeded; async
	// invocations from the queue wait for a slot instead.
	Concurrency int
	// Timeout bounds each attempt; 0 is Config.DefaultTimeout.
	Timeout time.Duration
	// Memory is the function's memory size in bytes, for the ledger's
	// wall-clock GB-s comparison.
	Memory int64
	// RunnerDeadline says that the Runner ends an attempt of this
	// function by itself at ev.Deadline, and when its context ends (the
	// wasm runtime does, with one watchdog that looks at every busy
	// instance each millisecond); whatever it returns once the deadline
	// has passed is a timeout. The Engine then hands the Runner the
	// invocation's own context instead of deriving a timed one per
	// attempt (a context, a timer and their registrations on the hot
	// path); the attempt's context, which children and awaits use, is
	// made when first needed. The system sets it from the runtime's
	// runtime.Traits (EnforcesDeadline).
	RunnerDeadline bool
	// LazyListing says that the function's runtime shows an invocation's
	// id to nothing but the function, which can pass it on only through
	// host calls (a wasm guest: its logs are host calls too). A root
	// invocation of it is then listed as running (what Get shows of an
	// invocation before its record is written) from its first host call
	// on, not from its start: until then nobody can know its id, and most
	// invocations never make one, so they skip the listing's map and lock.
	// The system sets it from the runtime's runtime.Traits
	// (HostOnlyEgress).
	LazyListing bool
}

// Backoff is the delay before retry n (n = 1 after the first attempt):
// min(Max, Base·2^(n-1)), less a random fraction up to Jitter of it.
type Backoff struct {
	Base   time.Duration // default 100 ms
	Max    time.Duration // default 30 s
	Jitter float64       // 0..1; 0 is no jitter
}

func (b Backoff) delay(n int) time.Duration {
	base, maxd := b.Base, b.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxd <= 0 {
		maxd = 30 * time.Second
	}
	d := base
	for i := 1; i < n && d < maxd; i++ {
		d *= 2
	}
	d = min(d, maxd)
	if b.Jitter > 0 {
		d -= time.Duration(float64(d) * min(b.Jitter, 1) * rand.Float64())
	}
	return d
}

var defaultRetryOn = []errs.Code{errs.FunctionError, errs.Timeout}

func (p *Policy) retryable(c errs.Code) bool {
	on := p.RetryOn
	if on == nil {
		on = defaultRetryOn
	}
	return slices.Contains(on, c)
}

// sleep waits d on the engine's clock or until ctx is done (returning
// ctx.Err()).
func (e *Engine) sleep(ctx context.Context, d time.Duration) error {
	t := e.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// now reads the engine's clock; with the system clock, directly.
func (e *Engine) now() time.Time {
	if e.sysClock {
		return time.Now()
	}
	return e.cfg.Clock.Now()
}

// Config configures an Engine. Runner, Functions and DB are required.
type Config struct {
	Runner    Runner
	Functions Functions
	DB        *store.DB
	// Ledger receives one record per attempt. Nil: the Engine opens one on
	// DB and closes it with itself.
	Ledger *meter.Ledger

	// Fallback serves the host ops that are not flow ops (kv, log, ...)
	// for one invocation; it is called at most once per attempt, on the
	// first such op. Nil: those ops fail with bad_request.
	Fallback func(Ref) host.Host
	// OnRootDone is called once a root invocation and every invocation in
	// its tree have ended (the BaaS layer drops the tree's ephemeral data),
	// for trees in which Fallback was asked for a host op (or that came
	// from the durable queue, whose earlier runs may have): per-tree data
	// can only be made through Fallback, so a tree that never used it,
	// the common case, costs the services nothing when it ends.
	OnRootDone func(root string)
	// OnAttempt, if set, is called when each attempt of every invocation
	// (root, nested, async, triggered) ends, on the invoking goroutine:
	// the platform writes the invocation's REPORT log line from it.
	OnAttempt func(*Attempt)

	// Observer is told of every invocation's end and every host call;
	// Tracer makes them spans (observe.go). Nil: neither.
	Observer Observer
	Tracer   trace.Tracer

	// Clock is the time source of ids, node timestamps, retry backoff
	// and retention (default: the system clock), so tests drive them
	// without sleeping. Attempt deadlines and wall time are the system
	// clock's: runtimes enforce deadlines against it.
	Clock  clock.Clock
	Logger *slog.Logger // default: discard

	MaxDepth       int           // deepest child allowed (root is 0); default 16
	MaxDescendants int           // invocations per tree below the root; default 10,000
	DefaultTimeout time.Duration // per attempt; default 60 s
	Workers        int           // async queue workers; default 16
	MapConcurrency int           // map's concurrency when the caller gives 0; default 256
	TreeLimit      int           // most nodes Get returns; default 10,000
	// Retention is how long invocation records (call trees) are kept;
	// older ones are deleted by a sweeper. Default 7 days; negative keeps
	// them forever. Dead letters and usage are not affected.
	Retention time.Duration
}

// Validate fills in defaults and rejects a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Runner == nil:
		return errs.E(errs.BadRequest, "flow: Config.Runner is required")
	case c.Functions == nil:
		return errs.E(errs.BadRequest, "flow: Config.Functions is required")
	case c.DB == nil:
		return errs.E(errs.BadRequest, "flow: Config.DB is required")
	case c.MaxDepth < 0 || c.MaxDescendants < 0 || c.DefaultTimeout < 0 || c.Workers < 0 || c.MapConcurrency < 0 || c.TreeLimit < 0:
		return errs.E(errs.BadRequest, "flow: negative limit in Config")
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MaxDescendants == 0 {
		c.MaxDescendants = 10_000
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = 60 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.MapConcurrency == 0 {
		c.MapConcurrency = 256
	}
	if c.TreeLimit == 0 {
		c.TreeLimit = 10_000
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	return nil
}

// Engine runs invocations as flows. Create it with New, call Start to run
// the async queue, and Close to stop.
type Engine struct {
	cfg       Config
	log       *slog.Logger
	w         *writer
	ledger    *meter.Ledger
	ownLedger bool
	grants    Grants // Config.Functions, if it implements Grants

	slots sync.Map // function name → *atomic.Int64, attempts running
	live  liveSet  // invocations running whose records are written at the end

	// base is cancelled by Close; async work (the queue, invoke_async
	// children) runs under it.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // queue workers and async children

	q queue

	closed atomic.Bool

	// sysClock: Config.Clock is the system clock, so the hot path may
	// reuse a time.Now it took for another purpose instead of asking the
	// Clock again.
	sysClock bool
}

// DefaultMaxDepth is the recursion depth limit unless Config says otherwise.
const DefaultMaxDepth = 16

// DefaultRetention is how long invocation records are kept unless Config
// says otherwise.
const DefaultRetention = 7 * 24 * time.Hour

// Request is one invocation from outside (the gateway, the CLI).
type Request struct {
	Function string
	Payload  []byte
	// Async queues the invocation durably and returns at once with its id
	// and status queued.
	Async bool
}

// Outcome is what an invocation did. For an async request only ID and
// Status (queued) are set.
type Outcome struct {
	ID       string
	Status   Status
	Output   []byte
	CPU      time.Duration // summed over attempts, the function's own
	Wall     time.Duration // start to end, retries and waits included
	BilledMs int64
	Cold     bool // the last attempt started a new instance
	Version  string
	Attempts int
}

// New returns an Engine. It does not start the async queue: call Start.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, ledger: cfg.Ledger}
	e.grants, _ = cfg.Functions.(Grants)
	_, e.sysClock = cfg.Clock.(clock.System)
	if e.ledger == nil {
		l, err := meter.NewLedger(cfg.DB, meter.LedgerConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		e.ledger, e.ownLedger = l, true
	}
	e.base, e.cancel = context.WithCancel(context.Background())
	e.w = newWriter(cfg.DB, cfg.Logger)
	e.q.init()
	return e, nil
}

// Ledger returns the usage ledger the Engine records to.
func (e *Engine) Ledger() *meter.Ledger { return e.ledger }

// Close stops the queue workers and every async invocation still running
// (queued work stays queued and runs after the next Start), commits the
// in-flight records and closes the ledger if the Engine opened it.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	e.cancel()
	e.q.close()
	e.wg.Wait()
	e.w.close()
	if e.ownLedger {
		return e.ledger.Close()
	}
	return nil
}

// tree is the shared state of one call tree.
type tree struct {
	id          string
	descendants atomic.Int64 // invocations created below the root
	live        atomic.Int64 // invocations in the tree that have not ended
	journaled   atomic.Bool  // journal entries were written to the store
	hosted      atomic.Bool  // an attempt in the tree asked Fallback for an op
}

// inv is one invocation while it runs (across all its attempts).
type inv struct {
	node    Node // owned by the goroutine running the invocation
	payload []byte
	pol     Policy
	tree    *tree
	up      *inv // the parent, nil at a root
	max     int  // attempts allowed in this run
	// ended is when the last attempt ended (zero while one runs or a
	// backoff waits): the invocation's end, unless more comes after.
	ended time.Time
	out   *Outcome // where finish writes the outcome; nil: a new one
	first *attempt // zeroed memory for the first attempt, if allocated with in

	durable bool        // from the async queue: journal persisted, queue item to settle
	listed  atomic.Bool // in Engine.live (list)
	replay  bool        // child results journaled, since this invocation may run again

	span trace.Span // the invocation's, with Config.Tracer (observe.go)

	// cancel stops an async child's context (nil otherwise).
	cancel context.CancelFunc

	mu       sync.Mutex
	journal  map[uint64]*journalEntry
	kids     []*inv // async children started; cancelled if this invocation fails
	finished bool
}

func (e *Engine) newInv(t *tree, up *inv, fn string, pol Policy, payload []byte) *inv {
	in := &inv{}
	e.initInv(in, t, up, newIDAt(e.now()), fn, &pol, payload)
	return in
}

// initInv fills in, which is freshly allocated (zero): field by field,
// since assigning a whole Node or inv literal would write all of it again.
func (e *Engine) initInv(in *inv, t *tree, up *inv, id, fn string, pol *Policy, payload []byte) {
	in.payload, in.pol, in.tree, in.up, in.max = payload, *pol, t, up, max(pol.MaxAttempts, 1)
	in.node.ID, in.node.Function, in.node.Root = id, fn, t.id
	if up != nil {
		in.node.Parent = up.node.ID
		in.node.Depth = up.node.Depth + 1
	}
	in.replay = in.max > 1
	// The tree is live until this invocation ends (finish releases it);
	// counting here, before any goroutine starts, keeps a parent that ends
	// first from ending the tree under a child about to run.
	t.live.Add(1)
}

// root is a root invocation, its tree, its first attempt and its outcome,
// allocated together.
type root struct {
	t   tree
	in  inv
	a   attempt
	out Outcome
}

// Invoke runs a root invocation. A synchronous request returns when it
// ends: the Outcome (nil only if the request was rejected before it got an
// id) and its error, an *errs.Error. An async request returns once the
// invocation is durably queued.
func (e *Engine) Invoke(ctx context.Context, req Request) (*Outcome, error) {
	if e.closed.Load() {
		return nil, errs.E(errs.Unavailable, "flow: engine is closed")
	}
	if req.Function == "" {
		return nil, errs.E(errs.BadRequest, "flow: function name is empty")
	}
	pol, err := e.cfg.Functions.Policy(req.Function)
	if err != nil {
		return nil, err
	}
	if req.Async {
		id, err := e.enqueue(ctx, req.Function, req.Payload)
		if err != nil {
			return nil, err
		}
		return &Outcome{ID: id, Status: StatusQueued}, nil
	}
	now := e.now()
	id := newIDAt(now)
	r := &root{t: tree{id: id}}
	e.initInv(&r.in, &r.t, nil, id, req.Function, &pol, req.Payload)
	r.in.out, r.in.first = &r.out, &r.a
	if e.sysClock {
		r.in.node.Start = now // one clock read for the id and the start
	}
	return e.run(ctx, &r.in)
}

// child creates a child invocation of parent, enforcing the tree limits.
func (e *Engine) child(parent *inv, fn string, payload []byte) (*inv, error) {
	if fn == "" {
		return nil, errs.E(errs.BadRequest, "flow: function name is empty")
	}
	if d := parent.node.Depth + 1; d > e.cfg.MaxDepth {
		return nil, errs.E(errs.LimitExceeded, "flow: calling %s at depth %d exceeds the depth limit of %d (runaway recursion?)", fn, d, e.cfg.MaxDepth)
	}
	if n := parent.tree.descendants.Add(1); n > int64(e.cfg.MaxDescendants) {
		return nil, errs.E(errs.LimitExceeded, "flow: call tree %s has used its budget of %d invocations; %s was not started", parent.tree.id, e.cfg.MaxDescendants, fn)
	}
	pol, err := e.cfg.Functions.Policy(fn)
	if err != nil {
		return nil, err
	}
	return e.newInv(parent.tree, parent, fn, pol, payload), nil
}

// run runs in through all its attempts and records it.
func (e *Engine) run(ctx context.Context, in *inv) (*Outcome, error) {
	n := &in.node
	if n.Start.IsZero() {
		n.Start = e.cfg.Clock.Now()
	}
	n.Status = StatusRunning
	ctx = e.traceStart(ctx, in)
	// A record is written once, when the invocation ends (a child's with
	// its place under the parent); while it runs, Get shows it from
	// memory. Invocations are the hot path, and one record instead of two
	// halves the bytes each costs the store. Only a durable (queued) root
	// is written at the start too, so that a restart finds it.
	child := n.Parent != ""
	early := !child && in.durable
	switch {
	case early:
		e.putNode(in, false)
	case child || !in.pol.LazyListing:
		e.list(in)
	}

	var out []byte
	var err error
	for try := 1; ; try++ {
		n.Attempts++
		out, err = e.attempt(ctx, in)
		if err == nil || try >= in.max || ctx.Err() != nil || !in.pol.retryable(errs.CodeOf(err)) {
			break
		}
		if early {
			e.putNode(in, false)
		}
		in.ended = time.Time{}
		if serr := e.sleep(ctx, in.pol.Backoff.delay(try)); serr != nil {
			err = ctxError(ctx, n.Function)
			break
		}
	}
	return e.finish(in, out, err)
}

// attempt runs one attempt of in.
func (e *Engine) attempt(ctx context.Context, in *inv) ([]byte, error) {
	n := &in.node
	release, err := e.acquire(ctx, in)
	if err != nil {
		return nil, err
	}
	defer release()

	timeout := in.pol.Timeout
	if timeout <= 0 {
		timeout = e.cfg.DefaultTimeout
	}
	// With the system clock, the first attempt of an invocation that is
	// not from the queue (whose start is when it was queued) starts when
	// the invocation did: a clock read saved (time.Now measured 63 ns on
	// the development machine).
	var start time.Time
	if e.sysClock && n.Attempts == 1 && !in.durable {
		start = n.Start
	} else {
		start = time.Now()
	}
	a := in.first
	if a != nil {
		in.first = nil
	} else {
		a = new(attempt)
	}
	a.e, a.in, a.parent, a.deadline = e, in, ctx, start.Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(a.deadline) {
		a.deadline = dl
	}
	rctx := ctx // what the Runner runs under
	if !in.pol.RunnerDeadline {
		rctx = a.context()
	}
	a.ev = runtime.Event{
		ID:       n.ID,
		Root:     n.Root,
		Parent:   n.Parent,
		Depth:    n.Depth,
		Deadline: a.deadline,
		Payload:  in.payload,
		Host:     a,
	}
	res, u, cold, version, err := e.cfg.Runner.Run(rctx, n.Function, &a.ev)
	if u.Wall <= 0 {
		u.Wall = time.Since(start)
	}
	if err != nil {
		err = classify(err, a, ctx, n.Function, timeout)
	}
	a.end()

	// Only the function's own usage is added: children are nodes of their
	// own, billed to themselves.
	n.CPUMicros += u.CPU.Microseconds()
	n.BilledMs += meter.BilledMs(u.CPU)
	n.Cold = cold
	if version != "" {
		n.Version = version
	}
	// Measured, not start plus u.Wall: the runtime's wall time is the
	// instance's own and leaves out the Runner's waits (a pool's queue, a
	// cold start), which the invocation's wall time includes.
	in.ended = e.cfg.Clock.Now()
	fn, _, _ := strings.Cut(n.Function, "@") // a pinned version's usage is its function's
	e.ledger.Record(meter.Record{
		Function: fn,
		At:       in.ended,
		CPU:      u.CPU,
		Wall:     u.Wall,
		Memory:   in.pol.Memory,
		Failed:   err != nil,
	})
	if e.cfg.OnAttempt != nil {
		// In the attempt, which is allocated already: no allocation more.
		a.report = Attempt{
			ID: n.ID, Function: n.Function, Version: n.Version, Try: n.Attempts,
			Start: start, End: in.ended, Usage: u, Memory: in.pol.Memory,
			Cold: cold, Err: err, Output: res.Output,
		}
		e.cfg.OnAttempt(&a.report)
		a.report = Attempt{}
	}
	if err != nil {
		in.abortKids()
		// A failed function's own error payload (a process function's
		// {"errorMessage", "errorType", "stackTrace"}) goes with the
		// error: the Lambda Invoke API returns it as Lambda does.
		return res.Output, err
	}
	return res.Output, nil
}

// Attempt is how one attempt of an invocation ended, for Config.OnAttempt.
// It is valid only during the call.
type Attempt struct {
	ID, Function, Version string
	Try                   int // 1 for the first attempt
	Start, End            time.Time
	Usage                 runtime.Usage // Init is set on a cold start
	Memory                int64         // the configured limit, bytes
	Cold                  bool
	Err                   error  // the failure, classified (timeout, out_of_memory, ...)
	Output                []byte // with Err: the function's own error payload, if any
}

// timedOut reports whether the attempt ended at its own deadline: its
// context says so, or (a Runner that keeps the deadline itself, with no
// context made) the deadline has passed. Whatever the Runner reported
// then (the scheduler's overloaded for a queue wait the deadline cut
// short), it is a timeout, as it is where the context keeps the deadline.
func (a *attempt) timedOut() bool {
	a.ctxMu.Lock()
	actx := a.ctx
	a.ctxMu.Unlock()
	if actx != nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return true
	}
	return a.in.pol.RunnerDeadline && !time.Now().Before(a.deadline)
}

// acquire takes a concurrency slot for in's function.
func (e *Engine) acquire(ctx context.Context, in *inv) (func(), error) {
	limit := int64(in.pol.Concurrency)
	if limit <= 0 {
		return func() {}, nil
	}
	v, ok := e.slots.Load(in.node.Function)
	if !ok {
		v, _ = e.slots.LoadOrStore(in.node.Function, new(atomic.Int64))
	}
	c := v.(*atomic.Int64)
	for {
		if c.Add(1) <= limit {
			return func() { c.Add(-1) }, nil
		}
		c.Add(-1)
		if !in.durable {
			return nil, errs.E(errs.LimitExceeded, "flow: %s is at its concurrency cap of %d", in.node.Function, limit)
		}
		// Queued work waits for a slot rather than failing.
		if err := e.sleep(ctx, time.Millisecond); err != nil {
			return nil, ctxError(ctx, in.node.Function)
		}
	}
}

// classify gives a Runner's error its code: the attempt's own deadline is a
// timeout, the caller's cancellation or deadline wins over what the
// function reported, and an error without a code is internal.
func classify(err error, a *attempt, ctx context.Context, fn string, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctxError(ctx, fn)
	}
	if a.timedOut() {
		return errs.Wrap(errs.Timeout, err, fmt.Sprintf("flow: %s timed out after %v", fn, timeout))
	}
	var ee *errs.Error
	if errors.As(err, &ee) {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errs.Wrap(errs.Timeout, err, fmt.Sprintf("flow: %s timed out", fn))
	case errors.Is(err, context.Canceled):
		return errs.Wrap(errs.Cancelled, err, fmt.Sprintf("flow: %s was cancelled", fn))
	}
	return errs.Wrap(errs.Internal, err, "")
}

func ctxError(ctx context.Context, fn string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errs.Wrap(errs.Timeout, ctx.Err(), fmt.Sprintf("flow: %s stopped: its caller's deadline passed", fn))
	}
	return errs.Wrap(errs.Cancelled, ctx.Err(), fmt.Sprintf("flow: %s stopped: its caller was cancelled", fn))
}

// finish records in's end and settles what depends on it.
func (e *Engine) finish(in *inv, out []byte, err error) (*Outcome, error) {
	n := &in.node
	if in.durable && e.base.Err() != nil {
		// The engine is closing: leave the invocation queued (its record
		// says running) so the next Start runs it again.
		in.abortKids()
		return nil, errs.E(errs.Unavailable, "flow: engine closed while %s ran", n.Function)
	}
	// The end is when the last attempt ended, if nothing came after it.
	n.End = in.ended
	if n.End.IsZero() {
		n.End = e.cfg.Clock.Now()
	}
	n.WallMicros = n.End.Sub(n.Start).Microseconds()
	n.Status = statusOf(err)
	if err != nil {
		n.ErrorCode, n.ErrorMessage = errs.CodeOf(err), errs.MessageOf(err)
	}
	e.observeEnd(in, err)

	in.mu.Lock()
	in.finished = true
	kids := in.kids
	in.kids = nil
	in.mu.Unlock()
	if err != nil {
		for _, k := range kids {
			k.cancel()
		}
	} else {
		e.handOver(in.up, kids)
	}

	switch {
	case in.durable:
		e.settle(in, out, err)
	case n.Parent == "" && in.tree.descendants.Load() == 0:
		// A leaf root: nothing indexes or updates its record.
		e.w.putLeaf(n)
		e.unlist(in) // after the record is queued: Get sees one or the other
	default:
		e.putNode(in, n.Parent != "")
		e.unlist(in)
	}
	if in.cancel != nil {
		in.cancel()
	}
	e.release(in.tree)

	o := in.out
	if o == nil {
		o = new(Outcome)
	}
	*o = Outcome{
		ID:       n.ID,
		Status:   n.Status,
		Output:   out,
		CPU:      time.Duration(n.CPUMicros) * time.Microsecond,
		Wall:     time.Duration(n.WallMicros) * time.Microsecond,
		BilledMs: n.BilledMs,
		Cold:     n.Cold,
		Version:  n.Version,
		Attempts: n.Attempts,
	}
	return o, err
}

// snapshot is what Get shows of a child still running: the fields fixed
// before it was registered in Engine.live (the rest belongs to the
// goroutine running it).
func (in *inv) snapshot() *Node {
	n := &in.node
	return &Node{ID: n.ID, Parent: n.Parent, Root: n.Root, Depth: n.Depth, Function: n.Function,
		Status: StatusRunning, Async: n.Async, Start: n.Start}
}

// handOver gives the async children of an invocation that succeeded to the
// nearest ancestor still running, so that its failure still stops them.
func (e *Engine) handOver(up *inv, kids []*inv) {
	if len(kids) == 0 {
		return
	}
	for p := up; p != nil; p = p.up {
		p.mu.Lock()
		if !p.finished {
			p.kids = append(p.kids, kids...)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// abortKids cancels in's async children (its attempt failed: what it
// started must not go on).
func (in *inv) abortKids() {
	in.mu.Lock()
	kids := in.kids
	in.kids = nil
	in.mu.Unlock()
	for _, k := range kids {
		k.cancel()
	}
}

// release ends one invocation of t; the last one ends the tree.
func (e *Engine) release(t *tree) {
	if t.live.Add(-1) != 0 {
		return
	}
	if t.journaled.Load() {
		// The tree is done: nothing can replay its journal any more.
		start := journalPrefix(t.id, "")
		end := store.PrefixEnd(start)
		e.w.apply(false, func(b *store.Batch) { b.DeleteRange(start, end) })
	}
	if e.cfg.OnRootDone != nil && t.hosted.Load() {
		e.cfg.OnRootDone(t.id)
	}
}

// putNode writes in's record (and, for a new child, its place under the
// parent) to the next group commit.
func (e *Engine) putNode(in *inv, index bool) {
	v := encodeNode(&in.node)
	k := nodeKey(in.node.ID)
	var ck []byte
	if index {
		ck = childKey(in.node.Parent, in.node.ID)
	}
	e.w.apply(false, func(b *store.Batch) {
		b.Set(k, v)
		if ck != nil {
			b.Set(ck, nil)
		}
	})
}

// list makes in visible to Get while it runs, once. A durable root is
// never listed: its record is written when it starts.
func (e *Engine) list(in *inv) {
	if !in.durable && in.listed.CompareAndSwap(false, true) {
		e.live.add(in.node.ID, in)
	}
}

func (e *Engine) unlist(in *inv) {
	if in.listed.Load() {
		e.live.remove(in.node.ID)
	}
}

// liveSet is the running invocations by id: maps under mutexes rather
// than a sync.Map (every invocation adds and removes a key once, which is
// sync.Map's worst case, an allocation per insert), in shards picked by
// the id's last digit (its counter's), so that concurrent invocations
// seldom meet on one lock.
type liveSet struct {
	shards [liveShards]liveShard
}

const liveShards = 16

type liveShard struct {
	mu sync.Mutex
	m  map[string]*inv
	_  [48]byte // a cache line each
}

func (l *liveSet) shard(id string) *liveShard {
	if id == "" {
		return &l.shards[0]
	}
	// The digit's value, not its byte: '0'-'9' and 'a'-'f' taken mod 16
	// fall on only 10 shards.
	return &l.shards[unhex(id[len(id)-1])%liveShards]
}

func (l *liveSet) add(id string, in *inv) {
	s := l.shard(id)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*inv)
	}
	s.m[id] = in
	s.mu.Unlock()
}

func (l *liveSet) remove(id string) {
	s := l.shard(id)
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

func (l *liveSet) get(id string) (*inv, bool) {
	s := l.shard(id)
	s.mu.Lock()
	in, ok := s.m[id]
	s.mu.Unlock()
	return in, ok
}

// childrenOf returns the running invocations whose parent is id.
func (l *liveSet) childrenOf(id string) []*inv {
	var out []*inv
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, in := range s.m {
			if in.node.Parent == id {
				out = append(out, in)
			}
		}
		s.mu.Unlock()
	}
	return out
}
