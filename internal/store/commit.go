package store

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The committer is the DB's one group-commit path. Every writer that
// acknowledges before it commits (the KV write buffer, the flow engine's
// records, the usage ledger) registers as a Source; the committer's one
// goroutine runs cycles, and each cycle
//
//  1. asks every source that has something (woken, urgent, periodic and
//     due, or carrying records a failed cycle gave back) to append its
//     pending records to the cycle's one batch (Collect);
//  2. commits that batch once, with sync when any source asked for
//     durability or when the WAL sync is due (SyncInterval has passed
//     and something was written without sync since the last sync,
//     through the committer or not); an empty cycle that is due a sync
//     only syncs;
//  3. tells each source the outcome (Committed): on success it forgets
//     what it gave, on failure it keeps it and gives it again at its next
//     Collect, and the committer backs off before retrying.
//
// Cycles are sequential, so a source's records commit in the order it
// collected them, and one cycle's commit carries every source's records
// at once: one engine commit (a WAL write, and at most one fsync) per
// cycle instead of one per writer.
//
// Writes that must not wait for a cycle (a durable KV put, a registry
// record) use DB.Commit directly; Pebble groups their concurrent fsyncs.

// Source is a writer that commits through the DB's committer.
type Source interface {
	// Collect appends what the source has pending to b and reports
	// whether any of it must be durable. It runs on the committer's
	// goroutine, one cycle at a time.
	Collect(b *Batch) (durable bool)
	// Committed reports the outcome of the commit that carried what the
	// last Collect appended. On error the source keeps those records and
	// appends them again at its next Collect.
	Committed(err error)
}

// SourceConfig says when the committer collects from a source.
type SourceConfig struct {
	// Name identifies the source in logs.
	Name string
	// Window is how long records may gather after Wake before the cycle
	// that commits them (0: the next cycle). Urgent cuts it short.
	Window time.Duration
	// Every, when positive, collects from the source at least that often
	// whether woken or not (the usage ledger, which does not wake the
	// committer per record).
	Every time.Duration
}

// Feed is a registered source's handle on the committer.
type Feed struct {
	c      *committer
	src    Source
	cfg    SourceConfig
	woken  atomic.Bool
	urgent atomic.Bool

	// Under c.mu.
	gather time.Time // when a woken source's window ends (zero: not woken)
	due    time.Time // the next periodic collect (Every > 0)
	retry  bool      // the last cycle that carried it failed
	done   uint64    // the last cycle that carried it
	err    error     // that cycle's outcome
}

// Wake tells the committer the source has records: they commit within
// about its Window. It costs an atomic load when already woken.
func (f *Feed) Wake() {
	if !f.woken.Load() && !f.woken.Swap(true) {
		f.c.wake()
	}
}

// Urgent asks for a cycle now (a waiter, or records that must be durable).
func (f *Feed) Urgent() {
	f.woken.Store(true)
	if !f.urgent.Swap(true) {
		f.c.wake()
	}
}

// Flush returns once a cycle that started after the call has committed
// the source's records, with that cycle's error; ErrClosed once the
// committer has stopped.
func (f *Feed) Flush() error {
	c := f.c
	c.mu.Lock()
	target := c.started + 1
	c.mu.Unlock()
	f.Urgent()
	c.mu.Lock()
	defer c.mu.Unlock()
	for f.done < target && !c.exit {
		c.cond.Wait()
	}
	if f.done < target {
		return ErrClosed
	}
	return f.err
}

// Close commits what the source has pending and unregisters it; the
// committer never calls it again after Close returns.
func (f *Feed) Close() error {
	err := f.Flush()
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, g := range c.feeds {
		if g == f {
			c.feeds = append(c.feeds[:i:i], c.feeds[i+1:]...)
			break
		}
	}
	for c.busy {
		c.cond.Wait()
	}
	return err
}

type committer struct {
	eng       Engine
	syncEvery time.Duration
	log       *slog.Logger

	kick    chan struct{} // capacity 1
	stop    chan struct{}
	stopped chan struct{}

	mu       sync.Mutex
	cond     *sync.Cond // broadcast at the end of every cycle and at exit
	feeds    []*Feed    // copied on write: a cycle ranges over a snapshot
	started  uint64     // cycles begun
	busy     bool       // a cycle is collecting or committing
	exit     bool       // the loop has returned
	failures int        // cycles failed in a row (backoff)

	walSyncs atomic.Int64 // syncs made because the WAL sync was due (tests read it)
	cycles   atomic.Int64
}

