package api_test

import (
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
	ctx := context.Background()
	w, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(os.TempDir(), "mote-api-test-wasm-cache")})
	if err != nil {
		b.Fatal(err)
	}
	sys, err := system.Open(ctx, system.Config{DataDir: b.TempDir(), Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindWasm: w}})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Shutdown(ctx)
	gw := api.New(api.Config{System: sys})
	mod := testutil.BuildWasm(b, "../../examples/hello-reactor", true)
	if _, err := sys.Deploy(ctx, "hello", registryConfig(), strings.NewReader(string(mod))); err != nil {
		b.Fatal(err)
	}
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

func registryConfig() registry.Config { return registry.Config{} }
