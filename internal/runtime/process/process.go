// Package process is Mote's runtime for process functions: any executable,
// in any language, that speaks the AWS Lambda Runtime API. Each instance is
// a warm process in its own sandbox (internal/sandbox: cgroup, namespaces,
// an unprivileged user) with its own Runtime API server; its CPU time is
// read from the kernel's cgroup accounting, its stdout and stderr become
// the invocation's log lines, and its host calls (kv, invoke, ...) reach
// the invocation's host.Host through one extra endpoint,
// POST /2018-06-01/mote/call/{op}.
//
// A function is unchanged Lambda code: a Go program built with
// github.com/aws/aws-lambda-go/lambda, or any custom runtime's bootstrap.
// docs/process-functions.md describes the contract a function sees.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/sandbox"
)

// Defaults for Config.
const (
	DefaultMemoryLimit = 128 << 20
	DefaultTimeout     = 30 * time.Second
	DefaultInitTimeout = 10 * time.Second
	DefaultPidsLimit   = 64
	DefaultFreezeAfter = 5 * time.Millisecond
	DefaultMaxResponse = 6 << 20 // AWS Lambda's synchronous response limit
	// DefaultMaxHostCall leaves room for the largest argument a host op
	// takes whole (obj.put's 8 MiB object, baas.Config's
	// MaxHostObjectBytes) and the op's other arguments.
	DefaultMaxHostCall = 9 << 20
	DefaultPath        = "/usr/local/bin:/usr/bin:/bin"
	DefaultRegion      = "us-east-1"
	// DefaultMaxAPIConns is well above what an SDK opens (a few; see
	// Config.MaxAPIConns) and small enough that a function's idle
	// connections cost Mote at most a few MiB.
	DefaultMaxAPIConns      = 32
	DefaultAPIHeaderTimeout = 10 * time.Second
	DefaultAPIBodyTimeout   = 30 * time.Second
	// A function's output between invocations is limited per instance to
	// DefaultOutputRate bytes a second, with bursts of DefaultOutputBurst:
	// enough for a background thread's occasional lines, or a stack dump
	// at exit, but not for flooding the logs with work nobody pays for.
	DefaultOutputRate  = 64 << 10
	DefaultOutputBurst = 1 << 20
)

// ErrUnconfined is returned by New where the sandbox cannot confine
// functions and Config.Unconfined is not set.
var ErrUnconfined = errors.New("process: process functions need root and mount, PID and network namespaces to be sandboxed; run mote as root (or set Unconfined, for your own code only)")

// baseDirPrefix names the default BaseDir, "mote-process-PID".
const baseDirPrefix = "mote-process-"

