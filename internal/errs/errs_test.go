package errs

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCodesAndWire(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   Code
		status int
		msg    string
	}{
		{E(NotFound, "function %q not found", "f"), NotFound, 404, `function "f" not found`},
		{fmt.Errorf("wrapped: %w", E(Overloaded, "busy")), Overloaded, 429, "busy"},
		{Wrap(Timeout, errors.New("deadline"), "timed out"), Timeout, 504, "timed out"},
		{errors.New("disk on fire at /var/secret"), Internal, 500, "internal error"},
	} {
		rec := httptest.NewRecorder()
		WriteHTTP(rec, tc.err)
		if rec.Code != tc.status || rec.Header().Get("X-Mote-Error-Code") != string(tc.code) {
			t.Errorf("%v: got %d %s", tc.err, rec.Code, rec.Header().Get("X-Mote-Error-Code"))
		}
		if strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("internal detail leaked: %s", rec.Body.String())
		}
		back := FromHTTP(rec.Code, rec.Body.Bytes())
		if back.Code != tc.code || back.Message != tc.msg {
			t.Errorf("%v: round trip gave %s %q, want %s %q", tc.err, back.Code, back.Message, tc.code, tc.msg)
		}
		if !errors.Is(tc.err, &Error{Code: tc.code}) && tc.code != Internal {
			t.Errorf("errors.Is by code failed for %v", tc.err)
		}
	}
	if CodeOf(nil) != "" {
		t.Error("nil error has a code")
	}
	if got := FromHTTP(http.StatusNotFound, []byte("plain text")); got.Code != NotFound || got.Message != "plain text" {
		t.Errorf("non-JSON body: got %+v", got)
	}
	for c := range statusOf {
		if !c.Known() || c.HTTPStatus() < 400 {
			t.Errorf("code %s: status %d", c, c.HTTPStatus())
		}
	}
}
