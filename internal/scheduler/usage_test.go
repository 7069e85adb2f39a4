package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/runtime"
)

func TestRecommendMemory(t *testing.T) {
	for _, tc := range []struct{ peak, want int64 }{
		{0, 0},
		{1, 16 << 20},
		{12 << 20, 16 << 20},
		{13 << 20, 24 << 20}, // 16.25 MiB rounds up to 24
		{100 << 20, 128 << 20},
		{128 << 20, 160 << 20},
	} {
		if got := RecommendMemory(tc.peak); got != tc.want {
			t.Errorf("RecommendMemory(%d MiB): got %d MiB, want %d MiB", tc.peak>>20, got>>20, tc.want>>20)
		}
	}
}

// TestPoolRecordsUsage: a pool reports its instances' peak memory and
// CPU per invocation, and the memory limit it recommends from them.
func TestPoolRecordsUsage(t *testing.T) {
	_, p, _, _ := newTestPool(t, PoolConfig{MaxInstances: 2})
	for _, ev := range []string{"use:1ms:1000", "use:3ms:50000000", "use:2ms:2000"} {
		if _, _, _, err := p.Invoke(context.Background(), &runtime.Event{Payload: []byte(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Stats()
	if st.PeakMemory != 50000000 || st.MaxCPU != 3*time.Millisecond || st.MeanCPU != 2*time.Millisecond {
		t.Fatalf("got peak %d, max CPU %v, mean CPU %v; want 50000000, 3ms, 2ms", st.PeakMemory, st.MaxCPU, st.MeanCPU)
	}
	if st.RecommendedMemory != RecommendMemory(50000000) {
		t.Fatalf("recommended %d, want %d", st.RecommendedMemory, RecommendMemory(50000000))
	}
}

// TestPrewarm: Prewarm starts one instance when none is ready, one at a
// time, and none when one is idle.
func TestPrewarm(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 4})
	if !p.Prewarm() {
		t.Fatal("Prewarm of an empty pool started nothing")
	}
	if p.Prewarm() {
		t.Fatal("a second Prewarm started another while the first was starting")
	}
	waitFor(t, func() bool { return p.Stats().Idle == 1 })
	if p.Prewarm() {
		t.Fatal("Prewarm started an instance beside an idle one")
	}
	if _, cold, _ := invokeCold(t, p, "x"); cold {
		t.Fatal("the invocation after Prewarm was a cold start")
	}
	if got := m.started.Load(); got != 1 {
		t.Fatalf("started %d instances, want 1", got)
	}
}

func invokeCold(t *testing.T, p *Pool, ev string) ([]byte, bool, error) {
	t.Helper()
	res, _, cold, err := p.Invoke(context.Background(), &runtime.Event{Payload: []byte(ev)})
	return res.Output, cold, err
}

// TestArrivalWaitsForPrewarm: an invocation arriving while Prewarm's
// instance starts takes that instance instead of starting another, and
// is reported as a cold start (it waited for one).
func TestArrivalWaitsForPrewarm(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 4})
	m.startGate = make(chan struct{})
	if !p.Prewarm() {
		t.Fatal("Prewarm started nothing")
	}
	type answer struct {
		out  []byte
		cold bool
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		res, _, cold, err := p.Invoke(context.Background(), &runtime.Event{Payload: []byte("x")})
		done <- answer{res.Output, cold, err}
	}()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })
	close(m.startGate)
	a := <-done
	if a.err != nil || string(a.out) != "x" {
		t.Fatalf("got %q, %v", a.out, a.err)
	}
	if !a.cold {
		t.Error("an invocation that waited for the prewarmed start is not reported cold")
	}
	if got := m.started.Load(); got != 1 {
		t.Fatalf("started %d instances, want 1: the arrival started its own", got)
	}
}

// TestPredictedWarm: from the arrival rate and the invocations' duration
// the pool keeps enough instances live for the next arrival to find one
// idle (L + 2√L by Little's law), and lets them go when arrivals stop.
func TestPredictedWarm(t *testing.T) {
	s, p, _, clock := newTestPool(t, PoolConfig{MaxInstances: 16, IdleTimeout: time.Minute})
	ctx := context.Background()
	s.Reap(ctx) // the model's start
	for range 50 {
		if _, _, _, err := p.Invoke(ctx, &runtime.Event{Payload: []byte("use:1ms:1000:100ms")}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second)
	s.Reap(ctx)
	// 50 arrivals in 1 s, averaged with the 0 before: 25/s; 100 ms each:
	// L = 2.5, so ⌈2.5 + 2√2.5⌉ = 6 live.
	if got := p.Stats().Predicted; got != 6 {
		t.Fatalf("predicted %d, want 6", got)
	}
	waitFor(t, func() bool { st := p.Stats(); return st.Live == 6 && st.Idle == 6 })
	// No more arrivals: the rate halves each reap, the prediction falls
	// to 0, and the idle timeout scales the pool to zero.
	for range 3 {
		clock.Advance(time.Second)
		s.Reap(ctx)
	}
	if got := p.Stats().Predicted; got != 0 {
		t.Fatalf("predicted %d after arrivals stopped, want 0", got)
	}
	clock.Advance(2 * time.Minute)
	s.Reap(ctx)
	waitFor(t, func() bool { return p.Stats().Live == 0 })
}
