package store

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
