package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/sandbox"
)

// baseDir is a temporary BaseDir the unprivileged user can traverse.
func baseDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	return newRuntimeWith(t, Config{})
}

// newRuntimeWith is newRuntime with cfg's other fields. Its modules keep
// no spare (tests that count processes would count it, and each spare is
// a start the machine pays for); spare.go's tests use newRuntimeSpare.
func newRuntimeWith(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	cfg.NoSpare = true
	return newRuntimeSpare(t, cfg)
}

// newRuntimeSpare is newRuntimeWith with spares as cfg says.
func newRuntimeSpare(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	cfg.BaseDir = baseDir(t)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The SDKs the tests lay out: the repository's Python SDK, and
	// extracted copies below the test function's directory.
	cfg.ReadOnly = []string{fnDir, filepath.Join(repoRoot(t), "sdk", "python")}
	// Not root: the tests run unconfined, as a developer's own code.
	cfg.Unconfined = os.Geteuid() != 0
	rt, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

// testSpec is a spec running the test function fn from the test binary.
func testSpec(fn string) runtime.Spec {
	return runtime.Spec{
		Function: "t-" + fn, Version: "v1", Kind: runtime.KindProcess,
		Dir: fnDir, Handler: "./fn", Env: map[string]string{"MOTE_TEST_FN": fn, "GREETING": "hi"},
	}
}

func startInstance(t testing.TB, rt *Runtime, spec runtime.Spec) runtime.Instance {
	t.Helper()
	mod, err := rt.Load(context.Background(), spec)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	in, err := mod.NewInstance(context.Background())
	if err != nil {
		t.Fatalf("NewInstance: %v", err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in
}

// recorder is a Host that records log lines and answers kv.get.
type recorder struct {
	mu   sync.Mutex
	logs []string
}

func (r *recorder) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	switch op {
	case host.OpLog:
		r.mu.Lock()
		r.logs = append(r.logs, string(args[0]))
		r.mu.Unlock()
		return nil, nil
	case "kv.get":
		if len(args) != 2 {
			return nil, errs.E(errs.BadRequest, "want 2 args")
		}
		return append(append([]byte("got "), args[0]...), args[1]...), nil
	case "kv.missing":
		return nil, errs.E(errs.NotFound, "no such key")
	}
	return nil, errs.E(errs.BadRequest, "unknown op %q", op)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

func event(payload string) *runtime.Event {
	return &runtime.Event{ID: newID(), Payload: []byte(payload), Host: &recorder{}, Deadline: time.Now().Add(10 * time.Second)}
}

func TestInvokeEchoIsWarm(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("echo"))
	for _, payload := range []string{`{"a":1}`, ``, `"x"`, strings.Repeat("y", 1<<20)} {
		res, u, err := in.Invoke(context.Background(), event(payload))
		if err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		if got := string(res.Output); got != payload {
			t.Errorf("output: got %d bytes, want %d", len(got), len(payload))
		}
		if u.Wall <= 0 {
			t.Errorf("usage wall: got %v, want > 0", u.Wall)
		}
		if !in.Reusable() {
			t.Fatalf("Reusable: got false after success")
		}
	}
}

func TestFunctionSeesLambdaContractAndSandbox(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("inspect"))
	ev := event(`{"k":"v"}`)
	ev.Root, ev.Parent = "root-1", "parent-1"
	res, _, err := in.Invoke(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Payload, ID, Deadline, ARN, Trace, Hostname string
		UID, PID                                    int
		Env                                         map[string]string
		TmpWritable                                 bool `json:"tmp_writable"`
		DirWritable                                 bool `json:"dir_writable"`
		Net                                         bool
	}
	if err := json.Unmarshal(res.Output, &got); err != nil {
		t.Fatalf("%v: %s", err, res.Output)
	}
	ns := map[string]bool{}
	for _, n := range rt.Sandbox().Namespaces() {
		ns[n] = true
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"payload", got.Payload, `{"k":"v"}`},
		{"request id", got.ID, ev.ID},
		{"deadline", got.Deadline, ev.Deadline.Format("x") + "" + func() string { return "" }()},
		{"arn", got.ARN, "arn:aws:lambda:us-east-1:000000000000:function:t-inspect"},
		{"trace", got.Trace, "Root=root-1;Parent=parent-1;Sampled=0"},
		{"function name", got.Env["AWS_LAMBDA_FUNCTION_NAME"], "t-inspect"},
		{"version", got.Env["AWS_LAMBDA_FUNCTION_VERSION"], "v1"},
		{"memory size", got.Env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128"},
		{"region", got.Env["AWS_REGION"], "us-east-1"},
		{"handler", got.Env["_HANDLER"], "./fn"},
		{"task root", got.Env["LAMBDA_TASK_ROOT"], fnDir},
		{"spec env", got.Env["GREETING"], "hi"},
		{"uid in the reserved range", got.UID >= sandbox.DefaultUIDBase && got.UID < sandbox.DefaultUIDBase+sandbox.DefaultUIDCount, os.Geteuid() == 0},
		{"tmp writable", got.TmpWritable, true},
		{"function dir writable", got.DirWritable, false},
	}
	checks[2].want = got.Deadline // checked numerically below
	if ns["uts"] {
		checks = append(checks, struct {
			name      string
			got, want any
		}{"hostname", got.Hostname, "mote"})
	}
	if ns["pid"] {
		// The init is PID 1 of the namespace (its threads take the next
		// few ids); the function is its child.
		checks = append(checks, struct {
			name      string
			got, want any
		}{"pid in a new namespace", got.PID < 32, true})
	}
	if ns["net"] {
		checks = append(checks, struct {
			name      string
			got, want any
		}{"network reachable", got.Net, false})
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if got.Deadline != strconvMs(ev.Deadline) {
		t.Errorf("deadline: got %s, want %s", got.Deadline, strconvMs(ev.Deadline))
	}
}

func strconvMs(t time.Time) string { return strings.TrimSpace(jsonNum(t.UnixMilli())) }

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestNetworkAllowed(t *testing.T) {
	rt := newRuntime(t)
	spec := testSpec("inspect")
	spec.Network = true
	in := startInstance(t, rt, spec)
	res, _, err := in.Invoke(context.Background(), event(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Net bool }
	_ = json.Unmarshal(res.Output, &got)
	if !got.Net {
		t.Errorf("network with spec.Network: got no routes, want the host's")
	}
}

func TestInvokeErrors(t *testing.T) {
	rt := newRuntime(t)
	tests := []struct {
		fn         string
		wantCode   errs.Code
		wantMsg    string
		wantReuse  bool
		wantOutput string
	}{
		{"fail", errs.FunctionError, "ValueError: bad input", true, `{"errorMessage":"bad input","errorType":"ValueError"}`},
		{"crash", errs.FunctionError, "exited during the invocation", false, ""},
		{"oom", errs.OutOfMemory, "memory limit of 64 MiB", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			spec := testSpec(tt.fn)
			spec.MemoryLimit = 64 << 20
			in := startInstance(t, rt, spec)
			res, _, err := in.Invoke(context.Background(), event(`{}`))
			if got := errs.CodeOf(err); got != tt.wantCode {
				t.Fatalf("code: got %q (%v), want %q", got, err, tt.wantCode)
			}
			if !strings.Contains(errs.MessageOf(err), tt.wantMsg) {
				t.Errorf("message: got %q, want it to contain %q", errs.MessageOf(err), tt.wantMsg)
			}
			if got := in.Reusable(); got != tt.wantReuse {
				t.Errorf("Reusable: got %v, want %v", got, tt.wantReuse)
			}
			if got := string(res.Output); got != tt.wantOutput {
				t.Errorf("output: got %q, want %q", got, tt.wantOutput)
			}
			if tt.wantReuse {
				if _, _, err := in.Invoke(context.Background(), event(`{}`)); errs.CodeOf(err) != tt.wantCode {
					t.Errorf("second invoke: got %v, want %s again", err, tt.wantCode)
				}
			} else if _, _, err := in.Invoke(context.Background(), event(`{}`)); errs.CodeOf(err) != errs.Unavailable {
				t.Errorf("invoke after death: got %v, want unavailable", err)
			}
		})
	}
}

func TestTimeoutKillsTree(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("hang"))
	ev := event(`{}`)
	ev.Deadline = time.Now().Add(300 * time.Millisecond)
	_, _, err := in.Invoke(context.Background(), ev)
	if got := errs.CodeOf(err); got != errs.Timeout {
		t.Fatalf("code: got %q (%v), want timeout", got, err)
	}
	if in.Reusable() {
		t.Errorf("Reusable after timeout: got true, want false")
	}
	p := in.(*instance).proc
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("process tree still alive after timeout")
	}
	if n := countProcs("41.5"); n != 0 {
		t.Errorf("processes left after timeout: got %d, want 0", n)
	}
}

