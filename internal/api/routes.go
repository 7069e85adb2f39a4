package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/routes"
	"github.com/mote-run/mote/internal/system"
)

// Routes to functions (internal/routes), aliases, and the Lambda Invoke
// API's qualifier.

// httpRoutes registers /v1/routes and the alias routes.
func (s *Server) httpRoutes(h func(handler.Func) http.Handler) {
	deploy, none := fixed(auth.Deploy), audited{}
	s.handle("GET /v1/routes", deploy, none, h(s.listRoutes))
	s.handle("POST /v1/routes", deploy, audited{"route.add", ""}, h(s.addRoute))
	s.handle("DELETE /v1/routes", deploy, audited{"route.remove", ""}, h(s.removeRoute))
	s.handle("GET /v1/functions/{name}/aliases", deploy, none, h(s.listAliases))
	s.handle("PUT /v1/functions/{name}/aliases/{alias}", deploy, audited{"alias.set", "name"}, h(s.setAlias))
	s.handle("DELETE /v1/functions/{name}/aliases/{alias}", deploy, audited{"alias.remove", "name"}, h(s.removeAlias))
}

func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"routes": s.sys.Routes().List()})
}

// addRoute takes a routes.Route as JSON. The function must exist.
func (s *Server) addRoute(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, 1<<16)
	if err != nil {
		return err
	}
	var rt routes.Route
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rt); err != nil {
		return errs.E(errs.BadRequest, "route: %v", err)
	}
	if rt.Function == "" {
		return errs.E(errs.BadRequest, "route: no function")
	}
	if _, err := s.sys.Registry().Function(registry.BaseName(rt.Function)); err != nil {
		return err
	}
	added, err := s.sys.Routes().Add(rt)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, added)
}

// removeRoute removes the route ?pattern=.
func (s *Server) removeRoute(w http.ResponseWriter, r *http.Request) error {
	p := r.URL.Query().Get("pattern")
	if p == "" {
		return errs.E(errs.BadRequest, "which route? give ?pattern=")
	}
	if err := s.sys.Routes().Remove(p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listAliases(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := s.sys.Registry().Function(name); err != nil {
		return err
	}
	as, err := s.sys.Registry().Aliases(name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"aliases": as, "counts": s.sys.AliasCounts(name)})
}

// setAlias takes {"version": N, "weight": {"version": M, "percent": P}}.
func (s *Server) setAlias(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, 1<<16)
	if err != nil {
		return err
	}
	var a registry.Alias
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return errs.E(errs.BadRequest, "alias: %v", err)
	}
	a.Function, a.Name = r.PathValue("name"), r.PathValue("alias")
	out, err := s.sys.SetAlias(a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) removeAlias(w http.ResponseWriter, r *http.Request) error {
	if err := s.sys.Registry().DeleteAlias(r.PathValue("name"), r.PathValue("alias")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lambdaTarget resolves the Lambda Invoke API's function: the path's
// name (which may carry :QUALIFIER) and ?Qualifier=, a version number,
// $LATEST or an alias. An unknown one is not_found; two that disagree
// are bad_request.
func (s *Server) lambdaTarget(r *http.Request) (string, error) {
	ref := r.PathValue("name")
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		base, inPath, has := strings.Cut(ref, ":")
		if has && inPath != q {
			return "", errs.E(errs.BadRequest, "the function name's qualifier %q and Qualifier %q differ", inPath, q)
		}
		var err error
		if ref, err = registry.WithQualifier(base, q); err != nil {
			return "", err
		}
	}
	if !strings.ContainsAny(ref, "@:") && !strings.Contains(r.URL.RawQuery, "Qualifier") {
		return ref, nil // the current version, as before: no lookup here
	}
	t, err := s.sys.Resolve(r.Context(), ref)
	if err != nil {
		return "", err
	}
	return t.Key, nil
}

// serveRoute serves r if a route takes it, and reports whether one did.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request) bool {
	if routes.Reserved(r.URL.Path) {
		return false // Mote's own, however it was escaped
	}
	path := r.URL.EscapedPath()
	rt, rest, err := s.sys.Routes().Match(r.Host, path)
	if errors.Is(err, routes.ErrNoRoute) {
		if routes.Reserved(path) {
			return false
		}
		// Nothing serves it, whoever asks: 404, with or without a
		// credential (a 401 would say there is something to see).
		errs.WriteHTTP(w, errs.E(errs.NotFound, "no route for %s %s%s", r.Method, r.Host, path))
		return true
	}
	if c := rt.CORS; c != nil && corsHeaders(w, r, c) {
		return true // a preflight, answered
	}
	if !rt.Public {
		p, err := s.authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mote"`)
			errs.WriteHTTP(w, err)
			return true
		}
		if n := (auth.Need{Right: auth.Invoke, Target: registry.BaseName(rt.Function)}); !p.Allows(n) {
			errs.WriteHTTP(w, refuse(p, n))
			return true
		}
	}
	if err := s.invokeRef(w, r, rt.Function, rest, rt.Prefix()); err != nil {
		errs.WriteHTTP(w, err)
	}
	return true
}

// corsHeaders applies a route's CORS policy: it answers a preflight
// (and reports true) or adds the headers an allowed origin's request
// gets.
func corsHeaders(w http.ResponseWriter, r *http.Request, c *routes.CORS) (answered bool) {
	origin := r.Header.Get("Origin")
	allowed := origin != "" && (contains(c.Origins, "*") || contains(c.Origins, origin))
	h := w.Header()
	h.Add("Vary", "Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !allowed {
		if preflight {
			w.WriteHeader(http.StatusNoContent) // no CORS headers: the browser refuses
		}
		return preflight
	}
	if contains(c.Origins, "*") && !c.Credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if c.Credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if !preflight {
		if len(c.Expose) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(c.Expose, ", "))
		}
		return false
	}
	methods := c.Methods
	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "POST"}
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	if len(c.Headers) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(c.Headers, ", "))
	}
	if c.MaxAge > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// aliasCollector reports invocations through aliases by version: a
// weighted alias's split as served.
type aliasCollector struct{ sys *system.System }

var descAlias = prometheus.NewDesc("mote_alias_invocations_total", "Invocations through an alias, by the version they ran.", []string{"function", "alias", "version"}, nil)

func (c aliasCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAlias }

func (c aliasCollector) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.sys.AliasCounts("") {
		ch <- prometheus.MustNewConstMetric(descAlias, prometheus.CounterValue, float64(a.Invocations), a.Function, a.Alias, strconv.Itoa(a.Version))
	}
}
