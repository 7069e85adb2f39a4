package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

const fastMaxPayload = 64 << 10

// gatewayPair serves one gateway twice: through plain net/http and through
// the fast path in front of net/http.
type gatewayPair struct {
	sys         *system.System
	plain, fast string // addresses
	fl          *api.FastListener
	fsrv        *http.Server
	handed      atomic.Int64 // connections the fast path handed to net/http
}

func startPair(t *testing.T, token string, cfg api.FastConfig) *gatewayPair {
	t.Helper()
	modules(t)
	ctx := context.Background()
	sys := openSystem(t, system.Config{DataDir: t.TempDir(), MaxPayload: fastMaxPayload})
	t.Cleanup(func() { sys.Shutdown(ctx) })
	if _, err := sys.Deploy(ctx, "g", registry.Config{}, bytes.NewReader(guest)); err != nil {
		t.Fatal(err)
	}
	return servePair(t, sys, token, cfg)
}

// servePair serves a gateway over sys through plain net/http and through
// the fast path, until the test ends (before sys shuts down, when sys was
// opened first).
func servePair(t *testing.T, sys *system.System, token string, cfg api.FastConfig) *gatewayPair {
	t.Helper()
	gw := api.New(api.Config{System: sys, Token: token})
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	plainLn, fastLn := listen(), listen()
	psrv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	fsrv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	p := &gatewayPair{sys: sys, plain: plainLn.Addr().String(), fast: fastLn.Addr().String(), fsrv: fsrv}
	fsrv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			p.handed.Add(1)
		}
	}
	fl := gw.Listen(fastLn, cfg)
	p.fl = fl
	go psrv.Serve(plainLn)
	go fsrv.Serve(fl)
	t.Cleanup(func() {
		psrv.Close()
		fsrv.Close()
		fl.Shutdown(context.Background())
	})
	return p
}

// rawResponse is a response as read off the wire.
type rawResponse struct {
	status  string
	header  http.Header
	chunked bool
	length  int64
	close   bool
	body    string
	cont    bool // a 100 Continue came first
}

func (r rawResponse) String() string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range r.header {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%s chunked=%v length=%d close=%v continue=%v\n", r.status, r.chunked, r.length, r.close, r.cont)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %q\n", k, r.header[k])
	}
	body := r.body
	if len(body) > 200 {
		body = fmt.Sprintf("%s... (%d bytes)", body[:200], len(body))
	}
	fmt.Fprintf(&b, "  body %q", body)
	return b.String()
}

// dial connects to addr, closing the connection when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readResponse reads one response, skipping a 100 Continue, with the
// values that vary per invocation or per second masked.
func readResponse(t *testing.T, br *bufio.Reader) (rawResponse, error) {
	t.Helper()
	var r rawResponse
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return r, err
		}
		if resp.StatusCode == http.StatusContinue {
			r.cont = true
			continue
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return r, err
		}
		if id := resp.Header.Get(api.HeaderInvocationID); id != "" {
			body = bytes.ReplaceAll(body, []byte(id), []byte("(id)"))
		}
		if c := resp.Header.Get(api.HeaderCold); c == "true" || c == "false" || c == "per-call" {
			// A panic leaves the next invocation a cold start.
			resp.Header.Set(api.HeaderCold, "(set)")
		}
		for _, k := range []string{"Date", api.HeaderInvocationID, api.HeaderCPU, api.HeaderBilled, "X-Amzn-Requestid"} {
			if len(resp.Header[k]) == 1 && resp.Header[k][0] != "" {
				resp.Header[k] = []string{"(set)"}
			}
		}
		r.status, r.header, r.body = resp.Status, resp.Header, string(body)
		r.chunked = slices.Equal(resp.TransferEncoding, []string{"chunked"})
		r.length, r.close = resp.ContentLength, resp.Close
		return r, nil
	}
}

// exchange writes raw requests on one connection and reads n responses.
func exchange(t *testing.T, addr string, raw string, n int) []rawResponse {
	t.Helper()
	got, _ := exchangeBytes(t, addr, raw, n)
	return got
}

