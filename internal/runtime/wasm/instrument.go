package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Mote stops a runaway guest with a flag the guest checks itself, instead
// of wazero's WithCloseOnContextDone, which calls a Go trampoline at every
// loop iteration and made Go guests (a loop at the top of every function)
// about four times slower. The rewriter adds two mutable i32 globals,
// $stop (exported under a reserved name) and $fuel, and at the top of
// every function body and of every loop body the check
//
//	global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	global.get $fuel  i32.eqz
//	if
//	  i32.const yieldEvery  global.set $fuel
//	  i32.const 0  memory.grow 0  drop     ;; a trip through Go
//	  global.get $stop
//	  if  unreachable  end
//	end
//
// When an invocation's context ends the runtime sets $stop to 1, and the
// guest traps within yieldEvery checks. Without a loop or a call a guest
// cannot run for long.
//
// Why not just test $stop at every check: compiled wasm never yields to
// the Go scheduler, so a guest spinning without leaving native code stops
// every goroutine that needs a stop-the-world (the garbage collector's),
// including the one that would set $stop: the process freezes (wazero's
// RATIONALE.md says as much). memory.grow(0) is a call into Go (wazero's
// exit to Memory.Grow), where the goroutine can be preempted, so the
// guest yields every yieldEvery checks; it changes nothing else (a module
// without a memory is not instrumented).
//
// The rewriter only ever inserts that check and the globals with the
// export; it never reinterprets anything else. A module using an
// instruction or section it does not know fails with errUninstrumentable,
// and the runtime falls back to wazero's close-on-context-done for it.

// yieldEvery is how many checks a guest passes between trips through Go:
// the bound on how long it delays a garbage collection or its own stop,
// against the cost of a trip (~100 ns) spread over the checks.
const yieldEvery = 1000

