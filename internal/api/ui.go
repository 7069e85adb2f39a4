package api

import (
	"net/http"
	"strings"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/ui"
)

// uiRoutes serves the dashboard (internal/ui) at /ui. Its files hold no
// data: the page reads everything through this API with the credential
// the user gives it, so they need none, and a browser can load them
// before it has one. A tokenless server still serves them only as it
// serves the API: to requests addressed to localhost (localOnly).
func (s *Server) uiRoutes() {
	h := ui.Handler()
	s.handle("GET "+ui.Prefix, fixed(auth.Public), audited{}, h)
	s.handle("GET "+ui.Prefix+"/{file...}", fixed(auth.Public), audited{}, h)
}

// credentialOptional reports whether r may be served although
// authenticating it failed with err: /healthz always, the dashboard's
// files when the failure is only a missing or wrong credential.
func credentialOptional(r *http.Request, err error) bool {
	if r.URL.Path == "/healthz" {
		return true
	}
	p := r.URL.Path
	isUI := p == ui.Prefix || strings.HasPrefix(p, ui.Prefix+"/")
	return isUI && errs.CodeOf(err) == errs.Unauthorized
}
