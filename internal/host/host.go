// Package host defines the one surface a running function sees: invoke,
// kv, objects, cache, coordination and log. Both runtimes forward a guest's
// host calls to a Host as (op, args) and hand back bytes or an error, so the
// ops and their encoding are defined once, here, and every SDK speaks them.
//
// Wire form of a call, the same in every runtime and SDK:
//
//   - op: a short ASCII name such as "log" or "kv.get" (see the Op constants).
//   - args: a list of byte strings, each encoded as uvarint(len) || bytes,
//     concatenated (AppendArgs / ParseArgs).
//   - success: raw result bytes, op-specific.
//   - failure: an error with a stable errs.Code and a message.
//
// In wasm the guest passes ptr/len of the encoded args in its memory; for
// process functions the SDK POSTs them to the instance's runtime endpoint
// (docs/host-api.md has both).
package host

import (
	"context"
	"encoding/binary"

	"github.com/mote-run/mote/internal/errs"
)

// Host serves host calls for one invocation. Implementations must be safe
// for concurrent use (a function may make calls from several threads).
type Host interface {
	Call(ctx context.Context, op string, args [][]byte) ([]byte, error)
}

// Ops known to every runtime. Ops are added with the capability that serves
// them; a Host answers unknown ops with errs.BadRequest.
const (
	OpLog = "log" // args: [message]; result: empty
)

// AppendArgs appends the wire encoding of args to dst.
func AppendArgs(dst []byte, args ...[]byte) []byte {
	for _, a := range args {
		dst = binary.AppendUvarint(dst, uint64(len(a)))
		dst = append(dst, a...)
	}
	return dst
}

// ParseArgs decodes an encoded argument list. The returned slices alias b.
func ParseArgs(b []byte) ([][]byte, error) {
	var args [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errs.E(errs.BadRequest, "host: malformed argument list")
		}
		args = append(args, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return args, nil
}

// Func adapts a function to the Host interface.
type Func func(ctx context.Context, op string, args [][]byte) ([]byte, error)

// Call calls f.
func (f Func) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	return f(ctx, op, args)
}
