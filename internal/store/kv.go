package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
)

// Durability says when a write is acknowledged.
type Durability uint8

const (
	// DefaultDurability uses the store's configured default.
	DefaultDurability Durability = iota
	// Durable acknowledges a write once its WAL record is fsynced. Pebble
	// groups concurrent synced commits into one fsync (group commit), so
	// many durable writers share the disk's sync latency.
	Durable
	// Buffered acknowledges a write once it is in memory: a put goes to
	// the KV's write buffer, which a flusher commits to Pebble (without
	// fsync) about every KVConfig.FlushInterval. It is durable after a
	// clean Close, once a later durable write's fsync covers it (one that
	// commits after the put's flush), or once the DB's WAL syncer has
	// synced it (DBConfig.SyncInterval, 100 ms); a crash (kill -9, power
	// loss) loses at most about the last FlushInterval + SyncInterval of
	// buffered writes, never a durable one (docs/storage.md).
	Buffered
)

// ParseDurability parses "", "durable" or "buffered".
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "":
		return DefaultDurability, nil
	case "durable":
		return Durable, nil
	case "buffered":
		return Buffered, nil
	}
	return 0, errs.E(errs.BadRequest, "durability must be \"durable\" or \"buffered\", not %q", s)
}

func (d Durability) String() string {
	switch d {
	case Durable:
		return "durable"
	case Buffered:
		return "buffered"
	}
	return "default"
}

// WriteOptions are per-call options of a KV write.
type WriteOptions struct {
	// TTL, when positive, makes the key expire that long after the write.
	TTL time.Duration
	// Durability overrides the store's default for this write.
	Durability Durability
}

// Entry is a KV value with its version and expiry (zero: never).
type Entry struct {
	Value   []byte
	Version uint64
	Expires time.Time
}

// ListPage is one page of a listing. Next is the cursor of the following
// page, empty when this is the last one.
type ListPage struct {
	Keys []string `json:"keys"`
	Next string   `json:"next_cursor"`
}

// BatchOp is one write of an atomic batch.
type BatchOp struct {
	Bucket string
	Key    string
	Value  []byte
	Delete bool
	TTL    time.Duration
}

// KVConfig configures a KV. Zero fields take the defaults in WithDefaults.
type KVConfig struct {
	// CacheBytes is the node-local read cache budget (default 64 MiB);
	// negative disables the cache.
	CacheBytes int64
	// MaxValueBytes caps a value (default 1 MiB).
	MaxValueBytes int
	// MaxBatchOps and MaxBatchBytes cap one batch (default 1000 ops, 8 MiB).
	MaxBatchOps   int
	MaxBatchBytes int
	// Durability is the default for writes that do not choose (default
	// Durable).
	Durability Durability
	// EphemeralTTL is the lifetime of ephemeral data whose scope is never
	// ended (default 24 h).
	EphemeralTTL time.Duration
	// SweepInterval is how often expired keys are deleted (default 1 s);
	// reads never return an expired key regardless.
	SweepInterval time.Duration
	// FlushInterval is how long a buffered put may wait in memory before
	// the flusher commits it to Pebble (default 1 ms): the window of
	// buffered puts a crash can lose besides what the DB has not synced
	// of its WAL, at most about DBConfig.SyncInterval (see Buffered).
	FlushInterval time.Duration
	// MaxBufferedBytes bounds the memory of buffered puts not yet in
	// Pebble (default 4 MiB); a put that finds it full waits for a flush.
	MaxBufferedBytes int64
	// Clock is the time source of TTLs, expiry and the sweeper (default:
	// the system clock); tests inject a clock.Fake to expire keys
	// without sleeping.
	Clock  clock.Clock
	Logger *slog.Logger
	// Changes, if set, logs the writes to watched buckets in the writes'
	// own commits (changes.go).
	Changes *ChangeLog
}

