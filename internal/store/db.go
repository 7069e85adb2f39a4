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

	"github.com/cockroachdb/pebble/v2"
)

// ErrNotFound is returned when a key does not exist.
var ErrNotFound = errors.New("store: key not found")

// Key prefixes, one per subsystem. A prefix ends in '/'.
const (
	PrefixRegistry = "r/" // function registry (internal/registry)
	PrefixFlow     = "f/" // call trees, async queue, dead letters, journal (internal/flow)
	PrefixUsage    = "u/" // usage ledger per function per hour (internal/meter)

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
}

// Open opens (creating if needed) the database in dir.
func Open(dir string) (*DB, error) {
	pdb, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return &DB{pdb: pdb}, nil
}

// Pebble returns the underlying database for subsystems that need batches
// or iterators beyond the helpers here.
func (db *DB) Pebble() *pebble.DB { return db.pdb }

// Close flushes and closes the database.
func (db *DB) Close() error { return db.pdb.Close() }

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
