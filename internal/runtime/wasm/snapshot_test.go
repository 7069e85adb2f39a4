package wasm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/runtime"
)

// snapshotModule loads the test guest and waits until instances start
// from the snapshot of its first one.
func snapshotModule(t testing.TB, r *Runtime) *Module {
	t.Helper()
	m := load(t, r, guestModule(t), runtime.Spec{}).(*Module)
	if !m.snap.on {
		t.Fatal("the Go SDK guest is not snapshotable")
	}
	first := newInstance(t, m) // initialised, and captured
	<-m.snap.settled
	if m.snap.ready() == nil {
		t.Fatal("no snapshot after the first instance")
	}
	_ = first
	return m
}

func invokeString(t testing.TB, inst runtime.Instance, payload string) string {
	t.Helper()
	res, _, err := inst.Invoke(context.Background(), event(payload, &testHost{}))
	if err != nil {
		t.Fatalf("Invoke(%q): %v", payload, err)
	}
	return string(res.Output)
}

// TestSnapshotInstancesShareNothing: instances restored from one snapshot
// start with the state of the initialised instance, never with what
// another instance did later, and keep what they write to themselves.
func TestSnapshotInstancesShareNothing(t *testing.T) {
	r := newRuntime(t)
	m := snapshotModule(t, r)
	a, b := newInstance(t, m), newInstance(t, m)
	if got := invokeString(t, a, "heap:a1"); got != "a1" {
		t.Fatalf("a: got %q, want a1", got)
	}
	if got := invokeString(t, a, "heap:a2"); got != "a1,a2" {
		t.Fatalf("a: got %q, want a1,a2", got)
	}
	if got := invokeString(t, b, "heap:b1"); got != "b1" {
		t.Fatalf("b sees a's writes: got %q, want b1", got)
	}
	if got := invokeString(t, newInstance(t, m), "count"); got != "1" {
		t.Fatalf("a third instance's first count: got %q, want 1", got)
	}
	// What the initialisation computed is there: its host call's error.
	want := "unavailable: host calls are not available while the function initialises"
	if got := invokeString(t, b, "initcall"); got != want {
		t.Fatalf("initcall: got %q, want %q", got, want)
	}
	// A restored instance runs as long as an initialised one: timers,
	// sleeps and garbage collection work from the restored runtime.
	if got := invokeString(t, b, "sleep:5"); got != "slept" {
		t.Fatalf("sleep: got %q", got)
	}
	if got := invokeString(t, b, "big:3000000"); len(got) != 3000000 {
		t.Fatalf("big: got %d bytes", len(got))
	}
}

// TestSnapshotRandomness records what repeats across instances restored
// from one snapshot: crypto/rand asks the host each time and differs;
// the Go runtime's own seed was drawn at the snapshot, so the unseeded
// math/rand sequence repeats (documented in docs/runtimes.md).
func TestSnapshotRandomness(t *testing.T) {
	r := newRuntime(t)
	m := snapshotModule(t, r)
	a, b := newInstance(t, m), newInstance(t, m)
	if ca, cb := invokeString(t, a, "crand"), invokeString(t, b, "crand"); ca == cb {
		t.Fatalf("crypto/rand gave both instances %s", ca)
	}
	ma, mb := invokeString(t, a, "mrand"), invokeString(t, b, "mrand")
	t.Logf("math/rand: %s and %s (the same: the runtime's seed is the snapshot's)", ma, mb)
}

// TestSnapshotReplaysInitOutput: what the initialisation logged is logged
// again by each restored instance, as if it had run.
func TestSnapshotReplaysInitOutput(t *testing.T) {
	r := newRuntime(t)
	m := snapshotModule(t, r)
	var out []initLine
	m.snap.mu.Lock()
	out = m.snap.cur.output
	m.snap.mu.Unlock()
	found := false
	for _, l := range out {
		found = found || strings.Contains(string(l.line), "guest initialising")
	}
	if !found {
		t.Fatalf("the snapshot's recorded output %q lacks the init log line", out)
	}
}

// TestSnapshotStopsAndLimits: a restored instance is stopped at its
// deadline and refused memory past its limit like any other.
func TestSnapshotStopsAndLimits(t *testing.T) {
	r := newRuntime(t)
	m := load(t, r, guestModule(t), runtime.Spec{MemoryLimit: 64 << 20, Timeout: 200 * time.Millisecond}).(*Module)
	newInstance(t, m)
	<-m.snap.settled
	if m.snap.ready() == nil {
		t.Fatal("no snapshot")
	}
	inst := newInstance(t, m)
	_, _, err := inst.Invoke(context.Background(), event("loop", &testHost{}))
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("loop: got %v, want a timeout", err)
	}
	inst = newInstance(t, m)
	_, _, err = inst.Invoke(context.Background(), event("bomb", &testHost{}))
	if err == nil || !strings.Contains(err.Error(), "out of memory") {
		t.Fatalf("bomb: got %v, want out of memory", err)
	}
}

// TestMakeSnapshotableRefuses: modules the rewriter does not fully
// understand are left to initialise every instance.
func TestMakeSnapshotableRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  []byte
	}{
		{"empty", nil},
		{"not wasm", []byte("hello, world")},
		{"truncated", []byte("\x00asm\x01\x00\x00\x00\x07\x10")},
		{"no exports", []byte("\x00asm\x01\x00\x00\x00")},
	} {
		if _, err := makeSnapshotable(tc.bin); err == nil {
			t.Errorf("%s: got no error", tc.name)
		}
	}
}

// FuzzMakeSnapshotable: the rewriter never panics on any input.
func FuzzMakeSnapshotable(f *testing.F) {
	f.Add(tinyReactor)
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = makeSnapshotable(b)
	})
}

// TestSnapshotOff: MOTE_PREINIT=off initialises every instance, so each
// draws the runtime's random state afresh.
func TestSnapshotOff(t *testing.T) {
	r := newRuntime(t)
	m := load(t, r, guestModule(t), runtime.Spec{Env: map[string]string{runtime.EnvPreinit: "off"}}).(*Module)
	if m.snap.on {
		t.Fatal("snapshots are on")
	}
	a, b := newInstance(t, m), newInstance(t, m)
	if ma, mb := invokeString(t, a, "mrand"), invokeString(t, b, "mrand"); ma == mb {
		t.Fatalf("math/rand gave both instances %s", ma)
	}
}
