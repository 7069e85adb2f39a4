package flow

import (
	"context"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// TestSweepDeletesOldTreesOnly: records older than the retention go,
// with their places under their parents; newer trees stay whole.
func TestSweepDeletesOldTreesOnly(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retention = 150 * time.Millisecond })
	h.fn("leaf", Policy{}, 0, echo)
	h.fn("parent", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		return call(ctx, ev, OpInvoke, "leaf", "x")
	})
	old, err := h.invoke("parent", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	fresh, err := h.invoke("parent", "")
	if err != nil {
		t.Fatal(err)
	}
	h.e.Sweep()
	if _, err := h.e.Get(old.ID); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("old tree after the sweep: got %v, want not_found", err)
	}
	n, err := h.e.Get(fresh.ID)
	if err != nil || len(n.Children) != 1 {
		t.Errorf("fresh tree after the sweep: got %+v, %v; want it with its child", n, err)
	}
}

func TestRetentionNegativeKeepsEverything(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retention = -1 })
	h.fn("leaf", Policy{}, 0, echo)
	out, err := h.invoke("leaf", "x")
	if err != nil {
		t.Fatal(err)
	}
	h.e.Sweep()
	if _, err := h.e.Get(out.ID); err != nil {
		t.Errorf("with retention off: %v", err)
	}
}
