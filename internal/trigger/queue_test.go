package trigger

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

type sqsEvent struct {
	Records []struct {
		MessageID  string            `json:"messageId"`
		Body       string            `json:"body"`
		Attributes map[string]string `json:"attributes"`
		Source     string            `json:"eventSourceARN"`
	} `json:"Records"`
}

func decodeBatch(t *testing.T, c call) (ids, bodies []string, ev sqsEvent) {
	t.Helper()
	if err := json.Unmarshal(c.payload, &ev); err != nil {
		t.Fatalf("event %s: %v", c.payload, err)
	}
	for _, r := range ev.Records {
		ids, bodies = append(ids, r.MessageID), append(bodies, r.Body)
	}
	return ids, bodies, ev
}

func (h *harness) push(items ...string) {
	h.t.Helper()
	raw := make([][]byte, len(items))
	for i, s := range items {
		raw[i] = []byte(s)
	}
	if _, err := h.coord.Push("jobs", "work", raw...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) queued(name string) int64 {
	h.t.Helper()
	n, err := h.coord.Len("jobs", name)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestConsumerBatches(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddConsumer(Consumer{Name: "c", Bucket: "jobs", Queue: "work", Function: "worker", BatchSize: 3}); err != nil {
		t.Fatal(err)
	}
	h.push("a", "b", "c", "d")
	c := h.next()
	_, bodies, ev := decodeBatch(t, c)
	if !slices.Equal(bodies, []string{"a", "b", "c"}) || ev.Records[0].Source != "mote:queue:jobs/work" ||
		ev.Records[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("first batch %s", c.payload)
	}
	c.reply <- Result{Output: []byte(`null`)}
	h.waitRecorded("c")
	c = h.next()
	if _, bodies, _ = decodeBatch(t, c); !slices.Equal(bodies, []string{"d"}) {
		t.Fatalf("second batch %v", bodies)
	}
	c.reply <- Result{}
	h.waitRecorded("c")
	st, _ := h.m.GetConsumer("c")
	if st.Delivered != 4 || st.InFlight != 0 || st.Queued != 0 || st.Batches != 2 {
		t.Fatalf("status %+v", st)
	}
	// Idle: the next push wakes the consumer.
	h.push("e")
	if _, bodies, _ = decodeBatch(t, h.next()); !slices.Equal(bodies, []string{"e"}) {
		t.Fatalf("after idle: %v", bodies)
	}
}

func TestConsumerPartialFailureThenDLQ(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddConsumer(Consumer{Name: "c", Bucket: "jobs", Queue: "work", Function: "worker", BatchSize: 10, MaxAttempts: 2, BackoffMs: 500}); err != nil {
		t.Fatal(err)
	}
	h.push("ok1", "bad", "ok2")
	c := h.next()
	ids, _, _ := decodeBatch(t, c)
	c.reply <- Result{Output: fmt.Appendf(nil, `{"batchItemFailures":[{"itemIdentifier":%q}]}`, ids[1])}
	h.waitRecorded("c")
	h.noCall()
	// Only the failed item comes back, after the backoff.
	if at := h.step(); !at.Equal(time.Date(2026, 12, 7, 20, 31, 10, 500_000_000, time.UTC)) {
		t.Fatalf("retry at %s, want after 500 ms", at)
	}
	c = h.next()
	rids, bodies, ev := decodeBatch(t, c)
	if !slices.Equal(bodies, []string{"bad"}) || rids[0] != ids[1] || ev.Records[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("retry batch %s", c.payload)
	}
	// Its second failure is its last: it goes to the dead-letter queue.
	c.reply <- Result{Err: errs.E(errs.FunctionError, "boom")}
	h.waitRecorded("c")
	if n := h.queued("work-dlq"); n != 1 {
		t.Fatalf("dead-letter queue has %d items, want 1", n)
	}
	st, _ := h.m.GetConsumer("c")
	if st.DeadLetter != 1 || st.Delivered != 2 || st.InFlight != 0 || st.LastBatch.Result != "function_error" {
		t.Fatalf("status %+v %+v", st, st.LastBatch)
	}
}

func TestConsumerUnknownFailureIDFailsBatch(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddConsumer(Consumer{Name: "c", Bucket: "jobs", Queue: "work", Function: "worker", BackoffMs: 10}); err != nil {
		t.Fatal(err)
	}
	h.push("x", "y")
	c := h.next()
	c.reply <- Result{Output: []byte(`{"batchItemFailures":[{"itemIdentifier":"nope"}]}`)}
	h.waitRecorded("c")
	h.step()
	if _, bodies, _ := decodeBatch(t, h.next()); !slices.Equal(bodies, []string{"x", "y"}) {
		t.Fatalf("retried %v, want the whole batch", bodies)
	}
}

func TestConsumerRedeliversAfterRestart(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddConsumer(Consumer{Name: "c", Bucket: "jobs", Queue: "work", Function: "worker"}); err != nil {
		t.Fatal(err)
	}
	h.push("p", "q")
	first := h.next()
	ids, _, _ := decodeBatch(t, first)
	h.restart() // mid-batch: never answered
	c := h.next()
	again, bodies, _ := decodeBatch(t, c)
	if !slices.Equal(bodies, []string{"p", "q"}) || !slices.Equal(again, ids) {
		t.Fatalf("after restart got %v %v, want the same items %v", again, bodies, ids)
	}
	c.reply <- Result{}
	h.waitRecorded("c")
	h.restart()
	h.noCall()
	if n := h.queued("work"); n != 0 {
		t.Fatalf("queue has %d items", n)
	}
}

func TestConsumerBatchWindow(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddConsumer(Consumer{Name: "c", Bucket: "jobs", Queue: "work", Function: "worker", BatchSize: 3, MaxWaitMs: 1000}); err != nil {
		t.Fatal(err)
	}
	h.push("1")
	h.clock.WaitForWaiters(1) // the window is open
	h.push("2")
	h.noCall()
	h.step()
	if _, bodies, _ := decodeBatch(t, h.next()); !slices.Equal(bodies, []string{"1", "2"}) {
		t.Fatalf("batch %v, want 1 and 2 after the window", bodies)
	}
}

func TestRemoveConsumerRequeues(t *testing.T) {
	h := newHarness(t)
	if _, err := h.m.AddConsumer(Consumer{Name: "c", Bucket: "jobs", Queue: "work", Function: "worker"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.AddConsumer(Consumer{Name: "d", Bucket: "jobs", Queue: "work", Function: "worker"}); errs.CodeOf(err) != errs.Conflict {
		t.Fatalf("second consumer of one queue: %v", err)
	}
	h.push("z")
	h.next() // claimed, never answered
	if err := h.m.RemoveConsumer("c"); err != nil {
		t.Fatal(err)
	}
	if n := h.queued("work"); n != 1 {
		t.Fatalf("queue has %d items after remove, want the claimed one back", n)
	}
}

// FuzzFailedItems feeds function output, which the function's author
// wrote, to the partial batch failure reader: it must never panic and
// must name only items of the batch (or all of them).
func FuzzFailedItems(f *testing.F) {
	for _, s := range []string{``, `null`, `{}`, `{"batchItemFailures":[]}`, `{"batchItemFailures":[{"itemIdentifier":"a"}]}`,
		`{"batchItemFailures":[{"itemIdentifier":"zz"}]}`, `{"batchItemFailures":[{"itemIdentifier":null}]}`, `{"batchItemFailures":"x"}`} {
		f.Add([]byte(s))
	}
	batch := []*claimed{{ID: "a"}, {ID: "b"}}
	f.Fuzz(func(t *testing.T, out []byte) {
		failed := failedItems(out, batch)
		for id := range failed {
			if id != "a" && id != "b" {
				t.Fatalf("failed item %q is not in the batch", id)
			}
		}
	})
}
