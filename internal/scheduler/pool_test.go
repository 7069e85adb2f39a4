package scheduler

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// fakeModule is the scheduler's test harness: instances whose behaviour a
// test scripts through the event payload.
type fakeModule struct {
	started, closed atomic.Int64
	startErr        error
	startDelay      time.Duration
	startGate       chan struct{} // if set, starts wait until it is closed

	entered   chan struct{} // if set, "block" sends on it once running
	modClosed chan struct{} // if set, closed by the module's Close
	closeOnce sync.Once
}

type fakeInstance struct {
	m      *fakeModule
	broken bool
	closed atomic.Bool
	peak   atomic.Int64 // what "use:" invocations made it hold
}

func (i *fakeInstance) PeakMemory() int64 { return i.peak.Load() }

func (m *fakeModule) NewInstance(ctx context.Context) (runtime.Instance, error) {
	if m.startGate != nil {
		<-m.startGate
	}
	if m.startDelay > 0 {
		time.Sleep(m.startDelay)
	}
	if m.startErr != nil {
		return nil, m.startErr
	}
	m.started.Add(1)
	return &fakeInstance{m: m}, nil
}

func (m *fakeModule) Close(context.Context) error {
	if m.modClosed != nil {
		m.closeOnce.Do(func() { close(m.modClosed) })
	}
	return nil
}

func (i *fakeInstance) Invoke(ctx context.Context, ev *runtime.Event) (runtime.Result, runtime.Usage, error) {
	if i.closed.Load() {
		panic("invoke on a closed instance")
	}
	switch string(ev.Payload) {
	case "block":
		if i.m.entered != nil {
			i.m.entered <- struct{}{}
		}
		<-ctx.Done()
		return runtime.Result{}, runtime.Usage{}, ctx.Err()
	case "trap":
		i.broken = true
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.FunctionError, "trap")
	case "fail":
		return runtime.Result{}, runtime.Usage{}, errs.E(errs.FunctionError, "handled")
	}
	if use, ok := strings.CutPrefix(string(ev.Payload), "use:"); ok { // use:CPU:MEM[:WALL]
		f := strings.Split(use, ":")
		d, _ := time.ParseDuration(f[0])
		n, _ := strconv.ParseInt(f[1], 10, 64)
		var wall time.Duration
		if len(f) > 2 {
			wall, _ = time.ParseDuration(f[2])
		}
		storeMax(&i.peak, n)
		return runtime.Result{}, runtime.Usage{CPU: d, Wall: wall}, nil
	}
	if d, err := time.ParseDuration(string(ev.Payload)); err == nil {
		time.Sleep(d)
	}
	return runtime.Result{Output: ev.Payload}, runtime.Usage{}, nil
}

func (i *fakeInstance) Reusable() bool { return !i.broken }

func (i *fakeInstance) Close(context.Context) error {
	if i.closed.Swap(true) {
		panic("instance closed twice")
	}
	i.m.closed.Add(1)
	return nil
}

func newTestPool(t *testing.T, cfg PoolConfig) (*Scheduler, *Pool, *fakeModule, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	s := New(Config{ManualReap: true, Clock: clk})
	t.Cleanup(func() { s.Close(context.Background()) })
	m := &fakeModule{}
	p, _, err := s.Add("f@1", m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, p, m, clk
}

func invoke(p *Pool, payload string, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, _, cold, err := p.Invoke(ctx, &runtime.Event{Payload: []byte(payload)})
	return cold, err
}

func TestWarmInstanceIsReused(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 4, MaxQueue: 4})
	var colds []bool
	for i := 0; i < 3; i++ {
		cold, err := invoke(p, "x", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		colds = append(colds, cold)
	}
	if got, want := colds, []bool{true, false, false}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("cold flags: got %v, want %v", got, want)
	}
	if got := m.started.Load(); got != 1 {
		t.Errorf("instances started: got %d, want 1", got)
	}
}

func TestPoolGrowsQueuesAndRejects(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 2, MaxQueue: 1})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ { // occupy both instances
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Invoke(ctx, &runtime.Event{Payload: []byte("block")})
		}()
	}
	waitFor(t, func() bool { return p.Stats().Busy == 2 })
	queued := make(chan error, 1)
	go func() { _, err := invoke(p, "x", 5*time.Second); queued <- err }()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })

	// The queue is full: the next call is refused at once.
	if _, err := invoke(p, "x", time.Second); errs.CodeOf(err) != errs.Overloaded {
		t.Fatalf("over the queue: got %v, want overloaded", err)
	}
	cancel() // free both instances: the queued call runs on one of them
	if err := <-queued; err != nil {
		t.Fatalf("queued call: %v", err)
	}
	wg.Wait()
	if got := m.started.Load(); got != 2 {
		t.Errorf("instances started: got %d, want 2 (the ceiling)", got)
	}
	if got := p.Stats().Rejected; got != 1 {
		t.Errorf("rejected: got %d, want 1", got)
	}
}

