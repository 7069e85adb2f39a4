// Package clock is Mote's one source of time: the system clock in
// production and a Fake that tests advance, so code that waits (TTLs,
// leases, idle timeouts, retries, ids) can be tested without sleeping.
// It follows tailscale's tstime: an interface of the time package's
// functions that read or wait on the clock.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is what code reads time through.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Since returns the time elapsed since t.
	Since(t time.Time) time.Duration
	// NewTimer returns a timer that sends on its channel after d.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that sends on its channel every d.
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a time.Timer's methods; C is nil for AfterFunc timers.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a time.Ticker's methods.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// System is the operating system's clock.
type System struct{}

var _ Clock = System{}

func (System) Now() time.Time                  { return time.Now() }
func (System) Since(t time.Time) time.Duration { return time.Since(t) }
func (System) NewTimer(d time.Duration) Timer  { return sysTimer{time.NewTimer(d)} }
func (System) NewTicker(d time.Duration) Ticker {
	return sysTicker{time.NewTicker(d)}
}
func (System) AfterFunc(d time.Duration, f func()) Timer { return sysTimer{time.AfterFunc(d, f)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time        { return t.t.C }
func (t sysTimer) Stop() bool                 { return t.t.Stop() }
func (t sysTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type sysTicker struct{ t *time.Ticker }

func (t sysTicker) C() <-chan time.Time   { return t.t.C }
func (t sysTicker) Stop()                 { t.t.Stop() }
func (t sysTicker) Reset(d time.Duration) { t.t.Reset(d) }

// Or returns c, or the system clock when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return System{}
	}
	return c
}

// Fake is a clock that moves only when a test advances it. Timers,
// tickers and AfterFunc calls fire, in deadline order, when Advance or
// Set passes their deadline. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	cond    *sync.Cond // broadcast when a waiter is added
	now     time.Time
	waiters []*fakeTimer
	seq     int
}

var _ Clock = (*Fake)(nil)

// NewFake returns a Fake at start.
func NewFake(start time.Time) *Fake {
	f := &Fake{now: start}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	t.Reset(d)
	return t
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), period: d}
	t.Reset(d)
	return fakeTicker{t}
}

// Advance moves the clock forward by d, firing what falls due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.now.Add(d)
	f.mu.Unlock()
	f.Set(target)
}

// Set moves the clock to t (never backwards), firing what falls due, in
// deadline order; each fires with the clock at its deadline.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		if len(f.waiters) == 0 || f.waiters[0].when.After(t) {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		w.active = false
		if w.when.After(f.now) {
			f.now = w.when
		}
		now := f.now
		if w.period > 0 {
			w.when = now.Add(w.period)
			f.addLocked(w)
		}
		f.mu.Unlock()
		if w.fn != nil {
			go w.fn()
		} else {
			select {
			case w.c <- now:
			default: // a ticker drops ticks nobody read, as time.Ticker does
			}
		}
	}
}

// Waiters is how many timers, tickers and AfterFunc calls are pending.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// NextDeadline returns the earliest deadline of the pending timers,
// tickers and AfterFunc calls, or the zero time when none is pending: a
// test can Set the clock to it to fire exactly the next one.
func (f *Fake) NextDeadline() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiters) == 0 {
		return time.Time{}
	}
	return f.waiters[0].when
}

// WaitForWaiters blocks until at least n timers, tickers or AfterFunc
// calls are pending: a test's way to know that the code under test has
// started waiting before it advances the clock.
func (f *Fake) WaitForWaiters(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.waiters) < n {
		f.cond.Wait()
	}
}

func (f *Fake) addLocked(w *fakeTimer) {
	f.seq++
	w.seq = f.seq
	w.active = true
	i := sort.Search(len(f.waiters), func(i int) bool {
		o := f.waiters[i]
		return o.when.After(w.when) || (o.when.Equal(w.when) && o.seq > w.seq)
	})
	f.waiters = append(f.waiters, nil)
	copy(f.waiters[i+1:], f.waiters[i:])
	f.waiters[i] = w
	f.cond.Broadcast()
}

func (f *Fake) removeLocked(w *fakeTimer) bool {
	if !w.active {
		return false
	}
	for i, o := range f.waiters {
		if o == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			break
		}
	}
	w.active = false
	return true
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	fn     func()
	period time.Duration
	when   time.Time
	seq    int
	active bool // under f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.removeLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	was := t.f.removeLocked(t)
	t.when = t.f.now.Add(d)
	t.f.addLocked(t)
	t.f.mu.Unlock()
	if d <= 0 {
		t.f.Set(t.f.Now()) // due now
	}
	return was
}

type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time { return k.t.c }
func (k fakeTicker) Stop()               { k.t.Stop() }
func (k fakeTicker) Reset(d time.Duration) {
	k.t.f.mu.Lock()
	k.t.period = d
	k.t.f.mu.Unlock()
	k.t.Reset(d)
}
