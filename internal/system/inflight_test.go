package system

import (
	"context"
	"sync"
	"testing"
	"time"
)

// wait returns only once every invocation counted has been given back,
// whichever shards they went to, and gives up with ctx.
func TestInflightWait(t *testing.T) {
	var c inflight
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.add()
			<-release
			n.Add(-1)
		}()
	}
	for c.total() != 64 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.wait(ctx); err == nil {
		t.Fatalf("wait with 64 in flight returned nil, want the context's error")
	}
	close(release)
	if err := c.wait(context.Background()); err != nil {
		t.Fatalf("wait after all returned: %v", err)
	}
	wg.Wait()
	if got := c.total(); got != 0 {
		t.Errorf("total = %d, want 0", got)
	}
}
