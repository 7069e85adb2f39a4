package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/registry"
)

// TestNewDeployOutsideRepo writes each template into a directory outside
// the repository, builds it with the module proxy off (the Go SDK must
// come from the binary), deploys it with `mote deploy DIR` and invokes it.
// Fails without the SDK copy: the go-wasm and go builds cannot resolve
// github.com/mote-run/mote/sdk/go.
func TestNewDeployOutsideRepo(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	s := startServer(t)
	tests := []struct {
		tmpl, event, want string
		needs             string // a command the template's runtime needs
	}{
		{"go-wasm", "Ada", "hello, Ada", ""},
		{"wasi", "Ada", "hello, Ada", ""},
		{"go", "Ada", "hello, Ada", ""},
		{"python", `{"name":"Ada"}`, `"greeting": "hello, Ada"`, "python3"},
		{"node", `{"name":"Ada"}`, `"greeting":"hello, Ada"`, "node"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			if tt.needs != "" {
				if _, err := exec.LookPath(tt.needs); err != nil {
					t.Skipf("%s is not installed", tt.needs)
				}
			}
			name := "fn-" + tt.tmpl
			dir := filepath.Join(t.TempDir(), name)
			if code, out, errOut := local(t, "new", name, "--template", tt.tmpl, "--dir", dir); code != 0 {
				t.Fatalf("mote new: code %d %s %s", code, out, errOut)
			}
			if code, out, errOut := s.mote(t, "deploy", dir); code != 0 || !strings.Contains(out, "deployed "+name+" version 1") {
				t.Fatalf("mote deploy DIR: code %d out %q err %q", code, out, errOut)
			}
			code, out, errOut := s.mote(t, "invoke", name, "-d", tt.event)
			if code != 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("invoke: code %d out %q err %q, want %q", code, out, errOut, tt.want)
			}
		})
	}
}

// TestRedeployKeepsConfig: a redeploy changes only what a flag or
// mote.json names; --reset starts from the defaults.
func TestRedeployKeepsConfig(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "keep")
	if code, _, errOut := local(t, "new", "keep", "--template", "python", "--dir", dir); code != 0 {
		t.Fatal(errOut)
	}
	// Junk that .moteignore (and the defaults) keep out of the upload.
	for _, p := range []string{".git/objects/big", "__pycache__/handler.pyc"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		junk := make([]byte, 2<<20)
		for i := range junk {
			junk[i] = byte(i * 7919 >> 3)
		}
		if err := os.WriteFile(filepath.Join(dir, p), junk, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	config := func() registry.Config {
		t.Helper()
		code, out, errOut := s.mote(t, "config", "keep", "--json")
		if code != 0 {
			t.Fatalf("mote config: %s", errOut)
		}
		var c registry.Config
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("mote config --json: %v in %q", err, out)
		}
		return c
	}
	if code, _, errOut := s.mote(t, "deploy", dir, "--min-warm", "1", "--env", "A=B", "--read", "r"); code != 0 {
		t.Fatal(errOut)
	}
	if code, out, _ := s.mote(t, "info", "keep"); code != 0 || !strings.Contains(out, "version 1 of 1") {
		t.Fatalf("info: %q", out)
	}
	var f struct {
		Versions []registry.Version `json:"versions"`
	}
	_, out, _ := s.mote(t, "info", "keep", "--json")
	if err := json.Unmarshal([]byte(out), &f); err != nil || len(f.Versions) != 1 {
		t.Fatalf("info --json: %v %q", err, out)
	}
	if size := f.Versions[0].Size; size > 64<<10 {
		t.Errorf("uploaded %d bytes: .git or __pycache__ was not left out", size)
	}
	if code, _, errOut := s.mote(t, "deploy", dir); code != 0 {
		t.Fatal(errOut)
	}
	c := config()
	if c.MinWarm != 1 || c.Env["A"] != "B" || len(c.Permissions.Read) != 1 || c.Memory != 128<<20 || c.Handler == "" {
		t.Fatalf("after a redeploy with no flags: %+v, want min_warm 1, env A=B, read [r], memory 128MiB from mote.json", c)
	}
	if code, _, errOut := s.mote(t, "deploy", dir, "--memory", "256MiB"); code != 0 {
		t.Fatal(errOut)
	}
	if c := config(); c.Memory != 256<<20 || c.MinWarm != 1 {
		t.Fatalf("after --memory: %+v", c)
	}
	// A Go function deployed as a process function stays one when
	// redeployed with nothing said (its go.mod alone would build a reactor).
	gdir := filepath.Join(t.TempDir(), "g")
	if code, _, errOut := local(t, "new", "g", "--template", "go", "--dir", gdir); code != 0 {
		t.Fatal(errOut)
	}
	os.Remove(filepath.Join(gdir, "mote.json"))
	if code, _, errOut := s.mote(t, "deploy", "g", gdir, "--runtime", "process"); code != 0 {
		t.Fatal(errOut)
	}
	if code, out, errOut := s.mote(t, "deploy", "g", gdir); code != 0 || !strings.Contains(out, "(process,") {
		t.Fatalf("redeploy of a process function's Go sources: %q %q", out, errOut)
	}
	if code, _, errOut := s.mote(t, "deploy", dir, "--reset"); code != 0 {
		t.Fatal(errOut)
	}
	if c := config(); c.MinWarm != 0 || c.Env != nil || c.Memory != 128<<20 {
		t.Fatalf("after --reset: %+v, want mote.json's config alone", c)
	}
}

// local runs a command that talks to no server.
func local(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestDeployShowsBuildErrors: a source that does not compile fails the
// deploy with the compiler's own message, and nothing is deployed.
func TestDeployShowsBuildErrors(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "broken")
	if code, _, errOut := local(t, "new", "broken", "--template", "wasi", "--dir", dir); code != 0 {
		t.Fatal(errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := s.mote(t, "deploy", dir)
	if code != 1 || !strings.Contains(errOut, "building ") || !strings.Contains(errOut, "main.go:3") || !strings.Contains(errOut, "undefined: undefinedThing") {
		t.Fatalf("deploy of a broken build: code %d, stderr %q", code, errOut)
	}
	if code, _, _ := s.mote(t, "info", "broken"); code != 1 {
		t.Fatal("a failed build deployed something")
	}
}

// TestNewHTTPFunctionBehindARoute: the http-go template deploys outside
// the repo as an HTTP function and answers a request through a public
// route with the path after the route.
func TestNewHTTPFunctionBehindARoute(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "greeter")
	if code, out, errOut := local(t, "new", "greeter", "--template", "http-go", "--dir", dir); code != 0 {
		t.Fatalf("mote new: code %d %s %s", code, out, errOut)
	}
	if code, out, errOut := s.mote(t, "deploy", dir); code != 0 || !strings.Contains(out, "deployed greeter version 1") {
		t.Fatalf("mote deploy DIR: code %d out %q err %q", code, out, errOut)
	}
	if code, out, errOut := s.mote(t, "route", "add", "/greeter/*", "greeter", "--public"); code != 0 {
		t.Fatalf("mote route add: code %d out %q err %q", code, out, errOut)
	}
	resp, err := http.Get(s.url + "/greeter/hello/Ada")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"greeting":"hello, Ada"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /greeter/hello/Ada: %d %q %v; want 200 application/json with the greeting", resp.StatusCode, body, resp.Header)
	}
}
