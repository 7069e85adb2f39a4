package wasm

import (
	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// linearMemory backs one instance's wasm memory with an anonymous mapping
// of its whole limit, reserved but not committed (MAP_NORESERVE): growing
// never copies or moves, pages cost RAM only once the guest touches them,
// and Free gives them all back to the kernel at once rather than to the Go
// heap. It also enforces the function's memory limit per instance, which
// lets every function share one wazero runtime whatever its limit, and
// records a refused growth so a failure can be reported as out_of_memory.
//
// The mapping must outlive every access by the guest: wazero frees it
// (Free) when the module is closed, which Mote only does when no call is in
// flight (see instance.Close).
type linearMemory struct {
	limit   uint64 // bytes the guest may grow to
	mapped  []byte // the whole mapping (nil when backed by the Go heap)
	buf     []byte // the guest's memory: mapped[:size]
	refused bool   // a growth past limit was refused
	// pending are data segments to write at the first Reallocate (the
	// module's own were removed; see snapshot.go).
	pending []dataSeg
}

// memoryAllocator makes the linearMemory of one instantiation and keeps it
// so the instance can ask it whether growth was refused.
type memoryAllocator struct {
	limit uint64
	mem   *linearMemory
	// image, when set, is mapped copy-on-write over the start of the
	// next memory allocated (an instance restored from a snapshot).
	image *memImage
	// segments are the module's data segments, written into each new
	// memory that does not start from an image.
	segments []dataSeg
}

var _ experimental.MemoryAllocator = (*memoryAllocator)(nil)

// Allocate implements experimental.MemoryAllocator. capBytes is the
// module's initial size, maxBytes its declared (or runtime) maximum.
func (a *memoryAllocator) Allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	// The initial size must always succeed (wazero cannot fail it
	// gracefully); Load refuses modules whose minimum is above their limit,
	// so this only matters as a guard.
	limit := max(min(a.limit, maxBytes), capBytes)
	m := &linearMemory{limit: limit}
	if a.image == nil {
		m.pending = a.segments
	}
	if limit > 0 {
		if b, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err == nil {
			m.mapped = b
			if a.image != nil && mapImage(b, a.image) != nil {
				_ = unix.Munmap(b)
				m.mapped = nil
			}
		}
	}
	a.mem = m
	return m
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if m.mapped != nil {
		m.buf = m.mapped[:size]
		m.writePending()
		return m.buf
	}
	// No mapping (mmap failed): grow on the Go heap, copying.
	if size > uint64(cap(m.buf)) {
		nb := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.limit))
		copy(nb, m.buf)
		m.buf = nb
	}
	m.buf = m.buf[:size]
	m.writePending()
	return m.buf
}

// writePending writes the data segments into a new memory, in order, as
// instantiation would have. Load checked that they fit the initial size.
func (m *linearMemory) writePending() {
	for _, d := range m.pending {
		copy(m.buf[d.offset:], d.data)
	}
	m.pending = nil
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() {
	if m.mapped != nil {
		_ = unix.Munmap(m.mapped)
		m.mapped = nil
	}
	m.buf = nil
}
