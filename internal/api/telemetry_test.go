package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/telemetry"
	"github.com/mote-run/mote/internal/testutil"
)

var (
	benchFlowOnce sync.Once
	benchFlow     []byte
)

// startTraced starts a platform whose telemetry is tel, with
// examples/bench-flow deployed as "flow" (allowed to call "leaf") and as
// "leaf", the trivial child.
func startTraced(t *testing.T, tel *telemetry.Telemetry) *platform {
	t.Helper()
	benchFlowOnce.Do(func() { benchFlow = testutil.BuildWasm(t, "../../examples/bench-flow", true) })
	if benchFlow == nil {
		t.Fatal("building examples/bench-flow failed in an earlier test")
	}
	dir := t.TempDir()
	sys := openSystem(t, system.Config{DataDir: dir, Telemetry: tel})
	p := &platform{t: t, dir: dir, sys: sys}
	p.srv = newServer(api.New(api.Config{System: sys}))
	t.Cleanup(p.stop)
	p.mustDeploy("leaf", benchFlow, "")
	p.mustDeploy("flow", benchFlow, `{"permissions":{"invoke":["leaf"]}}`)
	return p
}

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// A fan-out is one trace: the caller's traceparent is the root span's
// parent, the map host call is a span below the parent invocation, and
// each child invocation is a span below that host call. Every invocation,
// nested and async ones too, is counted in the metrics where it ends.
func TestTraceFanOut(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tel, err := telemetry.New(telemetry.Config{Tracing: telemetry.TracingConfig{Processors: []sdktrace.SpanProcessor{rec}}})
	if err != nil {
		t.Fatal(err)
	}
	p := startTraced(t, tel)
	r := p.do("POST", "/fn/flow", strings.NewReader(`{"op":"map","n":3,"fn":"leaf"}`),
		map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	if r.status != 200 || !strings.Contains(r.body, `"failed":0`) {
		t.Fatalf("map: %d %s", r.status, r.body)
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != callerTrace {
			t.Errorf("span %s in trace %s, want the caller's %s", s.Name(), s.SpanContext().TraceID(), callerTrace)
		}
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	if len(byName["flow"]) != 1 || len(byName["map"]) != 1 || len(byName["leaf"]) != 3 {
		t.Fatalf("spans: got %v, want flow ×1, map ×1, leaf ×3", names(rec.Ended()))
	}
	root, mapSpan := byName["flow"][0], byName["map"][0]
	if got := root.Parent().SpanID().String(); got != callerSpan || !root.Parent().IsRemote() {
		t.Errorf("flow's parent: got %s, want the caller's span %s", got, callerSpan)
	}
	if mapSpan.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("map's parent is not flow's span")
	}
	for _, leaf := range byName["leaf"] {
		if leaf.Parent().SpanID() != mapSpan.SpanContext().SpanID() {
			t.Errorf("leaf %v: parent is not the map span", leaf.SpanContext().SpanID())
		}
		if leaf.SpanKind() != trace.SpanKindServer || attr(leaf, "faas.invoked_name") != "leaf" || attr(leaf, "faas.invocation_id") == "" {
			t.Errorf("leaf span: kind %v, attributes %v", leaf.SpanKind(), leaf.Attributes())
		}
	}
	if id := r.header.Get(api.HeaderInvocationID); attr(root, "faas.invocation_id") != id {
		t.Errorf("flow span's invocation id: got %q, want %q", attr(root, "faas.invocation_id"), id)
	}

	// invoke_async children run on other goroutines, still in the trace.
	rec2 := len(rec.Ended())
	r = p.do("POST", "/fn/flow", strings.NewReader(`{"op":"async","n":2,"fn":"leaf"}`),
		map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	if r.status != 200 || !strings.Contains(r.body, `"failed":0`) {
		t.Fatalf("async: %d %s", r.status, r.body)
	}
	async := 0
	for _, s := range rec.Ended()[rec2:] {
		if s.Name() == "leaf" && s.SpanContext().TraceID().String() == callerTrace && attr(s, "mote.async") == "true" {
			async++
		}
	}
	if async != 2 {
		t.Errorf("async children traced: got %d, want 2 in the caller's trace (spans %v)", async, names(rec.Ended()[rec2:]))
	}

	// An async invocation queued durably runs later, on a worker, still
	// in the caller's trace: the queue record keeps its traceparent.
	r = p.do("POST", "/fn/leaf", strings.NewReader("x"),
		map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01", api.HeaderAsync: "true"})
	if r.status != 202 {
		t.Fatalf("queued: %d %s", r.status, r.body)
	}
	queued := r.header.Get(api.HeaderInvocationID)
	var got sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, s := range rec.Ended() {
			if attr(s, "faas.invocation_id") == queued {
				got = s
			}
		}
	}
	if got == nil {
		t.Fatalf("the queued invocation %s made no span", queued)
	}
	if got.SpanContext().TraceID().String() != callerTrace || got.Parent().SpanID().String() != callerSpan {
		t.Errorf("queued invocation's span: trace %s parent %s, want the caller's %s %s", got.SpanContext().TraceID(), got.Parent().SpanID(), callerTrace, callerSpan)
	}

	m := p.do("GET", "/metrics", nil, nil)
	for _, want := range []string{
		`mote_invocations_total{code="ok",function="flow",kind="root"} 2`,
		`mote_invocations_total{code="ok",function="leaf",kind="nested"} 3`,
		`mote_invocations_total{code="ok",function="leaf",kind="async"} 3`,
		`mote_host_calls_total{code="ok",op="map"} 1`,
		`mote_host_calls_total{code="ok",op="invoke_async"} 2`,
		`mote_invocation_duration_seconds_count{function="leaf"} 6`,
		`mote_init_duration_seconds_count{function="flow"}`,
		`mote_async_queue_depth 0`,
		`mote_dead_letters 0`,
		`mote_cache_hits_total{cache="kv"}`,
	} {
		if !strings.Contains(m.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Without a traceparent, tracing at ratio 0 records nothing; with a
// sampled one it still follows the caller.
func TestTraceSampledOff(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	zero := 0.0
	tel, err := telemetry.New(telemetry.Config{Tracing: telemetry.TracingConfig{Processors: []sdktrace.SpanProcessor{rec}, SampleRatio: &zero}})
	if err != nil {
		t.Fatal(err)
	}
	p := startTraced(t, tel)
	if r := p.invoke("flow", `{"op":"sync","n":2,"fn":"leaf"}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("sampled off: %d spans recorded, want 0: %v", n, names(rec.Ended()))
	}
	p.do("POST", "/fn/flow", strings.NewReader(`{"op":"sync","n":2,"fn":"leaf"}`),
		map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	if got := names(rec.Ended()); strings.Join(got, ",") != "leaf,invoke,leaf,invoke,flow" {
		t.Errorf("a sampled caller's trace: got spans %v, want leaf,invoke,leaf,invoke,flow", got)
	}
}

// Spans go over OTLP/HTTP to the configured endpoint: a receiver run here
// decodes what the exporter sends.
func TestTraceOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var got []*collectortrace.ExportTraceServiceRequest
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces as protobuf", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		req := new(collectortrace.ExportTraceServiceRequest)
		if err := proto.Unmarshal(b, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer recv.Close()
	tel, err := telemetry.New(telemetry.Config{Tracing: telemetry.TracingConfig{Endpoint: recv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	p := startTraced(t, tel)
	if r := p.invoke("flow", `{"op":"map","n":2,"fn":"leaf"}`); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if err := tel.Shutdown(context.Background()); err != nil { // flushes the batch
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var spans []string
	traces := map[string]bool{}
	service := ""
	for _, req := range got {
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, s.GetName())
					traces[string(s.GetTraceId())] = true
				}
			}
		}
	}
	if strings.Count(strings.Join(spans, ","), "leaf") != 2 || len(spans) != 4 || len(traces) != 1 || service != "mote" {
		t.Errorf("received spans %v in %d traces from service %q, want flow, map and 2 leaf in 1 trace from mote", spans, len(traces), service)
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}