// exchangeBytes is exchange that also returns every byte the server
// wrote, with the values that vary per invocation or per second masked.
func exchangeBytes(t *testing.T, addr string, raw string, n int) ([]rawResponse, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	br := bufio.NewReader(io.TeeReader(conn, &wire))
	var got []rawResponse
	for range n {
		r, err := readResponse(t, br)
		if err != nil {
			t.Fatalf("response %d of %d: %v", len(got)+1, n, err)
		}
		got = append(got, r)
	}
	// The server sends nothing but the n responses, all read by now.
	return got, maskWire(wire.String())
}

var (
	wireID      = regexp.MustCompile(api.HeaderInvocationID + `: ([0-9a-f]+)\r\n`)
	wireVarying = regexp.MustCompile(`(?m)^(Date|` + api.HeaderInvocationID + `|` + api.HeaderCold + `|` + api.HeaderCPU + `|` + api.HeaderBilled + `): [^\r\n]*`)
)

// maskWire masks invocation ids (wherever they appear) and the header
// values readResponse masks, keeping their places.
func maskWire(s string) string {
	for _, m := range wireID.FindAllStringSubmatch(s, -1) {
		s = strings.ReplaceAll(s, m[1], "(id)")
	}
	return wireVarying.ReplaceAllString(s, "$1: (set)")
}

func post(path, body string, headers ...string) string {
	h := ""
	for _, l := range headers {
		h += l + "\r\n"
	}
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %d\r\n\r\n%s", path, h, len(body), body)
}

// lambdaPath is the Lambda Invoke API's route for function fn.
func lambdaPath(fn string) string { return "/2015-03-31/functions/" + fn + "/invocations" }

// awsSDKRequest is a request as the official AWS SDK for Go v2 sends it
// (examples/aws-sdk-invoke, captured off the wire).
func awsSDKRequest(fn, payload string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1:18931\r\n"+
		"User-Agent: aws-sdk-go-v2/1.48.0 ua/2.1 os/linux lang/go#1.26.8 md/GOOS#linux md/GOARCH#amd64 api/lambda#1.114.4 m/E,e\r\n"+
		"Content-Length: %d\r\nAmz-Sdk-Invocation-Id: 829ba8d2-0678-4d66-a676-60b27c30827e\r\nAmz-Sdk-Request: attempt=1; max=3\r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential=mote/20261126/us-east-1/lambda/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date, Signature=2c038e5c70edd23e6b6d85f91d11050f0877ec41da284fef4788fa43f3efda41\r\n"+
		"Content-Type: application/octet-stream\r\nX-Amz-Date: 20261126T023428Z\r\nAccept-Encoding: gzip\r\n\r\n%s", lambdaPath(fn), len(payload), payload)
}

