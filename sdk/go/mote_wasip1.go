//go:build wasip1

package mote

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
	"unsafe"
)

// The "mote" host imports. docs/host-api.md ("The wasm ABI") is their
// contract; pointers are offsets in this module's linear memory.

// hostCall makes host call op with encoded args. The result (or, when the
// return value is negative, the encoded error) is written to out if it fits
// in outCap bytes; otherwise the host keeps it for hostTake. The absolute
// value of the return value is the result's length.
//
//go:wasmimport mote call
func hostCall(op unsafe.Pointer, opLen uint32, args unsafe.Pointer, argsLen uint32, out unsafe.Pointer, outCap uint32) int64

// hostTake copies the pending result of the last hostCall to dst, which has
// room for it.
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

// The module is single-threaded and a goroutine is never preempted between
// filling these buffers and the host import that reads them, so globals are
// safe and spare an allocation per call.
var (
	// argsBuf holds the encoded arguments of the host call in progress.
	argsBuf []byte
	// resBuf receives results that fit, which is almost all of them.
	resBuf [4096]byte
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

// Call makes the host call op with args and returns its result, or an
// *Error carrying the host's error code. The result is the caller's.
func Call(op string, args ...[]byte) ([]byte, error) {
	argsBuf = appendArgs(argsBuf[:0], args...)
	r := hostCall(unsafe.Pointer(unsafe.StringData(op)), uint32(len(op)),
		unsafe.Pointer(unsafe.SliceData(argsBuf)), uint32(len(argsBuf)),
		unsafe.Pointer(&resBuf[0]), uint32(len(resBuf)))
	n := r
	if n < 0 {
		n = -n
	}
	var res []byte
	if n <= int64(len(resBuf)) {
		res = append([]byte(nil), resBuf[:n]...)
	} else {
		res = make([]byte, n)
		hostTake(unsafe.Pointer(unsafe.SliceData(res)))
	}
	if r < 0 {
		return nil, decodeError(res)
	}
	return res, nil
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
