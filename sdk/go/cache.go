package mote

import "time"

// The function cache is node-local memory that survives across
// invocations of this function on the node (an LRU within the memory
// budget in the function's config). Entries can be evicted at any time:
// use it for data that can be rebuilt, such as a parsed model or a
// fetched config.

// CacheGet returns the cached value for key and whether it was there.
func CacheGet(key string) ([]byte, bool, error) {
	v, err := Call(OpCacheGet, []byte(key))
	if IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// CachePut caches value under key, for at most ttl (0: until evicted).
// A value larger than a quarter of the budget is not kept.
func CachePut(key string, value []byte, ttl time.Duration) error {
	_, err := Call(OpCachePut, []byte(key), value, msArg(ttl))
	return err
}

// CacheDelete drops key from the cache.
func CacheDelete(key string) error {
	_, err := Call(OpCacheDelete, []byte(key))
	return err
}
