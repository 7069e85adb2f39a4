// Package handler holds the one handler adapter and the one JSON writer
// behind every route Mote serves (the gateway's own, the flow engine's and
// the BaaS layer's), as caddy's HandlerFunc and HandlerError: a handler
// returns its error, and errs.WriteHTTP, the one place errors become a
// status and a body, writes it.
package handler

import (
	"encoding/json"
	"net/http"

	"github.com/mote-run/mote/internal/errs"
)

// Func is an HTTP handler that returns its error instead of writing it.
type Func func(http.ResponseWriter, *http.Request) error

// ServeHTTP calls f and writes the error it returns, if any, with
// errs.WriteHTTP. A handler that has already written its response
// returns nil, or an error only from writing it (which then goes nowhere
// the caller could see, as with net/http).
func (f Func) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		errs.WriteHTTP(w, err)
	}
}

// WriteJSON writes v as a JSON body with status: compact, one value
// ending in a newline, with Content-Type application/json. Every JSON
// response of Mote's API is written by it (errors by errs.WriteHTTP, in
// the same form).
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// NotFound answers a request no route matched.
func NotFound(w http.ResponseWriter, r *http.Request) error {
	return errs.E(errs.NotFound, "no route for %s %s", r.Method, r.URL.Path)
}
