// Package api is Mote's HTTP gateway: the /v1/ management API, invocation
// routes (/fn/{name} and the AWS Lambda Invoke route), metrics and health.
//
// Handlers return errors; one function (errs.WriteHTTP) turns an error into
// a status and a JSON body {"error", "code"}, so codes are stable and no
// internal detail reaches callers. docs/api.md documents every route.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/baas"
	"github.com/mote-run/mote/internal/cluster"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// Config configures the gateway.
type Config struct {
	System *system.System
	Logger *slog.Logger
	// Token, if set, is the admin bearer token: the bootstrap credential,
	// with every right. API keys (System.Keys) carry scoped rights.
	Token string
	// Cluster is the node this server is, if it is one (cluster.go).
	Cluster *cluster.Node
}

// Server is the HTTP gateway.
type Server struct {
	sys     *system.System
	log     *slog.Logger
	token   []byte
	keys    *auth.Keys
	audit   *auth.Audit
	mux     *http.ServeMux
	metrics *prometheus.Registry
	cluster *cluster.Node
	paths   []string // the route table's patterns, which routes.Reserved must cover
}

// New returns the gateway's handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		sys: cfg.System, log: cfg.Logger, mux: http.NewServeMux(), metrics: registerStateCollectors(cfg.System),
		keys: cfg.System.Keys(), audit: cfg.System.Audit(), cluster: cfg.Cluster,
	}
	if cfg.Token != "" {
		s.token = []byte(cfg.Token)
	}
	h := func(fn handler.Func) http.Handler { return fn }
	// The route table: each route with the scope it needs and, for a
	// management action, what the audit log calls it.
	none := audited{}
	public, admin, deploy, metrics := fixed(auth.Public), fixed(auth.Admin), fixed(auth.Deploy), fixed(auth.Metrics)
	s.handle("GET /healthz", public, none, h(func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.WriteString(w, "ok\n")
		return err
	}))
	s.handle("GET /metrics", metrics, none, promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	s.handle("GET /v1/functions", deploy, none, h(s.listFunctions))
	s.handle("PUT /v1/functions/{name}", deploy, audited{"function.deploy", "name"}, h(s.deploy))
	s.handle("POST /v1/functions/{name}", deploy, audited{"function.deploy", "name"}, h(s.deploy))
	s.handle("GET /v1/functions/{name}", deploy, none, h(s.getFunction))
	s.handle("DELETE /v1/functions/{name}", deploy, audited{"function.delete", "name"}, h(s.removeFunction))
	s.handle("POST /v1/functions/{name}/rollback", deploy, audited{"function.rollback", "name"}, h(s.rollback))
	s.handle("GET /v1/functions/{name}/logs", deploy, none, h(s.logs))
	s.handle("GET /v1/logs", deploy, none, h(s.logs))
	s.secretRoutes(h)
	s.triggerRoutes(h)
	s.clusterRoutes(h)
	s.httpRoutes(h) // routes.go
	s.handle("/fn/{name}", invokeNeed, none, h(s.invoke))
	s.handle("/fn/{name}/{path...}", invokeNeed, none, h(s.invoke))
	s.handle(lambdaInvokePattern, invokeNeed, none, h(s.lambdaInvoke))
	s.handle("GET /v1/keys", admin, none, h(s.listKeys))
	s.handle("POST /v1/keys", admin, audited{"key.create", ""}, h(s.createKey))
	s.handle("DELETE /v1/keys/{id}", admin, audited{"key.revoke", "id"}, h(s.revokeKey))
	s.handle("GET /v1/audit", admin, none, h(s.listAudit))
	// Call trees, dead letters and usage come from the flow engine;
	// storage and coordination from the BaaS layer.
	fl := cfg.System.Flow().Handler()
	for _, pattern := range []string{"GET /v1/invocations/{id}", "GET /v1/dlq", "GET /v1/usage"} {
		s.handle(pattern, deploy, none, fl)
	}
	s.handle("POST /v1/dlq/{id}/redrive", deploy, audited{"dlq.redrive", "id"}, fl)
	bs := cfg.System.BaaS().Handler()
	for _, prefix := range baas.HTTPPrefixes {
		switch prefix {
		case "/v1/scopes/":
			s.handle(prefix, admin, none, bs)
		case "/v1/baas/":
			s.handle(prefix, metrics, none, bs)
		default: // a bucket's routes
			s.handle(prefix+"{bucket}", bucketNeed, none, bs)
			s.handle(prefix+"{bucket}/{rest...}", bucketNeed, none, bs)
			s.handle(prefix, admin, none, bs) // no bucket: BaaS answers 404
		}
	}
	s.uiRoutes()
	s.handle("/", public, none, h(handler.NotFound))
	return s
}

// ServeHTTP authenticates and routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveRoute(w, r) { // routes.go: a route to a function
		return
	}
	p, err := s.authenticate(r)
	if err != nil && !credentialOptional(r, err) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mote"`)
		errs.WriteHTTP(w, err)
		return
	}
	// Invocations, the hot path, skip the mux's matching (and the
	// allocations of its path values and the request's context) when
	// their path is plain.
	if name, ok := fnName(r); ok {
		if n := (auth.Need{Right: auth.Invoke, Target: registry.BaseName(name)}); !p.Allows(n) {
			errs.WriteHTTP(w, refuse(p, n))
			return
		}
		if err := s.invokeFn(w, r, name); err != nil {
			errs.WriteHTTP(w, err)
		}
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), p)))
}

