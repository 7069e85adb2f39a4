package routes

import (
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

func openTable(t *testing.T, dir string) (*Table, *store.DB) {
	t.Helper()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return tb, db
}

func TestAddRefusesOverlaps(t *testing.T) {
	tb, db := openTable(t, t.TempDir())
	defer db.Close()
	for _, p := range []string{"api.example.com/users/*", "api.example.com/health", "/hooks/github"} {
		if _, err := tb.Add(Route{Pattern: p, Function: "f"}); err != nil {
			t.Fatalf("add %s: %v", p, err)
		}
	}
	for _, tc := range []struct {
		pattern string
		code    errs.Code
	}{
		{"api.example.com/users/*", errs.Conflict},
		{"API.example.com/users/admin/*", errs.Conflict},
		{"api.example.com/users", errs.Conflict},
		{"api.example.com/*", errs.Conflict},
		{"/hooks/*", errs.Conflict},
		{"/*", errs.Conflict},
		{"/v1/*", errs.BadRequest},
		{"x.com/fn/y", errs.BadRequest},
		{"/2015-03-31/functions/f/invocations", errs.BadRequest},
		{"no-slash", errs.BadRequest},
		{"bad host!/x", errs.BadRequest},
		{"/a/../b", errs.BadRequest},
		{"/a/*/b", errs.BadRequest},
		{"/a%20b", errs.BadRequest},
	} {
		_, err := tb.Add(Route{Pattern: tc.pattern, Function: "f"})
		if errs.CodeOf(err) != tc.code {
			t.Errorf("add %s: got %v, want %s", tc.pattern, err, tc.code)
		}
	}
	// Distinct, non-overlapping: another host, a sibling path.
	for _, p := range []string{"other.example.com/users/*", "api.example.com/usersx", "api.example.com/"} {
		if _, err := tb.Add(Route{Pattern: p, Function: "f"}); err != nil {
			t.Errorf("add %s: %v", p, err)
		}
	}
	if _, err := tb.Add(Route{Pattern: "/x", Function: "bad name"}); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("bad function: got %v", err)
	}
}

func TestMatch(t *testing.T) {
	dir := t.TempDir()
	tb, db := openTable(t, dir)
	for _, r := range []Route{
		{Pattern: "api.example.com/users/*", Function: "users"},
		{Pattern: "api.example.com/health", Function: "health"},
		{Pattern: "/hooks/*", Function: "hooks:live", Public: true},
	} {
		if _, err := tb.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	tb, db = openTable(t, dir) // routes persist
	defer db.Close()
	for _, tc := range []struct{ host, path, fn, rest string }{
		{"api.example.com", "/users/42", "users", "/42"},
		{"API.example.com:8080", "/users", "users", "/"},
		{"api.example.com", "/users/", "users", "/"},
		{"api.example.com", "/usersx", "", ""},
		{"api.example.com", "/health", "health", "/"},
		{"api.example.com", "/health/x", "", ""},
		{"api.example.com", "/hooks/gh", "hooks:live", "/gh"}, // host-less routes serve every host
		{"other.org", "/hooks/gh/push", "hooks:live", "/gh/push"},
		{"other.org", "/users/1", "", ""},
		{"api.example.com", "/v1/functions", "", ""},
		{"api.example.com", "/fn/users", "", ""},
	} {
		rt, rest, err := tb.Match(tc.host, tc.path)
		switch {
		case tc.fn == "" && err != ErrNoRoute:
			t.Errorf("%s%s: got %v, want no route", tc.host, tc.path, rt)
		case tc.fn != "" && (err != nil || rt.Function != tc.fn || rest != tc.rest):
			t.Errorf("%s%s: got %v %q %v, want %s %q", tc.host, tc.path, rt, rest, err, tc.fn, tc.rest)
		}
	}
	if err := tb.Remove("api.example.com/health"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.Match("api.example.com", "/health"); err != ErrNoRoute {
		t.Errorf("after remove: got %v", err)
	}
	if err := tb.Remove("api.example.com/health"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("remove twice: got %v", err)
	}
}
