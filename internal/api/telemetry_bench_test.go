package api_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/telemetry"
	"github.com/mote-run/mote/internal/testutil"
)

// BenchmarkTelemetryCost is a warm invocation of examples/hello-reactor
// over loopback through the fast path, on four gateways that differ only
// in telemetry: none (off), metrics, metrics with tracing configured but
// sampled off (ratio 0, no traceparent), and metrics with every
// invocation traced (a batch processor to an exporter that drops). seq
// is one connection, request after request, with the median (p50-ns)
// reported beside the mean; parallel is 4 connections per core, whose
// ns/op is the inverse of throughput. Every variant reports cpu-ns/op,
// the process's CPU time per invocation (see cpuClock). Run with -count N: each count runs
// every variant once, so the variants interleave in time and share the
// machine's load alike.
func BenchmarkTelemetryCost(b *testing.B) {
	zero := 0.0
	noop := func() []sdktrace.SpanProcessor {
		return []sdktrace.SpanProcessor{sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())}
	}
	variants := []struct {
		name string
		cfg  telemetry.Config
	}{
		{"off", telemetry.Config{NoMetrics: true}},
		{"metrics", telemetry.Config{}},
		{"metrics-trace-sampled-off", telemetry.Config{Tracing: telemetry.TracingConfig{Processors: noop(), SampleRatio: &zero}}},
		{"metrics-trace-on", telemetry.Config{Tracing: telemetry.TracingConfig{Processors: noop()}}},
	}
	req := []byte(post("/fn/hello", "x"))
	gws := make([]*api.Server, len(variants))
	syss := make([]*system.System, len(variants))
	for i, v := range variants {
		tel, err := telemetry.New(v.cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tel.Shutdown(context.Background()) })
		gws[i], syss[i] = telemetryGateway(b, tel)
	}
	for i, v := range variants {
		b.Run("seq/"+v.name, func(b *testing.B) { benchLoopbackP50(b, gws[i], req) })
	}
	for i, v := range variants {
		b.Run("parallel/"+v.name, func(b *testing.B) { benchLoopbackParallel(b, gws[i], req) })
	}
	// In process, without sockets: the same invocation through
	// system.Invoke, where the telemetry's cost is a larger share.
	for i, v := range variants {
		b.Run("inproc-seq/"+v.name, func(b *testing.B) { benchInvokeP50(b, syss[i]) })
	}
	for i, v := range variants {
		b.Run("inproc-parallel/"+v.name, func(b *testing.B) { benchInvokeParallel(b, syss[i]) })
	}
}

var helloInvocation = system.Invocation{Function: "hello", Payload: []byte("x")}

func benchInvokeP50(b *testing.B, sys *system.System) {
	ctx := context.Background()
	took := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	done := cpuClock(b)
	for i := range b.N {
		t0 := time.Now()
		out, err := sys.Invoke(ctx, helloInvocation)
		took[i] = time.Since(t0)
		if err != nil || out.Err != nil {
			b.Fatal(err, out.Err)
		}
	}
	b.StopTimer()
	done()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
}

func benchInvokeParallel(b *testing.B, sys *system.System) {
	ctx := context.Background()
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuClock(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if out, err := sys.Invoke(ctx, helloInvocation); err != nil || out.Err != nil {
				b.Error(err, out.Err)
				return
			}
		}
	})
}

func telemetryGateway(b *testing.B, tel *telemetry.Telemetry) (*api.Server, *system.System) {
	b.Helper()
	ctx := context.Background()
	sys := openSystem(b, system.Config{DataDir: b.TempDir(), Telemetry: tel})
	b.Cleanup(func() { sys.Shutdown(ctx) })
	mod := testutil.BuildWasm(b, "../../examples/hello-reactor", true)
	if _, err := sys.Deploy(ctx, "hello", registry.Config{}, bytes.NewReader(mod)); err != nil {
		b.Fatal(err)
	}
	return api.New(api.Config{System: sys}), sys
}

// serveFast serves gw's fast path on a loopback listener until b ends.
func serveFast(b *testing.B, gw *api.Server) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: gw}
	fl := gw.Listen(ln, api.FastConfig{})
	go srv.Serve(fl)
	b.Cleanup(func() {
		srv.Close()
		fl.Shutdown(context.Background())
	})
	return ln.Addr().String()
}

// roundTrip sends req on conn and reads a 200 response.
func roundTrip(b *testing.B, conn net.Conn, br *bufio.Reader, req []byte) {
	if _, err := conn.Write(req); err != nil {
		b.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatal(resp.Status)
	}
}

// benchLoopbackP50 is benchLoopback over the fast path that also reports
// the median round trip.
func benchLoopbackP50(b *testing.B, gw *api.Server, req []byte) {
	conn, err := net.Dial("tcp", serveFast(b, gw))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	took := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	done := cpuClock(b)
	for i := range b.N {
		t0 := time.Now()
		roundTrip(b, conn, br, req)
		took[i] = time.Since(t0)
	}
	b.StopTimer()
	done()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
}

// benchLoopbackParallel sends req on 4 connections per GOMAXPROCS at once.
func benchLoopbackParallel(b *testing.B, gw *api.Server, req []byte) {
	addr := serveFast(b, gw)
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuClock(b)()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for pb.Next() {
			roundTrip(b, conn, br, req)
		}
	})
}

// cpuClock reports the process's CPU time (user and system) as b runs and,
// at the end, reports it per operation as cpu-ns/op: on a machine that
// other work loads, CPU per invocation moves far less than wall time
// does, and a server's throughput is its cores over it.
func cpuClock(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
