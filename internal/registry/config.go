package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// Config is a function version's configuration, fixed at deploy. Its JSON
// form is what `mote deploy` sends and what manifests hold.
type Config struct {
	Runtime runtime.Kind `json:"runtime"`           // "wasm" (default) or "process"
	Handler string       `json:"handler,omitempty"` // process: command line
	Memory  Size         `json:"memory,omitempty"`  // memory limit, or "auto" (SizeAuto)
	// MemoryMax bounds a limit Mote sets itself ("memory": "auto"):
	// it starts at DefaultMemory (or MemoryMax, if lower) and doubles,
	// up to MemoryMax, each time an invocation runs out of memory, whose
	// attempt is then run again at the new limit.
	MemoryMax    Size              `json:"memory_max,omitempty"`
	Timeout      Duration          `json:"timeout,omitempty"`       // per invocation
	MinWarm      int               `json:"min_warm,omitempty"`      // instances kept ready
	MaxInstances int               `json:"max_instances,omitempty"` // pool ceiling
	MaxQueue     int               `json:"max_queue,omitempty"`     // waiting invocations beyond the ceiling
	IdleTimeout  Duration          `json:"idle_timeout,omitempty"`  // idle instances above min_warm stop after this
	Env          map[string]string `json:"env,omitempty"`
	Secrets      []SecretGrant     `json:"secrets,omitempty"` // secrets injected as env; values never in the config
	Network      bool              `json:"network,omitempty"` // process functions: allow network
	Cache        Size              `json:"cache,omitempty"`   // budget of the function-managed cache
	Permissions  Permissions       `json:"permissions,omitempty"`
	Retry        Retry             `json:"retry,omitempty"`
	OnSuccess    string            `json:"on_success,omitempty"`
	OnFailure    string            `json:"on_failure,omitempty"`
	Concurrency  int               `json:"concurrency,omitempty"` // cap on concurrent invocations, 0 = max_instances+max_queue
	// Calls names the functions this one calls: when it gets traffic,
	// Mote starts an instance of each (and of theirs) that has none
	// ready, so a chain does not stack cold starts. A hint only: it
	// grants nothing (permissions.invoke does).
	Calls []string `json:"calls,omitempty"`
	HTTP  HTTPMode `json:"http,omitempty"` // an HTTP function: true (payload format 2.0) or "wagi"
}

// maxCalls bounds Config.Calls.
const maxCalls = 32

// Permissions lists the storage buckets a function may use and the
// functions it may invoke. An entry is a name, a prefix ending in '*', or
// "*" for all. With no Invoke list a function may invoke nothing (invoke,
// invoke_async and map are all refused); its on_success and on_failure
// destinations, set by the deployer, need no grant.
type Permissions struct {
	Read   []string `json:"read,omitempty"`
	Write  []string `json:"write,omitempty"`
	Invoke []string `json:"invoke,omitempty"`
}

// MayInvoke reports whether the permissions grant invoking fn.
func (p Permissions) MayInvoke(fn string) bool { return MatchPattern(p.Invoke, fn) }

// MatchPattern reports whether name matches one of patterns: an exact
// name, "prefix*" or "*".
func MatchPattern(patterns []string, name string) bool {
	for _, p := range patterns {
		if p == name || p == "*" {
			return true
		}
		if n := len(p) - 1; n >= 0 && p[n] == '*' && strings.HasPrefix(name, p[:n]) {
			return true
		}
	}
	return false
}

func validPattern(p string) bool {
	return p != "" && !strings.Contains(strings.TrimSuffix(p, "*"), "*")
}

// SecretGrant grants a function one secret, injected at instance start as
// the environment variable Env (default: the secret's name). In JSON it is
// the name alone, "DB_PASSWORD", or {"name": "DB_PASSWORD", "env": "PGPASSWORD"}.
type SecretGrant struct {
	Name string `json:"name"`
	Env  string `json:"env,omitempty"`
}

// EnvName is the variable the secret is injected as.
func (g SecretGrant) EnvName() string {
	if g.Env != "" {
		return g.Env
	}
	return g.Name
}

