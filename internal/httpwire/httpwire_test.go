package httpwire

import (
	"net/http"
	"testing"
)

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, s string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "Content-Length", true},
		{"Content-Lengt", "Content-Length", false},
		{"Content_Length", "Content-Length", false},
		{"", "", true},
		{"[", "{", false}, // not letters: no folding across them
	} {
		if got := EqualFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
	}
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	if got := r.StatusOK(); got != http.StatusOK {
		t.Errorf("nothing written: status %d, want 200", got)
	}
	r.WriteHeader(http.StatusNotFound)
	r.WriteHeader(http.StatusOK) // too late: the first one counts
	r.Header().Set("X-A", "1")
	r.Write([]byte("ab"))
	r.Write([]byte("c"))
	if r.Status != http.StatusNotFound || string(r.Body) != "abc" || r.H.Get("X-A") != "1" {
		t.Errorf("got status %d body %q header %v", r.Status, r.Body, r.H)
	}
	r.Reset()
	if r.Status != 0 || len(r.Body) != 0 || len(r.H) != 0 {
		t.Errorf("after Reset: status %d body %q header %v", r.Status, r.Body, r.H)
	}
	r.Write([]byte("x")) // a write without a status is a 200
	if r.Status != http.StatusOK {
		t.Errorf("write first: status %d, want 200", r.Status)
	}
}

// TestAppendHead: the status line and the recorded headers, sorted by key
// and each value on its own line, as net/http writes them.
func TestAppendHead(t *testing.T) {
	r := NewRecorder()
	r.Header()["X-B"] = []string{"2", "3"}
	r.Header()["Content-Type"] = []string{"application/json"}
	r.Header()["X-A"] = []string{"1"}
	r.WriteHeader(http.StatusTooManyRequests)
	got := string(r.AppendHead([]byte("prefix|")))
	want := "prefix|HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nX-A: 1\r\nX-B: 2\r\nX-B: 3\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := string(AppendStatusLine(nil, 599)), "HTTP/1.1 599 status code 599\r\n"; got != want {
		t.Errorf("unknown status: got %q, want %q (net/http's)", got, want)
	}
}
