package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/testutil"
)

func benchInvoke(b *testing.B, inst runtime.Instance, payload string) {
	b.Helper()
	ev := event(payload, &testHost{})
	ctx := context.Background()
	var cpu time.Duration
	for b.Loop() {
		_, u, err := inst.Invoke(ctx, ev)
		if err != nil {
			b.Fatal(err)
		}
		cpu += u.CPU
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkReactorInvoke is a warm invocation of the hello-reactor example
// (Go SDK) returning "hello, x", clock reads included.
func BenchmarkReactorInvoke(b *testing.B) {
	r := newRuntime(b)
	hello := testutil.BuildWasm(b, "../../../examples/hello-reactor", true)
	inst := newInstance(b, load(b, r, hello, runtime.Spec{}))
	benchInvoke(b, inst, "x")
}

// BenchmarkReactorInvokeTiny is the runtime's own overhead: a hand-made
// reactor whose handler returns a constant.
func BenchmarkReactorInvokeTiny(b *testing.B) {
	r := newRuntime(b)
	inst := newInstance(b, load(b, r, tinyReactor, runtime.Spec{}))
	benchInvoke(b, inst, "x")
}

// BenchmarkCommandInvoke is an invocation of a WASI command: a fresh
// instance each time.
func BenchmarkCommandInvoke(b *testing.B) {
	for _, bm := range []struct {
		name     string
		artifact func(b *testing.B) []byte
	}{
		{"tiny", func(*testing.B) []byte { return tinyCommand }},
		{"go", func(b *testing.B) []byte { return testutil.BuildWasm(b, "../../../examples/hello-wasi", false) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			r := newRuntime(b)
			inst := newInstance(b, load(b, r, bm.artifact(b), runtime.Spec{}))
			benchInvoke(b, inst, "x")
		})
	}
}

// BenchmarkInstantiate is a cold start of a small hand-made reactor
// (NewInstance and Close).
func BenchmarkInstantiate(b *testing.B) {
	r := newRuntime(b)
	m := load(b, r, tinyReactor, runtime.Spec{})
	ctx := context.Background()
	for b.Loop() {
		inst, err := m.NewInstance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
	}
}

// BenchmarkInstantiateGoReactor is a cold start of the Go SDK reactor
// (instantiation and _initialize).
//
// "init" runs _initialize in every instance (Config.NoSnapshots, the path
// before snapshots); "snapshot" starts each from the snapshot of the
// first one (snapshot.go). Issue 13's goal is ≤ 1 ms for "snapshot".
func BenchmarkInstantiateGoReactor(b *testing.B) {
	for _, bm := range []struct {
		name string
		cfg  Config
	}{
		{"init", Config{NoSnapshots: true}},
		{"snapshot", Config{}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			bm.cfg.CacheDir = filepath.Join(os.TempDir(), "mote-wazero-test-cache")
			ctx := context.Background()
			r, err := New(ctx, bm.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(ctx)
			m := load(b, r, guestModule(b), runtime.Spec{}).(*Module)
			if !bm.cfg.NoSnapshots {
				newInstance(b, m)
				<-m.snap.settled
				if m.snap.ready() == nil {
					b.Fatal("no snapshot")
				}
			}
			ev := event("count", &testHost{})
			for b.Loop() {
				inst, err := m.NewInstance(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := inst.Invoke(ctx, ev); err != nil {
					b.Fatal(err)
				}
				inst.Close(ctx)
			}
		})
	}
}

// BenchmarkHostCall is one trivial host call from the Go SDK (mote.Call of
// a no-op) and back: 1000 per invocation, reported per call.
func BenchmarkHostCall(b *testing.B) {
	r := newRuntime(b)
	inst := newInstance(b, load(b, r, guestModule(b), runtime.Spec{}))
	ev := event("calln:1000", &testHost{})
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := inst.Invoke(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/call")
}

// BenchmarkLoadGoReactor is what loading the Go SDK test guest costs a
// freshly started runtime (as after a restart): compiling it, or reading
// it from the compilation cache in CacheDir (Config.CacheDir). Each
// iteration starts a new runtime, so nothing is found in memory.
func BenchmarkLoadGoReactor(b *testing.B) {
	bin := guestModule(b)
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		dir  func(b *testing.B) string
	}{
		{"compile", func(*testing.B) string { return "" }},
		{"file-cache", func(b *testing.B) string {
			dir := b.TempDir()
			r, err := New(ctx, Config{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(ctx)
			load(b, r, bin, runtime.Spec{}) // fills the cache
			return dir
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			cfg := Config{CacheDir: bm.dir(b)}
			for b.Loop() {
				r, err := New(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				load(b, r, bin, runtime.Spec{})
				r.Close(ctx)
			}
		})
	}
}
