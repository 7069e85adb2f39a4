package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

func openDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStore(t *testing.T, db *store.DB, keyFile string) *Store {
	t.Helper()
	s, err := Open(Config{DB: db, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEncryptedAtRest: a value set is nowhere in the store's files (the
// WAL, which holds what was written as written: tables may be compressed,
// so the test reads them before a flush), and the key file is created
// 0600.
func TestEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secrets.key")
	db := openDB(t, filepath.Join(dir, "db"))
	s := openStore(t, db, keyFile)
	plain := []byte("hunter2-correct-horse-battery-staple")
	if _, err := s.Set("DB_PASSWORD", plain); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set("DB_PASSWORD", append(plain, "-v2"...)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	files := 0
	filepath.WalkDir(filepath.Join(dir, "db"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files++
		if leaks(b, plain) {
			t.Errorf("%s holds the secret's plaintext", p)
		}
		return nil
	})
	if files == 0 {
		t.Fatal("no store files scanned")
	}
	db.Close()
	// And the value does come back with the key.
	db = openDB(t, filepath.Join(dir, "db"))
	defer db.Close()
	v, info, err := openStore(t, db, keyFile).Value("DB_PASSWORD")
	if err != nil || string(v) != string(plain)+"-v2" || info.Version != 2 {
		t.Errorf("Value: got %q version %d, %v; want the second value, version 2", v, info.Version, err)
	}
}

// leaks reports whether b holds plain, as it is or base64-encoded (the
// form []byte takes in JSON) at any alignment.
func leaks(b, plain []byte) bool {
	if bytes.Contains(b, plain) {
		return true
	}
	for off := 0; off < 3; off++ {
		enc := base64.StdEncoding.EncodeToString(plain[off:])
		if bytes.Contains(b, []byte(enc[:len(enc)-4])) {
			return true
		}
	}
	return false
}

// TestWrongKeyFile: a server started with another key, or with the key
// file gone, fails with an error that names the file, changes nothing,
// and the right key still opens every secret afterwards.
func TestWrongKeyFile(t *testing.T) {
	dir := t.TempDir()
	right := filepath.Join(dir, "right.key")
	other := filepath.Join(dir, "other.key")
	if _, err := createKey(other); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, filepath.Join(dir, "db"))
	defer db.Close()
	if _, err := openStore(t, db, right).Set("API_KEY", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{DB: db, KeyFile: other})
	if !errors.Is(err, ErrWrongKey) || !bytes.Contains([]byte(errs.MessageOf(err)), []byte(other)) {
		t.Errorf("another key: got %v, want ErrWrongKey naming %s", err, other)
	}
	missing := filepath.Join(dir, "missing.key")
	_, err = Open(Config{DB: db, KeyFile: missing})
	if !errors.Is(err, ErrKeyFile) {
		t.Errorf("missing key file while secrets exist: got %v, want ErrKeyFile", err)
	}
	if _, serr := os.Stat(missing); !os.IsNotExist(serr) {
		t.Errorf("a missing key file was created (%v): a new key would seal new secrets that the old ones' key cannot open", serr)
	}
	os.WriteFile(filepath.Join(dir, "garbage.key"), []byte("not a key"), 0o600)
	if _, err := Open(Config{DB: db, KeyFile: filepath.Join(dir, "garbage.key")}); !errors.Is(err, ErrKeyFile) {
		t.Errorf("malformed key file: got %v, want ErrKeyFile", err)
	}
	os.Chmod(right, 0o644)
	if _, err := Open(Config{DB: db, KeyFile: right}); !errors.Is(err, ErrKeyFile) {
		t.Errorf("key file readable by others: got %v, want ErrKeyFile", err)
	}
	os.Chmod(right, 0o600)
	v, _, err := openStore(t, db, right).Value("API_KEY")
	if err != nil || string(v) != "v1" {
		t.Errorf("after the failed starts: got %q, %v; want v1", v, err)
	}
}

// TestSealedUnderItsName: a sealed value moved to another name's record
// does not open there (the name is the associated data).
func TestSealedUnderItsName(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "db"))
	defer db.Close()
	s := openStore(t, db, filepath.Join(dir, "k"))
	s.Set("A", []byte("value of a"))
	s.Set("B", []byte("value of b"))
	a, _ := db.Get([]byte(keyRecord + "A"))
	var r record
	json.Unmarshal(a, &r)
	r.Name = "B"
	b, _ := json.Marshal(r)
	db.Set([]byte(keyRecord+"B"), b, true)
	if v, _, err := s.Value("B"); err == nil {
		t.Errorf("A's sealed value opened as B: %q", v)
	}
}

func TestSetValidatesAndVersions(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "db"))
	defer db.Close()
	s := openStore(t, db, filepath.Join(dir, "k"))
	for _, tc := range []struct {
		name  string
		value []byte
		code  errs.Code
	}{
		{"1BAD", []byte("x"), errs.BadRequest},
		{"a-b", []byte("x"), errs.BadRequest},
		{"", []byte("x"), errs.BadRequest},
		{"OK", nil, errs.BadRequest},
		{"OK", []byte("a\x00b"), errs.BadRequest},
		{"OK", make([]byte, MaxValue+1), errs.PayloadTooLarge},
	} {
		if _, err := s.Set(tc.name, tc.value); errs.CodeOf(err) != tc.code {
			t.Errorf("Set(%q, %d bytes): got %v, want %s", tc.name, len(tc.value), err, tc.code)
		}
	}
	for want := 1; want <= 3; want++ {
		info, err := s.Set("TOKEN", []byte("t"))
		if err != nil || info.Version != want {
			t.Errorf("set %d: got version %d, %v", want, info.Version, err)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "TOKEN" || list[0].Version != 3 {
		t.Errorf("List: got %+v, %v", list, err)
	}
	if err := s.Delete("TOKEN"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("TOKEN"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("second Delete: got %v, want not_found", err)
	}
	if _, _, err := s.Value("TOKEN"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Value after Delete: got %v, want ErrNotFound", err)
	}
}
