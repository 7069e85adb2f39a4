package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/store"
)

// Access control. Every request is authenticated once, in ServeHTTP (or
// the fast path), to a Principal; every route then states the Need it has
// where it is registered (New's route table, through handle), and guard
// refuses a principal that lacks it. Mutating management routes also name
// their audit action there.
//
// Without an admin token and without keys (a server on loopback for the
// person at the machine), a request needs no credential and acts as
// "local" with every right. Once a token or any key exists, a request
// without a valid one is 401, and one whose key lacks the route's scope
// is 403.

// open reports whether requests need no credential: no admin token and
// no keys.
func (s *Server) open() bool { return s.token == nil && s.keys.Len() == 0 }

// authenticate returns who r acts as.
func (s *Server) authenticate(r *http.Request) (auth.Principal, error) {
	if s.open() {
		if err := localOnly(r); err != nil {
			return auth.Principal{}, err
		}
		return auth.Local(), nil
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return auth.Principal{}, errs.Wrap(errs.Unauthorized, auth.ErrNoCredential, "missing bearer token (an API key or the admin token)")
	}
	return s.credential([]byte(strings.TrimSpace(tok)))
}

// crossOrigin refuses the unsafe requests a browser sends on behalf of
// another site (Sec-Fetch-Site, else Origin against Host).
var crossOrigin = http.NewCrossOriginProtection()

// localOnly checks that a request to a server without credentials comes
// from the person at the machine, not from a web page their browser
// opened: it must be addressed to a loopback name (a page that rebinds
// its own DNS name to 127.0.0.1 sends that name as Host) and must not be
// a cross-site request (a page may POST a form to 127.0.0.1 without a
// preflight, a deploy included).
func localOnly(r *http.Request) error {
	if !loopbackHost(r.Host) {
		return errs.E(errs.Forbidden, "without --token-file or keys, Mote answers only requests addressed to localhost, not %q (a web page could reach it otherwise)", r.Host)
	}
	if err := crossOrigin.Check(r); err != nil {
		return errs.E(errs.Forbidden, "cross-origin request refused: without --token-file or keys, only the person at the machine may use Mote")
	}
	return nil
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost or a loopback address, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// credential checks a bearer token: the admin token, or an API key.
func (s *Server) credential(tok []byte) (auth.Principal, error) {
	if s.token != nil && subtle.ConstantTimeCompare(tok, s.token) == 1 {
		return auth.AdminToken(), nil
	}
	k, err := s.keys.Check(tok)
	switch {
	case errors.Is(err, auth.ErrExpiredKey):
		return auth.Principal{}, errs.Wrap(errs.Unauthorized, err, "the API key has expired")
	case err != nil:
		return auth.Principal{}, errs.Wrap(errs.Unauthorized, err, "invalid bearer token")
	}
	return auth.KeyPrincipal(k), nil
}

// fastInvokeAllowed reports whether a request with the Authorization
// header value authz (nil when absent) may invoke fn: the fast path's
// check, which must agree with authenticate and guard. It allocates
// nothing.
func (s *Server) fastInvokeAllowed(authz, host []byte, fn string) bool {
	if s.open() {
		return loopbackHost(string(host)) // as localOnly; Origin never gets here
	}
	tok, found := bytes.CutPrefix(authz, []byte("Bearer "))
	if !found {
		return false
	}
	p, err := s.credential(bytes.TrimSpace(tok))
	return err == nil && p.Allows(auth.Need{Right: auth.Invoke, Target: fn})
}

// refuse is the error for a principal that lacks n.
func refuse(p auth.Principal, n auth.Need) error {
	if k := p.Key(); k != nil {
		return errs.E(errs.Forbidden, "API key %s lacks the scope %s", k.ID, n)
	}
	return errs.E(errs.Forbidden, "this request needs the scope %s", n)
}

// needs returns, for a request, what it needs.
type needs func(r *http.Request) auth.Need

// fixed needs right, whatever the request.
func fixed(right auth.Right) needs {
	n := auth.Need{Right: right}
	return func(*http.Request) auth.Need { return n }
}

// invokeNeed needs invoke on the route's {name}.
func invokeNeed(r *http.Request) auth.Need {
	return auth.Need{Right: auth.Invoke, Target: registry.BaseName(r.PathValue("name"))}
}

// bucketNeed needs read on the route's {bucket} for GET and HEAD, write
// for every other method.
func bucketNeed(r *http.Request) auth.Need {
	right := auth.Write
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		right = auth.Read
	}
	return auth.Need{Right: right, Target: r.PathValue("bucket")}
}

