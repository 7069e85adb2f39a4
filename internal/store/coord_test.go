package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

func newTestCoord(t testing.TB, dir string) (*Coord, *DB) {
	t.Helper()
	db := openTestDB(t, dir)
	c, err := OpenCoord(db, CoordConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return c, db
}

func TestCountersAtomicAndDurable(t *testing.T) {
	dir := t.TempDir()
	c, db := newTestCoord(t, dir)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := c.Add("jobs", "done", 1); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := c.Add("jobs", "done", -10); n != 790 {
		t.Errorf("counter = %d, want 790", n)
	}
	c.Close()
	if _, err := c.Add("jobs", "done", 1); errs.CodeOf(err) != errs.Unavailable {
		t.Errorf("Add after Close: %v, want unavailable", err)
	}
	db.Close()
	c, db = newTestCoord(t, dir)
	defer db.Close()
	if n, err := c.Counter("jobs", "done"); err != nil || n != 790 {
		t.Errorf("counter after reopen = %d, %v; want 790", n, err)
	}
}

func TestBarrier(t *testing.T) {
	c, db := newTestCoord(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	const n = 5
	orders := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx, err := c.Barrier(ctx, "b", "phase1", n, 5*time.Second)
			if err != nil {
				t.Error(err)
			}
			orders <- idx
		}()
	}
	wg.Wait()
	close(orders)
	seen := map[int]bool{}
	for o := range orders {
		seen[o] = true
	}
	if len(seen) != n {
		t.Errorf("arrival orders %v, want 1..%d each once", seen, n)
	}
	// A lone party times out and withdraws, so a later round of 2 works.
	if _, err := c.Barrier(ctx, "b", "phase2", 2, 20*time.Millisecond); errs.CodeOf(err) != errs.Timeout {
		t.Errorf("lonely barrier: %v, want timeout", err)
	}
	if _, err := c.Barrier(ctx, "b", "phase2", 2, 0); errs.CodeOf(err) != errs.Timeout {
		t.Errorf("second lonely barrier: %v, want timeout", err)
	}
	go c.Barrier(ctx, "b", "phase3", 2, time.Second)
	time.Sleep(10 * time.Millisecond)
	if _, err := c.Barrier(ctx, "b", "phase3", 3, time.Second); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("mismatched n: %v, want conflict", err)
	}
	if _, err := c.Barrier(ctx, "b", "phase3", 2, time.Second); err != nil {
		t.Errorf("second party: %v", err)
	}
}

