package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/runtime"
)

// Config configures the scheduler.
type Config struct {
	Logger     *slog.Logger
	ReapEvery  time.Duration // how often idle pools are scaled down; default 1s
	Clock      clock.Clock   // idle timeouts and the reaper (default: the system clock)
	ManualReap bool          // tests drive Reap themselves
	// OnStart, if set, is told of every instance start (a cold start or a
	// pre-warm) of the pool key: how long it took and its error.
	OnStart func(key string, took time.Duration, err error)
}

// Scheduler owns every pool.
type Scheduler struct {
	cfg   Config
	mu    sync.RWMutex
	pools map[string]*Pool
	stop  chan struct{}
	wg    sync.WaitGroup
}

// New returns a scheduler and starts its reaper.
func New(cfg Config) *Scheduler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReapEvery <= 0 {
		cfg.ReapEvery = time.Second
	}
	cfg.Clock = clock.Or(cfg.Clock)
	s := &Scheduler{cfg: cfg, pools: map[string]*Pool{}, stop: make(chan struct{})}
	if !cfg.ManualReap {
		s.wg.Add(1)
		go s.reaper()
	}
	return s
}

// Add creates the pool for a function version key over mod. If a pool
// with that key exists it is returned (and mod is not used), taken back
// into service if it was retiring.
func (s *Scheduler) Add(key string, mod runtime.Module, cfg PoolConfig) (*Pool, bool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pools[key]; ok {
		p.unretire()
		return p, false, nil
	}
	p := newPool(key, mod, cfg, s.cfg.Logger, s.cfg.Clock.Now)
	p.onStart = s.cfg.OnStart
	s.pools[key] = p
	return p, true, nil
}

// Pool returns the pool for key, or nil.
func (s *Scheduler) Pool(key string) *Pool {
	s.mu.RLock()
	p := s.pools[key]
	s.mu.RUnlock()
	return p
}

// Revive returns the pool for key, taken back into service if it was
// retiring (a rollback to the version it serves), or nil when there is
// none. A retiring pool the reaper has not dropped yet is kept: Reap
// checks again under the same lock before it drops one.
func (s *Scheduler) Revive(key string) *Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[key]
	if p != nil {
		p.unretire()
	}
	return p
}

// Retire marks a pool as no longer taking new traffic: it scales to zero
// as its instances go idle, then is removed (and its module closed).
func (s *Scheduler) Retire(key string) {
	if p := s.Pool(key); p != nil {
		p.mu.Lock()
		p.retiring = true
		p.mu.Unlock()
	}
}

// Remove closes and drops a pool at once.
func (s *Scheduler) Remove(ctx context.Context, key string) {
	s.mu.Lock()
	p := s.pools[key]
	delete(s.pools, key)
	s.mu.Unlock()
	if p != nil {
		p.close()
		p.closeModules(ctx)
	}
}

// Pools returns every pool.
func (s *Scheduler) Pools() []*Pool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Pool, 0, len(s.pools))
	for _, p := range s.pools {
		out = append(out, p)
	}
	return out
}

// Reap runs one pass of idle scale-down and min-warm top-up over every pool.
func (s *Scheduler) Reap(ctx context.Context) {
	for _, p := range s.Pools() {
		if p.reap() && s.drop(p) {
			p.close()
			p.closeModules(ctx)
		}
	}
}

// drop removes p if it is still retired and empty, and reports whether
// it did: between reap seeing it so and this, Revive may have taken it
// back (or Remove dropped it already).
func (s *Scheduler) drop(p *Pool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pools[p.key] != p {
		return false
	}
	p.mu.Lock()
	empty := p.retiring && p.live == 0
	p.mu.Unlock()
	if empty {
		delete(s.pools, p.key)
	}
	return empty
}

func (s *Scheduler) reaper() {
	defer s.wg.Done()
	t := s.cfg.Clock.NewTicker(s.cfg.ReapEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C():
			s.Reap(context.Background())
		}
	}
}

// Close stops the reaper and closes every pool and module. In-flight
// invocations finish first if the caller drained them (system.Shutdown).
func (s *Scheduler) Close(ctx context.Context) error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	s.mu.Lock()
	pools := s.pools
	s.pools = map[string]*Pool{}
	s.mu.Unlock()
	for _, p := range pools {
		p.close()
		p.closeModules(ctx)
	}
	return nil
}
