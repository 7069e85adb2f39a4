package wasm

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"

	"github.com/mote-run/mote/internal/errs"
)

// Pre-initialised reactors (Wizer's idea). A Go reactor's _initialize
// (the Go runtime's start-up and the packages' init functions) is nearly
// all of a cold start. The first instance of a module initialises as
// before; right after, before it runs any invocation, its linear memory
// is copied into a memory file and its mutable globals are read. Later
// instances start from that image: instantiated without _initialize,
// their memory is the memory file mapped copy-on-write (no copy: a page
// is copied only when the instance writes it), their globals set to the
// captured values.
//
// One compiled module serves both: Load rewrites a snapshotable module to
// export its mutable globals and to drop its data segments, which the
// memory allocator writes itself into each new memory (memory.go) unless
// the memory starts from an image; so instantiating from the image does
// not overwrite it, and no second compilation is needed.
//
// What a restored instance shares with its siblings is what the first
// instance computed at initialisation and nothing it does later: each has
// its own memory (private pages), globals, WASI state and host state.
// Two things differ from an initialised instance, and are documented in
// docs/host-api.md: the Go runtime's internal random state (map seeds,
// the unseeded math/rand sequence) is the one drawn at the snapshot, so
// it repeats across restored instances of one version (crypto/rand, which
// asks the host on every call, stays fresh); and what the initialisation
// wrote to its output is logged again for each restored instance, as if
// it had run.
//
// A module qualifies when its instrumented binary can be rewritten: every
// mutable global is a number, there is no start section, no imported
// memory or global, no data count section, and every data segment is
// active in memory 0 at a constant offset inside the initial memory.

// snapGlobalPrefix starts the export names of a snapshotable module's
// mutable globals ("mote.g.3" for global 3).
const snapGlobalPrefix = "mote.g."

// snapshotable is a module rewritten for snapshots.
type snapshotable struct {
	bin      []byte    // the module with every mutable global exported and no data segments
	globals  []string  // the exports, one per mutable global, in index order
	segments []dataSeg // the data segments, written by the memory allocator
}

// dataSeg is an active data segment: bytes at an offset of memory 0.
type dataSeg struct {
	offset uint32
	data   []byte
}

