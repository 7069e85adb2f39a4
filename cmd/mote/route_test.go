package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestCLIRoutesAndAliases(t *testing.T) {
	web := writeModule(t, "../../examples/hello-http", true)
	hello := writeModule(t, "../../examples/hello-reactor", true)
	s := startServer(t)
	steps := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"deploy", "web", web, "--http"}, 0, "deployed web version 1"},
		{[]string{"route", "add", "/api/*", "web", "--public", "--cors", "https://app.example.com"}, 0, "/api/* → web (public)"},
		{[]string{"route", "add", "/api/users/*", "web"}, 1, ""},
		{[]string{"route", "ls"}, 0, "https://app.example.com"},
		{[]string{"deploy", "hello", hello}, 0, "version 1"},
		{[]string{"deploy", "hello", hello, "--env", "V=2"}, 0, "version 2"},
		{[]string{"alias", "set", "hello", "live", "1", "--weight", "2=50%"}, 0, "hello:live → version 1 (50%), version 2 (50%)"},
		{[]string{"invoke", "hello:live", "-d", "x"}, 0, "hello, x"},
		{[]string{"info", "hello"}, 0, "alias live → version 1 (50%), version 2 (50%); served v"},
		{[]string{"alias", "set", "hello", "live", "9"}, 1, ""},
		{[]string{"alias", "rm", "hello", "live"}, 0, "removed alias hello:live"},
		{[]string{"route", "rm", "/api/*"}, 0, "removed route /api/*"},
	}
	for i, st := range steps {
		code, out, errOut := s.mote(t, st.args...)
		if code != st.wantCode || !strings.Contains(out, st.wantOut) {
			t.Fatalf("mote %s: got code %d out %q err %q; want code %d and %q", strings.Join(st.args, " "), code, out, errOut, st.wantCode, st.wantOut)
		}
		if i == 1 { // the route serves, with no token, the path after /api
			resp, err := http.Get(s.url + "/api/users/5?sort=asc")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"id":"5"`) || !strings.Contains(string(b), `"sort":"asc"`) {
				t.Errorf("GET /api/users/5: got %d %s", resp.StatusCode, b)
			}
		}
	}
}
