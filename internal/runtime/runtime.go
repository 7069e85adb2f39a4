// Package runtime defines the contract between the scheduler and the
// runtimes that run function code: wasm (wazero) and process (the AWS Lambda
// Runtime API in sandboxed processes).
//
// A Runtime loads a deployed artifact once into a Module (validated and
// compiled); a Module starts Instances; an Instance runs one invocation at a
// time. Pools of Instances are the scheduler's business, not the runtime's.
package runtime

import (
	"context"
	"time"

	"github.com/mote-run/mote/internal/host"
)

// Kind names a runtime.
type Kind string

// The runtimes Mote ships.
const (
	KindWasm    Kind = "wasm"
	KindProcess Kind = "process"
)

// EnvPreinit set to "off" in a function's environment turns off the
// runtimes' pre-initialised starts for it: the wasm runtime then runs a
// reactor's initialisation in every instance instead of restoring a
// snapshot of the first (for a function that needs the Go runtime's
// random state drawn afresh in each), and the process runtime keeps no
// started spare instance.
const EnvPreinit = "MOTE_PREINIT"

// Spec is everything a runtime needs to load one function version.
type Spec struct {
	Function string // function name
	Version  string // immutable version id (content hash of artifact and config)
	Kind     Kind

	// Artifact is the wasm module's bytes (KindWasm).
	Artifact []byte
	// Dir is the unpacked, read-only function directory (KindProcess).
	Dir string
	// Handler is the command line that starts a process function (KindProcess).
	Handler string

	Env         map[string]string
	MemoryLimit int64         // bytes; 0 means the runtime default
	Timeout     time.Duration // per invocation; 0 means the runtime default
	Network     bool          // process functions: allow network access
	// CGI: a WASI command serving HTTP by WAGI; its events' payloads
	// are EncodeCGI frames, the variables go in its environment and the
	// body on its stdin (KindWasm).
	CGI         bool
	CacheBudget int64 // bytes for the function-managed cache

	// Output receives what the function writes outside any invocation
	// (process functions: stdout and stderr between invocations), one
	// line at a time, stream "stdout" or "stderr", and the runtime's
	// notices about it, stream "platform". Nil: the runtime's own logger.
	// It is called from one goroutine at a time and must not block long.
	Output func(stream, line string)
}

// Event is one invocation as a runtime sees it.
type Event struct {
	ID       string    // invocation id
	Root     string    // root invocation id of the call tree (== ID at the root)
	Parent   string    // parent invocation id, "" at the root
	Depth    int       // 0 at the root
	Deadline time.Time // the invocation must end by then
	Payload  []byte

	// Host serves the function's host calls (invoke, kv, log, ...) for this
	// invocation. Never nil.
	Host host.Host
}

// Result is what a successful invocation returned.
type Result struct {
	Output []byte
}

// Usage is what an invocation consumed, whether it succeeded or not.
type Usage struct {
	CPU  time.Duration // CPU time of the function's own code, not waits
	Wall time.Duration
	// Init is how long the instance took to start, on a cold start (the
	// scheduler sets it; runtimes leave it zero).
	Init time.Duration
	// Memory is the most memory the instance has held, in bytes, where
	// the runtime knows it without a system call (a wasm reactor's linear
	// memory, which only grows); 0 where it does not.
	Memory int64
}

// Runtime loads artifacts. Implementations are safe for concurrent use.
type Runtime interface {
	// Load validates and compiles spec's artifact. An artifact that can
	// never run fails with an *errs.Error of code bad_request.
	Load(ctx context.Context, spec Spec) (Module, error)
	Close(ctx context.Context) error
}

// Module is a loaded, compiled function version.
type Module interface {
	// NewInstance starts an instance ready for Invoke (a cold start).
	NewInstance(ctx context.Context) (Instance, error)
	Close(ctx context.Context) error
}

// Instance runs invocations one at a time.
//
// Invoke returns nil, or an error classified by errs.CodeOf:
// function_error (the handler failed or trapped), timeout, out_of_memory,
// init_error, or others. After any error, the caller asks Reusable whether
// the instance can take another invocation; a trapped, timed-out or
// killed instance cannot.
type Instance interface {
	Invoke(ctx context.Context, ev *Event) (Result, Usage, error)
	Reusable() bool
	Close(ctx context.Context) error
}

// Traits is optionally implemented by a Runtime whose instances give
// guarantees beyond the contract above, which the layers over it may build
// on. A Runtime that does not implement it gives neither.
type Traits interface {
	// EnforcesDeadline reports whether Instance.Invoke ends by itself at
	// ev.Deadline, and when its ctx ends, so that the caller need not put
	// the deadline on ctx.
	EnforcesDeadline() bool
	// HostOnlyEgress reports whether a function reaches nothing outside
	// its instance but through ev.Host (its logs included): what it
	// knows, ev.ID among it, nobody else learns before its first host
	// call.
	HostOnlyEgress() bool
}

// InstancePerCall is optionally implemented by a Module each of whose
// invocations runs in a new instance of the function's code, whatever
// instance the scheduler hands it (a WASI command). Such an invocation is
// neither warm nor a pool's cold start, and is reported as its own kind
// (X-Mote-Cold: per-call).
type InstancePerCall interface {
	InstancePerCall() bool
}

// MemoryReporter is optionally implemented by instances that can say how
// much memory they hold (bytes), for metrics and the idle-memory benchmark.
type MemoryReporter interface {
	Memory() int64
}

// PeakMemoryReporter is optionally implemented by instances that can say
// the most memory they have held since they started (bytes): a process's
// cgroup peak, a wasm instance's linear memory (which never shrinks). The
// scheduler records it per version to recommend a memory limit.
type PeakMemoryReporter interface {
	PeakMemory() int64
}

// callerKey marks the context of a host call with the calling invocation's
// runtime state.
type callerKey struct{}

// WithCaller returns ctx marked as a host call made by an invocation whose
// runtime-private state is v. An invocation nested in that host call finds
// v with CallerOf: the wasm runtime uses it to keep a synchronously called
// function's CPU off its caller's bill.
func WithCaller(ctx context.Context, v any) context.Context {
	return context.WithValue(ctx, callerKey{}, v)
}

// CallerOf returns the mark WithCaller put on ctx, or nil.
func CallerOf(ctx context.Context) any { return ctx.Value(callerKey{}) }

// InheritCaller returns ctx carrying from's caller mark, if it has one:
// for code that runs a nested invocation under its own context (deadline,
// cancellation) on behalf of a host call's context.
func InheritCaller(ctx, from context.Context) context.Context {
	if v := CallerOf(from); v != nil {
		return WithCaller(ctx, v)
	}
	return ctx
}