// writeJSON is the one JSON writer, handler.WriteJSON.
var writeJSON = handler.WriteJSON

// readBody reads a request body of at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errs.E(errs.PayloadTooLarge, "request body of %d bytes is over the %d-byte limit", r.ContentLength, max)
	}
	if n := r.ContentLength; n >= 0 {
		// The usual case: the length is known, read exactly that much
		// (bytes.Buffer would grow past it to keep 512 bytes spare).
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, errs.Wrap(errs.BadRequest, err, "reading request body: "+err.Error())
		}
		return b, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, 512))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errs.E(errs.PayloadTooLarge, "request body is over the %d-byte limit", max)
	}
	if err != nil {
		return nil, errs.Wrap(errs.BadRequest, err, "reading request body: "+err.Error())
	}
	return buf.Bytes(), nil
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request) error {
	fs, err := s.sys.List()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"functions": fs})
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request) error {
	f, err := s.sys.Describe(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, f)
}

// deploy takes multipart/form-data with a "config" part (JSON) and an
// "artifact" part (the wasm module, or a tar.gz of a process function's
// directory); or a raw application/wasm body with config in ?config=.
func (s *Server) deploy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := registry.ValidName(name); err != nil {
		return err
	}
	max := s.sys.Config().MaxArtifact
	r.Body = http.MaxBytesReader(w, r.Body, max+1<<20)
	var cfg registry.Config
	parseCfg := func(b []byte) error {
		if len(bytes.TrimSpace(b)) == 0 {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			var e *errs.Error
			if errors.As(err, &e) {
				return e
			}
			return errs.E(errs.BadRequest, "config: %v", err)
		}
		return nil
	}
	var artifact io.Reader
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "multipart/form-data") {
		mr, err := r.MultipartReader()
		if err != nil {
			return errs.E(errs.BadRequest, "deploy: %v", err)
		}
		for artifact == nil {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return errs.E(errs.BadRequest, "deploy: %v", err)
			}
			switch part.FormName() {
			case "config":
				b, err := io.ReadAll(io.LimitReader(part, 1<<20))
				if err != nil {
					return errs.E(errs.BadRequest, "deploy: reading config: %v", err)
				}
				if err := parseCfg(b); err != nil {
					return err
				}
			case "artifact":
				artifact = part // must be the last part: read in place, streamed
			}
		}
	} else {
		if err := parseCfg([]byte(r.URL.Query().Get("config"))); err != nil {
			return err
		}
		artifact = r.Body
	}
	if artifact == nil {
		return errs.E(errs.BadRequest, "deploy: no artifact part in the request")
	}
	if err := s.checkSecretGrants(r, name, cfg.Secrets); err != nil {
		return err
	}
	v, err := s.sys.Deploy(r.Context(), name, cfg, artifact)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errs.E(errs.PayloadTooLarge, "artifact is over the %d-byte limit", max)
	}
	return writeChange(w, http.StatusCreated, v, err)
}

func (s *Server) removeFunction(w http.ResponseWriter, r *http.Request) error {
	return writeChange(w, http.StatusNoContent, nil, s.sys.Remove(r.Context(), r.PathValue("name")))
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Version int `json:"version"`
	}
	b, err := readBody(w, r, 1<<16)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			return errs.E(errs.BadRequest, "rollback: %v", err)
		}
	}
	name := r.PathValue("name")
	if f, err := s.sys.Describe(name); err == nil {
		target := body.Version
		if target == 0 {
			target = f.Function.Current - 1
		}
		for _, v := range f.Versions {
			if v.Number == target {
				if err := s.checkSecretGrants(r, name, v.Config.Secrets); err != nil {
					return err
				}
			}
		}
	}
	v, err := s.sys.Rollback(r.Context(), name, body.Version)
	return writeChange(w, http.StatusOK, v, err)
}

// logs returns a function's lines (every function's on /v1/logs) as
// NDJSON, the latest n (default 100) that match since, until (RFC 3339
// times, or durations back from now: 1h), invocation and grep; with
// ?follow=1 it keeps the response open and streams new matching lines
// until the client leaves.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if name != "" {
		if _, err := s.sys.Registry().Function(name); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	lq := logs.Query{Function: name, Invocation: q.Get("invocation"), Grep: q.Get("grep")}
	lq.N, _ = strconv.Atoi(q.Get("n"))
	var err error
	if lq.Since, err = timeParam(q.Get("since")); err != nil {
		return err
	}
	if lq.Until, err = timeParam(q.Get("until")); err != nil {
		return err
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	var ch <-chan logs.Line
	if follow {
		var stop func()
		ch, stop = s.sys.Logs.Follow(name)
		defer stop()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	var last time.Time
	if lq.N >= 0 {
		lines, err := s.sys.Logs.Tail(lq)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return nil
			}
			last = l.Time
		}
	}
	if !follow {
		return nil
	}
	// Lines that came in while the tail was read are both in it and on
	// the channel: those not after the tail's last are skipped.
	lq.Since, lq.Until = last.Add(time.Nanosecond), time.Time{}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case l := <-ch:
			if !lq.Match(&l) {
				continue
			}
			if err := enc.Encode(l); err != nil {
				return nil
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, "\n"); err != nil {
				return nil
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// timeParam reads a time: RFC 3339, or a duration back from now ("1h").
func timeParam(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, errs.E(errs.BadRequest, "%q is neither an RFC 3339 time nor a duration such as 1h", v)
	}
	return time.Now().Add(-d), nil
}