// Config configures the process runtime. The zero value gets defaults
// from Validate.
type Config struct {
	// BaseDir holds each instance's private writable directory (its TMPDIR
	// and HOME) where the sandbox cannot give an instance a root of its
	// own, whose /tmp is used instead. Default: a directory under
	// os.TempDir.
	BaseDir string
	Logger  *slog.Logger
	// DefaultMemoryLimit applies when a spec sets none (bytes).
	DefaultMemoryLimit int64
	// DefaultTimeout bounds an invocation whose event has no deadline and
	// whose spec sets no timeout.
	DefaultTimeout time.Duration
	// InitTimeout bounds a cold start: start to the first request for an
	// event.
	InitTimeout time.Duration
	// FreezeAfter is how long an instance may stay idle between
	// invocations before its processes are frozen (cgroup freezer, as
	// AWS Lambda does), so that what a function leaves running after it
	// answers stops within this much time; thawed by the next invocation.
	// Default DefaultFreezeAfter; negative: never freeze.
	FreezeAfter time.Duration
	// PidsLimit caps the processes and threads of one instance.
	PidsLimit int64
	// UIDBase and UIDCount reserve the user ids instances run as, one per
	// live instance (see sandbox.Config); 0: the sandbox's defaults.
	UIDBase, UIDCount int
	// Unconfined lets the runtime start where the sandbox cannot confine
	// functions (see sandbox.Sandbox.Confined): not root, or no mount, PID
	// or network namespace. Functions then see the host's files, and run
	// as Mote's own user when Mote is not root: for trying Mote with
	// one's own code only.
	Unconfined bool
	// ReadOnly are host paths every instance sees read-only at the same
	// path in its own root, besides its code and the SDKs: an operator's
	// shared libraries, say. Functions cannot add to it.
	ReadOnly []string
	// InitPath is the executable re-executed as the sandbox init; it must
	// call sandbox.MaybeRunInit first. Default: os.Executable().
	InitPath string
	// Path is the PATH functions see and handlers are looked up in.
	Path string
	// Region is reported as AWS_REGION and in function ARNs.
	Region string
	// MaxResponse caps a response or error body (bytes).
	MaxResponse int64
	// MaxHostCall caps one host call's encoded arguments (bytes), on the
	// Runtime API and on the host-call channel alike. Default
	// DefaultMaxHostCall, never below MaxResponse: a function can pass
	// on what it can return.
	MaxHostCall int64
	// SDKRoot, if set, is where the Python and JS SDKs are extracted so
	// that functions import them without bundling a copy: PYTHONPATH
	// includes it, and Node finds SDKRoot/node_modules/mote from function
	// directories below SDKRoot. It must be an ancestor of the function
	// directories and reachable by the function user.
	SDKRoot string

	// MaxAPIConns caps the connections one instance may hold open to its
	// Runtime API (HTTP and framed channels together); connections past
	// it are closed as soon as they are accepted. An SDK opens a few:
	// aws-lambda-go one or two (net/http keeps two idle); the Go SDK an
	// invocation channel and a host-call channel per concurrent host call
	// (it keeps 8); Python one, plus one per thread making host calls;
	// Node one, plus up to 8 sockets for concurrent host calls.
	MaxAPIConns int
	// APIHeaderTimeout bounds a Runtime API request's line and headers,
	// and a new connection's first byte, from the moment the server has
	// to wait for them. A connection idle between requests has no
	// deadline: the cap bounds what idle connections hold.
	APIHeaderTimeout time.Duration
	// APIBodyTimeout bounds a request body or a host-call frame, from its
	// first byte.
	APIBodyTimeout time.Duration

	// OutputRate and OutputBurst limit, per instance, the output a
	// function writes outside an invocation (a token bucket, in bytes a
	// second and bytes); the excess is dropped with one notice saying how
	// much. Output during an invocation is not limited.
	OutputRate, OutputBurst int64
	// Now is the clock the output limit reads; default time.Now.
	Now func() time.Time

	// NoSpare turns off the started spare each loaded function keeps
	// (spare.go) for every function; a function turns it off for itself
	// with runtime.EnvPreinit=off in its environment.
	NoSpare bool
}

