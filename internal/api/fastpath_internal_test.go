package api

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/store"
	"github.com/mote-run/mote/internal/system"
)

// The fast path takes a request only where net/http reads the same
// request: POST over HTTP/1.1 to an invocation route (/fn/, or the Lambda
// Invoke API's route as the gateway's mux routes it, synchronous), with the
// same function name and body length, no transfer coding, no Expect, no
// async header, and a credential that ServeHTTP also takes as one allowed
// to invoke that function: in each of the gateway's modes (open, an admin
// token, an admin token and API keys).
func FuzzParseFastHeader(f *testing.F) {
	db, err := store.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	keys, err := auth.OpenKeys(db, auth.KeysConfig{})
	if err != nil {
		f.Fatal(err)
	}
	const token = "0123456789abcdef"
	var keyTokens []string
	for _, scope := range []string{"invoke:hello", "invoke:g*", "read:hello", "deploy"} {
		_, tok, err := keys.Create("", []string{scope}, 0)
		if err != nil {
			f.Fatal(err)
		}
		keyTokens = append(keyTokens, tok)
	}
	emptyDB, err := store.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { emptyDB.Close() })
	noKeys, err := auth.OpenKeys(emptyDB, auth.KeysConfig{})
	if err != nil {
		f.Fatal(err)
	}
	servers := []*Server{
		{keys: noKeys},                       // open: no token, no keys
		{keys: noKeys, token: []byte(token)}, // the admin token alone
		{keys: keys, token: []byte(token)},   // the admin token and keys
	}
	seeds := []string{
		"POST /fn/hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1\r\n\r\n",
		"POST /fn/hello/a/b HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\nConnection: keep-alive\r\n\r\n",
		"POST /fn/hello HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n",
		"POST /fn/hello HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nAuthorization:\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n",
		"POST /fn/hello HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /fn/hello HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nX-Mote-Async: true\r\n\r\n",
		"GET /fn/hello HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /fn/../x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n",
		"POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
		"POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: h\r\nX-Amz-Invocation-Type: RequestResponse\r\nContent-Length: 2\r\n\r\n",
		"POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: h\r\nx-amz-invocation-type: Event\r\nContent-Length: 2\r\n\r\n",
		"POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: h\r\nX-Amz-Invocation-Type: DryRun\r\nContent-Length: 0\r\n\r\n",
		"POST /2015-03-31/functions/hello/invocations?Qualifier=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
		"POST /2015-03-31/functions/a/b/invocations HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
		"POST /2015-03-31/functions/../invocations HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
	}
	for _, tok := range keyTokens {
		for _, path := range []string{"/fn/hello", "/fn/go", "/fn/other/x", "/2015-03-31/functions/hello/invocations", "/2015-03-31/functions/gx/invocations"} {
			seeds = append(seeds, "POST "+path+" HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		}
	}
	for _, s := range seeds {
		for mode := range len(servers) {
			f.Add([]byte(s), uint8(mode))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		b = b[:end+4]
		s := servers[int(mode)%len(servers)]
		h, ok := parseFastHeader(b, 1<<20)
		if !ok || !s.fastInvokeAllowed(h.auth, h.host, string(h.name)) {
			return
		}
		name, lambda, n := h.name, h.lambda, h.length
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("fast path took %q, net/http refuses it: %v", b, err)
		}
		got, gotOK := fnName(r)
		if lambda {
			// ServeHTTP leaves it to the mux, which must route it to
			// lambdaInvoke as a synchronous invocation of the same name.
			got, gotOK = lambdaRoute(r)
			if _, fn := fnName(r); fn {
				gotOK = false
			}
		}
		if r.Method != "POST" || r.ProtoMajor != 1 || r.ProtoMinor != 1 || !gotOK || got != string(name) ||
			r.ContentLength != int64(n) || len(r.TransferEncoding) != 0 || r.Close ||
			r.Header.Get("Expect") != "" || r.Header.Get(HeaderAsync) != "" || r.URL.RawQuery != "" {
			t.Fatalf("fast path took %q as %q (lambda %v, %d bytes); net/http reads %s %s %s name %q %v, length %d, TE %v, close %v",
				b, name, lambda, n, r.Method, r.URL, r.Proto, got, gotOK, r.ContentLength, r.TransferEncoding, r.Close)
		}
		p, err := s.authenticate(r)
		if err != nil {
			t.Fatalf("fast path took %q (mode %d); net/http refuses its credential: %v", b, mode%3, err)
		}
		if need := (auth.Need{Right: auth.Invoke, Target: got}); !p.Allows(need) {
			t.Fatalf("fast path took %q (mode %d); net/http's principal %s lacks %s", b, mode%3, p.Who(), need)
		}
	})
}

