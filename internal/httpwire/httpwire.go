// Package httpwire holds the pieces Mote's two hand-written HTTP/1.1
// servers share: the gateway's fast path for invocations (internal/api)
// and the Runtime API each process function talks to
// (internal/runtime/process). Both read requests off the connection and
// build responses as bytes; what they have in common lives here once.
package httpwire

import "net/http"

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
