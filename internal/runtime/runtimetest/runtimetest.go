// Package runtimetest is the conformance suite every runtime, and every
// way a runtime starts an instance, passes: as golang.org/x/net/nettest is
// for net.Conn. A runtime's package calls Run once per start path (wasm:
// initialised and restored from a snapshot; process: a fresh process and
// a started spare) with a Harness that loads the suite's guest.
//
// The guest is one Go SDK program (GuestDir) built as a wasm reactor or
// natively as a process function; its event names what it does. The
// suite checks the contract of internal/runtime: an invocation's result,
// a function's error, timeouts, out-of-memory, cancellation, CPU
// metering, host calls, instances running at once, and that nothing an
// instance does reaches another.
package runtimetest

import (
	"context"
	"fmt"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// GuestDir is the directory of the suite's guest (a Go module).
func GuestDir() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "wasm", "testdata", "guest")
}

// Harness is how the suite runs the guest on one runtime and start path.
type Harness struct {
	// Module loads the guest. spec has the fields the suite sets
	// (Function, MemoryLimit, Timeout); the harness adds the rest (the
	// artifact or directory and handler, the kind).
	Module func(t *testing.T, spec runtime.Spec) runtime.Module
	// SharedRuntimeSeed says that instances start from a snapshot that
	// holds the language runtime's own random state (wasm snapshots), so
	// the unseeded math/rand sequence repeats across instances; the
	// suite then checks only that crypto/rand differs.
	SharedRuntimeSeed bool
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Invoke", testInvoke},
		{"Error", testError},
		{"Timeout", testTimeout},
		{"OutOfMemory", testOOM},
		{"Cancel", testCancel},
		{"CPU", testCPU},
		{"HostCall", testHostCall},
		{"Concurrent", testConcurrent},
		{"NoSharedState", testNoSharedState},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Host serves the guest's host calls: test.echo returns its argument,
// test.started closes Started (once), log is kept.
type Host struct {
	Started chan struct{}
	once    sync.Once
	mu      sync.Mutex
	logs    []string
}

// NewHost returns a Host.
func NewHost() *Host { return &Host{Started: make(chan struct{})} }

// Call implements host.Host.
func (h *Host) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	switch op {
	case "test.echo":
		if len(args) == 0 {
			return nil, nil
		}
		return args[0], nil
	case "test.started":
		h.once.Do(func() { close(h.Started) })
		return nil, nil
	case host.OpLog:
		h.mu.Lock()
		for _, a := range args {
			h.logs = append(h.logs, string(a))
		}
		h.mu.Unlock()
		return nil, nil
	}
	return nil, errs.E(errs.NotFound, "no host op %q", op)
}

var _ host.Host = (*Host)(nil)

func spec(name string) runtime.Spec {
	return runtime.Spec{Function: "conformance-" + name, Version: "1", MemoryLimit: 64 << 20, Timeout: 30 * time.Second}
}

func newInstance(t *testing.T, m runtime.Module) runtime.Instance {
	t.Helper()
	in, err := m.NewInstance(context.Background())
	if err != nil {
		t.Fatalf("NewInstance: %v", err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

func event(payload string, h host.Host, d time.Duration) *runtime.Event {
	return &runtime.Event{ID: "conf-1", Root: "conf-1", Payload: []byte(payload), Host: h, Deadline: time.Now().Add(d)}
}

// invoke runs payload on in and returns its output or fails t.
func invoke(t *testing.T, in runtime.Instance, payload string) string {
	t.Helper()
	res, _, err := in.Invoke(context.Background(), event(payload, NewHost(), 20*time.Second))
	if err != nil {
		t.Fatalf("Invoke(%q): %v", payload, err)
	}
	return string(res.Output)
}

func testInvoke(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("invoke")))
	for _, ev := range []string{"echo:a", "echo:b", "hello:c"} {
		want := map[string]string{"echo:a": "a", "echo:b": "b", "hello:c": "hello, c"}[ev]
		if got := invoke(t, in, ev); got != want {
			t.Errorf("Invoke(%q): got %q, want %q", ev, got, want)
		}
	}
	if !in.Reusable() {
		t.Error("not reusable after successful invocations")
	}
}

func testError(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("error")))
	_, _, err := in.Invoke(context.Background(), event("error:boom", NewHost(), 20*time.Second))
	if errs.CodeOf(err) != errs.FunctionError || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v, want a function_error saying boom", err)
	}
	if !in.Reusable() {
		t.Fatal("a returned error made the instance unusable")
	}
	if got := invoke(t, in, "echo:after"); got != "after" {
		t.Fatalf("after the error: got %q", got)
	}
}

