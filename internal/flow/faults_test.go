package flow

import (
	"context"
	"errors"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
	"github.com/mote-run/mote/internal/store/faultfs"
)

// TestAsyncEnqueueFailsWhenTheWALFails injects a failed WAL fsync and
// checks that an async invocation, which is acknowledged only once it is
// durably queued, is refused with a retriable error instead of being
// acknowledged; that synchronous invocations and reads go on; and that
// the invocation queued before the fault is still queued after a restart
// without faults.
func TestAsyncEnqueueFailsWhenTheWALFails(t *testing.T) {
	dir := t.TempDir()
	fs := faultfs.New()
	db, err := store.OpenWithConfig(dir, store.DBConfig{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	r, p := newGoRunner(), &policies{}
	r.add("echo", 0, echo)
	p.set("echo", Policy{})
	cfg := Config{Runner: r, Functions: p, Clock: &fakeClock{}, DB: db}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, err := e.Invoke(ctx, Request{Function: "echo", Payload: []byte("before"), Async: true})
	if err != nil {
		t.Fatal(err)
	}

	fs.Fail(faultfs.Syncs)
	o, err := e.Invoke(ctx, Request{Function: "echo", Payload: []byte("during"), Async: true})
	if err == nil {
		t.Fatalf("async invoke with the WAL failing: acknowledged as %s, want an error", o.ID)
	}
	if errs.CodeOf(err) != errs.Unavailable || !errors.Is(err, store.ErrWriteFailed) {
		t.Errorf("async invoke error: %v (code %s), want unavailable wrapping store.ErrWriteFailed", err, errs.CodeOf(err))
	}
	// A synchronous invocation needs no durable write: it still runs.
	if o, err := e.Invoke(ctx, Request{Function: "echo", Payload: []byte("sync")}); err != nil || string(o.Output) != "sync" {
		t.Errorf("sync invoke while writes fail: %+v, %v", o, err)
	}
	if n, err := e.Get(before.ID); err != nil || n.Status != StatusQueued {
		t.Errorf("read of the queued invocation while writes fail: %+v, %v", n, err)
	}
	e.Close()
	db.Close()

	db, err = store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg.DB = db
	e, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n, err := e.Get(before.ID); err != nil || n.Status != StatusQueued {
		t.Errorf("after restart, the invocation acknowledged before the fault: %+v, %v; want queued", n, err)
	}
}