// Every request, fast or handed off, gets the bytes net/http writes for
// it (but for the values that vary per invocation or per second), and the
// fast path serves exactly the requests it should.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	p := startPair(t, "", api.FastConfig{})
	over := strings.Repeat("x", fastMaxPayload+1)
	sync := "X-Amz-Invocation-Type: RequestResponse"
	for _, tc := range []struct {
		name string
		raw  string
		n    int  // responses
		fast bool // the fast path serves every request itself
	}{
		{"success", post("/fn/g", "hello:you"), 1, true},
		{"sub path", post("/fn/g/a/b", "echo:x"), 1, true},
		{"empty output", post("/fn/g", "echo:"), 1, true},
		{"empty event", post("/fn/g", ""), 1, true},
		{"html sniffed", post("/fn/g", "echo:<html><body>hi"), 1, true},
		{"binary sniffed, chunked past 2KiB", post("/fn/g", "big:3000"), 1, true},
		{"2KiB exactly", post("/fn/g", "big:2048"), 1, true},
		{"function error", post("/fn/g", "error:boom"), 1, true},
		{"function panic", post("/fn/g", "panic:oops"), 1, true},
		{"unknown function", post("/fn/nope", "x"), 1, true},
		{"invocation type ignored on /fn", post("/fn/g", "echo:a", "X-Amz-Invocation-Type: Event"), 1, true},
		{"payload over the limit", post("/fn/g", over), 1, false},
		{"payload at the limit", post("/fn/g", "echo:"+over[:fastMaxPayload-5]), 1, false},
		{"lower-case headers", "POST /fn/g HTTP/1.1\r\nhost: localhost\r\ncontent-length: 6\r\nconnection: Keep-Alive\r\n\r\necho:a", 1, true},
		{"async", post("/fn/g", "echo:a", "X-Mote-Async: true"), 1, false},
		{"query", post("/fn/g?x=1", "echo:q"), 1, false},
		{"escaped path", post("/fn/g%2Fx", "echo:q"), 1, false},
		{"dot path", post("/fn/g/../g", "echo:q"), 1, false},
		{"GET", "GET /fn/g HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"HTTP/1.0", "POST /fn/g HTTP/1.0\r\nContent-Length: 6\r\n\r\necho:a", 1, false},
		{"no host", "POST /fn/g HTTP/1.1\r\nContent-Length: 6\r\n\r\necho:a", 1, false},
		{"two lengths", "POST /fn/g HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nContent-Length: 6\r\n\r\necho:a", 1, false},
		{"bad length", "POST /fn/g HTTP/1.1\r\nHost: h\r\nContent-Length: +6\r\n\r\necho:a", 1, false},
		{"chunked body", "POST /fn/g HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\necho:c\r\n0\r\n\r\n", 1, false},
		{"expect continue", post("/fn/g", "echo:e", "Expect: 100-continue"), 1, false},
		{"connection close", post("/fn/g", "echo:e", "Connection: close"), 1, false},
		{"bad header name", post("/fn/g", "echo:e", "Bad Name: x"), 1, false},
		{"garbage", "GARBAGE\r\n\r\n", 1, false},
		{"management route", "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"fast, fast, handed off, then net/http", post("/fn/g", "echo:1") + post("/fn/g", "echo:2") +
			"POST /fn/g HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\necho:3\r\n0\r\n\r\n" + post("/fn/g", "echo:4"), 4, false},
		{"pipelined errors and successes", post("/fn/nope", "") + post("/fn/g", "error:x") + post("/fn/g", "echo:y") + post("/fn/g", "big:2100"), 4, true},

		// The AWS Lambda Invoke API: synchronous invocations are the fast
		// path's, the rest net/http's.
		{"lambda success", post(lambdaPath("g"), `echo:{"a":1}`), 1, true},
		{"lambda success, RequestResponse", post(lambdaPath("g"), "hello:you", sync), 1, true},
		{"lambda success, lower-case type header", post(lambdaPath("g"), "echo:x", "x-amz-invocation-type: RequestResponse"), 1, true},
		{"lambda empty output", post(lambdaPath("g"), "echo:"), 1, true},
		{"lambda empty event", post(lambdaPath("g"), ""), 1, true},
		{"lambda output not JSON, chunked past 2KiB", post(lambdaPath("g"), "big:3000"), 1, true},
		{"lambda function error", post(lambdaPath("g"), "error:boom", sync), 1, true},
		{"lambda function error, HTML in its message", post(lambdaPath("g"), "error:<b>&</b>"), 1, true},
		{"lambda function panic", post(lambdaPath("g"), "panic:oops"), 1, true},
		{"lambda unknown function", post(lambdaPath("nope"), "x"), 1, true},
		{"lambda as the AWS SDK sends it", awsSDKRequest("g", `echo:{"ok":true}`), 1, true},
		{"lambda payload over the limit", post(lambdaPath("g"), over), 1, false},
		{"lambda Event", post(lambdaPath("g"), "echo:e", "X-Amz-Invocation-Type: Event"), 1, false},
		{"lambda DryRun", post(lambdaPath("g"), "", "X-Amz-Invocation-Type: DryRun"), 1, false},
		{"lambda DryRun, unknown function", post(lambdaPath("nope"), "", "X-Amz-Invocation-Type: DryRun"), 1, false},
		{"lambda unknown type", post(lambdaPath("g"), "echo:x", "X-Amz-Invocation-Type: Bogus"), 1, false},
		{"lambda type in lower case", post(lambdaPath("g"), "echo:x", "X-Amz-Invocation-Type: requestresponse"), 1, false},
		{"lambda empty type", post(lambdaPath("g"), "echo:x", "X-Amz-Invocation-Type:"), 1, false},
		{"lambda two types", post(lambdaPath("g"), "echo:x", sync, sync), 1, false},
		{"lambda qualifier", post(lambdaPath("g")+"?Qualifier=1", "echo:q"), 1, false},
		{"lambda trailing slash", post(lambdaPath("g")+"/", "echo:q"), 1, false},
		{"lambda escaped name", post("/2015-03-31/functions/%67/invocations", "echo:q"), 1, false},
		{"lambda GET", "GET " + lambdaPath("g") + " HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"lambda expect continue", post(lambdaPath("g"), "echo:e", "Expect: 100-continue"), 1, false},
		{"lambda chunked body", "POST " + lambdaPath("g") + " HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\necho:c\r\n0\r\n\r\n", 1, false},
		{"lambda and /fn pipelined", post(lambdaPath("g"), "echo:1") + post("/fn/g", "echo:2") + post(lambdaPath("nope"), "") +
			post(lambdaPath("g"), "error:3") + post(lambdaPath("g"), "big:2100"), 5, true},
		{"lambda fast, then Event handed off, then net/http", post(lambdaPath("g"), "echo:1") +
			post(lambdaPath("g"), "echo:2", "X-Amz-Invocation-Type: Event") + post(lambdaPath("g"), "echo:3"), 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantWire := exchangeBytes(t, p.plain, tc.raw, tc.n)
			handed := p.handed.Load()
			got, gotWire := exchangeBytes(t, p.fast, tc.raw, tc.n)
			if gotFast := p.handed.Load() == handed; gotFast != tc.fast {
				t.Errorf("served by the fast path alone: got %v, want %v", gotFast, tc.fast)
			}
			for i := range want {
				if g, w := got[i].String(), want[i].String(); g != w {
					t.Errorf("response %d:\ngot  %s\nwant %s", i+1, g, w)
				}
			}
			if gotWire != wantWire {
				t.Errorf("bytes on the wire:\ngot  %q\nwant %q", gotWire, wantWire)
			}
		})
	}
}

