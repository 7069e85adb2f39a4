package httpfn

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		name, out  string
		status     int
		body, ct   string
		cookies    int
		wantErrSub string
	}{
		{name: "v2", out: `{"statusCode":404,"headers":{"Content-Type":"text/plain"},"body":"gone"}`, status: 404, body: "gone", ct: "text/plain"},
		{name: "string status", out: `{"statusCode":"201","body":"x"}`, status: 201, body: "x", ct: "application/json"},
		{name: "cookies", out: `{"statusCode":200,"cookies":["a=1","b=2; HttpOnly"]}`, status: 200, cookies: 2},
		{name: "base64", out: `{"statusCode":200,"body":"AAH/","isBase64Encoded":true,"headers":{"content-type":"application/octet-stream"}}`, status: 200, body: "\x00\x01\xff", ct: "application/octet-stream"},
		{name: "plain JSON", out: `{"greeting":"hi"}`, status: 200, body: `{"greeting":"hi"}`, ct: "application/json"},
		{name: "JSON string", out: `"hello"`, status: 200, body: "hello", ct: "application/json"},
		{name: "JSON number", out: `42`, status: 200, body: "42", ct: "application/json"},
		{name: "not JSON", out: "hello, world\n", status: 200, body: "hello, world\n"},
		{name: "empty", out: "", status: 200},
		{name: "streamed", out: `{"statusCode":202,"headers":{"X-A":"1"}}` + "\x00\x00\x00\x00\x00\x00\x00\x00" + "data: 1\n\n", status: 202, body: "data: 1\n\n"},
		{name: "framing headers dropped", out: `{"statusCode":200,"headers":{"Content-Length":"99","Transfer-Encoding":"chunked"},"body":"ok"}`, status: 200, body: "ok", ct: "application/json"},
		{name: "status low", out: `{"statusCode":100}`, wantErrSub: "out of range"},
		{name: "status high", out: `{"statusCode":600}`, wantErrSub: "out of range"},
		{name: "status float", out: `{"statusCode":200.5}`, wantErrSub: "not a number"},
		{name: "status text", out: `{"statusCode":"ok"}`, wantErrSub: "not a number"},
		{name: "CRLF value", out: `{"statusCode":200,"headers":{"X":"a\r\nSet-Cookie: x=1"}}`, wantErrSub: "control character"},
		{name: "LF value", out: `{"statusCode":200,"headers":{"X":"a\nb"}}`, wantErrSub: "control character"},
		{name: "NUL value", out: `{"statusCode":200,"headers":{"X":"a\u0000b"}}`, wantErrSub: "control character"},
		{name: "bad name", out: `{"statusCode":200,"headers":{"X Y":"a"}}`, wantErrSub: "not a valid HTTP token"},
		{name: "CRLF name", out: `{"statusCode":200,"headers":{"X\r\nY":"a"}}`, wantErrSub: "not a valid HTTP token"},
		{name: "CRLF cookie", out: `{"statusCode":200,"cookies":["a=1\r\nX: y"]}`, wantErrSub: "control character"},
		{name: "bad base64", out: `{"statusCode":200,"body":"!!!","isBase64Encoded":true}`, wantErrSub: "base64"},
		{name: "header not string", out: `{"statusCode":200,"headers":{"X":1}}`, wantErrSub: "not a string"},
		{name: "body not string", out: `{"statusCode":200,"body":{}}`, wantErrSub: "not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ParseResponse([]byte(tc.out))
			if tc.wantErrSub != "" {
				if err == nil || errs.CodeOf(err) != errs.FunctionError || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("got %v, want a function_error about %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || string(resp.Body) != tc.body || resp.Header.Get("Content-Type") != tc.ct || len(resp.Header.Values("Set-Cookie")) != tc.cookies {
				t.Errorf("got %d %q type %q cookies %q, want %d %q type %q %d cookies", resp.Status, resp.Body, resp.Header.Get("Content-Type"), resp.Header.Values("Set-Cookie"), tc.status, tc.body, tc.ct, tc.cookies)
			}
			if resp.Header.Get("Content-Length") != "" || resp.Header.Get("Transfer-Encoding") != "" {
				t.Errorf("framing headers kept: %v", resp.Header)
			}
		})
	}
}

