package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/testutil"
)

var (
	httpOnce               sync.Once
	httpReactor, wagiHello []byte
)

func httpModules(t *testing.T) {
	t.Helper()
	modules(t)
	httpOnce.Do(func() {
		httpReactor = testutil.BuildWasm(t, "../../examples/hello-http", true)
		wagiHello = testutil.BuildWasm(t, "../../examples/hello-wagi", false)
	})
	if httpReactor == nil || wagiHello == nil {
		t.Fatal("building HTTP test modules failed earlier")
	}
}

// doRaw is do with a Host header and any method, without the token.
func (p *platform) doHost(method, host, path string, body io.Reader, header map[string]string) response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestHTTPFunctionGoSDK(t *testing.T) {
	httpModules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("web", httpReactor, `{"http":true}`)

	// The whole request reaches the handler through /fn/NAME/…; what it
	// sets (status, headers, two cookies, body) is the response.
	r := p.do("DELETE", "/fn/web/users/42?sort=asc", strings.NewReader("payload"), map[string]string{"User-Agent": "tester/1"})
	var got map[string]string
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
		t.Fatalf("DELETE /fn/web/users/42: got %d %q (%v)", r.status, r.body, err)
	}
	want := map[string]string{"method": "DELETE", "id": "42", "sort": "asc", "agent": "tester/1", "body": "payload", "client": "127.0.0.1", "prefix": "/fn/web"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if c := r.header.Values("Set-Cookie"); len(c) != 2 || c[0] != "seen=42" || c[1] != "theme=dark" {
		t.Errorf("Set-Cookie: got %q, want seen=42 and theme=dark", c)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q", ct)
	}

	// A status the handler chose; a binary body, byte for byte.
	if r := p.do("GET", "/fn/web/nothing-here", nil, nil); r.status != 404 {
		t.Errorf("unknown path: got %d %q, want the mux's 404", r.status, r.body)
	}
	r = p.do("GET", "/fn/web/bytes/300", nil, nil)
	if len(r.body) != 300 || r.body[255] != '\xff' || r.body[256] != 0 || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("binary body: got %d bytes, type %q", len(r.body), r.header.Get("Content-Type"))
	}
	bin := []byte{0, 0xff, 0xfe, 'a', 0x80}
	r = p.do("POST", "/fn/web/echo", bytes.NewReader(bin), map[string]string{"Content-Type": "application/x-bin"})
	if r.body != string(bin) {
		t.Errorf("binary echo: got %q, want %q", r.body, bin)
	}
	// HEAD: the handler runs, the body is not sent.
	r = p.do("HEAD", "/fn/web/ping", nil, nil)
	if r.status != 200 || r.body != "" {
		t.Errorf("HEAD: got %d %q", r.status, r.body)
	}
	// A body over the limit is 413, before the function runs.
	r = p.do("POST", "/fn/web/echo", bytes.NewReader(make([]byte, 1<<20+1)), nil)
	if r.status != 413 {
		t.Errorf("oversized body: got %d, want 413", r.status)
	}
	// Chunked, with Expect: 100-continue, on one kept-alive connection.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprint(conn, "POST /fn/web/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nContent-Type: text/plain\r\n\r\n")
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("Expect: 100-continue: got %q", line)
	}
	br.ReadString('\n')
	fmt.Fprint(conn, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello world" {
		t.Errorf("chunked: got %q", b)
	}
	fmt.Fprint(conn, "GET /fn/web/ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("second request on the kept-alive connection: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	if string(b) != "pong" {
		t.Errorf("keep-alive: got %q", b)
	}

	// A plain function beside it keeps /fn's behaviour, fast path and all.
	p.mustDeploy("hello", reactorHello, "")
	if r := p.invoke("hello", "x"); r.body != "hello, x" {
		t.Errorf("plain function: got %q", r.body)
	}
}

