package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
)

// Runtime API paths (AWS Lambda's, version 2018-06-01) and Mote's host-call
// endpoint beside them.
const (
	apiPrefix     = "/2018-06-01/"
	pathNext      = "/2018-06-01/runtime/invocation/next"
	pathInvPrefix = "/2018-06-01/runtime/invocation/"
	pathInitError = "/2018-06-01/runtime/init/error"
	pathCall      = "/2018-06-01/mote/call/"
)

// Runtime API headers. They are in canonical form, so they can be set on
// the header map directly.
const (
	hdrRequestID = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadline  = "Lambda-Runtime-Deadline-Ms"
	hdrARN       = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTrace     = "Lambda-Runtime-Trace-Id"
	// hdrDepth is Mote's: the invocation's depth in its call tree.
	hdrDepth = "Mote-Depth"
)

// serveNext waits until there is an event, then hands it over with the
// Lambda headers. It returns false, having written nothing, when the
// function dropped the connection while it waited: the event goes to the
// function's next request instead.
func (in *instance) serveNext(w http.ResponseWriter, conn *spinConn) bool {
	in.readyOnce.Do(func() { close(in.ready) })
	var c *call
	select {
	case c = <-in.next:
	case <-in.quit:
		apiError(w, http.StatusInternalServerError, "InstanceClosed", "instance is shutting down")
		return true
	}
	if connGone(conn) {
		select {
		case in.next <- c:
		case <-c.done:
		case <-in.quit:
		}
		return false
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h[hdrRequestID] = []string{c.id}
	h[hdrDeadline] = []string{strconv.FormatInt(c.deadline.UnixMilli(), 10)}
	h[hdrARN] = []string{in.m.arn()}
	h[hdrTrace] = []string{traceID(c)}
	if c.ev.Depth > 0 {
		h[hdrDepth] = []string{strconv.Itoa(c.ev.Depth)}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.ev.Payload)
	return true
}

// traceID is an X-Ray style trace header naming the invocation's call tree.
func traceID(c *call) string {
	root := c.ev.Root
	if root == "" {
		root = c.id
	}
	s := "Root=" + root
	if c.ev.Parent != "" {
		s += ";Parent=" + c.ev.Parent
	}
	return s + ";Sampled=0"
}

// serveResult takes the response or the error of invocation id.
func (in *instance) serveResult(w http.ResponseWriter, r *rtRequest, id string, isError bool) {
	c := in.cur.Load()
	if c == nil || c.id != id {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation "+id+" is running")
		return
	}
	switch {
	case r.tooLarge:
		c.finish(nil, errs.E(errs.FunctionError, "process: response larger than %d bytes", in.m.rt.cfg.MaxResponse))
		apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "response too large")
		return
	case r.bodyErr != nil:
		c.finish(nil, errs.Wrap(errs.FunctionError, r.bodyErr, "process: reading the function's response failed"))
		apiError(w, http.StatusBadRequest, "InvalidRequest", "cannot read body")
		return
	}
	// The connection reuses its body buffer; the output outlives it.
	body := bytes.Clone(r.body)
	var ferr error
	if isError {
		ferr = errs.E(errs.FunctionError, "%s", lambdaErrorText(body))
		if len(body) == 0 {
			body = nil
		}
	}
	if !c.finish(body, ferr) {
		apiError(w, http.StatusForbidden, "InvalidStateTransition", "invocation "+id+" has already ended")
		return
	}
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// serveInitError records a function's report that it could not start.
func (in *instance) serveInitError(w http.ResponseWriter, r *rtRequest) {
	if r.method != http.MethodPost {
		apiError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use POST")
		return
	}
	body := bytes.Clone(r.body[:min(len(r.body), 64<<10)])
	select {
	case <-in.ready:
		apiError(w, http.StatusForbidden, "InvalidStateTransition", "init has already completed")
		return
	default:
	}
	select {
	case in.initErr <- body:
	default:
	}
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

// serveCall forwards a host call of the running invocation to its Host.
func (in *instance) serveCall(w http.ResponseWriter, r *rtRequest, op string) {
	if r.method != http.MethodPost {
		errs.WriteHTTP(w, errs.E(errs.BadRequest, "host call: use POST"))
		return
	}
	c := in.cur.Load()
	id := r.requestID
	if c == nil || c.id != id {
		errs.WriteHTTP(w, errs.E(errs.Conflict, "host call: no invocation %q is running", id))
		return
	}
	if r.tooLarge || r.bodyErr != nil {
		errs.WriteHTTP(w, errs.E(errs.PayloadTooLarge, "host call: arguments too large"))
		return
	}
	args, err := host.ParseArgs(r.body)
	if err != nil {
		errs.WriteHTTP(w, err)
		return
	}
	out, err := c.ev.Host.Call(c.ctx, op, args)
	if err != nil {
		errs.WriteHTTP(w, err)
		return
	}
	w.Header()["Content-Type"] = []string{"application/octet-stream"}
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(out))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// lambdaError is the JSON shape of Runtime API errors, both ways.
type lambdaError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

// apiError writes a Runtime API error response.
func apiError(w http.ResponseWriter, status int, typ, msg string) {
	b, _ := json.Marshal(lambdaError{ErrorMessage: msg, ErrorType: typ})
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// lambdaErrorText renders a function's error body ("Type: message"), or a
// short, printable prefix of it when it is not the documented JSON.
func lambdaErrorText(body []byte) string {
	var le lambdaError
	if json.Unmarshal(body, &le) == nil && (le.ErrorMessage != "" || le.ErrorType != "") {
		switch {
		case le.ErrorType == "":
			return le.ErrorMessage
		case le.ErrorMessage == "":
			return le.ErrorType
		}
		return le.ErrorType + ": " + le.ErrorMessage
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	if s == "" {
		return "function error"
	}
	return s
}

var errTooLarge = errors.New("process: body too large")
