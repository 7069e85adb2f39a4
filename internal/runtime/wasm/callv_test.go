package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/testutil"
)

// hostMem is a one-page module instance whose memory the host functions
// under test read and write, with a guest bound to an invocation served
// by testHost.
type hostMem struct {
	ctx context.Context
	mod api.Module
	g   *guest
}

func newHostMem(t testing.TB) *hostMem {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	m := wasmModule{memPages: 1, exports: []wasmExport{{"memory", 2, 0}}}
	mod, err := rt.Instantiate(ctx, m.encode())
	if err != nil {
		t.Fatal(err)
	}
	g := newGuest("fn", nil, 0)
	ctx = withGuest(ctx, g)
	g.begin(ctx, event("", &testHost{}))
	return &hostMem{ctx: ctx, mod: mod, g: g}
}

func (h *hostMem) put(t testing.TB, at uint32, b []byte) {
	t.Helper()
	if !h.mod.Memory().Write(at, b) {
		t.Fatalf("write at %d: outside memory", at)
	}
}

func (h *hostMem) read(t *testing.T, at, n uint32) []byte {
	t.Helper()
	b, ok := h.mod.Memory().Read(at, n)
	if !ok {
		t.Fatalf("read at %d: outside memory", at)
	}
	return bytes.Clone(b)
}

// Where the tests keep things in the page.
const (
	atOp   = 0
	atArgv = 64
	atArgs = 1024
	atOut  = 4096
	atTake = 8192
)

// argv lays args out at atArgs and their (ptr, len) vector at atArgv.
func (h *hostMem) argv(t testing.TB, args ...string) uint32 {
	t.Helper()
	var vec []byte
	at := uint32(atArgs)
	for _, a := range args {
		h.put(t, at, []byte(a))
		vec = binary.LittleEndian.AppendUint32(vec, at)
		vec = binary.LittleEndian.AppendUint32(vec, uint32(len(a)))
		at += uint32(len(a))
	}
	h.put(t, atArgv, vec)
	return uint32(len(args))
}

// result is what a call returned: its bytes (from out, or taken) and
// whether it was an error.
func (h *hostMem) result(t *testing.T, r int64, outCap uint32) (string, bool) {
	t.Helper()
	n := r
	if n < 0 {
		n = -n
	}
	var b []byte
	if uint32(n) <= outCap {
		b = h.read(t, atOut, uint32(n))
	} else {
		hostTake(h.ctx, h.mod, []uint64{atTake})
		b = h.read(t, atTake, uint32(n))
	}
	if r < 0 {
		args, err := host.ParseArgs(b)
		if err != nil || len(args) != 2 {
			t.Fatalf("malformed error result %q", b)
		}
		return string(args[0]), true
	}
	return string(b), false
}

func TestHostCallV(t *testing.T) {
	tests := []struct {
		name   string
		op     string
		args   []string
		argc   uint32 // overrides len(args) when set
		outCap uint32
		want   string
		isErr  bool
	}{
		{name: "echo", op: "test.echo", args: []string{"bucket", "key", "", "v"}, outCap: 64, want: "bucket,key,,v"},
		{name: "no args", op: "test.nop", outCap: 64, want: ""},
		{name: "result too big for out", op: "test.big", args: []string{"100"}, outCap: 10, want: string(bytes.Repeat([]byte("b"), 100))},
		{name: "result just fits", op: "test.big", args: []string{"10"}, outCap: 10, want: "bbbbbbbbbb"},
		{name: "host error", op: "test.fail", outCap: 64, want: "not_found", isErr: true},
		{name: "unknown op", op: "test.what", outCap: 64, want: "bad_request", isErr: true},
		{name: "too many args", op: "test.nop", argc: maxArgv + 1, outCap: 64, want: "bad_request", isErr: true},
		{name: "vector past memory", op: "test.nop", argc: 1 << 14, outCap: 64, want: "bad_request", isErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostMem(t)
			h.put(t, atOp, []byte(tt.op))
			argc := h.argv(t, tt.args...)
			if tt.argc != 0 {
				argc = tt.argc
			}
			stack := []uint64{atOp, uint64(len(tt.op)), atArgv, uint64(argc), atOut, uint64(tt.outCap)}
			hostCallV(h.ctx, h.mod, stack)
			got, isErr := h.result(t, int64(stack[0]), tt.outCap)
			if got != tt.want || isErr != tt.isErr {
				t.Errorf("got %q (error %v), want %q (error %v)", got, isErr, tt.want, tt.isErr)
			}
		})
	}
}

func TestHostCallVArgumentOutsideMemory(t *testing.T) {
	h := newHostMem(t)
	h.put(t, atOp, []byte("test.echo"))
	vec := binary.LittleEndian.AppendUint32(nil, 65530)
	vec = binary.LittleEndian.AppendUint32(vec, 100) // runs past the page
	h.put(t, atArgv, vec)
	stack := []uint64{atOp, 9, atArgv, 1, atOut, 64}
	hostCallV(h.ctx, h.mod, stack)
	if got, isErr := h.result(t, int64(stack[0]), 64); got != "bad_request" || !isErr {
		t.Errorf("got %q (error %v), want bad_request", got, isErr)
	}
}

