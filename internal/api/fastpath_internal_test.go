package api

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/system"
)

// The fast path takes a request only where net/http reads the same
// request: POST over HTTP/1.1 to an invocation route (/fn/, or the Lambda
// Invoke API's route as the gateway's mux routes it, synchronous), with the
// same function name and body length, no transfer coding, no Expect, no
// async header and a valid token.
func FuzzParseFastHeader(f *testing.F) {
	for _, s := range []string{
		"POST /fn/hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1\r\n\r\n",
		"POST /fn/hello/a/b HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\nConnection: keep-alive\r\n\r\n",
		"POST /fn/hello HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n",
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
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	const token = "0123456789abcdef"
	f.Fuzz(func(t *testing.T, b []byte, withToken bool) {
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		b = b[:end+4]
		var tok []byte
		if withToken {
			tok = []byte(token)
		}
		h, ok := parseFastHeader(b, 1<<20, tok)
		if !ok {
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
		if withToken {
			auth, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !found || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth)), tok) != 1 {
				t.Fatalf("fast path took %q without the token", b)
			}
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