// checkCode is the check inserted for the given $stop and $fuel indices.
func checkCode(stop, fuel uint64) []byte {
	get := func(b []byte, idx uint64) []byte { return binary.AppendUvarint(append(b, 0x23), idx) }
	set := func(b []byte, idx uint64) []byte { return binary.AppendUvarint(append(b, 0x24), idx) }
	b := get(nil, fuel)
	b = append(b, 0x41, 0x01, 0x6b) // i32.const 1; i32.sub
	b = set(b, fuel)
	b = get(b, fuel)
	b = append(b, 0x45, 0x04, 0x40) // i32.eqz; if
	b = sleb(append(b, 0x41), yieldEvery)
	b = set(b, fuel)
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0; memory.grow 0; drop
	b = get(b, stop)
	return append(b, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if unreachable end; end
}

// sleb appends v in signed LEB128, the encoding of wasm's const operands.
func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// errUninstrumentable is instrument's error for a module it cannot
// rewrite: one that is malformed or uses an instruction or section the
// decoder does not know.
var errUninstrumentable = errors.New("wasm: module cannot be instrumented")

// stopExportName is the export name the stop global gets, with a numeric
// suffix if the module already exports that name.
const stopExportName = "mote.stop"

// Section ids, in the order the binary format requires them (custom
// sections, id 0, may appear anywhere).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank gives each known non-custom section its place in the
// required order.
var sectionRank = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

// instrumented is a rewritten module.
type instrumented struct {
	bin      []byte // the rewritten binary
	stopName string // the export name of the stop global
}

// instrument rewrites a wasm binary so a runaway guest can be stopped by
// setting its stop global. It never panics; any error wraps
// errUninstrumentable.
func instrument(bin []byte) (instrumented, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || binary.LittleEndian.Uint32(bin[4:8]) != 1 {
		return instrumented{}, fmt.Errorf("%w: not a wasm 1.0 binary", errUninstrumentable)
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	c := cursor{b: bin, pos: 8}
	lastRank := 0
	seen := map[byte]bool{}
	for !c.done() {
		id := c.byte()
		size := c.u32()
		body := c.take(int(size))
		if c.err != nil {
			return instrumented{}, c.failure("section header")
		}
		if id != secCustom {
			rank, ok := sectionRank[id]
			if !ok {
				return instrumented{}, fmt.Errorf("%w: unknown section %d", errUninstrumentable, id)
			}
			if rank <= lastRank || seen[id] {
				return instrumented{}, fmt.Errorf("%w: section %d out of order", errUninstrumentable, id)
			}
			lastRank = rank
			seen[id] = true
		}
		secs = append(secs, section{id, body})
	}

	// What the new global and export depend on: how many globals come
	// before ours, and which export names are taken.
	var importedGlobals, importedMemories, definedGlobals uint32
	exportNames := map[string]bool{}
	var nExports uint32
	hasMemory := false
	for _, s := range secs {
		var err error
		switch s.id {
		case secImport:
			importedGlobals, importedMemories, err = countImports(s.body)
			hasMemory = hasMemory || importedMemories > 0
		case secMemory:
			sc := cursor{b: s.body}
			hasMemory = hasMemory || sc.u32() > 0
			err = sc.err
		case secGlobal:
			sc := cursor{b: s.body}
			definedGlobals = sc.u32()
			err = sc.err
		case secExport:
			nExports, err = exportNamesOf(s.body, exportNames)
		}
		if err != nil {
			return instrumented{}, err
		}
	}
	if !hasMemory {
		return instrumented{}, fmt.Errorf("%w: no memory to yield through", errUninstrumentable)
	}
	stopIdx := uint64(importedGlobals) + uint64(definedGlobals)
	fuelIdx := stopIdx + 1
	if fuelIdx >= 1<<32-1 {
		return instrumented{}, fmt.Errorf("%w: too many globals", errUninstrumentable)
	}
	name := stopExportName
	for n := 1; exportNames[name]; n++ {
		name = stopExportName + "." + strconv.Itoa(n)
	}
	check := checkCode(stopIdx, fuelIdx)

	// The new sections' bodies.
	globalBody := func(old []byte) []byte {
		b := binary.AppendUvarint(nil, uint64(definedGlobals)+2)
		if old != nil {
			sc := cursor{b: old}
			sc.u32()
			b = append(b, old[sc.pos:]...)
		}
		b = append(b, 0x7f, 0x01, 0x41, 0x00, 0x0b)       // $stop: mut i32 = 0
		b = sleb(append(b, 0x7f, 0x01, 0x41), yieldEvery) // $fuel: mut i32 = yieldEvery
		return append(b, 0x0b)
	}
	exportBody := func(old []byte) []byte {
		b := binary.AppendUvarint(nil, uint64(nExports)+1)
		if old != nil {
			sc := cursor{b: old}
			sc.u32()
			b = append(b, old[sc.pos:]...)
		}
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		b = append(b, importGlobal)
		return binary.AppendUvarint(b, stopIdx)
	}

	out := make([]byte, 0, len(bin)+len(bin)/16+64)
	out = append(out, bin[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	wroteGlobal, wroteExport := false, false
	// flushMissing writes the global and export sections the module lacks
	// before a section that must follow them.
	flushMissing := func(beforeRank int) {
		if !wroteGlobal && beforeRank > sectionRank[secGlobal] {
			emit(secGlobal, globalBody(nil))
			wroteGlobal = true
		}
		if !wroteExport && beforeRank > sectionRank[secExport] {
			emit(secExport, exportBody(nil))
			wroteExport = true
		}
	}
	for _, s := range secs {
		if s.id != secCustom {
			flushMissing(sectionRank[s.id])
		}
		switch s.id {
		case secGlobal:
			emit(secGlobal, globalBody(s.body))
			wroteGlobal = true
		case secExport:
			emit(secExport, exportBody(s.body))
			wroteExport = true
		case secCode:
			body, err := instrumentCode(s.body, check)
			if err != nil {
				return instrumented{}, err
			}
			emit(secCode, body)
		default:
			emit(s.id, s.body)
		}
	}
	flushMissing(1 << 30)
	return instrumented{bin: out, stopName: name}, nil
}

// countImports returns how many globals and memories an import section
// imports.
func countImports(b []byte) (globals, memories uint32, err error) {
	c := cursor{b: b}
	for n := c.u32(); n > 0 && c.err == nil; n-- {
		c.take(int(c.u32())) // module
		c.take(int(c.u32())) // name
		switch kind := c.byte(); kind {
		case importFunc:
			c.u32()
		case importTable:
			c.refType()
			c.limits()
		case importMemory:
			c.limits()
			memories++
		case importGlobal:
			c.valType()
			if mut := c.byte(); mut > 1 {
				c.fail("global mutability")
			}
			globals++
		case importTag:
			c.byte()
			c.u32()
		default:
			c.fail("import kind")
		}
	}
	if c.err == nil && !c.done() {
		c.fail("import section trailing bytes")
	}
	if c.err != nil {
		return 0, 0, c.failure("import section")
	}
	return globals, memories, nil
}

// exportNamesOf adds an export section's names to names and returns how
// many exports it has.
func exportNamesOf(b []byte, names map[string]bool) (uint32, error) {
	c := cursor{b: b}
	n := c.u32()
	for i := n; i > 0 && c.err == nil; i-- {
		names[string(c.take(int(c.u32())))] = true
		c.byte()
		c.u32()
	}
	if c.err == nil && !c.done() {
		c.fail("export section trailing bytes")
	}
	if c.err != nil {
		return 0, c.failure("export section")
	}
	return n, nil
}

// instrumentCode rewrites a code section, inserting check at the top of
// every function body and of every loop body.
func instrumentCode(b []byte, check []byte) ([]byte, error) {
	c := cursor{b: b}
	n := c.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(b)+len(b)/8), uint64(n))
	var body []byte
	for i := n; i > 0 && c.err == nil; i-- {
		size := c.u32()
		fn := c.take(int(size))
		if c.err != nil {
			break
		}
		var err error
		body, err = instrumentBody(body[:0], fn, check)
		if err != nil {
			return nil, fmt.Errorf("%w (function body %d)", err, n-i)
		}
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	if c.err == nil && !c.done() {
		c.fail("code section trailing bytes")
	}
	if c.err != nil {
		return nil, c.failure("code section")
	}
	return out, nil
}

// instrumentBody appends fn, one function body (locals and expression),
// to out with check inserted after the locals and after every loop's
// block type.
func instrumentBody(out, fn, check []byte) ([]byte, error) {
	c := cursor{b: fn}
	for n := c.u32(); n > 0 && c.err == nil; n-- {
		c.u32()
		c.valType()
	}
	if c.err != nil {
		return nil, c.failure("locals")
	}
	out = append(out, fn[:c.pos]...)
	out = append(out, check...)
	copied := c.pos
	depth := 0 // open blocks besides the function's own
	for {
		if c.done() {
			return nil, c.failure("function body without end")
		}
		op := c.byte()
		switch op {
		case 0x02, 0x04: // block, if
			c.blockType()
			depth++
		case 0x03: // loop
			c.blockType()
			depth++
			if c.err == nil {
				out = append(out, fn[copied:c.pos]...)
				out = append(out, check...)
				copied = c.pos
			}
		case 0x0b: // end
			if depth == 0 {
				if !c.done() {
					return nil, c.failure("bytes after the function's end")
				}
				return append(out, fn[copied:c.pos]...), nil
			}
			depth--
		default:
			c.immediates(op)
		}
		if c.err != nil {
			return nil, c.failure(fmt.Sprintf("instruction 0x%02x", op))
		}
	}
}

// immediates skips the immediates of an instruction other than block,
// loop, if and end. An unknown opcode is an error.
func (c *cursor) immediates(op byte) {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0f, op == 0x1a, op == 0x1b, // unreachable nop else return drop select
		op >= 0x45 && op <= 0xc4, // numeric, sign extension
		op == 0xd1:               // ref.is_null
	case op == 0x0c, op == 0x0d, // br br_if
		op == 0x10, op == 0x12, // call return_call
		op >= 0x20 && op <= 0x26, // local.*, global.*, table.get/set
		op == 0x3f, op == 0x40,   // memory.size/grow (memory index)
		op == 0xd2: // ref.func
		c.u32()
	case op == 0x0e: // br_table
		for n := c.u32(); n > 0 && c.err == nil; n-- {
			c.u32()
		}
		c.u32()
	case op == 0x11, op == 0x13: // call_indirect return_call_indirect: type, table
		c.u32()
		c.u32()
	case op == 0x1c: // typed select
		n := c.u32()
		if n != 1 {
			c.fail("typed select arity")
		}
		c.valType()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		c.memarg()
	case op == 0x41:
		c.sleb(32)
	case op == 0x42:
		c.sleb(64)
	case op == 0x43:
		c.take(4)
	case op == 0x44:
		c.take(8)
	case op == 0xd0: // ref.null
		c.refType()
	case op == 0xfc:
		c.miscImmediates(c.u32())
	case op == 0xfd:
		c.simdImmediates(c.u32())
	case op == 0xfe:
		c.atomicImmediates(c.u32())
	default:
		// Exception handling, typed function references, GC, and
		// anything newer: not decoded, so not rewritten.
		c.fail("unknown opcode")
	}
}

// miscImmediates skips the immediates of a 0xFC-prefixed instruction.
func (c *cursor) miscImmediates(sub uint32) {
	switch {
	case sub <= 0x07: // saturating truncation
	case sub == 0x08, sub == 0x0a, sub == 0x0c, sub == 0x0e: // memory.init memory.copy table.init table.copy
		c.u32()
		c.u32()
	case sub == 0x09, sub == 0x0b, sub == 0x0d, sub >= 0x0f && sub <= 0x11: // data.drop memory.fill elem.drop table.grow/size/fill
		c.u32()
	default:
		c.fail("unknown 0xfc instruction")
	}
}

// simdImmediates skips the immediates of a 0xFD-prefixed (SIMD)
// instruction.
func (c *cursor) simdImmediates(sub uint32) {
	switch {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads, splat loads, store, zero loads
		c.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		c.take(16)
	case sub >= 0x15 && sub <= 0x22: // extract/replace lane
		c.byte()
	case sub >= 0x54 && sub <= 0x5b: // load/store lane
		c.memarg()
		c.byte()
	case simdPlain(sub):
	default:
		c.fail("unknown 0xfd instruction")
	}
}

// simdPlain reports whether sub is a SIMD instruction without immediates
// (the opcode table has holes; relaxed SIMD, above 0xff, is not decoded).
func simdPlain(sub uint32) bool {
	for _, r := range [...][2]uint32{
		{0x0e, 0x14}, {0x23, 0x53}, {0x5e, 0x99}, {0x9b, 0xa1}, {0xa3, 0xa4}, {0xa7, 0xae}, {0xb1, 0xb1},
		{0xb5, 0xba}, {0xbc, 0xc1}, {0xc3, 0xc4}, {0xc7, 0xce}, {0xd1, 0xd1}, {0xd5, 0xe1}, {0xe3, 0xed}, {0xef, 0xff},
	} {
		if sub >= r[0] && sub <= r[1] {
			return true
		}
	}
	return false
}

// atomicImmediates skips the immediates of a 0xFE-prefixed (threads)
// instruction.
func (c *cursor) atomicImmediates(sub uint32) {
	switch {
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e: // notify, wait, loads, stores, read-modify-writes
		c.memarg()
	case sub == 0x03: // atomic.fence
		if c.byte() != 0 {
			c.fail("atomic.fence")
		}
	default:
		c.fail("unknown 0xfe instruction")
	}
}

// cursor decodes the wasm binary format at a position; the first error
// sticks and every later read returns zero.
type cursor struct {
	b   []byte
	pos int
	err error
}

func (c *cursor) done() bool { return c.err != nil || c.pos >= len(c.b) }

func (c *cursor) fail(what string) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: malformed or unknown %s at byte %d", errUninstrumentable, what, c.pos)
	}
	c.pos = len(c.b)
}

