package wasm

import "encoding/binary"

// A minimal wasm encoder for the tests' hand-made modules: enough sections
// for imports, functions, one memory, data, and exports.

type wasmFunc struct {
	typ    int
	locals []byte // one i32/i64 local per entry (valtype bytes)
	body   []byte // instructions, without the final end
}

type wasmExport struct {
	name string
	kind byte // 0 func, 2 memory
	idx  int
}

type wasmModule struct {
	types    [][2][]byte // params, results (valtype bytes)
	imports  []wasmImportDef
	funcs    []wasmFunc
	memPages int // -1 for no memory
	exports  []wasmExport
	data     []wasmData
}

type wasmImportDef struct {
	module, name string
	kind         byte
	desc         []byte // type index for functions, raw for the rest
}

type wasmData struct {
	offset int32
	bytes  []byte
}

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

func (m *wasmModule) encode() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	section := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	vec := func(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }
	name := func(b []byte, s string) []byte { return append(vec(b, len(s)), s...) }

	var b []byte
	b = vec(b, len(m.types))
	for _, t := range m.types {
		b = append(b, 0x60)
		b = append(vec(b, len(t[0])), t[0]...)
		b = append(vec(b, len(t[1])), t[1]...)
	}
	section(1, b)

	if len(m.imports) > 0 {
		b = vec(nil, len(m.imports))
		for _, imp := range m.imports {
			b = name(b, imp.module)
			b = name(b, imp.name)
			b = append(b, imp.kind)
			b = append(b, imp.desc...)
		}
		section(2, b)
	}

	b = vec(nil, len(m.funcs))
	for _, f := range m.funcs {
		b = vec(b, f.typ)
	}
	section(3, b)

	if m.memPages >= 0 {
		b = vec(nil, 1)
		b = append(b, 0)
		b = vec(b, m.memPages)
		section(5, b)
	}

	b = vec(nil, len(m.exports))
	for _, e := range m.exports {
		b = name(b, e.name)
		b = append(b, e.kind)
		b = vec(b, e.idx)
	}
	section(7, b)

	b = vec(nil, len(m.funcs))
	for _, f := range m.funcs {
		var body []byte
		body = vec(body, len(f.locals))
		for _, l := range f.locals {
			body = append(body, 1, l)
		}
		body = append(body, f.body...)
		body = append(body, 0x0b)
		b = vec(b, len(body))
		b = append(b, body...)
	}
	section(10, b)

	if len(m.data) > 0 {
		b = vec(nil, len(m.data))
		for _, d := range m.data {
			b = append(b, 0, 0x41)
			b = sleb(b, int64(d.offset))
			b = append(b, 0x0b)
			b = vec(b, len(d.bytes))
			b = append(b, d.bytes...)
		}
		section(11, b)
	}
	return out
}

// Hand-made modules.

// commandModule is a WASI command whose _start runs body.
func commandModule(body []byte, locals ...byte) []byte {
	m := wasmModule{
		types:    [][2][]byte{{nil, nil}},
		funcs:    []wasmFunc{{typ: 0, locals: locals, body: body}},
		memPages: 1,
		exports:  []wasmExport{{"_start", 0, 0}, {"memory", 2, 0}},
	}
	return m.encode()
}

var (
	// tinyCommand does nothing.
	tinyCommand = commandModule(nil)

	// loopCommand never returns.
	loopCommand = commandModule([]byte{0x03, 0x40, 0x0c, 0x00, 0x0b})

	// bombCommand grows its memory a page at a time, touching each new
	// page, and traps (as an allocator aborts) when growth is refused.
	bombCommand = commandModule([]byte{
		0x03, 0x40, // loop
		0x41, 0x01, 0x40, 0x00, // i32.const 1; memory.grow
		0x22, 0x00, // local.tee 0
		0x41, 0x7f, 0x46, // i32.const -1; i32.eq
		0x04, 0x40, 0x00, 0x0b, // if unreachable end
		0x20, 0x00, 0x41, 0x10, 0x74, // local.get 0; i32.const 16; i32.shl
		0x41, 0x01, 0x3a, 0x00, 0x00, // i32.const 1; i32.store8
		0x0c, 0x00, // br 0
		0x0b, // end loop
	}, tI32)

	// tinyReactor's mote_handle returns the 2 bytes "hi" at offset 16.
	tinyReactor = (&wasmModule{
		types:    [][2][]byte{{{tI32, tI32}, {tI64}}},
		funcs:    []wasmFunc{{typ: 0, body: sleb([]byte{0x42}, 16<<32|2)}},
		memPages: 1,
		exports:  []wasmExport{{"mote_handle", 0, 0}, {"memory", 2, 0}},
		data:     []wasmData{{16, []byte("hi")}},
	}).encode()
)

// importingCommand is a command that imports one function of type t.
func importingCommand(module, name string, params, results []byte) []byte {
	m := wasmModule{
		types:    [][2][]byte{{nil, nil}, {params, results}},
		imports:  []wasmImportDef{{module, name, 0, []byte{1}}},
		funcs:    []wasmFunc{{typ: 0}},
		memPages: 1,
		exports:  []wasmExport{{"_start", 0, 1}}, // index 1: imports come first
	}
	return m.encode()
}