func TestBuildEvent(t *testing.T) {
	r := httptest.NewRequest("DELETE", "http://api.example.com/users/42?sort=asc&sort=desc&x=1", nil)
	r.Header.Add("Cookie", "a=1; b=2")
	r.Header.Add("X-Many", "1")
	r.Header.Add("X-Many", "2")
	r.RemoteAddr = "10.0.0.7:5555"
	now := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	b, err := BuildEvent(Request{Request: r, Path: "/42", Prefix: "/users", Body: []byte{0xff, 0x00}, ID: "id1", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"version", ev.Version, "2.0"},
		{"rawPath", ev.RawPath, "/42"},
		{"rawQueryString", ev.RawQueryString, "sort=asc&sort=desc&x=1"},
		{"query sort", ev.QueryStringParameters["sort"], "asc,desc"},
		{"method", ev.RequestContext.HTTP.Method, "DELETE"},
		{"sourceIp", ev.RequestContext.HTTP.SourceIP, "10.0.0.7"},
		{"x-many", ev.Headers["x-many"], "1,2"},
		{"prefix", ev.Headers["x-forwarded-prefix"], "/users"},
		{"host", ev.Headers["host"], "api.example.com"},
		{"domainPrefix", ev.RequestContext.DomainPrefix, "api"},
		{"cookies", strings.Join(ev.Cookies, "|"), "a=1|b=2"},
		{"body", ev.Body, "/wA="},
		{"time", ev.RequestContext.Time, "07/Dec/2026:20:00:00 +0000"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if !ev.IsBase64Encoded || ev.Headers["cookie"] != "" {
		t.Errorf("base64 %v, cookie header %q", ev.IsBase64Encoded, ev.Headers["cookie"])
	}
}

func TestParseCGI(t *testing.T) {
	for _, tc := range []struct {
		out     string
		status  int
		body    string
		wantErr bool
	}{
		{out: "Content-Type: text/plain\n\nhi", status: 200, body: "hi"},
		{out: "Content-Type: text/plain\r\nStatus: 404 Not Found\r\n\r\nnope", status: 404, body: "nope"},
		{out: "Location: /elsewhere\n\n", status: 302},
		{out: "hello, world\n", wantErr: true},
		{out: "X-Only: 1\n\nbody", wantErr: true},
		{out: "Status: 99\n\n", wantErr: true},
		{out: "Status: abc\n\n", wantErr: true},
		{out: "Bad Name: 1\nContent-Type: a\n\n", wantErr: true},
	} {
		resp, err := ParseCGI([]byte(tc.out))
		if tc.wantErr {
			if errs.CodeOf(err) != errs.FunctionError {
				t.Errorf("%q: got %v, want a function_error", tc.out, err)
			}
			continue
		}
		if err != nil || resp.Status != tc.status || string(resp.Body) != tc.body {
			t.Errorf("%q: got %+v %v, want %d %q", tc.out, resp, err, tc.status, tc.body)
		}
	}
}

// FuzzParseResponse checks that whatever a function answers, either it is
// refused or net/http writes it as one well-formed response whose header
// has what the function set and nothing injected.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"statusCode":200,"headers":{"a":"b"},"cookies":["c=d"],"body":"x"}`,
		`{"statusCode":200,"body":"AAE=","isBase64Encoded":true}`,
		`{"statusCode":301,"headers":{"Location":"/x\r\nX: y"}}`,
		`"str"`, `[1,2]`, "plain", `{"statusCode":"404"}`,
		`{"statusCode":200}` + "\x00\x00\x00\x00\x00\x00\x00\x00body",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		resp, err := ParseResponse(out)
		if err != nil {
			if errs.CodeOf(err) != errs.FunctionError {
				t.Fatalf("error of code %s: %v", errs.CodeOf(err), err)
			}
			return
		}
		rec := httptest.NewRecorder()
		if err := resp.Write(rec); err != nil {
			t.Fatal(err)
		}
		// Through a real server: the response must parse back as one.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { resp.Write(w) }))
		defer srv.Close()
		got, err := http.Get(srv.URL)
		if err != nil {
			t.Fatalf("response did not parse: %v", err)
		}
		defer got.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(got.Body)
		if got.StatusCode != resp.Status {
			t.Fatalf("status %d, want %d", got.StatusCode, resp.Status)
		}
		for k := range got.Header {
			switch k {
			case "Date", "Content-Length", "Content-Type", "Transfer-Encoding":
				continue
			}
			if resp.Header.Values(k) == nil {
				t.Fatalf("header %q in the response, not set by the function", k)
			}
		}
	})
}
