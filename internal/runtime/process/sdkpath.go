package process

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/sandbox"

	jssdk "github.com/mote-run/mote/sdk/js"
	pysdk "github.com/mote-run/mote/sdk/python"
)

// The SDKs for process functions ship inside the mote binary (sdk/python
// and sdk/js embed their sources) and are written out once per start by
// ExtractSDKs, so that a function needs no copy of its own:
//
//	ROOT/node_modules/mote/   the JS SDK; Node's ESM resolution walks up from
//	                          a handler file to it, so `import ... from "mote"`
//	                          works in any function directory below ROOT
//	ROOT/.mote-python/mote/   the Python SDK, found through PYTHONPATH
//
// A function that bundles its own copy still gets it: the function's
// directory comes first in both languages' search paths.
const (
	sdkJSDir     = "node_modules/mote"
	sdkPythonDir = ".mote-python"
)

// SDKs locates the SDKs that ExtractSDKs wrote under Root.
type SDKs struct {
	Root string
}

// ExtractSDKs writes the SDKs embedded in the binary under root, which
// should be the directory holding the function directories (or an ancestor
// of them) for `import "mote"` to resolve in JavaScript. Directories are
// made 0755 and files 0644, readable by the unprivileged user functions
// run as (root and its parents must let that user through). Each file is
// replaced atomically, and only when its content differs, so instances
// running through a restart keep reading whole files; files the SDK no
// longer has are removed. It is meant to run once at start, before any
// instance starts.
func ExtractSDKs(root string) (SDKs, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return SDKs{}, fmt.Errorf("process: sdk root: %w", err)
	}
	s := SDKs{Root: root}
	if err := extract(pysdk.FS, "mote", s.PythonPath()+"/mote"); err != nil {
		return SDKs{}, err
	}
	if err := extract(jssdk.FS, ".", s.JSDir()); err != nil {
		return SDKs{}, err
	}
	return s, nil
}

// precompilePython writes the Python SDK's bytecode next to it with the
// python3 functions will find on path, if there is one. Functions cannot
// write into the SDK's directory, so without it every Python instance
// compiled the SDK's source again at start (~4 ms of a ~37 ms interpreter
// start with `import mote`, measured with /usr/bin/python3 3.11). A
// failure only costs that time, and is logged.
func precompilePython(ctx context.Context, log *slog.Logger, dir, path string) {
	py, err := sandbox.LookPath("python3", dir, []string{"PATH=" + path})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "compileall", "-q", filepath.Join(dir, "mote"))
	cmd.Env = []string{"PATH=" + path, "LANG=C.UTF-8"}
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Warn("process: could not precompile the Python SDK; Python functions compile it at each start", "err", err, "output", string(out))
		return
	}
	// The bytecode must be readable by every function's user.
	_ = filepath.WalkDir(filepath.Join(dir, "mote"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			mode := os.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			_ = os.Chmod(p, mode)
		}
		return nil
	})
}

// PythonPath is the directory to put on a function's PYTHONPATH.
func (s SDKs) PythonPath() string { return filepath.Join(s.Root, sdkPythonDir) }

// JSDir is the directory of the JS SDK's package (index.mjs, bootstrap.mjs).
func (s SDKs) JSDir() string { return filepath.Join(s.Root, filepath.FromSlash(sdkJSDir)) }

// JSBootstrap is the JS SDK's bootstrap, for `node JSBootstrap() file.export`.
func (s SDKs) JSBootstrap() string { return filepath.Join(s.JSDir(), "bootstrap.mjs") }

// Env returns env with the Python SDK appended to PYTHONPATH (after the
// function's own entries, so a bundled copy wins). env is not modified.
func (s SDKs) Env(env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	if p := out["PYTHONPATH"]; p != "" {
		out["PYTHONPATH"] = p + string(os.PathListSeparator) + s.PythonPath()
	} else {
		out["PYTHONPATH"] = s.PythonPath()
	}
	return out
}

// Command returns argv with the documented JS handler form, `node
// node_modules/mote/bootstrap.mjs file.export`, pointed at the extracted
// bootstrap when the function directory dir has no such file of its own.
// Any other command is returned as it is. argv is not modified.
func (s SDKs) Command(argv []string, dir string) []string {
	if len(argv) < 2 || (filepath.Base(argv[0]) != "node" && filepath.Base(argv[0]) != "nodejs") {
		return argv
	}
	for i, a := range argv[1:] {
		if strings.HasPrefix(a, "-") {
			continue // a node option; the script is the first other word
		}
		if path.Clean(a) != sdkJSDir+"/bootstrap.mjs" {
			return argv
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(a))); err == nil {
			return argv
		}
		out := append([]string(nil), argv...)
		out[i+1] = s.JSBootstrap()
		return out
	}
	return argv
}

// extract writes the regular files of fsys under dir (not recursively:
// both SDKs are flat) to dst, and removes other regular files from dst.
func extract(fsys fs.FS, dir, dst string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("process: embedded sdk: %w", err)
	}
	if err := mkdirs(dst); err != nil {
		return err
	}
	if err := os.Chmod(dst, 0o755); err != nil { // the SDK's own directory
		return fmt.Errorf("process: sdk: %w", err)
	}
	want := make(map[string]bool, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("process: embedded sdk: %w", err)
		}
		want[e.Name()] = true
		if err := writeIfChanged(filepath.Join(dst, e.Name()), b); err != nil {
			return err
		}
	}
	have, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("process: sdk: %w", err)
	}
	for _, e := range have {
		if e.Type().IsRegular() && !want[e.Name()] {
			if err := os.Remove(filepath.Join(dst, e.Name())); err != nil {
				return fmt.Errorf("process: sdk: %w", err)
			}
		}
	}
	return nil
}

// mkdirs makes dir and its missing parents 0755, whatever the umask;
// directories that exist are left as they are.
func mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("process: sdk: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("process: sdk: %w", err)
	}
	return nil
}

// writeIfChanged replaces name with b through a temp file and a rename,
// unless it already holds b.
func writeIfChanged(name string, b []byte) error {
	if old, err := os.ReadFile(name); err == nil && bytes.Equal(old, b) {
		if err := os.Chmod(name, 0o644); err != nil {
			return fmt.Errorf("process: sdk: %w", err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-")
	if err != nil {
		return fmt.Errorf("process: sdk: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("process: sdk: %w", err)
	}
	return nil
}
