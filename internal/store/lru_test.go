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
