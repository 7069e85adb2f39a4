// Package mote is the Go SDK for Mote functions.
//
// A function registers its handler from init and calls Start from main:
//
//	func init() { mote.Handle(handle) }
//	func main() { mote.Start() }
//
//	func handle(ctx *mote.Context, event []byte) ([]byte, error) {
//		return append([]byte("hello, "), event...), nil
//	}
//
// The same source builds two ways. As a wasm reactor
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared) the platform calls
// the handler through the module's exports and main is never run. As a
// native executable it is a process function that speaks the AWS Lambda
// Runtime API, and Start runs that loop.
//
// Host calls (Call, Log) reach the platform's host API; docs/host-api.md
// lists the ops and their arguments.
package mote

import (
	"encoding/binary"
	"time"
)

// Context describes the invocation a handler is serving.
type Context struct {
	InvocationID string    // this invocation's id
	RootID       string    // the id of the call tree's root (== InvocationID at the root)
	ParentID     string    // the calling invocation's id, "" at the root
	Depth        int       // 0 at the root
	Function     string    // the function's name
	Version      string    // the function version's id
	Deadline     time.Time // the invocation must end by then
}

// Remaining returns the time left before the deadline.
func (c *Context) Remaining() time.Duration { return time.Until(c.Deadline) }

// Handler serves one invocation: event is the payload, owned by the handler;
// the returned bytes are the result. A returned error fails the invocation
// with code function_error and the error's text as the message.
type Handler func(ctx *Context, event []byte) ([]byte, error)

// handler is the function registered with Handle.
var handler Handler

// Handle registers h as the function's handler. Call it from init: a wasm
// reactor never runs main, so a handler registered there is never seen.
func Handle(h Handler) { handler = h }

// Error is a failed host call: Code is one of Mote's stable error codes
// (such as "not_found" or "bad_request"), Message says what went wrong.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// appendArgs appends the host API's argument encoding of args to dst: each
// argument as uvarint(len) followed by its bytes.
func appendArgs(dst []byte, args ...[]byte) []byte {
	for _, a := range args {
		dst = binary.AppendUvarint(dst, uint64(len(a)))
		dst = append(dst, a...)
	}
	return dst
}

// parseArgs decodes an argument list encoded by appendArgs. The returned
// slices alias b. ok is false when b is malformed.
func parseArgs(b []byte) (args [][]byte, ok bool) {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		args = append(args, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return args, true
}

// decodeError rebuilds the *Error of a failed host call from its encoding
// (args: code, message).
func decodeError(b []byte) *Error {
	code, msg, ok := splitError(b)
	if !ok {
		return malformedError()
	}
	return &Error{Code: codeString(code), Message: string(msg)}
}

func malformedError() *Error {
	return &Error{Code: "internal", Message: "mote: malformed error from host"}
}

// splitError splits an encoded error into its code and message without
// allocating: a failed call is a common answer (a missing key), not a rare
// one.
func splitError(b []byte) (code, msg []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	code, b = b[k:k+int(n)], b[k+int(n):]
	n, k = binary.Uvarint(b)
	if k <= 0 || n != uint64(len(b)-k) {
		return nil, nil, false
	}
	return code, b[k:], true
}

// codeString returns code as a string, allocating only for a code that is
// not one of the platform's stable codes.
func codeString(code []byte) string {
	switch string(code) {
	case "bad_request":
		return "bad_request"
	case "unauthorized":
		return "unauthorized"
	case "forbidden":
		return "forbidden"
	case "not_found":
		return "not_found"
	case "conflict":
		return "conflict"
	case "payload_too_large":
		return "payload_too_large"
	case "overloaded":
		return "overloaded"
	case "limit_exceeded":
		return "limit_exceeded"
	case "function_error":
		return "function_error"
	case "init_error":
		return "init_error"
	case "timeout":
		return "timeout"
	case "out_of_memory":
		return "out_of_memory"
	case "cancelled":
		return "cancelled"
	case "unavailable":
		return "unavailable"
	case "internal":
		return "internal"
	}
	return string(code)
}
