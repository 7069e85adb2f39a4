package baas

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/host"
	moteruntime "github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/testutil"
)

// kvBench is examples/bench-kv's event and answer (the fields used here).
type kvBench struct {
	Op         string  `json:"op"`
	Prefix     string  `json:"prefix,omitempty"`
	Keys       int     `json:"keys,omitempty"`
	N          int     `json:"n,omitempty"`
	Durability string  `json:"durability,omitempty"`
	MeanNs     float64 `json:"mean_ns,omitempty"`
	P50Ns      float64 `json:"p50_ns,omitempty"`
	Missing    int     `json:"missing,omitempty"`
}

// benchKV is examples/bench-kv running as a wasm reactor in wazero, its
// host calls served by a real Service on Pebble, as `mote bench baas` runs
// it minus the scheduler and gateway.
type benchKV struct {
	inst moteruntime.Instance
	host host.Host
}

func newBenchKV(b *testing.B) *benchKV {
	b.Helper()
	ctx := context.Background()
	s := newService(b)
	r, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(os.TempDir(), "mote-wazero-test-cache")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(ctx) })
	mod, err := r.Load(ctx, moteruntime.Spec{Function: "kvw", Artifact: testutil.BuildWasm(b, "../../examples/bench-kv", true)})
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.NewInstance(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { inst.Close(ctx) })
	who := Caller{Function: "kvw", Root: "root", Perms: Permissions{Read: []string{"bench"}, Write: []string{"bench"}}}
	return &benchKV{inst: inst, host: s.Host(who)}
}

func (k *benchKV) run(b *testing.B, req kvBench) kvBench {
	b.Helper()
	payload, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	ev := &moteruntime.Event{ID: "inv", Root: "root", Deadline: time.Now().Add(time.Minute), Payload: payload, Host: k.host}
	res, _, err := k.inst.Invoke(context.Background(), ev)
	if err != nil {
		b.Fatal(err)
	}
	var out kvBench
	if err := json.Unmarshal(res.Output, &out); err != nil {
		b.Fatalf("bench-kv answered %q: %v", res.Output, err)
	}
	if out.Missing > 0 {
		b.Fatalf("%s: %d keys missing", req.Op, out.Missing)
	}
	return out
}

// BenchmarkWasmKV is a wasm function's KV call path end to end: each op is
// one invocation of examples/bench-kv making 20,000 calls of 100-byte
// values over 1,000 keys (gets are served from the read cache). ns/call
// is the function's own mean, p50-ns the median of its batches of 32
// calls, host-allocs/call the Go heap allocations of the whole process
// (the host's share: the guest's heap is wasm memory) per call.
func BenchmarkWasmKV(b *testing.B) {
	const keys, n = 1000, 20_000
	for _, tc := range []struct{ name, op, durability string }{
		{"get-cached", "get", ""},
		{"put-buffered", "put", "buffered"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			k := newBenchKV(b)
			k.run(b, kvBench{Op: "fill", Prefix: "k", Keys: keys, Durability: "buffered"})
			req := kvBench{Op: tc.op, Prefix: "k", Keys: keys, N: n, Durability: tc.durability}
			k.run(b, req) // warm the cache and the guest's heap
			var mean, p50 float64
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() {
				r := k.run(b, req)
				mean += r.MeanNs
				p50 += r.P50Ns
			}
			runtime.ReadMemStats(&m1)
			b.ReportMetric(mean/float64(b.N), "ns/call")
			b.ReportMetric(p50/float64(b.N), "p50-ns")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N*n), "host-allocs/call")
		})
	}
}