// audited names a route's audit action and the path wildcard that holds
// its target; the zero value is a route not audited.
type audited struct{ action, target string }

// handle registers h at pattern behind guard.
func (s *Server) handle(pattern string, need needs, a audited, h http.Handler) {
	s.paths = append(s.paths, pattern)
	s.mux.Handle(pattern, s.guard(need, a, h))
}

// guard serves r with h if its principal has what need says it needs,
// and records an audited action with its outcome.
func (s *Server) guard(need needs, a audited, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		n := need(r)
		if !p.Allows(n) {
			err := refuse(p, n)
			if a.action != "" {
				s.record(r, a.action, r.PathValue(a.target), errs.CodeOf(err).HTTPStatus())
			}
			errs.WriteHTTP(w, err)
			return
		}
		if a.action == "" {
			h.ServeHTTP(w, r)
			return
		}
		aw := &auditWriter{ResponseWriter: w, target: r.PathValue(a.target)}
		h.ServeHTTP(aw, r)
		if aw.status == 0 {
			aw.status = http.StatusOK
		}
		s.record(r, a.action, aw.target, aw.status)
	})
}

// record writes an audit entry for an action r's principal took on
// target, answered with status. Routes registered with an audited action
// record through guard; a handler that audits on its own calls this.
func (s *Server) record(r *http.Request, action, target string, status int) {
	s.audit.Record(auth.NewEntry(auth.FromContext(r.Context()), action, target, status, r.RemoteAddr))
}

// auditWriter notes the status a handler answered and lets it name the
// target when the route's path does not (a created key's id).
type auditWriter struct {
	http.ResponseWriter
	status int
	target string
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auditTarget names the target of the action being audited, when the
// route's path does not.
func auditTarget(w http.ResponseWriter, target string) {
	if aw, ok := w.(*auditWriter); ok {
		aw.target = target
	}
}

// keyRequest is POST /v1/keys's body.
type keyRequest struct {
	Name    string   `json:"name"`
	Scopes  []string `json:"scopes"`
	Expires string   `json:"expires"` // a Go duration from now ("720h"); empty: never
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r, 1<<16)
	if err != nil {
		return err
	}
	var req keyRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errs.E(errs.BadRequest, "key: %v", err)
	}
	var ttl time.Duration
	if req.Expires != "" {
		if ttl, err = time.ParseDuration(req.Expires); err != nil || ttl <= 0 || ttl > store.MaxTTL {
			return errs.E(errs.BadRequest, "key: expires must be a positive duration such as 720h, at most %v, not %q", store.MaxTTL, req.Expires)
		}
	}
	if s.open() && !hasAdmin(req.Scopes) {
		// Once a key exists, every request needs a credential: on a
		// server without an admin token, a first key without admin
		// would lock its owner out of the management API.
		return errs.E(errs.BadRequest, "the first key on a server without --token-file must have the admin scope: once a key exists, every request needs one")
	}
	k, tok, err := s.keys.Create(req.Name, req.Scopes, ttl)
	if err != nil {
		return err
	}
	auditTarget(w, k.ID)
	return writeJSON(w, http.StatusCreated, map[string]any{"key": k, "token": tok})
}

func hasAdmin(scopes []string) bool {
	for _, s := range scopes {
		if s == "admin" {
			return true
		}
	}
	return false
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"keys": s.keys.List()})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.keys.Revoke(r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listAudit serves GET /v1/audit?since=&limit=: since is an RFC 3339
// time (entries after it) or a duration back from now ("24h").
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			since = time.Now().Add(-d)
		} else if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return errs.E(errs.BadRequest, "since must be an RFC 3339 time or a duration such as 24h, not %q", v)
		}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errs.E(errs.BadRequest, "limit must be a non-negative number, not %q", v)
		}
		limit = n
	}
	es, err := s.audit.List(since, limit)
	if err != nil {
		return err
	}
	if es == nil {
		es = []auth.Entry{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"entries": es})
}
