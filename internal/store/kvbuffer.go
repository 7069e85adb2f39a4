package store

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Buffered KV writes.
//
// A buffered put does not commit to Pebble itself: a Pebble commit costs
// 1–2 µs even without sync, several times the budget of a put from a
// function. Instead the put stores its encoded record in its key stripe's
// write buffer, under the stripe lock it holds anyway, and a flusher
// goroutine commits everything buffered as one Pebble batch (without sync)
// about every FlushInterval. A key written many times between two flushes
// is committed once, with its last record.
//
// Epochs. The buffer has a current epoch; each stripe keeps, per key, the
// newest record of the current epoch and of the previous one. A flush
// cycle advances the epoch, collects the previous epoch's records from
// every stripe (taking each stripe lock once), commits them in one batch,
// and then forgets them. Because a put reads the epoch while holding its
// stripe lock, a cycle collects exactly the puts that read its epoch, and
// a put acknowledged before another began read the same epoch or an
// earlier one. So after a crash the buffered puts that survive are a
// prefix in acknowledgement order: if one survives, so does every put
// acknowledged before it (or the later write that replaced it).
//
// Reads look at the current epoch's record, then the previous one's, then
// in Pebble, all under the stripe lock, so they see every acknowledged write.
//
// Direct writes. Writes that commit to Pebble themselves (durable puts,
// deletes, batches, expiry) must not be overtaken by an older buffered
// record of the same key, or the older record would overwrite them in
// Pebble and on recovery. Such a write first waits, with its stripe lock
// released, until no buffered record of its key is in a cycle that has
// not committed (settle), then commits, then drops any buffered record of
// its key (which it supersedes) before releasing the lock.
//
// Back-pressure: the bytes buffered are counted (an overwrite is counted
// again until its epoch is flushed, erring towards less memory), and a put
// that finds MaxBufferedBytes buffered waits for a flush cycle first.

// stripe is one of the KV's key stripes: the lock every write to its keys
// holds, and their buffered records of the current and previous epoch.
type stripe struct {
	mu sync.Mutex
	// slots holds every key of the stripe with a buffered record. A slot
	// stays while its key is written in every epoch, so a put to a hot key
	// allocates only its record.
	slots map[string]*slot
	// bytes[e&1] is what epoch e's puts added to writeBuffer.pending.
	bytes [2]int64
	_     [32]byte // one cache line per stripe
}

// slot is a key's newest buffered record of epoch e in rec[e&1] (nil:
// none), for the current epoch and the previous one.
type slot struct {
	key string
	rec [2][]byte
}

// pendingOverhead approximates what a buffered record costs beyond its key
// and record bytes (map slot, slice header).
const pendingOverhead = 48

// writeBuffer is the flusher's state. Lock order: a stripe lock, then mu.
type writeBuffer struct {
	epoch   atomic.Uint64 // current epoch; starts at 1
	done    atomic.Uint64 // highest epoch whose records are committed
	pending atomic.Int64  // bytes buffered and not yet committed
	kickAt  int64         // a put that takes pending past a multiple wakes the flusher
	urgent  atomic.Bool   // a waiter wants the next cycle now
	kick    chan struct{} // wakes the flusher (capacity 1)
	stopped chan struct{} // closed once the flusher has exited

	mu   sync.Mutex
	cond *sync.Cond // broadcast on each completed cycle and on exit
	exit bool       // under mu: the flusher has exited
	err  error      // under mu: a final flush that failed

	pairs   []pendingRec // the flusher's scratch
	scratch []byte

	// commitHook, when set (by tests), runs before each flush commit: a
	// fault seam to hold a cycle in flight.
	commitHook func()
}

type pendingRec struct {
	key string
	rec []byte
}

func (b *writeBuffer) init(maxBytes int64) {
	// Flushing at an eighth of the limit keeps a cycle's batch well under
	// the limit and, unless the flusher lags, under Pebble's large-batch
	// threshold (half a 4 MiB memtable), so it is an ordinary memtable
	// insert. (A 2 MiB limit, which would rule large batches out, measured
	// no better: smaller cycles coalesce less.)
	b.kickAt = max(maxBytes/8, 4<<10)
	b.epoch.Store(1)
	b.kick = make(chan struct{}, 1)
	b.stopped = make(chan struct{})
	b.cond = sync.NewCond(&b.mu)
}

func (b *writeBuffer) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// added accounts n more buffered bytes and wakes the flusher when the
// buffer was empty or crossed a kick threshold.
func (b *writeBuffer) added(n int64) {
	now := b.pending.Add(n)
	if before := now - n; before == 0 || before/b.kickAt != now/b.kickAt {
		b.wake()
	}
}

