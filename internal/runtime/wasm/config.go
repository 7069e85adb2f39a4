package wasm

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Runtime. Zero fields take the defaults below.
type Config struct {
	// CacheDir holds compiled modules, so that a restarted platform does
	// not recompile them (the Go SDK test guest: about 1 s to compile,
	// 0.1 s from the cache; BenchmarkLoadGoReactor). wazero keys an entry
	// by the module's bytes (after Mote's instrumentation), close-on-
	// context-done and the CPU's features, and checks its own version.
	// Empty keeps compiled code in memory only.
	CacheDir string
	// DefaultMemoryLimit caps a function's linear memory when its Spec sets
	// no limit. Bytes, at most 4 GiB (wasm32's address space).
	DefaultMemoryLimit int64
	// DefaultTimeout bounds an invocation when its Spec sets no timeout.
	DefaultTimeout time.Duration
	// MaxOutput bounds a result (Lambda's synchronous limit by default).
	MaxOutput int
	// Logger receives the runtime's own events and guest output written
	// outside any invocation (while a reactor initialises).
	Logger *slog.Logger
	// NoSnapshots starts every reactor instance by running its
	// initialisation, instead of from a snapshot of the first one
	// (snapshot.go): the start path of before, for comparison.
	NoSnapshots bool
}

// Defaults for Config.
const (
	DefaultMemoryLimit = 128 << 20
	DefaultTimeout     = 30 * time.Second
	DefaultMaxOutput   = 6 << 20

	// maxMemoryLimit is the whole 32-bit address space.
	maxMemoryLimit = 4 << 30
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.DefaultMemoryLimit == 0 {
		c.DefaultMemoryLimit = DefaultMemoryLimit
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.MaxOutput == 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports what is wrong with c once defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validMemoryLimit(c.DefaultMemoryLimit); err != nil {
		errs = append(errs, fmt.Errorf("DefaultMemoryLimit: %w", err))
	}
	if c.DefaultTimeout < 0 {
		errs = append(errs, fmt.Errorf("DefaultTimeout %v is negative", c.DefaultTimeout))
	}
	if c.MaxOutput < 0 {
		errs = append(errs, fmt.Errorf("MaxOutput %d is negative", c.MaxOutput))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wasm: invalid config: %w", err)
	}
	return nil
}

// validMemoryLimit checks a memory limit in bytes: at least one wasm page
// (64 KiB) and at most 4 GiB.
func validMemoryLimit(n int64) error {
	if n < pageSize || n > maxMemoryLimit {
		return fmt.Errorf("memory limit %d bytes is outside [64 KiB, 4 GiB]", n)
	}
	return nil
}

const pageSize = 64 << 10
