package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/httpfn"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/telemetry"
)

// HTTP functions. A function deployed with "http": true (or "wagi") sees
// the whole request, through a route or through /fn/NAME/…: the request
// becomes its event (httpfn.BuildEvent, or CGI variables and the body for
// WAGI) and its output becomes the response, checked first
// (httpfn.ParseResponse, ParseCGI), so a malformed one is a 502
// function_error, never a broken response. A plain function reached the
// same way gets the body as its event and its output as the body, as on
// /fn.

// invokeRef serves r with the function ref (name, name@N or name:alias),
// which sees path (after prefix) as its request's path.
func (s *Server) invokeRef(w http.ResponseWriter, r *http.Request, ref, path, prefix string) error {
	t, err := s.sys.Resolve(r.Context(), ref)
	if err != nil {
		return err
	}
	if t.HTTP == registry.HTTPOff {
		return s.invokePlain(w, r, t.Key)
	}
	body, err := readBody(w, r, s.sys.Config().MaxPayload)
	if err != nil {
		return err
	}
	req := httpfn.Request{Request: r, Path: path, Prefix: prefix, Body: body, Now: time.Now()}
	var payload []byte
	switch t.HTTP {
	case registry.HTTPWAGI:
		payload = runtime.EncodeCGI(httpfn.CGIEnv(req), body)
	default:
		if payload, err = httpfn.BuildEvent(req); err != nil {
			return errs.Wrap(errs.Internal, err, "building the function's event")
		}
	}
	out, err := s.invokeCounted(r.Context(), system.Invocation{Function: t.Key, Payload: payload, Envelope: true})
	if err != nil {
		return err
	}
	setOutcomeHeaders(w.Header(), out)
	if out.Err != nil {
		return out.Err
	}
	var resp *httpfn.Response
	if t.HTTP == registry.HTTPWAGI {
		resp, err = httpfn.ParseCGI(out.Output)
	} else {
		resp, err = httpfn.ParseResponse(out.Output)
	}
	if err != nil {
		return err
	}
	return resp.Write(w)
}

// invokePlain is invokeFn's plain invocation, for a resolved key.
func (s *Server) invokePlain(w http.ResponseWriter, r *http.Request, key string) error {
	payload, err := readBody(w, r, s.sys.Config().MaxPayload)
	if err != nil {
		return err
	}
	async := r.Header.Get(HeaderAsync) == "true"
	out, err := s.invokeCounted(telemetry.Extract(r.Context(), r.Header), system.Invocation{Function: key, Payload: payload, Async: async})
	if err != nil {
		return err
	}
	if out.Queued {
		w.Header()[HeaderInvocationID] = []string{out.ID}
		return writeJSON(w, http.StatusAccepted, map[string]string{"id": out.ID, "status": "queued"})
	}
	setOutcomeHeaders(w.Header(), out)
	if out.Err != nil {
		return out.Err
	}
	_, err = w.Write(out.Output)
	return err
}

// special reports whether an /fn/ invocation of name is not a plain one
// of a current version: a pinned version, an alias or an HTTP function.
func (s *Server) special(name string) bool {
	return strings.ContainsAny(name, "@:") || s.sys.HTTPMode(name) != registry.HTTPOff
}

// fnPath splits an /fn/ request's escaped path into the part the function
// sees (starting with "/") and the prefix before it (/fn/NAME).
func fnPath(r *http.Request, name string) (path, prefix string) {
	p := r.URL.EscapedPath()
	prefix = "/fn/" + name
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok {
		// The name was escaped in the request (%40 for @): find its end.
		if _, after, found := strings.Cut(strings.TrimPrefix(p, "/fn/"), "/"); found {
			return "/" + after, prefix
		}
		return "/", prefix
	}
	if rest == "" {
		rest = "/"
	}
	return rest, prefix
}