// WithDefaults returns c with zero fields set to their defaults.
func (c KVConfig) WithDefaults() KVConfig {
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = 1 << 20
	}
	if c.MaxBatchOps == 0 {
		c.MaxBatchOps = 1000
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 8 << 20
	}
	if c.Durability == DefaultDurability {
		c.Durability = Durable
	}
	if c.EphemeralTTL == 0 {
		c.EphemeralTTL = 24 * time.Hour
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Millisecond
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = 4 << 20
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c KVConfig) Validate() error {
	switch {
	case c.MaxValueBytes < 0 || c.MaxBatchOps < 0 || c.MaxBatchBytes < 0:
		return errors.New("store: kv limits must not be negative")
	case c.MaxBatchBytes != 0 && c.MaxBatchBytes < c.MaxValueBytes:
		return errors.New("store: MaxBatchBytes must be at least MaxValueBytes")
	case c.Durability > Buffered:
		return errors.New("store: unknown durability")
	case c.SweepInterval < 0 || c.EphemeralTTL < 0 || c.FlushInterval < 0:
		return errors.New("store: durations must not be negative")
	case c.MaxBufferedBytes < 0:
		return errors.New("store: MaxBufferedBytes must not be negative")
	}
	return nil
}

// KV is the key-value store: buckets of keys with versions, TTLs, CAS,
// increments, paged listing and atomic batches, on the shared Pebble DB,
// with a node-local read cache in front.
//
// Every write to a key holds that key's stripe lock from reading the old
// state (CAS, increment) through the commit (or buffering, see
// kvbuffer.go) and the cache update, so CAS and increments are atomic and
// the cache never holds a value older than the last acknowledged write on
// this node. Lock order: stripe locks in ascending index, then an LRU
// shard lock, the write buffer's mutex or the version source.
type KV struct {
	db       *DB
	cfg      KVConfig
	cache    *LRU // nil when disabled
	seed     maphash.Seed
	stripes  [256]stripe
	buf      writeBuffer
	versions versionSource
	closed   atomic.Bool
	stop     chan struct{}
	done     chan struct{}
}

// record layout: version u64 LE | expires i64 LE (unix nanos, 0 = never) | value.
const recordHeader = 16

func encodeRecord(version uint64, expires int64, val []byte) []byte {
	b := make([]byte, recordHeader+len(val))
	binary.LittleEndian.PutUint64(b, version)
	binary.LittleEndian.PutUint64(b[8:], uint64(expires))
	copy(b[recordHeader:], val)
	return b
}

func decodeRecord(b []byte) (version uint64, expires int64, val []byte, ok bool) {
	if len(b) < recordHeader {
		return 0, 0, nil, false
	}
	return binary.LittleEndian.Uint64(b), int64(binary.LittleEndian.Uint64(b[8:])), b[recordHeader:], true
}

func expiryKey(expires int64, recKey []byte) []byte {
	k := make([]byte, 0, len(PrefixExpiry)+8+len(recKey))
	k = append(k, PrefixExpiry...)
	k = binary.BigEndian.AppendUint64(k, uint64(expires))
	return append(k, recKey...)
}

func appendKVKey(dst []byte, bucket, key string) []byte {
	dst = append(dst, PrefixKV...)
	dst = append(dst, bucket...)
	dst = append(dst, '/')
	return append(dst, key...)
}

