package trigger

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

func decodeChanges(t *testing.T, c call) []string {
	t.Helper()
	var ev struct {
		Records []changeRecord `json:"Records"`
	}
	if err := json.Unmarshal(c.payload, &ev); err != nil {
		t.Fatalf("event %s: %v", c.payload, err)
	}
	var out []string
	for _, r := range ev.Records {
		if r.EventSource != "mote:kv" || r.SourceARN != "mote:kv:w" {
			t.Fatalf("record %+v", r)
		}
		out = append(out, r.Op+":"+r.Key)
	}
	return out
}

func (h *harness) put(key string) {
	h.t.Helper()
	if _, err := h.kv.Put("w", key, []byte("v"), store.WriteOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestWatchDeliversInOrder(t *testing.T) {
	h := newHarness(t)
	h.put("p/before") // before the watch: not delivered
	if _, err := h.m.AddWatch(Watch{Name: "w1", Kind: "kv", Bucket: "w", Prefix: "p/", Function: "f", BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	h.put("p/a")
	h.put("q/skip")
	h.put("p/b")
	if err := h.kv.Delete("w", "p/a", store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		c := h.next()
		got = append(got, decodeChanges(t, c)...)
		c.reply <- Result{}
	}
	if want := []string{"put:p/a", "put:p/b", "delete:p/a"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for {
		h.waitRecorded("w1")
		st, _ := h.m.GetWatch("w1")
		if st.Failures != 0 {
			t.Fatalf("status %+v", st)
		}
		if st.Delivered == 3 {
			break
		}
	}
}

func TestWatchRedeliversAfterRestart(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddWatch(Watch{Name: "w1", Kind: "kv", Bucket: "w", Function: "f"}); err != nil {
		t.Fatal(err)
	}
	h.put("a")
	if got := decodeChanges(t, h.next()); !slices.Equal(got, []string{"put:a"}) {
		t.Fatalf("got %v", got)
	}
	h.restart() // never answered
	// Written after the restart, before the watch's loop looks: logged,
	// since the watch is recorded in the store.
	h.put("b")
	var got []string
	for len(got) < 2 {
		c := h.next()
		got = append(got, decodeChanges(t, c)...)
		c.reply <- Result{}
	}
	if !slices.Equal(got, []string{"put:a", "put:b"}) {
		t.Fatalf("after restart got %v, want a again, then b", got)
	}
	h.waitRecorded("w1")
	h.restart()
	h.noCall()
}

func TestWatchRetriesThenDeadLetters(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddWatch(Watch{Name: "w1", Kind: "kv", Bucket: "w", Function: "f", MaxAttempts: 2, BackoffMs: 100}); err != nil {
		t.Fatal(err)
	}
	h.put("a")
	for attempt := 1; attempt <= 2; attempt++ {
		c := h.next()
		if got := decodeChanges(t, c); !slices.Equal(got, []string{"put:a"}) {
			t.Fatalf("attempt %d: %v", attempt, got)
		}
		c.reply <- Result{Err: errs.E(errs.FunctionError, "no")}
		h.waitRecorded("w1")
		if attempt == 1 {
			h.step() // the backoff
		}
	}
	if n, _ := h.coord.Len("w", "w1-dlq"); n != 1 {
		t.Fatalf("dead-letter queue has %d items", n)
	}
	h.put("b") // the watch moved on
	if got := decodeChanges(t, h.next()); !slices.Equal(got, []string{"put:b"}) {
		t.Fatalf("after dead-lettering: %v", got)
	}
}

func TestWatchErrors(t *testing.T) {
	h := newHarness(t)
	for i, w := range []Watch{
		{Name: "x", Kind: "sql", Bucket: "w", Function: "f"},
		{Name: "x", Kind: "kv", Bucket: "W!", Function: "f"},
		{Name: "x", Kind: "kv", Bucket: "w", Function: "f", BatchSize: 5000},
	} {
		if _, err := h.m.AddWatch(w); errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("%d: %v", i, err)
		}
	}
	if _, err := h.m.AddWatch(Watch{Name: "x", Kind: "kv", Bucket: "w", Function: "f"}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.RemoveWatch("x"); err != nil {
		t.Fatal(err)
	}
	h.put("after-remove")
	if chs, _, _, _ := h.cl.Read(0, 10); len(chs) != 0 {
		t.Fatalf("removed watch still logs: %v", fmt.Sprint(chs))
	}
}
