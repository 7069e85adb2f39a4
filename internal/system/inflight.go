package system

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// inflight counts the invocations in progress, so that Shutdown can wait
// for them. Every invocation adds one and takes it away again, from
// whichever core runs it: with one shared counter (a sync.WaitGroup) the
// cores trade its cache line twice per invocation. Here each invocation
// counts in a shard picked at random, each shard on a cache line of its
// own, and Shutdown sums them.
type inflight struct {
	_      [64]byte // off the cache line of the fields before
	shards [inflightShards]struct {
		n atomic.Int64
		_ [56]byte
	}
}

const inflightShards = 8

// add counts one invocation and returns the counter to give it back to.
func (c *inflight) add() *atomic.Int64 {
	n := &c.shards[rand.Uint32()%inflightShards].n
	n.Add(1)
	return n
}

func (c *inflight) total() int64 {
	var t int64
	for i := range c.shards {
		t += c.shards[i].n.Load()
	}
	return t
}

// wait returns once no invocation is in progress, or with ctx's error.
func (c *inflight) wait(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for c.total() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
