package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/telemetry"
)

// Response headers every invocation carries.
const (
	HeaderInvocationID = "X-Mote-Invocation-Id"
	HeaderCold         = "X-Mote-Cold"
	HeaderCPU          = "X-Mote-Cpu-Us"
	HeaderBilled       = "X-Mote-Billed-Ms"
	HeaderVersion      = "X-Mote-Version"
	// HeaderAsync: true on a request queues the invocation durably and
	// answers 202 with its id at once.
	HeaderAsync = "X-Mote-Async"
)

// lambdaInvokePattern is the Lambda Invoke API's route. The fast path's
// fastTarget takes the same paths; its fuzz test checks them against a mux
// with this pattern.
const lambdaInvokePattern = "POST /2015-03-31/functions/{name}/invocations"

// headerLambdaInvocationType is the Lambda Invoke API's invocation type:
// RequestResponse (the default), Event or DryRun. lambdaInvoke and the
// fast path read it by this one name.
const headerLambdaInvocationType = "X-Amz-Invocation-Type"

// setOutcomeHeaders writes the metering headers. The header map is written
// directly with canonical keys, and the four values that vary share one
// allocation: this is the hot path.
func setOutcomeHeaders(h http.Header, out *system.Outcome) {
	vals := make([]string, 5)
	vals[0] = out.ID
	vals[1] = coldValue(out)
	vals[2] = strconv.FormatInt(out.Usage.CPU.Microseconds(), 10)
	vals[3] = strconv.FormatInt(out.BilledMs, 10)
	vals[4] = strconv.Itoa(out.Version)
	h[HeaderInvocationID] = vals[0:1:1]
	h[HeaderCold] = vals[1:2:2]
	h[HeaderCPU] = vals[2:3:3]
	h[HeaderBilled] = vals[3:4:4]
	h[HeaderVersion] = vals[4:5:5]
}

// coldValue is X-Mote-Cold's value: "true" when an instance was started
// for the invocation, "false" when a warm one ran it, "per-call" when the
// function's runtime starts a new instance for every invocation (a WASI
// command; docs/api.md).
func coldValue(out *system.Outcome) string {
	switch {
	case out.PerCall:
		return "per-call"
	case out.Cold:
		return "true"
	}
	return "false"
}

// fnName returns the function name of an invocation route's path
// (/fn/{name} or /fn/{name}/{path...}) when the path is clean and
// unescaped, as ServeMux would match it without a redirect; ok is false
// for every other path, which the mux then routes.
func fnName(r *http.Request) (name string, ok bool) {
	p, found := strings.CutPrefix(r.URL.Path, "/fn/")
	if !found || r.URL.RawPath != "" || strings.Contains(p, "//") || strings.Contains(r.URL.Path, "/.") {
		return "", false
	}
	name, _, _ = strings.Cut(p, "/")
	return name, name != ""
}

// invoke runs a function with the request body as its event and returns
// its output as the response body.
func (s *Server) invoke(w http.ResponseWriter, r *http.Request) error {
	return s.invokeFn(w, r, r.PathValue("name"))
}