// With a token set, a missing or wrong one is answered 401 (by net/http)
// and a right one is served (by the fast path), on both invocation routes;
// an API key allowed to invoke the function is served by the fast path, a
// key without that scope gets net/http's 403, a revoked or expired one its
// 401.
func TestFastPathToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	p := startPair(t, token, api.FastConfig{})
	keys := p.sys.Keys()
	key := func(ttl time.Duration, scope string) string {
		_, tok, err := keys.Create("", []string{scope}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	allowed, glob, other, deploy := key(0, "invoke:g"), key(0, "invoke:*"), key(0, "invoke:h"), key(0, "deploy")
	expired, revoked := key(time.Nanosecond, "invoke:g"), key(0, "invoke:g")
	if _, err := keys.Revoke(strings.Split(revoked, "_")[1]); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/fn/g", lambdaPath("g")} {
		for _, tc := range []struct {
			name, auth, status string
		}{
			{"none", "", "401 Unauthorized"},
			{"wrong", "Authorization: Bearer nope", "401 Unauthorized"},
			{"basic", "Authorization: Basic " + token, "401 Unauthorized"},
			{"AWS signature", "Authorization: AWS4-HMAC-SHA256 Credential=mote/20261126/us-east-1/lambda/aws4_request", "401 Unauthorized"},
			{"right", "Authorization: Bearer " + token, "200 OK"},
			{"right, padded", "Authorization: Bearer  " + token + " ", "200 OK"},
			{"empty, then right", "Authorization:\r\nAuthorization: Bearer " + token, "401 Unauthorized"},
			{"key", "Authorization: Bearer " + allowed, "200 OK"},
			{"key for every function", "Authorization: Bearer " + glob, "200 OK"},
			{"key for another function", "Authorization: Bearer " + other, "403 Forbidden"},
			{"deploy key", "Authorization: Bearer " + deploy, "403 Forbidden"},
			{"expired key", "Authorization: Bearer " + expired, "401 Unauthorized"},
			{"revoked key", "Authorization: Bearer " + revoked, "401 Unauthorized"},
			{"key, wrong secret", "Authorization: Bearer " + allowed[:len(allowed)-1], "401 Unauthorized"},
		} {
			t.Run(path+" "+tc.name, func(t *testing.T) {
				var raw string
				if tc.auth == "" {
					raw = post(path, "echo:t")
				} else {
					raw = post(path, "echo:t", tc.auth)
				}
				want, wantWire := exchangeBytes(t, p.plain, raw, 1)
				handed := p.handed.Load()
				got, gotWire := exchangeBytes(t, p.fast, raw, 1)
				if got[0].String() != want[0].String() || gotWire != wantWire || got[0].status != tc.status {
					t.Errorf("got %s\nwant %s (status %s)", got[0], want[0], tc.status)
				}
				if gotFast, wantFast := p.handed.Load() == handed, tc.status == "200 OK"; gotFast != wantFast {
					t.Errorf("served by the fast path: got %v, want %v", gotFast, wantFast)
				}
			})
		}
	}
}

