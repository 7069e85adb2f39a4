// Package testutil holds helpers shared by tests across Mote's packages.
package testutil

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mote-run/mote/internal/gobuild"
)

var (
	builtMu sync.Mutex
	built   = map[string][]byte{} // key: source hash
)

// BuildWasm builds the Go module in dir (GOOS=wasip1 GOARCH=wasm; with
// -buildmode=c-shared when reactor is true) and returns the wasm bytes.
//
// A build takes seconds, so results are cached twice: in memory for the
// test binary, and on disk under os.TempDir keyed by a hash of the Go
// version and every source the build reads (dir and the local directories
// its go.mod replaces modules with), so the tests of several packages share
// one build. dir is relative to the test's working directory (its package).
func BuildWasm(t testing.TB, dir string, reactor bool) []byte {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	key, err := sourceHash(abs, reactor)
	if err != nil {
		t.Fatalf("BuildWasm(%s): hashing sources: %v", dir, err)
	}

	builtMu.Lock()
	defer builtMu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	cached := filepath.Join(os.TempDir(), "mote-wasm-cache", key+".wasm")
	if b, err := os.ReadFile(cached); err == nil {
		built[key] = b
		return b
	}

	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(cached), key+".*.tmp")
	if err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := gobuild.Wasm(abs, tmp.Name(), reactor); err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	// Rename is atomic, so a concurrent test binary reads either nothing
	// or a whole module.
	if err := os.Rename(tmp.Name(), cached); err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	built[key] = b
	return b
}

// sourceHash hashes what a build of dir depends on: the Go version, the
// build mode, and the files under dir and under every local replacement
// directory named in dir/go.mod.
func sourceHash(dir string, reactor bool) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s reactor=%v\n", runtime.Version(), runtime.GOROOT(), reactor)
	dirs := []string{dir}
	local, err := localReplacements(dir)
	if err != nil {
		return "", err
	}
	dirs = append(dirs, local...)
	for _, d := range dirs {
		if err := hashTree(h, d); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// localReplacements returns the absolute directories that dir/go.mod's
// replace directives point at (paths starting with "." or "/").
func localReplacements(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, target, ok := strings.Cut(sc.Text(), "=>")
		if !ok {
			continue
		}
		fields := strings.Fields(target)
		if len(fields) == 0 {
			continue
		}
		p := fields[0]
		if strings.HasPrefix(p, ".") || strings.HasPrefix(p, "/") {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			out = append(out, filepath.Clean(p))
		}
	}
	return out, sc.Err()
}

// hashTree hashes the names and contents of the Go sources and module files
// under root, in a fixed order.
func hashTree(h io.Writer, root string) error {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch n := d.Name(); {
		case strings.HasSuffix(n, ".go"), n == "go.mod", n == "go.sum":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
	}
	return nil
}
