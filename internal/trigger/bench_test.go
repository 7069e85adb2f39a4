package trigger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/store"
)

// benchManager is a Manager on a real store with the real clock and an
// invoker that returns at once: what is measured is the trigger's own
// path, from due time (or push) to the Invoker's call.
func benchManager(b *testing.B, onFire func(Fire), invoke Invoker) (*Manager, *store.Coord) {
	b.Helper()
	db, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	coord, err := store.OpenCoord(db, store.CoordConfig{})
	if err != nil {
		b.Fatal(err)
	}
	if invoke == nil {
		invoke = func(context.Context, string, []byte) Result { return Result{} }
	}
	m, err := Open(Config{DB: db, Coord: coord, Invoke: invoke, OnFire: onFire})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		m.Close()
		coord.Close()
		db.Close()
	})
	return m, coord
}

func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkScheduleJitter runs 100 schedules of rate(1 second), all due at
// the same instants (the worst case: 100 ticks at once), for 5 ticks
// each, and reports the jitter (fire time − due time) and, as
// p99-invoke, the time from due to the Invoker's call.
func BenchmarkScheduleJitter(b *testing.B) {
	const schedules, ticks = 100, 5
	var mu sync.Mutex
	var jitter, start []time.Duration
	done := make(chan struct{})
	m, _ := benchManager(b, func(f Fire) {
		mu.Lock()
		jitter, start = append(jitter, f.Fired.Sub(f.Due)), append(start, f.Started.Sub(f.Due))
		if len(jitter) == schedules*ticks {
			close(done)
		}
		mu.Unlock()
	}, nil)
	b.ResetTimer()
	for i := range schedules {
		if _, err := m.AddSchedule(Schedule{Name: fmt.Sprintf("s%03d", i), Expression: "rate(1 second)", Function: "f"}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(percentile(jitter, 0.5).Microseconds()), "p50-jitter-µs")
	b.ReportMetric(float64(percentile(jitter, 0.99).Microseconds()), "p99-jitter-µs")
	b.ReportMetric(float64(slices.Max(jitter).Microseconds()), "max-jitter-µs")
	b.ReportMetric(float64(percentile(start, 0.99).Microseconds()), "p99-invoke-µs")
}

// BenchmarkQueuePushToStart pushes one item at a time to an idle
// consumer and reports the time from the Push call (a durable commit
// included) to the consumer's invocation, and from Push's return.
func BenchmarkQueuePushToStart(b *testing.B) {
	started := make(chan time.Time, 1)
	finished := make(chan struct{}, 1)
	m, coord := benchManager(b, nil, func(context.Context, string, []byte) Result {
		started <- time.Now()
		return Result{}
	})
	m.cfg.recorded = make(chan string, 1)
	go func() {
		for range m.cfg.recorded {
			finished <- struct{}{}
		}
	}()
	if _, err := m.AddConsumer(Consumer{Name: "c", Bucket: "b", Queue: "q", Function: "f", BatchSize: 1}); err != nil {
		b.Fatal(err)
	}
	fromPush := make([]time.Duration, 0, b.N)
	fromCommit := make([]time.Duration, 0, b.N)
	item := []byte("x")
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := coord.Push("b", "q", item); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		at := <-started
		fromPush, fromCommit = append(fromPush, at.Sub(t0)), append(fromCommit, at.Sub(t1))
		<-finished // idle again before the next push
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(fromPush, 0.5).Microseconds()), "p50-push-to-start-µs")
	b.ReportMetric(float64(percentile(fromPush, 0.99).Microseconds()), "p99-push-to-start-µs")
	b.ReportMetric(float64(percentile(fromCommit, 0.5).Microseconds()), "p50-pushed-to-start-µs")
}

// BenchmarkConsumerThroughput pushes b.N items and reports how fast a
// consumer with batches of 10 works through them.
func BenchmarkConsumerThroughput(b *testing.B) {
	var got atomic.Int64
	all := make(chan struct{})
	var n int64
	m, coord := benchManager(b, nil, func(_ context.Context, _ string, p []byte) Result {
		return Result{}
	})
	m.cfg.OnFire = func(f Fire) {
		if got.Add(int64(f.Items)) == n {
			close(all)
		}
	}
	n = int64(b.N)
	items := make([][]byte, 0, 100)
	for i := range b.N {
		items = append(items, fmt.Appendf(nil, "item-%d", i))
		if len(items) == cap(items) || i == b.N-1 {
			if _, err := coord.Push("b", "q", items...); err != nil {
				b.Fatal(err)
			}
			items = items[:0]
		}
	}
	b.ResetTimer()
	start := time.Now()
	if _, err := m.AddConsumer(Consumer{Name: "c", Bucket: "b", Queue: "q", Function: "f", BatchSize: 10}); err != nil {
		b.Fatal(err)
	}
	<-all
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "items/s")
}
