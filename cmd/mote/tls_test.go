package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/testutil"
)

// `mote serve --tls-cert --tls-key` serves HTTPS, invocations (the fast
// path) and management alike; the CLI trusts a self-signed certificate
// through --ca-cert or MOTE_CA_CERT, and not otherwise.
func TestServeTLS(t *testing.T) {
	reactor := writeModule(t, "../../examples/hello-reactor", true)
	certPEM, keyPEM := testutil.SelfSignedCert(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("server URL %q, want https://", s.url)
	}
	if code, _, errOut := s.mote(t, "deploy", "hello", reactor, "--ca-cert", cert); code != 0 {
		t.Fatalf("deploy over TLS: %s", errOut)
	}
	t.Setenv("MOTE_CA_CERT", cert)
	if code, out, errOut := s.mote(t, "invoke", "hello", "-d", "tls"); code != 0 || !strings.Contains(out, "hello, tls") {
		t.Errorf("invoke over TLS with MOTE_CA_CERT: got %d %q %q", code, out, errOut)
	}
	t.Setenv("MOTE_CA_CERT", "")
	if code, _, errOut := s.mote(t, "ls"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("ls without the CA: got %d %q, want a certificate error", code, errOut)
	}
	plain := "http://" + strings.TrimPrefix(s.url, "https://")
	var out, errOut strings.Builder
	if code := run([]string{"ls", "--server", plain}, &out, &errOut); code != 1 {
		t.Errorf("plain HTTP to the TLS server: got %d %q", code, out.String())
	}

	var o, e strings.Builder
	if code := run([]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--tls-cert", cert}, &o, &e); code == 0 || !strings.Contains(e.String(), "go together") {
		t.Errorf("serve with --tls-cert alone: got %d %q", code, e.String())
	}
}
