package system_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

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
	s := openSystem(b)
	mod := testutil.BuildWasm(b, "../../examples/hello-reactor", true)
	if _, err := s.Deploy(context.Background(), "hello", registry.Config{}, bytes.NewReader(mod)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	inv := system.Invocation{Function: "hello", Payload: []byte("x")}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, err := s.Invoke(ctx, inv)
		lat = append(lat, time.Since(t0))
		if err != nil || out.Err != nil {
			b.Fatal(err, out.Err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