// A queued invocation gives up at its deadline, whether its context
// carries it or only its event does (the flow engine hands the wasm
// runtime the caller's context and the deadline in the event).
func TestQueuedCallTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		invoke func(p *Pool) error
	}{
		{"context deadline", func(p *Pool) error {
			_, err := invoke(p, "x", 20*time.Millisecond)
			return err
		}},
		{"event deadline", func(p *Pool) error {
			_, _, _, err := p.Invoke(context.Background(), &runtime.Event{Payload: []byte("x"), Deadline: time.Now().Add(20 * time.Millisecond)})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p, _, _ := newTestPool(t, PoolConfig{MaxInstances: 1, MaxQueue: 8})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go p.Invoke(ctx, &runtime.Event{Payload: []byte("block")})
			waitFor(t, func() bool { return p.Stats().Busy == 1 })
			done := make(chan error, 1)
			go func() { done <- tc.invoke(p) }()
			select {
			case err := <-done:
				if errs.CodeOf(err) != errs.Overloaded {
					t.Fatalf("got %v, want overloaded", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a queued invocation waited past its deadline")
			}
			if got := p.Stats().Waiting; got != 0 {
				t.Errorf("waiting after the deadline: got %d, want 0", got)
			}
		})
	}
}

func TestBrokenInstanceIsReplaced(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 1, MaxQueue: 1})
	if _, err := invoke(p, "fail", time.Second); errs.CodeOf(err) != errs.FunctionError {
		t.Fatalf("got %v, want function_error", err)
	}
	if cold, _ := invoke(p, "x", time.Second); cold {
		t.Error("a handled error must keep the instance warm")
	}
	if _, err := invoke(p, "trap", time.Second); errs.CodeOf(err) != errs.FunctionError {
		t.Fatalf("got %v, want function_error", err)
	}
	cold, err := invoke(p, "x", time.Second)
	if err != nil || !cold {
		t.Errorf("after a trap: got cold=%v err=%v, want a fresh instance", cold, err)
	}
	waitFor(t, func() bool { return m.closed.Load() == 1 })
	if got := m.started.Load(); got != 2 {
		t.Errorf("started: got %d, want 2", got)
	}
}

func TestStartFailureIsInitError(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 1, MaxQueue: 1})
	m.startErr = errors.New("exec: no such file")
	_, err := invoke(p, "x", time.Second)
	if errs.CodeOf(err) != errs.InitError {
		t.Fatalf("got %v, want init_error", err)
	}
	m.startErr = nil
	if _, err := invoke(p, "x", time.Second); err != nil {
		t.Fatalf("after the fault clears: %v", err)
	}
}

func TestIdleInstancesScaleToZeroAndMinWarmStays(t *testing.T) {
	for _, tc := range []struct {
		name     string
		minWarm  int
		wantLive int
	}{{"to zero", 0, 0}, {"min warm", 2, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			s, p, _, clock := newTestPool(t, PoolConfig{MinWarm: tc.minWarm, MaxInstances: 4, MaxQueue: 4, IdleTimeout: time.Minute})
			if err := p.Warm(context.Background(), 3); err != nil {
				t.Fatal(err)
			}
			s.Reap(context.Background())
			if got := p.Stats().Live; got != 3 {
				t.Fatalf("before the idle timeout: live %d, want 3", got)
			}
			clock.Advance(2 * time.Minute)
			s.Reap(context.Background())
			waitFor(t, func() bool { return p.Stats().Live == tc.wantLive && p.Stats().Idle == tc.wantLive })
		})
	}
}

