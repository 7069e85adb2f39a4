package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/runtimetest"
	"github.com/mote-run/mote/internal/testutil"
)

// TestConformance runs the runtime conformance suite on both of a
// reactor's start paths: initialised, and restored from a snapshot.
func TestConformance(t *testing.T) {
	bin := testutil.BuildWasm(t, runtimetest.GuestDir(), true)
	for _, path := range []struct {
		name     string
		snapshot bool
	}{
		{"initialised", false},
		{"snapshot", true},
	} {
		t.Run(path.name, func(t *testing.T) {
			ctx := context.Background()
			r, err := New(ctx, Config{CacheDir: filepath.Join(os.TempDir(), "mote-wazero-test-cache"), NoSnapshots: !path.snapshot})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(ctx) })
			runtimetest.Run(t, runtimetest.Harness{
				SharedRuntimeSeed: path.snapshot,
				Module: func(t *testing.T, spec runtime.Spec) runtime.Module {
					m := load(t, r, bin, spec).(*Module)
					t.Cleanup(func() { m.Close(ctx) })
					if path.snapshot {
						// The first instance initialises and is captured;
						// the suite's instances are restored.
						first, err := m.NewInstance(ctx)
						if err != nil {
							t.Fatal(err)
						}
						first.Close(ctx)
						<-m.snap.settled
						if m.snap.ready() == nil {
							t.Fatal("no snapshot")
						}
					}
					return m
				},
			})
		})
	}
}