// A Lambda invocation refused by a full pool gets the answer net/http
// writes, Lambda's throttling error (429 TooManyRequestsException, not a
// function error), and invocations served by the fast path, the refused
// one included, count in /metrics as net/http's do.
func TestFastPathLambdaOverloadAndMetrics(t *testing.T) {
	p := startPair(t, "", api.FastConfig{})
	if _, err := p.sys.Deploy(context.Background(), "c", registry.Config{MaxInstances: 1, MaxQueue: 1}, bytes.NewReader(guest)); err != nil {
		t.Fatal(err)
	}
	full := func() bool {
		for _, pool := range p.sys.Scheduler().Pools() {
			if st := pool.Stats(); st.Busy == 1 && st.Waiting == 1 {
				return true
			}
		}
		return false
	}
	run := func(addr string) (refused rawResponse, wire string, counts map[string]float64) {
		t.Helper()
		before := invocationCounts(t, p.plain)
		// One invocation runs, one waits: the pool is full.
		var sleepers []net.Conn
		for range 2 {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, post(lambdaPath("c"), "sleep:300"))
			sleepers = append(sleepers, conn)
		}
		for deadline := time.Now().Add(5 * time.Second); !full(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the sleeping invocations never filled the pool")
			}
		}
		got, wire := exchangeBytes(t, addr, post(lambdaPath("c"), "echo:x"), 1)
		for _, conn := range sleepers {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if r, err := readResponse(t, bufio.NewReader(conn)); err != nil || r.body != "slept" {
				t.Fatalf("a sleeping invocation: got %v %v", r, err)
			}
		}
		exchange(t, addr, post(lambdaPath("g"), "echo:ok")+post(lambdaPath("g"), "error:x")+post(lambdaPath("nope"), ""), 3)
		after := invocationCounts(t, p.plain)
		for k, v := range before {
			if after[k] -= v; after[k] == 0 {
				delete(after, k)
			}
		}
		return got[0], wire, after
	}
	want, wantWire, wantCounts := run(p.plain)
	handed := p.handed.Load()
	got, gotWire, gotCounts := run(p.fast)
	if n := p.handed.Load() - handed; n != 0 {
		t.Errorf("%d connections handed to net/http, want none", n)
	}
	if got.String() != want.String() || gotWire != wantWire || !strings.Contains(got.body, `"overloaded"`) {
		t.Errorf("refused:\ngot  %s\nwant %s (code overloaded)", got, want)
	}
	if !strings.HasPrefix(wantWire, "HTTP/1.1 429 ") || !strings.Contains(wantWire, "X-Amzn-Errortype: TooManyRequestsException") || strings.Contains(wantWire, "X-Amz-Function-Error") {
		t.Errorf("refused: got\n%s\nwant 429 with X-Amzn-Errortype TooManyRequestsException and no X-Amz-Function-Error", wantWire)
	}
	if len(wantCounts) != 4 || !maps.Equal(gotCounts, wantCounts) {
		t.Errorf("mote_invocations_total counted: got %v, want %v (4 series: c ok and overloaded, g ok and function_error)", gotCounts, wantCounts)
	}
}

