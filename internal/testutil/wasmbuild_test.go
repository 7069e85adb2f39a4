package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// wasmMagic is the first 8 bytes of every wasm binary: "\0asm" and version 1.
var wasmMagic = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

func TestBuildWasm(t *testing.T) {
	tests := []struct {
		dir     string
		reactor bool
	}{
		{"../../examples/hello-wasi", false},
		{"../../examples/hello-reactor", true},
	}
	for _, tt := range tests {
		b := BuildWasm(t, tt.dir, tt.reactor)
		if !bytes.HasPrefix(b, wasmMagic) {
			t.Errorf("BuildWasm(%s): got % x..., want a wasm module", tt.dir, b[:min(len(b), 8)])
		}
		again := BuildWasm(t, tt.dir, tt.reactor)
		if &again[0] != &b[0] {
			t.Errorf("BuildWasm(%s) twice: built again, want the cached module", tt.dir)
		}
	}
}

func TestSourceHashFollowsReplacements(t *testing.T) {
	root := t.TempDir()
	lib := filepath.Join(root, "lib")
	app := filepath.Join(root, "app")
	for _, d := range []string{lib, app} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(app, "go.mod"), "module app\n\nreplace lib => ../lib\n")
	write(filepath.Join(app, "main.go"), "package main\n")
	write(filepath.Join(lib, "lib.go"), "package lib\n")

	h1, err := sourceHash(app, true)
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := sourceHash(app, false); h2 == h1 {
		t.Errorf("hash ignores the build mode")
	}
	write(filepath.Join(lib, "lib.go"), "package lib // changed\n")
	if h3, _ := sourceHash(app, true); h3 == h1 {
		t.Errorf("hash ignores a change in a replaced module")
	}
}
