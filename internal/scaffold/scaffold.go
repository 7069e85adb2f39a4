// Package scaffold writes new functions from templates (`mote new`) and
// the Go SDK's sources (`mote sdk go`), both carried inside the mote
// binary, so that a function builds on a machine with only Go (or Python,
// or Node) and no access to an unpublished module.
//
// A Go template's go.mod requires github.com/mote-run/mote/sdk/go and
// replaces it with the copy written under .mote/sdk/go: the go command
// skips directories starting with '.' in ./..., and the copy is its own
// module. gosdk.txtar is that copy; TestGoSDKCopyIsCurrent fails when it
// differs from sdk/go (go test ./internal/scaffold -update rewrites it).
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

//go:embed all:templates
var templates embed.FS

//go:embed gosdk.txtar
var goSDK []byte

// GoSDKModule is the module path of the Go SDK.
const GoSDKModule = "github.com/mote-run/mote/sdk/go"

// GoSDKDir is where a Go function's copy of the SDK lives, relative to
// its directory.
const GoSDKDir = ".mote/sdk/go"

// Template describes one template.
type Template struct {
	Name    string
	Summary string
}

var summaries = map[string]string{
	"go":            "Go SDK, native process function (Lambda Runtime API)",
	"go-wasm":       "Go SDK, wasm reactor: instantiated once, warm invocations in microseconds",
	"http-go":       "Go SDK HTTP function: a net/http handler behind a route, wasm reactor",
	"wasi":          "plain WASI command in Go: event on stdin, result on stdout, no SDK",
	"python":        "Python process function with Mote's SDK (import mote)",
	"node":          "Node.js (ESM) process function with Mote's SDK (import from \"mote\")",
	"aws-lambda-go": "unchanged aws-lambda-go function (needs the module from the Go proxy)",
}

// Templates lists the templates, by name.
func Templates() []Template {
	ents, _ := templates.ReadDir("templates")
	var out []Template
	for _, e := range ents {
		out = append(out, Template{Name: e.Name(), Summary: summaries[e.Name()]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ErrExists is returned when the target directory exists and is not empty.
var ErrExists = errors.New("scaffold: directory exists and is not empty")

// New writes template tmpl for a function called name into dir, which
// must not exist or be empty. Files ending in .tmpl are expanded with
// {{.Name}} and lose the suffix.
func New(dir, name, tmpl string) error {
	root := "templates/" + tmpl
	if _, err := fs.Stat(templates, root); err != nil {
		var names []string
		for _, t := range Templates() {
			names = append(names, t.Name)
		}
		return fmt.Errorf("unknown template %q (one of %s)", tmpl, strings.Join(names, ", "))
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%w: %s", ErrExists, dir)
	}
	data := struct{ Name string }{name}
	err := fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		if r, ok := strings.CutSuffix(rel, ".tmpl"); ok {
			t, err := template.New(rel).Delims("[[", "]]").Parse(string(b))
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := t.Execute(&out, data); err != nil {
				return err
			}
			rel, b = r, out.Bytes()
		}
		return writeFile(filepath.Join(dir, filepath.FromSlash(rel)), b)
	})
	if err != nil {
		return err
	}
	// A template whose go.mod requires the Go SDK gets the copy its
	// replace directive points at.
	if mod, err := templates.ReadFile(root + "/go.mod.tmpl"); err == nil && strings.Contains(string(mod), GoSDKModule) {
		return WriteGoSDK(filepath.Join(dir, filepath.FromSlash(GoSDKDir)))
	}
	return nil
}

// WriteGoSDK writes the Go SDK's module (go.mod and sources) into dir,
// replacing an earlier copy there; it refuses a directory that holds
// anything else.
func WriteGoSDK(dir string) error {
	files, err := parseArchive(goSDK)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		if !bytes.HasPrefix(mod, []byte("module "+GoSDKModule+"\n")) {
			return fmt.Errorf("%w: %s holds something other than a copy of %s", ErrExists, dir, GoSDKModule)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(f.Name)), f.Data); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}