// The official AWS SDK for Go v2 (examples/aws-sdk-invoke: only its
// endpoint changed) invokes through the fast path: its synchronous calls,
// successes and failures alike, never reach net/http; an Event call does.
func TestFastPathAWSSDK(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "awsinvoke")
	if out, err := exec.Command(gobuild.Go(), "build", "-C", "../../examples/aws-sdk-invoke", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the AWS SDK example: %v\n%s", err, out)
	}
	p := startPair(t, "", api.FastConfig{})
	for _, tc := range []struct {
		args   []string
		want   string
		failed bool // the command exits with an error
		fast   bool
	}{
		{[]string{"-function", "g", "-payload", `echo:{"ok":true}`}, "status 200 version 1 function-error \"\"\n{\"ok\":true}\n", false, true},
		{[]string{"-function", "g", "-payload", "error:nope"}, `status 200 version 1 function-error "Unhandled"`, false, true},
		{[]string{"-function", "nope"}, "ResourceNotFoundException", true, true},
		{[]string{"-function", "g", "-payload", "echo:x", "-async"}, "status 202", false, false},
	} {
		handed := p.handed.Load()
		out, err := exec.Command(bin, append([]string{"-endpoint", "http://" + p.fast}, tc.args...)...).CombinedOutput()
		if (err != nil) != tc.failed || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: got %v %q, want %q (failed %v)", tc.args, err, out, tc.want, tc.failed)
		}
		if gotFast := p.handed.Load() == handed; gotFast != tc.fast {
			t.Errorf("%v: served by the fast path: got %v, want %v", tc.args, gotFast, tc.fast)
		}
	}
}

// An aws-lambda-go function (a process function) called through the
// Lambda Invoke API gets the bytes net/http writes from the fast path, for
// its answer and for its failure.
func TestFastPathLambdaProcessFunction(t *testing.T) {
	pl := startWithProcess(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := gobuild.Native("../../examples/hello-go-lambda", filepath.Join(dir, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	if r := pl.deployDir("golambda", dir, `{"runtime":"process","handler":"./bootstrap","memory":"64MiB","min_warm":1}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	p := servePair(t, pl.sys, "", api.FastConfig{})
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"success", post(lambdaPath("golambda"), `{"name":"ada"}`), `"greeting":"hello ada"`},
		{"as the AWS SDK sends it", awsSDKRequest("golambda", `{"name":"sdk"}`), `"greeting":"hello sdk"`},
		{"its failure", post(lambdaPath("golambda"), `{}`, "X-Amz-Invocation-Type: RequestResponse"), `name is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantWire := exchangeBytes(t, p.plain, tc.raw, 1)
			handed := p.handed.Load()
			got, gotWire := exchangeBytes(t, p.fast, tc.raw, 1)
			if p.handed.Load() != handed {
				t.Errorf("handed to net/http, want served by the fast path")
			}
			if got[0].String() != want[0].String() || gotWire != wantWire || !strings.Contains(got[0].body, tc.want) {
				t.Errorf("got  %s\nwant %s (body with %s)\ngot  %q\nwant %q", got[0], want[0], tc.want, gotWire, wantWire)
			}
		})
	}
}

// invocationCounts scrapes the gateway's mote_invocations_total series.
func invocationCounts(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	counts := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		series, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(series, "mote_invocations_total{") {
			continue
		}
		var n float64
		if _, err := fmt.Sscan(val, &n); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		counts[series] = n
	}
	return counts
}

// The fast path serves requests itself: its connections close after its
// idle timeout, where net/http (no idle timeout here) keeps a handed-off
// one open.
func TestFastPathServesAndTimesOutIdle(t *testing.T) {
	p := startPair(t, "", api.FastConfig{IdleTimeout: 200 * time.Millisecond})
	for _, tc := range []struct {
		name   string
		raw    string
		closed bool
	}{
		{"served fast", post("/fn/g", "echo:a"), true},
		{"handed off", post("/fn/g?q", "echo:a"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, p.fast)
			io.WriteString(conn, tc.raw)
			br := bufio.NewReader(conn)
			if r, err := readResponse(t, br); err != nil || r.body != "a" {
				t.Fatalf("got %v %v, want a", r, err)
			}
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err := br.ReadByte()
			var ne net.Error
			gotClosed := errors.Is(err, io.EOF)
			if !gotClosed && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("read after idle: %v", err)
			}
			if gotClosed != tc.closed {
				t.Errorf("closed when idle: got %v, want %v", gotClosed, tc.closed)
			}
		})
	}
}