// OpenKV starts a KV on db and its expiry sweeper; Close stops it.
func OpenKV(db *DB, cfg KVConfig) (*KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	kv := &KV{db: db, cfg: cfg, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.CacheBytes > 0 {
		kv.cache = NewLRU(cfg.CacheBytes, 16)
	}
	if err := kv.versions.open(db); err != nil {
		return nil, err
	}
	kv.buf.init(cfg.MaxBufferedBytes)
	kv.buf.feed = db.Register((*kvSource)(kv), SourceConfig{Name: "kv", Window: cfg.FlushInterval})
	go kv.sweepLoop()
	return kv, nil
}

// Close stops the sweeper and the flusher after it has committed every
// buffered write. It does not close the DB, which its owner does after.
func (kv *KV) Close() error {
	if kv.closed.Swap(true) {
		return nil
	}
	close(kv.stop)
	<-kv.done
	return kv.closeBuffer()
}

// CacheStats returns the read cache's counters (zero when disabled).
func (kv *KV) CacheStats() CacheStats {
	if kv.cache == nil {
		return CacheStats{}
	}
	return kv.cache.Stats()
}

// MaxValueBytes is the configured value limit.
func (kv *KV) MaxValueBytes() int { return kv.cfg.MaxValueBytes }

func (kv *KV) lockFor(key []byte) *sync.Mutex {
	return &kv.stripeOf(key).mu
}

// stripeOf returns key's stripe: its lock and its buffered records.
func (kv *KV) stripeOf(key []byte) *stripe {
	return &kv.stripes[kv.stripe(key)]
}

func (kv *KV) stripe(key []byte) int {
	return int(maphash.Bytes(kv.seed, key) % uint64(len(kv.stripes)))
}

// durability resolves DefaultDurability to the configured default.
func (kv *KV) durability(d Durability) Durability {
	if d == DefaultDurability {
		return kv.cfg.Durability
	}
	return d
}

func (kv *KV) check(bucket, key string) error {
	if kv.closed.Load() {
		return closedErr()
	}
	if err := ValidBucket(bucket); err != nil {
		return err
	}
	return ValidKey(key)
}

// MaxTTL is the longest TTL a write may set, 100 years. A record holds its
// expiry as unix nanoseconds, which end in 2262: a longer TTL wrapped to
// an expiry in the past, and the write deleted the key it meant to keep.
const MaxTTL = 100 * 365 * 24 * time.Hour

// CheckTTL returns a bad_request error if ttl is negative or more than
// MaxTTL; 0 means no expiry.
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < 0:
		return errs.E(errs.BadRequest, "ttl must not be negative")
	case ttl > MaxTTL:
		return errs.E(errs.BadRequest, "ttl %v is more than the maximum, %v (100 years)", ttl, MaxTTL)
	}
	return nil
}

func (kv *KV) checkValue(val []byte, ttl time.Duration) error {
	if len(val) > kv.cfg.MaxValueBytes {
		return errs.Wrap(errs.PayloadTooLarge, ErrTooLarge,
			fmt.Sprintf("value is %d bytes; the limit is %d", len(val), kv.cfg.MaxValueBytes))
	}
	return CheckTTL(ttl)
}

func (kv *KV) expiresAt(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return kv.cfg.Clock.Now().Add(ttl).UnixNano()
}

func toTime(unixNanos int64) time.Time {
	if unixNanos == 0 {
		return time.Time{}
	}
	return time.Unix(0, unixNanos)
}

// Get returns the value at bucket/key, or an errs.NotFound error.
func (kv *KV) Get(bucket, key string) (Entry, error) {
	if err := kv.check(bucket, key); err != nil {
		return Entry{}, err
	}
	if kv.cache != nil {
		if e, ok := kv.cachedGet(bucket, key); ok {
			return e, nil
		}
	}
	k := appendKVKey(nil, bucket, key)
	now := kv.cfg.Clock.Now().UnixNano()
	// A miss reads and fills the cache under the key's stripe lock, so it
	// cannot put back a value that a concurrent write has just replaced.
	s := kv.stripeOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found, err := kv.readLocked(s, k, now, true)
	if err != nil {
		return Entry{}, err
	}
	if !found {
		return Entry{}, notFound("key")
	}
	return Entry{Value: bytes.Clone(e.Value), Version: e.Version, Expires: toTime(e.Expires)}, nil
}

