package mote

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// HandleHTTP registers a standard net/http handler as the function's
// handler, for a function deployed as an HTTP function ("http": true in
// mote.json). Existing handlers and routers run unchanged: the handler
// sees the request's method, the path after its route, query, headers
// (cookies included), body and client address (RemoteAddr), and what it
// writes (status, headers, several Set-Cookie, body) is the response.
//
// The request and response travel as the AWS Lambda payload format 2.0
// event and response, so a function built with HandleHTTP also serves a
// Lambda function URL. The response is buffered: Flush (http.Flusher) is
// accepted and does nothing yet, so the client gets the body when the
// handler returns. The invocation's Context is FromRequest(r).
//
// Call it from init, as Handle.
func HandleHTTP(h http.Handler) {
	Handle(func(ctx *Context, event []byte) ([]byte, error) {
		return ServeEvent(ctx, h, event)
	})
}

// ctxKey marks a request's context with the invocation's Context.
type ctxKey struct{}

// FromRequest returns the invocation a request served by HandleHTTP
// belongs to, or nil.
func FromRequest(r *http.Request) *Context {
	c, _ := r.Context().Value(ctxKey{}).(*Context)
	return c
}

// v2Event is the part of the payload format 2.0 event a handler needs.
type v2Event struct {
	RawPath        string            `json:"rawPath"`
	RawQueryString string            `json:"rawQueryString"`
	Cookies        []string          `json:"cookies"`
	Headers        map[string]string `json:"headers"`
	RequestContext struct {
		DomainName string `json:"domainName"`
		HTTP       struct {
			Method   string `json:"method"`
			Path     string `json:"path"`
			Protocol string `json:"protocol"`
			SourceIP string `json:"sourceIp"`
		} `json:"http"`
	} `json:"requestContext"`
	Body            string `json:"body"`
	IsBase64Encoded bool   `json:"isBase64Encoded"`
}

type v2Response struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers,omitempty"`
	Cookies         []string          `json:"cookies,omitempty"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

// ServeEvent runs h on a payload format 2.0 event and returns the
// payload format 2.0 response: HandleHTTP's handler, for a function that
// also serves other events (it can tell them apart by their "version":
// "2.0" and "rawPath").
func ServeEvent(ctx *Context, h http.Handler, event []byte) ([]byte, error) {
	ev, err := parseEvent(event)
	if err != nil {
		return nil, &Error{Code: "bad_request", Message: "not an HTTP event: " + err.Error()}
	}
	r, err := ev.request()
	if err != nil {
		return nil, &Error{Code: "bad_request", Message: err.Error()}
	}
	if ctx != nil {
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ctx))
	}
	w := &responseBuffer{header: http.Header{}, ctx: ctx}
	h.ServeHTTP(w, r)
	if w.stream != nil {
		w.Flush()
		if err := w.stream.Close(); err != nil {
			return nil, &Error{Code: "function_error", Message: "streaming the response: " + err.Error()}
		}
		return nil, nil // the response went out as it was written
	}
	return w.encode()
}

func (ev *v2Event) request() (*http.Request, error) {
	method := ev.RequestContext.HTTP.Method
	if method == "" {
		method = http.MethodGet
	}
	path := ev.RawPath
	if path == "" {
		path = "/"
	}
	target := path
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, err
	}
	var body []byte
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, err
		}
	} else {
		body = []byte(ev.Body)
	}
	r := &http.Request{
		Method:        method,
		URL:           u,
		RequestURI:    target,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, len(ev.Headers)+1),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          ev.RequestContext.DomainName,
		RemoteAddr:    ev.RequestContext.HTTP.SourceIP,
	}
	if p := ev.RequestContext.HTTP.Protocol; strings.HasPrefix(p, "HTTP/") {
		if major, minor, ok := http.ParseHTTPVersion(p); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = p, major, minor
		}
	}
	for k, v := range ev.Headers {
		if strings.EqualFold(k, "set-cookie") {
			r.Header.Add(k, v)
			continue
		}
		r.Header.Set(k, v)
	}
	if h := r.Header.Get("Host"); h != "" {
		r.Host = h
	}
	if len(ev.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	return r.WithContext(context.Background()), nil
}

// responseBuffer is the http.ResponseWriter HandleHTTP's handlers write to.
type responseBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer

	ctx    *Context
	tried  bool           // Flush tried to start a stream
	stream io.WriteCloser // the streamed response, once started
}

func (w *responseBuffer) Header() http.Header { return w.header }

func (w *responseBuffer) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
}

func (w *responseBuffer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// Flush implements http.Flusher. In a native process function on Mote the
// first Flush starts streaming the response (status and headers as they
// are then, and the body so far) and each later one sends what was
// written since, so server-sent events reach the client as they are
// written; elsewhere (a wasm reactor) the response goes out whole when
// the handler returns.
func (w *responseBuffer) Flush() {
	if w.stream == nil {
		if w.tried {
			return
		}
		w.tried = true
		if w.status == 0 {
			w.status = http.StatusOK
		}
		w.stream = startStream(w.ctx, w.prelude())
		if w.stream == nil {
			return
		}
	}
	if w.body.Len() > 0 {
		w.stream.Write(w.body.Bytes())
		w.body.Reset()
	}
}

// prelude is a streamed response's start: the status, headers and
// cookies as JSON, then eight NUL bytes.
func (w *responseBuffer) prelude() []byte {
	out := append([]byte(`{"statusCode":`), strconv.Itoa(w.status)...)
	out = append(out, `,"headers":{`...)
	first := true
	for k, vs := range w.header {
		if k == "Set-Cookie" {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendString(out, k)
		out = append(out, ':')
		out = appendString(out, strings.Join(vs, ", "))
	}
	out = append(out, `},"cookies":[`...)
	for i, c := range w.header["Set-Cookie"] {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, c)
	}
	out = append(out, ']', '}')
	return append(out, 0, 0, 0, 0, 0, 0, 0, 0)
}

func (w *responseBuffer) encode() ([]byte, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	body := w.body.Bytes()
	out := make([]byte, 0, 128+len(body)*4/3)
	out = append(out, `{"statusCode":`...)
	out = strconv.AppendInt(out, int64(w.status), 10)
	out = append(out, `,"headers":{`...)
	first := true
	for k, vs := range w.header {
		if k == "Set-Cookie" {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendString(out, k)
		out = append(out, ':')
		out = appendString(out, strings.Join(vs, ", "))
	}
	if _, ok := w.header["Content-Type"]; !ok && len(body) > 0 {
		if !first {
			out = append(out, ',')
		}
		out = append(out, `"Content-Type":`...)
		out = appendString(out, http.DetectContentType(body))
	}
	out = append(out, '}')
	if cs := w.header["Set-Cookie"]; len(cs) > 0 {
		out = append(out, `,"cookies":[`...)
		for i, c := range cs {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendString(out, c)
		}
		out = append(out, ']')
	}
	out = append(out, `,"body":`...)
	if utf8.Valid(body) {
		out = appendString(out, string(body))
		out = append(out, `,"isBase64Encoded":false}`...)
	} else {
		out = append(out, '"')
		out = base64.StdEncoding.AppendEncode(out, body)
		out = append(out, `","isBase64Encoded":true}`...)
	}
	return out, nil
}
