package trigger

import (
	"sort"
	"sync"
	"time"
)

// Clock is the time source of every trigger: schedules wait on it, retry
// backoff and batch windows too, so tests move time instead of sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends on its channel once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// ManualClock is a Clock that moves only when told (Advance, Set); its
// timers fire as time passes their deadline. Tests use WaitTimers to know
// that the code under test has started waiting before moving time.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
	cond   *sync.Cond
}

// NewManualClock returns a ManualClock reading now.
func NewManualClock(now time.Time) *ManualClock {
	c := &ManualClock{now: now}
	c.cond = sync.NewCond(&c.mu)
	return c
}

type manualTimer struct {
	c       *ManualClock
	at      time.Time
	ch      chan time.Time
	stopped bool
	fired   bool
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	t.c.cond.Broadcast()
	return was
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer firing once the clock reaches now+d.
func (c *ManualClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	c.cond.Broadcast()
	return t
}

// Advance moves the clock d forward, firing the timers it passes in
// deadline order.
func (c *ManualClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never backwards), firing the timers it passes.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	keep := c.timers[:0]
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(c.now):
			tm.fired = true
			tm.ch <- tm.at
		default:
			keep = append(keep, tm)
		}
	}
	c.timers = keep
	c.cond.Broadcast()
}

// Pending returns how many timers wait to fire.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pendingLocked()
}

func (c *ManualClock) pendingLocked() int {
	n := 0
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

// WaitTimers blocks until at least n timers wait to fire.
func (c *ManualClock) WaitTimers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.pendingLocked() < n {
		c.cond.Wait()
	}
}

// NextDeadline returns the earliest pending timer's deadline (zero if none).
func (c *ManualClock) NextDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at time.Time
	for _, t := range c.timers {
		if !t.stopped && !t.fired && (at.IsZero() || t.at.Before(at)) {
			at = t.at
		}
	}
	return at
}
