package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/process"
	"github.com/mote-run/mote/internal/sandbox"
	"github.com/mote-run/mote/internal/system"
)

func TestMain(m *testing.M) {
	sandbox.MaybeRunInit() // process instances start as this test binary re-executed
	code := m.Run()
	os.RemoveAll(functionsDir)
	os.Exit(code)
}

// functionsDir holds the process functions and the SDKs of this test
// binary's platforms. It is the binary's own: a directory shared by every
// test run on the machine had the SDK of one worktree's tests replaced
// by another's while they ran (a function then found an SDK without what
// it imports). Not t.TempDir: its ancestors must be readable by the
// sandbox's uids.
var functionsDir = filepath.Join(os.TempDir(), fmt.Sprintf("mote-api-test-functions-%d", os.Getpid()))

// startWithProcess is start with the process runtime too.
func startWithProcess(t *testing.T) *platform {
	t.Helper()
	return startWithProcessConfig(t, process.Config{})
}

// startWithProcessConfig is startWithProcess with the process runtime's
// config (SDKRoot is set here).
func startWithProcessConfig(t *testing.T, pc process.Config) *platform {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("process functions are sandboxed, which needs root")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	fdir := functionsDir
	os.MkdirAll(fdir, 0o755)
	pc.SDKRoot = fdir
	pr, err := process.New(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	sys := openSystem(t, system.Config{DataDir: dir, FunctionsDir: fdir, MaxPayload: 1 << 20,
		Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindProcess: pr}})
	p := &platform{t: t, dir: dir, sys: sys}
	p.srv = newServer(api.New(api.Config{System: sys}))
	t.Cleanup(p.stop)
	return p
}

func (p *platform) deployDir(name, dir, cfg string) response {
	p.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("config", cfg)
	fw, _ := mw.CreateFormFile("artifact", name+".tar.gz")
	if err := registry.Pack(fw, dir); err != nil {
		p.t.Fatal(err)
	}
	mw.Close()
	return p.do("PUT", "/v1/functions/"+name, &buf, map[string]string{"Content-Type": mw.FormDataContentType()})
}

