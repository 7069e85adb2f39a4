package process

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// repoRoot is the repository's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	buildMu    sync.Mutex
	builtFns   = map[string]string{}
	buildFnErr = map[string]error{}
)

// buildGoFunction builds the Go program in dir (its own module) to a
// world-readable directory as "bootstrap", once per test binary, and
// returns that directory.
func buildGoFunction(t testing.TB, dir string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if out, ok := builtFns[dir]; ok {
		return out
	}
	if err := buildFnErr[dir]; err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(fnDir, "build-"+filepath.Base(dir))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(out, "bootstrap"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		buildFnErr[dir] = err
		t.Fatalf("go build %s: %v\n%s", dir, err, b)
	}
	builtFns[dir] = out
	return out
}

// langSpec is a spec for one of the example functions, or skips the test
// when its interpreter is not installed.
func langSpec(t testing.TB, lang string) runtime.Spec {
	t.Helper()
	root := repoRoot(t)
	spec := runtime.Spec{Function: "hello-" + lang, Version: "v1", Kind: runtime.KindProcess, Env: map[string]string{}}
	switch lang {
	case "go-lambda":
		spec.Dir = buildGoFunction(t, filepath.Join(root, "examples", "hello-go-lambda"))
		spec.Handler = "./bootstrap"
	case "go-sdk":
		spec.Dir = buildGoFunction(t, filepath.Join(root, "internal", "runtime", "process", "testdata", "gosdk"))
		spec.Handler = "./bootstrap"
	case "python":
		needInterpreter(t, "python3")
		spec.Dir = filepath.Join(root, "examples", "hello-python")
		spec.Handler = "python3 -m mote handler.handler"
		spec.Env["PYTHONPATH"] = filepath.Join(root, "sdk", "python")
	case "node":
		needInterpreter(t, "node")
		// The example imports "mote": give it the SDK as mote serve does,
		// extracted in a directory above the function's.
		sdkRoot, err := os.MkdirTemp(fnDir, "node-example-*") // granted to functions by newRuntime
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sdkRoot) })
		os.Chmod(sdkRoot, 0o755)
		if _, err := ExtractSDKs(sdkRoot); err != nil {
			t.Fatal(err)
		}
		spec.Dir = filepath.Join(sdkRoot, "hello-node")
		os.Mkdir(spec.Dir, 0o755)
		b, err := os.ReadFile(filepath.Join(root, "examples", "hello-node", "handler.mjs"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(spec.Dir, "handler.mjs"), b, 0o644)
		spec.Handler = "node " + filepath.Join(sdkRoot, "node_modules", "mote", "bootstrap.mjs") + " handler.handler"
	default:
		t.Fatalf("unknown language %q", lang)
	}
	return spec
}

func needInterpreter(t testing.TB, name string) {
	t.Helper()
	for _, d := range filepath.SplitList(DefaultPath) {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return
		}
	}
	t.Skipf("%s is not installed in %s", name, DefaultPath)
}

// kvHost is a Host that records log lines and kv.put calls.
type kvHost struct {
	recorder
	puts []string
}

func (h *kvHost) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	if op == "kv.put" {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(args) < 3 {
			return nil, errs.E(errs.BadRequest, "kv.put: want [bucket, key, value, ...]")
		}
		h.puts = append(h.puts, string(args[0])+"/"+string(args[1])+"="+string(args[2]))
		return []byte("1"), nil
	}
	return h.recorder.Call(ctx, op, args)
}

func TestExamples(t *testing.T) {
	rt := newRuntime(t)
	for _, lang := range []string{"go-lambda", "python", "node"} {
		t.Run(lang, func(t *testing.T) {
			in := startInstance(t, rt, langSpec(t, lang))
			tests := []struct {
				payload  string
				wantCode errs.Code
				wantPut  string
			}{
				{`{"name":"ada"}`, "", ""},
				{`{"name":"bob","store":true}`, "", "greetings/bob=hello bob"},
				{`{}`, errs.FunctionError, ""},
				{`{"name":"cy"}`, "", ""},
			}
			for _, tt := range tests {
				if lang == "go-lambda" && tt.wantPut != "" {
					continue // aws-lambda-go knows nothing of Mote's host calls
				}
				h := &kvHost{}
				ev := event(tt.payload)
				ev.Host = h
				res, _, err := in.Invoke(context.Background(), ev)
				if got := errs.CodeOf(err); got != tt.wantCode {
					t.Fatalf("%s: code: got %q (%v), want %q", tt.payload, got, err, tt.wantCode)
				}
				if err != nil {
					if !strings.Contains(errs.MessageOf(err), "name is required") {
						t.Errorf("%s: error: got %q, want it to say name is required", tt.payload, errs.MessageOf(err))
					}
					continue
				}
				var got struct{ Greeting, RequestID, Function string }
				if err := json.Unmarshal(res.Output, &got); err != nil {
					t.Fatalf("%s: %v: %s", tt.payload, err, res.Output)
				}
				var in struct{ Name string }
				_ = json.Unmarshal([]byte(tt.payload), &in)
				if got.Greeting != "hello "+in.Name {
					t.Errorf("greeting: got %q, want %q", got.Greeting, "hello "+in.Name)
				}
				if got.Function != "hello-"+lang {
					t.Errorf("function: got %q, want %q", got.Function, "hello-"+lang)
				}
				if lines := h.lines(); len(lines) != 1 || lines[0] != "greeting "+in.Name {
					t.Errorf("log lines: got %q, want [%q]", lines, "greeting "+in.Name)
				}
				if strings.Join(h.puts, ",") != tt.wantPut {
					t.Errorf("kv.put calls: got %q, want %q", h.puts, tt.wantPut)
				}
			}
		})
	}
}

