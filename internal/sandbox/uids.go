package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNoUID is returned by Start when every user id of the reserved range
// belongs to a live process.
var ErrNoUID = errors.New("sandbox: no free user id in the reserved range")

// uidLockDir holds one lock file per user id in use on the host, so that
// several Motes on one host (with the same default range) never hand out
// the same id: two functions sharing a uid share the kernel's per-user
// budgets (inotify instances, message queues, pipe pages) and, outside a
// root of their own, each other's files.
const uidLockDir = "/run/mote-uids"

// uidPool hands out the user ids of the reserved range, one per live
// process, round robin so that a freed id is the last to be reused. An id
// is also locked host-wide (flock on uidLockDir/ID) while in use, where
// that directory can be made.
type uidPool struct {
	mu    sync.Mutex
	base  int
	count int
	next  int // offset tried first
	used  map[int]*os.File
	dir   string // uidLockDir, or "" where it cannot be used
}

func newUIDPool(base, count int) *uidPool {
	p := &uidPool{base: base, count: count, used: map[int]*os.File{}}
	if os.Geteuid() == 0 && os.MkdirAll(uidLockDir, 0o700) == nil {
		p.dir = uidLockDir
	}
	return p
}

func (p *uidPool) get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.count {
		off := p.next
		p.next = (p.next + 1) % p.count
		if _, ok := p.used[off]; ok {
			continue
		}
		lock, ok := p.lock(p.base + off)
		if !ok {
			continue // another Mote on this host has it
		}
		p.used[off] = lock
		return p.base + off, nil
	}
	return 0, ErrNoUID
}

// lock takes the host-wide lock of uid; nil and true without a lock
// directory. The lock files stay: removing one could let two Motes lock
// different files of the same name.
func (p *uidPool) lock(uid int) (*os.File, bool) {
	if p.dir == "" {
		return nil, true
	}
	f, err := os.OpenFile(filepath.Join(p.dir, strconv.Itoa(uid)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// put frees uid; 0 is ignored.
func (p *uidPool) put(uid int) {
	if uid == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.used[uid-p.base]; ok {
		if f != nil {
			f.Close() // releases the host-wide lock
		}
		delete(p.used, uid-p.base)
	}
}
