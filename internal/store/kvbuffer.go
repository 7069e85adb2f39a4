package store

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// Buffered KV writes.
//
// A buffered put does not commit to Pebble itself: a Pebble commit costs
// 1–2 µs even without sync, several times the budget of a put from a
// function. Instead the put stores its encoded record in its key stripe's
// write buffer, under the stripe lock it holds anyway, and the DB's
// committer (commit.go), of which the buffer is a Source, commits
// everything buffered in its next cycle's batch (without sync) about
// every FlushInterval. A key written many times between two flushes
// is committed once, with its last record.
//
// Epochs. The buffer has a current epoch; each stripe keeps, per key, the
// newest record of the current epoch and of the previous one. A committer
// cycle advances the epoch, collects the previous epoch's records from
// every stripe (taking each stripe lock once), commits them in one batch,
// and then forgets them. A cycle whose commit failed keeps them and the
// next cycle commits the same epoch again before advancing, so epochs
// still commit in order. Because a put reads the epoch while holding its
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

// writeBuffer is the write buffer's state; the DB's committer (commit.go)
// collects from it. Lock order: a stripe lock, then mu.
type writeBuffer struct {
	epoch   atomic.Uint64 // current epoch; starts at 1
	done    atomic.Uint64 // highest epoch whose records are committed
	pending atomic.Int64  // bytes buffered and not yet committed
	kickAt  int64         // a put that takes pending past a multiple asks for a cycle now
	feed    *Feed         // the KV's handle on the committer

	mu     sync.Mutex
	cond   *sync.Cond // broadcast after each commit outcome and at close
	cycles uint64     // under mu: commit outcomes reported
	failed error      // under mu: the last outcome, when it was a failure
	closed bool       // under mu: Close has flushed; nothing commits any more

	// The committer's side, used only on its goroutine: the epoch being
	// committed (0: none; set while a failed commit waits for a retry),
	// its records and its bytes.
	inflight      uint64
	pairs         []pendingRec
	inflightBytes int64
	scratch       []byte
	changeFirst   uint64 // the change log entries Collect added: the first's seq
	changes       int    // and how many (0: none)

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
	// the limit and, unless the committer lags, under Pebble's large-batch
	// threshold (half a 4 MiB memtable), so it is an ordinary memtable
	// insert. (A 2 MiB limit, which would rule large batches out, measured
	// no better: smaller cycles coalesce less.)
	b.kickAt = max(maxBytes/8, 4<<10)
	b.epoch.Store(1)
	b.cond = sync.NewCond(&b.mu)
}

// added accounts n more buffered bytes and wakes the committer when the
// buffer was empty, or asks for a cycle now when it crossed a kick
// threshold.
func (b *writeBuffer) added(n int64) {
	now := b.pending.Add(n)
	before := now - n
	switch {
	case before == 0:
		b.feed.Wake()
	case before/b.kickAt != now/b.kickAt:
		b.feed.Urgent()
	}
}

// waitDone blocks until the records of epoch e are committed. It returns
// the error of a commit that failed meanwhile (the records stay buffered
// and are retried), or closedErr once the KV has closed.
func (b *writeBuffer) waitDone(e uint64) error {
	if b.done.Load() >= e {
		return nil
	}
	b.feed.Urgent()
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := b.cycles
	for b.done.Load() < e {
		if b.closed {
			return closedErr()
		}
		if b.cycles != seen {
			if b.failed != nil {
				return internalErr(b.failed, "kv: committing buffered writes failed")
			}
			// A cycle committed an earlier epoch (one a failed cycle
			// had kept): ask for the next.
			seen = b.cycles
			b.feed.Urgent()
		}
		b.cond.Wait()
	}
	return nil
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
		sl.rec = [2][]byte{} // the committed cycle deletes the empty slot
	}
}

// lockSettled locks the stripe of k for a direct write: it returns with
// the lock held and no buffered record of k in flight, or an error (and
// no lock) when that record's commit failed.
func (kv *KV) lockSettled(k []byte) (*stripe, error) {
	s := kv.stripeOf(k)
	for {
		s.mu.Lock()
		e := kv.unsettledLocked(s, k)
		if e == 0 {
			return s, nil
		}
		s.mu.Unlock()
		if err := kv.buf.waitDone(e); err != nil {
			return nil, err
		}
	}
}