// failure returns the sticky error, or one naming what if there is none.
func (c *cursor) failure(what string) error {
	if c.err == nil {
		c.fail(what)
	}
	return c.err
}

func (c *cursor) byte() byte {
	if c.pos >= len(c.b) {
		c.fail("end of input")
		return 0
	}
	v := c.b[c.pos]
	c.pos++
	return v
}

func (c *cursor) take(n int) []byte {
	if n < 0 || n > len(c.b)-c.pos {
		c.fail("length")
		return nil
	}
	p := c.b[c.pos : c.pos+n]
	c.pos += n
	return p
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (c *cursor) u32() uint32 {
	var v uint64
	for i := 0; i < 5; i++ {
		b := c.byte()
		if c.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if v > 1<<32-1 {
				c.fail("u32")
				return 0
			}
			return uint32(v)
		}
	}
	c.fail("u32")
	return 0
}

// sleb reads a signed LEB128 of at most bits bits.
func (c *cursor) sleb(bits int) int64 {
	var v int64
	shift := 0
	for i := 0; i < (bits+6)/7; i++ {
		b := c.byte()
		if c.err != nil {
			return 0
		}
		v |= int64(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
	c.fail("signed LEB128")
	return 0
}

// blockType reads a block type: empty, a value type, or a type index
// (a non-negative s33).
func (c *cursor) blockType() {
	v := c.sleb(33)
	if v >= 0 || c.err != nil {
		return
	}
	switch v {
	case -0x40, -0x01, -0x02, -0x03, -0x04, -0x05, -0x10, -0x11: // empty i32 i64 f32 f64 v128 funcref externref
	default:
		c.fail("block type")
	}
}

// valType reads a value type: a number, v128, funcref or externref.
func (c *cursor) valType() {
	switch c.byte() {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		c.fail("value type")
	}
}

func (c *cursor) refType() {
	switch c.byte() {
	case 0x70, 0x6f:
	default:
		c.fail("reference type")
	}
}

// limits reads a limits record of a 32-bit memory or table (shared or not).
func (c *cursor) limits() {
	flags := c.byte()
	if flags > 3 {
		c.fail("limits")
		return
	}
	c.u32()
	if flags&1 != 0 {
		c.u32()
	}
}

// memarg reads an alignment and an offset. Multiple memories (alignment
// bit 6) and 64-bit offsets are not decoded.
func (c *cursor) memarg() {
	if align := c.u32(); align >= 1<<6 {
		c.fail("memarg alignment")
	}
	c.u32()
}
