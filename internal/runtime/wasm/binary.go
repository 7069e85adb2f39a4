package wasm

import (
	"encoding/binary"
	"errors"
)

// wasmImport is one entry of a module's import section.
type wasmImport struct {
	module, name string
	kind         byte // importFunc, importTable, importMemory, importGlobal, importTag
}

const (
	importFunc   = 0x00
	importTable  = 0x01
	importMemory = 0x02
	importGlobal = 0x03
	importTag    = 0x04
)

var kindNames = [...]string{"function", "table", "memory", "global", "tag"}

func (i wasmImport) kindName() string {
	if int(i.kind) < len(kindNames) {
		return kindNames[i.kind]
	}
	return "unknown"
}

// moduleShape is what Load needs to know about a binary beyond what wazero
// exposes: every import with its kind, and the initial size of the
// module's own memory.
type moduleShape struct {
	imports  []wasmImport
	minPages uint64 // of the memory the module defines; 0 if none
}

var errMalformed = errors.New("malformed section")

// scanModule reads the import and memory sections of a wasm binary. It
// runs after wazero has validated the binary, but stays defensive: it
// crosses a trust boundary and must never panic on any input.
func scanModule(b []byte) (moduleShape, error) {
	var s moduleShape
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return s, errors.New("no wasm header")
	}
	r := reader{b: b[8:]}
	for !r.done() {
		id := r.byte()
		size := r.u32()
		sec := reader{b: r.take(size)}
		if r.err != nil {
			return s, r.err
		}
		switch id {
		case 2: // import
			for n := sec.u32(); n > 0 && sec.err == nil; n-- {
				imp := wasmImport{module: sec.name(), name: sec.name(), kind: sec.byte()}
				switch imp.kind {
				case importFunc:
					sec.u32()
				case importTable:
					sec.byte()
					sec.limits()
				case importMemory:
					sec.limits()
				case importGlobal:
					sec.byte()
					sec.byte()
				case importTag:
					sec.byte()
					sec.u32()
				default:
					sec.err = errMalformed
				}
				s.imports = append(s.imports, imp)
			}
		case 5: // memory
			if n := sec.u32(); n > 0 {
				s.minPages = sec.limits()
			}
		}
		if sec.err != nil {
			return s, sec.err
		}
	}
	return s, r.err
}

// reader decodes the wasm binary format; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) done() bool { return r.err != nil || len(r.b) == 0 }

func (r *reader) fail() { r.err = errMalformed; r.b = nil }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) u64() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 {
	v := r.u64()
	if v > 1<<32-1 {
		r.fail()
		return 0
	}
	return uint32(v)
}

func (r *reader) take(n uint32) []byte {
	if uint64(n) > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) name() string { return string(r.take(r.u32())) }

// limits reads a limits record (any of the flag forms: with or without
// max, shared, 64-bit) and returns its minimum.
func (r *reader) limits() uint64 {
	flags := r.byte()
	lo := r.u64()
	if flags&1 != 0 {
		r.u64()
	}
	if flags > 7 {
		r.fail()
	}
	return lo
}
