package flow

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// TestSweepDeletesOldTreesOnly: records older than the retention go,
// with their places under their parents; newer trees stay whole. Ids
// and the sweep's cut come from the engine's clock, a fake here, so the
// old tree ages without the test sleeping.
func TestSweepDeletesOldTreesOnly(t *testing.T) {
	clk := clock.NewFake(time.Now())
	h := newHarness(t, func(c *Config) {
		c.Retention = 150 * time.Millisecond
		c.Clock = &fakeClock{Fake: clk}
	})
	h.fn("leaf", Policy{}, 0, echo)
	h.fn("parent", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		return call(ctx, ev, OpInvoke, "leaf", "x")
	})
	old, err := h.invoke("parent", "")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(300 * time.Millisecond)
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

// Leaf roots are kept in segments (writer.go): every one is found right
// after it returns, across commits, buckets and concurrent writers, with
// its own record; the sweep drops old buckets and keeps new ones.
func TestLeafRootsInSegments(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retention = 150 * time.Millisecond })
	h.fn("leaf", Policy{}, 0, echo)
	h.fn("bad", Policy{}, 0, func(context.Context, *runtime.Event) ([]byte, error) {
		return nil, errs.E(errs.FunctionError, "no")
	})
	type want struct {
		fn     string
		status Status
	}
	var mu sync.Mutex
	ids := map[string]want{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fn, st := "leaf", StatusSucceeded
				if (g+i)%7 == 0 {
					fn, st = "bad", StatusFailed
				}
				out, _ := h.invoke(fn, "x")
				if out == nil {
					t.Errorf("invoke %s: no outcome", fn)
					return
				}
				mu.Lock()
				ids[out.ID] = want{fn, st}
				mu.Unlock()
				if i%25 == 0 {
					time.Sleep(20 * time.Millisecond) // more than one bucket
				}
			}
		}()
	}
	wg.Wait()
	for id, w := range ids {
		n, err := h.e.Get(id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if n.ID != id || n.Root != id || n.Function != w.fn || n.Status != w.status || n.Attempts != 1 || len(n.Children) != 0 {
			t.Fatalf("Get(%s) = %+v; want function %s, status %s, its own root", id, n, w.fn, w.status)
		}
	}
	nodes := 0
	if err := h.e.cfg.DB.Scan([]byte(keyNode), func(_, _ []byte) bool { nodes++; return true }); err != nil || nodes != 0 {
		t.Errorf("leaf roots wrote %d records of their own (%v), want none: they go to segments", nodes, err)
	}
	// Something in every segment, so a miss scans the whole bucket.
	if _, err := h.e.Get(newID()); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Get of an unknown id: %v, want not_found", err)
	}

	time.Sleep(300 * time.Millisecond)
	fresh, err := h.invoke("leaf", "y")
	if err != nil {
		t.Fatal(err)
	}
	h.e.Sweep()
	for id := range ids {
		if _, err := h.e.Get(id); errs.CodeOf(err) != errs.NotFound {
			t.Fatalf("old leaf %s after the sweep: %v, want not_found", id, err)
		}
	}
	if _, err := h.e.Get(fresh.ID); err != nil {
		t.Errorf("fresh leaf after the sweep: %v", err)
	}
}

// A lazily listed root (Policy.LazyListing) shows as running from its
// first host call on; before, nothing outside can know its id. Its record
// is found when it ends either way.
func TestLazyListing(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Fallback = func(Ref) host.Host {
			return host.Func(func(context.Context, string, [][]byte) ([]byte, error) { return nil, nil })
		}
	})
	ids := make(chan string)
	step := make(chan struct{})
	h.fn("f", Policy{LazyListing: true}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		ids <- ev.ID
		<-step
		if _, err := call(ctx, ev, "kv.get", "k"); err != nil {
			return nil, err
		}
		ids <- ev.ID
		<-step
		return nil, nil
	})
	done := make(chan error, 1)
	go func() { _, err := h.invoke("f", ""); done <- err }()
	id := <-ids
	if _, err := h.e.Get(id); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("before a host call: %v, want not_found", err)
	}
	step <- struct{}{}
	<-ids
	if n, err := h.e.Get(id); err != nil || n.Status != StatusRunning {
		t.Errorf("after a host call: %+v, %v; want running", n, err)
	}
	step <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := h.e.Get(id); err != nil || n.Status != StatusSucceeded {
		t.Errorf("after the end: %+v, %v; want succeeded", n, err)
	}
}

// A segment whose records are cut short is corrupt, not a place where a
// record is missing; a record found before the cut is still read.
func TestCorruptSegment(t *testing.T) {
	h := newHarness(t, nil)
	ok := newID()
	cut := ok[:bucketLen] + "ffffffffffffff" // another id of its bucket
	e := enc{b: []byte{segmentVersion}}
	e.by(encodeNode(&Node{ID: ok, Root: ok, Function: "f", Status: StatusSucceeded}))
	e.u(40) // a record of 40 bytes, and then none
	if err := h.db.Set(segmentKey(ok), e.b, false); err != nil {
		t.Fatal(err)
	}
	if n, err := h.e.Get(ok); err != nil || n.ID != ok || n.Function != "f" {
		t.Errorf("record before the cut: %+v, %v", n, err)
	}
	if _, err := h.e.Get(cut); errs.CodeOf(err) != errs.Internal {
		t.Errorf("Get past a cut-short segment: %v, want internal", err)
	}
}

// Ids that differ in their counter's last digit, as consecutive ones do,
// are spread over every shard of the running set.
func TestLiveSetUsesEveryShard(t *testing.T) {
	var l liveSet
	base := newID()[:idLen-1]
	seen := map[*liveShard]bool{}
	for _, d := range "0123456789abcdef" {
		seen[l.shard(base+string(d))] = true
	}
	if len(seen) != liveShards {
		t.Errorf("16 ids with each last digit fell on %d shards, want %d", len(seen), liveShards)
	}
}