// cachedGet looks bucket/key up in the read cache with the key built on
// the stack, so a hit allocates only the caller's copy of the value.
func (kv *KV) cachedGet(bucket, key string) (Entry, bool) {
	var buf [128]byte
	e, ok := kv.cache.Get(appendKVKey(buf[:0], bucket, key), kv.nowNanos)
	if !ok {
		return Entry{}, false
	}
	return Entry{Value: bytes.Clone(e.Value), Version: e.Version, Expires: toTime(e.Expires)}, true
}

func (kv *KV) nowNanos() int64 { return kv.cfg.Clock.Now().UnixNano() }

// readLocked returns the live record at k; the caller holds k's stripe s
// locked. With fill, a record read from Pebble is put in the cache. The
// returned value must not be modified.
func (kv *KV) readLocked(s *stripe, k []byte, now int64, fill bool) (LRUEntry, bool, error) {
	if kv.cache != nil && fill {
		if e, ok := kv.cache.Get(k, func() int64 { return now }); ok {
			return e, true, nil
		}
	}
	if rec, ok := kv.bufferedLocked(s, k); ok {
		// The newest record is buffered; Pebble's is older. Buffered
		// records are never modified, so the value is shared, not copied.
		ver, exp, val, _ := decodeRecord(rec)
		if exp != 0 && exp <= now {
			return LRUEntry{}, false, nil
		}
		if kv.cache != nil && fill {
			kv.cache.Put(string(k), val, ver, exp)
		}
		return LRUEntry{Value: val, Version: ver, Expires: exp}, true, nil
	}
	raw, closer, err := kv.db.get(k)
	if errors.Is(err, ErrNotFound) {
		return LRUEntry{}, false, nil
	}
	if err != nil {
		return LRUEntry{}, false, internalErr(err, "kv: read failed")
	}
	ver, exp, val, ok := decodeRecord(raw)
	if !ok {
		closer.Close()
		return LRUEntry{}, false, internalErr(fmt.Errorf("short record at %q", k), "kv: corrupt record")
	}
	e := LRUEntry{Value: bytes.Clone(val), Version: ver, Expires: exp}
	closer.Close()
	if exp != 0 && exp <= now {
		return LRUEntry{}, false, nil
	}
	if kv.cache != nil && fill {
		kv.cache.Put(string(k), e.Value, e.Version, e.Expires)
	}
	return e, true, nil
}

// writeLocked commits one record (and its expiry index entry) to Pebble
// and updates the cache; the caller holds k's stripe lock and, for a KV
// key, has settled it (lockSettled) and drops its buffered records after.
func (kv *KV) writeLocked(k []byte, val []byte, expires int64, d Durability, cache bool) (uint64, error) {
	ver, err := kv.versions.next()
	if err != nil {
		return 0, err
	}
	rec := encodeRecord(ver, expires, val)
	sync := kv.durability(d) != Buffered
	if expires == 0 && !kv.cfg.Changes.watching(k) {
		err = kv.db.Set(k, rec, sync)
	} else {
		b := kv.db.NewBatch()
		b.Set(k, rec)
		if expires != 0 {
			b.Set(expiryKey(expires, k), nil)
		}
		err = kv.cfg.Changes.commit(kv.db, b, sync, changeRec{key: k, ch: Change{Op: "put", Version: ver}})
		b.Close()
	}
	if err != nil {
		if kv.cache != nil {
			kv.cache.Delete(string(k))
		}
		return 0, internalErr(err, "kv: write failed")
	}
	if kv.cache != nil && cache {
		kv.cache.Put(string(k), rec[recordHeader:], ver, expires)
	}
	return ver, nil
}

// Put writes value at bucket/key and returns its new version.
func (kv *KV) Put(bucket, key string, value []byte, o WriteOptions) (uint64, error) {
	if err := kv.check(bucket, key); err != nil {
		return 0, err
	}
	if err := kv.checkValue(value, o.TTL); err != nil {
		return 0, err
	}
	var buf [128]byte
	k := appendKVKey(buf[:0], bucket, key)
	s, err := kv.lockForWrite(k, o.Durability)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return kv.putLocked(s, k, value, kv.expiresAt(o.TTL), o.Durability)
}

