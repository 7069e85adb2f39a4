package trigger

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// call is one invocation the test invoker saw; the test answers it on
// reply.
type call struct {
	fn      string
	payload []byte
	ctx     context.Context
	reply   chan Result
}

// harness is a Manager on a real store with an invoker that hands each
// invocation to the test (calls) and waits for its answer.
type harness struct {
	t     *testing.T
	dir   string
	db    *store.DB
	coord *store.Coord
	cl    *store.ChangeLog
	kv    *store.KV
	clock *clock.Fake
	calls chan call
	m     *Manager

	recorded chan string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: clock.NewFake(time.Date(2026, 12, 7, 20, 31, 10, 0, time.UTC)), calls: make(chan call, 100), recorded: make(chan string, 100)}
	h.open()
	t.Cleanup(h.close)
	return h
}

func (h *harness) open() {
	h.t.Helper()
	var err error
	if h.db, err = store.Open(h.dir); err != nil {
		h.t.Fatal(err)
	}
	if h.coord, err = store.OpenCoord(h.db, store.CoordConfig{}); err != nil {
		h.t.Fatal(err)
	}
	if h.cl, err = store.OpenChangeLog(h.db, nil); err != nil {
		h.t.Fatal(err)
	}
	if h.kv, err = store.OpenKV(h.db, store.KVConfig{Changes: h.cl}); err != nil {
		h.t.Fatal(err)
	}
	h.m, err = Open(Config{DB: h.db, Coord: h.coord, Changes: h.cl, Clock: h.clock, Invoke: h.invoke, recorded: h.recorded})
	if err != nil {
		h.t.Fatal(err)
	}
}

// waitRecorded waits until trigger name has recorded a run or batch.
func (h *harness) waitRecorded(name string) {
	h.t.Helper()
	for {
		select {
		case got := <-h.recorded:
			if got == name {
				return
			}
		case <-time.After(10 * time.Second):
			h.t.Fatalf("%s recorded nothing", name)
		}
	}
}

func (h *harness) close() {
	if h.m == nil {
		return
	}
	h.m.Close()
	h.kv.Close()
	h.coord.Close()
	h.db.Close()
	h.m = nil
}

func (h *harness) restart() {
	h.close()
	h.open()
}

func (h *harness) invoke(ctx context.Context, fn string, payload []byte) Result {
	c := call{fn: fn, payload: payload, ctx: ctx, reply: make(chan Result, 1)}
	h.calls <- c
	select {
	case r := <-c.reply:
		return r
	case <-ctx.Done():
		return Result{Err: errs.E(errs.Cancelled, "cancelled")}
	}
}

// next returns the next invocation, failing the test if none comes
// within a generous bound (a hang, not a timing assertion).
func (h *harness) next() call {
	h.t.Helper()
	select {
	case c := <-h.calls:
		return c
	case <-time.After(10 * time.Second):
		h.t.Fatal("no invocation")
		return call{}
	}
}

func (h *harness) noCall() {
	h.t.Helper()
	select {
	case c := <-h.calls:
		h.t.Fatalf("unexpected invocation of %s: %s", c.fn, c.payload)
	default:
	}
}

// advanceTo waits until the code under test waits on n timers, then
// moves the clock to the earliest deadline.
func (h *harness) step() time.Time {
	h.t.Helper()
	h.clock.WaitForWaiters(1)
	at := h.clock.NextDeadline()
	h.clock.Set(at)
	return at
}

// tick moves the clock through a schedule's next tick: to its arming, then
// (once the dispatcher waits for it, beside the loop waiting to arm the
// one after) to its due time.
func (h *harness) tick() {
	h.t.Helper()
	h.step()
	h.clock.WaitForWaiters(2)
	h.step()
}

type schedEvent struct {
	ID      string          `json:"id"`
	Time    string          `json:"time"`
	Type    string          `json:"detail-type"`
	Detail  json.RawMessage `json:"detail"`
	Resumed bool            `json:"mote-resumed"`
}

func decodeSched(t *testing.T, c call) schedEvent {
	t.Helper()
	var ev schedEvent
	if err := json.Unmarshal(c.payload, &ev); err != nil {
		t.Fatalf("event %s: %v", c.payload, err)
	}
	return ev
}