func TestProcessFunctionsOverTheGateway(t *testing.T) {
	p := startWithProcess(t)

	// An aws-lambda-go function, unchanged, built natively.
	lambdaDir := t.TempDir()
	os.Chmod(lambdaDir, 0o755)
	if err := gobuild.Native("../../examples/hello-go-lambda", filepath.Join(lambdaDir, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	if r := p.deployDir("golambda", lambdaDir, `{"runtime":"process","handler":"./bootstrap","memory":"64MiB"}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	r := p.do("POST", "/2015-03-31/functions/golambda/invocations", strings.NewReader(`{"name":"ada"}`), nil)
	if r.status != 200 || !strings.Contains(r.body, "ada") || r.header.Get("X-Amz-Function-Error") != "" {
		t.Errorf("lambda invoke: got %d %q", r.status, r.body)
	}
	r = p.invoke("golambda", `{"name":"bob"}`)
	if r.status != 200 || !strings.Contains(r.body, "bob") || r.header.Get(api.HeaderCold) != "false" || r.header.Get(api.HeaderCPU) == "" {
		t.Errorf("fn invoke: got %d %q %v", r.status, r.body, r.header)
	}

	// A Python function alone in its directory: Mote provides the SDK.
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Log("no /usr/bin/python3: skipping the Python part")
		return
	}
	pyDir := t.TempDir()
	os.Chmod(pyDir, 0o755)
	copyTree(t, "../../examples/hello-python/handler.py", filepath.Join(pyDir, "handler.py"))
	if r := p.deployDir("py", pyDir, `{"runtime":"process","handler":"/usr/bin/python3 -m mote handler.handler"}`); r.status != 201 {
		t.Fatalf("deploy python: %d %s", r.status, r.body)
	}
	r = p.invoke("py", `{"name":"ada"}`)
	if r.status != 200 || !strings.Contains(r.body, "hello ada") {
		t.Errorf("python: got %d %q", r.status, r.body)
	}
	r = p.do("POST", "/2015-03-31/functions/py/invocations", strings.NewReader(`{}`), nil)
	if r.status != 200 || r.header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(r.body, "name is required") {
		t.Errorf("python error via Lambda API: got %d %q %v", r.status, r.body, r.header)
	}
	// The function's own error payload, as Lambda returns it (failed
	// before flow kept it: Mote's {"errorType": "function_error"}).
	var le struct {
		Message string   `json:"errorMessage"`
		Type    string   `json:"errorType"`
		Trace   []string `json:"stackTrace"`
	}
	if err := json.Unmarshal([]byte(r.body), &le); err != nil || le.Type != "ValueError" || le.Message != "name is required" || len(le.Trace) == 0 {
		t.Errorf("python error payload: got %q (%v), want errorType ValueError and a stackTrace", r.body, err)
	}
	// Its report in the logs carries the traceback, attributed to the
	// invocation.
	var report *logs.Line
	for _, l := range tailLines(p.sys.Logs, "py") {
		if l.Stream == logs.StreamReport && l.Report.ErrorCode != "" {
			report = &l
		}
	}
	if report == nil || report.Invocation == "" || report.Report.ErrorType != "ValueError" || len(report.Report.StackTrace) == 0 || report.Report.MaxMemMB <= 0 {
		t.Errorf("python failure's report: got %+v", report)
	}
	logs := p.do("GET", "/v1/functions/py/logs", nil, nil)
	if !strings.Contains(logs.body, "greeting ada") {
		t.Errorf("python's print not in the logs: %s", logs.body)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", "-r", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp %s: %v %s", src, err, out)
	}
}

// TestProcessFunctionHostAPI runs the system tests' Go guest natively as a
// process function: storage under its permissions, calls to a wasm
// function, and CPU-only billing from the cgroup.
func TestProcessFunctionHostAPI(t *testing.T) {
	modules(t)
	p := startWithProcess(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := gobuild.Native("../system/testdata/flowguest", filepath.Join(dir, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	if r := p.do("PUT", "/v1/secrets/PG_TOKEN", strings.NewReader("tok-1"), nil); r.status != 200 {
		t.Fatalf("setting a secret: %d %s", r.status, r.body)
	}
	if r := p.deployDir("pg", dir, `{"runtime":"process","handler":"./bootstrap","secrets":["PG_TOKEN"],"permissions":{"read":["b"],"write":["b"],"invoke":["echo"]}}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	p.mustDeploy("echo", guest, "")
	for _, tc := range []struct {
		event, want string
		status      int
	}{
		{"kvput:b:k:v", "ok", 200},
		{"kvget:b:k", "v", 200},
		{"kvput:secret:k:v", "forbidden", 502},
		{"kvget:secret:k", "forbidden", 502},
		{"call:echo:echo:from a process", "from a process", 200},
		// Invoke grants hold for a process function's host calls too:
		// pg may call echo, not itself.
		{"call:pg:echo:x", `forbidden: function \"pg\" may not invoke \"pg\"`, 502},
		{"asyncto:pg:echo:x", `forbidden: function \"pg\" may not invoke \"pg\"`, 502},
		{"mapto:pg:2", `forbidden: function \"pg\" may not invoke \"pg\"`, 502},
		{"mapto:echo:2", "0,1", 200},
		// Its granted secret is in its environment, and a new value
		// reaches the warm instance without a redeploy.
		{"env:PG_TOKEN", "tok-1", 200},
		{"rotate", "", 0},
		{"env:PG_TOKEN", "tok-2", 200},
	} {
		if tc.event == "rotate" {
			if r := p.do("PUT", "/v1/secrets/PG_TOKEN", strings.NewReader("tok-2"), nil); r.status != 200 || !strings.Contains(r.body, "pg@1") {
				t.Errorf("rotating the secret: %d %s", r.status, r.body)
			}
			continue
		}
		r := p.invoke("pg", tc.event)
		if r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: got %d %q, want %d containing %q", tc.event, r.status, r.body, tc.status, tc.want)
		}
	}
	// Calibrate about 20 ms of work (CPU for fixed work is stable on a
	// loaded machine; a spin until a wall-clock time is not), then check
	// that 200 ms of sleep after it is not billed.
	rounds := 1_000_000
	for i := 0; i < 6; i++ {
		r := p.invoke("pg", fmt.Sprint("work:", rounds))
		cpu, _ := strconv.Atoi(r.header.Get(api.HeaderCPU))
		if r.status != 200 {
			t.Fatalf("work: %d %s", r.status, r.body)
		}
		if cpu > 5000 {
			rounds = int(float64(rounds) * 20000 / float64(cpu))
			break
		}
		rounds *= 8
	}
	// The same work with and without 200 ms of sleep after it, alternately
	// (the CPU fixed work takes varies with contention): the sleep must
	// add nothing to the bill.
	billed := func(event string) int {
		t0 := time.Now()
		r := p.invoke("pg", event)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", event, r.status, r.body)
		}
		if strings.HasPrefix(event, "worksleep") && time.Since(t0) < 200*time.Millisecond {
			t.Fatalf("%s returned in %s", event, time.Since(t0))
		}
		n, _ := strconv.Atoi(r.header.Get(api.HeaderBilled))
		return n
	}
	var with, without []int
	for i := 0; i < 3; i++ {
		with = append(with, billed(fmt.Sprintf("worksleep:%d:200", rounds)))
		without = append(without, billed(fmt.Sprint("work:", rounds)))
	}
	slices.Sort(with)
	slices.Sort(without)
	if b, ref := with[1], without[1]; b-ref < -3-ref/4 || b-ref > 3+ref/4 || b > 60 {
		t.Errorf("process: ~20 ms of work + 200 ms asleep billed %d ms (%v), the work alone %d ms (%v): the sleep must not be billed", b, with, ref, without)
	}
}

// TestFlowsFromPythonAndNode: process functions in Python and Node call a
// wasm function with invoke, map, invoke_async + await_all, and see a
// child's failure with its code.
func TestFlowsFromPythonAndNode(t *testing.T) {
	modules(t)
	p := startWithProcess(t)
	p.mustDeploy("echo", guest, "")
	ran := 0
	for _, tc := range []struct{ name, interp, src, file, handler string }{
		{"pyflow", "/usr/bin/python3", "testdata/pyflow/handler.py", "handler.py", "/usr/bin/python3 -m mote handler.handler"},
		{"jsflow", "/usr/bin/node", "testdata/jsflow/handler.mjs", "handler.mjs", "node node_modules/mote/bootstrap.mjs handler.handler"},
	} {
		if _, err := exec.LookPath(tc.interp); err != nil {
			t.Logf("%s not installed: skipping %s", tc.interp, tc.name)
			continue
		}
		ran++
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		copyTree(t, tc.src, filepath.Join(dir, tc.file))
		if r := p.deployDir(tc.name, dir, `{"runtime":"process","handler":"`+tc.handler+`","permissions":{"invoke":["echo"]}}`); r.status != 201 {
			t.Fatalf("deploy %s: %d %s", tc.name, r.status, r.body)
		}
		r := p.invoke(tc.name, "{}")
		var got struct {
			Sync   string   `json:"sync"`
			Map    []string `json:"map"`
			Async  []string `json:"async"`
			Failed string   `json:"failed"`
		}
		if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
			t.Fatalf("%s: %d %s", tc.name, r.status, r.body)
		}
		if got.Sync != "sync" || strings.Join(got.Map, ",") != "m0,m1,m2" || strings.Join(got.Async, ",") != "a0,a1" || got.Failed != "function_error" {
			t.Errorf("%s: got %+v", tc.name, got)
		}
		// The children are in the call tree under the process function.
		tree := p.do("GET", "/v1/invocations/"+r.header.Get(api.HeaderInvocationID), nil, nil)
		if n := strings.Count(tree.body, `"function":"echo"`); n != 7 {
			t.Errorf("%s: %d echo children in the tree, want 7:\n%s", tc.name, n, tree.body)
		}
	}
	if ran == 0 {
		t.Skip("neither python3 nor node is installed: nothing checked")
	}
}

