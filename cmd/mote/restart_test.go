package main

import (
	"github.com/mote-run/mote/internal/testutil"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestartRunsCachedWasm restarts mote serve on its data directory:
// the second process runs the function from the compiled code the first
// left in DATA/wasm-cache (without compiling it again), and both shut
// down cleanly on SIGTERM right after a burst of nested calls, while the
// pools may still be warming instances. The logs survive the restarts.
func TestRestartRunsCachedWasm(t *testing.T) {
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	data := t.TempDir()
	cache := filepath.Join(data, "wasm-cache")

	s := startServerIn(t, data)
	if code, _, errOut := s.mote(t, "deploy", "g", guest, "--invoke", "g"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	chains(t, s, 20)
	stop(t, s)
	before := testutil.FileStamps(t, cache)
	if len(before) == 0 {
		t.Fatal("the first server left no compiled code in DATA/wasm-cache")
	}

	s = startServerIn(t, data)
	// The first server's logs survived it: the reports of its chains.
	if code, out, errOut := s.mote(t, "logs", "g", "-n", "5"); code != 0 || strings.Count(out, "REPORT RequestId: ") != 5 {
		t.Errorf("logs after a restart: code %d out %q err %q, want 5 REPORT lines", code, out, errOut)
	}
	chains(t, s, 100)
	stop(t, s)

	// SIGTERM under load: the last nested calls make the pool pre-warm
	// instances in the background while the server shuts down. One
	// client: concurrent chains can exhaust the pool's nested headroom
	// and wait for their deadline, which would hold the drain.
	for range 3 {
		s = startServerIn(t, data)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				resp, err := http.Post(s.url+"/fn/g", "text/plain", strings.NewReader("chain:10"))
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		stop(t, s)
		<-done
	}
	if after := testutil.FileStamps(t, cache); !maps.Equal(before, after) {
		t.Errorf("the restarted server compiled again: cache before %v, after %v", before, after)
	}
}

// chains invokes g with chain:10 (11 nested invocations) n times.
func chains(t *testing.T, s *server, n int) {
	t.Helper()
	for i := range n {
		resp, err := http.Post(s.url+"/fn/g", "text/plain", strings.NewReader("chain:10"))
		if err != nil {
			t.Fatalf("invocation %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "depth 10" {
			t.Fatalf("invocation %d: got %d %q, want 200 \"depth 10\"", i, resp.StatusCode, b)
		}
	}
}

// stop sends s SIGTERM and wants a clean exit.
func stop(t *testing.T, s *server) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
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
