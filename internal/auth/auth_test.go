package auth

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

func TestScopeAllows(t *testing.T) {
	for _, tc := range []struct {
		scope string
		need  Need
		want  bool
	}{
		{"admin", Need{Right: Admin}, true},
		{"admin", Need{Right: Write, Target: "b"}, true},
		{"deploy", Need{Right: Deploy}, true},
		{"deploy", Need{Right: Admin}, false},
		{"deploy", Need{Right: Invoke, Target: "hello"}, false},
		{"deploy", Need{Right: Metrics}, false},
		{"metrics", Need{Right: Metrics}, true},
		{"metrics", Need{Right: Deploy}, false},
		{"invoke:hello", Need{Right: Invoke, Target: "hello"}, true},
		{"invoke:hello", Need{Right: Invoke, Target: "hello2"}, false},
		{"invoke:hello", Need{Right: Invoke, Target: "hell"}, false},
		{"invoke:hello", Need{Right: Deploy}, false},
		{"invoke:img-*", Need{Right: Invoke, Target: "img-resize"}, true},
		{"invoke:img-*", Need{Right: Invoke, Target: "img-"}, true},
		{"invoke:img-*", Need{Right: Invoke, Target: "im"}, false},
		{"invoke:*", Need{Right: Invoke, Target: "anything"}, true},
		{"invoke:*", Need{Right: Read, Target: "anything"}, false},
		{"read:photos", Need{Right: Read, Target: "photos"}, true},
		{"read:photos", Need{Right: Write, Target: "photos"}, false},
		{"read:photos", Need{Right: Read, Target: "photos2"}, false},
		{"write:photos", Need{Right: Write, Target: "photos"}, true},
		{"write:photos", Need{Right: Read, Target: "photos"}, true}, // write implies read
		{"write:photos", Need{Right: Write, Target: "other"}, false},
		{"write:ph*", Need{Right: Read, Target: "photos"}, true},
		{"read:*", Need{Right: Read, Target: "x"}, true},
		{"read:*", Need{Right: Write, Target: "x"}, false},
		{"read:x", Need{Right: Public}, true},
	} {
		s, err := ParseScope(tc.scope)
		if err != nil {
			t.Fatalf("ParseScope(%q): %v", tc.scope, err)
		}
		if got := s.Allows(tc.need); got != tc.want {
			t.Errorf("%s allows %v: got %v, want %v", tc.scope, tc.need, got, tc.want)
		}
	}
}

func TestParseScopeRefuses(t *testing.T) {
	for _, s := range []string{"", "root", "admin:x", "deploy:hello", "invoke", "invoke:", "read:", "read:UPPER", "invoke:a b", "write:-x", "invoke:x*y", "invoke:**", "read:a/b*"} {
		if _, err := ParseScope(s); errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("ParseScope(%q): got %v, want a bad_request", s, err)
		}
	}
}

