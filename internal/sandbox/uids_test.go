package sandbox

import (
	"os"
	"testing"
)

// Two Motes on one host (two pools with the same range) never hand out
// the same uid while it is in use; a freed one is free for either. A
// review found both gave their first instance 2000000000.
func TestUIDsAreUniqueAcrossMotes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the host-wide locks need root")
	}
	base := DefaultUIDBase + DefaultUIDCount - 8 // an end of the range tests alone use
	a, b := newUIDPool(base, 4), newUIDPool(base, 4)
	seen := map[int]bool{}
	for range 2 {
		for _, p := range []*uidPool{a, b} {
			uid, err := p.get()
			if err != nil {
				t.Fatal(err)
			}
			if seen[uid] {
				t.Fatalf("uid %d handed out twice", uid)
			}
			seen[uid] = true
		}
	}
	if _, err := a.get(); err != ErrNoUID {
		t.Fatalf("a fifth uid from a range of 4: got %v, want ErrNoUID", err)
	}
	a.put(base)
	b.put(base + 1)
	got, err := b.get()
	if err != nil || (got != base && got != base+1) {
		t.Fatalf("after two were freed: got %d, %v", got, err)
	}
	for uid := range seen {
		a.put(uid)
		b.put(uid)
	}
}
