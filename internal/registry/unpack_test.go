package registry

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/errs"
)

// TestUnpackRefusesEscapes unpacks hostile archives into base/fns, beside
// a file base/secret, and checks that each is refused with bad_request,
// that nothing appeared or changed outside base/fns, and that nothing was
// left inside it. The link chains wrote base/evil before Unpack went
// through os.Root and resolved links against the whole archive (fails
// without the fix).
func TestUnpackRefusesEscapes(t *testing.T) {
	reg := func(name string) entry { return entry{name: name, typ: tar.TypeReg, body: "x"} }
	link := func(name, target string) entry { return entry{name: name, typ: tar.TypeSymlink, link: target} }
	hard := func(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }
	dir := func(name string) entry { return entry{name: name, typ: tar.TypeDir} }
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string // in the error message
	}{
		// The attack of issue 10: each link's text stays inside, but
		// l1/up is created in l1 = the unpack directory, so it points at
		// its parent, and l1/up/up one above that.
		{"link chain", []entry{link("l1", "."), link("l1/up", ".."), link("l1/up/up", ".."), reg("l1/up/up/evil")}, "below the link"},
		{"link chain, links only", []entry{link("l1", "."), link("l1/up", "..")}, "below the link"},
		{"link through a link", []entry{dir("d"), link("d/l", ".."), link("x", "d/l/../.."), reg("x/evil")}, "below the link"},
		{"link through a link, links only", []entry{dir("d"), link("d/l", ".."), link("x", "d/l/../..")}, "outside the function directory"},
		{"link through a later link", []entry{link("x", "d/l/../.."), dir("d"), link("d/l", "..")}, "outside the function directory"},
		{"link loop", []entry{link("a", "b/x"), link("b", "a/y")}, "loop"},
		{"dot dot", []entry{reg("../evil")}, "escapes"},
		{"nested dot dot", []entry{reg("a/../../evil")}, "escapes"},
		{"inner dot dot", []entry{dir("a"), reg("a/../evil")}, "escapes"},
		{"absolute", []entry{reg("/etc/evil")}, "escapes"},
		{"absolute link", []entry{link("l", "/etc/passwd")}, "absolute"},
		{"absolute link, file below", []entry{link("l", "BASE"), reg("l/evil")}, "absolute"},
		{"escaping link", []entry{link("a/l", "../../x")}, "outside the function directory"},
		{"link to a directory, file below", []entry{dir("sub"), link("d", "sub"), reg("d/evil")}, "below the link"},
		{"file below a file", []entry{reg("f"), reg("f/evil")}, "below the file"},
		{"link over a file", []entry{reg("f"), link("f", "g")}, "twice"},
		{"file over a link", []entry{link("f", "g"), reg("f")}, "twice"},
		{"hard link out", []entry{hard("h", "../secret")}, "escapes"},
		{"hard link absolute", []entry{hard("h", "BASE/secret")}, "escapes"},
		{"hard link, then written", []entry{hard("h", "BASE/secret"), reg("h")}, "escapes"},
		{"hard link to a link", []entry{link("l", "x"), hard("h", "l")}, "regular file"},
		{"hard link to a directory", []entry{dir("d"), hard("h", "d")}, "regular file"},
		{"hard link to nothing", []entry{hard("h", "missing")}, "regular file"},
		{"char device", []entry{{name: "dev", typ: tar.TypeChar}}, "unsupported type"},
		{"block device", []entry{{name: "dev", typ: tar.TypeBlock}}, "unsupported type"},
		{"fifo", []entry{{name: "fifo", typ: tar.TypeFifo}}, "unsupported type"},
		{"huge file", []entry{{name: "big", typ: tar.TypeReg, size: maxFileBytes + 1}}, "bytes"},
		{"huge in total", []entry{reg("a"), reg("b"), reg("c")}, "unpacks to more than 2 bytes"},
		{"long name", []entry{reg(strings.Repeat("a/", maxPathLen/2) + "f")}, "longer than"},
		{"deep name", []entry{reg(strings.Repeat("a/", maxPathDepth) + "f")}, "deeper than"},
		{"long component", []entry{reg(strings.Repeat("a", 256))}, "longer than"},
		{"reserved name", []entry{reg(completeMark)}, "reserves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			secret := filepath.Join(base, "secret")
			if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			for i := range tc.entries {
				tc.entries[i].link = strings.ReplaceAll(tc.entries[i].link, "BASE", base)
			}
			if tc.name == "huge in total" {
				defer func(max int64) { maxUnpackedBytes = max }(maxUnpackedBytes)
				maxUnpackedBytes = 2
			}
			r := openTest(t)
			sum, _, err := r.PutArtifact(bytes.NewReader(archive(t, tc.entries...)), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(base, "fns")
			_, err = r.Unpack(sum, root)
			if errs.CodeOf(err) != errs.BadRequest || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want bad_request saying %q", err, tc.want)
			}
			if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
				t.Errorf("the file beside the function directory changed: %q, %v", b, err)
			}
			if out := outside(t, base, "fns", "secret"); len(out) != 0 {
				t.Errorf("written outside the function directory: %q", out)
			}
			if left, _ := os.ReadDir(root); len(left) != 0 {
				t.Errorf("refused archive left %d entries", len(left))
			}
		})
	}
	r := openTest(t)
	sum, _, _ := r.PutArtifact(strings.NewReader("not gzip"), 1<<20)
	if _, err := r.Unpack(sum, t.TempDir()); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("not an archive: got %v", err)
	}
}