// lockForWrite locks k's stripe for a write of durability d: a buffered
// write first waits for room in the write buffer, a direct one for k's
// buffered records to settle.
func (kv *KV) lockForWrite(k []byte, d Durability) (*stripe, error) {
	if kv.durability(d) != Buffered {
		return kv.lockSettled(k)
	}
	if err := kv.db.eng.Err(); err != nil {
		// The engine refuses writes: a buffered put would be acknowledged
		// and never committed.
		return nil, internalErr(err, "kv: write failed")
	}
	if err := kv.waitForRoom(); err != nil {
		return nil, err
	}
	s := kv.stripeOf(k)
	s.mu.Lock()
	return s, nil
}

// putLocked writes a new record for k, buffered or committed as d says;
// the caller holds s (from lockForWrite). k may be scratch memory.
func (kv *KV) putLocked(s *stripe, k, val []byte, expires int64, d Durability) (uint64, error) {
	if kv.durability(d) != Buffered {
		ver, err := kv.writeLocked(k, val, expires, d, true)
		if err == nil {
			dropBufferedLocked(s, k)
		}
		return ver, err
	}
	if kv.closed.Load() { // checked under the lock: Close flushes after it
		return 0, closedErr()
	}
	ver, err := kv.versions.next()
	if err != nil {
		return 0, err
	}
	rec := encodeRecord(ver, expires, val)
	kv.bufferLocked(s, k, rec)
	if kv.cache != nil {
		kv.cache.Replace(k, rec[recordHeader:], ver, expires)
	}
	return ver, nil
}

// Delete removes bucket/key. Deleting a missing key is not an error.
func (kv *KV) Delete(bucket, key string, o WriteOptions) error {
	if err := kv.check(bucket, key); err != nil {
		return err
	}
	k := appendKVKey(nil, bucket, key)
	s, err := kv.lockSettled(k)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := kv.deleteLocked(k, o.Durability); err != nil {
		return err
	}
	dropBufferedLocked(s, k)
	return nil
}

func (kv *KV) deleteLocked(k []byte, d Durability) error {
	err := kv.cfg.Changes.write(kv.db, k, nil, true, kv.durability(d) != Buffered, Change{Op: "delete"})
	if kv.cache != nil {
		kv.cache.Delete(string(k))
	}
	if err != nil {
		return internalErr(err, "kv: delete failed")
	}
	return nil
}

// CAS writes value at bucket/key only if the key's current version is
// version (0: only if the key does not exist), and returns the new version.
// A stale version is an errs.Conflict wrapping ErrVersionMismatch.
func (kv *KV) CAS(bucket, key string, version uint64, value []byte, o WriteOptions) (uint64, error) {
	if err := kv.check(bucket, key); err != nil {
		return 0, err
	}
	if err := kv.checkValue(value, o.TTL); err != nil {
		return 0, err
	}
	k := appendKVKey(nil, bucket, key)
	s, err := kv.lockForWrite(k, o.Durability)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	cur, found, err := kv.readLocked(s, k, kv.cfg.Clock.Now().UnixNano(), true)
	if err != nil {
		return 0, err
	}
	var have uint64
	if found {
		have = cur.Version
	}
	if have != version {
		return 0, errs.Wrap(errs.Conflict, ErrVersionMismatch,
			fmt.Sprintf("version mismatch: expected %d, key is at %d", version, have))
	}
	return kv.putLocked(s, k, value, kv.expiresAt(o.TTL), o.Durability)
}

