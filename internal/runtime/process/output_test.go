package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// outsideLines is how many 1 KiB lines the "outside" test function
// writes between invocations.
const outsideLines = 1024

// TestOutputOutsideInvocation: what a function writes after its
// invocation ended goes to the function's own output (Spec.Output), not
// Mote's log, limited to the burst (the clock is frozen, so nothing
// refills), with one notice counting the rest. Before, every byte went to
// the server's logger.
func TestOutputOutsideInvocation(t *testing.T) {
	const burst = 64 << 10
	frozen := time.Unix(1_000_000, 0)
	rt, err := New(context.Background(), Config{
		BaseDir: baseDir(t), OutputRate: 1 << 10, OutputBurst: burst,
		Now: func() time.Time { return frozen },
		// The function writes while idle: it must not be frozen first.
		FreezeAfter: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	var mu sync.Mutex
	var lines []string
	spec := testSpec("outside")
	spec.Output = func(stream, line string) {
		mu.Lock()
		lines = append(lines, stream+" "+line)
		mu.Unlock()
	}
	in := startInstance(t, rt, spec).(*instance)
	if _, _, err := in.Invoke(context.Background(), event("")); err != nil {
		t.Fatal(err)
	}
	// The function's TMPDIR, as Mote (root) reaches it: its own /tmp is
	// seen through its init's root.
	tmp := filepath.Join(in.dir, "tmp")
	if in.proc.OwnRoot() {
		tmp = filepath.Join("/proc", strconv.Itoa(in.proc.Pid()), "root", "tmp")
	}
	if err := os.WriteFile(filepath.Join(tmp, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the function did not exit")
	}
	pumped := make(chan struct{})
	go func() { in.out.wg.Wait(); close(pumped) }()
	select {
	case <-pumped:
	case <-time.After(10 * time.Second):
		t.Fatal("the output was not read to its end")
	}
	mu.Lock()
	defer mu.Unlock()
	var kept int
	var notices []string
	for _, l := range lines {
		switch stream, text, _ := strings.Cut(l, " "); stream {
		case "stdout":
			kept += len(text) + 1
		case "platform":
			notices = append(notices, text)
		default:
			t.Errorf("line on stream %q", stream)
		}
	}
	if kept != burst {
		t.Errorf("bytes kept: got %d, want the burst, %d", kept, burst)
	}
	want := fmt.Sprintf("mote: %d bytes of output written outside an invocation were dropped", outsideLines<<10-burst)
	if len(notices) != 1 || !strings.HasPrefix(notices[0], want) {
		t.Errorf("notices: got %q, want one starting %q", notices, want)
	}
}

// TestTokenBucket: a bucket starts full, refills at its rate up to its
// burst, and refuses what it does not hold.
func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	b := newTokenBucket(1000, 500, func() time.Time { return now })
	for _, step := range []struct {
		advance time.Duration
		take    int64
		want    bool
	}{
		{0, 500, true},
		{0, 1, false},
		{100 * time.Millisecond, 100, true}, // 100 gained
		{0, 1, false},
		{10 * time.Second, 501, false}, // refilled to the burst, no more
		{0, 500, true},
		{999 * time.Microsecond, 1, false}, // under a whole token
		{time.Microsecond, 1, true},
	} {
		now = now.Add(step.advance)
		if got := b.take(step.take); got != step.want {
			t.Errorf("after +%v, take(%d): got %v, want %v", step.advance, step.take, got, step.want)
		}
	}
}
