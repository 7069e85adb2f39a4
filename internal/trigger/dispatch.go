package trigger

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/clock"
)

// dispatcher fires every schedule's ticks from one goroutine and one
// timer: at each wake it takes every tick that is due, in due order, and
// hands each to its own goroutine. With one timer goroutine per schedule,
// 100 ticks due at the same instant were 100 goroutines waking together
// and competing with the invocations the first of them had started, and
// the last tick's fire time grew with the burst; here the fire times are
// taken in one loop before any invocation runs.
type dispatcher struct {
	clock clock.Clock
	wake  chan struct{}

	mu   sync.Mutex
	due  tickHeap
	seen uint64 // insertion order, to keep equal due times first in, first out
}

type tick struct {
	at   time.Time
	seq  uint64
	fire func(fired time.Time)
}

type tickHeap []*tick

func (h tickHeap) Len() int { return len(h) }
func (h tickHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h tickHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *tickHeap) Push(x any)   { *h = append(*h, x.(*tick)) }
func (h *tickHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

func newDispatcher(c clock.Clock) *dispatcher {
	return &dispatcher{clock: c, wake: make(chan struct{}, 1)}
}

// at asks for fire to be called at t, with the time it was called.
func (d *dispatcher) at(t time.Time, fire func(fired time.Time)) {
	d.mu.Lock()
	d.seen++
	heap.Push(&d.due, &tick{at: t, seq: d.seen, fire: fire})
	first := d.due[0].seq == d.seen
	d.mu.Unlock()
	if first {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// run is the dispatcher's loop, until ctx ends.
func (d *dispatcher) run(ctx context.Context) {
	for {
		d.mu.Lock()
		var next time.Time
		if len(d.due) > 0 {
			next = d.due[0].at
		}
		d.mu.Unlock()
		var timer clock.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = d.clock.NewTimer(next.Sub(d.clock.Now()))
			fire = timer.C()
		}
		select {
		case <-fire:
		case <-d.wake:
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if timer != nil {
			timer.Stop()
		}
		for {
			now := d.clock.Now()
			d.mu.Lock()
			if len(d.due) == 0 || d.due[0].at.After(now) {
				d.mu.Unlock()
				break
			}
			t := heap.Pop(&d.due).(*tick)
			d.mu.Unlock()
			t.fire(now)
		}
	}
}