func TestNeedString(t *testing.T) {
	for _, tc := range []struct {
		need Need
		want string
	}{
		{Need{Right: Admin}, "admin"},
		{Need{Right: Deploy}, "deploy"},
		{Need{Right: Invoke, Target: "f"}, "invoke:f"},
		{Need{Right: Write, Target: "b"}, "write:b"},
	} {
		if got := tc.need.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func openDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestKeysCheckRevokeExpire(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	db := openDB(t, t.TempDir())
	defer db.Close()
	keys, err := OpenKeys(db, KeysConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	k, tok, err := keys.Create("ci", []string{"invoke:hello", "read:b", "invoke:hello"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(k.Scopes), 2; got != want {
		t.Errorf("scopes %v: duplicates kept", k.Scopes)
	}
	short, shortTok, err := keys.Create("", []string{"deploy"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.Check([]byte(tok))
	if err != nil || got.ID != k.ID || !got.Allows(Need{Right: Invoke, Target: "hello"}) {
		t.Fatalf("Check(valid): got %v, %v", got, err)
	}
	for name, bad := range map[string]string{
		"wrong secret": tok[:len(tok)-2] + "xx",
		"no secret":    TokenPrefix + k.ID + "_",
		"unknown id":   TokenPrefix + "000000000000_" + tok[len(TokenPrefix)+len(k.ID)+1:],
		"other's id":   TokenPrefix + short.ID + "_" + tok[len(TokenPrefix)+len(k.ID)+1:],
		"no prefix":    tok[len(TokenPrefix):],
		"empty":        "",
	} {
		if _, err := keys.Check([]byte(bad)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Check(%s): got %v, want ErrInvalidKey", name, err)
		}
	}
	if _, err := keys.Check([]byte(shortTok)); err != nil {
		t.Fatalf("Check(not yet expired): %v", err)
	}
	clock.Add(time.Hour)
	if _, err := keys.Check([]byte(shortTok)); !errors.Is(err, ErrExpiredKey) {
		t.Errorf("Check(expired): got %v, want ErrExpiredKey", err)
	}
	if _, err := keys.Revoke(k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Check([]byte(tok)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Check(revoked): got %v, want ErrInvalidKey", err)
	}
	if _, err := keys.Revoke(k.ID); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Revoke twice: got %v, want not_found", err)
	}
	if _, _, err := keys.Create("x", nil, 0); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("Create without scopes: got %v, want bad_request", err)
	}
	if _, _, err := keys.Create("x", []string{"root"}, 0); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("Create with a bad scope: got %v, want bad_request", err)
	}
}

// Keys survive a reopen of the store; their secrets are nowhere in it;
// revocations survive too.
func TestKeysPersistHashedOnly(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Now()}
	db := openDB(t, dir)
	keys, err := OpenKeys(db, KeysConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	kept, keptTok, err := keys.Create("kept", []string{"write:b"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	gone, goneTok, err := keys.Create("gone", []string{"admin"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Check([]byte(keptTok)); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute) // a use a minute later than the first is stored
	if _, err := keys.Check([]byte(keptTok)); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Revoke(gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{keptTok, goneTok} {
		secret := tok[strings.LastIndexByte(tok[:len(TokenPrefix)+13], '_')+1:]
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("a key's secret is stored in %s", path)
			}
			return nil
		})
	}

	db = openDB(t, dir)
	defer db.Close()
	keys, err = OpenKeys(db, KeysConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.Check([]byte(keptTok))
	if err != nil || got.ID != kept.ID || !got.Allows(Need{Right: Write, Target: "b"}) {
		t.Fatalf("after reopen, Check(kept): got %v, %v", got, err)
	}
	if _, err := keys.Check([]byte(goneTok)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("after reopen, Check(revoked): got %v, want ErrInvalidKey", err)
	}
	list := keys.List()
	if len(list) != 1 || list[0].ID != kept.ID || list[0].Name != "kept" || list[0].LastUsed.IsZero() {
		t.Errorf("after reopen, List: got %+v, want only %s with its last use", list, kept.ID)
	}
}

func TestCheckAllocatesNothing(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	keys, err := OpenKeys(db, KeysConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := keys.Create("", []string{"invoke:f"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(tok)
	keys.Check(b)
	if n := testing.AllocsPerRun(100, func() { keys.Check(b) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}

func TestAuditRetentionAndList(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	db := openDB(t, dir)
	a, err := OpenAudit(db, AuditConfig{MaxEntries: 5, MaxAge: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		a.Record(Entry{Who: "local", Action: "function.deploy", Target: string(rune('a' + i)), Status: 201})
	}
	targets := func(es []Entry) string {
		var b strings.Builder
		for _, e := range es {
			b.WriteString(e.Target)
		}
		return b.String()
	}
	es, err := a.List(time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targets(es), "defgh"; got != want {
		t.Errorf("kept by count: got %q, want %q", got, want)
	}
	if es, _ := a.List(time.Time{}, 2); targets(es) != "gh" {
		t.Errorf("latest 2: got %q, want gh", targets(es))
	}
	if es, _ := a.List(es[1].Time, 2); targets(es) != "fg" {
		t.Errorf("2 after e: got %q, want fg", targets(es))
	}
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	a, err = OpenAudit(db, AuditConfig{MaxEntries: 5, MaxAge: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Hour)
	a.Record(Entry{Who: "admin token", Action: "key.create", Target: "i", Status: 201})
	if es, _ := a.List(time.Time{}, 0); targets(es) != "i" {
		t.Errorf("after the age limit: got %q, want i", targets(es))
	}
}

// Checks race creates and revocations (run with -race): no race, no lost
// or resurrected key.
func TestKeysHammer(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = time.Now()
	now := func() time.Time {
		// Each reading is two minutes on: every check writes last use.
		clock.Lock()
		defer clock.Unlock()
		clock.t = clock.t.Add(2 * time.Minute)
		return clock.t
	}
	keys, err := OpenKeys(db, KeysConfig{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var revoked sync.Map
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k, tok, err := keys.Create("", []string{"invoke:f"}, 0)
				if err != nil {
					t.Error(err)
					return
				}
				var inner sync.WaitGroup
				inner.Add(2)
				go func() {
					defer inner.Done()
					for range 5 {
						keys.Check([]byte(tok))
					}
				}()
				go func() {
					defer inner.Done()
					if (w+i)%2 == 0 {
						if _, err := keys.Revoke(k.ID); err != nil {
							t.Error(err)
						}
						revoked.Store(k.ID, true)
					}
				}()
				inner.Wait()
				keys.List()
			}
		}()
	}
	wg.Wait()
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	keys, err = OpenKeys(db, KeysConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys.Len(), 100; got != want {
		t.Errorf("after reopening: %d keys, want %d", got, want)
	}
	for _, k := range keys.List() {
		if _, ok := revoked.Load(k.ID); ok {
			t.Errorf("revoked key %s came back", k.ID)
		}
	}
}

// A last-use write that lost the race with the key's revocation (its
// check found the key, the revocation then deleted it) does not write the
// record back.
func TestLastUseAfterRevokeDoesNotResurrect(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	keys, err := OpenKeys(db, KeysConfig{})
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := keys.Create("", []string{"admin"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := (*keys.keys.Load())[k.ID] // as Check holds it
	if _, err := keys.Revoke(k.ID); err != nil {
		t.Fatal(err)
	}
	keys.storeUsed(e, time.Now().UnixNano())
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	if keys, err = OpenKeys(db, KeysConfig{}); err != nil {
		t.Fatal(err)
	}
	if n := keys.Len(); n != 0 {
		t.Errorf("after the revocation and a late last-use write: %d keys, want 0", n)
	}
}