// invokeFn is invoke for the function name.
func (s *Server) invokeFn(w http.ResponseWriter, r *http.Request, name string) error {
	if s.special(name) {
		path, prefix := fnPath(r, name)
		return s.invokeRef(w, r, name, path, prefix)
	}
	payload, err := readBody(w, r, s.sys.Config().MaxPayload)
	if err != nil {
		return err
	}
	async := r.Header.Get(HeaderAsync) == "true"
	out, err := s.invokeCounted(telemetry.Extract(r.Context(), r.Header), system.Invocation{Function: name, Payload: payload, Async: async})
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

// lambdaInvoke serves the AWS Lambda Invoke API, so AWS SDKs and the AWS
// CLI invoke Mote functions with only an endpoint override.
func (s *Server) lambdaInvoke(w http.ResponseWriter, r *http.Request) error {
	fail := func(err error) error { return writeLambdaError(w, err) }
	name, err := s.lambdaTarget(r)
	if err != nil {
		return fail(err)
	}
	switch typ := r.Header.Get(headerLambdaInvocationType); typ {
	case "", "RequestResponse":
	case "DryRun":
		if _, err := s.sys.Resolve(r.Context(), name); err != nil {
			return fail(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case "Event":
		payload, err := readBody(w, r, s.sys.Config().MaxPayload)
		if err != nil {
			return fail(err)
		}
		out, err := s.sys.Invoke(telemetry.Extract(r.Context(), r.Header), system.Invocation{Function: name, Payload: payload, Async: true})
		if err != nil {
			return fail(err)
		}
		w.Header().Set("X-Amzn-Requestid", out.ID)
		w.Header()[HeaderInvocationID] = []string{out.ID}
		w.WriteHeader(http.StatusAccepted)
		return nil
	default:
		return fail(errs.E(errs.BadRequest, "unknown X-Amz-Invocation-Type %q", typ))
	}
	payload, err := readBody(w, r, s.sys.Config().MaxPayload)
	if err != nil {
		return fail(err)
	}
	out, err := s.invokeCounted(telemetry.Extract(r.Context(), r.Header), system.Invocation{Function: name, Payload: payload})
	if err != nil {
		return fail(err)
	}
	return writeLambdaOutcome(w, out)
}

// invokeCounted runs an invocation and counts a refusal by its code (an
// invocation that ran is counted where it ends, by the flow engine).
// invokeFn, lambdaInvoke and the fast path all invoke through it, so both
// servers count alike.
func (s *Server) invokeCounted(ctx context.Context, inv system.Invocation) (*system.Outcome, error) {
	out, err := s.sys.Invoke(ctx, inv)
	if err != nil {
		s.sys.Telemetry().Metrics().Rejected(inv.Function, err)
		return nil, err
	}
	return out, nil
}

// lambdaErrorTypes are the error types AWS SDKs expect for Mote's codes;
// any other code is a ServiceException.
var lambdaErrorTypes = map[errs.Code]string{
	errs.NotFound:        "ResourceNotFoundException",
	errs.PayloadTooLarge: "RequestTooLargeException",
	errs.Overloaded:      "TooManyRequestsException",
	errs.LimitExceeded:   "TooManyRequestsException",
	errs.BadRequest:      "InvalidRequestContentException",
	errs.Unauthorized:    "UnrecognizedClientException",
	errs.Forbidden:       "AccessDeniedException",
}

// writeLambdaError answers a platform error as the Lambda Invoke API does:
// AWS SDKs read the error type from this header and body. The gateway's
// fast path writes its errors through it too.
func writeLambdaError(w http.ResponseWriter, err error) error {
	typ := lambdaErrorTypes[errs.CodeOf(err)]
	if typ == "" {
		typ = "ServiceException"
	}
	w.Header().Set("X-Amzn-Errortype", typ)
	w.Header().Set("X-Mote-Error-Code", string(errs.CodeOf(err)))
	return writeJSON(w, errs.CodeOf(err).HTTPStatus(), map[string]string{"Type": "User", "message": errs.MessageOf(err), "code": string(errs.CodeOf(err))})
}

// functionFault reports whether an invocation that failed with code failed
// because of the function (its error, crash, timeout, memory or start),
// which the Lambda Invoke API reports as X-Amz-Function-Error.
func functionFault(code errs.Code) bool {
	switch code {
	case errs.FunctionError, errs.InitError, errs.Timeout, errs.OutOfMemory:
		return true
	}
	return false
}

// writeLambdaOutcome answers a synchronous invocation that ran as the
// Lambda Invoke API does. The gateway's fast path writes a function's
// failure through it too.
func writeLambdaOutcome(w http.ResponseWriter, out *system.Outcome) error {
	setOutcomeHeaders(w.Header(), out)
	w.Header().Set("X-Amz-Executed-Version", strconv.Itoa(out.Version))
	if out.Err != nil && !functionFault(errs.CodeOf(out.Err)) {
		// Refused or cut short by the platform (a full pool, a flow's
		// limit, shutdown): Lambda answers these as errors of the API
		// (429 TooManyRequestsException, …), not as the function's.
		return writeLambdaError(w, out.Err)
	}
	if out.Err != nil {
		// Lambda answers a function's failure with 200 and this header.
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		if len(out.Output) > 0 && json.Valid(out.Output) {
			// A process function's own error payload, as Lambda returns it.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, err := w.Write(out.Output)
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]string{
			"errorMessage": errs.MessageOf(out.Err),
			"errorType":    string(errs.CodeOf(out.Err)),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(out.Output)
	return err
}