// TestUnpackKeepsWhatIsInside checks that links and hard links that stay
// inside the archive, and names written the ways tar writes them, unpack.
func TestUnpackKeepsWhatIsInside(t *testing.T) {
	r := openTest(t)
	sum, _, err := r.PutArtifact(bytes.NewReader(archive(t,
		entry{name: "pax_global_header", typ: tar.TypeXGlobalHeader}, // as git archive writes
		entry{name: "./", typ: tar.TypeDir},
		entry{name: "./lib/", typ: tar.TypeDir},
		entry{name: "./lib/a.txt", typ: tar.TypeReg, body: "a"},
		entry{name: "lib/sub/b.txt", typ: tar.TypeReg, body: "b", mode: 0o4755},
		entry{name: "up", typ: tar.TypeSymlink, link: "lib/sub/.."},
		entry{name: "lib/sub/top", typ: tar.TypeSymlink, link: "../../up/a.txt"},
		entry{name: "dangling", typ: tar.TypeSymlink, link: "lib/missing"},
		entry{name: "hard", typ: tar.TypeLink, link: "lib/a.txt"},
		entry{name: "lib/", typ: tar.TypeDir},
		entry{name: "mote.json", typ: tar.TypeReg, body: "{}"},
		entry{name: "lib/mote.json", typ: tar.TypeReg, body: "[]"},
	)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := r.Unpack(sum, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
		mode       fs.FileMode
	}{
		{"lib/a.txt", "a", 0o444},
		{"lib/sub/b.txt", "b", 0o555}, // setuid dropped
		{"up/a.txt", "a", 0o444},
		{"lib/sub/top", "a", 0o444},
		{"hard", "a", 0o444},
		{"mote.json", "{}", 0o600}, // the config, with env values
		{"lib/mote.json", "[]", 0o444},
	} {
		p := filepath.Join(dir, tc.path)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.path, b, err, tc.want)
			continue
		}
		if fi, _ := os.Stat(p); fi.Mode() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
	}
	for _, d := range []string{".", "lib", "lib/sub"} {
		if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || fi.Mode() != fs.ModeDir|0o755 {
			t.Errorf("%s: got %v, %v; want a directory 0755", d, fi.Mode(), err)
		}
	}
}

