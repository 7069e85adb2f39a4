package flow

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/store"
)

const helperEnv = "MOTE_FLOW_KILL_HELPER_DIR"

// TestAsyncSurvivesSIGKILL queues an async parent in a child process, lets
// it complete 5 of its 10 children, kills the process with SIGKILL and
// starts an engine on the same data directory: the parent runs again,
// replays the 5 journaled children and runs only the other 5.
func TestAsyncSurvivesSIGKILL(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("helper process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var id string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "ID "); ok {
			id = v
		}
		if line == "HALF" {
			break
		}
	}
	if id == "" {
		t.Fatalf("helper gave no id (scan error %v)", sc.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	h := &harness{t: t, dir: dir, r: newGoRunner(), p: &policies{}}
	h.cfg = Config{Runner: h.r, Functions: h.p, Clock: &fakeClock{}}
	h.fn("child", Policy{}, 0, echo)
	h.fn("parent", Policy{}, 0, tenChildren(nil))
	h.open()
	t.Cleanup(h.close)
	if err := h.e.Start(); err != nil {
		t.Fatal(err)
	}
	n := h.waitStatus(id)
	if n.Status != StatusSucceeded || string(n.Output) != "0123456789" {
		t.Fatalf("after restart: %s %q (%s)", n.Status, n.Output, n.ErrorMessage)
	}
	if got, want := h.r.executions("child"), 5; got != want {
		t.Errorf("children run after the restart = %d, want %d", got, want)
	}
}

// tenChildren calls child 10 times; with half set, it calls half() after 5
// and never returns.
func tenChildren(half func()) goFunc {
	return func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		var out []byte
		for i := 0; i < 10; i++ {
			if i == 5 && half != nil {
				half()
				select {}
			}
			o, err := call(ctx, ev, OpInvoke, "child", fmt.Sprint(i))
			if err != nil {
				return nil, err
			}
			out = append(out, o...)
		}
		return out, nil
	}
}

// TestKillHelper is the process TestAsyncSurvivesSIGKILL kills.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("run by TestAsyncSurvivesSIGKILL")
	}
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, p := newGoRunner(), &policies{}
	var e *Engine
	p.set("child", Policy{})
	r.add("child", 0, echo)
	p.set("parent", Policy{})
	r.add("parent", 0, tenChildren(func() {
		// The journal is in-flight state (no fsync), but it is in the
		// kernel once committed and Pebble's WAL writer has run: that is
		// what SIGKILL leaves behind.
		e.w.flush()
		time.Sleep(100 * time.Millisecond)
		fmt.Println("HALF")
	}))
	e, err = New(Config{Runner: r, Functions: p, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	o, err := e.Invoke(context.Background(), Request{Function: "parent", Async: true})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ID", o.ID)
	select {}
}
