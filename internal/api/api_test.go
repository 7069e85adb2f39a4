package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
)

// platform is a real Mote (wazero, Pebble) behind an httptest server.
type platform struct {
	t     *testing.T
	dir   string
	sys   *system.System
	srv   *httptest.Server
	token string
}

func start(t *testing.T, dir, token string) *platform {
	t.Helper()
	sys := openSystem(t, system.Config{DataDir: dir, MaxPayload: 1 << 20})
	p := &platform{t: t, dir: dir, sys: sys, token: token}
	p.srv = newServer(api.New(api.Config{System: sys, Token: token}))
	t.Cleanup(p.stop)
	return p
}

// openSystem opens a system with cfg and the wasm runtime beside any
// runtimes cfg has; the caller shuts it down. The wasm compilation cache
// is shared by the package's tests: compiling a Go module takes about a
// second, loading it from the cache tens of ms.
func openSystem(tb testing.TB, cfg system.Config) *system.System {
	tb.Helper()
	ctx := context.Background()
	w, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(os.TempDir(), "mote-api-test-wasm-cache")})
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Runtimes = maps.Clone(cfg.Runtimes)
	if cfg.Runtimes == nil {
		cfg.Runtimes = map[runtime.Kind]runtime.Runtime{}
	}
	cfg.Runtimes[runtime.KindWasm] = w
	sys, err := system.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return sys
}

func (p *platform) stop() {
	if p.srv == nil {
		return
	}
	p.srv.Close()
	p.sys.Shutdown(context.Background())
	p.srv = nil
}

type response struct {
	status int
	header http.Header
	body   string
}

func (p *platform) do(method, path string, body io.Reader, header map[string]string) response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
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

func (p *platform) invoke(name, event string) response {
	p.t.Helper()
	return p.do("POST", "/fn/"+name, strings.NewReader(event), nil)
}

func (p *platform) deploy(name string, artifact []byte, cfg string) response {
	p.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("config", cfg)
	fw, _ := mw.CreateFormFile("artifact", name+".wasm")
	fw.Write(artifact)
	mw.Close()
	return p.do("PUT", "/v1/functions/"+name, &buf, map[string]string{"Content-Type": mw.FormDataContentType()})
}

func (p *platform) mustDeploy(name string, artifact []byte, cfg string) {
	p.t.Helper()
	if r := p.deploy(name, artifact, cfg); r.status != http.StatusCreated {
		p.t.Fatalf("deploy %s: %d %s", name, r.status, r.body)
	}
}

func codeOf(t *testing.T, r response) errs.Code {
	t.Helper()
	var b struct {
		Code errs.Code `json:"code"`
	}
	json.Unmarshal([]byte(r.body), &b)
	return b.Code
}

var (
	buildOnce               sync.Once
	wasiHello, reactorHello []byte
	guest                   []byte
)

func modules(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		wasiHello = testutil.BuildWasm(t, "../../examples/hello-wasi", false)
		reactorHello = testutil.BuildWasm(t, "../../examples/hello-reactor", true)
		guest = testutil.BuildWasm(t, "../runtime/wasm/testdata/guest", true)
	})
	if guest == nil {
		t.Fatal("building test modules failed earlier")
	}
}

func TestDeployInvokeBothConventions(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("wasi", wasiHello, `{"memory":"64MiB"}`)
	p.mustDeploy("hello", reactorHello, "")
	for _, tc := range []struct{ fn, event, want string }{
		{"wasi", "Berkeley", "hello, Berkeley"},
		{"hello", "Berkeley", "hello, Berkeley"},
		{"hello", "", "hello, world"},
	} {
		r := p.invoke(tc.fn, tc.event)
		if r.status != 200 || strings.TrimSpace(r.body) != tc.want {
			t.Errorf("%s(%q): got %d %q, want 200 %q", tc.fn, tc.event, r.status, r.body, tc.want)
		}
		for _, h := range []string{api.HeaderInvocationID, api.HeaderCold, api.HeaderCPU, api.HeaderBilled} {
			if r.header.Get(h) == "" {
				t.Errorf("%s: response lacks %s", tc.fn, h)
			}
		}
		// A reactor's pool was warmed by the deploy; a command starts a
		// new instance for every invocation, its own kind.
		want := map[string]string{"wasi": "per-call", "hello": "false"}[tc.fn]
		if got := r.header.Get(api.HeaderCold); got != want {
			t.Errorf("%s: %s = %q, want %q", tc.fn, api.HeaderCold, got, want)
		}
	}
}

