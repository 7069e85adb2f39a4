package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// PrefixChanges is the change log's: chg/e/{seq BE} are the entries,
// chg/w/{space}/{bucket} the watched buckets with their subscription
// counts. (Kept here, not with the prefixes in db.go, for the same reason
// as PrefixTriggers.)
const PrefixChanges = "chg/"

var (
	changeEntries = []byte(PrefixChanges + "e/")
	changeWatches = []byte(PrefixChanges + "w/")
	changeMarkKey = []byte(PrefixStoreMeta + "chg-seq")
)

// Change is one write to a watched bucket, as the change log keeps it.
type Change struct {
	Seq     uint64    `json:"seq"`
	Space   string    `json:"space"` // "kv" or "obj"
	Bucket  string    `json:"bucket"`
	Key     string    `json:"key"`
	Op      string    `json:"op"`                // "put" or "delete"
	Version uint64    `json:"version,omitempty"` // a KV put's new version
	Size    int64     `json:"size,omitempty"`    // an object put's size
	SHA256  string    `json:"sha256,omitempty"`  // an object put's digest
	Expired bool      `json:"expired,omitempty"` // a delete by TTL expiry
	Time    time.Time `json:"time"`
}

// ChangeLog is the durable log of the writes to watched buckets: each
// write's entry is added to the write's own Pebble batch, so the entry
// and the write commit together or not at all, whatever crashes. Entries
// get increasing sequence numbers; one key's writes are in commit order,
// since a key's writes are serialized (its stripe or object lock) through
// their commit. A reader sees only the settled prefix of the log: every
// sequence number below it has committed or failed, so a cursor moved
// past an entry never skips one committed later with a smaller number.
//
// Buckets no one watches cost a map lookup per write and nothing else.
type ChangeLog struct {
	db      *DB
	now     func() time.Time
	watched atomic.Pointer[map[string]int] // "kv/bucket" → subscriptions
	wmu     sync.Mutex                     // Watch and Unwatch

	mu       sync.Mutex
	next     uint64            // the next sequence number
	limit    uint64            // persisted: numbers below it may have been issued
	inflight map[uint64]uint64 // first → count of staged entries not yet settled
	ready    chan struct{}     // closed and replaced when entries settle
}

// changeBlock is how many sequence numbers are reserved per persisted mark.
const changeBlock = 1 << 16

// OpenChangeLog opens the change log on db; now is its clock (nil:
// time.Now).
func OpenChangeLog(db *DB, now func() time.Time) (*ChangeLog, error) {
	if now == nil {
		now = time.Now
	}
	cl := &ChangeLog{db: db, now: now, inflight: map[uint64]uint64{}, ready: make(chan struct{})}
	raw, err := db.Get(changeMarkKey)
	switch {
	case errors.Is(err, ErrNotFound):
		cl.next, cl.limit = 1, 1
	case err != nil:
		return nil, fmt.Errorf("store: read change mark: %w", err)
	case len(raw) != 8:
		return nil, errors.New("store: corrupt change mark")
	default:
		// Resume above every number a previous run may have issued.
		cl.limit = binary.LittleEndian.Uint64(raw)
		cl.next = cl.limit
	}
	w := map[string]int{}
	err = db.Scan(changeWatches, func(k, v []byte) bool {
		n, _ := strconv.Atoi(string(v))
		w[string(k[len(changeWatches):])] = n
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("store: read watched buckets: %w", err)
	}
	cl.watched.Store(&w)
	return cl, nil
}

// Watch adds a subscription to space ("kv" or "obj") bucket: from its
// return on, every write there is logged. The count is durable, so the
// writes made after a restart are logged before any subscriber is back.
func (cl *ChangeLog) Watch(space, bucket string) error { return cl.adjust(space, bucket, 1) }

// Unwatch removes a subscription that Watch added.
func (cl *ChangeLog) Unwatch(space, bucket string) error { return cl.adjust(space, bucket, -1) }

func (cl *ChangeLog) adjust(space, bucket string, d int) error {
	if space != "kv" && space != "obj" {
		return fmt.Errorf("store: unknown change space %q", space)
	}
	if err := ValidBucket(bucket); err != nil {
		return err
	}
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	name := space + "/" + bucket
	old := *cl.watched.Load()
	n := max(old[name]+d, 0)
	k := append(bytes.Clone(changeWatches), name...)
	var err error
	if n == 0 {
		err = cl.db.Delete(k, true)
	} else {
		err = cl.db.Set(k, []byte(strconv.Itoa(n)), true)
	}
	if err != nil {
		return internalErr(err, "changes: watch failed")
	}
	w := make(map[string]int, len(old)+1)
	for k, v := range old {
		w[k] = v
	}
	if n == 0 {
		delete(w, name)
	} else {
		w[name] = n
	}
	cl.watched.Store(&w)
	return nil
}

// active reports whether any bucket is watched.
func (cl *ChangeLog) active() bool { return cl != nil && len(*cl.watched.Load()) > 0 }

// watching reports whether record key k (kv/BUCKET/KEY or obj/BUCKET/KEY)
// is in a watched bucket. A nil log watches nothing.
func (cl *ChangeLog) watching(k []byte) bool {
	if cl == nil {
		return false
	}
	w := *cl.watched.Load()
	if len(w) == 0 {
		return false
	}
	i := bytes.IndexByte(k, '/')
	if i < 0 {
		return false
	}
	j := bytes.IndexByte(k[i+1:], '/')
	if j < 0 {
		return false
	}
	return w[string(k[:i+1+j])] > 0
}

// changeRec is a write that may need a change entry: its record key, and
// the rest of the entry.
type changeRec struct {
	key []byte
	ch  Change
}

// commit commits b on db, first adding to it the entries of the recs in
// watched buckets. A nil log just commits.
func (cl *ChangeLog) commit(db *DB, b *Batch, sync bool, recs ...changeRec) error {
	first, n, err := cl.add(b, recs)
	if err != nil {
		return err
	}
	if n > 0 {
		defer cl.settle(first)
	}
	return db.eng.Apply(b, sync)
}

// add appends to b the entries of the recs in watched buckets and returns
// the first one's sequence number and how many it added; when it added
// any, the caller settles first once b's commit has ended.
func (cl *ChangeLog) add(b *Batch, recs []changeRec) (first uint64, n int, err error) {
	if cl == nil {
		return 0, 0, nil
	}
	var mine []changeRec
	for _, r := range recs {
		if cl.watching(r.key) {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return 0, 0, nil
	}
	first, err = cl.reserve(uint64(len(mine)))
	if err != nil {
		return 0, 0, err
	}
	now := cl.now().UTC()
	for i, r := range mine {
		ch := r.ch
		ch.Seq, ch.Time = first+uint64(i), now
		ch.Space, ch.Bucket, ch.Key = splitRecordKey(r.key)
		raw, _ := json.Marshal(ch)
		b.Set(changeEntryKey(ch.Seq), raw)
	}
	return first, len(mine), nil
}

// write commits k=v (v nil with del: a delete of k) and, when k's bucket
// is watched, its change entry, in one commit.
func (cl *ChangeLog) write(db *DB, k, v []byte, del, sync bool, ch Change) error {
	if !cl.watching(k) {
		if del {
			return db.Delete(k, sync)
		}
		return db.Set(k, v, sync)
	}
	b := db.NewBatch()
	defer b.Close()
	if del {
		b.Delete(k)
	} else {
		b.Set(k, v)
	}
	return cl.commit(db, b, sync, changeRec{key: k, ch: ch})
}

func splitRecordKey(k []byte) (space, bucket, key string) {
	s := string(k)
	i := bytes.IndexByte(k, '/')
	j := i + 1 + bytes.IndexByte(k[i+1:], '/')
	return s[:i], s[i+1 : j], s[j+1:]
}

func changeEntryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(changeEntries), seq)
}