// TestHostCallEncodedArgs checks the first ABI, arguments encoded in one
// buffer, which modules built with older SDKs still import.
func TestHostCallEncodedArgs(t *testing.T) {
	h := newHostMem(t)
	h.put(t, atOp, []byte("test.echo"))
	enc := host.AppendArgs(nil, []byte("a"), []byte("bc"))
	h.put(t, atArgs, enc)
	stack := []uint64{atOp, 9, atArgs, uint64(len(enc)), atOut, 64}
	hostCall(h.ctx, h.mod, stack)
	if got, isErr := h.result(t, int64(stack[0]), 64); got != "a,bc" || isErr {
		t.Errorf("got %q (error %v), want a,bc", got, isErr)
	}
}

// TestInternOpRewritten checks that an op name cached by where the guest
// keeps it is compared, not trusted: a guest that writes another name at
// the same place calls that op.
func TestInternOpRewritten(t *testing.T) {
	h := newHostMem(t)
	argc := h.argv(t, "x")
	for _, tt := range []struct{ op, want string }{{"test.echo", "x"}, {"test.echo", "x"}, {"test.nop", ""}, {"test.echo", "x"}} {
		h.put(t, atOp, []byte(tt.op))
		stack := []uint64{atOp, uint64(len(tt.op)), atArgv, uint64(argc), atOut, 64}
		hostCallV(h.ctx, h.mod, stack)
		if got, isErr := h.result(t, int64(stack[0]), 64); got != tt.want || isErr {
			t.Errorf("%s: got %q (error %v), want %q", tt.op, got, isErr, tt.want)
		}
	}
}

// FuzzReadArgv feeds arbitrary argument vectors (guest memory the host
// reads): readArgv must never panic, and every argument it returns must be
// the bytes the vector points at.
func FuzzReadArgv(f *testing.F) {
	f.Add(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 100), 5), uint32(1))
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0}, uint32(1))
	f.Add([]byte{0, 0, 0, 0}, uint32(3))
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	m := wasmModule{memPages: 1, exports: []wasmExport{{"memory", 2, 0}}}
	mod, err := rt.Instantiate(ctx, m.encode())
	if err != nil {
		f.Fatal(err)
	}
	mem := mod.Memory()
	g := newGuest("fn", nil, 0)
	f.Fuzz(func(t *testing.T, vec []byte, argc uint32) {
		if len(vec) > 4096 {
			return
		}
		mem.Write(0, vec)
		args, ok := g.readArgv(mem, 0, argc)
		if !ok {
			return
		}
		if uint32(len(args)) != argc {
			t.Fatalf("%d args from argc %d", len(args), argc)
		}
		v, _ := mem.Read(0, argc*8)
		for i, a := range args {
			p, n := binary.LittleEndian.Uint32(v[8*i:]), binary.LittleEndian.Uint32(v[8*i+4:])
			want, _ := mem.Read(p, n)
			if !bytes.Equal(a, want) {
				t.Fatalf("arg %d: got %q, want %q", i, a, want)
			}
		}
	})
}

// TestSDKResults runs the Go SDK's result placement (results carved from
// shared blocks, large ones taken into their own allocation) against real
// host calls, from one goroutine and from several.
func TestSDKResults(t *testing.T) {
	r := newRuntime(t)
	inst := newInstance(t, load(t, r, testutil.BuildWasm(t, "testdata/resultguest", true), runtime.Spec{}))
	for _, mode := range []string{"sequential", "goroutines"} {
		res, _, err := inst.Invoke(context.Background(), event(mode, &testHost{}))
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got := string(res.Output); got != "ok" {
			t.Errorf("%s: got %q, want ok", mode, got)
		}
	}
}

// nopHost answers every call with a fixed 100-byte result, so
// BenchmarkHostCallV measures the host function itself.
type nopHost struct{ res []byte }

func (h nopHost) Call(context.Context, string, [][]byte) ([]byte, error) { return h.res, nil }

// BenchmarkHostCallV is the host side of one callv of two arguments with a
// 100-byte result (reading the vector and arguments, interning the op,
// writing the result), without wazero's crossing or any real op.
func BenchmarkHostCallV(b *testing.B) {
	h := newHostMem(b)
	h.g.ev.Host = nopHost{res: make([]byte, 100)}
	h.put(b, atOp, []byte("kv.get"))
	argc := h.argv(b, "bench", "k123")
	stack := make([]uint64, 6)
	b.ReportAllocs()
	for b.Loop() {
		stack[0], stack[1], stack[2], stack[3], stack[4], stack[5] = atOp, 6, atArgv, uint64(argc), atOut, 2048
		hostCallV(h.ctx, h.mod, stack)
	}
	if stack[0] != 100 {
		b.Fatalf("result length %d, want 100", stack[0])
	}
}