// lambdaRoute returns the function name of a request the gateway's mux
// routes to lambdaInvoke as a synchronous invocation.
func lambdaRoute(r *http.Request) (name string, ok bool) {
	switch r.Header.Get(headerLambdaInvocationType) {
	case "", "RequestResponse":
	default:
		return "", false
	}
	mux := http.NewServeMux()
	mux.HandleFunc(lambdaInvokePattern, func(w http.ResponseWriter, r *http.Request) {
		name, ok = r.PathValue("name"), true
	})
	mux.ServeHTTP(httptest.NewRecorder(), r)
	return name, ok
}

// The fast path writes a success's metering headers by hand; they are the
// lines setOutcomeHeaders' header map makes, values included, in the order
// net/http writes them (the wire comparison with net/http masks the values
// that vary per invocation, so it cannot tell them apart).
func TestAppendOutcomeHeaders(t *testing.T) {
	for _, out := range []*system.Outcome{
		{ID: "0123abcd", Version: 3, Usage: runtime.Usage{CPU: 1234 * time.Microsecond}, BilledMs: 2, Cold: true},
		{ID: "ffee", Version: 12, Usage: runtime.Usage{CPU: 987654 * time.Microsecond}, BilledMs: 988},
		{ID: "1", Version: 1},
	} {
		h := http.Header{}
		setOutcomeHeaders(h, out)
		var want bytes.Buffer
		if err := h.Write(&want); err != nil {
			t.Fatal(err)
		}
		if got := string(appendOutcomeHeaders(nil, out)); got != want.String() {
			t.Errorf("outcome %+v:\ngot  %q\nwant %q", out, got, want.String())
		}
	}
}

// BenchmarkFastInvokeAllowed is the fast path's credential check of a
// request: open (no token, no keys), the admin token, and an API key
// allowed to invoke the function (parse, map lookup, SHA-256, scope).
func BenchmarkFastInvokeAllowed(b *testing.B) {
	db, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	keys, err := auth.OpenKeys(db, auth.KeysConfig{})
	if err != nil {
		b.Fatal(err)
	}
	emptyDB, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer emptyDB.Close()
	noKeys, err := auth.OpenKeys(emptyDB, auth.KeysConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for range 100 { // a server with a hundred keys
		keys.Create("", []string{"invoke:x"}, 0)
	}
	_, tok, err := keys.Create("", []string{"read:b", "invoke:hello"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	const token = "0123456789abcdef-admin"
	for _, bc := range []struct {
		name string
		s    *Server
		auth string
	}{
		{"open", &Server{keys: noKeys}, ""},
		{"token", &Server{keys: keys, token: []byte(token)}, "Bearer " + token},
		{"key", &Server{keys: keys, token: []byte(token)}, "Bearer " + tok},
	} {
		b.Run(bc.name, func(b *testing.B) {
			authz := []byte(bc.auth)
			b.ReportAllocs()
			for b.Loop() {
				if !bc.s.fastInvokeAllowed(authz, []byte("127.0.0.1:8080"), "hello") {
					b.Fatal("refused")
				}
			}
		})
	}
}
