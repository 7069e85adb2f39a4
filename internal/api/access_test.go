package api_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/auth"
)

// createKey creates a key through the API with p's credential and
// returns its id and token.
func (p *platform) createKey(name, expires string, scopes ...string) (id, token string) {
	p.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "scopes": scopes, "expires": expires})
	r := p.do("POST", "/v1/keys", strings.NewReader(string(body)), nil)
	if r.status != http.StatusCreated {
		p.t.Fatalf("creating a key %v: %d %s", scopes, r.status, r.body)
	}
	var out struct {
		Key   auth.Key `json:"key"`
		Token string   `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		p.t.Fatal(err)
	}
	return out.Key.ID, out.Token
}

// as sends a request with the bearer token tok ("" for none).
func (p *platform) as(tok, method, path, body string, header map[string]string) response {
	p.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + tok}
	if tok == "" {
		h["Authorization"] = ""
	}
	for k, v := range header {
		h[k] = v
	}
	return p.do(method, path, strings.NewReader(body), h)
}

// Each route asks for its scope: a key with it is let through, one
// without it is refused with 403 naming the scope, no credential is 401.
func TestScopesOnRoutes(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "0123456789abcdef-admin")
	p.mustDeploy("hello", reactorHello, "")
	_, admin := p.createKey("root", "", "admin")
	_, deploy := p.createKey("ci", "", "deploy")
	_, invoke := p.createKey("", "", "invoke:hello")
	_, glob := p.createKey("", "", "invoke:hel*")
	_, read := p.createKey("", "", "read:b")
	_, write := p.createKey("", "", "write:b")
	_, metrics := p.createKey("", "", "metrics")
	async := map[string]string{"X-Mote-Async": "true"}
	for _, tc := range []struct {
		key                string
		method, path, body string
		header             map[string]string
		want               int
		missing            string // the scope a 403 names
	}{
		{"", "GET", "/v1/functions", "", nil, 401, ""},
		{"mote_nope_nope", "GET", "/v1/functions", "", nil, 401, ""},
		{"", "GET", "/healthz", "", nil, 200, ""},
		{invoke, "GET", "/healthz", "", nil, 200, ""},

		{invoke, "POST", "/fn/hello", "x", nil, 200, ""},
		{invoke, "GET", "/fn/hello/a/b", "", nil, 200, ""},
		{invoke, "POST", "/fn/hello%2Fx", "", nil, 403, "invoke:hello/x"},
		{invoke, "POST", "/fn/hello", "x", async, 202, ""},
		{invoke, "POST", "/2015-03-31/functions/hello/invocations", "{}", nil, 200, ""},
		{invoke, "POST", "/fn/other", "x", nil, 403, "invoke:other"},
		{invoke, "POST", "/2015-03-31/functions/other/invocations", "{}", nil, 403, "invoke:other"},
		{invoke, "GET", "/v1/functions", "", nil, 403, "deploy"},
		{invoke, "GET", "/metrics", "", nil, 403, "metrics"},
		{invoke, "PUT", "/v1/kv/b/k", "v", nil, 403, "write:b"},
		{glob, "POST", "/fn/hello", "x", nil, 200, ""},
		{glob, "POST", "/fn/other", "x", nil, 403, "invoke:other"},

		{deploy, "GET", "/v1/functions", "", nil, 200, ""},
		{deploy, "GET", "/v1/functions/hello", "", nil, 200, ""},
		{deploy, "GET", "/v1/functions/hello/logs", "", nil, 200, ""},
		{deploy, "GET", "/v1/dlq", "", nil, 200, ""},
		{deploy, "GET", "/v1/usage", "", nil, 200, ""},
		{deploy, "POST", "/fn/hello", "x", nil, 403, "invoke:hello"},
		{deploy, "DELETE", "/v1/functions/nope", "", nil, 404, ""},
		{deploy, "GET", "/v1/keys", "", nil, 403, "admin"},
		{deploy, "POST", "/v1/keys", `{"scopes":["admin"]}`, nil, 403, "admin"},
		{deploy, "GET", "/v1/audit", "", nil, 403, "admin"},
		{deploy, "GET", "/v1/kv/b/k", "", nil, 403, "read:b"},

		{read, "GET", "/v1/kv/b/nope", "", nil, 404, ""},
		{read, "GET", "/v1/kv/b", "", nil, 200, ""},
		{read, "PUT", "/v1/kv/b/k", "v", nil, 403, "write:b"},
		{read, "GET", "/v1/kv/c/k", "", nil, 403, "read:c"},
		{read, "GET", "/v1/objects/b", "", nil, 200, ""},
		{read, "POST", "/v1/counters/b/n", "", nil, 403, "write:b"},

		{write, "PUT", "/v1/kv/b/k", "v", nil, 200, ""},
		{write, "GET", "/v1/kv/b/k", "", nil, 200, ""},
		{write, "POST", "/v1/counters/b/n", "", nil, 200, ""},
		{write, "PUT", "/v1/kv/c/k", "v", nil, 403, "write:c"},
		{write, "PUT", "/v1/objects/c/k", "v", nil, 403, "write:c"},
		{write, "DELETE", "/v1/scopes/r", "", nil, 403, "admin"},
		{write, "GET", "/v1/baas/stats", "", nil, 403, "metrics"},

		{metrics, "GET", "/metrics", "", nil, 200, ""},
		{metrics, "GET", "/v1/baas/stats", "", nil, 200, ""},
		{metrics, "GET", "/v1/functions", "", nil, 403, "deploy"},

		{admin, "GET", "/v1/keys", "", nil, 200, ""},
		{admin, "GET", "/v1/audit", "", nil, 200, ""},
		{admin, "POST", "/fn/hello", "x", nil, 200, ""},
		{admin, "PUT", "/v1/kv/z/k", "v", nil, 200, ""},
	} {
		r := p.as(tc.key, tc.method, tc.path, tc.body, tc.header)
		if r.status != tc.want {
			t.Errorf("%s %s with %.12s: got %d %s, want %d", tc.method, tc.path, tc.key, r.status, r.body, tc.want)
			continue
		}
		if tc.want == 403 && !strings.Contains(r.body, "scope "+tc.missing) {
			t.Errorf("%s %s with %.12s: got %s, want the missing scope %s named", tc.method, tc.path, tc.key, r.body, tc.missing)
		}
	}
}

func TestRevokedAndExpiredKeysAre401(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "0123456789abcdef-admin")
	p.mustDeploy("hello", reactorHello, "")
	id, tok := p.createKey("", "", "invoke:hello")
	_, expired := p.createKey("", "1ns", "invoke:hello")
	if r := p.as(tok, "POST", "/fn/hello", "x", nil); r.status != 200 {
		t.Fatalf("valid key: got %d %s", r.status, r.body)
	}
	if r := p.do("DELETE", "/v1/keys/"+id, nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("revoke: got %d %s", r.status, r.body)
	}
	if r := p.do("DELETE", "/v1/keys/"+id, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("revoke twice: got %d %s, want 404", r.status, r.body)
	}
	for name, k := range map[string]string{"revoked": tok, "expired": expired} {
		if r := p.as(k, "POST", "/fn/hello", "x", nil); r.status != 401 {
			t.Errorf("%s key: got %d %s, want 401", name, r.status, r.body)
		}
	}
	var list struct{ Keys []auth.Key }
	r := p.do("GET", "/v1/keys", nil, nil)
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Keys) != 1 || strings.Contains(r.body, expired[18:]) {
		t.Errorf("listing: got %s, want the expired key alone, without its secret", r.body)
	}
}

func TestKeysSurviveRestart(t *testing.T) {
	modules(t)
	dir := t.TempDir()
	p := start(t, dir, "0123456789abcdef-admin")
	p.mustDeploy("hello", reactorHello, "")
	_, kept := p.createKey("kept", "", "invoke:hello")
	goneID, gone := p.createKey("gone", "", "invoke:hello")
	p.do("DELETE", "/v1/keys/"+goneID, nil, nil)
	p.stop()

	p = start(t, dir, "0123456789abcdef-admin")
	if r := p.as(kept, "POST", "/fn/hello", "x", nil); r.status != 200 {
		t.Errorf("after a restart, the key: got %d %s, want 200", r.status, r.body)
	}
	if r := p.as(gone, "POST", "/fn/hello", "x", nil); r.status != 401 {
		t.Errorf("after a restart, the revoked key: got %d %s, want 401", r.status, r.body)
	}
}

// A server without an admin token serves the person at the machine
// without a credential until a key exists; the first key must be an
// admin's, so that its owner is not locked out.
func TestLocalModeAndFirstKey(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("hello", reactorHello, "")
	r := p.do("POST", "/v1/keys", strings.NewReader(`{"scopes":["invoke:hello"]}`), nil)
	if r.status != 400 || !strings.Contains(r.body, "admin") {
		t.Fatalf("first key without admin: got %d %s, want 400", r.status, r.body)
	}
	if r := p.invoke("hello", "x"); r.status != 200 {
		t.Fatalf("local mode: got %d %s", r.status, r.body)
	}
	_, admin := p.createKey("me", "", "admin")
	if r := p.invoke("hello", "x"); r.status != 401 {
		t.Errorf("no credential once a key exists: got %d %s, want 401", r.status, r.body)
	}
	if r := p.as(admin, "GET", "/v1/functions", "", nil); r.status != 200 {
		t.Errorf("the admin key: got %d %s, want 200", r.status, r.body)
	}
}

// Each management action is in the audit log with who took it.
func TestAuditLogsManagementActions(t *testing.T) {
	modules(t)
	const token = "0123456789abcdef-admin"
	p := start(t, t.TempDir(), token)
	p.mustDeploy("hello", reactorHello, "") // admin token
	ciID, ci := p.createKey("ci", "", "deploy")
	_, inv := p.createKey("", "", "invoke:hello")
	p.token = ci
	p.mustDeploy("hello", reactorHello, `{"env":{"A":"1"}}`)
	if r := p.do("POST", "/v1/functions/hello/rollback", nil, nil); r.status != 200 {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	p.token = inv
	if r := p.deploy("hello", reactorHello, ""); r.status != 403 {
		t.Fatalf("deploy with an invoke key: %d %s", r.status, r.body)
	}
	p.as(inv, "POST", "/fn/hello", "x", nil) // not audited
	p.token = ci
	if r := p.do("DELETE", "/v1/functions/hello", nil, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	p.token = token
	p.do("DELETE", "/v1/keys/"+ciID, nil, nil)

	r := p.do("GET", "/v1/audit", nil, nil)
	var out struct{ Entries []auth.Entry }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	var got []string
	for _, e := range out.Entries {
		if e.Client == "" || e.Time.IsZero() {
			t.Errorf("entry %+v: no client or time", e)
		}
		got = append(got, e.Who+" "+e.Action+" "+e.Target+" "+http.StatusText(e.Status))
	}
	want := []string{
		"admin token function.deploy hello Created",
		"admin token key.create " + ciID + " Created",
		"admin token key.create " + strings.Split(inv, "_")[1] + " Created",
		"key " + ciID + " (ci) function.deploy hello Created",
		"key " + ciID + " (ci) function.rollback hello OK",
		"key " + strings.Split(inv, "_")[1] + " function.deploy hello Forbidden",
		"key " + ciID + " (ci) function.delete hello No Content",
		"admin token key.revoke " + ciID + " No Content",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if r := p.do("GET", "/v1/audit?limit=2", nil, nil); strings.Count(r.body, `"action"`) != 2 {
		t.Errorf("limit=2: got %s", r.body)
	}
	if r := p.do("GET", "/v1/audit?since="+out.Entries[6].Time.Format("2006-01-02T15:04:05.999999999Z07:00"), nil, nil); strings.Count(r.body, `"action"`) != 1 || !strings.Contains(r.body, "key.revoke") {
		t.Errorf("since the 7th: got %s, want the revocation alone", r.body)
	}

	local := start(t, t.TempDir(), "")
	local.mustDeploy("hello", reactorHello, "")
	if r := local.do("GET", "/v1/audit", nil, nil); !strings.Contains(r.body, `"who":"local"`) {
		t.Errorf("a tokenless server's audit log: got %s, want who local", r.body)
	}
}

// A deploy key cannot grant a function a secret its current version does
// not have: it could read any secret by deploying code that returns its
// environment (a review found it could). It may keep the grants a
// function has, and an admin may grant any.
func TestDeployKeyCannotGrantNewSecrets(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "0123456789abcdef-admin")
	for _, name := range []string{"S", "T"} {
		if r := p.do("PUT", "/v1/secrets/"+name, strings.NewReader("value-of-"+name), nil); r.status/100 != 2 {
			t.Fatalf("set secret %s: %d %s", name, r.status, r.body)
		}
	}
	_, deploy := p.createKey("ci", "", "deploy")
	deployAs := func(tok, cfg string) response {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("config", cfg)
		fw, _ := mw.CreateFormFile("artifact", "f.wasm")
		fw.Write(reactorHello)
		mw.Close()
		return p.do("PUT", "/v1/functions/f", &buf, map[string]string{"Content-Type": mw.FormDataContentType(), "Authorization": "Bearer " + tok})
	}
	for _, tc := range []struct {
		who, tok, cfg string
		want          int
	}{
		{"deploy key, new function granting S", deploy, `{"secrets":["S"]}`, 403},
		{"admin, granting S", "0123456789abcdef-admin", `{"secrets":["S"]}`, 201},
		{"deploy key, keeping S", deploy, `{"secrets":["S"]}`, 201},
		{"deploy key, adding T", deploy, `{"secrets":["S","T"]}`, 403},
		{"deploy key, dropping S", deploy, `{}`, 201},
	} {
		r := deployAs(tc.tok, tc.cfg)
		if r.status != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.who, r.status, r.body, tc.want)
		}
	}
	// Version 3 has no grants; rolling back to version 2 (which has S)
	// would grant S again: not with a deploy key.
	if r := p.as(deploy, "POST", "/v1/functions/f/rollback", `{"version":2}`, nil); r.status != 403 {
		t.Errorf("deploy key rolling back to a version granting S: got %d %s, want 403", r.status, r.body)
	}
	if r := p.as("0123456789abcdef-admin", "POST", "/v1/functions/f/rollback", `{"version":2}`, nil); r.status != 200 {
		t.Errorf("admin rolling back: got %d %s, want 200", r.status, r.body)
	}
}

// Without a token or keys, Mote serves the person at the machine, not a
// web page their browser opened: a request addressed to another name
// (DNS rebinding) or sent cross-site (a form POST needs no preflight) is
// refused. A review found both got every right.
func TestOpenModeRefusesBrowserAttacks(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	send := func(host string, header map[string]string) int {
		req, _ := http.NewRequest("GET", p.srv.URL+"/v1/functions", nil)
		if host != "" {
			req.Host = host
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	post := func(header map[string]string) int {
		req, _ := http.NewRequest("DELETE", p.srv.URL+"/v1/functions/nope", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name string
		got  int
		want int
	}{
		{"loopback address", send("", nil), 200},
		{"localhost", send("localhost:8080", nil), 200},
		{"[::1]", send("[::1]:8080", nil), 200},
		{"a rebound name", send("attacker.example:8080", nil), 403},
		{"a private address", send("192.168.1.10:8080", nil), 403},
		{"same-origin delete", post(map[string]string{"Sec-Fetch-Site": "same-origin"}), 404},
		{"cross-site delete", post(map[string]string{"Sec-Fetch-Site": "cross-site"}), 403},
		{"foreign Origin delete", post(map[string]string{"Origin": "https://attacker.example"}), 403},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// A key's expiry is bounded as a TTL is: one past 2262 would overflow
// and make a key that is expired when made (a review found it).
func TestKeyExpiryBounded(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "0123456789abcdef-admin")
	for _, tc := range []struct {
		expires string
		want    int
	}{
		{"720h", 201},
		{"876000h", 201},
		{"3000000h", 400},
		{"-1h", 400},
	} {
		body := `{"scopes":["deploy"],"expires":"` + tc.expires + `"}`
		if r := p.do("POST", "/v1/keys", strings.NewReader(body), nil); r.status != tc.want {
			t.Errorf("expires %s: got %d %s, want %d", tc.expires, r.status, r.body, tc.want)
		}
	}
}
