package trigger

import (
	"errors"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

func TestScheduleFires(t *testing.T) {
	h := newHarness(t)
	st, err := h.m.AddSchedule(Schedule{Name: "tick", Expression: "*/5 * * * *", Function: "job", Payload: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 12, 7, 20, 35, 0, 0, time.UTC); st.Next == nil || !st.Next.Equal(want) {
		t.Fatalf("next run: got %v, want %s", st.Next, want)
	}
	for _, due := range []string{"2026-12-07T20:35:00Z", "2026-12-07T20:40:00Z"} {
		dueAt, _ := time.Parse(time.RFC3339, due)
		if at := h.step(); !at.Equal(dueAt.Add(-500 * time.Millisecond)) {
			t.Fatalf("armed at %s, want 500 ms before %s", at, due)
		}
		h.clock.WaitForWaiters(2) // the dispatcher's, for this tick, and the loop's, for the next
		if at := h.step(); !at.Equal(dueAt) {
			t.Fatalf("fired at %s, want %s", at, due)
		}
		c := h.next()
		ev := decodeSched(t, c)
		if c.fn != "job" || ev.Time != due || ev.Type != "Scheduled Event" || string(ev.Detail) != `{"a":1}` || ev.Resumed {
			t.Fatalf("got %s to %s, want the %s tick with detail {\"a\":1}", c.payload, c.fn, due)
		}
		c.reply <- Result{ID: "inv-" + due}
	}
	h.waitRecorded("tick")
	h.waitRecorded("tick")
	got, _ := h.m.GetSchedule("tick")
	if got.LastRun == nil || got.LastRun.Invocation != "inv-2026-12-07T20:40:00Z" || got.LastRun.Result != "ok" ||
		got.Next.Format(time.RFC3339) != "2026-12-07T20:45:00Z" {
		t.Fatalf("status %+v, next %s", got.LastRun, got.Next)
	}
}

func TestScheduleResumesInterruptedTick(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddSchedule(Schedule{Name: "tick", Expression: "rate(1 minute)", Function: "job"}); err != nil {
		t.Fatal(err)
	}
	h.tick()
	first := decodeSched(t, h.next())
	// The server stops in the middle of the run: it never answers.
	h.restart()
	c := h.next()
	again := decodeSched(t, c)
	if again.ID != first.ID || !again.Resumed {
		t.Fatalf("after restart got %+v, want tick %s resumed", again, first.ID)
	}
	c.reply <- Result{ID: "x"}
	// The next tick is the one after: the resumed one does not fire again.
	h.tick()
	c = h.next()
	if ev := decodeSched(t, c); ev.ID == first.ID || ev.Resumed {
		t.Fatalf("got %+v after the resumed tick", ev)
	}
	c.reply <- Result{}
	h.noCall()
}

func TestScheduleFinishedTickNotRerun(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddSchedule(Schedule{Name: "tick", Expression: "rate(1 minute)", Function: "job"}); err != nil {
		t.Fatal(err)
	}
	h.tick()
	c := h.next()
	c.reply <- Result{ID: "done"}
	h.waitRecorded("tick")
	h.restart()
	h.clock.WaitForWaiters(1)
	h.noCall()
}

func TestScheduleMissedPolicy(t *testing.T) {
	for _, policy := range []Missed{MissedSkip, MissedOnce} {
		t.Run(string(policy), func(t *testing.T) {
			h := newHarness(t)
			if _, err := h.m.AddSchedule(Schedule{Name: "tick", Expression: "*/5 * * * *", Function: "job", Missed: policy}); err != nil {
				t.Fatal(err)
			}
			h.clock.WaitForWaiters(1)
			h.close()
			h.clock.Advance(3 * time.Hour) // down for 36 ticks
			h.open()
			if policy == MissedOnce {
				c := h.next()
				if ev := decodeSched(t, c); ev.Time != "2026-12-07T23:30:00Z" {
					t.Fatalf("missed run for %s, want the latest missed tick, 23:30", ev.Time)
				}
				c.reply <- Result{}
			}
			h.clock.WaitForWaiters(1)
			h.noCall()
			h.tick()
			if ev := decodeSched(t, h.next()); ev.Time != "2026-12-07T23:35:00Z" {
				t.Fatalf("next tick %s, want 23:35", ev.Time)
			}
		})
	}
}

func TestAddScheduleErrors(t *testing.T) {
	h := newHarness(t)
	h.m.cfg.Exists = func(fn string) bool { return fn == "job" }
	if _, err := h.m.AddSchedule(Schedule{Name: "a", Expression: "* * * * *", Function: "job"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sc   Schedule
		code errs.Code
	}{
		{Schedule{Name: "a", Expression: "* * * * *", Function: "job"}, errs.Conflict},
		{Schedule{Name: "B", Expression: "* * * * *", Function: "job"}, errs.BadRequest},
		{Schedule{Name: "b", Expression: "61 * * * *", Function: "job"}, errs.BadRequest},
		{Schedule{Name: "b", Expression: "* * * * *", Function: "nope"}, errs.NotFound},
		{Schedule{Name: "b", Expression: "* * * * *", Function: "job", Timezone: "Mars/Olympus"}, errs.BadRequest},
		{Schedule{Name: "b", Expression: "rate(1 hour)", Function: "job", Timezone: "Europe/Paris"}, errs.BadRequest},
		{Schedule{Name: "b", Expression: "* * * * *", Function: "job", Missed: "all"}, errs.BadRequest},
		{Schedule{Name: "b", Expression: "* * * * *", Function: "job", Payload: []byte("{")}, errs.BadRequest},
		{Schedule{Name: "b", Expression: "0 0 30 2 *", Function: "job"}, errs.BadRequest},
	} {
		_, err := h.m.AddSchedule(tc.sc)
		if got := errs.CodeOf(err); got != tc.code {
			t.Errorf("AddSchedule(%+v): got %v (%s), want %s", tc.sc, err, got, tc.code)
		}
	}
	_, err := h.m.AddSchedule(Schedule{Name: "b", Expression: "61 * * * *", Function: "job"})
	if !errors.Is(err, ErrBadExpr) {
		t.Errorf("bad expression: %v is not ErrBadExpr", err)
	}
	if err := h.m.RemoveSchedule("a"); err != nil {
		t.Fatal(err)
	}
	if err := h.m.RemoveSchedule("a"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("second remove: %v", err)
	}
	h.restart()
	if n := len(h.m.Schedules()); n != 0 {
		t.Errorf("%d schedules after remove and restart", n)
	}
}

func TestScheduleResumesOverlappingRuns(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddSchedule(Schedule{Name: "tick", Expression: "rate(1 minute)", Function: "job"}); err != nil {
		t.Fatal(err)
	}
	h.tick()
	first := decodeSched(t, h.next())
	h.tick()
	second := decodeSched(t, h.next())
	h.restart() // both runs cut short
	got := map[string]bool{}
	for range 2 {
		c := h.next()
		ev := decodeSched(t, c)
		if !ev.Resumed {
			t.Fatalf("got %+v, want a resumed run", ev)
		}
		got[ev.ID] = true
		c.reply <- Result{}
	}
	if !got[first.ID] || !got[second.ID] {
		t.Fatalf("resumed %v, want %s and %s", got, first.ID, second.ID)
	}
	h.waitRecorded("tick")
	h.waitRecorded("tick")
	h.restart()
	h.clock.WaitForWaiters(1)
	h.noCall()
}
