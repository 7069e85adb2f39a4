package mote

import (
	"encoding/json"
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
