package api

import (
	"bytes"
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
	ctx := r.Context()
	var sink *streamSink
	if t.HTTP == registry.HTTPv2 {
		sink = &streamSink{w: w}
		ctx = runtime.WithStream(ctx, sink)
	}
	out, err := s.invokeCounted(ctx, system.Invocation{Function: t.Key, Payload: payload, Envelope: true})
	if sink != nil && sink.started {
		// The response went out as the function wrote it. A failure
		// after that can only cut it short, which the client sees.
		if err != nil || out.Err != nil {
			panic(http.ErrAbortHandler)
		}
		return nil
	}
	if err != nil {
		return err
	}
	setOutcomeHeaders(w.Header(), out)
	if out.Err != nil {
		return out.Err
	}
	if sink != nil && sink.err != nil {
		return sink.err
	}
	if sink != nil && len(sink.prelude) > 0 {
		out.Output = sink.prelude // streamed, but never past a prelude
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

// streamSink writes a function's streamed response (Lambda response
// streaming: a JSON prelude, eight NUL bytes, the body) to the client as
// it arrives: the prelude is checked as a whole response would be, then
// the header is written and each part of the body is flushed.
type streamSink struct {
	w       http.ResponseWriter
	prelude []byte // until the prelude's end is seen
	started bool   // the header is written
	err     error  // a bad prelude, or the client gone
}

var _ runtime.Stream = (*streamSink)(nil)

// maxPrelude bounds a streamed response's prelude.
const maxPrelude = 64 << 10

func (s *streamSink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.started {
		if _, err := s.w.Write(p); err != nil {
			s.err = err
			return 0, err
		}
		return len(p), nil
	}
	s.prelude = append(s.prelude, p...)
	i := bytes.Index(s.prelude, httpfn.PreludeEnd)
	if i < 0 {
		if len(s.prelude) > maxPrelude {
			s.err = errs.E(errs.FunctionError, "invalid HTTP response from the function: a streamed response's prelude is over %d bytes", maxPrelude)
			return 0, s.err
		}
		return len(p), nil
	}
	resp, err := httpfn.ParsePrelude(s.prelude[:i])
	if err != nil {
		s.err = err
		return 0, err
	}
	resp.Body = s.prelude[i+len(httpfn.PreludeEnd):]
	s.started, s.prelude = true, nil
	if err := resp.Write(s.w); err != nil {
		s.err = err
		return 0, err
	}
	return len(p), nil
}

func (s *streamSink) Flush() error {
	if !s.started {
		return nil
	}
	return http.NewResponseController(s.w).Flush()
}
