package system_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
	"github.com/mote-run/mote/internal/trigger"
)

var (
	triggerGuestOnce sync.Once
	triggerGuest     []byte
)

// TestTriggeredInvocationsAreRecorded checks that a queue consumer's
// invocation of a real wasm function goes through the flow engine like
// any other: its call tree can be read, its usage is in the ledger, and
// the gateway's observer is told of it.
func TestTriggeredInvocationsAreRecorded(t *testing.T) {
	triggerGuestOnce.Do(func() { triggerGuest = testutil.BuildWasm(t, "../trigger/testdata/guest", true) })
	s := openSystem(t)
	cfg := registry.Config{}
	cfg.Permissions.Read, cfg.Permissions.Write = []string{"t"}, []string{"t"}
	if _, err := s.Deploy(context.Background(), "g", cfg, bytes.NewReader(triggerGuest)); err != nil {
		t.Fatal(err)
	}
	observed := make(chan *system.Outcome, 1)
	s.ObserveTriggered(func(o *system.Outcome) { observed <- o })

	// Without a grant on the bucket the consumer is refused.
	if _, err := s.Triggers().AddConsumer(trigger.Consumer{Name: "c", Bucket: "other", Queue: "q", Function: "g"}); err == nil {
		t.Fatal("consumer of a bucket the function may not use was accepted")
	}
	if _, err := s.Triggers().AddConsumer(trigger.Consumer{Name: "c", Bucket: "t", Queue: "q", Function: "g"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BaaS().Coord().Push("t", "q", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	var out *system.Outcome
	select {
	case out = <-observed:
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer's invocation was not observed")
	}
	if out.Err != nil || out.Function != "g" || out.ID == "" {
		t.Fatalf("outcome %+v", out)
	}
	n, err := s.Flow().Get(out.ID)
	if err != nil {
		t.Fatalf("call tree of %s: %v", out.ID, err)
	}
	if n.Function != "g" {
		t.Fatalf("call tree %+v", n)
	}
	if got, err := s.BaaS().KV().Get("t", "msg/hello"); err != nil || string(got.Value) != "1" {
		t.Fatalf("the function saw the item %q times (%v)", got.Value, err)
	}
	if err := s.Flow().Ledger().Flush(); err != nil {
		t.Fatal(err)
	}
	u, err := s.Flow().Ledger().Query("g", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil || len(u) == 0 || u[0].Invocations < 1 {
		t.Fatalf("usage of g: %+v, %v", u, err)
	}
}
