//go:build !wasip1

package mote

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A native build is a process function: Start runs the AWS Lambda Runtime
// API loop against the endpoint in AWS_LAMBDA_RUNTIME_API, and Call reaches
// the host API through Mote's extension of that endpoint,
// POST /2018-06-01/mote/call/{op}.

const (
	pathNext      = "/2018-06-01/runtime/invocation/next"
	pathInvPrefix = "/2018-06-01/runtime/invocation/"
	pathInitError = "/2018-06-01/runtime/init/error"
)

var (
	function = os.Getenv("AWS_LAMBDA_FUNCTION_NAME")
	version  = os.Getenv("AWS_LAMBDA_FUNCTION_VERSION")
	apiAddr  = os.Getenv("AWS_LAMBDA_RUNTIME_API")

	// current is the id of the invocation being served; Call sends it so
	// the platform knows which invocation a host call belongs to.
	currentMu sync.RWMutex
	current   string
)

// Start runs the function: it asks the platform for each event in turn,
// calls the handler, and posts its result or error. It returns only when
// the platform goes away, by exiting the process.
func Start() {
	if apiAddr == "" {
		fatal("mote: AWS_LAMBDA_RUNTIME_API is not set; run this program as a Mote (or AWS Lambda) process function")
	}
	// On Mote (MOTE_INSTANCE is set) events come over an invocation
	// channel; elsewhere (AWS Lambda) over the Runtime API.
	if handler != nil && os.Getenv("MOTE_INSTANCE") != "" && serveChannel() {
		return
	}
	c, err := dialAPI(apiAddr)
	if err != nil {
		fatal(err.Error())
	}
	if handler == nil {
		body, _ := json.Marshal(lambdaError{Message: "no handler registered (call mote.Handle from init)", Type: "Runtime.NoHandler"})
		c.do("POST", pathInitError, "", body)
		fatal("mote: no handler registered (call mote.Handle from init)")
	}
	for {
		resp, err := c.do("GET", pathNext, "", nil)
		if err != nil {
			fatal("mote: runtime api: " + err.Error())
		}
		if resp.status != 200 {
			fatal(fmt.Sprintf("mote: runtime api: next: status %d: %s", resp.status, resp.body))
		}
		ctx := newContext(resp.requestID, resp.deadline, resp.trace, resp.depth)
		out, failed, panicked := serveEvent(ctx, resp.body)
		path := pathInvPrefix + ctx.InvocationID + "/response"
		if failed {
			path = pathInvPrefix + ctx.InvocationID + "/error"
		}
		if _, err := c.do("POST", path, "", out); err != nil {
			fatal("mote: runtime api: " + err.Error())
		}
		if panicked {
			// The handler's state may be broken: let the platform replace
			// this instance, as a wasm reactor's would be.
			os.Exit(2)
		}
	}
}

// lambdaError is the Runtime API's error body.
type lambdaError struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// newContext builds an invocation's Context from what the platform sent
// with its event (over the Runtime API's headers or the invocation
// channel's frame): its id, deadline in Unix ms, trace and depth.
func newContext(id, deadlineMs, trace, depth string) *Context {
	ctx := &Context{InvocationID: id, Function: function, Version: version}
	if ms, err := strconv.ParseInt(deadlineMs, 10, 64); err == nil {
		ctx.Deadline = time.UnixMilli(ms)
	}
	ctx.RootID, ctx.ParentID = parseTrace(trace)
	if ctx.RootID == "" {
		ctx.RootID = ctx.InvocationID
	}
	ctx.Depth, _ = strconv.Atoi(depth)
	return ctx
}

// serveEvent runs the handler on one event and returns what to send back:
// its output, or (failed) the Runtime API's error JSON. panicked says the
// handler panicked: the instance exits after answering, since its state
// may be broken.
func serveEvent(ctx *Context, event []byte) (body []byte, failed, panicked bool) {
	setCurrent(ctx.InvocationID)
	out, err, panicked := runNative(ctx, event)
	setCurrent("")
	if err == nil && len(out) > maxResponse {
		err = errResponseTooLarge(len(out))
	}
	if err == nil {
		return out, false, false
	}
	typ := "FunctionError"
	if panicked {
		typ = "Runtime.Panic"
	}
	var tl *responseTooLargeError
	if errors.As(err, &tl) {
		typ = "Function.ResponseSizeTooLarge"
	}
	msg := err.Error()
	if len(msg) > maxErrorMessage { // the error must fit too
		msg = msg[:maxErrorMessage] + "…"
	}
	body, _ = json.Marshal(lambdaError{Message: msg, Type: typ})
	return body, true, panicked
}

// maxResponse is the largest response the platform takes
// (MOTE_MAX_RESPONSE; AWS Lambda's 6 MiB elsewhere). A larger one is
// reported as that invocation's error, as Lambda does, rather than sent
// and refused with the connection.
var maxResponse = func() int {
	if n, err := strconv.Atoi(os.Getenv("MOTE_MAX_RESPONSE")); err == nil && n > 0 {
		return n
	}
	return 6 << 20
}()

// maxErrorMessage bounds an error's message, so its JSON is well under
// any response limit.
const maxErrorMessage = 64 << 10

// responseTooLargeError is a handler's output over maxResponse.
type responseTooLargeError struct{ size int }

func errResponseTooLarge(size int) error { return &responseTooLargeError{size} }

func (e *responseTooLargeError) Error() string {
	return fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", e.size, maxResponse)
}

// parseTrace reads Mote's trace header, which names the call tree:
// Root=...;Parent=...
func parseTrace(trace string) (root, parent string) {
	for _, part := range strings.Split(trace, ";") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "Root":
			root = v
		case "Parent":
			parent = v
		}
	}
	return root, parent
}

func runNative(ctx *Context, event []byte) (out []byte, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			out, err, panicked = nil, fmt.Errorf("panic: %v", p), true
		}
	}()
	out, err = handler(ctx, event)
	return out, err, false
}

func setCurrent(id string) {
	currentMu.Lock()
	current = id
	currentMu.Unlock()
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

// Log writes a formatted line to the function's log. In a process
// function that is standard error, which the platform attributes to the
// running invocation.
func Log(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	os.Stderr.WriteString(msg)
}

// Call makes the host call op with args and returns its result, or an
// *Error carrying the host's error code. It must be called while a handler
// runs (the call belongs to that invocation).
func Call(op string, args ...[]byte) ([]byte, error) {
	currentMu.RLock()
	id := current
	currentMu.RUnlock()
	if id == "" {
		return nil, &Error{Code: "bad_request", Message: "mote: host call outside an invocation"}
	}
	h, err := takeHostConn()
	if err != nil {
		return nil, &Error{Code: "unavailable", Message: err.Error()}
	}
	out, err := h.call(id, op, args)
	var e *Error
	if err != nil && !errors.As(err, &e) {
		h.conn.Close()
		return nil, &Error{Code: "unavailable", Message: "mote: host call: " + err.Error()}
	}
	putHostConn(h)
	return out, err
}
