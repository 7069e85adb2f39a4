package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/system"
)

// flowResult is examples/bench-flow's answer: its own timing of the calls
// it made.
type flowResult struct {
	Op      string  `json:"op"`
	N       int     `json:"n"`
	TotalNs int64   `json:"total_ns"`
	P50Ns   float64 `json:"p50_ns"`
	P99Ns   float64 `json:"p99_ns"`
	Failed  int     `json:"failed"`
	Error   string  `json:"error"`
}

// flowEvent is examples/bench-flow's event.
type flowEvent struct {
	Op    string `json:"op"`
	N     int    `json:"n"`
	Depth int    `json:"depth,omitempty"`
	Fn    string `json:"fn,omitempty"`
}

// Flows measures calls between functions (issue 5), timed inside a wasm
// parent through `mote serve`: a synchronous wasm → wasm call, a chain of
// 10 synchronous calls, fan-out with fan-in of 1,000 and 10,000 trivial
// children (Map, and InvokeAsync + AwaitAll); then, in this process with
// the same wasm module, a root invocation through the flow engine (call
// tree, metering, record) against the plain path under it (pool + instance).
func Flows(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-flows-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wasmPath := filepath.Join(tmp, "flow.wasm")
	src := filepath.Join(o.Examples, "bench-flow")
	fmt.Fprintf(o.Out, "building %s as a wasm reactor\n", src)
	if err := gobuild.Wasm(src, wasmPath, true); err != nil {
		return err
	}
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	// The parent recurses for the chain (11 instances at once); the leaf
	// pool is kept small, as more instances than cores only add cold
	// starts for sub-µs children (nested calls may still go past it).
	if err := deploy(ctx, o.Mote, mote.URL, "flow", wasmPath, "--max-instances", "32", "--min-warm", "1", "--invoke", "flow,leaf"); err != nil {
		return err
	}
	if err := deploy(ctx, o.Mote, mote.URL, "leaf", wasmPath, "--max-instances", "4", "--min-warm", "4", "--max-queue", "20000"); err != nil {
		return err
	}

	runs := []struct {
		name string
		ev   flowEvent
	}{
		{"sync wasm → wasm call", flowEvent{Op: "sync", N: 2000}},
		{"chain of 10 sync calls", flowEvent{Op: "chain", N: 300, Depth: 10}},
		{"fan-out/in 1,000 (Map)", flowEvent{Op: "map", N: 1000}},
		{"fan-out/in 1,000 (InvokeAsync + AwaitAll)", flowEvent{Op: "async", N: 1000}},
		{"fan-out/in 10,000 (Map)", flowEvent{Op: "map", N: 10_000}},
		{"fan-out/in 10,000 (InvokeAsync + AwaitAll)", flowEvent{Op: "async", N: 10_000}},
	}
	res := map[string][]flowResult{}
	fmt.Fprintf(o.Out, "calls between wasm functions, timed inside the parent, %d rounds after a warm-up round\n", o.Rounds)
	for round := -1; round < o.Rounds; round++ {
		for _, x := range runs {
			x.ev.Fn = "leaf"
			var r flowResult
			if err := invokeJSON(mote.URL, "flow", x.ev, &r); err != nil {
				return fmt.Errorf("%s: %w", x.name, err)
			}
			if r.Error != "" || r.Failed > 0 {
				return fmt.Errorf("%s: %d children failed: %s", x.name, r.Failed, r.Error)
			}
			if round < 0 {
				continue
			}
			res[x.name] = append(res[x.name], r)
			if x.ev.Op == "sync" || x.ev.Op == "chain" {
				fmt.Fprintf(o.Out, "  round %d %-44s p50 %7.1f µs  p99 %8.1f µs  (%d calls)\n", round+1, x.name, r.P50Ns/1e3, r.P99Ns/1e3, r.N)
			} else {
				fmt.Fprintf(o.Out, "  round %d %-44s %7.1f ms end to end (%.2f µs per child)\n", round+1, x.name, float64(r.TotalNs)/1e6, float64(r.TotalNs)/1e3/float64(r.N))
			}
		}
	}

	plain, flow, err := flowOverhead(ctx, o, wasmPath, tmp)
	if err != nil {
		return err
	}

	m := func(name string, f func(flowResult) float64) float64 {
		v := make([]float64, 0, len(res[name]))
		for _, r := range res[name] {
			v = append(v, f(r))
		}
		return median(v)
	}
	p50 := func(r flowResult) float64 { return r.P50Ns / 1e3 }
	p99 := func(r flowResult) float64 { return r.P99Ns / 1e3 }
	total := func(r flowResult) float64 { return float64(r.TotalNs) / 1e6 }
	fmt.Fprintf(o.Out, "\nmedians of %d rounds\n\n| run | p50 | p99 | end to end |\n|---|---|---|---|\n", o.Rounds)
	for _, x := range runs {
		if x.ev.Op == "sync" || x.ev.Op == "chain" {
			fmt.Fprintf(o.Out, "| %s | %.1f µs | %.1f µs | — |\n", x.name, m(x.name, p50), m(x.name, p99))
		} else {
			fmt.Fprintf(o.Out, "| %s | — | — | %.1f ms |\n", x.name, m(x.name, total))
		}
	}
	fmt.Fprintf(o.Out, "| root invocation, plain path (pool + wasm instance) | %.2f µs | | |\n", plain)
	fmt.Fprintf(o.Out, "| root invocation through the flow engine (tree, metering, record) | %.2f µs | | |\n", flow)

	syncP50, chainP50 := m(runs[0].name, p50), m(runs[1].name, p50)
	fan1k := min(m(runs[2].name, total), m(runs[3].name, total))
	fmt.Fprintf(o.Out, "\n| check | figure | target | |\n|---|---|---|---|\n")
	fmt.Fprintf(o.Out, "| sync wasm → wasm call, p50 | %.1f µs | ≤ 10 µs | %s |\n", syncP50, verdict(syncP50 <= 10))
	fmt.Fprintf(o.Out, "| chain of 10 sync calls, p50 | %.1f µs | ≤ 100 µs + work | %s |\n", chainP50, verdict(chainP50 <= 100))
	fmt.Fprintf(o.Out, "| fan-out/in of 1,000 trivial children (best of Map, async) | %.1f ms | ≤ 50 ms | %s |\n", fan1k, verdict(fan1k <= 50))
	fmt.Fprintf(o.Out, "| fan-out/in of 10,000 (Map / async) | %.0f / %.0f ms | report | |\n", m(runs[4].name, total), m(runs[5].name, total))
	fmt.Fprintf(o.Out, "| call tree + metering overhead per root invocation | +%.2f µs, %.2f× the plain path | report | |\n", flow-plain, flow/plain)
	return nil
}

