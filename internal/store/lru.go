package store

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// LRU is a byte-budgeted least-recently-used cache of byte values. It is
// split into shards, each with its own lock and an equal share of the
// budget, so concurrent readers of different keys rarely contend. Values
// handed to Put are owned by the cache afterwards and values returned by
// Get must not be modified.
type LRU struct {
	shards []lruShard
	seed   maphash.Seed
	hits   atomic.Uint64
	misses atomic.Uint64
}

// CacheStats counts cache lookups and the bytes held.
type CacheStats struct {
	Hits    uint64 `json:"hits"`
	Misses  uint64 `json:"misses"`
	Entries int    `json:"entries"`
	Bytes   int64  `json:"bytes"`
	Budget  int64  `json:"budget"`
}

// lruEntryOverhead approximates the memory an entry costs beyond its key
// and value (map slot, list links, header), so that a budget holds for many
// tiny entries too.
const lruEntryOverhead = 64

type lruShard struct {
	mu     sync.Mutex
	budget int64
	used   int64
	items  map[string]*lruItem
	head   lruItem // sentinel of a circular list, most recent first
}

type lruItem struct {
	key        string
	val        []byte
	version    uint64
	expires    int64 // unix nanos, 0 = never
	prev, next *lruItem
}

func (it *lruItem) size() int64 { return int64(len(it.key)+len(it.val)) + lruEntryOverhead }

// NewLRU returns a cache holding at most budget bytes over the given number
// of shards (at least 1). A budget ≤ 0 caches nothing.
func NewLRU(budget int64, shards int) *LRU {
	if shards < 1 {
		shards = 1
	}
	c := &LRU{shards: make([]lruShard, shards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		s := &c.shards[i]
		s.budget = budget / int64(shards)
		s.items = make(map[string]*lruItem)
		s.head.prev, s.head.next = &s.head, &s.head
	}
	return c
}

func (c *LRU) shardBytes(key []byte) *lruShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

func (c *LRU) shard(key string) *lruShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// LRUEntry is a cached value with its version and expiry (unix nanos, 0 =
// never).
type LRUEntry struct {
	Value   []byte
	Version uint64
	Expires int64
}

// Get returns the entry cached for key. An entry whose expiry (unix nanos)
// is at or before now() is dropped and reported as a miss; now is only
// called for entries that expire, keeping the clock off the common path. The
// key is a byte slice so that lookups with a key built in a scratch buffer
// do not allocate.
func (c *LRU) Get(key []byte, now func() int64) (e LRUEntry, ok bool) {
	s := c.shardBytes(key)
	s.mu.Lock()
	it := s.items[string(key)]
	if it != nil && it.expires != 0 && it.expires <= now() {
		s.remove(it)
		it = nil
	}
	if it == nil {
		s.mu.Unlock()
		c.misses.Add(1)
		return LRUEntry{}, false
	}
	s.moveFront(it)
	e = LRUEntry{Value: it.val, Version: it.version, Expires: it.expires}
	s.mu.Unlock()
	c.hits.Add(1)
	return e, true
}

// Put caches val under key, evicting least recently used entries to stay
// within the budget. A value larger than a quarter of a shard's budget is
// not cached (and any older entry for key is dropped), so one huge value
// cannot flush the whole shard.
func (c *LRU) Put(key string, val []byte, version uint64, expires int64) {
	s := c.shard(key)
	it := &lruItem{key: key, val: val, version: version, expires: expires}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.items[key]; old != nil {
		s.remove(old)
	}
	if it.size() > s.budget/4 {
		return
	}
	s.items[key] = it
	s.used += it.size()
	it.next, it.prev = s.head.next, &s.head
	s.head.next.prev = it
	s.head.next = it
	for s.used > s.budget {
		s.remove(s.head.prev)
	}
}

// Delete drops key from the cache.
func (c *LRU) Delete(key string) {
	s := c.shard(key)
	s.mu.Lock()
	if it := s.items[key]; it != nil {
		s.remove(it)
	}
	s.mu.Unlock()
}

// SetBudget changes the total budget, evicting entries if it shrank.
func (c *LRU) SetBudget(budget int64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.budget = budget / int64(len(c.shards))
		for s.used > s.budget && s.head.prev != &s.head {
			s.remove(s.head.prev)
		}
		s.mu.Unlock()
	}
}

// Stats returns hit and miss counts and current size.
func (c *LRU) Stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += len(s.items)
		st.Bytes += s.used
		st.Budget += s.budget
		s.mu.Unlock()
	}
	return st
}

func (s *lruShard) moveFront(it *lruItem) {
	if s.head.next == it {
		return
	}
	it.prev.next, it.next.prev = it.next, it.prev
	it.next, it.prev = s.head.next, &s.head
	s.head.next.prev = it
	s.head.next = it
}

func (s *lruShard) remove(it *lruItem) {
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
	delete(s.items, it.key)
	s.used -= it.size()
}

// Replace updates key's cached entry in place when the cache holds one,
// and reports whether it did; a key that is not cached stays uncached.
// Either way the cache holds no older value for key afterwards. Buffered
// KV puts use it: it allocates nothing, and it leaves filling the cache to
// reads, so keys that are written and never read cost no cache memory.
// Like Put, the cache owns val afterwards.
func (c *LRU) Replace(key, val []byte, version uint64, expires int64) bool {
	s := c.shardBytes(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.items[string(key)]
	if it == nil {
		return false
	}
	grow := int64(len(val) - len(it.val))
	if it.size()+grow > s.budget/4 {
		s.remove(it)
		return false
	}
	it.val, it.version, it.expires = val, version, expires
	s.used += grow
	s.moveFront(it)
	for s.used > s.budget {
		s.remove(s.head.prev)
	}
	return true
}
