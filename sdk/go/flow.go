package mote

import (
	"strconv"
	"time"
)

// Flow calls: a function composes others through the platform, which
// records each call in the invocation's call tree, enforces the depth and
// descendant limits, retries by the callee's policy, and journals completed
// results so that a retried caller gets them back without re-running them.
// A call's sequence number within the invocation is what the journal keys
// on: make the same calls in the same order on every attempt.

// Invoke calls function fn with event and waits for its output. The error
// is an *Error with the callee's code: "function_error", "timeout",
// "limit_exceeded", "not_found", ...
func Invoke(fn string, event []byte) ([]byte, error) {
	return Call(OpInvoke, []byte(fn), event)
}

// AsyncCall identifies a call started with InvokeAsync; it is the child
// invocation's id.
type AsyncCall string

// InvokeAsync starts function fn with event and returns at once. Collect
// the result with AwaitAll or AwaitAny. A child not awaited keeps running
// after the caller returns, unless the caller fails (then it is stopped).
func InvokeAsync(fn string, event []byte) (AsyncCall, error) {
	h, err := Call(OpInvokeAsync, []byte(fn), event)
	return AsyncCall(h), err
}

// Result is the outcome of one child call in AwaitAll, AwaitAny or Map.
type Result struct {
	Output  []byte
	Err     *Error // nil on success
	Pending bool   // AwaitAny only: the call had not ended yet
}

// AwaitAll waits until every call has ended and returns their results in
// the order given. A timeout of 0 waits as long as the invocation may run;
// when the timeout passes first the error has code "timeout" (the calls
// go on).
func AwaitAll(timeout time.Duration, calls ...AsyncCall) ([]Result, error) {
	return await("all", timeout, calls)
}

// AwaitAny waits until at least one call has ended; calls still running
// are Pending in the results.
func AwaitAny(timeout time.Duration, calls ...AsyncCall) ([]Result, error) {
	return await("any", timeout, calls)
}

func await(mode string, timeout time.Duration, calls []AsyncCall) ([]Result, error) {
	args := make([][]byte, 0, 2+len(calls))
	args = append(args, []byte(mode), []byte(strconv.FormatInt(timeout.Milliseconds(), 10)))
	for _, c := range calls {
		args = append(args, []byte(c))
	}
	out, err := Call(OpAwait, args...)
	if err != nil {
		return nil, err
	}
	return decodeResults(out, len(calls))
}

// Map calls fn once per event, at most concurrency at a time (0: the
// platform's default), and returns the results in event order. One failed
// call does not fail the others: check each Result's Err.
func Map(fn string, events [][]byte, concurrency int) ([]Result, error) {
	args := make([][]byte, 0, 2+len(events))
	args = append(args, []byte(fn), []byte(strconv.Itoa(max(concurrency, 0))))
	args = append(args, events...)
	out, err := Call(OpMap, args...)
	if err != nil {
		return nil, err
	}
	return decodeResults(out, len(events))
}

// decodeResults decodes the host's results: two args per call, a code
// ("" for success, "pending", or an error code) and the output or message.
func decodeResults(b []byte, n int) ([]Result, error) {
	args, ok := parseArgs(b)
	if !ok || len(args) != 2*n {
		return nil, &Error{Code: "internal", Message: "mote: malformed results from host"}
	}
	rs := make([]Result, n)
	for i := range rs {
		code, data := string(args[2*i]), args[2*i+1]
		switch code {
		case "":
			rs[i].Output = data
		case "pending":
			rs[i].Pending = true
		default:
			rs[i].Err = &Error{Code: code, Message: string(data)}
		}
	}
	return rs, nil
}