// waitForRoom makes a buffered put wait while MaxBufferedBytes are
// buffered, so a put storm cannot outrun the committer without bound. Each
// completed cycle frees its epoch's bytes, so it waits for the next one
// (not for the current epoch's, which would stall the put for two cycles
// and leave the committer idle behind it).
func (kv *KV) waitForRoom() error {
	for kv.buf.pending.Load() >= kv.cfg.MaxBufferedBytes {
		if kv.closed.Load() {
			return closedErr()
		}
		if err := kv.buf.waitDone(kv.buf.done.Load() + 1); err != nil {
			return err
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
	return kv.buf.waitDone(kv.buf.epoch.Load())
}

// kvSource is the KV as the committer's Source.
type kvSource KV

// Collect advances the epoch and appends the previous epoch's records
// (and the expiry index entries of those with a TTL) to b; after a failed
// commit it appends the same epoch's records again instead, so epochs
// commit in order and at most two are ever buffered.
func (src *kvSource) Collect(batch *Batch) bool {
	kv := (*KV)(src)
	b := &kv.buf
	if b.inflight == 0 {
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
		b.inflight, b.pairs, b.inflightBytes = e, pairs, bytes
	}
	if b.commitHook != nil && len(b.pairs) > 0 {
		b.commitHook()
	}
	size := 0
	for _, p := range b.pairs {
		size += len(p.key) + len(p.rec) + 16
	}
	batch.Reserve(size)
	key := b.scratch[:0]
	for _, p := range b.pairs {
		key = append(key[:0], p.key...)
		batch.Set(key, p.rec)
		if exp := int64(binary.LittleEndian.Uint64(p.rec[8:])); exp != 0 {
			batch.Set(expiryKey(exp, key), nil)
		}
	}
	b.scratch = key
	// Change log entries of the records in watched buckets go into the
	// same commit; their sequence numbers are settled when it ends.
	if cl := kv.cfg.Changes; cl.active() {
		var recs []changeRec
		for _, p := range b.pairs {
			if k := []byte(p.key); cl.watching(k) {
				recs = append(recs, changeRec{key: k, ch: Change{Op: "put", Version: binary.LittleEndian.Uint64(p.rec)}})
			}
		}
		first, n, err := cl.add(batch, recs)
		if err != nil {
			kv.cfg.Logger.Error("kv: change log entries of buffered writes lost", "err", err)
		}
		b.changeFirst, b.changes = first, n
	}
	return false
}

// Committed forgets the committed epoch's records and announces it, or,
// on failure, keeps them for the next cycle and wakes the waiters with
// the error.
func (src *kvSource) Committed(err error) {
	kv := (*KV)(src)
	b := &kv.buf
	if b.changes > 0 {
		kv.cfg.Changes.settle(b.changeFirst)
		b.changeFirst, b.changes = 0, 0
	}
	if err != nil {
		b.mu.Lock()
		b.cycles++
		b.failed = err
		b.cond.Broadcast()
		b.mu.Unlock()
		return
	}
	e := b.inflight
	// Empty the committed maps before announcing the epoch, so that an
	// epoch marked done has nothing left buffered (reads then go to the
	// engine, which has it all). No waiter holds a stripe lock.
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
	if b.pending.Add(-b.inflightBytes) > 0 {
		// Puts of the next epoch came meanwhile; they woke no one (a put
		// wakes the committer only when the buffer was empty).
		b.feed.Wake()
	}
	b.mu.Lock()
	b.done.Store(e)
	b.cycles++
	b.failed = nil
	b.cond.Broadcast()
	b.mu.Unlock()
	clear(b.pairs)
	b.pairs = b.pairs[:0]
	b.inflight, b.inflightBytes = 0, 0
}

// closeBuffer commits what is buffered (two epochs: the one current when
// Close marked the KV closed may still receive the puts that checked
// before the mark) and leaves the committer.
func (kv *KV) closeBuffer() error {
	b := &kv.buf
	err := b.feed.Flush()
	if cerr := b.feed.Close(); err == nil {
		err = cerr
	}
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	if err != nil {
		kv.cfg.Logger.Error("kv: buffered writes lost at close", "err", err)
		return internalErr(err, "kv: flushing buffered writes failed")
	}
	return nil
}
