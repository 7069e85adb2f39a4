// Package gobuild builds Go functions with the local Go toolchain: the
// demo, the benchmark harness and the tests build the examples from source
// (the repository holds no prebuilt binaries).
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Wasm compiles the Go main package in dir to a wasip1 module at out; with
// reactor, as a c-shared reactor (the Go SDK's form).
func Wasm(dir, out string, reactor bool) error {
	args := []string{"-trimpath"}
	if reactor {
		args = append(args, "-buildmode=c-shared")
	}
	return build(dir, out, []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}, args...)
}

// Native compiles the Go main package in dir for this machine at out.
func Native(dir, out string) error {
	return build(dir, out, []string{"CGO_ENABLED=0"}, "-trimpath")
}

func build(dir, out string, env []string, args ...string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command(Go(), append(append([]string{"build", "-o", abs}, args...), ".")...)
	cmd.Dir = dir
	// A go.work above the function's module must not change its build.
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", dir, err, b)
	}
	return nil
}

// Go returns the go command: GOROOT's, then PATH's, then /usr/local/go's.
func Go() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); exists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// Version returns the toolchain's version, e.g. "go1.26.8".
func Version() string {
	b, err := exec.Command(Go(), "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
