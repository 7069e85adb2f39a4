// Package trigger runs functions on events other than requests: schedules
// (cron and rate expressions), queue consumers (batches of a Mote queue,
// as SQS event source mappings deliver them) and watches (the puts and
// deletes in a KV or object bucket, from the store's change log). Definitions and progress
// live in the store under store.PrefixTriggers, so each trigger carries on
// where it was after a restart; every invocation goes through the same
// Invoker as the API's (the flow engine), so it has a call tree, usage and
// metrics like any other. docs/triggers.md is the user's guide;
// RATIONALE.md "Triggers" says why it is built this way.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// Result is what one triggered invocation did.
type Result struct {
	ID     string // the invocation's id (its call tree), if it ran
	Output []byte
	Err    error // the invocation's failure, or why it could not run
}

// Invoker runs fn as a root invocation with payload.
type Invoker func(ctx context.Context, fn string, payload []byte) Result

// Fire tells an observer (Config.OnFire) that a trigger started an
// invocation: Due is when it was meant to start (a schedule's tick; a
// batch's first claim), Fired when the trigger took it (a schedule's
// dispatcher), Started when the invocation was handed to the Invoker.
type Fire struct {
	Kind    string // "schedule", "queue" or "changes"
	Trigger string
	Due     time.Time
	Fired   time.Time
	Started time.Time
	Items   int // a batch's size (queue and change events)
}

// Config configures a Manager. DB, Coord and Invoke are required.
type Config struct {
	DB     *store.DB
	Coord  *store.Coord
	Invoke Invoker
	// Changes is the change log watches read (nil: no watches).
	Changes *store.ChangeLog
	// Exists reports whether a function is deployed; adding a trigger for
	// one that is not is refused. Nil accepts any name.
	Exists func(fn string) bool
	// Allowed reports whether fn's config grants it bucket: read, and
	// write too when write is set. A consumer's function needs both (as
	// queue.pop does), a change subscriber's read. Checked when a trigger
	// is added and before each delivery. Nil allows everything.
	Allowed func(fn, bucket string, write bool) error
	// Clock is the time source (default: the system clock).
	Clock clock.Clock
	// ArmAhead is how long before a tick is due its schedule records,
	// synced, that it is about to fire (default 500 ms): the fsync is off
	// the tick's path, and a restart finds every tick that may have
	// started (docs/triggers.md, "Exactly once").
	ArmAhead time.Duration
	// OnFire, if set, is called as each invocation starts (benchmarks and
	// metrics read it). It must not block.
	OnFire func(Fire)
	Logger *slog.Logger

	// recorded, when set (tests), is told each time a run or batch has
	// been recorded.
	recorded chan string
}

// Validate checks c and fills its defaults.
func (c *Config) Validate() error {
	if c.DB == nil || c.Coord == nil || c.Invoke == nil {
		return errors.New("trigger: DB, Coord and Invoke are required")
	}
	if c.ArmAhead < 0 {
		return errors.New("trigger: ArmAhead must not be negative")
	}
	if c.ArmAhead == 0 {
		c.ArmAhead = 500 * time.Millisecond
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Manager keeps the triggers and runs one goroutine per trigger. Lock
// order: Manager.mu, then a schedule's mu.
type Manager struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	ticks     *dispatcher
	schedules map[string]*schedRunner
	consumers map[string]*consumer
	watches   map[string]*watcher
	trimmed   atomic.Uint64 // the change log is trimmed up to here
}

// Open loads the triggers kept in cfg.DB and starts them.
func Open(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, ctx: ctx, cancel: cancel,
		schedules: map[string]*schedRunner{}, consumers: map[string]*consumer{}, watches: map[string]*watcher{}}
	m.ticks = newDispatcher(cfg.Clock)
	m.spawn(func() { m.ticks.run(ctx) })
	if err := m.loadSchedules(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.loadConsumers(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.loadWatches(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Close stops every trigger and waits for their goroutines, which end the
// invocations they started (the caller's invocations see a cancelled
// context). What they had recorded stays; Open resumes from it.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

func (m *Manager) spawn(fn func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
}

var triggerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName reports whether name can name a trigger: 1-63 of a-z 0-9 - _,
// starting with a letter or digit (as a function's name).
func ValidName(kind, name string) error {
	if !triggerName.MatchString(name) {
		return errs.E(errs.BadRequest, "invalid %s name %q: use 1-63 of a-z 0-9 - _, starting with a letter or digit", kind, name)
	}
	return nil
}

func (m *Manager) checkFunction(fn string) error {
	if fn == "" {
		return errs.E(errs.BadRequest, "a function is required")
	}
	if m.cfg.Exists != nil && !m.cfg.Exists(fn) {
		return errs.E(errs.NotFound, "function %q not found: deploy it first", fn)
	}
	return nil
}

func key(parts ...string) []byte {
	k := []byte(store.PrefixTriggers)
	for i, p := range parts {
		if i > 0 {
			k = append(k, '/')
		}
		k = append(k, p...)
	}
	return k
}

func (m *Manager) putJSON(k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := m.cfg.DB.Set(k, raw, true); err != nil {
		return errs.Wrap(errs.Internal, err, "trigger: write failed")
	}
	return nil
}

func (m *Manager) getJSON(k []byte, v any) (bool, error) {
	raw, err := m.cfg.DB.Get(k)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, errs.Wrap(errs.Internal, err, "trigger: read failed")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, errs.Wrap(errs.Internal, err, fmt.Sprintf("trigger: corrupt record %q", k))
	}
	return true, nil
}

// scanJSON calls fn with each record under prefix, decoded into a new T.
func scanJSON[T any](db *store.DB, prefix []byte, fn func(k []byte, v *T)) error {
	var bad error
	err := db.Scan(prefix, func(k, raw []byte) bool {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			bad = fmt.Errorf("trigger: corrupt record %q: %w", k, err)
			return false
		}
		fn(k, v)
		return true
	})
	if err == nil {
		err = bad
	}
	return err
}

// sleepUntil waits for the clock to reach t; false if ctx ended first.
func sleepUntil(ctx context.Context, c clock.Clock, t time.Time) bool {
	d := t.Sub(c.Now())
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := c.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C():
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Manager) fired(f Fire) {
	if m.cfg.OnFire != nil {
		m.cfg.OnFire(f)
	}
}

func (m *Manager) noteRecorded(name string) {
	if m.cfg.recorded != nil {
		m.cfg.recorded <- name
	}
}

func (m *Manager) allowed(fn, bucket string, write bool) error {
	if m.cfg.Allowed == nil {
		return nil
	}
	return m.cfg.Allowed(fn, bucket, write)
}

// runResult turns an invocation's result into what a trigger records.
func runResult(r Result) (code, msg string) {
	if r.Err == nil {
		return "ok", ""
	}
	return string(errs.CodeOf(r.Err)), errs.MessageOf(r.Err)
}

// loop is a trigger's goroutine: cancel ends it, done is closed once it
// has.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *loop) stop() {
	l.cancel()
	<-l.done
}

// detach takes the trigger called name out of runners, under m.mu, and
// stops its goroutine; kind names it in the "not found" error.
func detach[R interface{ stop() }](m *Manager, runners map[string]R, kind, name string) (R, error) {
	m.mu.Lock()
	r, ok := runners[name]
	if ok {
		delete(runners, name)
	}
	m.mu.Unlock()
	if !ok {
		return r, errs.Wrap(errs.NotFound, ErrNotFound, fmt.Sprintf("%s %q not found", kind, name))
	}
	r.stop()
	return r, nil
}
