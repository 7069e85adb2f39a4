package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// BenchmarkForward hands an invocation from node a to node b (both
// clients of one embedded nats-server) against a bare request/reply
// between the same two connections: the difference is what Mote adds
// to a cross-node invocation (headers, bookkeeping, goroutines), without
// the function.
func BenchmarkForward(b *testing.B) {
	a, url := oneNode(b, "test")
	ctx := context.Background()
	nb, err := Open(ctx, Config{Name: "t", Node: "b", URLs: []string{url}, Replicas: 1, Version: "test"})
	if err != nil {
		b.Fatal(err)
	}
	defer nb.Close()
	if err := nb.Start(&installed{versions: map[string]int{}}, ""); err != nil {
		b.Fatal(err)
	}
	if err := a.Start(&installed{versions: map[string]int{}}, ""); err != nil {
		b.Fatal(err)
	}
	ev := &runtime.Event{ID: "0123456789abcdef01234567", Root: "0123456789abcdef01234567", Deadline: time.Now().Add(time.Hour),
		Payload: []byte("x"), Host: host.Func(func(context.Context, string, [][]byte) ([]byte, error) { return nil, nil })}
	b.Run("mote", func(b *testing.B) {
		for b.Loop() {
			if _, _, _, err := a.Forward(ctx, "b", "f", 1, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare", func(b *testing.B) {
		sub, err := nb.nc.Subscribe("bare", func(m *nats.Msg) { m.Respond(m.Data) })
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		nb.nc.Flush()
		for b.Loop() {
			if _, err := a.nc.Request("bare", []byte("x"), time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}
