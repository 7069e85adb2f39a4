package wasm

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mote-run/mote/internal/runtime"
)

// A synchronous call from a function to another wasm function runs on the
// caller's goroutine, so on the OS thread whose CPU clock meters the
// caller. Without a correction the caller would be billed for the callee's
// CPU too. Each invocation therefore reports its whole thread CPU to the
// invocation it was called from (found in its context) together with the
// thread it ran on; the caller subtracts what ran on its own thread.
// Callees on other threads (fan-out, async) do not touch the caller's
// clock and are not subtracted. Thread ids are read only when nesting
// happened, so a plain invocation pays nothing for this.

// nestedCPU collects the CPU of invocations nested in one invocation.
type nestedCPU struct {
	mu      sync.Mutex
	entries []nestedEntry
}

type nestedEntry struct {
	tid int
	cpu time.Duration
}

func (n *nestedCPU) reset() {
	n.mu.Lock()
	n.entries = n.entries[:0]
	n.mu.Unlock()
}

// add records a nested invocation's thread CPU. The caller holds its OS
// thread locked.
func (n *nestedCPU) add(cpu time.Duration) {
	tid := unix.Gettid()
	n.mu.Lock()
	n.entries = append(n.entries, nestedEntry{tid, cpu})
	n.mu.Unlock()
}

// onThisThread returns the CPU of nested invocations that ran on the
// calling OS thread, which the caller holds locked.
func (n *nestedCPU) onThisThread() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.entries) == 0 {
		return 0
	}
	tid := unix.Gettid()
	var sum time.Duration
	for _, e := range n.entries {
		if e.tid == tid {
			sum += e.cpu
		}
	}
	return sum
}

// callerOf returns the guest of the invocation whose host call ctx comes
// from, if this invocation was called from another wasm function.
func callerOf(ctx context.Context) *guest {
	g, _ := runtime.CallerOf(ctx).(*guest)
	return g
}