// TestProcessOutputOutsideInvocation: a line a function prints after its
// invocation ended is in the function's logs, with no invocation id.
// Before, it went to the server's own log.
func TestProcessOutputOutsideInvocation(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	// The line comes 200 ms after the answer: the instance must not be
	// frozen before (freezing is tested in internal/runtime/process).
	p := startWithProcessConfig(t, process.Config{FreezeAfter: -1})
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "handler.py"), []byte(`import threading, time

def later():
    time.sleep(0.2)
    print("printed outside the invocation", flush=True)

def handler(event, context):
    threading.Thread(target=later).start()
    return "ok"
`), 0o644)
	if r := p.deployDir("late", dir, `{"runtime":"process","handler":"/usr/bin/python3 -m mote handler.handler"}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	if r := p.invoke("late", `{}`); r.status != 200 {
		t.Fatalf("invoke: %d %s", r.status, r.body)
	}
	// The line comes from another process, some time after: look for it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var found bool
		for _, l := range tailLines(p.sys.Logs, "late") {
			if l.Text == "printed outside the invocation" {
				if l.Invocation != "" || l.Stream != "stdout" {
					t.Errorf("line: invocation %q, stream %q; want none, stdout", l.Invocation, l.Stream)
				}
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the line printed after the invocation is not in the function's logs: %v", tailLines(p.sys.Logs, "late"))
		}
	}
}

// TestProcessOutputOutsideInvocationIsRedacted: what a process function
// prints outside an invocation (here at import, before its first event)
// shows its secrets as [secret NAME] in its log, as lines written during
// invocations do. A review found it went to `mote logs` in clear.
func TestProcessOutputOutsideInvocationIsRedacted(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	p := startWithProcess(t)
	if _, err := p.sys.SetSecret(context.Background(), "DB_PASSWORD", []byte("hunter2-but-longer")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "handler.py"), []byte(`import os
print("at import:", os.environ["DB_PASSWORD"], flush=True)

def handler(event, context):
    return "ok"
`), 0o644)
	if r := p.deployDir("leaky", dir, `{"runtime":"process","handler":"/usr/bin/python3 -m mote handler.handler","secrets":["DB_PASSWORD"]}`); r.status != 201 {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	if r := p.invoke("leaky", `{}`); r.status != 200 {
		t.Fatalf("invoke: %d %s", r.status, r.body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var found bool
		for _, l := range tailLines(p.sys.Logs, "leaky") {
			if strings.Contains(l.Text, "hunter2-but-longer") {
				t.Fatalf("the secret is in the log: %q", l.Text)
			}
			if strings.HasPrefix(l.Text, "at import:") {
				if l.Text != "at import: [secret DB_PASSWORD]" {
					t.Errorf("line: got %q, want the secret redacted", l.Text)
				}
				found = true
			}
		}
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import-time line is not in the function's logs: %v", tailLines(p.sys.Logs, "leaky"))
		}
	}
}

// tailLines returns fn's latest 100 log lines.
func tailLines(s *logs.Store, fn string) []logs.Line {
	ls, _ := s.Tail(logs.Query{Function: fn, N: 100})
	return ls
}
