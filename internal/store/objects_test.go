package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/errs"
)

func newTestObjects(t testing.TB, cfg ObjectsConfig) (*Objects, *DB) {
	t.Helper()
	db := openTestDB(t, t.TempDir())
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	o, err := OpenObjects(db, cfg)
	if err != nil {
		t.Fatalf("OpenObjects: %v", err)
	}
	t.Cleanup(func() {
		o.Close()
		db.Close()
	})
	return o, db
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestObjectsPutGetHeadDelete(t *testing.T) {
	o, _ := newTestObjects(t, ObjectsConfig{})
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	info, err := o.Put("media", "a/b.bin", bytes.NewReader(data), "application/x-test")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != int64(len(data)) || info.SHA256 != sha(data) {
		t.Errorf("Put info = %d bytes %s, want %d %s", info.Size, info.SHA256, len(data), sha(data))
	}
	head, err := o.Head("media", "a/b.bin")
	if err != nil || head.SHA256 != info.SHA256 || head.ContentType != "application/x-test" {
		t.Errorf("Head = %+v, %v", head, err)
	}
	obj, err := o.Open("media", "a/b.bin")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got, _ := io.ReadAll(obj)
	obj.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, want the %d written", len(got), len(data))
	}

	ranges := []struct {
		off, n int64
		want   []byte
	}{
		{0, 10, data[:10]},
		{99_995, 100, data[99_995:]},
		{5, -1, data[5:]},
		{100_000, 10, nil},
	}
	for _, r := range ranges {
		rc, _, err := o.ReadRange("media", "a/b.bin", r.off, r.n)
		if err != nil {
			t.Fatalf("ReadRange(%d, %d): %v", r.off, r.n, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, r.want) {
			t.Errorf("ReadRange(%d, %d) = %d bytes, want %d", r.off, r.n, len(got), len(r.want))
		}
	}
	if _, _, err := o.ReadRange("media", "a/b.bin", 100_001, 1); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("range past the end: %v, want bad_request", err)
	}

	// Replacing removes the old data file.
	if _, err := o.Put("media", "a/b.bin", strings.NewReader("small"), ""); err != nil {
		t.Fatal(err)
	}
	if n := countDataFiles(t, o); n != 1 {
		t.Errorf("%d data files after replace, want 1", n)
	}
	if err := o.Delete("media", "a/b.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Head("media", "a/b.bin"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Head after delete: %v", err)
	}
	if err := o.Delete("media", "a/b.bin"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("second delete: %v, want not_found", err)
	}
	if n := countDataFiles(t, o); n != 0 {
		t.Errorf("%d data files after delete, want 0", n)
	}
}

func countDataFiles(t *testing.T, o *Objects) int {
	t.Helper()
	n := 0
	filepath.WalkDir(o.cfg.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestObjectsBadPutsLeaveOldObject(t *testing.T) {
	o, _ := newTestObjects(t, ObjectsConfig{MaxObjectBytes: 1000})
	if _, err := o.Put("b", "k", strings.NewReader("old"), ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		bucket string
		key    string
		r      io.Reader
		want   errs.Code
	}{
		{"oversized", "b", "k", bytes.NewReader(make([]byte, 1001)), errs.PayloadTooLarge},
		{"broken stream", "b", "k", &failingReader{n: 500}, errs.BadRequest},
		{"path trick key", "b", "../../etc/passwd", strings.NewReader("x"), errs.BadRequest},
		{"path trick bucket", "..", "k", strings.NewReader("x"), errs.BadRequest},
	}
	for _, tt := range tests {
		_, err := o.Put(tt.bucket, tt.key, tt.r, "")
		if got := errs.CodeOf(err); got != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	obj, err := o.Open("b", "k")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(obj)
	obj.Close()
	if string(got) != "old" {
		t.Errorf("object after failed puts = %q, want old", got)
	}
	if n := countDataFiles(t, o); n != 1 {
		t.Errorf("%d files after failed puts, want 1 (no leftovers)", n)
	}
}

func TestObjectsListAndCrashCleanup(t *testing.T) {
	dir := t.TempDir()
	o, db := newTestObjects(t, ObjectsConfig{Dir: dir})
	for _, k := range []string{"x/1", "x/2", "x/3", "y/1"} {
		o.Put("b", k, strings.NewReader(k), "")
	}
	infos, next, err := o.List("b", "x/", "", 2)
	if err != nil || len(infos) != 2 || next != "x/2" {
		t.Fatalf("List page 1 = %v, %q, %v", infos, next, err)
	}
	infos, next, _ = o.List("b", "x/", next, 2)
	if len(infos) != 1 || infos[0].Key != "x/3" || infos[0].Size != 3 || next != "" {
		t.Errorf("List page 2 = %+v, %q", infos, next)
	}
	// Leftovers of a crash: a temp file and a data file without metadata.
	os.WriteFile(filepath.Join(dir, "tmp", "partial"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(dir, "ab"), 0o750)
	os.WriteFile(filepath.Join(dir, "ab", "ab00orphan"), []byte("x"), 0o600)
	o2, err := OpenObjects(db, ObjectsConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := countDataFiles(t, o2); n != 4 {
		t.Errorf("%d files after reopen, want the 4 live objects", n)
	}
}

// genReader yields n deterministic pseudo-random bytes and hashes them as
// it goes, so a test can stream a huge object without holding it.
type genReader struct {
	left  int64
	state uint64
	h     hash.Hash
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.left)) &^ 7
	if n == 0 {
		n = int(min(int64(len(p)), g.left))
		for i := range n {
			p[i] = byte(i)
		}
	}
	for i := 0; i+8 <= n; i += 8 {
		g.state = g.state*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(p[i:], g.state)
	}
	g.left -= int64(n)
	g.h.Write(p[:n])
	return n, nil
}

// TestObjectsLargeStreamFlatMemory moves a 256 MiB object in and out and
// checks that the heap allocated during each direction stays far below the
// object's size.
func TestObjectsLargeStreamFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	const size = 256 << 20
	o, _ := newTestObjects(t, ObjectsConfig{})
	gen := &genReader{left: size, state: 1, h: sha256.New()}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	info, err := o.Put("big", "blob", gen, "")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(gen.h.Sum(nil))
	if info.Size != size || info.SHA256 != want {
		t.Errorf("Put = %d bytes %s, want %d %s", info.Size, info.SHA256, size, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("Put allocated %d MiB for a %d MiB object, want flat", alloc>>20, size>>20)
	}

	obj, err := o.Open("big", "blob")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	h := sha256.New()
	runtime.ReadMemStats(&before)
	n, err := io.Copy(h, obj)
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("read %d, %v", n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("read back sha256 %s, want %s", got, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("Get allocated %d MiB for a %d MiB object, want flat", alloc>>20, size>>20)
	}
}