// A slow client is dropped after the read header timeout, with nothing
// answered (as net/http does).
func TestFastPathReadHeaderTimeout(t *testing.T) {
	p := startPair(t, "", api.FastConfig{ReadHeaderTimeout: 1500 * time.Millisecond})
	conn := dial(t, p.fast)
	io.WriteString(conn, "POST /fn/g HTTP/1.1\r\nHost: h\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("got %d bytes, %v; want EOF", n, err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("closed after %v, want about the 1.5s timeout", d)
	}
}

// Clients that go away mid-request or send junk never hang or crash the
// fast path, and it keeps serving.
func TestFastPathBadClients(t *testing.T) {
	p := startPair(t, "", api.FastConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	valid := post("/fn/g", "echo:valid")
	var inputs []string
	for i := 1; i < len(valid); i += 7 {
		inputs = append(inputs, valid[:i]) // cut short
	}
	for range 30 {
		b := []byte(valid)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		inputs = append(inputs, string(b))
		junk := make([]byte, rng.IntN(300))
		for i := range junk {
			junk[i] = byte(rng.IntN(256))
		}
		inputs = append(inputs, string(junk))
	}
	for i, in := range inputs {
		conn, err := net.Dial("tcp", p.fast)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, in)
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Errorf("input %d %q: %v", i, in, err)
		}
		conn.Close()
	}
	if r := exchange(t, p.fast, valid, 1)[0]; r.body != "valid" {
		t.Errorf("after bad clients: got %s", r)
	}
}

// A request whose lines end in a bare LF (which net/http accepts) is
// answered at once by net/http, not left waiting for a CRLF CRLF that
// never comes, and the connection stays open for the next request.
func TestFastPathBareLF(t *testing.T) {
	p := startPair(t, "", api.FastConfig{})
	conn := dial(t, p.fast)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for _, req := range []string{
		"POST /fn/g HTTP/1.1\nHost: localhost\nContent-Length: 7\n\necho:lf",
		"POST /fn/g HTTP/1.1\r\nHost: localhost\nContent-Length: 8\r\n\r\necho:mix",
	} {
		io.WriteString(conn, req)
		r, err := readResponse(t, br)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		if want := strings.TrimPrefix(req[strings.LastIndex(req, "\n")+1:], "echo:"); r.body != want {
			t.Errorf("%q: got %s, want body %q", req, r, want)
		}
	}
}

// Shutdown answers the in-flight request (with Connection: close), closes
// idle connections and stops accepting.
func TestFastPathShutdownDrains(t *testing.T) {
	p := startPair(t, "", api.FastConfig{})
	idle := dial(t, p.fast)
	io.WriteString(idle, post("/fn/g", "echo:i"))
	idleBr := bufio.NewReader(idle)
	if r, err := readResponse(t, idleBr); err != nil || r.body != "i" {
		t.Fatalf("idle connection's request: %v %v", r, err)
	}
	busy := dial(t, p.fast)
	io.WriteString(busy, post("/fn/g", "sleep:400"))
	time.Sleep(100 * time.Millisecond) // the invocation is running

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() {
		p.fsrv.Shutdown(ctx)
		shut <- p.fl.Shutdown(ctx)
	}()
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := readResponse(t, bufio.NewReader(busy))
	if err != nil || r.body != "slept" || !r.close {
		t.Errorf("in-flight across shutdown: got %v %v, want slept with Connection: close", r, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleBr.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection after shutdown: got %v, want EOF", err)
	}
	if c, err := net.Dial("tcp", p.fast); err == nil {
		c.Close()
		t.Errorf("dial after shutdown succeeded")
	}
}

// A Shutdown whose context ends first cancels the invocations in flight
// and closes their connections.
func TestFastPathHardShutdown(t *testing.T) {
	p := startPair(t, "", api.FastConfig{})
	busy := dial(t, p.fast)
	io.WriteString(busy, post("/fn/g", "sleep:20000"))
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.fl.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: got %v, want %v", err, context.DeadlineExceeded)
	}
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(busy)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("connection closed after %v, want soon after the deadline", d)
	}
	// Its invocation was cancelled, not left to sleep its 20 s.
	for deadline := time.Now().Add(4 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		busy := 0
		for _, pool := range p.sys.Scheduler().Pools() {
			busy += pool.Stats().Busy
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d invocations still running %v after Shutdown, want none", busy, time.Since(start))
		}
	}
}