func TestRestartKeepsFunctionsAndRollback(t *testing.T) {
	modules(t)
	dir := t.TempDir()
	p := start(t, dir, "")
	p.mustDeploy("f", reactorHello, "")
	p.mustDeploy("f", guest, `{"env":{"A":"1"}}`)
	if r := p.invoke("f", "echo:v2"); r.body != "v2" || r.header.Get(api.HeaderVersion) != "2" {
		t.Fatalf("v2: got %q version %s", r.body, r.header.Get(api.HeaderVersion))
	}
	p.stop()

	p = start(t, dir, "")
	if r := p.invoke("f", "echo:again"); r.status != 200 || r.body != "again" {
		t.Fatalf("after restart: got %d %q, want v2 serving", r.status, r.body)
	}
	if r := p.do("POST", "/v1/functions/f/rollback", strings.NewReader(`{}`), nil); r.status != 200 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	if r := p.invoke("f", "x"); r.body != "hello, x" || r.header.Get(api.HeaderVersion) != "1" {
		t.Errorf("after rollback: got %q version %s, want v1's answer", r.body, r.header.Get(api.HeaderVersion))
	}
	if r := p.do("POST", "/v1/functions/f/rollback", strings.NewReader(`{"version":2}`), nil); r.status != 200 {
		t.Fatalf("roll forward: %d %s", r.status, r.body)
	}
	if r := p.invoke("f", "echo:fwd"); r.body != "fwd" {
		t.Errorf("after roll forward: got %q", r.body)
	}
	var f system.Function
	r := p.do("GET", "/v1/functions/f", nil, nil)
	json.Unmarshal([]byte(r.body), &f)
	if f.Current != 2 || len(f.Versions) != 2 || f.Versions[1].Config.Env["A"] != "1" {
		t.Errorf("describe: got %+v", f)
	}
	if r := p.do("DELETE", "/v1/functions/f", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("rm: %d %s", r.status, r.body)
	}
	if r := p.invoke("f", "x"); r.status != 404 || codeOf(t, r) != errs.NotFound {
		t.Errorf("after rm: got %d %s, want 404 not_found", r.status, r.body)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "artifacts")); len(left) != 0 {
		t.Errorf("artifacts left after rm: %d", len(left))
	}
}

// tinyModule returns a hand-assembled wasm module that imports env.foo,
// which Mote does not provide.
func importsUnknown() []byte {
	return []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
		0x02, 0x0b, 0x01, 0x03, 'e', 'n', 'v', 0x03, 'f', 'o', 'o', 0x00, 0x00, // import env.foo
	}
}

func TestBadDeploysStoreNothing(t *testing.T) {
	modules(t)
	dir := t.TempDir()
	p := start(t, dir, "")
	for _, tc := range []struct {
		name, fn, cfg string
		artifact      []byte
		want          errs.Code
	}{
		{"not wasm", "a", "", []byte("not a module"), errs.BadRequest},
		{"unknown import", "a", "", importsUnknown(), errs.BadRequest},
		{"empty", "a", "", nil, errs.BadRequest},
		{"bad name", "Bad.Name", "", wasiHello, errs.BadRequest},
		{"bad config", "a", `{"memory":"lots"}`, wasiHello, errs.BadRequest},
		{"unknown field", "a", `{"memroy":"1MiB"}`, wasiHello, errs.BadRequest},
		{"bad runtime", "a", `{"runtime":"jvm"}`, wasiHello, errs.BadRequest},
	} {
		r := p.deploy(tc.fn, tc.artifact, tc.cfg)
		if r.status != 400 || codeOf(t, r) != tc.want {
			t.Errorf("%s: got %d %s, want 400 %s", tc.name, r.status, r.body, tc.want)
		}
	}
	if r := p.do("GET", "/v1/functions", nil, nil); !strings.Contains(r.body, `"functions":[]`) {
		t.Errorf("functions after bad deploys: %s", r.body)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "artifacts")); len(left) != 0 {
		t.Errorf("artifacts stored by failed deploys: %d", len(left))
	}
}

func TestFunctionFailuresAreContained(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("g", guest, `{"timeout":"300ms","memory":"32MiB","max_instances":4}`)
	for _, tc := range []struct {
		event  string
		status int
		code   errs.Code
	}{
		{"error:nope", 502, errs.FunctionError},
		{"panic:boom", 502, errs.FunctionError},
		{"bomb", 502, errs.OutOfMemory},
		{"loop", 504, errs.Timeout},
	} {
		r := p.invoke("g", tc.event)
		if r.status != tc.status || (tc.code != "" && codeOf(t, r) != tc.code) {
			t.Errorf("%s: got %d %s, want %d %s", tc.event, r.status, r.body, tc.status, tc.code)
		}
		id := r.header.Get(api.HeaderInvocationID)
		if id == "" {
			t.Errorf("%s: failed invocation has no id header", tc.event)
		}
		// The failure is in the invocation's log: its report says what
		// ended it (an OOM kill, a timeout, a panic).
		lr := p.do("GET", "/v1/functions/g/logs?invocation="+id, nil, nil)
		if !strings.Contains(lr.body, `"stream":"report"`) || !strings.Contains(lr.body, `"error_code":"`+string(tc.code)+`"`) {
			t.Errorf("%s: the invocation's log: %d %s, want a report with error_code %s", tc.event, lr.status, lr.body, tc.code)
		}
		if ok := p.invoke("g", "echo:alive"); ok.body != "alive" {
			t.Fatalf("after %s: got %d %q, platform not serving", tc.event, ok.status, ok.body)
		}
	}
	if r := p.invoke("g", "panic:boom"); !strings.Contains(r.body, "boom") {
		t.Errorf("trap message not passed on: %s", r.body)
	}
}

