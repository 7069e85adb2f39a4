// Package routes maps a host and path pattern to a function, so that an
// HTTP function serves a web API, a site or a webhook at its own URL:
// `api.example.com/users/*` → users, public (no credential) or private (a
// key allowed to invoke the function), with CORS per route.
//
// A pattern is [HOST]PATH: PATH is an exact path ("/health") or a prefix
// ending in "/*" ("/users/*" takes /users and everything under it; "/*"
// takes every path). A route with a host takes requests for that host
// alone; one without takes requests for any host that no route with a host
// takes. Two routes overlap when they have the same host (or both none)
// and some path matches both: Add refuses that, naming the route it
// overlaps, so every request has at most one route. Mote's own paths
// (/v1/, /fn/, the Lambda Invoke API, /healthz, /metrics, /ui) are never a
// route's: patterns under them are refused, and requests for them never
// reach a route, whatever their host.
//
// Routes are kept in the store under store.PrefixRegistry + "route/",
// written synced, and read into an immutable table swapped whole on
// change, so matching takes one atomic load.
package routes

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/store"
)

// Route maps a pattern to a function reference.
type Route struct {
	Pattern  string    `json:"pattern"`  // [HOST]PATH, as given (lowercased host)
	Function string    `json:"function"` // name, name@N or name:alias
	Public   bool      `json:"public"`   // no credential needed
	CORS     *CORS     `json:"cors,omitempty"`
	Created  time.Time `json:"created"`

	host string // "" for any host
	base string // the path, without "/*"
	wild bool   // a prefix pattern ("/*" at the end)
}

// CORS is a route's cross-origin policy: preflight requests (OPTIONS with
// Access-Control-Request-Method) are answered by Mote without invoking the
// function, and responses to allowed origins carry
// Access-Control-Allow-Origin.
type CORS struct {
	Origins     []string `json:"origins"`               // "*" or exact origins
	Methods     []string `json:"methods,omitempty"`     // default GET, HEAD, POST
	Headers     []string `json:"headers,omitempty"`     // allowed request headers
	Expose      []string `json:"expose,omitempty"`      // response headers exposed
	MaxAge      int      `json:"max_age,omitempty"`     // seconds a preflight is cached
	Credentials bool     `json:"credentials,omitempty"` // Access-Control-Allow-Credentials
}

// reserved are Mote's own paths, never a route's.
// The api package's test checks that each of its routes is among them.
var reserved = []string{"/v1", "/fn", "/2015-03-31", "/healthz", "/metrics", "/ui"}

