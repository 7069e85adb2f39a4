package system_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/process"
	"github.com/mote-run/mote/internal/sandbox"
	"github.com/mote-run/mote/internal/system"
)

func TestMain(m *testing.M) {
	sandbox.MaybeRunInit() // process instances start as this test binary re-executed
	os.Exit(m.Run())
}

// TestDataDirIsPrivate opens a system on a data directory made 0755 (as
// earlier versions left it), deploys a process function whose mote.json
// holds an env value, and checks that the data directory and what holds
// secrets under it are root's alone: the directory, Pebble's, the
// artifacts', the objects' and the functions' 0700, the unpacked
// mote.json 0600; the code itself stays readable inside its own
// directory, which the sandbox mounts into the function's root. A
// function read another bucket's values from Pebble's WAL, and other
// functions' mote.json, through the 0755 directories (issue 10, item 2;
// fails without the fix).
func TestDataDirIsPrivate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("process functions are sandboxed, which needs root")
	}
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	for _, d := range []string{data, filepath.Join(data, "functions"), filepath.Join(data, "artifacts")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	pr, err := process.New(ctx, process.Config{SDKRoot: filepath.Join(data, "functions")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := system.Open(ctx, system.Config{DataDir: data, Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindProcess: pr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	src := t.TempDir()
	const handler = "/usr/bin/python3 -m mote handler.handler"
	manifest := `{"runtime":"process","handler":"` + handler + `","env":{"API_KEY":"s3cret"}}`
	os.WriteFile(filepath.Join(src, "mote.json"), []byte(manifest), 0o644)
	os.WriteFile(filepath.Join(src, "handler.py"), []byte("import os\ndef handler(event, context):\n    return os.environ['API_KEY']\n"), 0o644)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	var art bytes.Buffer
	if err := registry.Pack(&art, src); err != nil {
		t.Fatal(err)
	}
	cfg := registry.Config{Runtime: runtime.KindProcess, Handler: handler, Env: map[string]string{"API_KEY": "s3cret"}}
	v, err := s.Deploy(ctx, "p", cfg, &art)
	if err != nil {
		t.Fatal(err)
	}
	// The function still reaches its code and the SDK through the
	// private directories: the sandbox mounts them into its own root.
	out, err := s.Invoke(ctx, system.Invocation{Function: "p", Payload: []byte("{}")})
	if err != nil || string(out.Output) != "s3cret" {
		t.Fatalf("invoke: %v; want the function's answer", err)
	}
	code := filepath.Join(data, "functions", v.Artifact)
	for _, tc := range []struct {
		path string
		want fs.FileMode
	}{
		{data, fs.ModeDir | 0o700},
		{filepath.Join(data, "db"), fs.ModeDir | 0o700},
		{filepath.Join(data, "artifacts"), fs.ModeDir | 0o700},
		{filepath.Join(data, "objects"), fs.ModeDir | 0o700},
		{filepath.Join(data, "functions"), fs.ModeDir | 0o700},
		{filepath.Join(data, "artifacts", v.Artifact), 0o600},
		{code, fs.ModeDir | 0o755},
		{filepath.Join(code, "mote.json"), 0o600},
		{filepath.Join(code, "handler.py"), 0o444},
		{filepath.Join(code, "run.sh"), 0o555},
	} {
		fi, err := os.Lstat(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if got := fi.Mode(); got != tc.want {
			rel, _ := filepath.Rel(data, tc.path)
			t.Errorf("%s: mode %v, want %v", rel, got, tc.want)
		}
	}
}