// Increment adds delta to the decimal integer stored at bucket/key (a
// missing key counts as 0), stores the result as decimal ASCII and returns
// it with the new version. The key keeps its expiry unless o.TTL sets one.
func (kv *KV) Increment(bucket, key string, delta int64, o WriteOptions) (int64, uint64, error) {
	if err := kv.check(bucket, key); err != nil {
		return 0, 0, err
	}
	if err := kv.checkValue(nil, o.TTL); err != nil {
		return 0, 0, err
	}
	k := appendKVKey(nil, bucket, key)
	s, err := kv.lockForWrite(k, o.Durability)
	if err != nil {
		return 0, 0, err
	}
	defer s.mu.Unlock()
	cur, found, err := kv.readLocked(s, k, kv.cfg.Clock.Now().UnixNano(), true)
	if err != nil {
		return 0, 0, err
	}
	var n int64
	expires := kv.expiresAt(o.TTL)
	if found {
		n, err = strconv.ParseInt(string(cur.Value), 10, 64)
		if err != nil {
			return 0, 0, errs.Wrap(errs.BadRequest, ErrNotInteger, "value is not a decimal integer")
		}
		if o.TTL == 0 {
			expires = cur.Expires
		}
	}
	if (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, 0, errs.E(errs.BadRequest, "increment would overflow int64")
	}
	n += delta
	ver, err := kv.putLocked(s, k, strconv.AppendInt(nil, n, 10), expires, o.Durability)
	return n, ver, err
}

// List returns up to limit keys of bucket that start with prefix, in key
// order, after cursor (a Next from an earlier page, or "" for the first).
// limit ≤ 0 means 100; it is capped at 1000.
func (kv *KV) List(bucket, prefix, cursor string, limit int) (ListPage, error) {
	if kv.closed.Load() {
		return ListPage{}, closedErr()
	}
	if err := ValidBucket(bucket); err != nil {
		return ListPage{}, err
	}
	// Pebble's iterator does not see the write buffer: commit it first.
	if err := kv.flushBuffered(); err != nil {
		return ListPage{}, err
	}
	base := appendKVKey(nil, bucket, "")
	return listRecords(kv.db, base, prefix, cursor, limit, kv.cfg.Clock.Now().UnixNano(), true)
}