func testTimeout(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("timeout")))
	start := time.Now()
	_, _, err := in.Invoke(context.Background(), event("loop", NewHost(), 300*time.Millisecond))
	if errs.CodeOf(err) != errs.Timeout {
		t.Fatalf("got %v (%s), want a timeout", err, errs.CodeOf(err))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 300 ms deadline ended after %v", d)
	}
	if in.Reusable() {
		t.Error("reusable after a timeout")
	}
}

func testOOM(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("oom")))
	_, _, err := in.Invoke(context.Background(), event("bomb", NewHost(), 20*time.Second))
	if errs.CodeOf(err) != errs.OutOfMemory {
		t.Fatalf("got %v (%s), want out_of_memory", err, errs.CodeOf(err))
	}
	if in.Reusable() {
		t.Error("reusable after running out of memory")
	}
	// What right-sizing reads: the instance reached its limit.
	if r, ok := in.(runtime.PeakMemoryReporter); ok {
		if peak := r.PeakMemory(); peak < 32<<20 {
			t.Errorf("peak memory after exhausting 64 MiB: %d bytes", peak)
		}
	}
}

func testCancel(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("cancel")))
	hs := NewHost()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-hs.Started:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, _, err := in.Invoke(ctx, event("signal-loop", hs, 20*time.Second))
	if errs.CodeOf(err) != errs.Cancelled {
		t.Fatalf("got %v (%s), want cancelled", err, errs.CodeOf(err))
	}
}

func testCPU(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("cpu")))
	invoke(t, in, "echo:warm")
	_, idle, err := in.Invoke(context.Background(), event("echo:x", NewHost(), 20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, busy, err := in.Invoke(context.Background(), event("spin:200", NewHost(), 20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// A 200 ms spin gets at least a share of a core on a loaded machine,
	// and a process's other threads at most a core each beside it.
	if busy.CPU < 20*time.Millisecond || busy.CPU > 4*busy.Wall+50*time.Millisecond {
		t.Errorf("spin:200: CPU %v over wall %v", busy.CPU, busy.Wall)
	}
	if idle.CPU >= busy.CPU {
		t.Errorf("an echo's CPU %v is not below a spin's %v", idle.CPU, busy.CPU)
	}
}

func testHostCall(t *testing.T, h Harness) {
	in := newInstance(t, h.Module(t, spec("host")))
	if got := invoke(t, in, "call:test.echo:ping"); got != "ping" {
		t.Errorf("test.echo: got %q, want ping", got)
	}
	if got := invoke(t, in, "call:test.nope:x"); !strings.HasPrefix(got, "error not_found") {
		t.Errorf("unknown op: got %q, want the host's not_found", got)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	m := h.Module(t, spec("concurrent"))
	const n = 4
	ins := make([]runtime.Instance, n)
	for k := range ins {
		ins[k] = newInstance(t, m)
	}
	var wg sync.WaitGroup
	errc := make(chan error, n*3)
	for k, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := ""
			for r := 0; r < 3; r++ {
				v := fmt.Sprintf("i%dr%d", k, r)
				want = strings.TrimPrefix(want+","+v, ",")
				res, _, err := in.Invoke(context.Background(), event("heap:"+v, NewHost(), 20*time.Second))
				if err != nil {
					errc <- err
					return
				}
				if string(res.Output) != want {
					errc <- fmt.Errorf("instance %d: got %q, want %q", k, res.Output, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func testNoSharedState(t *testing.T, h Harness) {
	m := h.Module(t, spec("shared"))
	a := newInstance(t, m)
	for range 3 {
		invoke(t, a, "heap:a")
	}
	if got := invoke(t, a, "count"); got != "4" {
		t.Fatalf("a's own count: got %q, want 4", got)
	}
	b := newInstance(t, m)
	if got := invoke(t, b, "heap:b"); got != "b" {
		t.Fatalf("b sees a's memory: got %q, want b", got)
	}
	if got := invoke(t, b, "count"); got != "2" {
		t.Fatalf("b's count: got %q, want 2", got)
	}
	ca, cb := invoke(t, a, "crand"), invoke(t, b, "crand")
	if ca == cb {
		t.Errorf("crypto/rand gave both instances %s", ca)
	}
	if !h.SharedRuntimeSeed {
		c := newInstance(t, m)
		d := newInstance(t, m)
		if mc, md := invoke(t, c, "mrand"), invoke(t, d, "mrand"); mc == md {
			t.Errorf("math/rand's first value is %s in two fresh instances", mc)
		}
	}
}
