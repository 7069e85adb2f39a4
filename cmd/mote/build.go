package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
)

// manifest is a function directory's mote.json: the function's config
// (registry.Config's fields), plus what only the CLI reads.
type manifest struct {
	registry.Config
	Name  string `json:"name,omitempty"`  // the function's name when deploy is given only DIR
	Build string `json:"build,omitempty"` // see the build* constants; default: from the sources
	raw   []byte
}

// How `mote deploy` builds a directory's sources before uploading.
const (
	buildGoReactor = "go-reactor" // Go SDK, wasm reactor (c-shared)
	buildGoWASI    = "go-wasi"    // Go, plain WASI command
	buildGoNative  = "go-native"  // Go, native binary for the process runtime
	buildNone      = "none"       // upload the directory as it is
)

func loadManifest(file string) (*manifest, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := &manifest{raw: b}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	switch m.Build {
	case "", buildGoReactor, buildGoWASI, buildGoNative, buildNone:
	default:
		return nil, fmt.Errorf("%s: build %q is not one of %s, %s, %s, %s", file, m.Build, buildGoReactor, buildGoWASI, buildGoNative, buildNone)
	}
	return m, nil
}

// apply sets on c the fields the manifest names, and only those: a list,
// map or group it names replaces c's whole.
func (m *manifest) apply(c *registry.Config) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(m.raw, &keys); err != nil {
		return err
	}
	for k := range keys {
		switch k {
		case "env":
			c.Env = nil
		case "permissions":
			c.Permissions = registry.Permissions{}
		case "retry":
			c.Retry = registry.Retry{}
		case "secrets":
			c.Secrets = nil
		}
	}
	return json.Unmarshal(m.raw, c)
}

// buildKind says how dir's sources are built, given the manifest's
// build field and the function's runtime (empty if not set).
func buildKind(dir, declared string, kind runtime.Kind) string {
	if declared != "" {
		return declared
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return buildNone
	}
	switch {
	case kind == runtime.KindProcess:
		return buildGoNative
	case bytes.Contains(gomod, []byte("github.com/mote-run/mote/sdk/go")):
		return buildGoReactor
	default:
		return buildGoWASI
	}
}

// artifact is what deploy uploads: a file, or a directory packed.
type artifact struct {
	path string
	dir  bool
	tmp  string // removed by cleanup
}

func (a artifact) cleanup() {
	if a.tmp != "" {
		os.RemoveAll(a.tmp)
	}
}

// buildSources builds dir per kind and returns the artifact to upload;
// progress and the compiler's own messages go to log. For go-native the
// binary is named after the handler's command (default ./bootstrap).
func buildSources(dir, kind, handler string, log io.Writer) (artifact, error) {
	if kind == buildNone {
		return artifact{path: dir, dir: true}, nil
	}
	tmp, err := os.MkdirTemp("", "mote-build-*")
	if err != nil {
		return artifact{}, err
	}
	a := artifact{tmp: tmp}
	fmt.Fprintf(log, "building %s (%s, %s)…\n", dir, kind, gobuild.Version())
	if firstBuild() {
		fmt.Fprintln(log, "  the first build compiles the Go standard library for this target and can take a minute or more")
	}
	t0 := time.Now()
	switch kind {
	case buildGoNative:
		bin := "bootstrap"
		if f := strings.Fields(handler); len(f) > 0 {
			bin = filepath.Base(f[0])
		}
		a.path, a.dir = tmp, true
		err = gobuild.Native(dir, filepath.Join(tmp, bin))
	default:
		a.path = filepath.Join(tmp, filepath.Base(filepath.Clean(dir))+".wasm")
		err = gobuild.Wasm(dir, a.path, kind == buildGoReactor)
	}
	if err != nil {
		a.cleanup()
		return artifact{}, err
	}
	var size int64
	filepath.Walk(a.path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return nil
	})
	fmt.Fprintf(log, "built in %s, %.1f MB\n", time.Since(t0).Round(10*time.Millisecond), float64(size)/1e6)
	return a, nil
}

// firstBuild guesses whether the Go build cache is empty, so that a long
// first compile is announced rather than silent.
func firstBuild() bool {
	dir, err := os.UserCacheDir()
	if d := os.Getenv("GOCACHE"); d != "" {
		dir, err = d, nil
	} else if err == nil {
		dir = filepath.Join(dir, "go-build")
	}
	if err != nil {
		return false
	}
	ents, err := os.ReadDir(dir)
	return err != nil || len(ents) < 16
}
