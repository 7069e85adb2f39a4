package wasm

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/testutil"
)

// testHost serves the test guest's host calls and records its log.
type testHost struct {
	mu   sync.Mutex
	logs []string
}

func (h *testHost) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	switch op {
	case host.OpLog:
		h.mu.Lock()
		h.logs = append(h.logs, string(args[0]))
		h.mu.Unlock()
		return nil, nil
	case "test.nop":
		return nil, nil
	case "test.echo":
		return []byte(strings.Join(strArgs(args), ",")), nil
	case "test.sleep":
		ms, _ := strconv.Atoi(string(args[0]))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return []byte("slept"), nil
		case <-ctx.Done():
			return nil, errs.E(errs.Timeout, "sleep interrupted")
		}
	case "test.big":
		n, _ := strconv.Atoi(string(args[0]))
		return []byte(strings.Repeat("b", n)), nil
	case "test.fail":
		return nil, errs.E(errs.NotFound, "nope")
	}
	return nil, errs.E(errs.BadRequest, "unknown op %q", op)
}

func strArgs(args [][]byte) []string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	return s
}

func (h *testHost) hasLog(line string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		if l == line {
			return true
		}
	}
	return false
}

// newRuntime starts a Runtime whose compiled modules are cached in a
// directory shared by test runs, so the Go guest compiles once per machine.
func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	r, err := New(context.Background(), Config{CacheDir: filepath.Join(os.TempDir(), "mote-wazero-test-cache")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func guestModule(t testing.TB) []byte {
	t.Helper()
	return testutil.BuildWasm(t, "testdata/guest", true)
}

func load(t testing.TB, r *Runtime, artifact []byte, spec runtime.Spec) runtime.Module {
	t.Helper()
	spec.Artifact = artifact
	if spec.Function == "" {
		spec.Function = "fn"
	}
	m, err := r.Load(context.Background(), spec)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func newInstance(t testing.TB, m runtime.Module) runtime.Instance {
	t.Helper()
	inst, err := m.NewInstance(context.Background())
	if err != nil {
		t.Fatalf("NewInstance: %v", err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

func event(payload string, h host.Host) *runtime.Event {
	return &runtime.Event{ID: "inv-1", Root: "inv-1", Payload: []byte(payload), Host: h}
}

// stopModes are the two ways a runaway guest is stopped: the stop global
// of an instrumented module, and wazero's close-on-context-done for a
// module the rewriter refuses.
var stopModes = []string{"instrumented", "fallback"}

// newRuntimeMode starts a Runtime that stops guests the given way.
func newRuntimeMode(t testing.TB, mode string) *Runtime {
	t.Helper()
	r := newRuntime(t)
	if mode == "fallback" {
		r.instrument = func([]byte) (instrumented, error) { return instrumented{}, errUninstrumentable }
	}
	return r
}

// sleepCommand is a WASI command that sleeps for a minute in poll_oneoff,
// without a loop.
var sleepCommand = func() []byte {
	sub := make([]byte, 48) // userdata, tag 0 (clock), clock id 1, timeout, precision, flags
	sub[16] = 1
	binary.LittleEndian.PutUint64(sub[24:], uint64(time.Minute))
	i32 := []byte{tI32}
	m := wasmModule{
		types:   [][2][]byte{{nil, nil}, {[]byte{tI32, tI32, tI32, tI32}, i32}},
		imports: []wasmImportDef{{"wasi_snapshot_preview1", "poll_oneoff", importFunc, []byte{1}}},
		funcs: []wasmFunc{{typ: 0, body: []byte{
			0x41, 0x00, 0x41, 0xc0, 0x00, 0x41, 0x01, 0x41, 0x80, 0x01, // in 0, out 64, 1 subscription, nevents at 128
			0x10, 0x00, 0x1a, // call poll_oneoff, drop
		}}},
		memPages: 1,
		exports:  []wasmExport{{"_start", 0, 1}, {"memory", 2, 0}},
		data:     []wasmData{{0, sub}},
	}
	return m.encode()
}()
