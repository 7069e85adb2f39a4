package api_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
)

// BenchmarkGatewayInvoke is the gateway's own cost around a warm reactor:
// routing, body, headers, metrics (no sockets: ServeHTTP on a recorder).
func BenchmarkGatewayInvoke(b *testing.B) {
	gw := helloGateway(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/fn/hello", strings.NewReader("x"))
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}

// helloGateway is a gateway over a system serving examples/hello-reactor
// as "hello", for the benchmarks; the system shuts down with b.
func helloGateway(b *testing.B) *api.Server {
	b.Helper()
	ctx := context.Background()
	w, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(os.TempDir(), "mote-api-test-wasm-cache")})
	if err != nil {
		b.Fatal(err)
	}
	sys, err := system.Open(ctx, system.Config{DataDir: b.TempDir(), Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindWasm: w}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sys.Shutdown(ctx) })
	mod := testutil.BuildWasm(b, "../../examples/hello-reactor", true)
	if _, err := sys.Deploy(ctx, "hello", registry.Config{}, bytes.NewReader(mod)); err != nil {
		b.Fatal(err)
	}
	return api.New(api.Config{System: sys})
}
