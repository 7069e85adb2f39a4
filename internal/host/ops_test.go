package host_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/baas"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/host"
)

var update = flag.Bool("update", false, "rewrite the files generated from host.Ops")

const root = "../.."

// The server serves exactly the described ops: the BaaS layer's table,
// the flow engine's four and log.
func TestOpsServed(t *testing.T) {
	served := append(baas.Ops(), flow.OpInvoke, flow.OpInvokeAsync, flow.OpAwait, flow.OpMap, host.OpLog)
	slices.Sort(served)
	var described []string
	consts := map[string]bool{}
	for _, op := range host.Ops {
		described = append(described, op.Name)
		if consts[op.Const] {
			t.Errorf("constant %s named twice", op.Const)
		}
		consts[op.Const] = true
	}
	slices.Sort(described)
	if !slices.Equal(served, described) {
		t.Errorf("served ops %v, described %v", served, described)
	}
}

func TestArity(t *testing.T) {
	for _, tc := range []struct {
		op       string
		min, max int
	}{
		{"log", 1, 1}, {"kv.put", 3, 5}, {"kv.batch", 2, -1}, {"queue.push", 3, -1}, {"eph.list", 0, 3}, {"await", 2, -1},
	} {
		d, ok := host.Describe(tc.op)
		if !ok {
			t.Fatalf("%s not described", tc.op)
		}
		if min, max := d.Arity(); min != tc.min || max != tc.max {
			t.Errorf("%s: got %d..%d, want %d..%d", tc.op, min, max, tc.min, tc.max)
		}
	}
}

// goName is the Go SDK's constant for op: OpKVGet for KV_GET.
func goName(op host.Op) string {
	special := map[string]string{"KV": "KV", "CAS": "CAS", "GETV": "GetV"}
	var b strings.Builder
	b.WriteString("Op")
	for _, p := range strings.Split(op.Const, "_") {
		if s, ok := special[p]; ok {
			b.WriteString(s)
			continue
		}
		b.WriteString(p[:1] + strings.ToLower(p[1:]))
	}
	return b.String()
}

const generatedBy = "generated from internal/host/ops.go by `go generate ./internal/host`; DO NOT EDIT."

// generated returns each generated file's path under root and its content.
func generated(t *testing.T) map[string][]byte {
	t.Helper()
	var g, js, py, md bytes.Buffer
	fmt.Fprintf(&g, "// Code %s\n\npackage mote\n\n// The host ops, for Call. docs/host-api.md describes each.\nconst (\n", generatedBy)
	fmt.Fprintf(&js, "// Code %s\n// The host ops, for call(). docs/host-api.md describes each.\n\n", generatedBy)
	fmt.Fprintf(&py, "# Code %s\n\"\"\"The host ops, for call(). docs/host-api.md describes each.\"\"\"\n\n", generatedBy)
	md.WriteString("| op | args | result | access |\n|---|---|---|---|\n")
	width := 0
	for _, op := range host.Ops {
		width = max(width, len(goName(op)))
	}
	for _, op := range host.Ops {
		fmt.Fprintf(&g, "\t%-*s = %q\n", width, goName(op), op.Name)
		fmt.Fprintf(&js, "export const %s = %q;\n", op.Const, op.Name)
		fmt.Fprintf(&py, "%s = %q\n", op.Const, op.Name)
		fmt.Fprintf(&md, "| `%s` | %s | %s | %s |\n", op.Name, op.Args, op.Result, op.Access)
	}
	g.WriteString(")\n")
	doc, err := os.ReadFile(filepath.Join(root, "docs/host-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- host ops: begin (generated from internal/host/ops.go) -->\n", "<!-- host ops: end -->\n"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("docs/host-api.md lacks the markers %q and %q", begin, end)
	}
	newDoc := slices.Concat(doc[:i+len(begin)], md.Bytes(), doc[j:])
	return map[string][]byte{
		"sdk/go/ops.go":           g.Bytes(),
		"sdk/js/ops.mjs":          js.Bytes(),
		"sdk/python/mote/_ops.py": py.Bytes(),
		"docs/host-api.md":        newDoc,
	}
}

// The SDKs' op constants and the docs' table are what host.Ops says
// (go generate ./internal/host rewrites them).
func TestGenerated(t *testing.T) {
	for path, want := range generated(t) {
		full := filepath.Join(root, path)
		if *update {
			if err := os.WriteFile(full, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what host.Ops generates (err %v): run go generate ./internal/host", path, err)
		}
	}
}

// Every SDK names ops only through its generated constants, and every
// constant it uses exists: a call with an op string of its own, or an op
// the server lacks, fails here (and, for a missing constant, fails to
// compile or to import).
func TestSDKsUseOnlyDescribedOps(t *testing.T) {
	literal := regexp.MustCompile(`\b[Cc]all\(\s*["'][a-z_.]+["']`)
	used := regexp.MustCompile(`\b[Cc]all\(\s*(Op[A-Za-z]+|[A-Z][A-Z_]+)\b`)
	known := map[string]bool{}
	for _, op := range host.Ops {
		known[goName(op)], known[op.Const] = true, true
	}
	for _, sdk := range []struct{ dir, ext string }{{"sdk/go", ".go"}, {"sdk/js", ".mjs"}, {"sdk/python/mote", ".py"}} {
		files, err := filepath.Glob(filepath.Join(root, sdk.dir, "*"+sdk.ext))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no %s files (%v)", sdk.dir, sdk.ext, err)
		}
		calls := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if c := strings.TrimSpace(line); strings.HasPrefix(c, "//") || strings.HasPrefix(c, "#") || strings.HasPrefix(c, "*") {
					continue // comments show raw calls as examples
				}
				if m := literal.FindString(line); m != "" {
					t.Errorf("%s: %q names an op by string: use the generated constant", f, m)
				}
				for _, m := range used.FindAllStringSubmatch(line, -1) {
					calls++
					if !known[m[1]] {
						t.Errorf("%s: %s is not a described host op", f, m[1])
					}
				}
			}
		}
		if calls == 0 {
			t.Errorf("%s: no host calls found: is the pattern stale?", sdk.dir)
		}
	}
}

// The hand-written op tables in docs/storage.md and docs/flows.md name
// only described ops.
func TestDocsNameDescribedOps(t *testing.T) {
	row := regexp.MustCompile("^\\| `([a-z_.]+)` \\|")
	for _, doc := range []string{"docs/storage.md", "docs/flows.md"} {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		n, inTable := 0, false
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "| op |"):
				inTable = true
			case !strings.HasPrefix(line, "|"):
				inTable = false
			case inTable:
				if m := row.FindStringSubmatch(line); m != nil {
					n++
					if _, ok := host.Describe(m[1]); !ok {
						t.Errorf("%s lists op %s, which host.Ops does not describe", doc, m[1])
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no op table found", doc)
		}
	}
}
