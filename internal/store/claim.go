package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/mote-run/mote/internal/errs"
)

// PrefixTriggers is internal/trigger's prefix: schedules, queue consumers
// and change subscriptions, their state, and the items a consumer has
// claimed from a queue and not yet finished. (Kept here rather than with
// the other prefixes in db.go so that the trigger work touches db.go not
// at all; it is one of the subsystem prefixes all the same.)
const PrefixTriggers = "trg/"

// QueueItem is an item moved out of a queue by Claim.
type QueueItem struct {
	Seq   uint64
	Value []byte
}

// Claim moves up to max of the oldest items of queue bucket/name out of
// the queue and into keys of the caller's choosing, in one atomic commit:
// into(item) returns the key and value to write for each item. An item is
// therefore always in exactly one place, the queue or the caller's key,
// whatever crashes, and the commit need not be synced: if it is lost, the
// items are still in the queue. With no item, Claim returns none and a
// channel that is closed at the next push, so a consumer sleeps on it
// instead of polling.
func (c *Coord) Claim(bucket, name string, max int, into func(QueueItem) (key, value []byte)) ([]QueueItem, <-chan struct{}, error) {
	if err := c.check(bucket, name); err != nil {
		return nil, nil, err
	}
	if max <= 0 {
		return nil, nil, errs.E(errs.BadRequest, "claim of %d items", max)
	}
	q, err := c.queue(bucket, name)
	if err != nil {
		return nil, nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == q.tail {
		return nil, q.ready, nil
	}
	n := min(uint64(max), q.tail-q.head)
	lower := q.itemKey(q.head)
	items := make([]QueueItem, 0, n)
	err = c.db.Range(lower, q.itemKey(q.head+n), false, func(k, v []byte) bool {
		seq := binary.BigEndian.Uint64(k[len(q.key)+1:])
		items = append(items, QueueItem{Seq: seq, Value: bytes.Clone(v)})
		return true
	})
	if err != nil {
		return nil, nil, internalErr(err, "queue: claim failed")
	}
	if uint64(len(items)) != n {
		return nil, nil, internalErr(fmt.Errorf("queue %s/%s: %d items in [%d,%d)", bucket, name, len(items), q.head, q.head+n), "queue: claim failed")
	}
	b := c.db.NewBatch()
	defer b.Close()
	for _, item := range items {
		b.Delete(q.itemKey(item.Seq))
		k, v := into(item)
		if !bytes.HasPrefix(k, []byte(PrefixTriggers)) {
			return nil, nil, internalErr(fmt.Errorf("claim into %q, outside %s", k, PrefixTriggers), "queue: claim failed")
		}
		b.Set(k, v)
	}
	if err := c.db.Commit(b, Buffered); err != nil {
		return nil, nil, internalErr(err, "queue: claim failed")
	}
	q.head += n
	return items, nil, nil
}

// PushAndDelete appends items to queue bucket/name and deletes the keys
// del in one durable commit: a consumer moves a claimed item that failed
// for the last time to its dead-letter queue with it, so the item is in
// one place or the other after any crash.
func (c *Coord) PushAndDelete(bucket, name string, items [][]byte, del [][]byte) error {
	if err := c.check(bucket, name); err != nil {
		return err
	}
	q, err := c.queue(bucket, name)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	b := c.db.NewBatch()
	defer b.Close()
	for i, it := range items {
		b.Set(q.itemKey(q.tail+uint64(i)), it)
	}
	for _, k := range del {
		if !bytes.HasPrefix(k, []byte(PrefixTriggers)) {
			return internalErr(fmt.Errorf("key %q outside %s", k, PrefixTriggers), "queue: push failed")
		}
		b.Delete(k)
	}
	if err := c.db.Commit(b, Durable); err != nil {
		return internalErr(err, "queue: push failed")
	}
	q.tail += uint64(len(items))
	if len(items) > 0 {
		close(q.ready)
		q.ready = make(chan struct{})
	}
	return nil
}

// DeleteKeys deletes keys in one commit (synced when sync is set); every
// key must be under PrefixTriggers. Consumers acknowledge claimed items
// with it.
func (db *DB) DeleteKeys(keys [][]byte, sync bool) error {
	b := db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		if !bytes.HasPrefix(k, []byte(PrefixTriggers)) {
			return internalErr(fmt.Errorf("key %q outside %s", k, PrefixTriggers), "store: delete failed")
		}
		b.Delete(k)
	}
	return db.eng.Apply(b, sync)
}
