package store

import (
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// Engine is the storage engine under a DB: the contract a backend meets.
// The embedded Pebble engine (pebble.go) is the default; a cluster
// backend (NATS JetStream KV, issue 11) implements the same methods.
// Everything above it (the committer, KV, objects, coordination, and
// through DB the flow engine, registry and ledger) programs against DB,
// which sees storage only through an Engine.
//
// The contract:
//   - Apply commits a batch atomically: after it returns nil every
//     operation in it is visible to Get and Range, and with sync it is
//     durable (it survives a crash of the process and of the machine).
//     A non-nil error means the batch may or may not be visible but was
//     not acknowledged: callers report it, never a success.
//   - Applies are ordered: one that returns before another starts is
//     recovered before it after a crash (a durable apply makes every
//     earlier apply durable too).
//   - Sync makes every earlier apply durable; Unsynced reports whether
//     an apply since the last sync is not yet durable.
//   - Err is sticky: once a write or sync has failed the engine may
//     refuse every later write with Err (as Pebble does: its WAL cannot
//     be trusted after a failed fsync), while reads go on.
//   - Get's value is valid until its closer is closed; Range's key and
//     value only during fn.
type Engine interface {
	Get(key []byte) (value []byte, closer io.Closer, err error)
	Range(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error
	NewBatch(sizeHint int) *Batch
	Apply(b *Batch, sync bool) error
	Sync() error
	Unsynced() bool
	Err() error
	Close() error
}

// Batch is an ordered list of writes applied atomically by DB.Commit or a
// committer cycle. Its encoding is Pebble's batch format (the record
// format of RocksDB's and Pebble's WAL), which any engine reads back with
// Each. A Batch is not safe for concurrent use.
type Batch struct {
	pb  *pebble.Batch
	pdb *pebble.DB // for Reserve
}

// Op is the kind of one write in a Batch.
type Op uint8

const (
	OpSet         Op = iota + 1 // key = value
	OpDelete                    // delete key
	OpDeleteRange               // delete [key, value)
)

// Set adds key = value. The batch copies both.
func (b *Batch) Set(key, value []byte) { _ = b.pb.Set(key, value, nil) }

// Delete adds the deletion of key.
func (b *Batch) Delete(key []byte) { _ = b.pb.Delete(key, nil) }

// DeleteRange adds the deletion of every key in [start, end).
func (b *Batch) DeleteRange(start, end []byte) { _ = b.pb.DeleteRange(start, end, nil) }

// Append adds every write of o, in order, after b's own.
func (b *Batch) Append(o *Batch) {
	if o.Empty() {
		return
	}
	_ = b.pb.Apply(o.pb, nil)
}

// Reserve makes room for about n more bytes of writes, so a source that
// knows what it will append grows the batch once rather than by
// doubling.
func (b *Batch) Reserve(n int) {
	repr := b.pb.Repr()
	if b.pdb == nil || cap(repr)-len(repr) >= n {
		return
	}
	nb := b.pdb.NewBatchWithSize(len(repr) + n)
	if !b.pb.Empty() {
		_ = nb.Apply(b.pb, nil)
	}
	_ = b.pb.Close()
	b.pb = nb
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.pb.Empty() }

// Len is the size of the batch's encoding in bytes.
func (b *Batch) Len() int { return b.pb.Len() }

// Count is the number of writes in the batch.
func (b *Batch) Count() int { return int(b.pb.Count()) }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { b.pb.Reset() }

// Close releases the batch; it must not be used after.
func (b *Batch) Close() {
	_ = b.pb.Close()
	b.pb = nil
}

// Each calls fn for every write of the batch, in order, until fn returns
// an error, which Each returns. For OpDeleteRange, value is the range's
// end. This is how an engine other than Pebble reads a batch.
func (b *Batch) Each(fn func(op Op, key, value []byte) error) error {
	r := b.pb.Reader()
	for {
		kind, k, v, ok, err := r.Next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		var op Op
		switch kind {
		case pebble.InternalKeyKindSet:
			op = OpSet
		case pebble.InternalKeyKindDelete:
			op = OpDelete
		case pebble.InternalKeyKindRangeDelete:
			op = OpDeleteRange
		default:
			continue // LogData and the like carry no write
		}
		if err := fn(op, k, v); err != nil {
			return err
		}
	}
}
