package api_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
)

// BenchmarkGatewayInvoke is the gateway's own cost around a warm reactor:
// routing, body, headers, metrics (no sockets: ServeHTTP on a recorder).
func BenchmarkGatewayInvoke(b *testing.B) {
	gw, _ := helloGateway(b)
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

// BenchmarkGatewayLoopback is one warm synchronous invocation over a
// loopback connection, through /fn and through the AWS Lambda Invoke
// API's route, each on the fast listener and on plain net/http (same
// gateway, same function and event); the client's own cost is in all.
//
// The -key variants send an API key allowed to invoke the function to a
// gateway that has an admin token and keys, so each request's key is
// checked (the others run on a gateway open to local callers).
func BenchmarkGatewayLoopback(b *testing.B) {
	gw, _ := helloGateway(b)
	fn := []byte(post("/fn/hello", "x"))
	lambda := []byte(post(lambdaPath("hello"), "x"))
	// Another system: one with a key is no longer open to local callers.
	_, sys := helloGateway(b)
	_, tok, err := sys.Keys().Create("bench", []string{"invoke:hello"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	keyed := api.New(api.Config{System: sys, Token: "0123456789abcdef-admin"})
	auth := "Authorization: Bearer " + tok
	fnKey := []byte(post("/fn/hello", "x", auth))
	lambdaKey := []byte(post(lambdaPath("hello"), "x", auth))
	b.Run("fn-fast", func(b *testing.B) { benchLoopback(b, gw, true, fn) })
	b.Run("fn-fast-key", func(b *testing.B) { benchLoopback(b, keyed, true, fnKey) })
	b.Run("fn-net-http", func(b *testing.B) { benchLoopback(b, gw, false, fn) })
	b.Run("fn-net-http-key", func(b *testing.B) { benchLoopback(b, keyed, false, fnKey) })
	b.Run("lambda-fast", func(b *testing.B) { benchLoopback(b, gw, true, lambda) })
	b.Run("lambda-fast-key", func(b *testing.B) { benchLoopback(b, keyed, true, lambdaKey) })
	b.Run("lambda-net-http", func(b *testing.B) { benchLoopback(b, gw, false, lambda) })
}

// benchLoopback serves gw on a loopback listener, through the fast path
// or plain net/http, and sends req on one connection b.N times, reading
// each response (which must be a 200) before the next request.
func benchLoopback(b *testing.B, gw *api.Server, fast bool, req []byte) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: gw}
	var fl *api.FastListener
	if fast {
		fl = gw.Listen(ln, api.FastConfig{})
		go srv.Serve(fl)
	} else {
		go srv.Serve(ln)
	}
	defer func() {
		srv.Close()
		if fl != nil {
			fl.Shutdown(context.Background())
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
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
}

// helloGateway is a gateway over a system serving examples/hello-reactor
// as "hello", and its system, for the benchmarks; the system shuts down
// with b.
func helloGateway(b *testing.B) (*api.Server, *system.System) {
	b.Helper()
	ctx := context.Background()
	sys := openSystem(b, system.Config{DataDir: b.TempDir()})
	b.Cleanup(func() { sys.Shutdown(ctx) })
	mod := testutil.BuildWasm(b, "../../examples/hello-reactor", true)
	if _, err := sys.Deploy(ctx, "hello", registry.Config{}, bytes.NewReader(mod)); err != nil {
		b.Fatal(err)
	}
	return api.New(api.Config{System: sys}), sys
}
