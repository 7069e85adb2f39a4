//go:build !wasip1

package mote

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPIConn: the plain Runtime API client (what the SDK speaks off Mote,
// on AWS Lambda) against Go's net/http server: the next event with its
// headers, a chunked body, a posted response, and a redial after the
// server closed a kept-alive connection.
func TestAPIConn(t *testing.T) {
	var posted string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == pathNext:
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-1")
			w.Header().Set("Lambda-Runtime-Deadline-Ms", "1700000000000")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=r;Parent=p;Sampled=0")
			w.Write([]byte(`{"name":"ada"}`))
		case r.URL.Path == "/chunked":
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush() // no length known: chunked
			w.Write([]byte("part two"))
		case strings.HasSuffix(r.URL.Path, "/response"):
			b, _ := io.ReadAll(r.Body)
			posted = string(b)
			w.WriteHeader(http.StatusAccepted)
		case r.URL.Path == "/close":
			w.Header().Set("Connection", "close")
		}
	}))
	defer srv.Close()
	c, err := dialAPI(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.do("GET", pathNext, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newContext(resp.requestID, resp.deadline, resp.trace, resp.depth)
	if resp.status != 200 || string(resp.body) != `{"name":"ada"}` || ctx.InvocationID != "req-1" || ctx.RootID != "r" || ctx.ParentID != "p" || ctx.Deadline.UnixMilli() != 1700000000000 {
		t.Errorf("next: got status %d, body %q, context %+v", resp.status, resp.body, ctx)
	}
	for _, tc := range []struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		{"GET", "/chunked", "", 200, "part one, part two"},
		{"POST", pathInvPrefix + "req-1/response", "hello", 202, ""},
		{"GET", "/close", "", 200, ""},
		{"GET", "/chunked", "", 200, "part one, part two"}, // after the server closed: redialled
	} {
		resp, err := c.do(tc.method, tc.path, "", []byte(tc.body))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if resp.status != tc.wantStatus || string(resp.body) != tc.wantBody {
			t.Errorf("%s %s: got %d %q, want %d %q", tc.method, tc.path, resp.status, resp.body, tc.wantStatus, tc.wantBody)
		}
	}
	if posted != "hello" {
		t.Errorf("posted response: got %q, want hello", posted)
	}
}

// TestServeEventTooLarge: a result over the platform's limit is reported
// as the invocation's error, as Lambda does, not sent to be refused.
func TestServeEventTooLarge(t *testing.T) {
	defer func(h Handler) { handler = h }(handler)
	for _, tc := range []struct {
		size       int
		err        error
		wantFailed bool
		wantType   string
	}{
		{maxResponse, nil, false, ""},
		{maxResponse + 1, nil, true, "Function.ResponseSizeTooLarge"},
		{0, errors.New(strings.Repeat("x", 2*maxResponse)), true, "FunctionError"},
	} {
		handler = func(*Context, []byte) ([]byte, error) { return make([]byte, tc.size), tc.err }
		body, failed, _ := serveEvent(&Context{InvocationID: "req-1"}, nil)
		if failed != tc.wantFailed || len(body) > maxResponse {
			t.Errorf("size %d: got failed %v, %d bytes; want failed %v, at most %d", tc.size, failed, len(body), tc.wantFailed, maxResponse)
		}
		var le lambdaError
		if tc.wantFailed && (json.Unmarshal(body, &le) != nil || le.Type != tc.wantType) {
			t.Errorf("size %d: error %q, want type %q", tc.size, body[:min(len(body), 200)], tc.wantType)
		}
	}
}
