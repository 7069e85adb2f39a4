package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const durabilityChildEnv = "MOTE_STORE_DURABILITY_CHILD"

// durabilityChild runs in the re-executed test binary: 4 writers put
// durable keys as fast as they can and print each key once its Put has
// returned, until the parent kills the process.
func durabilityChild(dir string) {
	db, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	kv, err := OpenKV(db, KVConfig{Durability: Durable})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d/%08d", w, i)
				if _, err := kv.Put("dur", key, []byte("value-"+key), WriteOptions{}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintln(os.Stdout, key)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestDurableWritesSurviveKill SIGKILLs a process in the middle of a
// durable write load, then checks that every write it acknowledged is in
// the reopened database and that the database opens and scans clean.
func TestDurableWritesSurviveKill(t *testing.T) {
	dir := t.TempDir()
	child := startCrashChild(t, "^$", durabilityChildEnv, dir)
	var acked []string
	deadline := time.Now().Add(5 * time.Second)
	for child.out.Scan() {
		acked = append(acked, child.out.Text())
		if len(acked) == 1000 || time.Now().After(deadline) {
			break
		}
	}
	child.kill(t, func(line string) { // acknowledged before the kill, still in the pipe
		if line != "" {
			acked = append(acked, line)
		}
	})
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d writes; stderr: %s", len(acked), child.stderr.String())
	}

	db, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	kv, err := OpenKV(db, KVConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	var lost []string
	for _, key := range acked {
		e, err := kv.Get("dur", key)
		if err != nil || string(e.Value) != "value-"+key {
			lost = append(lost, key)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes lost, e.g. %v", len(lost), len(acked), lost[:min(5, len(lost))])
	}
	n := 0
	if err := db.Scan([]byte(PrefixKV), func(_, v []byte) bool {
		if _, _, _, ok := decodeRecord(v); !ok {
			t.Errorf("corrupt record after crash")
			return false
		}
		n++
		return true
	}); err != nil {
		t.Errorf("scan after crash: %v", err)
	}
	if n < len(acked) {
		t.Errorf("scan found %d records, want ≥ %d", n, len(acked))
	}
	if err := pebbleOf(db).CheckLevels(nil); err != nil {
		t.Errorf("CheckLevels after crash: %v", err)
	}
	t.Logf("%d acknowledged durable writes, all present after SIGKILL", len(acked))
}

// crashChild is this test binary run again as a child that writes to a
// store and prints what it acknowledged, for a parent that SIGKILLs it.
type crashChild struct {
	cmd    *exec.Cmd
	out    *bufio.Scanner // the child's acknowledgements, a line each
	stderr strings.Builder
}

// startCrashChild runs the tests matching run in a child whose env names
// dir as the store's directory.
func startCrashChild(t *testing.T, run, env, dir string) *crashChild {
	t.Helper()
	c := &crashChild{cmd: exec.Command(os.Args[0], "-test.run="+run)}
	c.cmd.Env = append(os.Environ(), env+"="+dir)
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(out)
	return c
}

// kill SIGKILLs the child, hands rest the lines it printed before dying
// that were not read yet, and checks that the kill is what ended it.
func (c *crashChild) kill(t *testing.T, rest func(line string)) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for c.out.Scan() {
		rest(c.out.Text())
	}
	werr := c.cmd.Wait()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL; stderr: %s", werr, c.stderr.String())
	}
}
