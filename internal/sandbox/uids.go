package sandbox

import (
	"errors"
	"sync"
)

// ErrNoUID is returned by Start when every user id of the reserved range
// belongs to a live process.
var ErrNoUID = errors.New("sandbox: no free user id in the reserved range")

// uidPool hands out the user ids of the reserved range, one per live
// process, round robin so that a freed id is the last to be reused.
type uidPool struct {
	mu    sync.Mutex
	base  int
	count int
	next  int // offset tried first
	used  map[int]bool
}

func newUIDPool(base, count int) *uidPool {
	return &uidPool{base: base, count: count, used: map[int]bool{}}
}

func (p *uidPool) get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.count {
		off := p.next
		p.next = (p.next + 1) % p.count
		if !p.used[off] {
			p.used[off] = true
			return p.base + off, nil
		}
	}
	return 0, ErrNoUID
}

// put frees uid; 0 is ignored.
func (p *uidPool) put(uid int) {
	if uid == 0 {
		return
	}
	p.mu.Lock()
	delete(p.used, uid-p.base)
	p.mu.Unlock()
}
