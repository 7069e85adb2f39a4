package store

import (
	"bytes"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

// Ephemeral is scoped intermediate data (a MapReduce shuffle, partial
// results): every key lives in the scope of one invocation tree, named by
// its root invocation id, and is deleted when the flow engine ends that
// scope (EndScope) or its TTL passes, whichever comes first. A tree can
// only name its own scope, so other trees cannot read it. Records share the
// KV's layout, stripe locks, versions and expiry sweeper, but not its read
// cache (ephemeral data is typically read once).
type Ephemeral struct {
	kv *KV

	// live holds the roots that wrote ephemeral data since start, so that
	// ending a tree that never did (nearly all of them) costs no write: a
	// range deletion per invocation would litter Pebble with tombstones.
	// Scopes written before a restart are not in it; their TTL reclaims
	// them.
	mu   sync.Mutex
	live map[string]struct{}
}

// Ephemeral returns the ephemeral store that shares kv's engine. Use one
// per KV: it remembers which scopes hold data.
func (kv *KV) Ephemeral() *Ephemeral { return &Ephemeral{kv: kv, live: map[string]struct{}{}} }

// ValidRoot reports whether root is a usable scope id: 1–128 bytes of
// printable ASCII other than '/'.
func ValidRoot(root string) error {
	if len(root) == 0 || len(root) > 128 {
		return badName("scope root id must be 1-128 bytes")
	}
	for i := 0; i < len(root); i++ {
		if c := root[i]; c <= 0x20 || c >= 0x7f || c == '/' {
			return badName("scope root id has a character outside printable ASCII or a '/'")
		}
	}
	return nil
}

func ephKey(root, key string) []byte {
	k := make([]byte, 0, len(PrefixEphemeral)+len(root)+1+len(key))
	k = append(k, PrefixEphemeral...)
	k = append(k, root...)
	k = append(k, '/')
	return append(k, key...)
}

func (e *Ephemeral) check(root, key string) error {
	if e.kv.closed.Load() {
		return closedErr()
	}
	if err := ValidRoot(root); err != nil {
		return err
	}
	return ValidKey(key)
}

// Put writes value at key in root's scope. ttl ≤ 0 uses the configured
// EphemeralTTL, so a scope whose tree never ends still goes away.
func (e *Ephemeral) Put(root, key string, value []byte, ttl time.Duration, d Durability) error {
	if err := e.check(root, key); err != nil {
		return err
	}
	if err := e.kv.checkValue(value, ttl); err != nil {
		return err
	}
	if ttl == 0 {
		ttl = e.kv.cfg.EphemeralTTL
	}
	e.mu.Lock()
	e.live[root] = struct{}{}
	e.mu.Unlock()
	k := ephKey(root, key)
	mu := e.kv.lockFor(k)
	mu.Lock()
	defer mu.Unlock()
	_, err := e.kv.writeLocked(k, value, e.kv.expiresAt(ttl), d, false)
	return err
}

// Get returns the value at key in root's scope.
func (e *Ephemeral) Get(root, key string) ([]byte, error) {
	if err := e.check(root, key); err != nil {
		return nil, err
	}
	k := ephKey(root, key)
	s := e.kv.stripeOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found, err := e.kv.readLocked(s, k, e.kv.cfg.Clock.Now().UnixNano(), false)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, notFound("ephemeral key")
	}
	return rec.Value, nil
}

// Delete removes key from root's scope.
func (e *Ephemeral) Delete(root, key string, d Durability) error {
	if err := e.check(root, key); err != nil {
		return err
	}
	k := ephKey(root, key)
	mu := e.kv.lockFor(k)
	mu.Lock()
	defer mu.Unlock()
	return e.kv.deleteLocked(k, d)
}

// List pages through the keys of root's scope that start with prefix.
func (e *Ephemeral) List(root, prefix, cursor string, limit int) (ListPage, error) {
	if e.kv.closed.Load() {
		return ListPage{}, closedErr()
	}
	if err := ValidRoot(root); err != nil {
		return ListPage{}, err
	}
	base := ephKey(root, "")
	return listRecords(e.kv.db, base, prefix, cursor, limit, e.kv.cfg.Clock.Now().UnixNano(), true)
}

// EndScope deletes every key in root's scope; the flow engine calls it
// when the invocation tree completes. Ending a scope with no data is a
// no-op. Expiry index entries left behind are dropped by the sweeper.
func (e *Ephemeral) EndScope(root string) error {
	if err := ValidRoot(root); err != nil {
		return err
	}
	e.mu.Lock()
	_, ok := e.live[root]
	delete(e.live, root)
	e.mu.Unlock()
	if !ok {
		return nil
	}
	start := ephKey(root, "")
	b := e.kv.db.NewBatch()
	defer b.Close()
	b.DeleteRange(start, PrefixEnd(bytes.Clone(start)))
	if err := e.kv.db.Commit(b, Buffered); err != nil {
		return errs.Wrap(errs.Internal, err, "ephemeral: end scope failed")
	}
	return nil
}