func TestHTTPFunctionWAGI(t *testing.T) {
	httpModules(t)
	p := start(t, t.TempDir(), "")
	if r := p.deploy("bad", reactorHello, `{"http":"wagi"}`); r.status != 400 {
		t.Errorf("wagi on a reactor: got %d %s, want 400", r.status, r.body)
	}
	p.mustDeploy("cgi", wagiHello, `{"http":"wagi"}`)
	r := p.do("PUT", "/fn/cgi/things?x=1", strings.NewReader("data"), map[string]string{"User-Agent": "ua/2"})
	if r.status != 200 || !strings.Contains(r.body, "PUT /things?x=1 from 127.0.0.1") || !strings.Contains(r.body, "agent=ua/2 body=data") {
		t.Errorf("wagi: got %d %q", r.status, r.body)
	}
	if c := r.header.Values("Set-Cookie"); len(c) != 2 {
		t.Errorf("wagi cookies: got %q", c)
	}
	if r := p.do("GET", "/fn/cgi/teapot", nil, nil); r.status != 418 || r.body != "short and stout\n" {
		t.Errorf("wagi status: got %d %q", r.status, r.body)
	}
	// A command that writes no CGI header is the function's error.
	p.mustDeploy("nohdr", wasiHello, `{"http":"wagi"}`)
	if r := p.do("GET", "/fn/nohdr/", nil, nil); r.status != 502 || codeOf(t, r) != "function_error" || !strings.Contains(r.body, "CGI") {
		t.Errorf("wagi without header: got %d %q, want 502 function_error", r.status, r.body)
	}
}

