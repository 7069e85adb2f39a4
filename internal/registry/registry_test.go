package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

func openTest(t *testing.T) *Registry {
	t.Helper()
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r, err := Open(db, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVersionsCurrentAndDelete(t *testing.T) {
	r := openTest(t)
	sumA, _, err := r.PutArtifact(strings.NewReader("module a"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sumA2, _, _ := r.PutArtifact(strings.NewReader("module a"), 1<<20)
	if sumA != sumA2 {
		t.Errorf("same bytes, different hashes: %s %s", sumA, sumA2)
	}
	sumB, _, _ := r.PutArtifact(strings.NewReader("module b"), 1<<20)
	cfg := Config{}.WithDefaults()
	v1, err := r.AddVersion("f", sumA, 8, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := r.AddVersion("f", sumB, 8, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Number != 1 || v2.Number != 2 || v1.ID == v2.ID {
		t.Fatalf("versions: got %d %s, %d %s", v1.Number, v1.ID, v2.Number, v2.ID)
	}
	if cur, _ := r.Current("f"); cur.Number != 1 {
		t.Errorf("current before SetCurrent: got %d, want 1", cur.Number)
	}
	if _, err := r.SetCurrent("f", 2); err != nil {
		t.Fatal(err)
	}
	if cur, _ := r.Current("f"); cur.Number != 2 {
		t.Errorf("current after SetCurrent: got %d, want 2", cur.Number)
	}
	if _, err := r.SetCurrent("f", 9); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("SetCurrent to a missing version: got %v", err)
	}
	r.AddVersion("g", sumA, 8, cfg, true) // g shares artifact a
	if err := r.Delete("f"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Function("f"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("after delete: got %v", err)
	}
	if _, err := os.Stat(r.ArtifactPath(sumA)); err != nil {
		t.Errorf("artifact shared with g was removed: %v", err)
	}
	if _, err := os.Stat(r.ArtifactPath(sumB)); !os.IsNotExist(err) {
		t.Errorf("unreferenced artifact kept: %v", err)
	}
}

func TestPutArtifactLimits(t *testing.T) {
	r := openTest(t)
	if _, _, err := r.PutArtifact(strings.NewReader(strings.Repeat("x", 11)), 10); errs.CodeOf(err) != errs.PayloadTooLarge {
		t.Errorf("over the limit: got %v", err)
	}
	if _, _, err := r.PutArtifact(strings.NewReader(""), 10); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("empty: got %v", err)
	}
	if left, _ := os.ReadDir(r.dir); len(left) != 0 {
		t.Errorf("refused uploads left %d files", len(left))
	}
}

type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	size       int64 // the header's size when not len(body)
}

// archive returns entries as a tar.gz archive, the form Unpack reads.
func archive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	return gzipped(tarball(t, entries...))
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// tarball returns entries as a tar archive. An entry whose size is more
// than its body must come last: the archive ends inside it.
func tarball(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		if e.typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": "f08c0f3"}}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "lib"), 0o755)
	os.WriteFile(filepath.Join(src, "bootstrap"), []byte("#!/bin/sh\necho hi\n"), 0o700)
	os.WriteFile(filepath.Join(src, "lib", "data.txt"), []byte("data"), 0o600)
	os.Symlink("lib/data.txt", filepath.Join(src, "link"))
	var buf bytes.Buffer
	if err := Pack(&buf, src); err != nil {
		t.Fatal(err)
	}
	r := openTest(t)
	sum, _, _ := r.PutArtifact(&buf, 1<<20)
	dir, err := r.Unpack(sum, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
		mode       os.FileMode
	}{
		{"bootstrap", "#!/bin/sh\necho hi\n", 0o555},
		{"lib/data.txt", "data", 0o444},
		{"link", "data", 0},
	} {
		b, err := os.ReadFile(filepath.Join(dir, tc.path))
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: got %q, %v", tc.path, b, err)
		}
		if tc.mode != 0 {
			if fi, _ := os.Stat(filepath.Join(dir, tc.path)); fi.Mode().Perm() != tc.mode {
				t.Errorf("%s: mode %v, want %v (read-only, readable by the function user)", tc.path, fi.Mode().Perm(), tc.mode)
			}
		}
	}
	again, err := r.Unpack(sum, filepath.Dir(dir))
	if err != nil || again != dir {
		t.Errorf("second unpack: got %s, %v; want the existing %s", again, err, dir)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`{}`, true},
		{`{"memory":"64MiB","timeout":"2s","min_warm":2,"max_instances":4}`, true},
		{`{"runtime":"process","handler":"./bootstrap"}`, true},
		{`{"runtime":"process"}`, false},
		{`{"handler":"./x"}`, false},
		{`{"memory":"512KiB"}`, false},
		{`{"timeout":"16m"}`, false},
		{`{"min_warm":5,"max_instances":2}`, false},
		{`{"env":{"1BAD":"x"}}`, false},
		{`{"retry":{"on":["nope"]}}`, false},
		{`{"on_failure":"Bad Name"}`, false},
		{`{"idle_timeout":"10ms"}`, false},
		{`{"memory":"auto"}`, true},
		{`{"memory":"auto","memory_max":"2GiB","cache":"1GiB"}`, true},
		{`{"memory":"auto","memory_max":"32GiB"}`, false},
		{`{"memory":"64MiB","memory_max":"1GiB"}`, false},
		{`{"cache":"auto"}`, false},
		{`{"calls":["resize","store"]}`, true},
		{`{"calls":["Bad Name"]}`, false},
	} {
		var c Config
		err := json.Unmarshal([]byte(tc.json), &c)
		if err == nil {
			err = c.WithDefaults().Validate()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.json, err, tc.ok)
		}
	}
}

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		ok   bool
	}{{"128MiB", 128 << 20, true}, {"64mb", 64 << 20, true}, {"1g", 1 << 30, true}, {"1048576", 1 << 20, true}, {"", 0, false}, {"-1MiB", 0, false}, {"lots", 0, false}} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if s := Size(128 << 20).String(); s != "128MiB" {
		t.Errorf("String: got %s", s)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add(`{"memory":"64MiB"}`)
	f.Add(`{"runtime":"process","handler":"x","env":{"A":"b"}}`)
	f.Add(`{"secrets":["DB_PASSWORD",{"name":"K","env":"V"}],"permissions":{"invoke":["img-*","*"]}}`)
	f.Add(`{"secrets":[{"name":"K","file":"/x"}, 3, null]}`)
	f.Fuzz(func(t *testing.T, s string) {
		var c Config
		if json.Unmarshal([]byte(s), &c) != nil {
			return
		}
		err := c.WithDefaults().Validate()
		if err != nil && errs.CodeOf(err) != errs.BadRequest {
			t.Fatalf("validation error without a code: %v", err)
		}
		if err != nil {
			return
		}
		// A valid config survives its own JSON: what deploy stores is
		// what a restart reads.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Config
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s does not decode: %v", b, err)
		}
		// (%+v: an empty list and none read the same, as omitempty writes both.)
		if fmt.Sprintf("%+v %+v", back.Secrets, back.Permissions) != fmt.Sprintf("%+v %+v", c.Secrets, c.Permissions) {
			t.Fatalf("round trip: %+v %+v became %+v %+v", c.Secrets, c.Permissions, back.Secrets, back.Permissions)
		}
	})
}
