package flow

import (
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// writer group-commits the engine's in-flight records (nodes, child
// indexes, journal entries) without fsync. An invocation only appends to a
// shared batch and wakes the writer goroutine, which commits whatever has
// accumulated: under load one commit carries many invocations' records, so
// the per-invocation cost is an encode and a memcpy, not a Pebble commit.
// Records not yet committed are lost if the process dies, which is the
// contract for in-flight state. Note that a commit without sync is not even
// in the kernel: Pebble keeps it in its WAL block buffer until a block fills
// or a sync comes, so SIGKILL loses it. Records that must survive a crash
// (the journal and settlement of durable async invocations) are applied
// with sync set, which makes the commit that carries them fsync; callers do
// not wait for it, so durability lags by about one fsync. Readers call
// flush first to see all writes made before.
type writer struct {
	db  *pebble.DB
	log *slog.Logger

	// Lock order: commitMu, then mu. commitMu keeps batches committed in
	// the order they were swapped out.
	commitMu sync.Mutex
	mu       sync.Mutex
	b        *pebble.Batch
	sync     bool       // b holds records that must be durable
	segs     []*segment // leaf roots' records for the next commit
	spare    []*segment // segments committed, their buffers for reuse
	scratch  []byte     // a record being encoded, under mu

	kick   chan struct{}
	urgent chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func newWriter(db *pebble.DB, log *slog.Logger) *writer {
	w := &writer{
		db:     db,
		log:    log,
		b:      db.NewBatch(),
		kick:   make(chan struct{}, 1),
		urgent: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.loop()
	return w
}

// coalesce is how long the writer lets records accumulate before a commit
// that nothing is waiting on. At low rates every invocation would otherwise
// cost a Pebble commit (a WAL write syscall and a goroutine wake-up) of its
// own; a millisecond is short next to anyone reading the records back
// (readers flush first anyway).
const coalesce = time.Millisecond

func (w *writer) loop() {
	defer close(w.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-w.kick:
		case <-w.stop:
			w.flush()
			return
		}
		w.mu.Lock()
		urgent := w.sync
		w.mu.Unlock()
		if !urgent {
			t.Reset(coalesce)
			select {
			case <-t.C:
			case <-w.urgent:
				t.Stop()
			case <-w.stop:
				t.Stop()
				w.flush()
				return
			}
		}
		w.flush()
	}
}

// apply adds records to the next commit; with durable, that commit syncs.
func (w *writer) apply(durable bool, fn func(b *pebble.Batch)) {
	w.mu.Lock()
	fn(w.b)
	w.sync = w.sync || durable
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if durable {
		// Cut a coalescing wait short: this commit must sync now.
		select {
		case w.urgent <- struct{}{}:
		default:
		}
	}
}

func (w *writer) set(durable bool, key, value []byte) {
	w.apply(durable, func(b *pebble.Batch) { _ = b.Set(key, value, nil) })
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
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// flush commits everything applied so far.
func (w *writer) flush() {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	b := w.b
	for _, s := range w.segs {
		_ = b.Set(segmentKey(s.first), s.buf, nil) // copied: the buffer is free again
		if len(w.spare) < 8 && cap(s.buf) <= 1<<20 {
			w.spare = append(w.spare, s)
		}
	}
	clear(w.segs)
	w.segs = w.segs[:0]
	if b.Empty() {
		w.mu.Unlock()
		return
	}
	opts := pebble.NoSync
	if w.sync {
		opts = pebble.Sync
	}
	w.b, w.sync = w.db.NewBatch(), false
	w.mu.Unlock()
	if err := b.Commit(opts); err != nil {
		// Only a closed or broken database fails here; the records are
		// in-flight state, so log and go on rather than stop invocations.
		w.log.Error("flow: commit of in-flight records failed", "err", err, "records", b.Count())
	}
	_ = b.Close()
}

// close commits what is pending and stops the writer goroutine.
func (w *writer) close() {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
	})
}
