package api_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/routes"
)

// with returns a copy of p's request helper acting with tok ("" for
// none).
func (p *platform) with(tok string) *platform {
	q := *p
	q.token = tok
	return &q
}

func TestRoutesPublicPrivateCORS(t *testing.T) {
	httpModules(t)
	p := start(t, t.TempDir(), "admin-token")
	p.mustDeploy("web", httpReactor, `{"http":true}`)
	p.mustDeploy("hello", reactorHello, "")
	_, invokeWeb := p.createKey("", "", "invoke:web")
	_, invokeHello := p.createKey("", "", "invoke:hello")

	for _, body := range []string{
		`{"pattern":"api.example.com/v2/*","function":"web","public":true,"cors":{"origins":["https://app.example.com"],"methods":["GET","DELETE"],"headers":["Content-Type"],"max_age":600}}`,
		`{"pattern":"/private/*","function":"web"}`,
		`{"pattern":"/plain","function":"hello","public":true}`,
	} {
		if r := p.do("POST", "/v1/routes", strings.NewReader(body), nil); r.status != 201 {
			t.Fatalf("add route %s: %d %s", body, r.status, r.body)
		}
	}
	// Refused: an overlap (named), a reserved path, an unknown function,
	// and without the deploy scope.
	r := p.do("POST", "/v1/routes", strings.NewReader(`{"pattern":"api.example.com/v2/admin/*","function":"web"}`), nil)
	if r.status != 409 || !strings.Contains(r.body, "api.example.com/v2/*") {
		t.Errorf("overlap: got %d %s", r.status, r.body)
	}
	if r := p.do("POST", "/v1/routes", strings.NewReader(`{"pattern":"/v1/*","function":"web"}`), nil); r.status != 400 {
		t.Errorf("reserved: got %d %s", r.status, r.body)
	}
	if r := p.do("POST", "/v1/routes", strings.NewReader(`{"pattern":"/nope","function":"nope"}`), nil); r.status != 404 {
		t.Errorf("unknown function: got %d %s", r.status, r.body)
	}
	if r := p.with(invokeWeb).do("POST", "/v1/routes", strings.NewReader(`{"pattern":"/x","function":"web"}`), nil); r.status != 403 {
		t.Errorf("invoke key adds a route: got %d %s", r.status, r.body)
	}

	anon := p.with("")
	// Public: no token, the path after the route.
	r = anon.doHost("GET", "api.example.com", "/v2/users/7?sort=asc", nil, nil)
	var got map[string]string
	json.Unmarshal([]byte(r.body), &got)
	if r.status != 200 || got["id"] != "7" || got["sort"] != "asc" || got["prefix"] != "/v2" {
		t.Errorf("public route: got %d %q", r.status, r.body)
	}
	// Another host: no route, 404; the management API is not the route's.
	if r := anon.doHost("GET", "other.example.com", "/v2/users/7", nil, nil); r.status != 404 {
		t.Errorf("other host: got %d %s", r.status, r.body)
	}
	if r := anon.doHost("GET", "api.example.com", "/v1/functions", nil, nil); r.status != 401 {
		t.Errorf("management API through a routed host: got %d %s, want 401", r.status, r.body)
	}
	// A public route to a plain function: body in, output out.
	if r := anon.do("POST", "/plain", strings.NewReader("route"), nil); r.status != 200 || r.body != "hello, route" {
		t.Errorf("plain public route: got %d %q", r.status, r.body)
	}
	// Private: a key that may invoke the function, not another.
	if r := anon.do("GET", "/private/users/1", nil, nil); r.status != 401 {
		t.Errorf("private without token: got %d", r.status)
	}
	if r := p.with(invokeHello).do("GET", "/private/users/1", nil, nil); r.status != 403 {
		t.Errorf("private with another function's key: got %d", r.status)
	}
	if r := p.with(invokeWeb).do("GET", "/private/users/1", nil, nil); r.status != 200 {
		t.Errorf("private with its key: got %d %s", r.status, r.body)
	}
	// /fn needs the key too (as before), and takes it.
	if r := p.with(invokeWeb).do("GET", "/fn/web/users/2", nil, nil); r.status != 200 {
		t.Errorf("/fn with the invoke key: got %d", r.status)
	}

	// CORS: a preflight is answered by Mote; an allowed origin's request
	// gets Access-Control-Allow-Origin; another origin's does not.
	r = anon.doHost("OPTIONS", "api.example.com", "/v2/users/7", nil, map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "DELETE"})
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r.header.Get("Access-Control-Allow-Methods") != "GET, DELETE" || r.header.Get("Access-Control-Max-Age") != "600" {
		t.Errorf("preflight: got %d %v", r.status, r.header)
	}
	r = anon.doHost("GET", "api.example.com", "/v2/users/7", nil, map[string]string{"Origin": "https://app.example.com"})
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("CORS response: %v", r.header)
	}
	r = anon.doHost("GET", "api.example.com", "/v2/users/7", nil, map[string]string{"Origin": "https://evil.example"})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS for another origin: %v", r.header)
	}

	// List and remove.
	r = p.do("GET", "/v1/routes", nil, nil)
	if !strings.Contains(r.body, `"pattern":"/private/*"`) {
		t.Errorf("list: %s", r.body)
	}
	if r := p.do("DELETE", "/v1/routes?pattern=/plain", nil, nil); r.status != 204 {
		t.Errorf("remove: got %d %s", r.status, r.body)
	}
	if r := anon.do("POST", "/plain", nil, nil); r.status != 404 {
		t.Errorf("removed route: got %d", r.status)
	}
}

