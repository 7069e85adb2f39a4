// Package errs holds the error codes that cross Mote's wire boundaries.
//
// Every error a caller of Mote can see (an HTTP response, a CLI message, a
// host-call failure inside a function) carries one stable Code and a message.
// Packages keep their own sentinels; they wrap them in an *Error, or the api
// layer maps them, so that callers classify with errors.Is/As and a Code,
// never by matching strings.
package errs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Code is a stable, machine-readable error class. Codes are part of Mote's
// public contract: never rename one.
type Code string

// The codes Mote returns. HTTPStatus gives each one's status.
const (
	BadRequest      Code = "bad_request"
	Unauthorized    Code = "unauthorized"
	Forbidden       Code = "forbidden"
	NotFound        Code = "not_found"
	Conflict        Code = "conflict"
	PayloadTooLarge Code = "payload_too_large"
	Overloaded      Code = "overloaded"
	LimitExceeded   Code = "limit_exceeded"
	FunctionError   Code = "function_error"
	InitError       Code = "init_error"
	Timeout         Code = "timeout"
	OutOfMemory     Code = "out_of_memory"
	Cancelled       Code = "cancelled"
	Unavailable     Code = "unavailable"
	Internal        Code = "internal"
)

var statusOf = map[Code]int{
	BadRequest:      http.StatusBadRequest,
	Unauthorized:    http.StatusUnauthorized,
	Forbidden:       http.StatusForbidden,
	NotFound:        http.StatusNotFound,
	Conflict:        http.StatusConflict,
	PayloadTooLarge: http.StatusRequestEntityTooLarge,
	Overloaded:      http.StatusTooManyRequests,
	LimitExceeded:   http.StatusTooManyRequests,
	FunctionError:   http.StatusBadGateway,
	InitError:       http.StatusBadGateway,
	Timeout:         http.StatusGatewayTimeout,
	OutOfMemory:     http.StatusBadGateway,
	Cancelled:       499,
	Unavailable:     http.StatusServiceUnavailable,
	Internal:        http.StatusInternalServerError,
}

// HTTPStatus returns the HTTP status for c; unknown codes are 500.
func (c Code) HTTPStatus() int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Known reports whether c is one of the codes above.
func (c Code) Known() bool { _, ok := statusOf[c]; return ok }

// Error is an error with a stable code. Message is safe to show to callers;
// Err, if set, is the cause and is never shown to them.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return string(e.Code) + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// E returns an *Error with code c and a formatted message.
func E(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with code c and message msg whose cause is err.
func Wrap(c Code, err error, msg string) *Error {
	return &Error{Code: c, Message: msg, Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal
// when there is none. A nil error has no code ("").
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// MessageOf returns the caller-safe message of err: the *Error's message,
// or a generic text for errors without a code (whose detail may be internal).
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Message != "" {
			return e.Message
		}
		return string(e.Code)
	}
	return "internal error"
}

// body is the JSON shape of every error response.
type body struct {
	Error string `json:"error"`
	Code  Code   `json:"code"`
}

// WriteHTTP writes err as the JSON error body {"error": ..., "code": ...}
// with the status of its code. Internal detail never reaches the caller.
func WriteHTTP(w http.ResponseWriter, err error) {
	c := CodeOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Mote-Error-Code", string(c))
	w.WriteHeader(c.HTTPStatus())
	_ = json.NewEncoder(w).Encode(body{Error: MessageOf(err), Code: c})
}

// FromHTTP rebuilds an *Error from an error response's status and body, as
// written by WriteHTTP (clients use it to keep codes across the wire).
func FromHTTP(status int, data []byte) *Error {
	var b body
	if json.Unmarshal(data, &b) == nil && b.Code != "" {
		return &Error{Code: b.Code, Message: b.Error}
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = http.StatusText(status)
	}
	c := Internal
	for code, s := range statusOf {
		if s == status && status != http.StatusTooManyRequests && status != http.StatusBadGateway {
			c = code
			break
		}
	}
	return &Error{Code: c, Message: msg}
}