// flowOverhead opens the platform in this process with the wasm runtime,
// deploys the module as "leaf", and times, in interleaved rounds, root
// invocations through the flow engine (System.Invoke) against the plain
// path the engine calls for each attempt (System.Run: pool, instance,
// CPU meter of the runtime). It returns the medians in µs per invocation.
func flowOverhead(ctx context.Context, o Options, wasmPath, tmp string) (plain, flow float64, err error) {
	dir := filepath.Join(tmp, "inproc")
	w, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(dir, "wasm-cache")})
	if err != nil {
		return 0, 0, err
	}
	s, err := system.Open(ctx, system.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler), Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindWasm: w}})
	if err != nil {
		w.Close(ctx)
		return 0, 0, err
	}
	defer s.Shutdown(context.Background())
	art, err := os.ReadFile(wasmPath)
	if err != nil {
		return 0, 0, err
	}
	if _, err := s.Deploy(ctx, "leaf", registry.Config{MinWarm: 1}, bytes.NewReader(art)); err != nil {
		return 0, 0, err
	}
	payload := []byte("x")
	noHost := host.Func(func(context.Context, string, [][]byte) ([]byte, error) { return nil, nil })
	runPlain := func() error {
		ev := &runtime.Event{ID: "bench", Root: "bench", Payload: payload, Deadline: time.Now().Add(time.Minute), Host: noHost}
		_, _, _, _, err := s.Run(ctx, "leaf", ev)
		return err
	}
	runFlow := func() error {
		out, err := s.Invoke(ctx, system.Invocation{Function: "leaf", Payload: payload})
		if err == nil && out.Err != nil {
			err = out.Err
		}
		return err
	}
	const n = 20_000
	timeN := func(f func() error) (float64, error) {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			if err := f(); err != nil {
				return 0, err
			}
		}
		return float64(time.Since(t0).Nanoseconds()) / n / 1e3, nil
	}
	var ps, fs []float64
	fmt.Fprintf(o.Out, "root invocations in this process, %d per round: plain path vs. flow engine\n", n)
	for round := -1; round < o.Rounds; round++ {
		p, err := timeN(runPlain)
		if err != nil {
			return 0, 0, fmt.Errorf("plain path: %w", err)
		}
		f, err := timeN(runFlow)
		if err != nil {
			return 0, 0, fmt.Errorf("flow engine: %w", err)
		}
		if round < 0 {
			continue
		}
		ps, fs = append(ps, p), append(fs, f)
		fmt.Fprintf(o.Out, "  round %d plain %.2f µs  flow %.2f µs  (%.2f×)\n", round+1, p, f, f/p)
	}
	return median(ps), median(fs), nil
}