// TestReaperScalesToZeroOnItsClock runs the reaper itself (not a manual
// Reap) on a fake clock: idle instances stop once the clock passes their
// idle timeout and the reaper's next tick, with no test sleeping for
// either.
func TestReaperScalesToZeroOnItsClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	s := New(Config{Clock: clk, ReapEvery: time.Second})
	t.Cleanup(func() { s.Close(context.Background()) })
	p, _, err := s.Add("f@1", &fakeModule{}, PoolConfig{MaxInstances: 4, MaxQueue: 4, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Warm(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	clk.WaitForWaiters(1) // the reaper's ticker
	clk.Advance(30 * time.Second)
	if got := p.Stats().Live; got != 2 {
		t.Fatalf("half way to the idle timeout: live %d, want 2", got)
	}
	clk.Advance(31 * time.Second)
	waitFor(t, func() bool { return p.Stats().Live == 0 })
}

func TestMinWarmIsToppedUp(t *testing.T) {
	s, p, m, _ := newTestPool(t, PoolConfig{MinWarm: 2, MaxInstances: 4, MaxQueue: 4})
	s.Reap(context.Background())
	waitFor(t, func() bool { return p.Stats().Idle == 2 })
	if got := m.started.Load(); got != 2 {
		t.Errorf("started: got %d, want 2", got)
	}
	if cold, _ := invoke(p, "x", time.Second); cold {
		t.Error("min_warm instance should serve warm")
	}
}

func TestRetiredPoolIsRemoved(t *testing.T) {
	s, p, m, _ := newTestPool(t, PoolConfig{MinWarm: 1, MaxInstances: 2, MaxQueue: 2})
	if err := p.Warm(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	s.Retire("f@1")
	s.Reap(context.Background())
	if s.Pool("f@1") != nil {
		t.Error("retired idle pool still present")
	}
	if got := m.closed.Load(); got != 1 {
		t.Errorf("closed instances: got %d, want 1", got)
	}
}

// TestReviveRetiringPool: a rollback takes a retiring pool back into
// service (Revive, or Add of the same key) and the reaper then keeps it,
// also when Revive comes between reap seeing the pool retired and empty
// and its dropping it; a pool already dropped is not revived.
func TestReviveRetiringPool(t *testing.T) {
	s, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 2, MaxQueue: 2})
	if err := p.Warm(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	s.Retire("f@1")
	if got := s.Revive("f@1"); got != p {
		t.Fatalf("Revive: got %p, want the pool %p", got, p)
	}
	s.Reap(context.Background())
	if s.Pool("f@1") != p || m.closed.Load() != 0 {
		t.Fatalf("revived pool reaped: present %v, closed instances %d", s.Pool("f@1") != nil, m.closed.Load())
	}
	if _, err := invoke(p, "x", time.Second); err != nil {
		t.Errorf("revived pool: %v", err)
	}

	// Add of an existing key revives it too.
	s.Retire("f@1")
	if got, created, err := s.Add("f@1", p.mod, PoolConfig{MaxInstances: 1}); err != nil || created || got != p {
		t.Fatalf("Add: got %p created %v err %v, want the pool, not created", got, created, err)
	}
	s.Reap(context.Background())
	if s.Pool("f@1") != p {
		t.Fatal("pool revived by Add was reaped")
	}

	// Revive between reap's verdict and the drop: the drop is called off.
	s.Retire("f@1")
	if !p.reap() {
		t.Fatal("reap: retired idle pool not reported empty")
	}
	s.Revive("f@1")
	if s.drop(p) {
		t.Error("drop: dropped a pool revived after reap")
	}
	if s.Pool("f@1") != p {
		t.Error("the revived pool is gone")
	}

	// Once dropped, there is nothing to revive: the caller makes a new pool.
	s.Retire("f@1")
	s.Reap(context.Background())
	if s.Pool("f@1") != nil {
		t.Fatal("retired idle pool still present")
	}
	if got := s.Revive("f@1"); got != nil {
		t.Errorf("Revive after the drop: got %p, want nil", got)
	}
}

func TestCloseFailsWaitersAndClosesEverything(t *testing.T) {
	s, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 1, MaxQueue: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { p.Invoke(ctx, &runtime.Event{Payload: []byte("block")}); close(done) }()
	waitFor(t, func() bool { return p.Stats().Busy == 1 })
	waiter := make(chan error, 1)
	go func() { _, err := invoke(p, "x", 5*time.Second); waiter <- err }()
	waitFor(t, func() bool { return p.Stats().Waiting == 1 })
	s.Close(context.Background())
	if err := <-waiter; errs.CodeOf(err) != errs.Unavailable {
		t.Errorf("waiter: got %v, want unavailable", err)
	}
	cancel()
	<-done
	waitFor(t, func() bool { return m.closed.Load() == m.started.Load() })
}

// TestHammer runs many concurrent invocations, some failing, and checks the
// pool's books balance afterwards (run with -race).
func TestHammer(t *testing.T) {
	_, p, m, _ := newTestPool(t, PoolConfig{MaxInstances: 4, MaxQueue: 64})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				payload := "x"
				switch (g + i) % 17 {
				case 0:
					payload = "trap"
				case 5:
					payload = "100us"
				}
				if _, err := invoke(p, payload, 5*time.Second); err != nil && errs.CodeOf(err) != errs.FunctionError {
					failed.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d invocations failed with a scheduler error", n)
	}
	st := p.Stats()
	if st.Busy != 0 || st.Waiting != 0 || st.Live != st.Idle || st.Live > 4 {
		t.Errorf("books do not balance: %+v", st)
	}
	waitFor(t, func() bool { return m.started.Load()-m.closed.Load() == int64(p.Stats().Live) })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkPoolInvokeWarm(b *testing.B) {
	s := New(Config{ManualReap: true})
	defer s.Close(context.Background())
	p, _, _ := s.Add("f@1", &fakeModule{}, PoolConfig{MaxInstances: 4, MaxQueue: 4})
	ev := &runtime.Event{Payload: []byte("x")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := p.Invoke(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPoolInvokeParallel(b *testing.B) {
	s := New(Config{ManualReap: true})
	defer s.Close(context.Background())
	p, _, _ := s.Add("f@1", &fakeModule{}, PoolConfig{MaxInstances: 8, MaxQueue: 64})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		ev := &runtime.Event{Payload: []byte("x")}
		for pb.Next() {
			if _, _, _, err := p.Invoke(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestReplaceRetiresOldInstances: after Replace, idle instances of the old
// module are stopped at once, a busy one finishes its invocation and is
// stopped instead of reused, new invocations start from the new module,
// and the old module is closed with its last instance.
func TestReplaceRetiresOldInstances(t *testing.T) {
	_, p, m1, _ := newTestPool(t, PoolConfig{MaxInstances: 4, MaxQueue: 4})
	m1.entered = make(chan struct{}, 1)
	m1.modClosed = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	blocked := make(chan error, 1)
	go func() {
		_, _, _, err := p.Invoke(ctx, &runtime.Event{Payload: []byte("block")})
		blocked <- err
	}()
	<-m1.entered
	if _, err := invoke(p, "x", time.Second); err != nil { // a second instance, left idle
		t.Fatal(err)
	}
	m2 := &fakeModule{}
	if err := p.Replace(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	if got := m1.closed.Load(); got != 1 {
		t.Errorf("after Replace: %d old instances stopped, want 1 (the idle one)", got)
	}
	select {
	case <-m1.modClosed:
		t.Fatal("the old module was closed under its busy instance")
	default:
	}
	cold, err := invoke(p, "x", time.Second)
	if err != nil || !cold || m2.started.Load() != 1 {
		t.Errorf("first invocation after Replace: cold %v, err %v, %d new-module instances; want a cold start on the new module", cold, err, m2.started.Load())
	}
	cancel()
	if err := <-blocked; !errors.Is(err, context.Canceled) {
		t.Errorf("the in-flight invocation: got %v, want it to end as its context did", err)
	}
	<-m1.modClosed // closed once its last instance stopped
	if got := m1.closed.Load(); got != 2 {
		t.Errorf("old instances stopped: got %d, want 2", got)
	}
	for i := 0; i < 3; i++ {
		if cold, err := invoke(p, "x", time.Second); err != nil || cold {
			t.Errorf("invocation %d after the old instance ended: cold %v, err %v; want the new module's warm instance", i, cold, err)
		}
	}
	if got := m1.started.Load(); got != 2 {
		t.Errorf("old module started %d instances, want 2 (none after Replace)", got)
	}
}

// TestReplaceHammer: invocations from many goroutines while the module is
// replaced again and again. No instance is invoked after it was closed or
// closed twice (the fake panics), every invocation succeeds, and once the
// pool is quiet every replaced module is closed and all its instances
// stopped.
func TestReplaceHammer(t *testing.T) {
	_, p, m0, _ := newTestPool(t, PoolConfig{MaxInstances: 8, MaxQueue: 1000})
	m0.modClosed = make(chan struct{})
	mods := []*fakeModule{m0}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := invoke(p, "x", 5*time.Second); err != nil {
					failures.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		m := &fakeModule{modClosed: make(chan struct{})}
		mods = append(mods, m)
		if err := p.Replace(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond) // let invocations run on each module
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d invocations failed", n)
	}
	for i, m := range mods[:len(mods)-1] {
		select {
		case <-m.modClosed:
		case <-time.After(5 * time.Second):
			t.Fatalf("replaced module %d not closed", i)
		}
		if s, c := m.started.Load(), m.closed.Load(); s != c {
			t.Errorf("replaced module %d: %d instances started, %d stopped", i, s, c)
		}
	}
	select {
	case <-mods[len(mods)-1].modClosed:
		t.Error("the current module was closed")
	default:
	}
}
