package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/gobuild"
)

// TestREADMETour runs the README's five-minute tour, block by block, as
// a user would paste it, against a server of its own: ./mote is the
// binary under test, /tmp/ a directory of the test's, the default server
// address the test server's. What needs more
// than Go and the repository is left out and logged: the block that
// needs a TLS certificate, curl if it is missing, and the lines that
// fetch AWS modules when the Go module proxy cannot be reached.
func TestREADMETour(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tour := string(readme)
	start := strings.Index(tour, "## Five-minute tour")
	end := strings.Index(tour, "## How fast")
	if start < 0 || end < start {
		t.Fatal("README has no five-minute tour section")
	}
	tour = tour[start:end]
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(tour, -1)
	if len(blocks) < 6 {
		t.Fatalf("found %d sh blocks in the tour, want at least 6", len(blocks))
	}

	s := startServer(t)
	bin := moteBinary(t)
	tmp := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	_, curlErr := exec.LookPath("curl")
	awsOK := exec.Command(gobuild.Go(), "mod", "download", "github.com/aws/aws-lambda-go").Run() == nil
	if !awsOK {
		t.Log("the Go module proxy is not reachable: the lines that build with aws-lambda-go or the AWS SDK are left out")
	}
	// The go command the tests use is the one the tour finds first.
	path := filepath.Dir(gobuild.Go()) + string(os.PathListSeparator) + os.Getenv("PATH")
	env := append(os.Environ(), "MOTE_SERVER="+s.url, "GOWORK=off", "PATH="+path)
	ran := 0
	for _, b := range blocks {
		block := b[1]
		if strings.Contains(block, "--tls-cert") {
			t.Log("left out: the block that needs a TLS certificate")
			continue
		}
		var script []string
		for _, line := range strings.Split(block, "\n") {
			trim := strings.TrimSpace(line)
			switch {
			case trim == "" || strings.HasPrefix(trim, "#"):
				continue
			case strings.HasPrefix(trim, "go build -o mote"), strings.HasPrefix(trim, "./mote serve"):
				continue // the test's binary and server stand in
			case strings.HasPrefix(trim, "curl") && curlErr != nil:
				t.Logf("left out (no curl): %s", trim)
				continue
			case !awsOK && (strings.Contains(line, "hello-go-lambda") || strings.Contains(line, "golambda") || strings.Contains(line, "aws-sdk-invoke")):
				t.Logf("left out (no module proxy): %s", trim)
				continue
			}
			line = strings.ReplaceAll(line, "/tmp/", tmp+"/")
			line = strings.ReplaceAll(line, "http://127.0.0.1:8080", s.url)
			line = strings.ReplaceAll(line, "./mote ", bin+" ")
			script = append(script, line)
		}
		if len(script) == 0 {
			continue
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
		cmd.Dir = root
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tour block failed: %v\n--- block\n%s\n--- output\n%s", err, strings.Join(script, "\n"), out)
		}
		ran++
	}
	if ran < 6 {
		t.Fatalf("ran %d blocks of the tour, want at least 6", ran)
	}
}
