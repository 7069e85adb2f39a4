package flow

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// granting adds Grants to the tests' Functions: every call is allowed
// until deny is set.
type granting struct {
	Functions
	deny  atomic.Bool
	asked atomic.Int64
}

func (g *granting) MayInvoke(caller, callee string) error {
	g.asked.Add(1)
	if g.deny.Load() {
		return errs.E(errs.Forbidden, "function %q may not invoke %q", caller, callee)
	}
	return nil
}

// TestGrantCheckedBeforeReplay: a retried parent whose grant was removed
// between attempts does not get its journaled children's results: the
// check comes before the replay. Each op asks before it starts anything.
func TestGrantCheckedBeforeReplay(t *testing.T) {
	var g *granting
	h := newHarness(t, func(c *Config) {
		g = &granting{Functions: c.Functions}
		c.Functions = g
	})
	h.fn("child", Policy{}, 0, echo)
	var attempts atomic.Int64
	h.fn("parent", Policy{MaxAttempts: 2}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		a := attempts.Add(1)
		for i := 0; i < 3; i++ {
			if _, err := call(ctx, ev, OpInvoke, "child", fmt.Sprint(i)); err != nil {
				return nil, err
			}
		}
		if a == 1 {
			g.deny.Store(true) // the grant goes away before the retry
			return nil, errs.E(errs.FunctionError, "crash")
		}
		return []byte("done"), nil
	})
	o, err := h.invoke("parent", "")
	if errs.CodeOf(err) != errs.Forbidden {
		t.Fatalf("retried parent without the grant: got %v (%+v), want forbidden", err, o)
	}
	if got := h.r.executions("child"); got != 3 {
		t.Errorf("child executions = %d, want 3 (none after the grant went)", got)
	}

	// Refused ops start nothing.
	g.asked.Store(0)
	before := h.r.executions("child")
	h.fn("caller", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		for _, op := range [][]string{{OpInvoke, "child", "x"}, {OpInvokeAsync, "child", "x"}, {OpMap, "child", "0", "a", "b"}} {
			if _, err := call(ctx, ev, op[0], op[1:]...); errs.CodeOf(err) != errs.Forbidden {
				return nil, fmt.Errorf("%s: got %v, want forbidden", op[0], err)
			}
		}
		return nil, nil
	})
	if _, err := h.invoke("caller", ""); err != nil {
		t.Error(err)
	}
	if got := g.asked.Load(); got != 3 {
		t.Errorf("MayInvoke asked %d times for invoke, invoke_async and a map of 2; want 3", got)
	}
	if got := h.r.executions("child"); got != before {
		t.Errorf("refused calls ran the child %d times", got-before)
	}
}