func TestGoSDKNative(t *testing.T) {
	// After "panic" the SDK reports the error and exits: an instance
	// frozen 5 ms after the invocation can hold it short of its exit (a
	// loaded machine hung here for 10 minutes). Freezing has tests of its
	// own.
	rt := newRuntimeWith(t, Config{FreezeAfter: -1})
	in := startInstance(t, rt, langSpec(t, "go-sdk"))
	tests := []struct {
		payload, want string
		wantCode      errs.Code
		wantReuse     bool
	}{
		{"hello", "hello", "", true},
		{"call", "got k1v1", "", true},
		{"missing", "not_found|no such key", "", true},
		{"context", "", "", true}, // checked below
		{"fail", "", errs.FunctionError, true},
		{"panic", "", errs.FunctionError, false},
	}
	for _, tt := range tests {
		ev := event(tt.payload)
		ev.Root, ev.Parent, ev.Depth = "r-1", "p-1", 3
		res, _, err := in.Invoke(context.Background(), ev)
		if got := errs.CodeOf(err); got != tt.wantCode {
			t.Fatalf("%s: code: got %q (%v), want %q", tt.payload, got, err, tt.wantCode)
		}
		want := tt.want
		if tt.payload == "context" {
			want = ev.ID + "|r-1|p-1|3|hello-go-sdk"
		}
		if err == nil && string(res.Output) != want {
			t.Errorf("%s: got %q, want %q", tt.payload, res.Output, want)
		}
		if tt.payload == "panic" {
			// The SDK reports the panic, then exits so the instance is replaced.
			<-in.(*instance).proc.Done()
		}
		if got := in.Reusable(); got != tt.wantReuse {
			t.Errorf("%s: Reusable: got %v, want %v", tt.payload, got, tt.wantReuse)
		}
	}
}

// TestGoSDKChannelEnds: an invocation over the invocation channel that
// times out, is cancelled, whose process exits or whose instance is closed
// ends with the right code, and the instance is not used again.
func TestGoSDKChannelEnds(t *testing.T) {
	rt := newRuntime(t)
	spec := langSpec(t, "go-sdk")
	for _, tt := range []struct {
		payload  string
		deadline time.Duration
		cancel   time.Duration // cancel the context after this, if set
		close    time.Duration // close the instance after this, if set
		wantCode errs.Code
	}{
		{"sleep", 200 * time.Millisecond, 0, 0, errs.Timeout},
		{"sleep", 10 * time.Second, 100 * time.Millisecond, 0, errs.Cancelled},
		{"exit", 10 * time.Second, 0, 0, errs.FunctionError},
		{"sleep", 10 * time.Second, 0, 100 * time.Millisecond, errs.Unavailable},
	} {
		t.Run(string(tt.wantCode), func(t *testing.T) {
			in := startInstance(t, rt, spec)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			if tt.close > 0 {
				time.AfterFunc(tt.close, func() { in.Close(context.Background()) })
			}
			ev := event(tt.payload)
			ev.Deadline = time.Now().Add(tt.deadline)
			start := time.Now()
			_, _, err := in.Invoke(ctx, ev)
			if got := errs.CodeOf(err); got != tt.wantCode {
				t.Fatalf("code: got %q (%v), want %q", got, err, tt.wantCode)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v to end", took)
			}
			if in.Reusable() {
				t.Error("Reusable: got true, want false")
			}
			select {
			case <-in.(*instance).proc.Done():
			case <-time.After(5 * time.Second):
				t.Error("the process is still running")
			}
		})
	}
}

