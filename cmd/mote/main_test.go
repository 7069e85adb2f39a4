package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/testutil"
)

// moteBinary builds the mote command once per test binary.
func moteBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mote-bin-*")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "mote")
		out, err := exec.Command(gobuild.Go(), "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			t.Logf("%s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("building mote: %v", binErr)
	}
	return binPath
}

// server is a `mote serve` process.
type server struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerIn(t, t.TempDir(), args...)
}

func startServerIn(t *testing.T, data string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(moteBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("server did not start: %v", err)
	}
	go func() { io.Copy(io.Discard, stdout); s.done <- cmd.Wait() }()
	f := strings.Fields(line)
	for _, w := range f {
		if strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") {
			s.url = w
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	return s
}

// mote runs a client command against s and returns its exit code and output.
func (s *server) mote(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append(args, "--server", s.url), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIAgainstServer(t *testing.T) {
	reactor := writeModule(t, "../../examples/hello-reactor", true)
	wasi := writeModule(t, "../../examples/hello-wasi", false)
	s := startServer(t)
	steps := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"deploy", "hello", reactor, "--memory", "64MiB", "--min-warm", "1"}, 0, "deployed hello version 1"},
		{[]string{"invoke", "hello", "-d", "CLI"}, 0, "hello, CLI"},
		{[]string{"deploy", "hello", wasi, "--env", "A=B"}, 0, "deployed hello version 2"},
		{[]string{"invoke", "hello", "-d", "two"}, 0, "hello, two"},
		{[]string{"ls"}, 0, "hello"},
		{[]string{"info", "hello"}, 0, "version 2 of 2"},
		{[]string{"rollback", "hello"}, 0, "now serves version 1"},
		{[]string{"invoke", "hello", "-d", "@" + writeFile(t, "from a file")}, 0, "hello, from a file"},
		{[]string{"logs", "hello"}, 0, ""},
		{[]string{"invoke", "nope"}, 1, ""},
		{[]string{"deploy", "bad", writeFile(t, "garbage")}, 1, ""},
		{[]string{"rm", "hello"}, 0, "removed hello"},
		{[]string{"invoke", "hello"}, 1, ""},
	}
	for _, st := range steps {
		code, out, errOut := s.mote(t, st.args...)
		if code != st.wantCode || !strings.Contains(out, st.wantOut) {
			t.Fatalf("mote %s: got code %d out %q err %q; want code %d and %q", strings.Join(st.args, " "), code, out, errOut, st.wantCode, st.wantOut)
		}
		if code != 0 && !strings.Contains(errOut, "(") {
			t.Errorf("mote %s: error without a code: %q", strings.Join(st.args, " "), errOut)
		}
	}
}

