package mote

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
)

func TestServeEvent(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c, _ := r.Cookie("sid")
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
		w.Header().Set("X-Seen", r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Host+" "+r.RemoteAddr+" "+c.Value+" "+string(b))
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte{0xff, 0x00})
	})
	ev := `{"version":"2.0","rawPath":"/a/b","rawQueryString":"x=1","cookies":["sid=s1"],"headers":{"host":"h.example"},
		"requestContext":{"domainName":"h.example","http":{"method":"PUT","sourceIp":"10.1.2.3"}},"body":"aGk=","isBase64Encoded":true}`
	out, err := ServeEvent(&Context{}, h, []byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	var resp v2Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 418 || resp.Body != "/wA=" || !resp.IsBase64Encoded || len(resp.Cookies) != 2 {
		t.Errorf("got %+v", resp)
	}
	if got, want := resp.Headers["X-Seen"], "PUT /a/b?x=1 h.example 10.1.2.3 s1 hi"; got != want {
		t.Errorf("request as seen: got %q, want %q", got, want)
	}
	if _, err := ServeEvent(nil, h, []byte("not json")); err == nil {
		t.Error("a payload that is not an event: no error")
	}
}

// FuzzParseEvent checks the hand-written event reader against
// encoding/json: on input both accept, they read the same fields.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"rawPath":"/a\u00e9\ud83d\ude00","headers":{"a":"b","c":null},"cookies":["x=1"],"requestContext":{"http":{"method":"GET","x":[1,{"y":null}]}},"body":"\n\t\"","isBase64Encoded":true,"n":-1.5e3}`))
	f.Add([]byte(`{"rawPath":"\ud800","body":"\u0000"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseEvent(b)
		var want v2Event
		werr := json.Unmarshal(b, &want)
		if err != nil || werr != nil {
			if err == nil && werr != nil {
				var syn *json.SyntaxError
				if errors.As(werr, &syn) {
					t.Fatalf("accepted %q, which encoding/json finds malformed: %v", b, werr)
				}
			}
			return
		}
		// encoding/json matches keys regardless of case; Mote sends
		// them exactly, and parseEvent reads them exactly.
		for _, k := range []string{"rawPath", "rawQueryString", "cookies", "headers", "body", "isBase64Encoded", "requestContext", "http", "method", "domainName", "path", "protocol", "sourceIp"} {
			if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(k))) && !bytes.Contains(b, []byte(`"`+k+`"`)) {
				return
			}
		}
		if got.RawPath != want.RawPath || got.Body != want.Body || got.IsBase64Encoded != want.IsBase64Encoded ||
			got.RequestContext.HTTP.Method != want.RequestContext.HTTP.Method || len(got.Cookies) != len(want.Cookies) {
			t.Fatalf("%q: got %+v, encoding/json %+v", b, got, want)
		}
		for k, v := range want.Headers {
			if got.Headers[k] != v {
				t.Fatalf("%q: header %q got %q, want %q", b, k, got.Headers[k], v)
			}
		}
	})
}

func TestEncodeIsJSON(t *testing.T) {
	w := &responseBuffer{header: http.Header{"X-Q": {"a\"b\\c\n<&>\x01"}, "Set-Cookie": {"a=1", "b=\"2\""}}}
	w.Write([]byte("text \u2028 \"quoted\""))
	out, _ := w.encode()
	var resp v2Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if resp.Headers["X-Q"] != "a\"b\\c\n<&>\x01" || resp.Body != "text \u2028 \"quoted\"" || len(resp.Cookies) != 2 || resp.Cookies[1] != `b="2"` {
		t.Errorf("got %+v", resp)
	}
}