// Validate applies defaults and checks c.
func (c *Config) Validate() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.BaseDir == "" {
		c.BaseDir = filepath.Join(os.TempDir(), baseDirPrefix+strconv.Itoa(os.Getpid()))
	}
	if c.DefaultMemoryLimit == 0 {
		c.DefaultMemoryLimit = DefaultMemoryLimit
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = DefaultInitTimeout
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = DefaultPidsLimit
	}
	if c.FreezeAfter == 0 {
		c.FreezeAfter = DefaultFreezeAfter
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.MaxResponse == 0 {
		c.MaxResponse = DefaultMaxResponse
	}
	if c.MaxHostCall == 0 {
		c.MaxHostCall = DefaultMaxHostCall
	}
	if c.OutputRate == 0 {
		c.OutputRate = DefaultOutputRate
	}
	if c.OutputBurst == 0 {
		c.OutputBurst = DefaultOutputBurst
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxAPIConns == 0 {
		c.MaxAPIConns = DefaultMaxAPIConns
	}
	if c.APIHeaderTimeout == 0 {
		c.APIHeaderTimeout = DefaultAPIHeaderTimeout
	}
	if c.APIBodyTimeout == 0 {
		c.APIBodyTimeout = DefaultAPIBodyTimeout
	}
	switch {
	case c.DefaultMemoryLimit < 4<<20:
		return fmt.Errorf("process: default memory limit %d is below 4 MiB", c.DefaultMemoryLimit)
	case c.DefaultTimeout < 0 || c.InitTimeout < 0:
		return fmt.Errorf("process: timeouts must be positive")
	case c.PidsLimit < 4:
		return fmt.Errorf("process: pids limit %d is below 4", c.PidsLimit)
	case c.UIDBase < 0 || c.UIDCount < 0:
		return fmt.Errorf("process: uid range must be positive")
	case c.MaxResponse < 1024:
		return fmt.Errorf("process: max response %d is below 1 KiB", c.MaxResponse)
	case c.MaxHostCall < 0:
		return fmt.Errorf("process: max host call %d is negative", c.MaxHostCall)
	case c.MaxAPIConns < 2:
		return fmt.Errorf("process: max runtime api connections %d is below 2", c.MaxAPIConns)
	case c.OutputRate < 0 || c.OutputBurst < 0:
		return fmt.Errorf("process: output rate and burst must be positive")
	case c.APIHeaderTimeout < 0 || c.APIBodyTimeout < 0:
		return fmt.Errorf("process: runtime api timeouts must be positive")
	}
	return nil
}

// Runtime runs process functions. It is safe for concurrent use.
type Runtime struct {
	cfg  Config
	log  *slog.Logger
	sb   *sandbox.Sandbox
	sdks *SDKs // extracted SDKs, or nil
	// readOnly are the host paths every instance sees besides its code:
	// Config.ReadOnly and the SDKs.
	readOnly []string
	seq      atomic.Uint64

	mu     sync.Mutex
	live   map[*instance]struct{}
	closed bool

	epoch  time.Time // since's zero
	freeze bool      // instances are frozen when idle (FreezeAfter > 0 and a freezer)
}

// since is the monotonic time since the runtime started, in nanoseconds.
func (r *Runtime) since() int64 { return int64(time.Since(r.epoch)) }

var (
	_ runtime.Runtime        = (*Runtime)(nil)
	_ runtime.Module         = (*module)(nil)
	_ runtime.Instance       = (*instance)(nil)
	_ runtime.MemoryReporter = (*instance)(nil)

	_ runtime.PeakMemoryReporter = (*instance)(nil)
)

// New starts the process runtime: it detects the sandbox features this
// kernel grants (logging once what it refuses) and prepares BaseDir.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Instance directories of a Mote killed before it could remove them.
	sandbox.RemoveStaleDirs(cfg.Logger, os.TempDir(), baseDirPrefix)
	if err := os.MkdirAll(cfg.BaseDir, 0o711); err != nil {
		return nil, fmt.Errorf("process: create base dir: %w", err)
	}
	// The unprivileged user must reach its instance directory.
	_ = os.Chmod(cfg.BaseDir, 0o711)
	sb, err := sandbox.New(sandbox.Config{Logger: cfg.Logger, UIDBase: cfg.UIDBase, UIDCount: cfg.UIDCount, InitPath: cfg.InitPath})
	if err != nil {
		return nil, err
	}
	if !sb.Confined() {
		if !cfg.Unconfined {
			sb.Close()
			return nil, ErrUnconfined
		}
		cfg.Logger.Warn("process: functions are NOT sandboxed (Unconfined): they see the host's files and, without root, run as Mote's user")
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger, sb: sb, live: map[*instance]struct{}{}, epoch: time.Now()}
	r.readOnly = append(r.readOnly, cfg.ReadOnly...)
	if cfg.SDKRoot != "" {
		sdks, err := ExtractSDKs(cfg.SDKRoot)
		if err != nil {
			sb.Close()
			return nil, fmt.Errorf("process: extract SDKs: %w", err)
		}
		r.sdks = &sdks
		precompilePython(ctx, cfg.Logger, sdks.PythonPath(), cfg.Path)
		r.readOnly = append(r.readOnly, sdks.PythonPath(), filepath.Dir(sdks.JSDir()))
	}
	r.freeze = cfg.FreezeAfter > 0 && sb.Controllers()["freezer"] != ""
	return r, nil
}

// Sandbox returns the sandbox the runtime starts instances in, to report
// which isolation features are active.
func (r *Runtime) Sandbox() *sandbox.Sandbox { return r.sb }

// Load checks spec: a process function needs a directory and a handler
// command whose executable exists there or on PATH.
func (r *Runtime) Load(ctx context.Context, spec runtime.Spec) (runtime.Module, error) {
	if spec.Kind != runtime.KindProcess && spec.Kind != "" {
		return nil, errs.E(errs.BadRequest, "process: spec of kind %q", spec.Kind)
	}
	if spec.Dir == "" {
		return nil, errs.E(errs.BadRequest, "process: function %q has no directory", spec.Function)
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, errs.Wrap(errs.BadRequest, err, "process: bad function directory")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, errs.E(errs.BadRequest, "process: function directory %s does not exist", spec.Dir)
	}
	argv, err := splitCommand(spec.Handler)
	if err != nil {
		return nil, errs.Wrap(errs.BadRequest, err, "process: handler: "+err.Error())
	}
	if len(argv) == 0 {
		return nil, errs.E(errs.BadRequest, "process: function %q has no handler command", spec.Function)
	}
	if r.sdks != nil {
		spec.Env = r.sdks.Env(spec.Env)
		argv = r.sdks.Command(argv, dir)
	}
	path := r.cfg.Path
	if p, ok := spec.Env["PATH"]; ok {
		path = p
	}
	if _, err := sandbox.LookPath(argv[0], dir, []string{"PATH=" + path}); err != nil {
		return nil, errs.E(errs.BadRequest, "process: %v", err)
	}
	if spec.MemoryLimit < 0 || spec.Timeout < 0 {
		return nil, errs.E(errs.BadRequest, "process: negative memory limit or timeout")
	}
	if spec.MemoryLimit == 0 {
		spec.MemoryLimit = r.cfg.DefaultMemoryLimit
	}
	if spec.MemoryLimit < 4<<20 {
		return nil, errs.E(errs.BadRequest, "process: memory limit %d is below 4 MiB", spec.MemoryLimit)
	}
	if spec.Timeout == 0 {
		spec.Timeout = r.cfg.DefaultTimeout
	}
	if spec.Function == "" {
		spec.Function = "function"
	}
	if spec.Version == "" {
		spec.Version = "$LATEST"
	}
	spec.Dir = dir
	m := &module{rt: r, spec: spec, argv: argv, path: path}
	m.spare.on = !r.cfg.NoSpare && spec.Env[runtime.EnvPreinit] != "off"
	return m, nil
}