func TestQueueBlockingPopAndRestart(t *testing.T) {
	dir := t.TempDir()
	c, db := newTestCoord(t, dir)
	ctx := context.Background()
	if _, err := c.Pop(ctx, "q", "work", 0); errs.CodeOf(err) != errs.Timeout {
		t.Errorf("pop on empty without wait: %v, want timeout", err)
	}
	got := make(chan string, 1)
	go func() {
		item, err := c.Pop(ctx, "q", "work", 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- string(item)
	}()
	time.Sleep(10 * time.Millisecond)
	if n, err := c.Push("q", "work", []byte("first")); err != nil || n > 1 {
		t.Fatalf("Push = %d, %v", n, err)
	}
	select {
	case item := <-got:
		if item != "first" {
			t.Errorf("popped %q, want first", item)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("blocked pop not woken by push")
	}
	c.Push("q", "work", []byte("a"), []byte("b"), []byte("c"))
	if item, _ := c.Pop(ctx, "q", "work", 0); string(item) != "a" {
		t.Errorf("pop = %q, want a (FIFO)", item)
	}
	c.Close()
	db.Close()

	c, db = newTestCoord(t, dir)
	defer db.Close()
	if n, _ := c.Len("q", "work"); n != 2 {
		t.Errorf("Len after restart = %d, want 2", n)
	}
	for _, want := range []string{"b", "c"} {
		if item, err := c.Pop(ctx, "q", "work", 0); string(item) != want {
			t.Errorf("pop after restart = %q, %v; want %q", item, err, want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, err := c.Pop(cctx, "q", "work", time.Minute); errs.CodeOf(err) != errs.Cancelled {
		t.Errorf("pop with cancelled ctx: %v, want cancelled", err)
	}
	if _, err := c.Push("q", "work", make([]byte, 2<<20)); errs.CodeOf(err) != errs.PayloadTooLarge {
		t.Errorf("oversized item: %v", err)
	}
}

func TestQueueHammerEveryItemOnce(t *testing.T) {
	c, db := newTestCoord(t, t.TempDir())
	defer db.Close()
	const producers, each = 4, 100
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.Push("q", "h", fmt.Appendf(nil, "%d-%d", p, i))
			}
		}()
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var cw sync.WaitGroup
	for range 4 {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for {
				item, err := c.Pop(context.Background(), "q", "h", 200*time.Millisecond)
				if errs.CodeOf(err) == errs.Timeout {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[string(item)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cw.Wait()
	if len(seen) != producers*each {
		t.Errorf("popped %d distinct items, want %d", len(seen), producers*each)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("item %s popped %d times", k, n)
		}
	}
}

func TestSignals(t *testing.T) {
	c, db := newTestCoord(t, t.TempDir())
	defer db.Close()
	ctx := context.Background()
	if n, _ := c.Publish("s", "go", []byte("nobody")); n != 0 {
		t.Errorf("publish with no waiters woke %d", n)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.WaitSignal(ctx, "s", "go", 5*time.Second)
			if err != nil || string(p) != "now" {
				t.Errorf("WaitSignal = %q, %v; want now", p, err)
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	woken := 0
	for woken < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		c.mu.Lock()
		ready := c.topics[string(coordKey("s", "s", "go"))] != nil && c.topics[string(coordKey("s", "s", "go"))].waiters == 3
		c.mu.Unlock()
		if ready {
			woken, _ = c.Publish("s", "go", []byte("now"))
		}
	}
	if woken != 3 {
		t.Errorf("publish woke %d, want 3", woken)
	}
	wg.Wait()
	if _, err := c.WaitSignal(ctx, "s", "go", 10*time.Millisecond); errs.CodeOf(err) != errs.Timeout {
		t.Errorf("wait without publish: %v, want timeout", err)
	}
}

// TestLeases runs on a fake clock: waiters are known to wait once their
// timers are pending, and a lease expires when the clock is advanced, so
// nothing sleeps.
func TestLeases(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	defer db.Close()
	clk := newFakeClock()
	c, err := OpenCoord(db, CoordConfig{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l1, err := c.Acquire(ctx, "l", "leader", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Acquire(ctx, "l", "leader", time.Minute, 0)
	if errs.CodeOf(err) != errs.Conflict || !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("second acquire: %v, want conflict", err)
	}
	if err := c.Release("l", "leader", "wrong-token"); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("release with wrong token: %v", err)
	}
	// A waiter gets the lease as soon as the holder releases it.
	got := make(chan Lease, 1)
	go func() {
		l, err := c.Acquire(ctx, "l", "leader", time.Minute, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	clk.WaitForWaiters(2) // its wait and the lease's expiry
	if err := c.Release("l", "leader", l1.Token); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2.Token == l1.Token {
		t.Error("new holder got the old token")
	}
	// An expired lease passes to the next acquirer without a release,
	// when its expiry comes and not before.
	if _, err := c.Renew("l", "leader", l2.Token, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	acquired := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, "l", "leader", time.Minute, 2*time.Second)
		acquired <- err
	}()
	clk.WaitForWaiters(2)
	clk.Advance(19 * time.Millisecond)
	select {
	case err := <-acquired:
		t.Fatalf("acquire returned (%v) before the held lease expired", err)
	default:
	}
	clk.Advance(time.Millisecond)
	if err := <-acquired; err != nil {
		t.Fatalf("acquire of an expiring lease: %v", err)
	}
	if err := c.Release("l", "leader", l2.Token); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("release by the expired holder: %v, want conflict", err)
	}
	if _, err := c.Acquire(ctx, "l", "x", 0, 0); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("zero ttl: %v", err)
	}
}