// waitDone blocks until the records of epoch e are committed or the
// flusher has exited, and reports whether they were committed.
func (b *writeBuffer) waitDone(e uint64) bool {
	if b.done.Load() >= e {
		return true
	}
	b.urgent.Store(true)
	b.wake()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.done.Load() < e && !b.exit {
		b.cond.Wait()
	}
	return b.done.Load() >= e
}

// bufferLocked stores rec as k's newest record; the caller holds s.mu and
// has checked that the KV is open.
func (kv *KV) bufferLocked(s *stripe, k []byte, rec []byte) {
	e := kv.buf.epoch.Load() & 1
	sl := s.slots[string(k)]
	if sl == nil {
		if s.slots == nil {
			s.slots = make(map[string]*slot)
		}
		sl = &slot{key: string(k)}
		s.slots[sl.key] = sl
	}
	sl.rec[e] = rec
	n := int64(len(k)+len(rec)) + pendingOverhead
	s.bytes[e] += n
	kv.buf.added(n)
}

// bufferedLocked returns k's newest buffered record, if any; the caller
// holds s.mu.
func (kv *KV) bufferedLocked(s *stripe, k []byte) ([]byte, bool) {
	if len(s.slots) == 0 {
		return nil, false
	}
	sl := s.slots[string(k)]
	if sl == nil {
		return nil, false
	}
	e := kv.buf.epoch.Load()
	if rec := sl.rec[e&1]; rec != nil {
		return rec, true
	}
	if rec := sl.rec[(e-1)&1]; rec != nil {
		return rec, true
	}
	return nil, false
}

// unsettledLocked returns the epoch to wait for when a buffered record of
// k is in a cycle that may be committing now, or 0; the caller holds s.mu.
// A record of the current epoch cannot be collected while s.mu is held,
// so only the previous epoch's can be in flight.
func (kv *KV) unsettledLocked(s *stripe, k []byte) uint64 {
	if len(s.slots) == 0 {
		return 0
	}
	prev := kv.buf.epoch.Load() - 1
	if kv.buf.done.Load() >= prev {
		return 0
	}
	if sl := s.slots[string(k)]; sl != nil && sl.rec[prev&1] != nil {
		return prev
	}
	return 0
}

// dropBufferedLocked forgets k's buffered records after a direct write to
// k has committed; the caller holds s.mu. Their bytes stay counted until
// their epoch is flushed.
func dropBufferedLocked(s *stripe, k []byte) {
	if len(s.slots) == 0 {
		return
	}
	if sl := s.slots[string(k)]; sl != nil {
		sl.rec = [2][]byte{} // the flusher deletes the empty slot
	}
}

// lockSettled locks the stripe of k for a direct write: it returns with
// the lock held and no buffered record of k in flight.
func (kv *KV) lockSettled(k []byte) *stripe {
	s := kv.stripeOf(k)
	for {
		s.mu.Lock()
		e := kv.unsettledLocked(s, k)
		if e == 0 {
			return s
		}
		s.mu.Unlock()
		kv.buf.waitDone(e)
	}
}

// waitForRoom makes a buffered put wait while MaxBufferedBytes are
// buffered, so a put storm cannot outrun the flusher without bound. Each
// completed cycle frees its epoch's bytes, so it waits for the next one
// (not for the current epoch's, which would stall the put for two cycles
// and leave the flusher idle behind it).
func (kv *KV) waitForRoom() error {
	for kv.buf.pending.Load() >= kv.cfg.MaxBufferedBytes {
		if kv.closed.Load() {
			return closedErr()
		}
		if !kv.buf.waitDone(kv.buf.done.Load()+1) && kv.closed.Load() {
			return closedErr()
		}
	}
	return nil
}

// flushBuffered returns once every buffered write acknowledged before the
// call is committed to Pebble (without sync). Listing calls it so that
// Pebble's iterator sees what the buffer holds.
func (kv *KV) flushBuffered() error {
	if kv.buf.pending.Load() == 0 {
		return nil
	}
	if !kv.buf.waitDone(kv.buf.epoch.Load()) {
		return closedErr()
	}
	return nil
}