// listRecords pages through keys under base+prefix. With records, values
// are KV records and expired ones are skipped.
func listRecords(db *DB, base []byte, prefix, cursor string, limit int, now int64, records bool) (ListPage, error) {
	if err := validPrefix(prefix); err != nil {
		return ListPage{}, err
	}
	if err := validPrefix(cursor); err != nil {
		return ListPage{}, err
	}
	if cursor != "" && (len(cursor) < len(prefix) || cursor[:len(prefix)] != prefix) {
		return ListPage{}, errs.E(errs.BadRequest, "cursor does not belong to this prefix")
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	lower := append(bytes.Clone(base), prefix...)
	upper := PrefixEnd(lower)
	if cursor != "" {
		lower = append(append(bytes.Clone(base), cursor...), 0)
	}
	page := ListPage{Keys: []string{}}
	err := db.Range(lower, upper, false, func(k, v []byte) bool {
		if records {
			if _, exp, _, ok := decodeRecord(v); !ok || (exp != 0 && exp <= now) {
				return true
			}
		}
		if len(page.Keys) == limit {
			page.Next = page.Keys[limit-1]
			return false
		}
		page.Keys = append(page.Keys, string(k[len(base):]))
		return true
	})
	if err != nil {
		return ListPage{}, internalErr(err, "store: list failed")
	}
	return page, nil
}

// Batch applies ops atomically: all of them or, on any error, none. It
// returns the new version of each put (0 for deletes). Every op is checked
// before anything is written.
func (kv *KV) Batch(ops []BatchOp, o WriteOptions) ([]uint64, error) {
	if kv.closed.Load() {
		return nil, closedErr()
	}
	if len(ops) == 0 {
		return nil, nil
	}
	if len(ops) > kv.cfg.MaxBatchOps {
		return nil, errs.E(errs.PayloadTooLarge, "batch has %d ops; the limit is %d", len(ops), kv.cfg.MaxBatchOps)
	}
	keys := make([][]byte, len(ops))
	total := 0
	stripes := make([]int, 0, len(ops))
	for i, op := range ops {
		if err := kv.check(op.Bucket, op.Key); err != nil {
			return nil, fmt.Errorf("batch op %d: %w", i, err)
		}
		if err := kv.checkValue(op.Value, op.TTL); err != nil {
			return nil, fmt.Errorf("batch op %d: %w", i, err)
		}
		total += len(op.Key) + len(op.Value)
		keys[i] = appendKVKey(nil, op.Bucket, op.Key)
		stripes = append(stripes, kv.stripe(keys[i]))
	}
	if total > kv.cfg.MaxBatchBytes {
		return nil, errs.E(errs.PayloadTooLarge, "batch is %d bytes; the limit is %d", total, kv.cfg.MaxBatchBytes)
	}
	stripes, err := kv.lockBatch(keys, stripes)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, i := range stripes {
			kv.stripes[i].mu.Unlock()
		}
	}()
	b := kv.db.eng.NewBatch(0)
	defer b.Close()
	versions := make([]uint64, len(ops))
	recs := make([][]byte, len(ops))
	exps := make([]int64, len(ops))
	for i, op := range ops {
		if op.Delete {
			b.Delete(keys[i])
			continue
		}
		ver, err := kv.versions.next()
		if err != nil {
			return nil, err
		}
		versions[i], exps[i] = ver, kv.expiresAt(op.TTL)
		recs[i] = encodeRecord(ver, exps[i], op.Value)
		b.Set(keys[i], recs[i])
		if exps[i] != 0 {
			b.Set(expiryKey(exps[i], keys[i]), nil)
		}
	}
	var changes []changeRec
	for i, op := range ops {
		if kv.cfg.Changes.watching(keys[i]) {
			ch := Change{Op: "put", Version: versions[i]}
			if op.Delete {
				ch.Op = "delete"
			}
			changes = append(changes, changeRec{key: keys[i], ch: ch})
		}
	}
	if err := kv.cfg.Changes.commit(kv.db, b, kv.durability(o.Durability) != Buffered, changes...); err != nil {
		if kv.cache != nil {
			for _, k := range keys {
				kv.cache.Delete(string(k))
			}
		}
		return nil, internalErr(err, "kv: batch failed")
	}
	for _, k := range keys {
		dropBufferedLocked(kv.stripeOf(k), k)
	}
	if kv.cache != nil {
		for i, op := range ops {
			if op.Delete {
				kv.cache.Delete(string(keys[i]))
			} else {
				kv.cache.Put(string(keys[i]), recs[i][recordHeader:], versions[i], exps[i])
			}
		}
	}
	return versions, nil
}

// lockBatch locks the stripes (sorted and deduplicated in place; the
// slice is shortened to the distinct ones) in ascending order, once no
// buffered record of keys is in flight. It waits with no lock held: the
// flusher needs every stripe lock to finish a cycle.
func (kv *KV) lockBatch(keys [][]byte, stripes []int) ([]int, error) {
	sort.Ints(stripes)
	stripes = slices.Compact(stripes)
	for {
		for _, i := range stripes {
			kv.stripes[i].mu.Lock()
		}
		var wait uint64
		for _, k := range keys {
			if wait = kv.unsettledLocked(kv.stripeOf(k), k); wait != 0 {
				break
			}
		}
		if wait == 0 {
			return stripes, nil
		}
		for _, i := range stripes {
			kv.stripes[i].mu.Unlock()
		}
		if err := kv.buf.waitDone(wait); err != nil {
			return nil, err
		}
	}
}

