package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/gobuild"
)

// TestMapReduceExample runs examples/mapreduce end to end at a small size
// against a real mote serve, as its README says to: it builds and deploys
// the function, runs word count and sort with a map task that fails its
// first attempt, and checks the answers against GNU coreutils (the runner
// exits non-zero on a wrong answer). Once as a native process function,
// once as a wasm reactor.
func TestMapReduceExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the MapReduce example")
	}
	runner := filepath.Join(t.TempDir(), "mapreduce")
	if out, err := exec.Command(gobuild.Go(), "build", "-C", "../../examples/mapreduce", "-o", runner, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the runner: %v\n%s", err, out)
	}
	s := startServer(t)
	for _, tc := range []struct {
		runtime, jobs, failMode string
	}{
		{"process", "both", "error"},
		{"wasm", "sort", "exit"},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			cmd := exec.Command(runner, "-server", s.url, "-mote", moteBinary(t), "-runtime", tc.runtime,
				"-job", tc.jobs, "-size", "3MiB", "-maps", "5", "-reduces", "3",
				"-fail-map", "2", "-fail-mode", tc.failMode, "-work", t.TempDir(), "-json")
			cmd.Dir = "../../examples/mapreduce"
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(gobuild.Go())+string(os.PathListSeparator)+os.Getenv("PATH"))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("mapreduce: %v\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if want := map[string]int{"both": 2, "sort": 1}[tc.jobs]; len(lines) != want {
				t.Fatalf("got %d results, want %d:\n%s\n%s", len(lines), want, out, stderr.String())
			}
			for _, line := range lines {
				var r struct {
					Job          string `json:"job"`
					Checked      bool   `json:"checked"`
					Retried      int    `json:"retried"`
					Maps         int    `json:"maps"`
					ShuffleBytes int64  `json:"shuffle_bytes"`
				}
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("result %q: %v", line, err)
				}
				if !r.Checked || r.Retried != 1 || r.Maps != 5 || r.ShuffleBytes == 0 {
					t.Errorf("%s: got %+v, want checked, 1 task retried, 5 maps, a shuffle", r.Job, r)
				}
			}
		})
	}
}