// flushLoop is the flusher goroutine: it sleeps until a put wakes it,
// lets FlushInterval's worth of puts gather (less when a waiter or a full
// buffer asks), and flushes one epoch. On stop it flushes two epochs: the
// one current when Close marked the KV closed may still receive the puts
// that checked before the mark.
func (kv *KV) flushLoop() {
	b := &kv.buf
	defer func() {
		b.mu.Lock()
		b.exit = true
		b.cond.Broadcast()
		b.mu.Unlock()
		close(b.stopped)
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if b.pending.Load() == 0 && !b.urgent.Load() {
			select {
			case <-kv.stop:
				kv.finalFlush()
				return
			case <-b.kick:
			}
		}
		if !b.urgent.Swap(false) {
			timer.Reset(kv.cfg.FlushInterval)
			select {
			case <-kv.stop:
				timer.Stop()
				kv.finalFlush()
				return
			case <-b.kick:
				timer.Stop()
			case <-timer.C:
			}
		}
		kv.flushCycle(false)
	}
}

func (kv *KV) finalFlush() {
	kv.flushCycle(true)
	kv.flushCycle(true)
}

// flushCycle advances the epoch and commits the previous epoch's records.
// A failed commit is retried until it succeeds (the writes were
// acknowledged), except at close, where the error is kept for Close.
func (kv *KV) flushCycle(closing bool) {
	b := &kv.buf
	e := b.epoch.Add(1) - 1
	pairs := b.pairs[:0]
	var bytes int64
	for i := range kv.stripes {
		s := &kv.stripes[i]
		s.mu.Lock()
		for _, sl := range s.slots {
			if rec := sl.rec[e&1]; rec != nil {
				pairs = append(pairs, pendingRec{sl.key, rec})
			}
		}
		bytes += s.bytes[e&1]
		s.bytes[e&1] = 0
		s.mu.Unlock()
	}
	if b.commitHook != nil && len(pairs) > 0 {
		b.commitHook()
	}
	for backoff := 10 * time.Millisecond; len(pairs) > 0; backoff = min(2*backoff, time.Second) {
		err := kv.commitPending(pairs)
		if err == nil {
			break
		}
		if closing {
			kv.cfg.Logger.Error("kv: buffered writes lost at close", "records", len(pairs), "err", err)
			b.mu.Lock()
			b.err = internalErr(err, "kv: flushing buffered writes failed")
			b.mu.Unlock()
			break
		}
		kv.cfg.Logger.Warn("kv: flushing buffered writes failed; retrying", "records", len(pairs), "err", err)
		select {
		case <-kv.stop: // one more try, then Close reports the loss
			closing = true
		case <-time.After(backoff):
		}
	}
	// Empty the committed maps before announcing the cycle, so that an
	// epoch marked done has nothing left buffered (reads then go to
	// Pebble, which has it all). No waiter holds a stripe lock.
	for i := range kv.stripes {
		s := &kv.stripes[i]
		s.mu.Lock()
		for k, sl := range s.slots {
			sl.rec[e&1] = nil
			if sl.rec[(e+1)&1] == nil {
				delete(s.slots, k)
			}
		}
		if len(s.slots) == 0 {
			s.slots = nil // a map never shrinks; drop one a storm grew
		}
		s.mu.Unlock()
	}
	b.pending.Add(-bytes)
	b.mu.Lock()
	b.done.Store(e)
	b.cond.Broadcast()
	b.mu.Unlock()
	clear(pairs)
	b.pairs = pairs[:0]
}

// commitPending writes records (and the expiry index entries of those
// with a TTL) in one batch without sync.
func (kv *KV) commitPending(pairs []pendingRec) error {
	size := 0
	for _, p := range pairs {
		size += len(p.key) + len(p.rec) + 16
	}
	batch := kv.db.Pebble().NewBatchWithSize(size)
	defer batch.Close()
	key := kv.buf.scratch[:0]
	for _, p := range pairs {
		key = append(key[:0], p.key...)
		if err := batch.Set(key, p.rec, nil); err != nil {
			return err
		}
		if exp := int64(binary.LittleEndian.Uint64(p.rec[8:])); exp != 0 {
			if err := batch.Set(expiryKey(exp, key), nil, nil); err != nil {
				return err
			}
		}
	}
	kv.buf.scratch = key
	var recs []changeRec
	for _, p := range pairs {
		if !kv.cfg.Changes.active() {
			break
		}
		if k := []byte(p.key); kv.cfg.Changes.watching(k) {
			recs = append(recs, changeRec{key: k, ch: Change{Op: "put", Version: binary.LittleEndian.Uint64(p.rec)}})
		}
	}
	return kv.cfg.Changes.commit(batch, pebble.NoSync, recs...)
}
