package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

// Missed says what a schedule does with the ticks that fell due while the
// server was down.
type Missed string

const (
	// MissedSkip drops them: the schedule carries on at its next tick.
	MissedSkip Missed = "skip"
	// MissedOnce runs the latest of them once, at start, then carries on.
	MissedOnce Missed = "once"
)

// MaxPayload is the largest payload a schedule may carry.
const MaxPayload = 256 << 10

// Schedule runs Function at every tick of Expression.
type Schedule struct {
	Name       string          `json:"name"`
	Expression string          `json:"expression"`
	Timezone   string          `json:"timezone,omitempty"` // IANA name; cron only; default UTC
	Function   string          `json:"function"`
	Payload    json.RawMessage `json:"payload,omitempty"` // the event's "detail"; default {}
	Missed     Missed          `json:"missed,omitempty"`  // default skip
	Created    time.Time       `json:"created"`           // rate(...) ticks count from here
}

// Run is one tick's invocation.
type Run struct {
	Due        time.Time `json:"due"`
	Fired      time.Time `json:"fired"`   // when the dispatcher took the tick
	Started    time.Time `json:"started"` // when its invocation was handed to the flow engine
	Ended      time.Time `json:"ended"`
	Invocation string    `json:"invocation,omitempty"`
	Result     string    `json:"result"` // "ok" or the error code
	Error      string    `json:"error,omitempty"`
	Resumed    bool      `json:"resumed,omitempty"` // re-run after a restart cut it short
	Missed     int       `json:"missed,omitempty"`  // ticks it stands for (missed: once)
}

// ScheduleStatus is a schedule with where it stands.
type ScheduleStatus struct {
	Schedule
	Next    *time.Time `json:"next_run"` // nil: never again
	LastRun *Run       `json:"last_run,omitempty"`
}

// schedState is a schedule's progress, kept synced at trg/ss/NAME: Armed
// is the latest tick that may have started (written ArmAhead before it is
// due), Pending the armed ticks whose run has not been recorded (several
// when runs overlap), Last the latest run recorded.
type schedState struct {
	Armed   time.Time   `json:"armed"`
	Pending []time.Time `json:"pending,omitempty"`
	Last    *Run        `json:"last,omitempty"`
}

// maxPending bounds a schedule's unfinished ticks; past it the oldest is
// forgotten (a restart will not run it again) and a warning logged.
const maxPending = 16

type schedRunner struct {
	def  Schedule
	spec Spec
	loop

	mu    sync.Mutex
	state schedState
}

func schedKey(name string) []byte      { return key("s", name) }
func schedStateKey(name string) []byte { return key("ss", name) }

// parse returns sc's Spec, checking the expression and time zone.
func (sc *Schedule) parse() (Spec, error) {
	loc := time.UTC
	if sc.Timezone != "" {
		if strings.HasPrefix(sc.Expression, "rate(") {
			return nil, errs.E(errs.BadRequest, "a time zone means nothing to rate(...): it ticks every period from its creation")
		}
		l, err := time.LoadLocation(sc.Timezone)
		if err != nil || sc.Timezone == "Local" {
			return nil, errs.E(errs.BadRequest, "unknown time zone %q: use an IANA name such as Europe/Paris", sc.Timezone)
		}
		loc = l
	}
	spec, err := Parse(sc.Expression, loc, sc.Created)
	if err != nil {
		return nil, errs.Wrap(errs.BadRequest, err, err.Error())
	}
	return spec, nil
}

// AddSchedule validates sc, records it and starts it. Its first tick is
// the first one after now.
func (m *Manager) AddSchedule(sc Schedule) (*ScheduleStatus, error) {
	if err := ValidName("schedule", sc.Name); err != nil {
		return nil, err
	}
	if err := m.checkFunction(sc.Function); err != nil {
		return nil, err
	}
	switch sc.Missed {
	case "":
		sc.Missed = MissedSkip
	case MissedSkip, MissedOnce:
	default:
		return nil, errs.E(errs.BadRequest, "missed must be %q or %q, not %q", MissedSkip, MissedOnce, sc.Missed)
	}
	if len(sc.Payload) > MaxPayload {
		return nil, errs.E(errs.PayloadTooLarge, "payload of %d bytes is over the %d-byte limit", len(sc.Payload), MaxPayload)
	}
	if len(bytes.TrimSpace(sc.Payload)) == 0 {
		sc.Payload = nil
	} else if !json.Valid(sc.Payload) {
		return nil, errs.E(errs.BadRequest, "payload is not valid JSON")
	}
	sc.Created = m.cfg.Clock.Now().UTC()
	spec, err := sc.parse()
	if err != nil {
		return nil, err
	}
	if spec.Next(sc.Created).IsZero() {
		return nil, errs.E(errs.BadRequest, "schedule expression %q never matches a future time", sc.Expression)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errs.Wrap(errs.Unavailable, ErrClosed, "triggers are shut down")
	}
	if m.schedules[sc.Name] != nil {
		return nil, errs.Wrap(errs.Conflict, ErrExists, fmt.Sprintf("schedule %q exists: remove it first", sc.Name))
	}
	// A new schedule starts with no state: a record left by a removed
	// one of the same name must not resume its ticks.
	if err := m.cfg.DB.Delete(schedStateKey(sc.Name), true); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "trigger: write failed")
	}
	if err := m.putJSON(schedKey(sc.Name), sc); err != nil {
		return nil, err
	}
	r := m.startSchedule(sc, spec, schedState{})
	st := r.status(m.cfg.Clock.Now())
	return &st, nil
}

