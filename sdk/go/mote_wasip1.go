//go:build wasip1

package mote

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"
)

// The "mote" host imports. docs/host-api.md ("The reactor ABI") is their
// contract; pointers are offsets in this module's linear memory.

// hostCallV makes host call op with the argc arguments whose (ptr, len)
// pairs, two uint32s each, are at argv. The result (or, when the return
// value is negative, the encoded error) is written to out if it fits in
// outCap bytes; otherwise the host keeps it for hostTake. The absolute
// value of the return value is the result's length.
//
//go:wasmimport mote callv
func hostCallV(op unsafe.Pointer, opLen uint32, argv unsafe.Pointer, argc uint32, out unsafe.Pointer, outCap uint32) int64

// hostTake copies the pending result of the last hostCallV to dst, which
// has room for it.
//
//go:wasmimport mote take
func hostTake(dst unsafe.Pointer)

// hostEvent copies the current invocation's metadata and payload to dst.
//
//go:wasmimport mote event
func hostEvent(dst unsafe.Pointer)

// hostFail reports that the handler failed with msg; fatal != 0 means the
// instance must not be reused (the handler panicked).
//
//go:wasmimport mote fail
func hostFail(msg unsafe.Pointer, msgLen uint32, fatal uint32)

// hostLog writes one line to the function's log.
//
//go:wasmimport mote log
func hostLog(msg unsafe.Pointer, msgLen uint32)

// The module is single-threaded, and a goroutine only lets another one run
// where it blocks or allocates (an allocation may start a garbage
// collection, which yields). Call allocates nothing between filling argv
// and placing the result, so these globals serve every goroutine and spare
// an allocation per call.
var (
	// argv holds the (ptr, len) pairs of the host call in progress.
	argv [16][2]uint32
	// block is the unused rest of the block that results are carved from.
	block []byte
	// taking is set while a call waits for room to take a result too big
	// for block: the host holds that result until then, so no other call
	// may start.
	taking bool
	// lastOut keeps the handler's last result reachable (and so where the
	// host reads it) until the next invocation replaces it.
	lastOut []byte

	function = os.Getenv("MOTE_FUNCTION")
	version  = os.Getenv("MOTE_VERSION")
)

// Start is for native builds, where it runs the Lambda Runtime API loop. A
// wasm reactor never runs main, so in a correctly built function this is
// never called; reaching it means the module was built as a command.
func Start() {
	fmt.Fprintln(os.Stderr, "mote: a wasm function must be built with -buildmode=c-shared (main is not used)")
	os.Exit(2)
}