// UnmarshalJSON accepts a name or an object.
func (g *SecretGrant) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		*g = SecretGrant{Name: name}
		return nil
	}
	type plain SecretGrant
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return errs.E(errs.BadRequest, `config: a secrets entry is a name or {"name": "...", "env": "..."}`)
	}
	*g = SecretGrant(p)
	return nil
}

// MarshalJSON writes a grant without Env as its name alone.
func (g SecretGrant) MarshalJSON() ([]byte, error) {
	if g.Env == "" {
		return json.Marshal(g.Name)
	}
	type plain SecretGrant
	return json.Marshal(plain(g))
}

// Grants reports whether c grants the secret name.
func (c Config) Grants(secret string) bool {
	for _, g := range c.Secrets {
		if g.Name == secret {
			return true
		}
	}
	return false
}

// Retry is a function's retry policy for failed invocations.
type Retry struct {
	Attempts int      `json:"attempts,omitempty"` // total attempts, 0 = default
	Backoff  Duration `json:"backoff,omitempty"`  // first delay, doubled per attempt
	On       []string `json:"on,omitempty"`       // error codes retried
}

// Defaults applied by WithDefaults.
const (
	DefaultMemory       = 128 << 20
	DefaultTimeout      = 30 * time.Second
	DefaultMaxInstances = 16
	DefaultMaxQueue     = 256
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultCache        = 16 << 20

	maxMemory = 16 << 30

	// DefaultMemoryMax bounds "memory": "auto" without memory_max.
	DefaultMemoryMax = 1 << 30
	maxTimeout       = 15 * time.Minute
	maxInstance      = 4096
)

// MemoryBound is the most memory an instance of the function may have:
// its limit, or MemoryMax under "memory": "auto".
func (c Config) MemoryBound() Size {
	if c.Memory == SizeAuto {
		return c.MemoryMax
	}
	return c.Memory
}

// AutoMemoryStart is the limit a function with "memory": "auto" starts
// at.
func (c Config) AutoMemoryStart() Size { return min(DefaultMemory, c.MemoryMax) }