// RemoveSchedule stops and deletes a schedule; a run in progress goes on
// to its end.
func (m *Manager) RemoveSchedule(name string) error {
	if _, err := detach(m, m.schedules, "schedule", name); err != nil {
		return err
	}
	if err := m.cfg.DB.Delete(schedKey(name), true); err != nil {
		return errs.Wrap(errs.Internal, err, "trigger: delete failed")
	}
	return m.cfg.DB.Delete(schedStateKey(name), true)
}

// Schedules returns every schedule with its next and last run, by name.
func (m *Manager) Schedules() []ScheduleStatus {
	m.mu.Lock()
	rs := make([]*schedRunner, 0, len(m.schedules))
	for _, r := range m.schedules {
		rs = append(rs, r)
	}
	m.mu.Unlock()
	now := m.cfg.Clock.Now()
	out := make([]ScheduleStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.status(now))
	}
	slices.SortFunc(out, func(a, b ScheduleStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// GetSchedule returns one schedule's status.
func (m *Manager) GetSchedule(name string) (*ScheduleStatus, error) {
	m.mu.Lock()
	r := m.schedules[name]
	m.mu.Unlock()
	if r == nil {
		return nil, errs.Wrap(errs.NotFound, ErrNotFound, fmt.Sprintf("schedule %q not found", name))
	}
	st := r.status(m.cfg.Clock.Now())
	return &st, nil
}

func (r *schedRunner) status(now time.Time) ScheduleStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ScheduleStatus{Schedule: r.def}
	from := now
	if r.state.Armed.After(from) {
		from = r.state.Armed.Add(-time.Nanosecond) // armed, not yet due
	}
	if n := r.spec.Next(from); !n.IsZero() {
		st.Next = &n
	}
	if r.state.Last != nil {
		last := *r.state.Last
		st.LastRun = &last
	}
	return st
}

func (m *Manager) loadSchedules() error {
	var defs []*Schedule
	if err := scanJSON(m.cfg.DB, key("s", ""), func(_ []byte, sc *Schedule) { defs = append(defs, sc) }); err != nil {
		return err
	}
	for _, sc := range defs {
		spec, err := sc.parse()
		if err != nil { // was valid when added; a newer zone database may differ
			m.cfg.Logger.Error("schedule not started", "schedule", sc.Name, "err", err)
			continue
		}
		var st schedState
		if _, err := m.getJSON(schedStateKey(sc.Name), &st); err != nil {
			return err
		}
		m.mu.Lock()
		m.startSchedule(*sc, spec, st)
		m.mu.Unlock()
	}
	return nil
}

// startSchedule starts sc's runner; the caller holds m.mu.
func (m *Manager) startSchedule(sc Schedule, spec Spec, st schedState) *schedRunner {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &schedRunner{def: sc, spec: spec, loop: loop{cancel, make(chan struct{})}, state: st}
	m.schedules[sc.Name] = r
	m.spawn(func() {
		defer close(r.done)
		m.runSchedule(ctx, r)
	})
	return r
}

// lateLimit is how far past its due time a tick may be found by a running
// schedule (a stalled process, a suspended machine) and still be fired as
// if on time; beyond it the tick counts as missed.
const lateLimit = time.Minute

// runSchedule is a schedule's loop. Each tick is first armed (recorded,
// synced, ArmAhead before it is due), then fired at its due time; the run
// is recorded when it ends. On start, an armed tick that did not finish is
// resumed, and the ticks missed while the server was down are handled by
// the schedule's Missed policy.
func (m *Manager) runSchedule(ctx context.Context, r *schedRunner) {
	clock := m.cfg.Clock
	now := clock.Now()
	r.mu.Lock()
	st := r.state
	r.mu.Unlock()
	from := r.def.Created
	if !st.Armed.IsZero() {
		from = st.Armed
	}
	// Armed ticks whose run was not recorded: those that were due ran,
	// or may have, when the server stopped; they run again, once. One
	// armed for later (a quick restart) fires when due.
	for _, p := range st.Pending {
		if p.After(now) {
			if p.Add(-time.Nanosecond).Before(from) {
				from = p.Add(-time.Nanosecond)
			}
			continue
		}
		m.spawn(func() { m.fire(ctx, r, p, m.cfg.Clock.Now(), true, 0) })
	}
	next := r.spec.Next(from)
	for !next.IsZero() {
		if now = clock.Now(); now.Sub(next) > lateLimit {
			latest, n := next, 0
			for t := next; !t.IsZero() && !t.After(now); t = r.spec.Next(t) {
				latest, n = t, n+1
			}
			m.cfg.Logger.Info("schedule missed ticks", "schedule", r.def.Name, "missed", n, "policy", r.def.Missed)
			if r.def.Missed == MissedOnce {
				if !m.arm(r, latest) {
					return
				}
				m.spawn(func() { m.fire(ctx, r, latest, m.cfg.Clock.Now(), false, n) })
			}
			next = r.spec.Next(now)
			continue
		}
		if !sleepUntil(ctx, clock, next.Add(-m.cfg.ArmAhead)) {
			return
		}
		if !m.arm(r, next) {
			return
		}
		// The dispatcher fires it at its due time; this loop goes on to
		// wait for the next one's arming.
		due := next
		m.ticks.at(due, func(fired time.Time) {
			if ctx.Err() == nil {
				m.spawn(func() { m.fire(ctx, r, due, fired, false, 0) })
			}
		})
		if next = r.spec.Next(next); !next.IsZero() && next.Add(-m.cfg.ArmAhead).Before(due) {
			// A period shorter than ArmAhead: arm the next tick only once
			// this one is due, so ticks are armed in order.
			if !sleepUntil(ctx, clock, due) {
				return
			}
		}
	}
	m.cfg.Logger.Info("schedule has no more ticks", "schedule", r.def.Name)
}

// arm records, synced, that tick due may start; false if it could not.
func (m *Manager) arm(r *schedRunner, due time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state
	st.Armed = due
	if !slices.ContainsFunc(st.Pending, due.Equal) {
		st.Pending = append(slices.Clone(st.Pending), due)
		if len(st.Pending) > maxPending {
			m.cfg.Logger.Warn("schedule: too many runs unfinished; the oldest will not be resumed after a restart",
				"schedule", r.def.Name, "tick", st.Pending[0])
			st.Pending = st.Pending[1:]
		}
	}
	if err := m.putJSON(schedStateKey(r.def.Name), st); err != nil {
		m.cfg.Logger.Error("schedule: cannot record tick; not firing it", "schedule", r.def.Name, "due", due, "err", err)
		return false
	}
	r.state = st
	return true
}

// fire runs tick due, which the dispatcher took at fired, and records the
// run.
func (m *Manager) fire(ctx context.Context, r *schedRunner, due, fired time.Time, resumed bool, missed int) {
	ev := scheduledEvent(r.def, due, resumed)
	started := m.cfg.Clock.Now()
	m.fired(Fire{Kind: "schedule", Trigger: r.def.Name, Due: due, Fired: fired, Started: started, Items: 1})
	res := m.cfg.Invoke(ctx, r.def.Function, ev)
	if ctx.Err() != nil && res.Err != nil {
		return // shut down mid-run: the tick stays armed and resumes at start
	}
	run := &Run{Due: due, Fired: fired, Started: started, Ended: m.cfg.Clock.Now(), Invocation: res.ID, Resumed: resumed, Missed: missed}
	run.Result, run.Error = runResult(res)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer m.noteRecorded(r.def.Name)
	st := r.state
	st.Pending = slices.DeleteFunc(slices.Clone(st.Pending), due.Equal)
	if st.Last == nil || !st.Last.Due.After(due) { // a later tick may have finished first
		st.Last = run
	}
	if err := m.putJSON(schedStateKey(r.def.Name), st); err != nil {
		m.cfg.Logger.Error("schedule: cannot record run", "schedule", r.def.Name, "due", due, "err", err)
		return
	}
	r.state = st
}

// scheduledEvent is the event a schedule's function gets: EventBridge's
// "Scheduled Event", with the schedule's payload as its detail. Its id is
// the same for every run of one tick, so a function can tell a resumed
// run from a new tick.
func scheduledEvent(sc Schedule, due time.Time, resumed bool) []byte {
	detail := sc.Payload
	if detail == nil {
		detail = json.RawMessage("{}")
	}
	ev := struct {
		Version    string          `json:"version"`
		ID         string          `json:"id"`
		DetailType string          `json:"detail-type"`
		Source     string          `json:"source"`
		Account    string          `json:"account"`
		Time       string          `json:"time"`
		Region     string          `json:"region"`
		Resources  []string        `json:"resources"`
		Detail     json.RawMessage `json:"detail"`
		Resumed    bool            `json:"mote-resumed,omitempty"`
	}{
		Version: "0", ID: sc.Name + "-" + strconv.FormatInt(due.Unix(), 10), DetailType: "Scheduled Event",
		Source: "mote.scheduler", Account: "mote", Time: due.UTC().Format(time.RFC3339), Region: "local",
		Resources: []string{"mote:schedule/" + sc.Name}, Detail: detail, Resumed: resumed,
	}
	raw, _ := json.Marshal(ev)
	return raw
}
