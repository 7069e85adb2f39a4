package wasm

import (
	"context"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// Module is a compiled function version. It is safe for concurrent use.
type Module struct {
	r        *Runtime
	rt       wazero.Runtime // r.rt if the module is instrumented, else r.rtSafe
	stopName string         // the export name of its stop global; "" if not instrumented
	start    string         // the start function (startFunction)
	spec     runtime.Spec
	log      *slog.Logger
	compiled wazero.CompiledModule
	conv     convention
	limit    uint64 // memory limit in bytes, a whole number of pages
	timeout  time.Duration
	config   wazero.ModuleConfig // shared by every instance; With* copies

	mu        sync.Mutex
	closed    bool
	instances map[*instance]struct{}

	snap snapState // pre-initialised instances (snapshot.go)
}

var (
	_ runtime.Module          = (*Module)(nil)
	_ runtime.InstancePerCall = (*Module)(nil)
)

// InstancePerCall reports whether every invocation instantiates the
// module afresh: a WASI command's do.
func (m *Module) InstancePerCall() bool { return m.conv == conventionCommand }

// Reserved environment variables; spec.Env cannot override them.
const (
	envFunction   = "MOTE_FUNCTION"
	envVersion    = "MOTE_VERSION"
	envInvocation = "MOTE_INVOCATION_ID"
	envDeadline   = "MOTE_DEADLINE_MS"
)

// baseConfig is the module configuration every instance starts from: real
// clocks and randomness, the environment, no file system, no network (WASI
// preview 1 in wazero has no sockets unless asked for).
func (m *Module) baseConfig() wazero.ModuleConfig {
	c := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module may live at once
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithEnv(envFunction, m.spec.Function).
		WithEnv(envVersion, m.spec.Version)
	keys := make([]string, 0, len(m.spec.Env))
	for k := range m.spec.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !reservedEnv(k) {
			c = c.WithEnv(k, m.spec.Env[k])
		}
	}
	if m.stopName != "" {
		// The instance runs its start function itself, once its stop
		// global can be reached (instance.instantiate).
		return c.WithStartFunctions()
	}
	if m.start != "" {
		return c.WithStartFunctions(m.start)
	}
	return c.WithStartFunctions()
}

// startFunction is the export run when an instance starts: a command's
// _start, a reactor's _initialize if it has one.
func (m *Module) startFunction() string {
	if m.conv == conventionCommand {
		return exportStart
	}
	if _, ok := m.compiled.ExportedFunctions()[exportInitialize]; ok {
		return exportInitialize
	}
	return ""
}

func reservedEnv(k string) bool {
	switch k {
	case envFunction, envVersion, envInvocation, envDeadline:
		return true
	}
	return false
}

// validEnv checks environment variable names: WASI passes "k=v" strings.
func validEnv(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return errs.E(errs.BadRequest, "wasm: invalid environment variable %q", k)
		}
	}
	return nil
}

// NewInstance starts an instance. A reactor is instantiated and
// initialised here (a cold start: milliseconds for a Go module); a command
// is only prepared, since every invocation instantiates it afresh.
func (m *Module) NewInstance(ctx context.Context) (runtime.Instance, error) {
	i := &instance{m: m, g: newGuest(m.spec.Function, m.log, m.limit)}
	i.g.alloc.segments = m.snap.segments // a snapshotable module's data
	i.reusable.Store(true)
	// The instance joins the module before its guest runs, and holds mu
	// while it initialises, as Invoke does: Close (the module's or the
	// runtime's) then stops the initialisation and waits for it. Joining
	// after would let the runtime's Close unmap the memory of a guest
	// still in _initialize, which kills the process.
	i.mu.Lock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		i.mu.Unlock()
		return nil, errs.E(errs.Unavailable, "wasm: module is closed")
	}
	m.instances[i] = struct{}{}
	m.mu.Unlock()
	var err error
	if m.conv == conventionReactor {
		err = m.startReactor(ctx, i)
	}
	i.mu.Unlock()

	i.cmu.Lock()
	closed := i.closed
	i.cmu.Unlock()
	if closed { // Close stopped the initialisation or came right after it
		return nil, errs.E(errs.Unavailable, "wasm: module is closed")
	}
	if err != nil {
		_ = i.Close(ctx)
		return nil, err
	}
	return i, nil
}

// Close closes the module's instances, stopping invocations in flight, and
// releases its compiled code.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	insts := make([]*instance, 0, len(m.instances))
	for i := range m.instances {
		insts = append(insts, i)
	}
	m.mu.Unlock()

	for _, i := range insts {
		_ = i.Close(ctx)
	}
	m.closeSnapshot()
	err := m.compiled.Close(ctx)
	m.r.mu.Lock()
	delete(m.r.modules, m)
	m.r.mu.Unlock()
	return err
}

// startReactor starts a reactor's instance i: from the module's snapshot
// once there is one, else by initialising it, and the first instance
// initialised becomes the snapshot.
func (m *Module) startReactor(ctx context.Context, i *instance) error {
	if s := m.snap.ready(); s != nil {
		return i.restore(ctx, s)
	}
	if !m.snap.on {
		return i.initReactor(ctx)
	}
	m.snap.mu.Lock()
	first := !m.snap.taken
	m.snap.taken = true
	m.snap.mu.Unlock()
	if !first {
		return i.initReactor(ctx)
	}
	var out []initLine
	i.g.record = &out
	err := i.initReactor(ctx)
	i.g.record = nil
	if err == nil {
		m.capture(i, out)
	} else {
		m.snap.mu.Lock()
		m.snap.taken = false // the next instance to initialise tries again
		m.snap.mu.Unlock()
	}
	return err
}

func (m *Module) forget(i *instance) {
	m.mu.Lock()
	delete(m.instances, i)
	m.mu.Unlock()
}