// WithDefaults returns c with unset fields given their defaults.
func (c Config) WithDefaults() Config {
	if c.Runtime == "" {
		c.Runtime = runtime.KindWasm
	}
	if c.Memory == 0 {
		c.Memory = DefaultMemory
	}
	if c.Memory == SizeAuto && c.MemoryMax == 0 {
		c.MemoryMax = DefaultMemoryMax
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = DefaultMaxInstances
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if c.Cache == 0 {
		c.Cache = DefaultCache
	}
	return c
}

// Validate reports the first problem with c (after WithDefaults) as an
// errs.BadRequest.
func (c Config) Validate() error {
	bad := func(f string, a ...any) error { return errs.E(errs.BadRequest, "config: "+f, a...) }
	switch c.Runtime {
	case runtime.KindWasm:
		if c.Handler != "" {
			return bad("handler is only for process functions")
		}
	case runtime.KindProcess:
		if strings.TrimSpace(c.Handler) == "" {
			return bad("a process function needs a handler command")
		}
	default:
		return bad("unknown runtime %q (want wasm or process)", c.Runtime)
	}
	switch {
	case c.Memory == SizeAuto && (c.MemoryMax < 1<<20 || c.MemoryMax > maxMemory):
		return bad("memory_max %s out of range 1MiB..16GiB", c.MemoryMax)
	case c.Memory != SizeAuto && c.MemoryMax != 0:
		return bad(`memory_max is for "memory": "auto"`)
	case c.Memory != SizeAuto && (c.Memory < 1<<20 || c.Memory > maxMemory):
		return bad("memory %s out of range 1MiB..16GiB", c.Memory)
	case c.Timeout < Duration(time.Millisecond) || c.Timeout > Duration(maxTimeout):
		return bad("timeout %s out of range 1ms..15m", c.Timeout)
	case c.MaxInstances < 1 || c.MaxInstances > maxInstance:
		return bad("max_instances %d out of range 1..%d", c.MaxInstances, maxInstance)
	case c.MinWarm < 0 || c.MinWarm > c.MaxInstances:
		return bad("min_warm %d out of range 0..max_instances (%d)", c.MinWarm, c.MaxInstances)
	case c.MaxQueue < 0 || c.MaxQueue > 1<<20:
		return bad("max_queue %d out of range", c.MaxQueue)
	case c.IdleTimeout < Duration(time.Second):
		return bad("idle_timeout must be at least 1s")
	case c.Cache < 0 || c.Cache > c.MemoryBound()*4:
		return bad("cache budget %s out of range", c.Cache)
	case c.Concurrency < 0:
		return bad("concurrency must not be negative")
	case c.Retry.Attempts < 0 || c.Retry.Attempts > 100:
		return bad("retry.attempts out of range 0..100")
	}
	if err := c.HTTP.validate(c); err != nil {
		return err
	}
	for _, list := range [][]string{c.Permissions.Read, c.Permissions.Write, c.Permissions.Invoke} {
		for _, p := range list {
			if !validPattern(p) {
				return bad("permissions: pattern %q: use a name, \"prefix*\" or \"*\"", p)
			}
		}
	}
	for k := range c.Env {
		if !envName.MatchString(k) {
			return bad("env name %q is not a valid variable name", k)
		}
	}
	vars := map[string]string{}
	for _, g := range c.Secrets {
		switch v := g.EnvName(); {
		case !envName.MatchString(g.Name):
			return bad("secrets: %q is not a secret name (letters, digits and _, not starting with a digit)", g.Name)
		case !envName.MatchString(v):
			return bad("secrets: env name %q for secret %q is not a valid variable name", v, g.Name)
		case hasKey(c.Env, v):
			return bad("secrets: secret %q would be injected as %s, which env sets too", g.Name, v)
		case vars[v] != "":
			return bad("secrets: secrets %q and %q are both injected as %s", vars[v], g.Name, v)
		case strings.HasPrefix(v, "AWS_LAMBDA_") || strings.HasPrefix(v, "MOTE_") || strings.HasPrefix(v, "_"):
			return bad("secrets: %s is a name the runtime sets; choose another env for secret %q", v, g.Name)
		}
		vars[g.EnvName()] = g.Name
	}
	for _, code := range c.Retry.On {
		if !errs.Code(code).Known() {
			return bad("retry.on: unknown error code %q", code)
		}
	}
	if len(c.Calls) > maxCalls {
		return bad("calls: at most %d functions", maxCalls)
	}
	for _, fn := range c.Calls {
		if ValidName(fn) != nil {
			return bad("calls: %q is not a function name", fn)
		}
	}
	for _, d := range []string{c.OnSuccess, c.OnFailure} {
		if d != "" && ValidName(d) != nil {
			return bad("destination %q is not a function name", d)
		}
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	funcName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// ValidName checks a function name: 1-63 characters of a-z, 0-9, '-' and
// '_', starting with a letter or digit.
func ValidName(name string) error {
	if !funcName.MatchString(name) {
		return errs.E(errs.BadRequest, "invalid function name %q: use 1-63 of a-z 0-9 - _, starting with a letter or digit", name)
	}
	return nil
}

// Size is a byte count that reads and writes as "128MiB", "1GiB", "512KiB"
// or a plain number of bytes.
type Size int64

// SizeAuto is the memory of a function that Mote sizes itself: "auto".
const SizeAuto Size = -1

// ParseSize parses a size such as "128MiB", "64mb", "1g" or "1048576".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if t == "auto" {
		return SizeAuto, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errs.E(errs.BadRequest, "invalid size %q (want e.g. 128MiB)", s)
	}
	return Size(n * mult), nil
}

func (s Size) String() string {
	switch {
	case s == SizeAuto:
		return "auto"
	case s >= 1<<30 && s%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", s>>30)
	case s >= 1<<20 && s%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", s>>20)
	case s >= 1<<10 && s%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", s>>10)
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText writes s as a human size.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts what ParseSize accepts.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	*s = v
	return err
}

// Duration is a time.Duration that reads and writes as "30s", "1m30s".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string such as "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return errs.E(errs.BadRequest, "invalid duration %q (want e.g. 30s)", b)
	}
	*d = Duration(v)
	return nil
}
