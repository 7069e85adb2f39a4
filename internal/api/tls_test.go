package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
)

// Over TLS (the listener wrapped as `mote serve --tls-cert` wraps it), the
// fast path serves invocations on the decrypted stream, hands every other
// request to net/http on the same TLS connection, and closes a connection
// that never completes its handshake after the header timeout.
func TestFastPathOverTLS(t *testing.T) {
	modules(t)
	ctx := context.Background()
	sys := openSystem(t, system.Config{DataDir: t.TempDir(), MaxPayload: fastMaxPayload})
	t.Cleanup(func() { sys.Shutdown(ctx) })
	if _, err := sys.Deploy(ctx, "g", registry.Config{}, bytes.NewReader(guest)); err != nil {
		t.Fatal(err)
	}
	_, key, err := sys.Keys().Create("", []string{"invoke:g"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const token = "0123456789abcdef-admin"
	certPEM, keyPEM := testutil.SelfSignedCert(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	gw := api.New(api.Config{System: sys, Token: token})
	fl := gw.Listen(tln, api.FastConfig{ReadHeaderTimeout: 300 * time.Millisecond})
	var handed atomic.Int64
	srv := &http.Server{Handler: gw, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			handed.Add(1)
		}
	}}
	go srv.Serve(fl)
	t.Cleanup(func() {
		srv.Close()
		fl.Shutdown(context.Background())
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	conf := &tls.Config{RootCAs: pool}

	// Two invocations on one connection, by the fast path.
	conn, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := post("/fn/g", "echo:tls", "Authorization: Bearer "+key)
	if _, err := io.WriteString(conn, req+req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i := range 2 {
		r, err := readResponse(t, br)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "200 OK" || r.body != "tls" {
			t.Errorf("invocation %d over TLS: got %s %q, want 200 OK \"tls\"", i, r.status, r.body)
		}
	}
	if n := handed.Load(); n != 0 {
		t.Errorf("invocations over TLS: %d connections handed to net/http, want 0 (the fast path serves them)", n)
	}

	// A management request on the same connection goes to net/http,
	// still over TLS.
	io.WriteString(conn, "GET /v1/functions HTTP/1.1\r\nHost: mote.test\r\nAuthorization: Bearer "+token+"\r\n\r\n")
	r, err := readResponse(t, br)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != "200 OK" || handed.Load() != 1 {
		t.Errorf("management request over TLS: got %s, %d handed; want 200 OK, 1", r.status, handed.Load())
	}

	// An HTTPS client that does not trust the certificate is refused.
	if _, err := tls.Dial("tcp", addr, &tls.Config{}); err == nil {
		t.Error("a client without the CA completed the handshake")
	}

	// Plain HTTP to the TLS port gets no HTTP answer.
	plain := dial(t, addr)
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(plain, post("/fn/g", "echo:x"))
	if resp, err := http.ReadResponse(bufio.NewReader(plain), nil); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP to the TLS port was served")
	}

	// A client that never starts its handshake is closed after the header
	// timeout, not held.
	idle := dial(t, addr)
	start := time.Now()
	idle.SetDeadline(start.Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a silent TLS client: got %v, want the server to close (EOF)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a silent TLS client was closed after %v, want about the 300ms header timeout", d)
	}
}