// TestGoSDKPollingIsBounded: a Go SDK function polls for its next event
// only briefly, so an idle instance uses (almost) no CPU, and an
// invocation is billed its own work, not the polling around it.
func TestGoSDKPollingIsBounded(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, langSpec(t, "go-sdk")).(*instance)
	var billed, total time.Duration
	for i := 0; i < 50; i++ { // back to back: the function polls between them
		_, u, err := in.Invoke(context.Background(), event("hello"))
		if err != nil {
			t.Fatal(err)
		}
		billed, total = max(billed, u.CPU), total+u.CPU
	}
	if billed > 5*time.Millisecond {
		t.Errorf("most CPU billed to a hello invocation: got %v, want well under 5ms", billed)
	}
	if total == 0 {
		t.Error("CPU billed to 50 invocations: got 0, want the handlers' time (the SDK must bring the counter up to date)")
	}
	cpu0, err := in.proc.CPU()
	if err != nil {
		t.Skipf("no CPU accounting: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	cpu1, _ := in.proc.CPU()
	t.Logf("CPU billed to 50 hello invocations: most %v, mean %v; idle instance's CPU over 200ms: %v", billed, total/50, cpu1-cpu0)
	if idle := cpu1 - cpu0; idle > 20*time.Millisecond {
		t.Errorf("CPU used by the idle instance in 200ms: got %v, want well under 20ms (a polling core would use ~200ms)", idle)
	}
}

func TestSDKUnitTests(t *testing.T) {
	root := repoRoot(t)
	t.Run("python", func(t *testing.T) {
		needInterpreter(t, "python3")
		cmd := exec.Command("/usr/bin/python3", "-m", "unittest", "discover", "-s", "tests")
		cmd.Dir = filepath.Join(root, "sdk", "python")
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("python sdk tests: %v\n%s", err, b)
		}
	})
	t.Run("node", func(t *testing.T) {
		needInterpreter(t, "node")
		cmd := exec.Command("node", "--test", "test/")
		cmd.Dir = filepath.Join(root, "sdk", "js")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("js sdk tests: %v\n%s", err, b)
		}
	})
}

// TestSDKResponseTooLarge: a handler whose result is over the response
// limit gets a clear error for that invocation, as on Lambda, and its
// instance serves the next one. Before, the Python SDK died posting it
// (the server refuses the body and closes the connection) and the next
// caller got "function exited".
func TestSDKResponseTooLarge(t *testing.T) {
	// The default limit: a body larger than the socket buffers is still
	// being sent when the server refuses it and closes the connection.
	rt := newRuntime(t)
	for _, lang := range []string{"python", "node", "go-sdk"} {
		t.Run(lang, func(t *testing.T) {
			spec := bigResultSpec(t, lang)
			in := startInstance(t, rt, spec)
			big, small := `"big"`, `"small"`
			if lang == "go-sdk" {
				big, small = "big", "small"
			}
			_, _, err := in.Invoke(context.Background(), event(big))
			if errs.CodeOf(err) != errs.FunctionError || !strings.Contains(errs.MessageOf(err), "6291456 bytes") {
				t.Errorf("too large a result: got %v, want a function error naming the 6291456 byte limit", err)
			}
			res, _, err := in.Invoke(context.Background(), event(small))
			if err != nil || !strings.Contains(string(res.Output), "small") {
				t.Fatalf("the next invocation: got %q, %v; want its result", res.Output, err)
			}
			if !in.Reusable() {
				t.Error("Reusable after too large a result: got false, want true")
			}
		})
	}
}

// bigResultSpec is a function in lang that returns one byte more than
// MOTE_MAX_RESPONSE for the event "big" and echoes any other.
func bigResultSpec(t *testing.T, lang string) runtime.Spec {
	t.Helper()
	if lang == "go-sdk" {
		return langSpec(t, lang)
	}
	spec := langSpec(t, lang) // skips without the interpreter

	// Not t.TempDir: the function user must reach it.
	dir, err := os.MkdirTemp("", "mote-big-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if lang == "node" {
		// Below the extracted SDK, as langSpec's example, to import "mote".
		dir = filepath.Join(filepath.Dir(spec.Dir), "big-node")
		os.Mkdir(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "handler.mjs"), []byte(`export async function handler(event) {
  return event === "big" ? "x".repeat(Number(process.env.MOTE_MAX_RESPONSE) + 1) : event;
}
`), 0o644)
	} else {
		os.WriteFile(filepath.Join(dir, "handler.py"), []byte(`import os

def handler(event, context):
    return "x" * (int(os.environ["MOTE_MAX_RESPONSE"]) + 1) if event == "big" else event
`), 0o644)
	}
	spec.Function, spec.Dir = "big-"+lang, dir
	return spec
}