// Reserved reports whether path is one of Mote's own.
func Reserved(path string) bool {
	for _, p := range reserved {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// Parse checks a route and fills in what matching needs.
func Parse(rt Route) (*Route, error) {
	bad := func(f string, a ...any) error {
		return errs.E(errs.BadRequest, "route %q: "+f, append([]any{rt.Pattern}, a...)...)
	}
	i := strings.IndexByte(rt.Pattern, '/')
	if i < 0 {
		return nil, bad("want [HOST]/PATH, e.g. api.example.com/users/* or /hooks/github")
	}
	host, path := strings.ToLower(rt.Pattern[:i]), rt.Pattern[i:]
	if host != "" && !validHost(host) {
		return nil, bad("host %q is not a host name (letters, digits, - and ., no port)", host)
	}
	base, wild := path, false
	if b, ok := strings.CutSuffix(path, "/*"); ok {
		base, wild = b, true
	}
	if !validPath(base) {
		return nil, bad("path %q: use /segments of a-z A-Z 0-9 - . _ ~, optionally ending in /*", path)
	}
	if Reserved(base) {
		return nil, bad("%s is Mote's own path", base)
	}
	if _, _, _, err := registry.ParseRef(rt.Function); err != nil {
		return nil, err
	}
	if c := rt.CORS; c != nil {
		if len(c.Origins) == 0 {
			return nil, bad("cors needs at least one origin (or *)")
		}
		for _, o := range c.Origins {
			if o != "*" && (!strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.ContainsAny(o, " \r\n,")) {
				return nil, bad("cors origin %q: want * or scheme://host[:port]", o)
			}
		}
		if c.Credentials && contains(c.Origins, "*") {
			return nil, bad("cors: credentials cannot be allowed for origin *")
		}
		for _, list := range [][]string{c.Methods, c.Headers, c.Expose} {
			for _, v := range list {
				if v == "" || strings.ContainsAny(v, " \t\r\n,:") {
					return nil, bad("cors: %q is not a method or header name", v)
				}
			}
		}
		if c.MaxAge < 0 || c.MaxAge > 86400 {
			return nil, bad("cors max_age %d out of range 0..86400", c.MaxAge)
		}
	}
	out := rt
	out.Pattern = host + path
	out.host, out.base, out.wild = host, base, wild
	return &out, nil
}

// overlaps reports whether some request matches both a and b.
func overlaps(a, b *Route) bool {
	if a.host != b.host {
		return false
	}
	switch {
	case !a.wild && !b.wild:
		return a.base == b.base
	case a.wild && b.wild:
		return under(a.base, b.base) || under(b.base, a.base)
	case a.wild:
		return under(b.base, a.base)
	default:
		return under(a.base, b.base)
	}
}

// under reports whether path is prefix's base path or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/") || prefix == ""
}

// matches reports whether path (escaped, as sent) is rt's, and if so the
// part after rt's base, starting with "/".
func (rt *Route) matches(path string) (rest string, ok bool) {
	if !rt.wild {
		return "/", path == rt.base
	}
	if rt.base == "" {
		return path, true
	}
	rest, ok = strings.CutPrefix(path, rt.base)
	switch {
	case !ok:
		return "", false
	case rest == "":
		return "/", true
	case rest[0] == '/':
		return rest, true
	}
	return "", false
}

// Prefix is the part of a matched path before what the function sees.
func (rt *Route) Prefix() string { return rt.base }

// Table holds the routes.
type Table struct {
	db *store.DB
	mu sync.Mutex               // serialises changes
	t  atomic.Pointer[[]*Route] // sorted by pattern; never changed once stored
}

// Open loads the routes from db.
func Open(db *store.DB) (*Table, error) {
	var rs []*Route
	var bad error
	err := db.Scan(prefix(), func(_, v []byte) bool {
		var rt Route
		if bad = json.Unmarshal(v, &rt); bad != nil {
			return false
		}
		var p *Route
		if p, bad = Parse(rt); bad != nil {
			return false
		}
		rs = append(rs, p)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("routes: loading: %w", err)
	}
	t := &Table{db: db}
	t.t.Store(&rs)
	return t, nil
}

// ErrNoRoute is Match's answer for a request no route takes.
var ErrNoRoute = errors.New("routes: no route")

// Add stores a new route. A route that overlaps one already there is an
// errs.Conflict naming it.
func (t *Table) Add(rt Route) (*Route, error) {
	p, err := Parse(rt)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.t.Load()
	for _, o := range cur {
		if o.Pattern == p.Pattern {
			return nil, errs.E(errs.Conflict, "route %q exists (to %s); remove it first", o.Pattern, o.Function)
		}
		if overlaps(o, p) {
			return nil, errs.E(errs.Conflict, "route %q overlaps route %q (to %s): a request could match both", p.Pattern, o.Pattern, o.Function)
		}
	}
	p.Created = time.Now().UTC()
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := t.db.Set(key(p.Pattern), b, true); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	next := append(append(make([]*Route, 0, len(cur)+1), cur...), p)
	sort.Slice(next, func(i, j int) bool { return next[i].Pattern < next[j].Pattern })
	t.t.Store(&next)
	return p, nil
}

// Remove deletes the route with pattern.
func (t *Table) Remove(pattern string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.t.Load()
	for i, o := range cur {
		if o.Pattern != normalize(pattern) {
			continue
		}
		if err := t.db.Delete(key(o.Pattern), true); err != nil {
			return fmt.Errorf("routes: %w", err)
		}
		next := append(append(make([]*Route, 0, len(cur)-1), cur[:i]...), cur[i+1:]...)
		t.t.Store(&next)
		return nil
	}
	return errs.E(errs.NotFound, "no route %q", pattern)
}

// List returns the routes, by pattern.
func (t *Table) List() []*Route { return *t.t.Load() }

// Match returns the route for a request to host (a Host header, port
// allowed) and path (the escaped path as sent), with the path after the
// route's base; ErrNoRoute when none takes it.
func (t *Table) Match(host, path string) (*Route, string, error) {
	rs := *t.t.Load()
	if len(rs) == 0 || Reserved(path) {
		return nil, "", ErrNoRoute
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var any *Route
	var anyRest string
	for _, rt := range rs {
		if rt.host != host && rt.host != "" {
			continue
		}
		rest, ok := rt.matches(path)
		if !ok {
			continue
		}
		if rt.host == host {
			return rt, rest, nil
		}
		any, anyRest = rt, rest
	}
	if any != nil {
		return any, anyRest, nil
	}
	return nil, "", ErrNoRoute
}

func normalize(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		return strings.ToLower(pattern[:i]) + pattern[i:]
	}
	return pattern
}

func prefix() []byte { return []byte(store.PrefixRegistry + "route/") }

func key(pattern string) []byte { return append(prefix(), pattern...) }

func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validPath checks a route's base path: "" (the root of a "/*" pattern)
// or /segments of unreserved characters, no empty, "." or ".." segment.
func validPath(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
