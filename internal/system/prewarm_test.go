package system_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/testutil"
)

// TestDeclaredCallsArePrewarmed: a function that declares whom it calls
// ("calls") starts an instance of each callee, and of the callee's own
// callees, that has scaled to zero, when it gets traffic: the chain's
// first call finds them warm.
func TestDeclaredCallsArePrewarmed(t *testing.T) {
	guestOnce.Do(func() { guestWasm = testutil.BuildWasm(t, "testdata/flowguest", true) })
	s := openSystem(t)
	ctx := context.Background()
	base := registry.Config{IdleTimeout: registry.Duration(time.Second)}
	base.Permissions.Invoke = []string{"*"}
	for _, d := range []struct {
		name  string
		calls []string
	}{
		{"c", nil},
		{"b", []string{"c"}},
		{"a", []string{"b"}},
	} {
		cfg := base
		cfg.Calls = d.calls
		if _, err := s.Deploy(ctx, d.name, cfg, bytes.NewReader(guestWasm)); err != nil {
			t.Fatal(err)
		}
	}
	pool := func(fn string) (live, idle int) {
		f, err := s.Describe(fn)
		if err != nil || f.Pool == nil {
			t.Fatalf("Describe(%s): %v", fn, err)
		}
		return f.Pool.Live, f.Pool.Idle
	}
	live := func(fn string) int { n, _ := pool(fn); return n }
	idle := func(fn string) int { _, n := pool(fn); return n }
	// The idle timeout scales b and c to zero (the reaper runs each second).
	waitUntil(t, func() bool { return live("b") == 0 && live("c") == 0 })
	call(t, s, "a", "echo:x")
	// Started, and ready: a call arriving while one starts waits for it,
	// and is cold.
	waitUntil(t, func() bool { return idle("b") == 1 && idle("c") == 1 })
	for _, fn := range []string{"b", "c"} {
		if out := call(t, s, fn, "echo:y"); out.Cold {
			t.Errorf("%s's first call after a's was a cold start", fn)
		}
	}
}

// waitUntil polls cond (state the reaper or a background start changes)
// for up to 10 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
