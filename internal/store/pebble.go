package store

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// pebbleEngine is the embedded engine: one Pebble database.
type pebbleEngine struct {
	pdb *pebble.DB

	// synced is the WAL byte count (Metrics().WAL.BytesIn) known durable;
	// markerLen is what an empty synced commit adds to it.
	synced    atomic.Uint64
	markerLen uint64

	// failed holds the first write or sync error (*error); after it every
	// write fails. Pebble's WAL writer keeps a failed write or fsync as
	// its own sticky error, and Pebble treats a failed commit as fatal
	// (Logger.Fatalf): a WAL whose fsync failed cannot be trusted again
	// (the lesson of PostgreSQL's "fsyncgate"), so the engine stops
	// writing until the process restarts and recovers from what is on
	// disk. Reads go on.
	failed atomic.Pointer[error]
}

var _ Engine = (*pebbleEngine)(nil)

func openPebble(dir string, fs vfs.FS) (*pebbleEngine, error) {
	// A 64 MiB memtable (Pebble's default is 4 MiB, and it starts small
	// and doubles up to this): a shuffle through ephemeral data writes
	// 1 MiB values, which at 4 MiB made a flush every four puts and
	// stalled writers behind L0 compactions (BenchmarkEphemeralShuffle).
	opts := &pebble.Options{Logger: quietLogger{}, MemTableSize: 64 << 20}
	if fs != nil {
		opts.FS = fs
	}
	pdb, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	e := &pebbleEngine{pdb: pdb}
	marker := pdb.NewBatch()
	marker.LogData(nil, nil)
	e.markerLen = uint64(len(marker.Repr()))
	marker.Close()
	// The baseline is read before any caller can write, so every write
	// counts as unsynced.
	e.synced.Store(pdb.Metrics().WAL.BytesIn)
	return e, nil
}

func (e *pebbleEngine) Get(key []byte) ([]byte, io.Closer, error) {
	v, closer, err := e.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	return v, closer, err
}

func (e *pebbleEngine) Range(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error {
	it, err := e.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
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

func (e *pebbleEngine) NewBatch(sizeHint int) *Batch {
	if sizeHint > 0 {
		return &Batch{pb: e.pdb.NewBatchWithSize(sizeHint), pdb: e.pdb}
	}
	return &Batch{pb: e.pdb.NewBatch(), pdb: e.pdb}
}

func (e *pebbleEngine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *pebbleEngine) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
	if !e.failed.CompareAndSwap(nil, &err) {
		return e.Err()
	}
	return err
}

func (e *pebbleEngine) Apply(b *Batch, sync bool) error {
	if err := e.Err(); err != nil {
		return err
	}
	// A synced apply does not move the synced mark (reading Pebble's
	// metrics costs more than a durable put should pay): it costs at most
	// one redundant Sync per SyncInterval while durable writes go on.
	if err := guard(func() error { return b.pb.Commit(writeOpts(sync)) }); err != nil {
		return e.fail(err)
	}
	return nil
}

// SetOne and DeleteOne are Apply of a batch of one write, without building
// the batch (DB.Set, DB.Delete and KV writes without a TTL use them).
func (e *pebbleEngine) SetOne(key, value []byte, sync bool) error {
	if err := e.Err(); err != nil {
		return err
	}
	if err := guard(func() error { return e.pdb.Set(key, value, writeOpts(sync)) }); err != nil {
		return e.fail(err)
	}
	return nil
}

func (e *pebbleEngine) DeleteOne(key []byte, sync bool) error {
	if err := e.Err(); err != nil {
		return err
	}
	if err := guard(func() error { return e.pdb.Delete(key, writeOpts(sync)) }); err != nil {
		return e.fail(err)
	}
	return nil
}

func (e *pebbleEngine) Sync() error {
	if err := e.Err(); err != nil {
		return err
	}
	// The counter is read before the sync, so a write racing with it
	// stays unsynced until the next one; the marker's own bytes are
	// added, so the sync does not make itself unsynced.
	in := e.pdb.Metrics().WAL.BytesIn
	if err := guard(func() error { return e.pdb.LogData(nil, pebble.Sync) }); err != nil {
		return e.fail(err)
	}
	e.raiseSynced(in + e.markerLen)
	return nil
}

func (e *pebbleEngine) raiseSynced(v uint64) {
	for {
		old := e.synced.Load()
		if v <= old || e.synced.CompareAndSwap(old, v) {
			return
		}
	}
}

// Unsynced reads Pebble's count of bytes committed to the WAL, so it sees
// every commit without writers having to report theirs.
func (e *pebbleEngine) Unsynced() bool {
	return e.pdb.Metrics().WAL.BytesIn != e.synced.Load()
}

func (e *pebbleEngine) Close() error {
	err := guard(e.pdb.Close)
	if ferr := e.Err(); ferr != nil && err != nil {
		// A database whose WAL failed cannot flush at close; what is
		// durable is on disk and is recovered at the next open.
		return ferr
	}
	return err
}

// guard runs fn, turning Pebble's fatal errors (quietLogger.Fatalf) into
// an error for the caller.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatalError)
			if !ok {
				panic(r)
			}
			err = f
		}
	}()
	return fn()
}

// fatalError is what Pebble reports through Logger.Fatalf (Pebble expects
// Fatalf not to return); it unwraps to the first error among Fatalf's
// arguments, so errors.Is finds the I/O error under it.
type fatalError struct {
	msg string
	err error
}

func (f fatalError) Error() string { return f.msg }
func (f fatalError) Unwrap() error { return f.err }

func writeOpts(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// quietLogger keeps Pebble's routine chatter (WAL recovery, compactions)
// off the user's terminal; errors still surface through returned errors.
// Fatalf panics with a fatalError, which guard turns back into an error
// where Pebble calls it from a commit; elsewhere (a background flush or
// compaction) it stops the process, as Pebble intends.
type quietLogger struct{}

func (quietLogger) Infof(format string, args ...any)  {}
func (quietLogger) Errorf(format string, args ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	f := fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			f.err = err
			break
		}
	}
	panic(f)
}
