package handler_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
)

func TestFunc(t *testing.T) {
	tests := []struct {
		name       string
		f          handler.Func
		wantStatus int
		wantCode   string
		wantBody   string
	}{
		{"json", func(w http.ResponseWriter, r *http.Request) error {
			return handler.WriteJSON(w, http.StatusCreated, map[string]any{"id": "x", "n": 1})
		}, http.StatusCreated, "", `{"id":"x","n":1}` + "\n"},
		{"coded error", func(w http.ResponseWriter, r *http.Request) error {
			return errs.E(errs.Conflict, "taken")
		}, http.StatusConflict, "conflict", `{"error":"taken","code":"conflict"}` + "\n"},
		{"internal detail hidden", func(w http.ResponseWriter, r *http.Request) error {
			return errors.New("disk /var/lib/x failed")
		}, http.StatusInternalServerError, "internal", `{"error":"internal error","code":"internal"}` + "\n"},
		{"not found", handler.NotFound, http.StatusNotFound, "not_found", `{"error":"no route for GET /nope","code":"not_found"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.f.ServeHTTP(w, httptest.NewRequest("GET", "/nope", nil))
			if got := w.Code; got != tt.wantStatus {
				t.Errorf("status: got %d, want %d", got, tt.wantStatus)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type: got %q", got)
			}
			if got := w.Header().Get("X-Mote-Error-Code"); got != tt.wantCode {
				t.Errorf("X-Mote-Error-Code: got %q, want %q", got, tt.wantCode)
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("body: got %q, want %q", got, tt.wantBody)
			}
		})
	}
}
