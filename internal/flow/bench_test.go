package flow

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// The benchmarks run trivial Go functions through goRunner, the stand-in
// for the scheduler, so they measure the engine's own cost: ids, limits,
// the call tree's records, the ledger and the host-op path.

func benchHarness(b *testing.B) *harness {
	b.Helper()
	// The system clock, as in production (nil is its default): the
	// engine saves clock reads with it that the tests' fake clock does
	// not allow, so the fake one would measure another path.
	return newHarness(b, func(c *Config) { c.MaxDescendants = 1 << 30; c.Clock = nil })
}

// BenchmarkBareRunner is the baseline: one Run with no engine around it.
func BenchmarkBareRunner(b *testing.B) {
	r := newGoRunner()
	r.add("noop", 0, echo)
	h := host.Func(func(context.Context, string, [][]byte) ([]byte, error) { return nil, nil })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ev := &runtime.Event{ID: "x", Payload: []byte("p"), Host: h}
		if _, _, _, _, err := r.Run(ctx, "noop", ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeRoot is one root invocation through the engine.
func BenchmarkInvokeRoot(b *testing.B) {
	h := benchHarness(b)
	h.fn("noop", Policy{}, 0, echo)
	ctx := context.Background()
	req := Request{Function: "noop", Payload: []byte("p")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.e.Invoke(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeChild is one synchronous child call made from inside a
// function (the invoke host op), the path of function-to-function calls.
func BenchmarkInvokeChild(b *testing.B) {
	h := benchHarness(b)
	h.fn("noop", Policy{}, 0, echo)
	args := [][]byte{[]byte("noop"), []byte("p")}
	h.fn("loop", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := ev.Host.Call(ctx, OpInvoke, args); err != nil {
				return nil, err
			}
		}
		b.StopTimer()
		return nil, nil
	})
	if _, err := h.invoke("loop", ""); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChain10 is a root that calls a chain of 10 synchronous calls.
func BenchmarkChain10(b *testing.B) {
	h := benchHarness(b)
	for i := 0; i < 10; i++ {
		next := fmt.Sprint("step", i+1)
		if i == 9 {
			h.fn(fmt.Sprint("step", i), Policy{}, 0, echo)
			continue
		}
		h.fn(fmt.Sprint("step", i), Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
			return ev.Host.Call(ctx, OpInvoke, [][]byte{[]byte(next), ev.Payload})
		})
	}
	ctx := context.Background()
	req := Request{Function: "step0", Payload: []byte("p")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.e.Invoke(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func benchFanOut(b *testing.B, n int, async bool) {
	h := benchHarness(b)
	h.fn("noop", Policy{}, 0, echo)
	args := [][]byte{[]byte("noop"), []byte("0")}
	for i := 0; i < n; i++ {
		args = append(args, []byte("e"))
	}
	h.fn("fan", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		if !async {
			return ev.Host.Call(ctx, OpMap, args)
		}
		wait := [][]byte{[]byte("all"), []byte("0")}
		for i := 0; i < n; i++ {
			hd, err := ev.Host.Call(ctx, OpInvokeAsync, [][]byte{[]byte("noop"), []byte("e")})
			if err != nil {
				return nil, err
			}
			wait = append(wait, hd)
		}
		return ev.Host.Call(ctx, OpAwait, wait)
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.invoke("fan", ""); err != nil {
			b.Fatal(err)
		}
	}
	_ = ctx
}

// BenchmarkFanOutMap100000 is a Map of 100,000 trivial children; it
// reports the process's peak RSS (getrusage), which holds the engine, the
// store and the test binary: run it alone (-run '^$' -bench 'Map100000$')
// for the figure to mean the fan-out's peak.
func BenchmarkFanOutMap100000(b *testing.B) {
	benchFanOut(b, 100_000, false)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB") // Maxrss is in KiB on Linux
	}
}

func BenchmarkFanOutMap1000(b *testing.B)    { benchFanOut(b, 1000, false) }
func BenchmarkFanOutMap10000(b *testing.B)   { benchFanOut(b, 10000, false) }
func BenchmarkFanOutAsync1000(b *testing.B)  { benchFanOut(b, 1000, true) }
func BenchmarkFanOutAsync10000(b *testing.B) { benchFanOut(b, 10000, true) }