// Log writes a formatted line to the function's log.
func Log(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	hostLog(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// Results of host calls are carved from blocks of blockSize bytes: in a
// Go wasm module an allocation costs as much as the host call itself,
// and one block serves many small results. The host writes a result
// straight into the block, so it is not copied either. A result is its
// own slice (its capacity ends where it ends), but a small result kept
// for long keeps its whole block reachable: a function that keeps a few
// small results out of very many should copy them (bytes.Clone).
// Results larger than blockSize/2 get an allocation of their own.
const (
	blockSize = 2048
	// blockRoom is the least room a call starts with: results up to this
	// size always land in the block in one crossing.
	blockRoom = 256
)

// Call makes the host call op with args and returns its result, or an
// *Error carrying the host's error code. The result is the caller's: it
// shares no bytes with args or any other result.
func Call(op string, args ...[]byte) ([]byte, error) {
	vec := argv[:]
	if len(args) > len(argv) {
		vec = make([][2]uint32, len(args))
	}
	// Everything that may allocate, and so let another goroutine run,
	// happens before argv is filled.
	for taking || len(block) < blockRoom {
		if taking {
			runtime.Gosched()
			continue
		}
		block = make([]byte, blockSize)
	}
	for i, a := range args {
		vec[i] = [2]uint32{uint32(uintptr(unsafe.Pointer(unsafe.SliceData(a)))), uint32(len(a))}
	}
	r := hostCallV(unsafe.Pointer(unsafe.StringData(op)), uint32(len(op)),
		unsafe.Pointer(&vec[0]), uint32(len(args)),
		unsafe.Pointer(unsafe.SliceData(block)), uint32(len(block)))
	runtime.KeepAlive(args) // argv held their addresses as plain integers
	n := r
	if n < 0 {
		n = -n
	}
	var res []byte
	switch {
	case n == 0:
	case n <= int64(len(block)):
		res = block[:n:n]
		block = block[n:]
	default:
		res = take(int(n))
	}
	if r < 0 {
		return nil, ownedError(res)
	}
	return res, nil
}

// ownedError decodes the error a call returned in b, bytes no one else
// holds: its message is read in place, so a failed call (a missing key)
// allocates only the *Error.
func ownedError(b []byte) *Error {
	code, msg, ok := splitError(b)
	if !ok {
		return malformedError()
	}
	return &Error{Code: codeString(code), Message: unsafe.String(unsafe.SliceData(msg), len(msg))}
}

// take makes room for the pending result of the last call, n bytes, and
// has the host copy it there. A result that would fill most of a block
// gets its own allocation; a smaller one starts a new block.
func take(n int) []byte {
	taking = true
	var res []byte
	if n <= blockSize/2 {
		block = make([]byte, blockSize)
		res, block = block[:n:n], block[n:]
	} else {
		res = make([]byte, n)
	}
	hostTake(unsafe.Pointer(unsafe.SliceData(res)))
	taking = false
	return res
}

// handle is the reactor's entry point: the host calls it once per
// invocation with the lengths of the invocation's metadata and payload and
// gets back the result's place in memory, ptr<<32 | len.
//
//go:wasmexport mote_handle
func handle(metaLen, payloadLen uint32) uint64 {
	lastOut = nil
	buf := make([]byte, metaLen+payloadLen)
	if len(buf) > 0 {
		hostEvent(unsafe.Pointer(unsafe.SliceData(buf)))
	}
	ctx, ok := decodeContext(buf[:metaLen])
	if !ok {
		fail("mote: malformed invocation metadata from host", true)
		return 0
	}
	if handler == nil {
		fail("mote: no handler registered (call mote.Handle from init)", false)
		return 0
	}
	out, err := run(ctx, buf[metaLen:len(buf):len(buf)])
	if err != nil {
		return 0
	}
	if len(out) == 0 {
		return 0
	}
	lastOut = out
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}

// run calls the handler, turning a returned error or a panic into a
// reported failure. A recovered panic is fatal: the handler's state may be
// broken, so the host retires the instance.
func run(ctx *Context, event []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
			fail(err.Error(), true)
		}
	}()
	out, err = handler(ctx, event)
	if err != nil {
		fail(err.Error(), false)
	}
	return out, err
}

func fail(msg string, fatal bool) {
	var f uint32
	if fatal {
		f = 1
	}
	hostFail(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)), f)
}

// metaHeader is the size of the fixed part of the invocation metadata.
const metaHeader = 24

// decodeContext decodes the invocation metadata the host writes before the
// payload: deadline (int64 unix ns), depth (uint32), then the lengths
// (uint32 each) and bytes of the invocation, root and parent ids; all
// little endian. The strings alias meta, which is never written again: a
// wasm guest pays for every call and loop, so the hot path avoids both.
func decodeContext(meta []byte) (*Context, bool) {
	if len(meta) < metaHeader {
		return nil, false
	}
	le := binary.LittleEndian
	n1, n2, n3 := int(le.Uint32(meta[12:])), int(le.Uint32(meta[16:])), int(le.Uint32(meta[20:]))
	if n1+n2+n3 != len(meta)-metaHeader {
		return nil, false
	}
	ids := meta[metaHeader:]
	return &Context{
		InvocationID: unsafeString(ids[:n1]),
		RootID:       unsafeString(ids[n1 : n1+n2]),
		ParentID:     unsafeString(ids[n1+n2:]),
		Deadline:     time.Unix(0, int64(le.Uint64(meta))),
		Depth:        int(le.Uint32(meta[8:])),
		Function:     function,
		Version:      version,
	}, true
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