// makeSnapshotable rewrites bin (an instrumented module) for snapshots.
// It never panics; it fails for any module it does not fully understand.
func makeSnapshotable(bin []byte) (snapshotable, error) {
	fail := func(why string) (snapshotable, error) {
		return snapshotable{}, fmt.Errorf("wasm: not snapshotable: %s", why)
	}
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return fail("not a wasm binary")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	c := cursor{b: bin, pos: 8}
	for !c.done() {
		id := c.byte()
		body := c.take(int(c.u32()))
		if c.err != nil {
			return fail("malformed section")
		}
		secs = append(secs, section{id, body})
	}
	var mutable []uint64
	names := map[string]bool{}
	var nExports uint32
	var minBytes uint64
	var segs []dataSeg
	hasExport := false
	for _, s := range secs {
		switch s.id {
		case secImport:
			g, mems, err := countImports(s.body)
			if err != nil {
				return fail("import section")
			}
			if g > 0 || mems > 0 {
				return fail("imports a global or a memory")
			}
		case secStart:
			return fail("has a start section")
		case secDataCount:
			return fail("has a data count section")
		case secMemory:
			mc := cursor{b: s.body}
			if n := mc.u32(); n != 1 {
				return fail("not exactly one memory")
			}
			flags := mc.byte()
			if flags > 1 {
				return fail("a shared or 64-bit memory")
			}
			minBytes = uint64(mc.u32()) * pageSize
			if flags == 1 {
				mc.u32()
			}
			if mc.err != nil || !mc.done() {
				return fail("memory section")
			}
		case secGlobal:
			gc := cursor{b: s.body}
			n := gc.u32()
			for k := uint32(0); k < n && gc.err == nil; k++ {
				vt, mut := gc.byte(), gc.byte()
				skipConstExpr(&gc)
				if mut == 1 {
					switch vt {
					case 0x7f, 0x7e, 0x7d, 0x7c: // i32, i64, f32, f64
						mutable = append(mutable, uint64(k))
					default:
						return fail("a mutable global that is not a number")
					}
				}
			}
			if gc.err != nil || !gc.done() {
				return fail("global section")
			}
		case secExport:
			n, err := exportNamesOf(s.body, names)
			if err != nil {
				return fail("export section")
			}
			nExports, hasExport = n, true
		case secData:
			dc := cursor{b: s.body}
			n := dc.u32()
			for k := uint32(0); k < n && dc.err == nil; k++ {
				if flags := dc.u32(); flags != 0 {
					return fail("a passive data segment or one in another memory")
				}
				if dc.byte() != 0x41 { // i32.const
					return fail("a data segment at a computed offset")
				}
				off := uint32(dc.sleb(32))
				if dc.byte() != 0x0b {
					return fail("a data segment at a computed offset")
				}
				data := dc.take(int(dc.u32()))
				segs = append(segs, dataSeg{offset: off, data: data})
			}
			if dc.err != nil || !dc.done() {
				return fail("data section")
			}
		}
	}
	if !hasExport {
		return fail("no exports")
	}
	for _, d := range segs {
		if uint64(d.offset)+uint64(len(d.data)) > minBytes {
			return fail("a data segment outside the initial memory")
		}
	}
	out := snapshotable{segments: segs}
	exportBody := func(old []byte) []byte {
		b := binary.AppendUvarint(nil, uint64(nExports)+uint64(len(mutable)))
		oc := cursor{b: old}
		oc.u32()
		b = append(b, old[oc.pos:]...)
		for _, idx := range mutable {
			name := snapGlobalPrefix + strconv.FormatUint(idx, 10)
			for n := 1; names[name]; n++ {
				name = snapGlobalPrefix + strconv.FormatUint(idx, 10) + "." + strconv.Itoa(n)
			}
			out.globals = append(out.globals, name)
			b = binary.AppendUvarint(b, uint64(len(name)))
			b = append(b, name...)
			b = append(b, importGlobal)
			b = binary.AppendUvarint(b, idx)
		}
		return b
	}
	dst := append(make([]byte, 0, len(bin)+len(mutable)*12), bin[:8]...)
	for _, s := range secs {
		body := s.body
		switch s.id {
		case secExport:
			body = exportBody(s.body)
		case secData:
			body = []byte{0} // no segments: the allocator writes them
		}
		dst = append(dst, s.id)
		dst = binary.AppendUvarint(dst, uint64(len(body)))
		dst = append(dst, body...)
	}
	out.bin = dst
	return out, nil
}

// skipConstExpr skips a constant expression up to and including its end.
func skipConstExpr(c *cursor) {
	for c.err == nil {
		switch op := c.byte(); op {
		case 0x0b: // end
			return
		case 0x41: // i32.const
			c.sleb(32)
		case 0x42: // i64.const
			c.sleb(64)
		case 0x43: // f32.const
			c.take(4)
		case 0x44: // f64.const
			c.take(8)
		case 0x23, 0xd2: // global.get, ref.func
			c.u32()
		case 0xd0: // ref.null
			c.byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		default:
			c.fail("constant expression")
		}
	}
}

// initLine is a line an initialisation wrote, replayed by each instance
// restored from its snapshot.
type initLine struct {
	stream string
	line   []byte
}

// snapshot is an initialised instance's state, which new instances of
// its module start from.
type snapshot struct {
	image   *memImage
	globals []uint64 // values of Module.snap.globals
	output  []initLine
}

// memImage is a linear memory's content in a memory file, mapped
// copy-on-write by each instance restored from it.
type memImage struct {
	fd   int
	size uint64 // bytes, a whole number of pages
}

func (im *memImage) close() { _ = unix.Close(im.fd) }