// TestHTTPFunctionLambdaURL runs an unchanged aws-lambda-go handler taking
// events.LambdaFunctionURLRequest as an HTTP function.
func TestHTTPFunctionLambdaURL(t *testing.T) {
	p := startWithProcess(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := gobuild.Native("../../examples/hello-http-lambda", filepath.Join(dir, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	if r := p.deployDir("urls", dir, `{"runtime":"process","handler":"./bootstrap","memory":"64MiB","http":true}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	r := p.do("PATCH", "/fn/urls/a/b?k=v&k=w", bytes.NewReader([]byte{0xff, 0}), map[string]string{"Cookie": "c1=x; c2=y", "User-Agent": "ua/3"})
	if r.status != 201 || r.header.Get("X-Handler") != "aws-lambda-go" {
		t.Fatalf("got %d %q %v", r.status, r.body, r.header)
	}
	var got struct {
		Method, Path, Body, Source, Agent string
		Query                             map[string]string
		Cookies                           []string
		Base64                            bool
	}
	json.Unmarshal([]byte(r.body), &got)
	if got.Method != "PATCH" || got.Path != "/a/b" || got.Query["k"] != "v,w" || len(got.Cookies) != 2 || !got.Base64 || got.Body != "/wA=" || got.Source != "127.0.0.1" || got.Agent != "ua/3" {
		t.Errorf("event as the handler saw it: %+v", got)
	}
	if c := r.header.Values("Set-Cookie"); len(c) != 2 || c[1] != "b=2; HttpOnly" {
		t.Errorf("cookies: got %q", c)
	}
	if r := p.do("GET", "/fn/urls/binary", nil, nil); r.body != "\x00\x01\x02\xff" {
		t.Errorf("base64 body: got %q", r.body)
	}
	if r := p.do("GET", "/fn/urls/missing", nil, nil); r.status != 404 || r.body != "no such thing" {
		t.Errorf("404 from the function: got %d %q", r.status, r.body)
	}
	// CR/LF in a header: 502, the header never reaches the client.
	r = p.do("GET", "/fn/urls/bad-header", nil, nil)
	if r.status != 502 || codeOf(t, r) != "function_error" || r.header.Get("Set-Cookie") != "" || r.header.Get("X-Evil") != "" {
		t.Errorf("CR/LF header: got %d %q %v", r.status, r.body, r.header)
	}
}

// TestHTTPFunctionPythonNode runs the WSGI and fetch examples, unchanged,
// as process functions with the SDKs Mote provides.
func TestHTTPFunctionPythonNode(t *testing.T) {
	p := startWithProcess(t)
	for _, ex := range []struct{ name, interp, handler string }{
		{"hello-wsgi", "/usr/bin/python3", "/usr/bin/python3 -m mote handler.handler"},
		{"hello-fetch", "/usr/bin/node", "/usr/bin/node node_modules/mote/bootstrap.mjs worker.fetch"},
	} {
		t.Run(ex.name, func(t *testing.T) {
			if _, err := os.Stat(ex.interp); err != nil {
				t.Skipf("no %s", ex.interp)
			}
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			src, _ := filepath.Glob("../../examples/" + ex.name + "/*")
			for _, f := range src {
				copyTree(t, f, filepath.Join(dir, filepath.Base(f)))
			}
			cfg := fmt.Sprintf(`{"runtime":"process","handler":%q,"memory":"128MiB","http":true}`, ex.handler)
			if r := p.deployDir(ex.name, dir, cfg); r.status != 201 {
				t.Fatalf("deploy: %d %s", r.status, r.body)
			}
			r := p.do("POST", "/fn/"+ex.name+"/hello?name=ada", strings.NewReader("posted"), map[string]string{"User-Agent": "ua/4"})
			var got map[string]string
			json.Unmarshal([]byte(r.body), &got)
			if r.status != 200 || got["method"] != "POST" || got["path"] != "/hello" || got["name"] != "ada" || got["body"] != "posted" || got["agent"] != "ua/4" {
				t.Errorf("got %d %q", r.status, r.body)
			}
			if c := r.header.Values("Set-Cookie"); len(c) != 2 {
				t.Errorf("cookies: %q", c)
			}
			if r := p.do("GET", "/fn/"+ex.name+"/missing", nil, nil); r.status != 404 || r.body != "nothing here" {
				t.Errorf("404: got %d %q; logs:\n%s", r.status, r.body, p.do("GET", "/v1/functions/"+ex.name+"/logs", nil, nil).body)
			}
			checkStreams(t, p.srv.URL+"/fn/"+ex.name+"/events", "data: 1\n", "\ndata: 2\n\n")
		})
	}
}

// TestHTTPFunctionStreams runs an aws-lambda-go handler that streams its
// response: its first event reaches the client while the function is
// still at work (a second and a half before its last), not at the end.
func TestHTTPFunctionStreams(t *testing.T) {
	p := startWithProcess(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := gobuild.Native("testdata/streamlambda", filepath.Join(dir, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	if r := p.deployDir("sse", dir, `{"runtime":"process","handler":"./bootstrap","memory":"64MiB","http":true}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	resp, err := http.Get(p.srv.URL + "/fn/sse/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: got %q %v", line, err)
	}
	first := time.Now()
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Errorf("rest of the stream: got %q", rest)
	}
	if gap := time.Since(first); gap < time.Second {
		t.Errorf("the first event came %v before the end, want about 1.5 s: it was not streamed", gap)
	}
	// Through the Lambda Invoke API, which asks for no stream, the same
	// response is buffered whole: the prelude, eight NULs, the body.
	r := p.do("POST", "/2015-03-31/functions/sse/invocations", strings.NewReader(`{"rawPath":"/"}`), nil)
	if r.status != 200 || !strings.HasSuffix(r.body, "\x00data: first\n\ndata: second\n\n") {
		t.Errorf("buffered: got %d %q", r.status, r.body)
	}
}

// TestHTTPFunctionGoSDKStreams runs the Go SDK's HTTP example natively: a
// handler's Flush sends what it wrote so far to the client at once.
func TestHTTPFunctionGoSDKStreams(t *testing.T) {
	p := startWithProcess(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := gobuild.Native("../../examples/hello-http", filepath.Join(dir, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	if r := p.deployDir("webn", dir, `{"runtime":"process","handler":"./bootstrap","memory":"64MiB","http":true}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	for range 2 { // and the instance serves on after a stream
		resp, err := http.Get(p.srv.URL + "/fn/webn/events")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: 1\n" || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("first event: got %q %v %v", line, err, resp.Header)
		}
		first := time.Now()
		rest, _ := io.ReadAll(br)
		resp.Body.Close()
		if string(rest) != "\ndata: 2\n\n" {
			t.Errorf("rest: got %q", rest)
		}
		if gap := time.Since(first); gap < time.Second {
			t.Errorf("the first event came %v before the end, want about 1.5 s: it was not streamed", gap)
		}
	}
	if r := p.do("GET", "/fn/webn/ping", nil, nil); r.status != 200 || r.body != "pong" {
		t.Errorf("after streams: got %d %q", r.status, r.body)
	}
}

// checkStreams GETs url and checks that its first line arrives about 1.5 s
// before the rest: the response was streamed, not sent whole at the end.
func checkStreams(t *testing.T, url, firstLine, rest string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != firstLine || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("first event: got %q %v %v", line, err, resp.Header)
	}
	first := time.Now()
	got, _ := io.ReadAll(br)
	if string(got) != rest {
		t.Errorf("rest of the stream: got %q, want %q", got, rest)
	}
	if gap := time.Since(first); gap < time.Second {
		t.Errorf("the first event came %v before the end, want about 1.5 s: it was not streamed", gap)
	}
}
