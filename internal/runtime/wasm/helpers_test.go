package wasm

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/testutil"
)

// testHost serves the test guest's host calls and records its log.
type testHost struct {
	mu   sync.Mutex
	logs []string
}

func (h *testHost) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	switch op {
	case host.OpLog:
		h.mu.Lock()
		h.logs = append(h.logs, string(args[0]))
		h.mu.Unlock()
		return nil, nil
	case "test.nop":
		return nil, nil
	case "test.echo":
		return []byte(strings.Join(strArgs(args), ",")), nil
	case "test.sleep":
		ms, _ := strconv.Atoi(string(args[0]))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return []byte("slept"), nil
		case <-ctx.Done():
			return nil, errs.E(errs.Timeout, "sleep interrupted")
		}
	case "test.big":
		n, _ := strconv.Atoi(string(args[0]))
		return []byte(strings.Repeat("b", n)), nil
	case "test.fail":
		return nil, errs.E(errs.NotFound, "nope")
	}
	return nil, errs.E(errs.BadRequest, "unknown op %q", op)
}

func strArgs(args [][]byte) []string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	return s
}

func (h *testHost) hasLog(line string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		if l == line {
			return true
		}
	}
	return false
}

// newRuntime starts a Runtime whose compiled modules are cached in a
// directory shared by test runs, so the Go guest compiles once per machine.
func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	r, err := New(context.Background(), Config{CacheDir: filepath.Join(os.TempDir(), "mote-wazero-test-cache")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func guestModule(t testing.TB) []byte {
	t.Helper()
	return testutil.BuildWasm(t, "testdata/guest", true)
}

func load(t testing.TB, r *Runtime, artifact []byte, spec runtime.Spec) runtime.Module {
	t.Helper()
	spec.Artifact = artifact
	if spec.Function == "" {
		spec.Function = "fn"
	}
	m, err := r.Load(context.Background(), spec)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func newInstance(t testing.TB, m runtime.Module) runtime.Instance {
	t.Helper()
	inst, err := m.NewInstance(context.Background())
	if err != nil {
		t.Fatalf("NewInstance: %v", err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

func event(payload string, h host.Host) *runtime.Event {
	return &runtime.Event{ID: "inv-1", Root: "inv-1", Payload: []byte(payload), Host: h}
}
