// Package store is Mote's storage and its only door to it: one embedded
// Pebble database in the data directory (or another Engine) holds the
// function registry, KV buckets, object metadata, ephemeral data,
// coordination state, the invocation journal and the usage ledger. Each subsystem owns a key prefix (see the prefix constants); no
// two subsystems share one.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
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

// DB is Mote's one door to storage: reads, batches committed buffered
// or durable, and the committer that every write-behind writer goes
// through (commit.go). It sits on an Engine (engine.go), by default the
// embedded Pebble one; no other package sees the engine.
type DB struct {
	eng Engine
	// pe is eng when it is the embedded Pebble engine. The hot paths
	// (KV reads, single writes) call it directly: a call through the
	// Engine interface makes the keys they build in stack buffers
	// escape to the heap, an allocation per put.
	pe        *pebbleEngine
	c         *committer
	closeOnce sync.Once
}

// DefaultSyncInterval is how often, at most, the DB syncs its WAL while
// writes committed without sync are pending (DBConfig.SyncInterval).
const DefaultSyncInterval = 100 * time.Millisecond

// DBConfig configures a DB; the zero value is Open's configuration.
type DBConfig struct {
	// SyncInterval bounds how long a write committed without sync (a
	// buffered KV put once flushed, a coord or ephemeral write, Set or
	// Delete with sync=false, a Buffered commit, a committer cycle that
	// nothing asked to sync) stays only in process memory: Pebble keeps
	// the WAL's current block in memory until it fills or a commit asks
	// for a sync, so without a sync a kill -9 loses such writes however
	// old. The committer looks every SyncInterval (default
	// DefaultSyncInterval) at whether anything was written to the WAL
	// since its last sync, and if so syncs it.
	SyncInterval time.Duration
	// FS is the file system Pebble's files live on (default: the
	// operating system's). Tests pass one that injects I/O errors
	// (github.com/cockroachdb/pebble/v2/vfs/errorfs).
	FS vfs.FS
	// Logger receives commit failures. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with zero fields set to their defaults.
func (c DBConfig) WithDefaults() DBConfig {
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
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

// OpenWithConfig opens (creating if needed) the embedded database in dir
// and starts its committer; Close stops it.
func OpenWithConfig(dir string, cfg DBConfig) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	// Pebble's files hold every bucket's values: no one else may read
	// them, whatever mode an earlier version left the directory with.
	if cfg.FS == nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
	} else if err := cfg.FS.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	eng, err := openPebble(dir, cfg.FS)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return NewDB(eng, cfg), nil
}

// NewDB returns a DB on eng (cfg's FS is not used: the engine has its
// storage) and starts its committer. Close closes eng.
func NewDB(eng Engine, cfg DBConfig) *DB {
	cfg = cfg.WithDefaults()
	pe, _ := eng.(*pebbleEngine)
	return &DB{eng: eng, pe: pe, c: newCommitter(eng, cfg.SyncInterval, cfg.Logger)}
}

// Close stops the committer after a last cycle (sources should have
// closed their feeds first), then closes the engine.
func (db *DB) Close() error {
	db.closeOnce.Do(db.c.close)
	return db.eng.Close()
}

// Err is the engine's sticky write failure, if any (ErrWriteFailed): once
// a write or fsync has failed the DB refuses writes and keeps serving
// reads.
func (db *DB) Err() error { return db.eng.Err() }

// Register adds src to the committer; the returned Feed is how the source
// wakes it, flushes and, with Close, leaves.
func (db *DB) Register(src Source, cfg SourceConfig) *Feed { return db.c.register(src, cfg) }

// NewBatch returns an empty batch for Commit or a Source's own use.
func (db *DB) NewBatch() *Batch { return db.eng.NewBatch(0) }

// Commit applies b atomically. Durable (and DefaultDurability) returns
// only once the batch is fsynced; Buffered returns once it is applied,
// and the committer's WAL sync makes it durable within SyncInterval. An
// error means the batch was not acknowledged. Commit does not close b.
func (db *DB) Commit(b *Batch, d Durability) error {
	return db.eng.Apply(b, d != Buffered)
}

// Get returns a copy of the value at key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	v, closer, err := db.get(key)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, nil
}

// get is the engine's Get, directly on the Pebble engine (see DB.pe).
func (db *DB) get(key []byte) ([]byte, io.Closer, error) {
	if db.pe != nil {
		return db.pe.Get(key)
	}
	return db.eng.Get(key)
}

// Set writes key=value. With sync, it returns only once the write is durable.
func (db *DB) Set(key, value []byte, sync bool) error {
	if db.pe != nil {
		return db.pe.SetOne(key, value, sync)
	}
	b := db.eng.NewBatch(len(key) + len(value) + 16)
	defer b.Close()
	b.Set(key, value)
	return db.eng.Apply(b, sync)
}

// Delete removes key. With sync, it returns only once the delete is durable.
func (db *DB) Delete(key []byte, sync bool) error {
	if db.pe != nil {
		return db.pe.DeleteOne(key, sync)
	}
	b := db.eng.NewBatch(len(key) + 16)
	defer b.Close()
	b.Delete(key)
	return db.eng.Apply(b, sync)
}

// Scan calls fn for every key with the given prefix, in key order, until fn
// returns false. key and value are only valid during the call.
func (db *DB) Scan(prefix []byte, fn func(key, value []byte) bool) error {
	return db.eng.Range(prefix, PrefixEnd(prefix), false, fn)
}

// Range calls fn for every key in [lower, upper), in key order or, with
// reverse, in reverse key order, until fn returns false. key and value are
// only valid during the call.
func (db *DB) Range(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error {
	return db.eng.Range(lower, upper, reverse, fn)
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