func TestVersionsAliasesQualifier(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("f", reactorHello, "")                  // 1
	p.mustDeploy("f", guest, "")                         // 2
	p.mustDeploy("f", reactorHello, `{"env":{"A":"3"}}`) // 3, current

	version := func(r response) string { return r.header.Get("X-Mote-Version") }
	if r := p.invoke("f@2", "echo:pinned"); r.status != 200 || r.body != "pinned" || version(r) != "2" {
		t.Errorf("f@2: got %d %q v%s", r.status, r.body, version(r))
	}
	if r := p.invoke("f@9", "x"); r.status != 404 {
		t.Errorf("f@9: got %d %s", r.status, r.body)
	}
	if r := p.invoke("f:live", "x"); r.status != 404 {
		t.Errorf("unknown alias: got %d %s", r.status, r.body)
	}
	if r := p.do("PUT", "/v1/functions/f/aliases/live", strings.NewReader(`{"version":2}`), nil); r.status != 200 {
		t.Fatalf("set alias: %d %s", r.status, r.body)
	}
	if r := p.invoke("f:live", "echo:alias"); r.body != "alias" || version(r) != "2" {
		t.Errorf("f:live: got %q v%s", r.body, version(r))
	}
	// The Lambda Invoke API: Qualifier as a version, an alias, $LATEST,
	// in the name; unknown is 404.
	for _, tc := range []struct{ path, want string }{
		{"/2015-03-31/functions/f/invocations?Qualifier=2", "2"},
		{"/2015-03-31/functions/f/invocations?Qualifier=live", "2"},
		{"/2015-03-31/functions/f/invocations?Qualifier=$LATEST", "3"},
		{"/2015-03-31/functions/f:1/invocations", "1"},
		{"/2015-03-31/functions/f:live/invocations?Qualifier=live", "2"},
	} {
		r := p.do("POST", tc.path, strings.NewReader("echo:q"), nil)
		if r.status != 200 || r.header.Get("X-Amz-Executed-Version") != tc.want {
			t.Errorf("%s: got %d %q version %s, want %s", tc.path, r.status, r.body, r.header.Get("X-Amz-Executed-Version"), tc.want)
		}
	}
	for _, path := range []string{"/2015-03-31/functions/f/invocations?Qualifier=7", "/2015-03-31/functions/f/invocations?Qualifier=nope"} {
		if r := p.do("POST", path, strings.NewReader("x"), nil); r.status != 404 || r.header.Get("X-Amzn-Errortype") != "ResourceNotFoundException" {
			t.Errorf("%s: got %d %v", path, r.status, r.header)
		}
	}
	if r := p.do("POST", "/2015-03-31/functions/f:live/invocations?Qualifier=2", strings.NewReader("x"), nil); r.status != 400 {
		t.Errorf("disagreeing qualifiers: got %d", r.status)
	}

	// A weighted alias: 3 with 25% to 1. Both serve; the split is counted.
	if r := p.do("PUT", "/v1/functions/f/aliases/live", strings.NewReader(`{"version":3,"weight":{"version":1,"percent":25}}`), nil); r.status != 200 {
		t.Fatalf("weighted alias: %d %s", r.status, r.body)
	}
	seen := map[string]int{}
	for range 200 {
		seen[version(p.invoke("f:live", "x"))]++
	}
	if seen["1"] < 20 || seen["3"] < 100 || seen["1"]+seen["3"] != 200 {
		t.Errorf("weighted split over 200: %v, want about 50 to v1 and 150 to v3", seen)
	}
	r := p.do("GET", "/v1/functions/f", nil, nil)
	var info struct {
		Aliases     []struct{ Name string }
		AliasCounts []struct {
			Version     int
			Invocations int64
		} `json:"alias_counts"`
	}
	json.Unmarshal([]byte(r.body), &info)
	var counted int64
	for _, c := range info.AliasCounts {
		counted += c.Invocations
	}
	if len(info.Aliases) != 1 || counted < 200 {
		t.Errorf("info: aliases %v counts %v", info.Aliases, info.AliasCounts)
	}
	if m := p.do("GET", "/metrics", nil, nil); !strings.Contains(m.body, `mote_alias_invocations_total{alias="live",function="f",version="1"}`) {
		t.Errorf("metrics lack the alias split")
	}
	// Refused: a weight to a missing version, out of range, the same version.
	for _, body := range []string{`{"version":3,"weight":{"version":9,"percent":10}}`, `{"version":3,"weight":{"version":1,"percent":100}}`, `{"version":3,"weight":{"version":3,"percent":10}}`, `{"version":0}`} {
		if r := p.do("PUT", "/v1/functions/f/aliases/live", strings.NewReader(body), nil); r.status/100 != 4 {
			t.Errorf("alias %s: got %d", body, r.status)
		}
	}
	// Rollback: move the alias back.
	p.do("PUT", "/v1/functions/f/aliases/live", strings.NewReader(`{"version":2}`), nil)
	if r := p.invoke("f:live", "echo:back"); r.body != "back" || version(r) != "2" {
		t.Errorf("after moving back: got %q v%s", r.body, version(r))
	}
	// Routes take qualified functions.
	if r := p.do("POST", "/v1/routes", strings.NewReader(`{"pattern":"/live/*","function":"f:live","public":true}`), nil); r.status != 201 {
		t.Fatalf("route to alias: %d %s", r.status, r.body)
	}
	if r := p.do("POST", "/live/x", strings.NewReader("echo:routed"), nil); r.body != "routed" || version(r) != "2" {
		t.Errorf("route to alias: got %q v%s", r.body, version(r))
	}
	// Removing the function removes its aliases.
	p.do("DELETE", "/v1/functions/f", nil, nil)
	p.mustDeploy("f", reactorHello, "")
	if r := p.invoke("f:live", "x"); r.status != 404 {
		t.Errorf("alias after remove: got %d", r.status)
	}
}

// TestOwnPathsAreReserved checks that every path the gateway serves
// itself is one routes refuses and never matches: a new API route outside
// them would be shadowed by users' routes (or answered 404).
func TestOwnPathsAreReserved(t *testing.T) {
	p := start(t, t.TempDir(), "")
	srv := api.New(api.Config{System: p.sys})
	for _, pattern := range srv.Patterns() {
		path := pattern
		if _, after, ok := strings.Cut(pattern, " "); ok {
			path = after
		}
		if path == "/" {
			continue // the catch-all 404
		}
		sample := regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(path, "x")
		if !routes.Reserved(sample) && !routes.Reserved(strings.TrimSuffix(sample, "/")) {
			t.Errorf("the gateway serves %q, which routes.Reserved does not cover", pattern)
		}
	}
}