func TestServeRefusesOpenDoor(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"serve", "--addr", "0.0.0.0:0", "--data", t.TempDir()}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "without an admin token") {
		t.Errorf("serve on 0.0.0.0 without a token: got code %d, %q", code, errOut.String())
	}
	short := writeFile(t, "short")
	code = run([]string{"serve", "--addr", "0.0.0.0:0", "--data", t.TempDir(), "--token-file", short}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "too short") {
		t.Errorf("short token: got code %d, %q", code, errOut.String())
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{{"127.0.0.1:8080", true}, {"localhost:1", true}, {"[::1]:80", true}, {"0.0.0.0:80", false}, {":8080", false}, {"10.1.2.3:80", false}} {
		if got := isLoopback(tc.addr); got != tc.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestServeRefusesExposedTokenFile checks that serve, as ssh does for a
// key, refuses a token file that group or others may read or write, and
// says how to fix it. The README's recipe made a 0644 file and serve took
// it (fails without the fix).
func TestServeRefusesExposedTokenFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o666} {
		tok := writeFile(t, "a-long-enough-admin-token")
		if err := os.Chmod(tok, mode); err != nil {
			t.Fatal(err)
		}
		// A data directory that cannot be opened, so that a serve that
		// takes the token fails soon instead of serving.
		var out, errOut bytes.Buffer
		code := run([]string{"serve", "--addr", "127.0.0.1:0", "--data", writeFile(t, "not a directory"), "--token-file", tok}, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "chmod 600 "+tok) {
			t.Errorf("token file %v: got code %d, %q; want a refusal naming chmod 600", mode, code, errOut.String())
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		tok := writeFile(t, "a-long-enough-admin-token")
		if err := os.Chmod(tok, mode); err != nil {
			t.Fatal(err)
		}
		if got, err := readToken(tok); err != nil || got != "a-long-enough-admin-token" {
			t.Errorf("token file %v: got %q, %v; want the token", mode, got, err)
		}
	}
}

func TestServeWithToken(t *testing.T) {
	tok := writeFile(t, "a-long-enough-admin-token")
	s := startServer(t, "--token-file", tok)
	resp, err := http.Get(s.url + "/v1/functions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("without token: got %d, want 401", resp.StatusCode)
	}
	code, _, _ := s.mote(t, "ls", "--token", "a-long-enough-admin-token")
	if code != 0 {
		t.Errorf("ls with token: exit %d", code)
	}
}

func TestSIGTERMDrainsInFlight(t *testing.T) {
	guest := writeModule(t, "../../internal/runtime/wasm/testdata/guest", true)
	s := startServer(t)
	if code, _, errOut := s.mote(t, "deploy", "g", guest); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Post(s.url+"/fn/g", "text/plain", strings.NewReader("spin:600"))
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(200 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGTERM)
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "spun" {
		t.Errorf("in-flight invocation across SIGTERM: got %+v, want 200 spun", r)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	s.done <- nil // for the cleanup
}

func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("demo builds the examples")
	}
	var out bytes.Buffer
	if err := demo("../../examples", false, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{`"hello, Berkeley"`, "p50", "not a valid module", "404", "413", `"hello, still here"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func writeModule(t *testing.T, dir string, reactor bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(p, testutil.BuildWasm(t, dir, reactor), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestCLIStorageAndFlows(t *testing.T) {
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	s := startServer(t)
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, bytes.Repeat([]byte("0123456789"), 300_000), 0o644)
	got := filepath.Join(t.TempDir(), "got")
	steps := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"deploy", "g", guest, "--read", "b", "--write", "b", "--invoke", "g"}, 0, "version 1"},
		{[]string{"kv", "put", "b", "greeting", "hello"}, 0, "version"},
		{[]string{"kv", "get", "b", "greeting"}, 0, "hello"},
		{[]string{"invoke", "g", "-d", "kvget:b:greeting"}, 0, "hello"},
		{[]string{"invoke", "g", "-d", "kvput:b:from-fn:yes"}, 0, "ok"},
		{[]string{"kv", "ls", "b"}, 0, "from-fn\ngreeting"},
		{[]string{"kv", "incr", "b", "n", "--by", "5"}, 0, "5"},
		{[]string{"kv", "rm", "b", "greeting"}, 0, ""},
		{[]string{"kv", "get", "b", "greeting"}, 1, ""},
		{[]string{"kv", "get", "../etc", "passwd"}, 1, ""},
		{[]string{"obj", "put", "b", "dir/big", big}, 0, "stored 3000000 bytes"},
		{[]string{"obj", "ls", "b"}, 0, "dir/big"},
		{[]string{"obj", "get", "b", "dir/big", "-o", got}, 0, ""},
		{[]string{"obj", "head", "b", "dir/big"}, 0, "size 3000000"},
		{[]string{"obj", "rm", "b", "dir/big"}, 0, ""},
		{[]string{"usage", "g"}, 0, "CPU-time billing charges"},
		{[]string{"dlq", "ls"}, 0, "ID"},
	}
	for _, st := range steps {
		code, out, errOut := s.mote(t, st.args...)
		if code != st.wantCode || !strings.Contains(out, st.wantOut) {
			t.Fatalf("mote %s: got code %d out %q err %q; want code %d and %q", strings.Join(st.args, " "), code, out, errOut, st.wantCode, st.wantOut)
		}
	}
	if a, _ := os.ReadFile(big); !bytes.Equal(a, mustRead(t, got)) {
		t.Error("object read back differs")
	}
	// An async chain: queued at once, traced when done.
	code, out, errOut := s.mote(t, "invoke", "g", "--async", "-d", "chain:2")
	if code != 0 || len(strings.TrimSpace(out)) != 24 {
		t.Fatalf("invoke --async: %d %q %q", code, out, errOut)
	}
	id := strings.TrimSpace(out)
	var trace string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, trace, _ = s.mote(t, "trace", id)
		if strings.Count(trace, "succeeded") == 3 {
			break
		}
	}
	if strings.Count(trace, "succeeded") != 3 || !strings.Contains(trace, "└─") {
		t.Errorf("trace of an async chain of 3: %q", trace)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAsyncSurvivesKill9 queues async invocations, SIGKILLs the server
// before they can all run, restarts it on the same data directory and
// checks that every accepted invocation completes.
func TestAsyncSurvivesKill9(t *testing.T) {
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	data := t.TempDir()
	s := startServerIn(t, data)
	if code, _, errOut := s.mote(t, "deploy", "g", guest, "--max-instances", "1"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	var ids []string
	for i := 0; i < 6; i++ {
		code, out, errOut := s.mote(t, "invoke", "g", "--async", "-d", "spin:150")
		if code != 0 {
			t.Fatalf("invoke --async: %s", errOut)
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	s.cmd.Process.Kill() // SIGKILL: no drain, no flush
	<-s.done
	s.done <- nil

	s = startServerIn(t, data)
	for _, id := range ids {
		var trace string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			_, trace, _ = s.mote(t, "trace", id)
			if strings.Contains(trace, "succeeded") {
				break
			}
		}
		if !strings.Contains(trace, "succeeded") {
			t.Errorf("async invocation %s after kill -9 and restart: %q", id, trace)
		}
	}
}

// TestKVAcknowledgedWritesSurviveKill9 writes keys from 8 clients, SIGKILLs
// the server mid-load, restarts it and reads back every acknowledged write.
func TestKVAcknowledgedWritesSurviveKill9(t *testing.T) {
	data := t.TempDir()
	s := startServerIn(t, data)
	var mu sync.Mutex
	acked := map[string]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				req, _ := http.NewRequest("PUT", s.url+"/v1/kv/durable/"+key, strings.NewReader(val))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode == 200 || resp.StatusCode == 201 {
					mu.Lock()
					acked[key] = val
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(400 * time.Millisecond)
	s.cmd.Process.Kill()
	<-s.done
	s.done <- nil
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged before the kill: load too light to test anything", len(acked))
	}

	s = startServerIn(t, data)
	lost := 0
	for k, v := range acked {
		resp, err := http.Get(s.url + "/v1/kv/durable/" + k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != v {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost after kill -9", lost, len(acked))
	}
	t.Logf("%d acknowledged writes, all present after kill -9 and restart", len(acked))
}

// TestExampleProcessFunctions deploys the Python and Node examples as a
// user would (the directory, its mote.json) and uses their storage.
func TestExampleProcessFunctions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("process functions are sandboxed, which needs root")
	}
	s := startServer(t)
	for _, ex := range []struct{ name, interp string }{{"hello-python", "/usr/bin/python3"}, {"hello-node", "node"}} {
		if _, err := exec.LookPath(ex.interp); err != nil {
			t.Logf("%s not installed: skipping %s", ex.interp, ex.name)
			continue
		}
		if code, _, errOut := s.mote(t, "deploy", ex.name, "../../examples/"+ex.name); code != 0 {
			t.Fatalf("deploy %s: %s", ex.name, errOut)
		}
		code, out, errOut := s.mote(t, "invoke", ex.name, "-d", `{"name":"ada-`+ex.name+`","store":true}`)
		if code != 0 || !strings.Contains(out, "hello ada-"+ex.name) {
			t.Errorf("invoke %s: %d %q %q", ex.name, code, out, errOut)
		}
		if code, out, _ := s.mote(t, "kv", "get", "greetings", "ada-"+ex.name); code != 0 || out != "hello ada-"+ex.name {
			t.Errorf("%s stored %q (exit %d)", ex.name, out, code)
		}
		if code, _, _ := s.mote(t, "invoke", ex.name, "-d", `{}`); code == 0 {
			t.Errorf("%s without a name should fail", ex.name)
		}
	}
}

// TestAWSSDKInvokes runs examples/aws-sdk-invoke, the official AWS SDK for
// Go with only its endpoint changed, against a real mote serve.
func TestAWSSDKInvokes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "awsinvoke")
	if out, err := exec.Command(gobuild.Go(), "build", "-C", "../../examples/aws-sdk-invoke", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the AWS SDK example: %v\n%s", err, out)
	}
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	s := startServer(t)
	if code, _, errOut := s.mote(t, "deploy", "g", guest); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-payload", "echo:{\"ok\":true}"}, "status 200 version 1 function-error \"\"\n{\"ok\":true}"},
		{[]string{"-payload", "fail:nope"}, "function-error \"Unhandled\""},
		{[]string{"-payload", "echo:x", "-async"}, "status 202"},
	} {
		out, err := exec.Command(bin, append([]string{"-endpoint", s.url, "-function", "g"}, tc.args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: got %v %q, want %q", tc.args, err, out, tc.want)
		}
	}
	out, err := exec.Command(bin, "-endpoint", s.url, "-function", "nope").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ResourceNotFoundException") {
		t.Errorf("unknown function: got %v %q, want ResourceNotFoundException", err, out)
	}
}

// TestBenchExamplesRun runs the benchmark functions in examples/ on a
// small scale, so they keep building and working between benchmark runs.
func TestBenchExamplesRun(t *testing.T) {
	kv := writeModule(t, "../../examples/bench-kv", true)
	fl := writeModule(t, "../../examples/bench-flow", true)
	s := startServer(t)
	for _, d := range [][]string{
		{"deploy", "kvw", kv, "--read", "bench", "--write", "bench"},
		{"deploy", "flow", fl, "--invoke", "flow,leaf"},
		{"deploy", "leaf", fl},
	} {
		if code, _, errOut := s.mote(t, d...); code != 0 {
			t.Fatalf("mote %v: %s", d, errOut)
		}
	}
	for _, tc := range []struct{ fn, event string }{
		{"kvw", `{"op":"fill","bucket":"bench","prefix":"k","keys":20}`},
		{"kvw", `{"op":"get","bucket":"bench","prefix":"k","keys":20,"n":200}`},
		{"kvw", `{"op":"put","bucket":"bench","prefix":"k","keys":20,"n":200,"durability":"buffered"}`},
		{"flow", `{"op":"sync","n":20,"fn":"leaf"}`},
		{"flow", `{"op":"chain","n":3,"depth":5}`},
		{"flow", `{"op":"map","n":50,"fn":"leaf"}`},
		{"flow", `{"op":"async","n":50,"fn":"leaf"}`},
	} {
		code, out, errOut := s.mote(t, "invoke", tc.fn, "-d", tc.event)
		var res map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Errorf("%s %s: exit %d, %q %q", tc.fn, tc.event, code, out, errOut)
		}
	}
}