// newMemImage copies mem into a new memory file.
func newMemImage(mem []byte) (*memImage, error) {
	fd, err := unix.MemfdCreate("mote-wasm-snapshot", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	for off := 0; off < len(mem); {
		n, err := unix.Pwrite(fd, mem[off:], int64(off))
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		off += n
	}
	return &memImage{fd: fd, size: uint64(len(mem))}, nil
}

// mapImage maps im over the start of mapped, copy-on-write.
func mapImage(mapped []byte, im *memImage) error {
	if uint64(len(mapped)) < im.size {
		return fmt.Errorf("wasm: snapshot of %d bytes exceeds the memory limit", im.size)
	}
	if im.size == 0 {
		return nil
	}
	_, err := unix.MmapPtr(im.fd, 0, unsafe.Pointer(&mapped[0]), uintptr(im.size),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	return err
}

// snapState is a Module's snapshot machinery.
type snapState struct {
	on       bool      // the module was rewritten for snapshots
	globals  []string  // export names of the mutable globals
	segments []dataSeg // the data segments the allocator writes

	mu    sync.Mutex
	taken bool      // an instance initialises to be captured, or was
	cur   *snapshot // set once the first instance is captured
	// settled is closed once the first capture has been tried, whether
	// it made a snapshot or not (for tests and benchmarks to wait on).
	settled chan struct{}
}

// ready returns the snapshot new instances start from, or nil.
func (s *snapState) ready() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// capture records i, just initialised and not yet invoked, as the
// module's snapshot. out is what the initialisation wrote.
func (m *Module) capture(i *instance, out []initLine) {
	defer close(m.snap.settled)
	mem, ok := i.mod.Memory().Read(0, i.mod.Memory().Size())
	if !ok {
		return
	}
	vals := make([]uint64, len(m.snap.globals))
	for k, name := range m.snap.globals {
		g := i.mod.ExportedGlobal(name)
		if g == nil {
			return
		}
		vals[k] = g.Get()
	}
	im, err := newMemImage(mem)
	if err != nil {
		m.log.Warn("wasm: no snapshot", "err", err)
		return
	}
	s := &snapshot{image: im, globals: vals, output: out}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		im.close()
		return
	}
	m.snap.mu.Lock()
	m.snap.cur = s
	m.snap.mu.Unlock()
}

// closeSnapshot releases the snapshot; Module.Close calls it once no
// instance can start from it.
func (m *Module) closeSnapshot() {
	m.snap.mu.Lock()
	s := m.snap.cur
	m.snap.cur = nil
	m.snap.mu.Unlock()
	if s != nil {
		s.image.close()
	}
}

// restore starts the instance from s instead of initialising it.
func (i *instance) restore(ctx context.Context, s *snapshot) error {
	m, g := i.m, i.g
	now := time.Now()
	r := i.begin(ctx, now, now.Add(m.timeout))
	if r == nil {
		return errs.E(errs.Unavailable, "wasm: instance is closed")
	}
	defer i.end(r)
	g.alloc.image = s.image
	ictx := experimental.WithMemoryAllocator(withGuest(r, g), &g.alloc)
	cfg := m.config.WithStdout(&g.stdout).WithStderr(&g.stderr).WithNanosleep(g.sleepFn)
	mod, err := m.rt.InstantiateModule(ictx, m.compiled, cfg)
	g.alloc.image = nil
	if err != nil {
		return errs.Wrap(errs.InitError, err, "function failed to start from its snapshot: "+firstLine(err.Error()))
	}
	fail := func(why string) error {
		_ = mod.Close(ctx)
		return errs.E(errs.InitError, "wasm: function failed to start from its snapshot: %s", why)
	}
	if g.alloc.mem == nil || g.alloc.mem.mapped == nil {
		return fail("its memory could not be mapped")
	}
	mem := mod.Memory()
	if have, want := mem.Size()/pageSize, uint32(s.image.size/pageSize); have < want {
		if _, ok := mem.Grow(want - have); !ok {
			return fail("its memory could not grow to the snapshot's size")
		}
	}
	for k, name := range m.snap.globals {
		mg, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return fail("global " + name + " is missing")
		}
		mg.Set(s.globals[k])
	}
	// As instantiate does: the stop global is reachable, and set if the
	// start has been cancelled meanwhile.
	stop, ok := mod.ExportedGlobal(m.stopName).(api.MutableGlobal)
	if !ok {
		return fail("its stop global is missing")
	}
	i.cmu.Lock()
	i.stop, i.stopped = stop, false
	if i.cur != nil && i.cur.Err() != nil {
		stop.Set(1)
		i.stopped = true
	}
	i.cmu.Unlock()
	for _, l := range s.output {
		g.logLine(r, l.stream, l.line)
	}
	i.mod = mod
	i.handle = mod.ExportedFunction(exportHandle)
	i.setMem(int64(mem.Size()), true)
	return nil
}
