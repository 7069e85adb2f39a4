// Package httpwire holds the pieces Mote's two hand-written HTTP/1.1
// servers share: the gateway's fast path for invocations (internal/api)
// and the Runtime API each process function talks to
// (internal/runtime/process). Both read requests off the connection and
// build responses as bytes; what they have in common lives here once.
package httpwire

import (
	"net/http"
	"slices"
	"strconv"
)

// EqualFold reports whether b equals s, ignoring ASCII case, as header
// names and tokens compare.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Recorder is an http.ResponseWriter that keeps the response in memory,
// for a server that writes it out itself with its length. Status is 0
// until a handler sets it; the first WriteHeader or Write decides it.
type Recorder struct {
	H      http.Header
	Status int
	Body   []byte

	keys []string // AppendHead's scratch
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{H: http.Header{}} }

// Reset empties r for the next response, keeping its buffers.
func (r *Recorder) Reset() {
	clear(r.H)
	r.Status, r.Body = 0, r.Body[:0]
}

// Header is the response's header map.
func (r *Recorder) Header() http.Header { return r.H }

// WriteHeader sets the status unless it is already set.
func (r *Recorder) WriteHeader(status int) {
	if r.Status == 0 {
		r.Status = status
	}
}

// Write appends p to the body; a status not yet set becomes 200.
func (r *Recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.Body = append(r.Body, p...)
	return len(p), nil
}

// StatusOK is Status, or 200 when the handler set none (as net/http
// answers a handler that wrote nothing).
func (r *Recorder) StatusOK() int {
	if r.Status == 0 {
		return http.StatusOK
	}
	return r.Status
}

// AppendStatusLine appends "HTTP/1.1 CODE TEXT" and its CRLF to b, with
// net/http's text for a code it has no name for.
func AppendStatusLine(b []byte, status int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if text := http.StatusText(status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	return append(b, "\r\n"...)
}

// AppendHead appends the response's status line and header lines to b,
// the headers sorted by key as net/http writes a handler's. The caller
// adds the framing headers (length, Date, Connection) and the blank line.
func (r *Recorder) AppendHead(b []byte) []byte {
	b = AppendStatusLine(b, r.StatusOK())
	r.keys = r.keys[:0]
	for k := range r.H {
		r.keys = append(r.keys, k)
	}
	slices.Sort(r.keys)
	for _, k := range r.keys {
		for _, v := range r.H[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}
