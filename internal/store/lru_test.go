package store

import (
	"fmt"
	"sync"
	"testing"
)

func TestLRUEvictsLeastRecentWithinBudget(t *testing.T) {
	entry := int64(len("k0") + 10 + lruEntryOverhead)
	c := NewLRU(4*entry*4, 1) // room for 16 entries, values ≤ budget/4
	for i := range 16 {
		c.Put(fmt.Sprintf("k%x", i), make([]byte, 10), uint64(i), 0)
	}
	if _, ok := c.Get([]byte("k0"), at(0)); !ok { // k0 becomes most recent
		t.Fatal("k0 missing before eviction")
	}
	c.Put("kx", make([]byte, 10), 99, 0) // evicts k1, the least recent
	if _, ok := c.Get([]byte("k1"), at(0)); ok {
		t.Error("k1 still cached, want evicted")
	}
	for _, k := range []string{"k0", "k2", "kx"} {
		if _, ok := c.Get([]byte(k), at(0)); !ok {
			t.Errorf("%s evicted, want kept", k)
		}
	}
	st := c.Stats()
	if st.Bytes > st.Budget {
		t.Errorf("bytes %d over budget %d", st.Bytes, st.Budget)
	}
	if got, want := st.Hits, uint64(4); got != want {
		t.Errorf("hits = %d, want %d", got, want)
	}
	if got, want := st.Misses, uint64(1); got != want {
		t.Errorf("misses = %d, want %d", got, want)
	}
}

func TestLRUExpiryAndOversize(t *testing.T) {
	c := NewLRU(1<<20, 4)
	c.Put("t", []byte("v"), 1, 100)
	if _, ok := c.Get([]byte("t"), at(99)); !ok {
		t.Error("entry missing before expiry")
	}
	if _, ok := c.Get([]byte("t"), at(100)); ok {
		t.Error("entry returned at its expiry")
	}
	c.Put("big", make([]byte, 1<<20), 1, 0)
	if _, ok := c.Get([]byte("big"), at(0)); ok {
		t.Error("value over a quarter of the shard budget was cached")
	}
	c.Put("x", make([]byte, 1000), 1, 0)
	c.SetBudget(0)
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after SetBudget(0): %+v, want empty", st)
	}
}

func TestLRUHammer(t *testing.T) {
	c := NewLRU(64<<10, 8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := fmt.Sprintf("k%d", (i*7+g)%300)
				if i%3 == 0 {
					c.Put(k, make([]byte, i%200), uint64(i), 0)
				} else if i%11 == 0 {
					c.Delete(k)
				} else {
					c.Get([]byte(k), at(0))
				}
			}
		}()
	}
	wg.Wait()
	st := c.Stats()
	if st.Bytes > st.Budget || st.Bytes < 0 {
		t.Errorf("bytes %d outside [0, budget %d]", st.Bytes, st.Budget)
	}
}

// at returns a clock stuck at unix nanos n.
func at(n int64) func() int64 { return func() int64 { return n } }

// TestLRUReplace checks the buffered put's cache update: a cached entry is
// replaced in place (the byte count follows the new value), an uncached
// key stays uncached, and a value too large to cache drops the old entry.
func TestLRUReplace(t *testing.T) {
	c := NewLRU(4<<10, 1) // values up to a quarter, 1 KiB, are cached
	c.Put("k", []byte("old"), 1, 0)
	kNewer := int64(len("k")+len("newer")) + lruEntryOverhead
	tests := []struct {
		name    string
		key     string
		val     []byte
		replace bool   // what Replace reports
		want    string // cached value after it; "" when uncached
		entries int
		bytes   int64
	}{
		{"cached key", "k", []byte("newer"), true, "newer", 1, kNewer},
		{"uncached key", "u", []byte("v"), false, "", 1, kNewer},
		{"too large", "k", make([]byte, 2<<10), false, "", 0, 0},
	}
	for _, tt := range tests {
		if got := c.Replace([]byte(tt.key), tt.val, 2, 0); got != tt.replace {
			t.Errorf("%s: Replace = %v, want %v", tt.name, got, tt.replace)
		}
		e, ok := c.Get([]byte(tt.key), at(0))
		if got := string(e.Value); ok != (tt.want != "") || got != tt.want {
			t.Errorf("%s: Get = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
		if ok && e.Version != 2 {
			t.Errorf("%s: version %d, want 2", tt.name, e.Version)
		}
		if st := c.Stats(); st.Entries != tt.entries || st.Bytes != tt.bytes {
			t.Errorf("%s: %d entries, %d bytes cached; want %d, %d", tt.name, st.Entries, st.Bytes, tt.entries, tt.bytes)
		}
	}
}