func TestRunawayLoopDoesNotBlockOthers(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("g", guest, `{"timeout":"1s","max_instances":2}`)
	p.mustDeploy("hello", reactorHello, "")
	done := make(chan response, 1)
	go func() { done <- p.invoke("g", "loop") }()
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	for i := 0; i < 20; i++ {
		if r := p.invoke("hello", "x"); r.status != 200 {
			t.Fatalf("hello while a loop runs: %d %s", r.status, r.body)
		}
	}
	if el := time.Since(t0); el > 1500*time.Millisecond {
		t.Errorf("20 invocations took %s while a loop ran: blocked?", el)
	}
	if r := <-done; r.status != 504 {
		t.Errorf("loop: got %d %s, want 504", r.status, r.body)
	}
}

func TestLimitsAndUnknowns(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("hello", reactorHello, "")
	for _, tc := range []struct {
		name, method, path string
		body               string
		status             int
		code               errs.Code
	}{
		{"unknown function", "POST", "/fn/nope", "", 404, errs.NotFound},
		{"too large", "POST", "/fn/hello", strings.Repeat("x", 1<<20+1), 413, errs.PayloadTooLarge},
		{"unknown route", "GET", "/v2/whatever", "", 404, errs.NotFound},
		{"rollback unknown", "POST", "/v1/functions/nope/rollback", "{}", 404, errs.NotFound},
		{"rollback before first", "POST", "/v1/functions/hello/rollback", "{}", 409, errs.Conflict},
		{"rollback bad body", "POST", "/v1/functions/hello/rollback", "{", 400, errs.BadRequest},
	} {
		r := p.do(tc.method, tc.path, strings.NewReader(tc.body), nil)
		if r.status != tc.status || codeOf(t, r) != tc.code {
			t.Errorf("%s: got %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := p.invoke("hello", strings.Repeat("x", 1<<20)); r.status != 200 {
		t.Errorf("payload at the limit: got %d", r.status)
	}
}

func TestOverloadGets429(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("g", guest, `{"max_instances":1,"max_queue":1,"timeout":"5s"}`)
	var wg sync.WaitGroup
	statuses := make(chan int, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- p.invoke("g", "spin:300").status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] < 2 || count[429] < 1 || count[200]+count[429] != 6 {
		t.Errorf("statuses: got %v, want 1 running + 1 queued served and the rest 429", count)
	}
}

func TestTokenRequiredWhenSet(t *testing.T) {
	modules(t)
	const token = "0123456789abcdef-secret"
	p := start(t, t.TempDir(), token)
	p.mustDeploy("hello", reactorHello, "")
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"none", "", 401},
		{"wrong", "Bearer nope", 401},
		{"not bearer", "Basic " + token, 401},
		{"right", "Bearer " + token, 200},
	} {
		req, _ := http.NewRequest("POST", p.srv.URL+"/fn/hello", strings.NewReader("x"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: got %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
	resp, err := http.Get(p.srv.URL + "/v1/functions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("management API without token: got %d, want 401", resp.StatusCode)
	}
	resp, _ = http.Get(p.srv.URL + "/healthz")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: got %d, want 200", resp.StatusCode)
	}
}

func TestLambdaInvokeRoute(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("g", guest, "")
	path := "/2015-03-31/functions/%s/invocations"
	r := p.do("POST", fmt.Sprintf(path, "g"), strings.NewReader("echo:{}"), nil)
	if r.status != 200 || r.body != "{}" || r.header.Get("X-Amz-Executed-Version") != "1" {
		t.Errorf("sync: got %d %q %v", r.status, r.body, r.header)
	}
	r = p.do("POST", fmt.Sprintf(path, "g"), strings.NewReader("error:bad thing"), nil)
	if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(r.body, "bad thing") {
		t.Errorf("function error: got %d %q %v", r.status, r.body, r.header)
	}
	r = p.do("POST", fmt.Sprintf(path, "g"), nil, map[string]string{"X-Amz-Invocation-Type": "DryRun"})
	if r.status != 204 {
		t.Errorf("dry run: got %d", r.status)
	}
	r = p.do("POST", fmt.Sprintf(path, "nope"), nil, nil)
	if r.status != 404 || r.header.Get("X-Amzn-Errortype") != "ResourceNotFoundException" {
		t.Errorf("unknown: got %d %v", r.status, r.header)
	}
}

func TestLogsAndMetrics(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("g", guest, "")
	r := p.invoke("g", "log:marker-42")
	id := r.header.Get(api.HeaderInvocationID)
	logs := p.do("GET", "/v1/functions/g/logs?invocation="+id, nil, nil)
	if !strings.Contains(logs.body, "marker-42") || !strings.Contains(logs.body, id) {
		t.Errorf("logs for %s: %s", id, logs.body)
	}
	m := p.do("GET", "/metrics", nil, nil)
	for _, want := range []string{`mote_invocations_total{code="ok",function="g",kind="root"} 1`, `mote_pool_instances{state="idle",version="g@1"}`} {
		if !strings.Contains(m.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }
