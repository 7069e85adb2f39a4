package api

import (
	"net/http"
	"strings"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/secrets"
)

// The secrets routes. A value goes in with PUT and never comes out: every
// response describes secrets by name, version, times and the functions
// granted them.
func (s *Server) secretRoutes(h func(handler.Func) http.Handler) {
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

// checkSecretGrants refuses a deploy or rollback that would grant fn a
// secret its current version does not have, unless the caller holds the
// admin right. Granting a secret hands its value to code the deployer
// chose, so a deploy key could otherwise read any secret by deploying a
// function that returns its environment. A deploy key keeps the grants a
// function already has (code it deploys can read those, as on Lambda,
// where updating a function's code exposes its environment).
func (s *Server) checkSecretGrants(r *http.Request, fn string, grants []registry.SecretGrant) error {
	if len(grants) == 0 || auth.FromContext(r.Context()).Allows(auth.Need{Right: auth.Admin}) {
		return nil
	}
	had := map[string]bool{}
	if f, err := s.sys.Describe(fn); err == nil {
		for _, v := range f.Versions {
			if v.Number == f.Function.Current {
				for _, g := range v.Config.Secrets {
					had[g.Name] = true
				}
			}
		}
	}
	for _, g := range grants {
		if !had[g.Name] {
			return errs.E(errs.Forbidden, "granting secret %q to %q needs the admin scope; this key may only keep the secrets the function's current version has", g.Name, fn)
		}
	}
	return nil
}
