package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// mote serve --otlp-endpoint sends an invocation's span, in its caller's
// trace, to an OTLP/HTTP receiver; the last ones go out on SIGTERM.
func TestServeExportsTraces(t *testing.T) {
	var mu sync.Mutex
	var spans []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := new(collectortrace.ExportTraceServiceRequest)
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, req) != nil {
			http.Error(w, "want OTLP/HTTP protobuf at /v1/traces", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, s.GetName()+" "+string(hexID(s.GetTraceId())))
				}
			}
		}
		mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	defer recv.Close()

	guest := writeModule(t, "../../internal/runtime/wasm/testdata/guest", true)
	s := startServer(t, "--otlp-endpoint", recv.URL)
	if code, _, errOut := s.mote(t, "deploy", "g", guest); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", s.url+"/fn/g", strings.NewReader("echo:hi"))
	req.Header.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	s.done <- nil // for the cleanup
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(spans, ","), "g "+trace) {
		t.Errorf("received spans %v, want g in trace %s", spans, trace)
	}
}

func hexID(b []byte) []byte {
	const digits = "0123456789abcdef"
	var out bytes.Buffer
	for _, c := range b {
		out.WriteByte(digits[c>>4])
		out.WriteByte(digits[c&15])
	}
	return out.Bytes()
}

func TestServeRejectsBadTraceSample(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--trace-sample", "2"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "trace-sample") {
		t.Errorf("--trace-sample 2: exit %d, stderr %q; want 2 naming the flag", code, errOut.String())
	}
}