func TestInitErrors(t *testing.T) {
	rt := newRuntime(t)
	tests := []struct {
		name    string
		spec    runtime.Spec
		wantMsg string
	}{
		{"exits at start", testSpec("exit-at-start"), "boom: missing configuration"},
		{"reports init error", testSpec("init-error"), "Runtime.ImportModuleError: cannot load model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod, err := rt.Load(context.Background(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			in, err := mod.NewInstance(context.Background())
			if got := errs.CodeOf(err); got != errs.InitError {
				if in != nil {
					in.Close(context.Background())
				}
				t.Fatalf("code: got %q (%v), want init_error", got, err)
			}
			if !strings.Contains(errs.MessageOf(err), tt.wantMsg) {
				t.Errorf("message: got %q, want it to contain %q", errs.MessageOf(err), tt.wantMsg)
			}
		})
	}
	t.Run("never asks", func(t *testing.T) {
		rt2, err := New(context.Background(), Config{BaseDir: baseDir(t), InitTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer rt2.Close(context.Background())
		mod, err := rt2.Load(context.Background(), testSpec("silent"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = mod.NewInstance(context.Background())
		if got := errs.CodeOf(err); got != errs.InitError {
			t.Fatalf("code: got %q (%v), want init_error", got, err)
		}
	})
}

func TestLoadRejects(t *testing.T) {
	rt := newRuntime(t)
	tests := []struct {
		name string
		edit func(*runtime.Spec)
		want string
	}{
		{"missing executable", func(s *runtime.Spec) { s.Handler = "./no-such-bootstrap" }, "no such file"},
		{"not on PATH", func(s *runtime.Spec) { s.Handler = "no-such-interpreter-xyz handler.py" }, "not found in PATH"},
		{"empty handler", func(s *runtime.Spec) { s.Handler = "  " }, "no handler"},
		{"bad quoting", func(s *runtime.Spec) { s.Handler = `./fn "unterminated` }, "unterminated"},
		{"missing dir", func(s *runtime.Spec) { s.Dir = "/no/such/dir" }, "does not exist"},
		{"wrong kind", func(s *runtime.Spec) { s.Kind = runtime.KindWasm }, "kind"},
		{"tiny memory", func(s *runtime.Spec) { s.MemoryLimit = 1 << 20 }, "below 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec("echo")
			tt.edit(&spec)
			_, err := rt.Load(context.Background(), spec)
			if got := errs.CodeOf(err); got != errs.BadRequest {
				t.Fatalf("code: got %q (%v), want bad_request", got, err)
			}
			if !strings.Contains(errs.MessageOf(err), tt.want) {
				t.Errorf("message: got %q, want it to contain %q", errs.MessageOf(err), tt.want)
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"python3 handler.py", []string{"python3", "handler.py"}},
		{`  node  "my dir/h.mjs" 'a b' c\ d `, []string{"node", "my dir/h.mjs", "a b", "c d"}},
		{`sh -c 'echo "$X"'`, []string{"sh", "-c", `echo "$X"`}},
		{`""`, []string{""}},
	}
	for _, tt := range tests {
		got, err := splitCommand(tt.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("splitCommand(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestLogsGoToTheInvocation(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("log"))
	for i := 0; i < 3; i++ {
		rec := &recorder{}
		ev := event(`{}`)
		ev.Host = rec
		if _, _, err := in.Invoke(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		got := rec.lines()
		// stdout and stderr are separate pipes: order within each holds.
		want := map[string]bool{"line one": true, "line two": true, "no newline": true}
		if len(got) != len(want) {
			t.Fatalf("invocation %d: got log lines %q, want %d lines", i, got, len(want))
		}
		for _, l := range got {
			if !want[l] {
				t.Errorf("invocation %d: unexpected line %q", i, l)
			}
		}
	}
}

func TestHostCalls(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("hostcall"))
	tests := []struct{ op, want string }{
		{"kv.get", "200 got k1v1"},
		{"kv.missing", `404 {"error":"no such key","code":"not_found"}` + "\n"},
		{"nope", `400 {"error":"unknown op \"nope\"","code":"bad_request"}` + "\n"},
	}
	for _, tt := range tests {
		res, _, err := in.Invoke(context.Background(), event(tt.op))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res.Output); got != tt.want {
			t.Errorf("host call %s: got %q, want %q", tt.op, got, tt.want)
		}
	}
}

func TestCPUIsMeteredNotWall(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("spin"))
	_, u, err := in.Invoke(context.Background(), event(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	// 60 ms spinning, 150 ms asleep: the CPU figure counts the first only.
	if u.CPU < 58*time.Millisecond || u.CPU > 150*time.Millisecond {
		t.Errorf("cpu: got %v, want about 60ms (not the 210ms wall)", u.CPU)
	}
	if u.Wall < 200*time.Millisecond {
		t.Errorf("wall: got %v, want >= 210ms", u.Wall)
	}
}

func TestForkBombIsContained(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, testSpec("forkbomb"))
	res, _, err := in.Invoke(context.Background(), event(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Started, Failed int }
	if err := json.Unmarshal(res.Output, &got); err != nil {
		t.Fatalf("%v: %s", err, res.Output)
	}
	if got.Started >= DefaultPidsLimit || got.Failed == 0 {
		t.Errorf("fork bomb: started %d, failed %d; want fewer than %d started", got.Started, got.Failed, DefaultPidsLimit)
	}
	// The platform still starts processes.
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("host cannot start a process during the fork bomb: %v", err)
	}
	in.Close(context.Background())
	if n := countProcs("42.5"); n != 0 {
		t.Errorf("processes left after Close: got %d, want 0", n)
	}
}

func TestNoZombiesOrOrphans(t *testing.T) {
	// The orphan is still on its way to exec when the invocation ends: an
	// instance frozen 5 ms later would hold it there (as it should), and
	// the test would never see it. Freezing has tests of its own.
	rt := newRuntimeWith(t, Config{FreezeAfter: -1})
	in := startInstance(t, rt, testSpec("orphan"))
	if _, _, err := in.Invoke(context.Background(), event(`{}`)); err != nil {
		t.Fatal(err)
	}
	// sh has exited; its sleep may still be on its way to exec.
	for i := 0; i < 200 && countProcs("43.5") == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if n := countProcs("43.5"); n != 1 {
		t.Errorf("orphaned sleep while the instance lives: got %d, want 1", n)
	}
	if z := zombies(); len(z) != 0 {
		t.Errorf("zombies while the instance lives: %v", z)
	}
	in.Close(context.Background())
	if n := countProcs("43.5"); n != 0 {
		t.Errorf("orphans left after Close: got %d, want 0", n)
	}
	if z := zombies(); len(z) != 0 {
		t.Errorf("zombie children of mote after Close: %v", z)
	}
}

func TestConcurrentInstances(t *testing.T) {
	rt := newRuntime(t)
	mod, err := rt.Load(context.Background(), testSpec("echo"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := mod.NewInstance(context.Background())
			if err != nil {
				errc <- err
				return
			}
			defer in.Close(context.Background())
			for j := 0; j < 20; j++ {
				p := []byte{byte('a' + j)}
				res, _, err := in.Invoke(context.Background(), event(string(p)))
				if err != nil || !bytes.Equal(res.Output, p) {
					errc <- errors.Join(err, errors.New("wrong output "+string(res.Output)))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// countProcs counts live processes whose command line contains marker
// (each test function's sleeps use a distinct duration as a marker).
func countProcs(marker string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte("sleep\x00"+marker)) {
			continue
		}
		st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			continue
		}
		n++
	}
	return n
}

// zombies lists zombie children of this process.
func zombies() []string {
	ents, _ := os.ReadDir("/proc")
	self := jsonNum(int64(os.Getpid()))
	var z []string
	for _, e := range ents {
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == self {
			z = append(z, string(st))
		}
	}
	return z
}

// TestIdleInstanceIsFrozen: a thread left spinning after the handler
// answered stops within FreezeAfter (fails without the freezer: it used
// 10 s of unbilled CPU in issue 10's finding 6), and the next invocation
// thaws the instance and is answered.
func TestIdleInstanceIsFrozen(t *testing.T) {
	rt := newRuntime(t)
	if rt.Sandbox().Controllers()["freezer"] == "" {
		t.Skip("no cgroup freezer")
	}
	in := startInstance(t, rt, testSpec("background")).(*instance)
	if _, _, err := in.Invoke(context.Background(), event(`x`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !in.isFrozen() {
		if time.Now().After(deadline) {
			t.Fatal("idle instance not frozen after 5s")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the kernel reaches every thread
	c0, _ := in.proc.CPU()
	time.Sleep(200 * time.Millisecond)
	c1, _ := in.proc.CPU()
	if c1-c0 > 5*time.Millisecond {
		t.Errorf("a frozen instance used %v of CPU in 200ms", c1-c0)
	}
	res, _, err := in.Invoke(context.Background(), event(`y`))
	if err != nil || string(res.Output) != `"ok"` {
		t.Fatalf("invoke after freeze: %q, %v", res.Output, err)
	}
}

// TestCloseRacesTheFreezer: instances closed while the freezer looks at
// them every millisecond all end. A freeze that lands after Close's kill
// (and its thaw) would keep the killed processes frozen, and Close would
// wait for them forever.
func TestCloseRacesTheFreezer(t *testing.T) {
	rt := newRuntimeWith(t, Config{FreezeAfter: time.Millisecond})
	if rt.Sandbox().Controllers()["freezer"] == "" {
		t.Skip("no cgroup freezer")
	}
	for i := 0; i < 20; i++ {
		in := startInstance(t, rt, testSpec("echo"))
		if _, _, err := in.Invoke(context.Background(), event("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%4) * 500 * time.Microsecond)
		done := make(chan struct{})
		go func() { in.Close(context.Background()); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Close %d hangs", i)
		}
	}
}
