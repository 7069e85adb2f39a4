// Package store is Mote's storage: one embedded Pebble database in the data
// directory holds the function registry, KV buckets, object metadata,
// ephemeral data, coordination state, the invocation journal and the usage
// ledger. Each subsystem owns a key prefix (see the prefix constants); no
// two subsystems share one.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ErrNotFound is returned when a key does not exist.
var ErrNotFound = errors.New("store: key not found")

// Key prefixes, one per subsystem. A prefix ends in '/'.
const (
	PrefixRegistry = "r/"   // function registry (internal/registry)
	PrefixFlow     = "f/"   // call trees, async queue, dead letters, journal (internal/flow)
	PrefixUsage    = "u/"   // usage ledger per function per hour (internal/meter)
	PrefixAuth     = "a/"   // API keys and the audit log (internal/auth)
	PrefixSecrets  = "sec/" // secrets, sealed (internal/secrets)

	// The BaaS layer's prefixes (internal/store kv.go, objects.go,
	// ephemeral.go, coord.go).
	PrefixKV        = "kv/"    // KV records: kv/{bucket}/{key}
	PrefixObjects   = "obj/"   // object metadata: obj/{bucket}/{key}
	PrefixEphemeral = "eph/"   // ephemeral records: eph/{root}/{key}
	PrefixCoord     = "coord/" // counters and queue items
	PrefixExpiry    = "ttl/"   // expiry index: ttl/{unix-nanos BE}{record key}
	PrefixStoreMeta = "smeta/" // BaaS bookkeeping (version high-water mark)
)

// DB is the embedded Pebble database.
type DB struct {
	pdb *pebble.DB

	// The WAL syncer (syncLoop): syncStop ends it, syncDone is closed once
	// it has; walSyncs counts the syncs it made (tests read it).
	syncStop  chan struct{}
	syncDone  chan struct{}
	closeOnce sync.Once
	walSyncs  atomic.Int64
}

// DefaultSyncInterval is how often, at most, the DB syncs its WAL while
// writes committed without sync are pending (DBConfig.SyncInterval).
const DefaultSyncInterval = 100 * time.Millisecond

// DBConfig configures a DB; the zero value is Open's configuration.
type DBConfig struct {
	// SyncInterval bounds how long a write committed without sync (a
	// buffered KV put once flushed, a coord or ephemeral write, Set or
	// Delete with sync=false, any NoSync commit on Pebble()) stays only in
	// process memory: Pebble keeps the WAL's current block in memory until
	// it fills or a commit asks for a sync, so without a sync a kill -9
	// loses such writes however old. A background syncer looks every
	// SyncInterval (default DefaultSyncInterval) at whether anything was
	// written to the WAL since its last sync, and if so syncs it.
	SyncInterval time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c DBConfig) WithDefaults() DBConfig {
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c DBConfig) Validate() error {
	if c.SyncInterval < 0 {
		return errors.New("store: SyncInterval must not be negative")
	}
	return nil
}

// Open opens (creating if needed) the database in dir, with the default
// DBConfig.
func Open(dir string) (*DB, error) { return OpenWithConfig(dir, DBConfig{}) }

// OpenWithConfig opens (creating if needed) the database in dir and starts
// its WAL syncer; Close stops it.
func OpenWithConfig(dir string, cfg DBConfig) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	// Pebble's files hold every bucket's values: no one else may read
	// them, whatever mode an earlier version left the directory with.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	// A 64 MiB memtable (Pebble's default is 4 MiB, and it starts small
	// and doubles up to this): a shuffle through ephemeral data writes
	// 1 MiB values, which at 4 MiB made a flush every four puts and
	// stalled writers behind L0 compactions (BenchmarkEphemeralShuffle).
	pdb, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, MemTableSize: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	db := &DB{pdb: pdb, syncStop: make(chan struct{}), syncDone: make(chan struct{})}
	// The baseline is read before any caller can write, so every write
	// counts as pending.
	go db.syncLoop(cfg.SyncInterval, pdb.Metrics().WAL.BytesIn)
	return db, nil
}

// Pebble returns the underlying database for subsystems that need batches
// or iterators beyond the helpers here.
func (db *DB) Pebble() *pebble.DB { return db.pdb }

// Close stops the WAL syncer, then flushes and closes the database.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.syncStop)
		<-db.syncDone
	})
	return db.pdb.Close()
}

// syncLoop makes the WAL durable at most every interval while writes
// committed without sync are pending; synced is the WAL byte count at
// open.
//
// "Pending" is read from Pebble's count of bytes committed to the WAL
// (Metrics().WAL.BytesIn), so it sees every commit, including those made
// directly on Pebble(), without writers having to report theirs; an idle
// DB reads the counter each tick and never syncs. The sync is a synced
// commit of an empty LogData record: it costs one WAL fsync and makes
// durable every record committed before it, since Pebble's commit
// pipeline writes the WAL in order. The counter is read before that
// commit, so a write racing with the sync is counted as pending and
// synced at the next tick; the marker's own bytes are added to the
// baseline, so the sync does not make itself pending. A synced commit by
// a writer also moves the counter, which costs one redundant sync per
// interval while durable writes go on.
func (db *DB) syncLoop(interval time.Duration, synced uint64) {
	defer close(db.syncDone)
	marker := db.pdb.NewBatch()
	marker.LogData(nil, nil)
	markerLen := uint64(len(marker.Repr()))
	marker.Close()

	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-db.syncStop:
			return
		case <-t.C:
		}
		in := db.pdb.Metrics().WAL.BytesIn
		if in == synced {
			continue
		}
		// LogData fails only on a read-only DB or a disabled WAL, neither
		// of which Open makes (a failed fsync is fatal inside Pebble);
		// keeping synced unchanged retries at the next tick.
		if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
			continue
		}
		synced = in + markerLen
		db.walSyncs.Add(1)
	}
}

// Get returns a copy of the value at key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// Set writes key=value. With sync, it returns only once the write is durable.
func (db *DB) Set(key, value []byte, sync bool) error {
	return db.pdb.Set(key, value, writeOpts(sync))
}

// Delete removes key. With sync, it returns only once the delete is durable.
func (db *DB) Delete(key []byte, sync bool) error {
	return db.pdb.Delete(key, writeOpts(sync))
}

// Scan calls fn for every key with the given prefix, in key order, until fn
// returns false. key and value are only valid during the call.
func (db *DB) Scan(prefix []byte, fn func(key, value []byte) bool) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return it.Close()
}

// Range calls fn for every key in [lower, upper), in key order or, with
// reverse, in reverse key order, until fn returns false. key and value are
// only valid during the call.
func (db *DB) Range(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	first, next := it.First, it.Next
	if reverse {
		first, next = it.Last, it.Prev
	}
	for first(); it.Valid(); next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	return it.Close()
}

// PrefixEnd returns the smallest key greater than every key with prefix p
// (nil when there is none).
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func writeOpts(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// quietLogger keeps Pebble's routine chatter (WAL recovery, compactions)
// off the user's terminal; errors still surface through returned errors.
type quietLogger struct{}

func (quietLogger) Infof(format string, args ...any)  {}
func (quietLogger) Errorf(format string, args ...any) {}
func (quietLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