// Close closes every live instance and releases the sandbox's cgroups.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	live := make([]*instance, 0, len(r.live))
	for in := range r.live {
		live = append(live, in)
	}
	r.mu.Unlock()
	for _, in := range live {
		_ = in.Close(ctx)
	}
	err := r.sb.Close()
	_ = os.Remove(r.cfg.BaseDir)
	return err
}

func (r *Runtime) track(in *instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errs.E(errs.Unavailable, "process: runtime is closed")
	}
	r.live[in] = struct{}{}
	return nil
}

func (r *Runtime) untrack(in *instance) {
	r.mu.Lock()
	delete(r.live, in)
	r.mu.Unlock()
}

// module is a loaded process function.
type module struct {
	rt   *Runtime
	spec runtime.Spec
	argv []string
	path string

	spare spare // a started instance kept ready (spare.go)
}

// Close closes the module's spare instance; the instances it handed out
// are closed by their owner (or by Runtime.Close).
func (m *module) Close(ctx context.Context) error {
	m.spare.close(ctx)
	return nil
}

// env builds the function's environment: Lambda's documented variables
// (which spec.Env cannot override), then spec.Env, over a small base.
func (m *module) env(api, name, tmp string) []string {
	s := m.spec
	vars := map[string]string{
		"PATH":             m.path,
		"LANG":             "C.UTF-8",
		"TZ":               ":UTC",
		"HOME":             tmp,
		"TMPDIR":           tmp,
		"PYTHONUNBUFFERED": "1", // so print() lines reach the log as they happen
	}
	for k, v := range s.Env {
		vars[k] = v
	}
	delete(vars, EnvShmFD) // set by the instance, only when it has a region
	for k, v := range map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          api,
		"_HANDLER":                        s.Handler,
		"AWS_LAMBDA_FUNCTION_NAME":        s.Function,
		"AWS_LAMBDA_FUNCTION_VERSION":     s.Version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.FormatInt(s.MemoryLimit>>20, 10),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + s.Function,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[" + s.Version + "]" + name,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_REGION":                      m.rt.cfg.Region,
		"AWS_DEFAULT_REGION":              m.rt.cfg.Region,
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"LAMBDA_TASK_ROOT":                s.Dir,
		"LAMBDA_RUNTIME_DIR":              s.Dir,
		"MOTE_FUNCTION":                   s.Function,
		"MOTE_INSTANCE":                   name,
		// The SDKs report a result over it as the invocation's error.
		"MOTE_MAX_RESPONSE": strconv.FormatInt(m.rt.cfg.MaxResponse, 10),
	} {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// arn is the function's ARN as Lambda would spell it.
func (m *module) arn() string {
	return "arn:aws:lambda:" + m.rt.cfg.Region + ":000000000000:function:" + m.spec.Function
}

// splitCommand splits a handler command line into words: spaces separate,
// single and double quotes group, backslash escapes outside single quotes.
// No expansion of any kind: the command is not run by a shell.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// newID returns a random id shaped like a Lambda request id (a UUID).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// hostCallLimit is the largest host call accepted (Config.MaxHostCall).
func (c *Config) hostCallLimit() int64 { return max(c.MaxHostCall, c.MaxResponse) }

// maxDrain bounds the body of a request over its limit that is read and
// discarded so that the function reads a clear "too large" answer:
// closing a connection with unread bytes resets it, and the sender sees
// a broken pipe instead. A body declared larger than this is not read.
const maxDrain = 64 << 20
