package flow

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/store"
)

// writer group-commits the engine's in-flight records (nodes, child
// indexes, journal entries) through the store's committer, of which it is
// a Source: an invocation only appends to a shared batch and wakes the
// committer, whose next cycle carries whatever has accumulated (with the
// other sources' records) in one commit. Under load one commit carries
// many invocations' records, so the per-invocation cost is an encode and a
// memcpy, not a commit. Records not yet committed are lost if the process
// dies, which is the contract for in-flight state; the store's WAL sync
// bounds how long a committed one stays unsynced. Records that must
// survive a crash (the journal and settlement of durable async
// invocations) are applied with durable set, which makes the cycle that
// carries them sync; callers do not wait for it, so durability lags by
// about one fsync. Readers call flush first to see all writes made before.
type writer struct {
	db   *store.DB
	log  *slog.Logger
	feed *store.Feed

	mu      sync.Mutex
	b       *store.Batch // records for the next cycle
	sync    bool         // b holds records that must be durable
	segs    []*segment   // leaf roots' records for the next cycle
	spare   []*segment   // segments committed, their buffers for reuse
	scratch []byte       // a record being encoded, under mu
	gen     uint64       // records applied so far (a count), under mu

	// committed is the gen of the last records committed; flush returns
	// at once when nothing newer is pending.
	committed atomic.Uint64

	// The committer's side (only on its goroutine): what the last Collect
	// gave, kept until its commit succeeds.
	inflight     *store.Batch
	inflightSync bool
	inflightGen  uint64
	failedLogged bool

	once sync.Once
}

func newWriter(db *store.DB, log *slog.Logger) *writer {
	w := &writer{db: db, log: log, b: db.NewBatch(), inflight: db.NewBatch()}
	w.feed = db.Register(w, store.SourceConfig{Name: "flow", Window: coalesce})
	return w
}

// coalesce is how long the committer lets records accumulate before a
// cycle that nothing is waiting on. At low rates every invocation would
// otherwise cost a commit (a WAL write syscall and a goroutine wake-up) of
// its own; a millisecond is short next to anyone reading the records back
// (readers flush first anyway).
const coalesce = time.Millisecond

// apply adds records to the next commit; with durable, that commit syncs.
func (w *writer) apply(durable bool, fn func(b *store.Batch)) {
	w.mu.Lock()
	fn(w.b)
	w.sync = w.sync || durable
	w.gen++
	w.mu.Unlock()
	if durable {
		// Cut a coalescing wait short: this commit must sync now.
		w.feed.Urgent()
	} else {
		w.feed.Wake()
	}
}

func (w *writer) set(durable bool, key, value []byte) {
	w.apply(durable, func(b *store.Batch) { b.Set(key, value) })
}

// A leaf root, a root invocation that called no other function (the
// common case by far), has no children to index and nothing that updates
// its record later. Its record is not a key of its own: the records of a
// commit are appended to segments, one per bucket of ids (bucketLen), and
// each segment is one value keyed by its first record's id. A store key,
// a memtable insertion and the compaction work of a key are then paid per
// segment (a commit's worth of invocations), not per invocation. Get finds
// a leaf root by scanning the segments of its id's bucket (loadLeaf).
type segment struct {
	first string // the first record's id: the segment's key
	buf   []byte // segmentVersion, then records, each uvarint-length-prefixed
}

const segmentVersion = 1

// putLeaf adds a leaf root's record to the next commit.
func (w *writer) putLeaf(n *Node) {
	w.mu.Lock()
	var seg *segment
	for _, s := range w.segs {
		if s.first[:bucketLen] == n.ID[:bucketLen] {
			seg = s
			break
		}
	}
	if seg == nil {
		if k := len(w.spare); k > 0 {
			seg = w.spare[k-1]
			w.spare = w.spare[:k-1]
		} else {
			seg = &segment{buf: make([]byte, 0, 4096)}
		}
		seg.first, seg.buf = n.ID, append(seg.buf[:0], segmentVersion)
		w.segs = append(w.segs, seg)
	}
	w.scratch = appendNode(w.scratch[:0], n)
	e := enc{b: seg.buf}
	e.by(w.scratch)
	seg.buf = e.b
	w.gen++
	w.mu.Unlock()
	w.feed.Wake()
}

// Collect moves what was applied since the last cycle (segments written
// out) behind what a failed cycle gave back, and appends it all to the
// cycle's batch.
func (w *writer) Collect(cycle *store.Batch) bool {
	w.mu.Lock()
	for _, s := range w.segs {
		w.b.Set(segmentKey(s.first), s.buf) // copied: the buffer is free again
		if len(w.spare) < 8 && cap(s.buf) <= 1<<20 {
			w.spare = append(w.spare, s)
		}
	}
	clear(w.segs)
	w.segs = w.segs[:0]
	if !w.b.Empty() {
		if w.inflight.Empty() {
			// The common case: swap instead of copying.
			w.inflight, w.b = w.b, w.inflight
		} else {
			w.inflight.Append(w.b)
			w.b.Reset()
		}
	}
	w.inflightSync = w.inflightSync || w.sync
	w.sync = false
	w.inflightGen = w.gen
	w.mu.Unlock()
	cycle.Reserve(w.inflight.Len())
	cycle.Append(w.inflight)
	return w.inflightSync
}

// Committed forgets what the cycle carried, or keeps it for the next one.
func (w *writer) Committed(err error) {
	if err != nil {
		// A broken store: the records are in-flight state, so log (once
		// per failure run) and go on rather than stop invocations.
		if !w.failedLogged {
			w.log.Error("flow: commit of in-flight records failed; keeping them for the next cycle",
				"err", err, "records", w.inflight.Count())
			w.failedLogged = true
		}
		return
	}
	w.failedLogged = false
	w.inflight.Reset()
	w.inflightSync = false
	w.committed.Store(w.inflightGen)
}

// flush commits everything applied so far and returns the commit's error.
func (w *writer) flush() error {
	w.mu.Lock()
	gen := w.gen
	w.mu.Unlock()
	if w.committed.Load() >= gen {
		return nil
	}
	return w.feed.Flush()
}

// close commits what is pending and leaves the committer.
func (w *writer) close() {
	w.once.Do(func() {
		if err := w.feed.Close(); err != nil {
			w.log.Error("flow: commit of in-flight records at close failed", "err", err)
		}
	})
}