func (kv *KV) sweepLoop() {
	defer close(kv.done)
	t := kv.cfg.Clock.NewTicker(kv.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-kv.stop:
			return
		case <-t.C():
			if _, err := kv.Sweep(); err != nil {
				kv.cfg.Logger.Warn("kv: expiry sweep failed", "err", err)
			}
		}
	}
}

// Sweep deletes records (KV and ephemeral) whose TTL has passed and
// returns how many it deleted. The background sweeper calls it every
// SweepInterval; reads already hide expired records in between.
func (kv *KV) Sweep() (int, error) {
	now := kv.cfg.Clock.Now().UnixNano()
	upper := binary.BigEndian.AppendUint64([]byte(PrefixExpiry), uint64(now)+1)
	deleted := 0
	for {
		var batch [][]byte
		err := kv.db.Scan([]byte(PrefixExpiry), func(k, _ []byte) bool {
			if bytes.Compare(k, upper) >= 0 || len(batch) == 512 {
				return false
			}
			batch = append(batch, bytes.Clone(k))
			return true
		})
		if err != nil {
			return deleted, err
		}
		for _, ik := range batch {
			n, err := kv.expire(ik)
			if err != nil {
				return deleted, err
			}
			deleted += n
		}
		if len(batch) < 512 {
			return deleted, nil
		}
	}
}

// expire deletes the record an expiry index entry points at, if the record
// still carries that expiry (a later write may have replaced it), and the
// index entry itself.
func (kv *KV) expire(ik []byte) (int, error) {
	exp := int64(binary.BigEndian.Uint64(ik[len(PrefixExpiry):]))
	rk := ik[len(PrefixExpiry)+8:]
	// A buffered record of rk still to come is newer than anything this
	// deletes and stays buffered; one being committed must land first.
	s, err := kv.lockSettled(rk)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	b := kv.db.eng.NewBatch(0)
	defer b.Close()
	n := 0
	raw, closer, err := kv.db.get(rk)
	switch {
	case err == nil:
		if _, recExp, _, ok := decodeRecord(raw); ok && recExp == exp {
			b.Delete(rk)
			n = 1
		}
		closer.Close()
	case !errors.Is(err, ErrNotFound):
		return 0, internalErr(err, "kv: sweep read failed")
	}
	b.Delete(ik)
	var recs []changeRec
	if n == 1 {
		recs = append(recs, changeRec{key: rk, ch: Change{Op: "delete", Expired: true}})
	}
	if err := kv.cfg.Changes.commit(kv.db, b, false, recs...); err != nil {
		return 0, internalErr(err, "kv: sweep failed")
	}
	if n == 1 && kv.cache != nil {
		kv.cache.Delete(string(rk))
	}
	return n, nil
}

// versionSource hands out versions that increase across every key and
// across restarts: it persists a high-water mark a block ahead of the
// versions it issues, so a restart resumes above anything issued before.
type versionSource struct {
	db     *DB
	mu     sync.Mutex
	issued atomic.Uint64
	limit  atomic.Uint64
}

const versionBlock = 1 << 16

var versionKey = []byte(PrefixStoreMeta + "kv-version")

func (v *versionSource) open(db *DB) error {
	v.db = db
	raw, err := db.Get(versionKey)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("store: read version mark: %w", err)
	case len(raw) != 8:
		return fmt.Errorf("store: corrupt version mark")
	default:
		v.limit.Store(binary.LittleEndian.Uint64(raw))
		v.issued.Store(v.limit.Load())
	}
	return nil
}

func (v *versionSource) next() (uint64, error) {
	n := v.issued.Add(1)
	if n <= v.limit.Load() {
		return n, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for n > v.limit.Load() {
		mark := v.limit.Load() + versionBlock
		if err := v.db.Set(versionKey, binary.LittleEndian.AppendUint64(nil, mark), true); err != nil {
			return 0, internalErr(err, "kv: version mark write failed")
		}
		v.limit.Store(mark)
	}
	return n, nil
}
