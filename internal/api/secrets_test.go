package api_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/errs"
)

// TestSecretsAPINeverReturnsValue: the secrets routes take a value and
// answer with names, versions and grants; no route returns the value,
// and the routes need the admin token.
func TestSecretsAPINeverReturnsValue(t *testing.T) {
	modules(t)
	const token = "0123456789abcdef-admin"
	const value = "v4lue-that-must-not-come-back"
	p := start(t, t.TempDir(), token)
	anon := *p
	anon.token = ""
	if r := anon.do("PUT", "/v1/secrets/API_KEY", strings.NewReader(value), nil); r.status != 401 {
		t.Errorf("PUT without the token: %d %s", r.status, r.body)
	}
	if r := anon.do("GET", "/v1/secrets", nil, nil); r.status != 401 {
		t.Errorf("GET without the token: %d %s", r.status, r.body)
	}
	r := p.do("PUT", "/v1/secrets/API_KEY", strings.NewReader(value), nil)
	if r.status != 200 || !strings.Contains(r.body, `"version":1`) {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	p.mustDeploy("hello", reactorHello, `{"secrets": ["API_KEY"]}`)
	if r := p.invoke("hello", "x"); r.status != 200 {
		t.Errorf("invoking the granted function: %d %s", r.status, r.body)
	}
	r = p.do("PUT", "/v1/secrets/API_KEY", strings.NewReader(value+"-2"), nil)
	if r.status != 200 || !strings.Contains(r.body, `"hello@1"`) || !strings.Contains(r.body, `"version":2`) {
		t.Errorf("second PUT: %d %s; want version 2 with hello@1 refreshed", r.status, r.body)
	}
	for _, path := range []string{"/v1/secrets", "/v1/secrets/API_KEY", "/v1/functions", "/v1/functions/hello", "/v1/functions/hello/logs", "/metrics"} {
		r := p.do("GET", path, nil, nil)
		if r.status != 200 || strings.Contains(r.body, value) {
			t.Errorf("GET %s: %d, holds the value: %v", path, r.status, strings.Contains(r.body, value))
		}
	}
	if r := p.do("GET", "/v1/secrets", nil, nil); !strings.Contains(r.body, `"functions":["hello"]`) {
		t.Errorf("list does not show the grant: %s", r.body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               errs.Code
	}{
		{"PUT", "/v1/secrets/1BAD", "x", errs.BadRequest},
		{"PUT", "/v1/secrets/EMPTY", "", errs.BadRequest},
		{"PUT", "/v1/secrets/BIG", strings.Repeat("x", 64<<10+1), errs.PayloadTooLarge},
		{"GET", "/v1/secrets/NOPE", "", errs.NotFound},
		{"DELETE", "/v1/secrets/NOPE", "", errs.NotFound},
		{"DELETE", "/v1/secrets/API_KEY", "", errs.Conflict},
	} {
		r := p.do(tc.method, tc.path, strings.NewReader(tc.body), nil)
		if got := codeOf(t, r); got != tc.code {
			t.Errorf("%s %s: got %d %s, want %s", tc.method, tc.path, r.status, r.body, tc.code)
		}
	}
	p.mustDeploy("hello", reactorHello, `{}`)
	if r := p.do("DELETE", "/v1/secrets/API_KEY", nil, nil); r.status != 204 {
		t.Errorf("DELETE once no function is granted it: %d %s", r.status, r.body)
	}
}

func TestSecretActionForAudit(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"PUT", "/v1/secrets/DB_PASSWORD", "secret set DB_PASSWORD"},
		{"DELETE", "/v1/secrets/DB_PASSWORD", "secret rm DB_PASSWORD"},
		{"GET", "/v1/secrets/DB_PASSWORD", ""},
		{"GET", "/v1/secrets", ""},
		{"PUT", "/v1/secrets/a/b", ""},
		{"PUT", "/v1/functions/x", ""},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader("the value"))
		if got := api.SecretAction(r); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
