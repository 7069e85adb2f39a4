package system_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
)

func openSystem(tb testing.TB) *system.System {
	tb.Helper()
	ctx := context.Background()
	w, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(os.TempDir(), "mote-system-test-wasm-cache")})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := system.Open(ctx, system.Config{DataDir: tb.TempDir(), Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindWasm: w}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// BenchmarkInvokeWarmReactor is the in-process warm path: scheduler and
// wasm runtime, no HTTP. It reports the median (p50-ns) and p99 besides
// the mean.
func BenchmarkInvokeWarmReactor(b *testing.B) {
	s := deployed(b, "hello", "../../examples/hello-reactor")
	timed(b, invoker(s, "hello", "x"))
}

// BenchmarkIdleInstanceMemory warms 50 instances of each kind of module and
// reports the process's resident memory growth per idle instance (rss-KB
// per instance) and what the instances themselves report (guest-KB).
func BenchmarkIdleInstanceMemory(b *testing.B) {
	for _, tc := range []struct {
		name, dir string
		reactor   bool
	}{{"reactor", "../../examples/hello-reactor", true}, {"wasi-command", "../../examples/hello-wasi", false}} {
		b.Run(tc.name, func(b *testing.B) {
			s := openSystem(b)
			mod := testutil.BuildWasm(b, tc.dir, tc.reactor)
			const n = 50
			cfg := registry.Config{MaxInstances: n}
			if _, err := s.Deploy(context.Background(), "f", cfg, bytes.NewReader(mod)); err != nil {
				b.Fatal(err)
			}
			pool := s.Scheduler().Pool("f@1")
			debug.FreeOSMemory()
			before := rssKB(b)
			if err := pool.Warm(context.Background(), n); err != nil {
				b.Fatal(err)
			}
			debug.FreeOSMemory()
			after := rssKB(b)
			for b.Loop() {
			}
			b.ReportMetric(float64(after-before)/float64(n-1), "rss-KB/instance")
			b.ReportMetric(float64(pool.Memory())/1024/float64(pool.Stats().Idle), "guest-KB/instance")
		})
	}
}

func rssKB(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkPoolInvokeWarmReactor is the warm path the core issue names:
// scheduler + wasm runtime, no flow engine and no HTTP. p50-ns is the
// median of the timed calls.
func BenchmarkPoolInvokeWarmReactor(b *testing.B) {
	s := deployed(b, "hello", "../../examples/hello-reactor")
	pool := s.Scheduler().Pool("hello@1")
	ctx := context.Background()
	ev := &runtime.Event{ID: "000000000000000000000001", Root: "000000000000000000000001", Payload: []byte("x"),
		Host: host.Func(func(context.Context, string, [][]byte) ([]byte, error) { return nil, nil })}
	timed(b, func() error {
		_, _, _, err := pool.Invoke(ctx, ev)
		return err
	})
}

// BenchmarkChain10 is a chain of 10 synchronous wasm→wasm calls (11
// invocations) from the root's invoke to its answer.
func BenchmarkChain10(b *testing.B) {
	s := deployed(b, "g", "testdata/flowguest")
	timed(b, invoker(s, "g", "chain:10"))
}

// deployed returns a system with the module built from dir deployed as fn,
// which may invoke itself.
func deployed(b *testing.B, fn, dir string) *system.System {
	b.Helper()
	s := openSystem(b)
	mod := testutil.BuildWasm(b, dir, true)
	cfg := registry.Config{Permissions: registry.Permissions{Invoke: []string{fn}}}
	if _, err := s.Deploy(context.Background(), fn, cfg, bytes.NewReader(mod)); err != nil {
		b.Fatal(err)
	}
	return s
}

// timed runs call b.N times and reports the median (p50-ns) and p99 of
// its latency besides the mean.
func timed(b *testing.B, call func() error) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		err := call()
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// invoker returns a call of fn with payload through System.Invoke.
func invoker(s *system.System, fn, payload string) func() error {
	inv := system.Invocation{Function: fn, Payload: []byte(payload)}
	return func() error {
		out, err := s.Invoke(context.Background(), inv)
		if err == nil && out.Err != nil {
			err = out.Err
		}
		return err
	}
}
