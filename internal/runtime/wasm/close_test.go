package wasm

import (
	"context"
	"github.com/mote-run/mote/internal/testutil"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// spinningInit is a reactor whose _initialize writes "ready" to stderr,
// then increments a word of its memory forever. Its memory being unmapped
// under it is a segmentation fault, not a trap.
var spinningInit = (&wasmModule{
	types: [][2][]byte{
		{nil, nil},
		{[]byte{tI32, tI32}, []byte{tI64}},
		{[]byte{tI32, tI32, tI32, tI32}, []byte{tI32}},
	},
	imports: []wasmImportDef{{"wasi_snapshot_preview1", "fd_write", importFunc, []byte{2}}},
	funcs: []wasmFunc{
		{typ: 0, body: []byte{
			0x41, 0x02, 0x41, 0x00, 0x41, 0x01, 0x41, 0x20, // fd 2, iovec at 0, 1 iovec, nwritten at 32
			0x10, 0x00, 0x1a, // call fd_write, drop
			0x03, 0x40, // loop
			0x41, 0xc0, 0x00, // i32.const 64
			0x41, 0xc0, 0x00, 0x28, 0x02, 0x00, // i32.const 64; i32.load
			0x41, 0x01, 0x6a, // i32.const 1; i32.add
			0x36, 0x02, 0x00, // i32.store
			0x0c, 0x00, // br 0
			0x0b, // end loop
		}},
		{typ: 1, body: []byte{0x42, 0x00}}, // i64.const 0
	},
	memPages: 1,
	exports:  []wasmExport{{"_initialize", 0, 1}, {"mote_handle", 0, 2}, {"memory", 2, 0}},
	data:     []wasmData{{0, []byte{16, 0, 0, 0, 6, 0, 0, 0}}, {16, []byte("ready\n")}},
}).encode()

// signalHandler is a slog.Handler that closes ready at the first record
// whose message is msg.
type signalHandler struct {
	msg   string
	once  *sync.Once
	ready chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalHandler) WithGroup(string) slog.Handler            { return h }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ready) })
	}
	return nil
}

// inChild runs the calling test again in a child process with body
// enabled, and fails if the child does not pass: a guest that faults
// kills the whole process, which must fail the test rather than the run.
// In the child, inChild returns true and the test runs body itself.
func inChild(t *testing.T) bool {
	t.Helper()
	const env = "MOTE_WASM_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 4000 {
			out = out[:4000]
		}
		t.Fatalf("child process failed (%v):\n%s", err, out)
	}
	return false
}

// Closing the runtime while an instance is still initialising stops the
// initialisation and waits for it, instead of unmapping the memory of a
// guest still running _initialize (which killed the process with
// "unexpected fault address": a pool pre-warming an instance while the
// platform shut down).
func TestCloseStopsInitialisation(t *testing.T) {
	if !inChild(t) {
		return
	}
	for _, mode := range stopModes {
		for _, what := range []string{"module", "runtime"} {
			t.Run(mode+"/"+what, func(t *testing.T) {
				ready := make(chan struct{})
				log := slog.New(signalHandler{msg: "guest output", once: new(sync.Once), ready: ready})
				r, err := New(context.Background(), Config{Logger: log})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close(context.Background())
				if mode == "fallback" {
					r.instrument = func([]byte) (instrumented, error) { return instrumented{}, errUninstrumentable }
				}
				m := load(t, r, spinningInit, runtime.Spec{})
				done := make(chan error, 1)
				go func() {
					inst, err := m.NewInstance(context.Background())
					if err == nil {
						inst.Close(context.Background())
					}
					done <- err
				}()
				select {
				case <-ready:
				case <-time.After(30 * time.Second):
					t.Fatal("_initialize did not start")
				}
				switch what {
				case "module":
					m.Close(context.Background())
				case "runtime":
					r.Close(context.Background())
				}
				select {
				case err := <-done:
					if got := errs.CodeOf(err); got != errs.Unavailable {
						t.Errorf("NewInstance: got code %q (%v), want unavailable", got, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Close did not stop the initialisation")
				}
			})
		}
	}
}

// A module compiled by one process runs from the compilation cache in
// another, as after a restart of mote serve (Config.CacheDir): wazero's
// cache key covers the module's bytes (so Mote's instrumentation),
// close-on-context-done and the CPU's features, and Mote's host modules
// are never cached. The second process must load every module from the
// cache rather than compile it again.
func TestCompilationCacheAcrossProcesses(t *testing.T) {
	const dirEnv = "MOTE_WASM_TEST_CACHE_DIR"
	if dir := os.Getenv(dirEnv); dir != "" {
		if !inChild(t) {
			t.Fatal("the cache directory is only for the child")
		}
		useCache(t, dir)
		return
	}
	dir := t.TempDir()
	t.Setenv(dirEnv, dir)
	inChild(t) // compiles and fills the cache
	before := testutil.FileStamps(t, dir)
	if len(before) == 0 {
		t.Fatal("the first process left the cache empty")
	}
	inChild(t) // loads from the cache
	if after := testutil.FileStamps(t, dir); !maps.Equal(before, after) {
		t.Errorf("the second process changed the cache (compiled again?): before %v, after %v", before, after)
	}
}

// useCache loads the test guest, instrumented and not, from a runtime on
// dir and runs it: instances, host calls, results copied out of its memory.
func useCache(t *testing.T, dir string) {
	ctx := context.Background()
	for _, mode := range stopModes {
		r, err := New(ctx, Config{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if mode == "fallback" {
			r.instrument = func([]byte) (instrumented, error) { return instrumented{}, errUninstrumentable }
		}
		m := load(t, r, guestModule(t), runtime.Spec{})
		for k := range 20 {
			inst := newInstance(t, m)
			for _, tc := range []struct{ payload, want string }{
				{"echo:hi", "hi"},
				{"call:test.echo:a", "a"},
				{"calln:100", ""},
				{"call:test.big:100000", strings.Repeat("b", 100000)},
			} {
				res, _, err := inst.Invoke(ctx, event(tc.payload, &testHost{}))
				if err != nil || string(res.Output) != tc.want {
					t.Fatalf("%s: instance %d: Invoke(%q) = %.40q, %v; want %.40q", mode, k, tc.payload, res.Output, err, tc.want)
				}
			}
			inst.Close(ctx)
		}
		r.Close(ctx)
	}
}