// outside returns the paths under base other than the names allowed in
// base itself and what lies under base/allowed[0].
func outside(t *testing.T, base string, allowed ...string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(base, p)
		switch {
		case rel == ".":
		case rel == allowed[0]:
			return fs.SkipDir
		default:
			for _, a := range allowed[1:] {
				if rel == a {
					return nil
				}
			}
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// FuzzUnpack unpacks arbitrary tar archives (gzipped here, so that the
// fuzzer mutates the tar, not the compressed stream) into base/root beside
// a file, and checks that whatever the input, nothing is created or
// changed outside base/root, and that a refusal is a bad_request.
func FuzzUnpack(f *testing.F) {
	reg := func(name string) entry { return entry{name: name, typ: tar.TypeReg, body: "x"} }
	link := func(name, target string) entry { return entry{name: name, typ: tar.TypeSymlink, link: target} }
	hard := func(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }
	dir := func(name string) entry { return entry{name: name, typ: tar.TypeDir} }
	for _, seed := range [][]entry{
		{reg("a")},
		{reg("../a")},
		{dir("d"), reg("d/f"), link("l", "d/f"), hard("h", "d/f")},
		{link("l1", "."), link("l1/up", ".."), link("l1/up/up", ".."), reg("l1/up/up/evil")},
		{dir("d"), link("d/l", ".."), link("x", "d/l/../.."), reg("x/evil")},
		{link("x", "d/l/../.."), dir("d"), link("d/l", "..")},
		{reg("f"), hard("h", "f"), reg("h")},
		{hard("h", "../secret"), reg("h")},
		{link("s", "../secret"), reg("s")},
	} {
		f.Add(tarball(f, seed...))
	}
	f.Add([]byte("junk"))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		secret := filepath.Join(base, "secret")
		if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(base, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		err := unpackInto(bytes.NewReader(gzipped(data)), root)
		if err != nil && errs.CodeOf(err) != errs.BadRequest {
			t.Fatalf("an archive was refused without bad_request: %v", err)
		}
		if out := outside(t, base, "root", "secret"); len(out) != 0 {
			t.Fatalf("archive wrote %q outside its directory", out)
		}
		if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
			t.Fatalf("archive changed a file outside its directory: %q, %v", b, err)
		}
		if err == nil {
			if l := escapingLink(t, root); l != "" {
				t.Fatalf("accepted archive has a link that leads outside: %s", l)
			}
		}
	})
}

// escapingLink returns a symlink under root that, followed, leads outside
// root, or "".
func escapingLink(t *testing.T, root string) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	var bad string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		to, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling, and the directory is read-only
		}
		if rel, err := filepath.Rel(root, to); err != nil || !filepath.IsLocal(rel) && rel != "." {
			bad = p + " -> " + to
			return fs.SkipAll
		}
		return nil
	})
	return bad
}

// TestUnpackCorruptArchive checks that an archive whose compressed
// stream breaks inside a file's bytes, or that ends there, is a
// bad_request (not an internal error) and leaves nothing.
func TestUnpackCorruptArchive(t *testing.T) {
	body := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{1}).Read(body) // incompressible: the break is inside the file
	good := archive(t, entry{name: "big", typ: tar.TypeReg, body: string(body)})
	corrupt := bytes.Clone(good)
	for i := len(corrupt) / 2; i < len(corrupt)/2+64; i++ {
		corrupt[i] ^= 0xff
	}
	for name, data := range map[string][]byte{
		"corrupt": corrupt,
		"cut":     good[:len(good)/2],
		"no tail": good[:len(good)-4], // the gzip checksum's length missing
	} {
		t.Run(name, func(t *testing.T) {
			r := openTest(t)
			sum, _, err := r.PutArtifact(bytes.NewReader(data), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if _, err := r.Unpack(sum, root); errs.CodeOf(err) != errs.BadRequest {
				t.Errorf("got %v (%s), want bad_request", err, errs.CodeOf(err))
			}
			if left, _ := os.ReadDir(root); len(left) != 0 {
				t.Errorf("refused archive left %d entries", len(left))
			}
		})
	}
}
