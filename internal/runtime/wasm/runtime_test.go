package wasm

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/testutil"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr bool
	}{
		{Config{}, false},
		{Config{DefaultMemoryLimit: 1 << 20, DefaultTimeout: time.Second, MaxOutput: 10}, false},
		{Config{DefaultMemoryLimit: 100}, true},
		{Config{DefaultMemoryLimit: 5 << 30}, true},
		{Config{DefaultTimeout: -time.Second}, true},
		{Config{MaxOutput: -1}, true},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("Validate(%+v) = %v, want error %v", tt.cfg, err, tt.wantErr)
		}
	}
}

// wazeroPanics makes wazero v1.12.0's validator panic (found by
// FuzzInstrument): a call to a function whose type index is out of range.
var wazeroPanics = func() []byte {
	m := wasmModule{
		types:    [][2][]byte{{nil, nil}},
		funcs:    []wasmFunc{{typ: 0, body: []byte{0x10, 0x01}}, {typ: 5}},
		memPages: 1,
		exports:  []wasmExport{{"_start", 0, 0}},
	}
	return m.encode()
}()

func TestLoadRejects(t *testing.T) {
	r := newRuntime(t)
	tableImport := (&wasmModule{
		types:    [][2][]byte{{nil, nil}},
		imports:  []wasmImportDef{{"env", "tbl", importTable, []byte{0x70, 0x00, 0x01}}},
		funcs:    []wasmFunc{{typ: 0}},
		memPages: 0,
		exports:  []wasmExport{{"_start", 0, 0}},
	}).encode()
	neither := (&wasmModule{
		types: [][2][]byte{{nil, nil}}, funcs: []wasmFunc{{typ: 0}}, memPages: 1,
		exports: []wasmExport{{"other", 0, 0}},
	}).encode()
	both := (&wasmModule{
		types:    [][2][]byte{{nil, nil}, {{tI32, tI32}, {tI64}}},
		funcs:    []wasmFunc{{typ: 0}, {typ: 1, body: []byte{0x42, 0x00}}},
		memPages: 1,
		exports:  []wasmExport{{"_start", 0, 0}, {"mote_handle", 0, 1}, {"memory", 2, 0}},
	}).encode()
	badHandle := (&wasmModule{
		types: [][2][]byte{{nil, nil}}, funcs: []wasmFunc{{typ: 0}}, memPages: 1,
		exports: []wasmExport{{"mote_handle", 0, 0}, {"memory", 2, 0}},
	}).encode()
	bigMemory := (&wasmModule{
		types: [][2][]byte{{nil, nil}}, funcs: []wasmFunc{{typ: 0}}, memPages: 3,
		exports: []wasmExport{{"_start", 0, 0}},
	}).encode()

	tests := []struct {
		name string
		spec runtime.Spec
		want string
	}{
		{"empty", runtime.Spec{}, "wasm: the module is empty"},
		{"process kind", runtime.Spec{Kind: runtime.KindProcess, Artifact: tinyCommand}, `cannot load a "process" function`},
		{"garbage", runtime.Spec{Artifact: []byte("not wasm at all")}, "wasm: not a valid module: "},
		{"truncated", runtime.Spec{Artifact: tinyCommand[:len(tinyCommand)-3]}, "wasm: not a valid module: "},
		{"wazero validator panic", runtime.Spec{Artifact: wazeroPanics}, "wasm: not a valid module: malformed module (wazero: runtime error: index out of range"},
		{"unknown import", runtime.Spec{Artifact: importingCommand("env", "foo", nil, nil)},
			"wasm: module imports env.foo, which Mote does not provide"},
		{"unknown mote import", runtime.Spec{Artifact: importingCommand("mote", "nope", nil, nil)},
			"wasm: module imports mote.nope, which Mote does not provide"},
		{"wrong wasi signature", runtime.Spec{Artifact: importingCommand("wasi_snapshot_preview1", "fd_write", nil, nil)},
			"wasm: module imports wasi_snapshot_preview1.fd_write as () -> (), but Mote provides (i32, i32, i32, i32) -> (i32)"},
		{"wrong mote signature", runtime.Spec{Artifact: importingCommand("mote", "log", []byte{tI64}, nil)},
			"wasm: module imports mote.log as (i64) -> (), but Mote provides (i32, i32) -> ()"},
		{"table import", runtime.Spec{Artifact: tableImport}, "wasm: module imports table env.tbl, which Mote does not provide"},
		{"neither convention", runtime.Spec{Artifact: neither}, "exports neither mote_handle (a Mote SDK reactor) nor _start (a WASI command)"},
		{"both conventions", runtime.Spec{Artifact: both}, "exports both mote_handle and _start"},
		{"bad handle signature", runtime.Spec{Artifact: badHandle}, "export mote_handle is () -> (), want (i32, i32) -> (i64)"},
		{"memory above limit", runtime.Spec{Artifact: bigMemory, MemoryLimit: 2 * pageSize}, "needs 0 MiB of memory at start, above its limit"},
		{"limit too small", runtime.Spec{Artifact: tinyCommand, MemoryLimit: 1000}, "outside [64 KiB, 4 GiB]"},
		{"bad env", runtime.Spec{Artifact: tinyCommand, Env: map[string]string{"A=B": "c"}}, `invalid environment variable "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Load(context.Background(), tt.spec)
			if got := errs.CodeOf(err); got != errs.BadRequest {
				t.Fatalf("Load: got code %q (%v), want bad_request", got, err)
			}
			if got := errs.MessageOf(err); !strings.Contains(got, tt.want) {
				t.Errorf("Load: got message %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestLoadAcceptsProvidedImports(t *testing.T) {
	r := newRuntime(t)
	tests := []struct {
		module, name    string
		params, results []byte
	}{
		{"wasi_snapshot_preview1", "fd_write", []byte{tI32, tI32, tI32, tI32}, []byte{tI32}},
		{"wasi_snapshot_preview1", "proc_exit", []byte{tI32}, nil},
		{"mote", "call", []byte{tI32, tI32, tI32, tI32, tI32, tI32}, []byte{tI64}},
		{"mote", "log", []byte{tI32, tI32}, nil},
	}
	for _, tt := range tests {
		m := load(t, r, importingCommand(tt.module, tt.name, tt.params, tt.results), runtime.Spec{})
		inst := newInstance(t, m)
		if _, _, err := inst.Invoke(context.Background(), event("", &testHost{})); err != nil {
			t.Errorf("%s.%s: Invoke: %v", tt.module, tt.name, err)
		}
	}
}

func TestHelloWASI(t *testing.T) {
	r := newRuntime(t)
	m := load(t, r, testutil.BuildWasm(t, "../../../examples/hello-wasi", false), runtime.Spec{Function: "hello"})
	inst := newInstance(t, m)
	h := &testHost{}
	for _, name := range []string{"mote", "again"} {
		res, usage, err := inst.Invoke(context.Background(), event(name, h))
		if err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		if got, want := string(res.Output), "hello, "+name; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if usage.CPU <= 0 || usage.Wall < usage.CPU/2 {
			t.Errorf("usage %+v: want CPU > 0 and wall time", usage)
		}
		if !inst.Reusable() {
			t.Errorf("a command instance is not reusable after a success")
		}
	}
	if want := "greeting mote for invocation inv-1"; !h.hasLog(want) {
		t.Errorf("logs %q: want the stderr line %q", h.logs, want)
	}
}

func TestHelloReactorExample(t *testing.T) {
	r := newRuntime(t)
	m := load(t, r, testutil.BuildWasm(t, "../../../examples/hello-reactor", true), runtime.Spec{})
	inst := newInstance(t, m)
	for _, tt := range []struct{ in, want string }{{"", "hello, world"}, {"mote", "hello, mote"}} {
		res, _, err := inst.Invoke(context.Background(), event(tt.in, &testHost{}))
		if err != nil {
			t.Fatalf("Invoke(%q): %v", tt.in, err)
		}
		if got := string(res.Output); got != tt.want {
			t.Errorf("Invoke(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTinyReactor(t *testing.T) {
	r := newRuntime(t)
	inst := newInstance(t, load(t, r, tinyReactor, runtime.Spec{}))
	res, _, err := inst.Invoke(context.Background(), event("x", &testHost{}))
	if err != nil || string(res.Output) != "hi" {
		t.Fatalf("Invoke = %q, %v; want \"hi\", nil", res.Output, err)
	}
}

func TestReactor(t *testing.T) {
	r := newRuntime(t)
	m := load(t, r, guestModule(t), runtime.Spec{
		Function: "guest", Version: "v7",
		Env: map[string]string{"GREETING": "hi", "MOTE_FUNCTION": "spoof"},
	})
	deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	tests := []struct {
		event        string
		want         string
		wantCode     errs.Code
		wantReusable bool
	}{
		{event: "echo:abc", want: "abc", wantReusable: true},
		{event: "echo:", want: "", wantReusable: true},
		{event: "hello:mote", want: "hello, mote", wantReusable: true},
		{event: "call:test.echo:abc", want: "abc", wantReusable: true},
		{event: "call:test.big:10000", want: strings.Repeat("b", 10000), wantReusable: true},
		{event: "call:test.fail:", want: "error not_found: nope", wantReusable: true},
		{event: "call:test.unknown:", want: `error bad_request: unknown op "test.unknown"`, wantReusable: true},
		{event: "initcall", want: "unavailable: host calls are not available while the function initialises", wantReusable: true},
		{event: "env:GREETING", want: "hi", wantReusable: true},
		{event: "env:MOTE_FUNCTION", want: "guest", wantReusable: true},
		{event: "env:MOTE_VERSION", want: "v7", wantReusable: true},
		{event: "ctx", want: fmt.Sprintf("inv-1|root-1|parent-1|2|guest|v7|%d", deadline.UnixMilli()), wantReusable: true},
		{event: "big:7000000", want: "output too large: 7000000 bytes, limit 6291456", wantCode: errs.FunctionError, wantReusable: true},
		{event: "error:it broke", want: "it broke", wantCode: errs.FunctionError, wantReusable: true},
		{event: "nonsense", want: `unknown verb "nonsense"`, wantCode: errs.FunctionError, wantReusable: true},
		{event: "panic:boom", want: "panic: boom", wantCode: errs.FunctionError},
		{event: "exit", want: "function exited with status 3: exiting on purpose", wantCode: errs.FunctionError},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			inst := newInstance(t, m)
			ev := &runtime.Event{ID: "inv-1", Root: "root-1", Parent: "parent-1", Depth: 2,
				Deadline: deadline, Payload: []byte(tt.event), Host: &testHost{}}
			res, _, err := inst.Invoke(context.Background(), ev)
			if got := errs.CodeOf(err); got != tt.wantCode {
				t.Fatalf("Invoke: got code %q (%v), want %q", got, err, tt.wantCode)
			}
			got := string(res.Output)
			if err != nil {
				got = errs.MessageOf(err)
			}
			if got != tt.want {
				t.Errorf("Invoke: got %.200q, want %.200q", got, tt.want)
			}
			if got := inst.Reusable(); got != tt.wantReusable {
				t.Errorf("Reusable() = %v, want %v", got, tt.wantReusable)
			}
			if tt.wantReusable {
				// The instance keeps its state between invocations.
				res, _, err := inst.Invoke(context.Background(), event("count", &testHost{}))
				if err != nil || string(res.Output) != "2" {
					t.Errorf("second Invoke = %q, %v; want \"2\"", res.Output, err)
				}
			} else if _, _, err := inst.Invoke(context.Background(), event("echo:x", &testHost{})); err == nil {
				t.Errorf("Invoke on a broken instance succeeded")
			}
		})
	}
}

func TestReactorLogs(t *testing.T) {
	r := newRuntime(t)
	inst := newInstance(t, load(t, r, guestModule(t), runtime.Spec{}))
	h := &testHost{}
	if _, _, err := inst.Invoke(context.Background(), event("log:x", h)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"log x", "stderr x", "stdout x"} {
		if !h.hasLog(want) {
			t.Errorf("logs %q: want %q", h.logs, want)
		}
	}
}

// A runaway guest is stopped at its deadline, and the runtime keeps
// serving other instances while it runs.
func TestTimeout(t *testing.T) {
	for _, mode := range stopModes {
		r := newRuntimeMode(t, mode)
		tests := []struct {
			name         string
			artifact     []byte
			event        string
			wantReusable bool
		}{
			{"command", loopCommand, "", true},
			{"reactor", guestModule(t), "loop", false},
			// Sleeping in WASI poll_oneoff (time.Sleep) past the deadline.
			{"sleeping command", sleepCommand, "", true},
			{"sleeping reactor", guestModule(t), "sleep:60000", false},
		}
		hello := newInstance(t, load(t, r, guestModule(t), runtime.Spec{}))
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				inst := newInstance(t, load(t, r, tt.artifact, runtime.Spec{Timeout: 10 * time.Second}))
				ev := event(tt.event, &testHost{})
				ev.Deadline = time.Now().Add(300 * time.Millisecond)
				done := make(chan error, 1)
				go func() {
					_, _, err := inst.Invoke(context.Background(), ev)
					done <- err
				}()
				time.Sleep(20 * time.Millisecond)
				res, _, err := hello.Invoke(context.Background(), event("hello:x", &testHost{}))
				if err != nil || string(res.Output) != "hello, x" {
					t.Errorf("hello while the loop runs = %q, %v", res.Output, err)
				}
				select {
				case err := <-done:
					t.Fatalf("the loop returned (%v) before its deadline", err)
				default:
				}
				select {
				case err := <-done:
					if got := errs.CodeOf(err); got != errs.Timeout {
						t.Errorf("loop: got code %q (%v), want timeout", got, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the loop was not stopped at its deadline")
				}
				if got := inst.Reusable(); got != tt.wantReusable {
					t.Errorf("Reusable() = %v, want %v", got, tt.wantReusable)
				}
			})
		}
	}
}

// Go guests, and the hand-made ones, are instrumented rather than left to
// wazero's slower close-on-context-done.
func TestInstrumentedOnLoad(t *testing.T) {
	r := newRuntime(t)
	for _, tt := range []struct {
		name     string
		artifact []byte
	}{
		{"guest", guestModule(t)},
		{"hello-reactor", testutil.BuildWasm(t, "../../../examples/hello-reactor", true)},
		{"hello-wasi", testutil.BuildWasm(t, "../../../examples/hello-wasi", false)},
		{"tiny reactor", tinyReactor},
		{"loop command", loopCommand},
		{"sleep command", sleepCommand},
	} {
		m := load(t, r, tt.artifact, runtime.Spec{}).(*Module)
		if m.stopName == "" || m.rt != r.rt {
			t.Errorf("%s: not instrumented (stop %q)", tt.name, m.stopName)
		}
	}
	fb := newRuntimeMode(t, "fallback")
	if m := load(t, fb, loopCommand, runtime.Spec{}).(*Module); m.stopName != "" || m.rt != fb.rtSafe {
		t.Errorf("fallback: got stop %q, want the close-on-context-done runtime", m.stopName)
	}
}

// rss returns the process's resident set size in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// A guest that grows its memory past its limit fails alone, with
// out_of_memory, and gives its memory back.
func TestMemoryBomb(t *testing.T) {
	r := newRuntime(t)
	hello := newInstance(t, load(t, r, tinyCommand, runtime.Spec{}))
	tests := []struct {
		name     string
		artifact []byte
		event    string
		limit    int64
	}{
		{"hand-made", bombCommand, "", 64 << 20},
		{"go", guestModule(t), "bomb", 64 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := newInstance(t, load(t, r, tt.artifact, runtime.Spec{MemoryLimit: tt.limit}))
			before := rss(t)
			_, _, err := inst.Invoke(context.Background(), event(tt.event, &testHost{}))
			if got := errs.CodeOf(err); got != errs.OutOfMemory {
				t.Fatalf("bomb: got code %q (%v), want out_of_memory", got, err)
			}
			if want := "function ran out of memory (limit 64 MiB)"; errs.MessageOf(err) != want {
				t.Errorf("bomb: got %q, want %q", errs.MessageOf(err), want)
			}
			inst.Close(context.Background())
			if grew := rss(t) - before; grew > 16<<20 {
				t.Errorf("RSS grew by %d MiB after the bomb was closed, want < 16 MiB", grew>>20)
			}
			if _, _, err := hello.Invoke(context.Background(), event("", &testHost{})); err != nil {
				t.Errorf("an instance next to the bomb: %v", err)
			}
		})
	}
}

func TestCPUMetering(t *testing.T) {
	r := newRuntime(t)
	inst := newInstance(t, load(t, r, guestModule(t), runtime.Spec{}))

	_, usage, err := inst.Invoke(context.Background(), event("spin:20", &testHost{}))
	if err != nil {
		t.Fatal(err)
	}
	// The guest spins for 20 ms of wall time; its thread may lose the CPU
	// for much of that on a busy machine (CI runs packages in parallel on
	// two vCPUs), never gain more. internal/system's billing tests check
	// fixed work against the same work with a wait added.
	if usage.CPU < time.Millisecond || usage.CPU > usage.Wall+2*time.Millisecond || usage.CPU > 25*time.Millisecond {
		t.Errorf("spin 20 ms: CPU %v (wall %v), want some CPU, at most the wall time", usage.CPU, usage.Wall)
	}

	res, usage, err := inst.Invoke(context.Background(), event("call:test.sleep:100", &testHost{}))
	if err != nil || string(res.Output) != "slept" {
		t.Fatalf("sleep: %q, %v", res.Output, err)
	}
	if usage.Wall < 100*time.Millisecond {
		t.Errorf("sleep 100 ms in a host call: wall %v, want ≥ 100 ms", usage.Wall)
	}
	if usage.CPU > 10*time.Millisecond {
		t.Errorf("sleep 100 ms in a host call: CPU %v, want well under the sleep", usage.CPU)
	}
}

func TestMemoryReporter(t *testing.T) {
	r := newRuntime(t)
	tests := []struct {
		name     string
		artifact []byte
		min, max int64
	}{
		{"go reactor", guestModule(t), 1 << 20, 64 << 20},
		{"tiny reactor", tinyReactor, pageSize, 1 << 20},
		{"command", tinyCommand, 0, 1 << 20},
	}
	for _, tt := range tests {
		inst := newInstance(t, load(t, r, tt.artifact, runtime.Spec{}))
		got := inst.(runtime.MemoryReporter).Memory()
		if got < tt.min || got > tt.max {
			t.Errorf("%s: Memory() = %d, want in [%d, %d]", tt.name, got, tt.min, tt.max)
		}
		inst.Close(context.Background())
		if got := inst.(runtime.MemoryReporter).Memory(); got != 0 {
			t.Errorf("%s: Memory() after Close = %d, want 0", tt.name, got)
		}
	}
}

// Closing an instance, a module or the runtime stops an invocation in
// flight instead of pulling its memory from under it.
func TestCloseStopsInvocation(t *testing.T) {
	for _, mode := range stopModes {
		for _, what := range []string{"instance", "module", "runtime"} {
			t.Run(mode+"/"+what, func(t *testing.T) {
				r := newRuntimeMode(t, mode)
				m := load(t, r, guestModule(t), runtime.Spec{})
				inst := newInstance(t, m)
				done := make(chan error, 1)
				go func() {
					_, _, err := inst.Invoke(context.Background(), event("loop", &testHost{}))
					done <- err
				}()
				time.Sleep(50 * time.Millisecond)
				switch what {
				case "instance":
					inst.Close(context.Background())
				case "module":
					m.Close(context.Background())
				case "runtime":
					r.Close(context.Background())
				}
				select {
				case err := <-done:
					if got := errs.CodeOf(err); got != errs.Cancelled {
						t.Errorf("got code %q (%v), want cancelled", got, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Close did not stop the invocation")
				}
				if inst.Reusable() {
					t.Errorf("a closed instance is reusable")
				}
			})
		}
	}
}

// Cancelling the caller's context stops the guest too.
func TestCallerCancelStopsInvocation(t *testing.T) {
	for _, mode := range stopModes {
		r := newRuntimeMode(t, mode)
		inst := newInstance(t, load(t, r, guestModule(t), runtime.Spec{}))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, _, err := inst.Invoke(ctx, event("loop", &testHost{}))
		if got := errs.CodeOf(err); got != errs.Cancelled {
			t.Errorf("%s: got code %q (%v), want cancelled", mode, got, err)
		}
	}
}

// A stop that lands after an invocation returned does not leak into the
// instance's next invocation.
func TestLateStopDoesNotLeak(t *testing.T) {
	r := newRuntime(t)
	inst := newInstance(t, load(t, r, guestModule(t), runtime.Spec{})).(*instance)
	if _, _, err := inst.Invoke(context.Background(), event("echo:a", &testHost{})); err != nil {
		t.Fatal(err)
	}
	// As if the previous invocation's deadline had fired as it returned.
	inst.cmu.Lock()
	inst.stop.Set(1)
	inst.stopped = true
	inst.cmu.Unlock()
	res, _, err := inst.Invoke(context.Background(), event("echo:b", &testHost{}))
	if err != nil || string(res.Output) != "b" {
		t.Errorf("Invoke after a late stop = %q, %v; want \"b\"", res.Output, err)
	}
}

// Instances of one module run in parallel without sharing state.
func TestConcurrentInstances(t *testing.T) {
	r := newRuntime(t)
	m := load(t, r, guestModule(t), runtime.Spec{})
	var wg sync.WaitGroup
	for i := range 4 {
		inst := newInstance(t, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				in := fmt.Sprintf("echo:%d-%d", i, j)
				res, _, err := inst.Invoke(context.Background(), event(in, &testHost{}))
				if err != nil || string(res.Output) != in[len("echo:"):] {
					t.Errorf("Invoke(%q) = %q, %v", in, res.Output, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestTraits: the wasm runtime says what it guarantees (runtime.Traits),
// which the system turns into the flow engine's policy.
func TestTraits(t *testing.T) {
	var rt runtime.Runtime = newRuntime(t)
	tr, ok := rt.(runtime.Traits)
	if !ok {
		t.Fatal("the wasm runtime does not implement runtime.Traits")
	}
	if got := tr.EnforcesDeadline(); !got {
		t.Errorf("EnforcesDeadline: got %v, want true (the watchdog stops a guest at ev.Deadline)", got)
	}
	if got := tr.HostOnlyEgress(); !got {
		t.Errorf("HostOnlyEgress: got %v, want true (a guest reaches out only through host calls)", got)
	}
}
