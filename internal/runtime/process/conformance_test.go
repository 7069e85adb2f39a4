package process

import (
	"context"
	"errors"
	"testing"

	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/runtimetest"
)

// TestConformance runs the runtime conformance suite on both of a process
// function's start paths: a process started for NewInstance, and a spare
// started before it (spare.go). The guest is the Go SDK test function
// built natively.
func TestConformance(t *testing.T) {
	dir := buildGoFunction(t, runtimetest.GuestDir())
	for _, path := range []struct {
		name  string
		spare bool
	}{
		{"fresh", false},
		{"spare", true},
	} {
		t.Run(path.name, func(t *testing.T) {
			rt := newRuntimeSpare(t, Config{NoSpare: !path.spare})
			runtimetest.Run(t, runtimetest.Harness{
				Module: func(t *testing.T, spec runtime.Spec) runtime.Module {
					spec.Kind, spec.Dir, spec.Handler = runtime.KindProcess, dir, "./bootstrap"
					mod, err := rt.Load(context.Background(), spec)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { mod.Close(context.Background()) })
					if path.spare {
						return spareOnly{mod.(*module)}
					}
					return mod
				},
			})
		})
	}
}

// spareOnly hands out spares only: each NewInstance waits for the spare
// started after the last one and fails if there is none.
type spareOnly struct{ *module }

func (s spareOnly) NewInstance(ctx context.Context) (runtime.Instance, error) {
	s.spare.refill(s.module) // the first call's; later, a no-op
	s.spare.wait()
	in := s.spare.take()
	if in == nil {
		return nil, errors.New("no spare was ready")
	}
	s.spare.refill(s.module)
	return in, nil
}