// reserve issues n consecutive sequence numbers and marks them in flight.
func (cl *ChangeLog) reserve(n uint64) (uint64, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for cl.next+n > cl.limit {
		mark := cl.limit + max(changeBlock, n)
		if err := cl.db.Set(changeMarkKey, binary.LittleEndian.AppendUint64(nil, mark), true); err != nil {
			return 0, internalErr(err, "changes: sequence mark write failed")
		}
		cl.limit = mark
	}
	first := cl.next
	cl.next += n
	cl.inflight[first] = n
	return first, nil
}

// settle marks the entries from first as committed (or failed: their
// numbers are then gaps) and wakes readers.
func (cl *ChangeLog) settle(first uint64) {
	cl.mu.Lock()
	delete(cl.inflight, first)
	close(cl.ready)
	cl.ready = make(chan struct{})
	cl.mu.Unlock()
}

// settledLocked is the highest sequence number below which everything has
// settled.
func (cl *ChangeLog) settledLocked() uint64 {
	s := cl.next - 1
	for first := range cl.inflight {
		s = min(s, first-1)
	}
	return s
}

// Settled returns the highest settled sequence number: a new subscriber
// starts after it.
func (cl *ChangeLog) Settled() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.settledLocked()
}

// Read returns up to max entries after sequence number after, in order,
// from the settled part of the log, and the last number it covered (the
// cursor to read from next, even past entries it did not return because
// max was reached: then it is the last returned). With nothing to
// return, ready is closed when more settles.
func (cl *ChangeLog) Read(after uint64, max int) (changes []Change, upTo uint64, ready <-chan struct{}, err error) {
	cl.mu.Lock()
	settled, ready := cl.settledLocked(), cl.ready
	cl.mu.Unlock()
	if settled <= after {
		return nil, after, ready, nil
	}
	upTo = settled
	err = cl.db.Range(changeEntryKey(after+1), changeEntryKey(settled+1), false, func(k, v []byte) bool {
		var ch Change
		if json.Unmarshal(v, &ch) != nil {
			return true // unreadable: skipped rather than blocking the log
		}
		changes = append(changes, ch)
		if len(changes) == max {
			upTo = ch.Seq
			return false
		}
		return true
	})
	if err != nil {
		return nil, after, nil, internalErr(err, "changes: read failed")
	}
	return changes, upTo, nil, nil
}

// Trim deletes the entries up to and including upTo: every subscriber
// has read past them.
func (cl *ChangeLog) Trim(upTo uint64) error {
	b := cl.db.NewBatch()
	defer b.Close()
	b.DeleteRange(changeEntryKey(0), changeEntryKey(upTo+1))
	if err := cl.db.Commit(b, Buffered); err != nil {
		return internalErr(err, "changes: trim failed")
	}
	return nil
}