func newCommitter(eng Engine, syncEvery time.Duration, log *slog.Logger) *committer {
	c := &committer{
		eng:       eng,
		syncEvery: syncEvery,
		log:       log,
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	go c.loop()
	return c
}

// register adds a source; see DB.Register.
func (c *committer) register(src Source, cfg SourceConfig) *Feed {
	f := &Feed{c: c, src: src, cfg: cfg}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Every > 0 {
		f.due = time.Now().Add(cfg.Every)
	}
	c.feeds = append(c.feeds[:len(c.feeds):len(c.feeds)], f)
	return f
}

func (c *committer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// next returns when the next cycle is due (zero: now).
func (c *committer) next(now, nextWAL time.Time) time.Time {
	at := nextWAL
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.feeds {
		if f.urgent.Load() {
			return time.Time{}
		}
		if f.woken.Load() && f.gather.IsZero() {
			f.gather = now.Add(f.cfg.Window)
		}
		if !f.gather.IsZero() && f.gather.Before(at) {
			at = f.gather
		}
		if f.cfg.Every > 0 && f.due.Before(at) {
			at = f.due
		}
		if f.retry {
			// Back off after failed cycles: 10 ms doubling to 1 s.
			if r := now.Add(min(10*time.Millisecond<<min(c.failures, 7), time.Second)); r.Before(at) {
				at = r
			}
		}
	}
	return at
}

func (c *committer) loop() {
	defer func() {
		c.mu.Lock()
		c.exit = true
		c.cond.Broadcast()
		c.mu.Unlock()
		close(c.stopped)
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	nextWAL := time.Now().Add(c.syncEvery)
	for {
		now := time.Now()
		at := c.next(now, nextWAL)
		if at.After(now) {
			timer.Reset(at.Sub(now))
			select {
			case <-c.stop:
				timer.Stop()
				// Sources close before the DB; one last cycle commits
				// and syncs whatever a source left behind.
				c.cycle(time.Now(), true)
				return
			case <-c.kick:
				timer.Stop()
				continue
			case <-timer.C:
				continue
			}
		}
		if c.cycle(now, !now.Before(nextWAL)) {
			nextWAL = now.Add(c.syncEvery)
		}
	}
}

// cycle runs one collect-commit-report cycle and reports whether it did
// the WAL's due check. walDue asks for that check.
func (c *committer) cycle(now time.Time, walDue bool) bool {
	c.mu.Lock()
	c.started++
	n := c.started
	c.busy = true
	feeds := c.feeds
	var take []*Feed
	for _, f := range feeds {
		woken := f.woken.Swap(false)
		urgent := f.urgent.Swap(false)
		periodic := f.cfg.Every > 0 && !now.Before(f.due)
		if woken || urgent || periodic || f.retry {
			take = append(take, f)
			f.gather = time.Time{}
			if f.cfg.Every > 0 && (periodic || urgent) {
				f.due = now.Add(f.cfg.Every)
			}
		}
	}
	c.mu.Unlock()

	// Sources that know their size reserve it (Batch.Reserve).
	b := c.eng.NewBatch(0)
	durable := false
	for _, f := range take {
		if f.src.Collect(b) {
			durable = true
		}
	}
	walSync := walDue && c.eng.Unsynced()
	var err error
	switch {
	case !b.Empty():
		err = c.eng.Apply(b, durable || walSync)
	case durable || walSync:
		err = c.eng.Sync()
	}
	b.Close()
	if walSync && err == nil {
		c.walSyncs.Add(1)
	}
	c.cycles.Add(1)
	for _, f := range take {
		f.src.Committed(err)
	}

	c.mu.Lock()
	for _, f := range take {
		f.done, f.err, f.retry = n, err, err != nil
	}
	if err != nil {
		if c.failures == 0 {
			c.log.Error("store: commit failed; sources keep their records and retry", "err", err)
		}
		c.failures++
	} else {
		c.failures = 0
	}
	c.busy = false
	c.cond.Broadcast()
	c.mu.Unlock()
	return walDue
}

// close stops the loop after a last cycle.
func (c *committer) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.stopped
}
