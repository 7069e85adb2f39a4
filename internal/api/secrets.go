package api

import (
	"github.com/mote-run/mote/internal/auth"
	"net/http"
	"strings"

	"github.com/mote-run/mote/internal/secrets"
)

// The secrets routes. A value goes in with PUT and never comes out: every
// response describes secrets by name, version, times and the functions
// granted them.
func (s *Server) secretRoutes(h func(func(http.ResponseWriter, *http.Request) error) http.Handler) {
	// Secrets are the admin's: a deploy key grants them to functions by
	// name, but cannot read, set or remove them.
	admin, none := fixed(auth.Admin), audited{}
	s.handle("GET /v1/secrets", admin, none, h(s.listSecrets))
	s.handle("GET /v1/secrets/{name}", admin, none, h(s.getSecret))
	s.handle("PUT /v1/secrets/{name}", admin, audited{"secret.set", "name"}, h(s.setSecret))
	s.handle("DELETE /v1/secrets/{name}", admin, audited{"secret.remove", "name"}, h(s.removeSecret))
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	list, err := s.sys.Secrets()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"secrets": list})
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) error {
	sec, err := s.sys.SecretInfo(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sec)
}

// setSecret takes the value as the raw request body.
func (s *Server) setSecret(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := secrets.ValidName(name); err != nil {
		return err
	}
	value, err := readBody(w, r, secrets.MaxValue)
	if err != nil {
		return err
	}
	set, err := s.sys.SetSecret(r.Context(), name, value)
	clear(value)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, set)
}

func (s *Server) removeSecret(w http.ResponseWriter, r *http.Request) error {
	if err := s.sys.RemoveSecret(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SecretAction names a request's change to secrets for an audit log
// ("secret set NAME", "secret rm NAME"), from its method and path alone:
// never the body, which holds the value. Other requests give "".
func SecretAction(r *http.Request) string {
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/secrets/")
	if !ok || name == "" || strings.Contains(name, "/") || secrets.ValidName(name) != nil {
		return ""
	}
	switch r.Method {
	case http.MethodPut:
		return "secret set " + name
	case http.MethodDelete:
		return "secret rm " + name
	}
	return ""
}
