package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// The exports that name a module's convention.
const (
	exportHandle     = "mote_handle" // reactor: (metaLen, payloadLen i32) -> i64
	exportInitialize = "_initialize" // reactor (optional): () -> ()
	exportStart      = "_start"      // WASI command: () -> ()
)

// Runtime is the wasm runtime. It is safe for concurrent use.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	cache wazero.CompilationCache
	// rt runs instrumented modules (instrument.go), which stop themselves
	// when their stop global is set; rtSafe runs, with wazero's
	// close-on-context-done, the modules the rewriter cannot handle.
	rt, rtSafe wazero.Runtime
	// instrument is the rewriter (instrument.go); tests replace it to
	// exercise the fallback.
	instrument func([]byte) (instrumented, error)

	// provided maps each import module Mote provides to its functions'
	// definitions, for checking imports by name and signature.
	provided map[string]map[string]api.FunctionDefinition

	mu      sync.Mutex
	closed  bool
	modules map[*Module]struct{}

	watch *watchdog
}

// watchEvery is how often the watchdog looks at busy instances: a guest
// runs at most this long past its deadline or its caller's cancellation.
const watchEvery = time.Millisecond

// watchIdle is how many looks in a row must find an instance idle before
// the watchdog drops it (its next run enters the set again).
const watchIdle = 100

// watchdog stops guests at their deadline and when their caller's context
// ends. One goroutine per runtime looks at every instance that ran
// recently, each watchEvery, and sleeps while there is none. It replaces a
// timer and a registration on the caller's context per invocation: on the
// hot path, an invocation costs the watchdog nothing.
type watchdog struct {
	mu    sync.Mutex
	insts map[*instance]struct{}
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func newWatchdog() *watchdog {
	w := &watchdog{
		insts: make(map[*instance]struct{}),
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go w.loop()
	return w
}

// add watches i (which has just been marked watched).
func (w *watchdog) add(i *instance) {
	w.mu.Lock()
	w.insts[i] = struct{}{}
	first := len(w.insts) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func (w *watchdog) loop() {
	defer close(w.done)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		w.mu.Lock()
		empty := len(w.insts) == 0
		w.mu.Unlock()
		if empty {
			t.Stop()
			select {
			case <-w.kick:
				t.Reset(watchEvery)
			case <-w.stop:
				return
			}
		}
		select {
		case now := <-t.C:
			w.tick(now)
		case <-w.stop:
			return
		}
	}
}

// tick looks at every watched instance once.
func (w *watchdog) tick(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.insts {
		if i.check(now) {
			delete(w.insts, i)
		}
	}
}

func (w *watchdog) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

var _ runtime.Runtime = (*Runtime)(nil)

// New starts a wasm runtime.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	r := &Runtime{
		cfg:        cfg,
		log:        cfg.Logger,
		cache:      cache,
		instrument: instrument,
		provided:   make(map[string]map[string]api.FunctionDefinition),
		modules:    make(map[*Module]struct{}),
		watch:      newWatchdog(),
	}
	var err error
	if r.rt, err = newWazero(ctx, cache, false); err == nil {
		r.rtSafe, err = newWazero(ctx, cache, true)
	}
	if err != nil {
		r.closeWazero(ctx)
		r.watch.close()
		return nil, err
	}
	for _, name := range []string{wasi_snapshot_preview1.ModuleName, hostModule} {
		r.provided[name] = r.rt.Module(name).ExportedFunctionDefinitions()
	}
	return r, nil
}

// newWazero starts a wazero runtime with WASI and Mote's host functions.
// closeOnDone makes wazero stop guests whose context ends, at the price of
// a trampoline call at every loop iteration.
func newWazero(ctx context.Context, cache wazero.CompilationCache, closeOnDone bool) (wazero.Runtime, error) {
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCloseOnContextDone(closeOnDone)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiating WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm: instantiating host module: %w", err)
	}
	return rt, nil
}

func (r *Runtime) closeWazero(ctx context.Context) {
	for _, rt := range []wazero.Runtime{r.rt, r.rtSafe} {
		if rt != nil {
			_ = rt.Close(ctx)
		}
	}
	_ = r.cache.Close(ctx)
}

// Close closes every module and instance (stopping invocations in flight)
// and the runtime.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	mods := make([]*Module, 0, len(r.modules))
	for m := range r.modules {
		mods = append(mods, m)
	}
	r.mu.Unlock()

	// Instances first: closing the wazero runtime under a running guest
	// would unmap its memory (see linearMemory).
	for _, m := range mods {
		_ = m.Close(ctx)
	}
	r.watch.close()
	r.closeWazero(ctx)
	return nil
}

var _ runtime.Traits = (*Runtime)(nil)

// EnforcesDeadline reports true (runtime.Traits): the watchdog stops a
// guest at ev.Deadline and when its caller's context ends.
func (r *Runtime) EnforcesDeadline() bool { return true }

// HostOnlyEgress reports true (runtime.Traits): a guest has no file
// system and no network, what it writes to stderr (and a reactor to
// stdout) becomes log host calls, and a command's stdout is its result.
func (r *Runtime) HostOnlyEgress() bool { return true }

// convention is how a module is called.
type convention int

const (
	conventionReactor convention = iota + 1
	conventionCommand
)

func (c convention) String() string {
	if c == conventionReactor {
		return "reactor"
	}
	return "command"
}

// Load validates and compiles spec's module. A module that is not valid
// wasm, imports anything Mote does not provide, or follows neither guest
// convention fails with errs.BadRequest.
func (r *Runtime) Load(ctx context.Context, spec runtime.Spec) (runtime.Module, error) {
	if spec.Kind != "" && spec.Kind != runtime.KindWasm {
		return nil, errs.E(errs.BadRequest, "wasm: cannot load a %q function", spec.Kind)
	}
	if len(spec.Artifact) == 0 {
		return nil, errs.E(errs.BadRequest, "wasm: the module is empty")
	}
	limit := spec.MemoryLimit
	if limit == 0 {
		limit = r.cfg.DefaultMemoryLimit
	}
	if err := validMemoryLimit(limit); err != nil {
		return nil, errs.E(errs.BadRequest, "wasm: %v", err)
	}
	limit -= limit % pageSize
	timeout := spec.Timeout
	if timeout == 0 {
		timeout = r.cfg.DefaultTimeout
	}
	if err := validEnv(spec.Env); err != nil {
		return nil, err
	}
	if timeout < 0 {
		return nil, errs.E(errs.BadRequest, "wasm: timeout %v is negative", timeout)
	}

	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errs.E(errs.Unavailable, "wasm: runtime is closed")
	}

	compiled, rt, stopName, snap, err := r.compile(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errs.Wrap(errs.Cancelled, err, "wasm: loading was cancelled")
		}
		return nil, errs.Wrap(errs.BadRequest, err, "wasm: not a valid module: "+firstLine(err.Error()))
	}
	conv, err := r.check(compiled, spec.Artifact, uint64(limit))
	if err == nil && spec.CGI && conv != conventionCommand {
		err = errs.E(errs.BadRequest, `wasm: http "wagi" needs a WASI command (exporting %s); an SDK reactor uses http: true`, exportStart)
	}
	if err != nil {
		_ = compiled.Close(ctx)
		return nil, err
	}

	m := &Module{
		r:         r,
		rt:        rt,
		stopName:  stopName,
		spec:      spec,
		log:       r.log.With("fn", spec.Function, "version", spec.Version),
		compiled:  compiled,
		conv:      conv,
		limit:     uint64(limit),
		timeout:   timeout,
		instances: make(map[*instance]struct{}),
	}
	// A rewritten module has no data segments: every instance's memory
	// gets them from the allocator. Only reactors are captured.
	m.snap.segments = snap.segments
	m.snap.settled = make(chan struct{})
	if snap.bin != nil && conv == conventionReactor && spec.Env[runtime.EnvPreinit] != "off" {
		m.snap.on, m.snap.globals = true, snap.globals
	}
	m.start = m.startFunction()
	m.config = m.baseConfig()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = compiled.Close(ctx)
		return nil, errs.E(errs.Unavailable, "wasm: runtime is closed")
	}
	r.modules[m] = struct{}{}
	return m, nil
}

// compile compiles spec's module, instrumented for stopping (instrument.go)
// where the rewriter can handle it, and returns the wazero runtime it
// belongs to and the name of its stop global ("" if not instrumented).
func (r *Runtime) compile(ctx context.Context, spec runtime.Spec) (wazero.CompiledModule, wazero.Runtime, string, snapshotable, error) {
	ins, err := r.instrument(spec.Artifact)
	if err == nil {
		// An instrumented module that can be snapshotted exports its
		// mutable globals, which changes nothing else.
		if snap, serr := makeSnapshotable(ins.bin); serr == nil && !r.cfg.NoSnapshots {
			if compiled, cerr := compileModule(ctx, r.rt, snap.bin); cerr == nil {
				return compiled, r.rt, ins.stopName, snap, nil
			}
		}
		compiled, cerr := compileModule(ctx, r.rt, ins.bin)
		if cerr == nil {
			return compiled, r.rt, ins.stopName, snapshotable{}, nil
		}
		if ctx.Err() != nil {
			return nil, nil, "", snapshotable{}, cerr
		}
		// Either the module is invalid, which compiling the original
		// will say in wazero's words, or the rewriter broke it, which
		// must not fail the load.
		err = cerr
	}
	compiled, cerr := compileModule(ctx, r.rtSafe, spec.Artifact)
	if cerr == nil {
		r.log.Warn("wasm: module not instrumented; deadlines use wazero's slower close-on-context-done",
			"fn", spec.Function, "version", spec.Version, "reason", err)
	}
	return compiled, r.rtSafe, "", snapshotable{}, cerr
}

// compileModule compiles bin, turning a panic in wazero into an error:
// wazero v1.12.0's validator panics on some malformed modules (a call to
// a function index whose type index is out of range), and a module is
// untrusted input.
func compileModule(ctx context.Context, rt wazero.Runtime, bin []byte) (c wazero.CompiledModule, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("malformed module (wazero: %v)", p)
		}
	}()
	return rt.CompileModule(ctx, bin)
}

// check enforces what Mote accepts of a compiled module and returns its
// convention.
func (r *Runtime) check(c wazero.CompiledModule, bin []byte, limit uint64) (convention, error) {
	shape, err := scanModule(bin)
	if err != nil {
		return 0, errs.Wrap(errs.BadRequest, err, "wasm: not a valid module: "+err.Error())
	}
	for _, imp := range shape.imports {
		if imp.kind != importFunc {
			return 0, errs.E(errs.BadRequest, "wasm: module imports %s %s.%s, which Mote does not provide (only functions are)",
				imp.kindName(), imp.module, imp.name)
		}
	}
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		want, ok := r.provided[mod][name]
		if !ok {
			return 0, errs.E(errs.BadRequest, "wasm: module imports %s.%s, which Mote does not provide", mod, name)
		}
		if !sameSignature(f, want) {
			return 0, errs.E(errs.BadRequest, "wasm: module imports %s.%s as %s, but Mote provides %s",
				mod, name, signature(f), signature(want))
		}
	}
	if shape.minPages*pageSize > limit {
		return 0, errs.E(errs.BadRequest, "wasm: module needs %d MiB of memory at start, above its limit of %d MiB",
			shape.minPages*pageSize>>20, limit>>20)
	}

	exports := c.ExportedFunctions()
	handle, isReactor := exports[exportHandle]
	start, isCommand := exports[exportStart]
	switch {
	case isReactor && isCommand:
		return 0, errs.E(errs.BadRequest,
			"wasm: module exports both %s and %s; build an SDK function as a reactor (Go: -buildmode=c-shared)", exportHandle, exportStart)
	case isReactor:
		if !hasSignature(handle, []api.ValueType{i32, i32}, []api.ValueType{i64}) {
			return 0, errs.E(errs.BadRequest, "wasm: export %s is %s, want (i32, i32) -> (i64)", exportHandle, signature(handle))
		}
		if init, ok := exports[exportInitialize]; ok && !hasSignature(init, nil, nil) {
			return 0, errs.E(errs.BadRequest, "wasm: export %s is %s, want () -> ()", exportInitialize, signature(init))
		}
		if len(c.ExportedMemories()) == 0 {
			return 0, errs.E(errs.BadRequest, "wasm: a reactor must export its memory")
		}
		return conventionReactor, nil
	case isCommand:
		if !hasSignature(start, nil, nil) {
			return 0, errs.E(errs.BadRequest, "wasm: export %s is %s, want () -> ()", exportStart, signature(start))
		}
		return conventionCommand, nil
	}
	return 0, errs.E(errs.BadRequest,
		"wasm: module exports neither %s (a Mote SDK reactor) nor %s (a WASI command)", exportHandle, exportStart)
}

func sameSignature(a, b api.FunctionDefinition) bool {
	return hasSignature(a, b.ParamTypes(), b.ResultTypes())
}

func hasSignature(f api.FunctionDefinition, params, results []api.ValueType) bool {
	return slices.Equal(f.ParamTypes(), params) && slices.Equal(f.ResultTypes(), results)
}

// signature formats f's type as "(i32, i32) -> (i64)".
func signature(f api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return names(f.ParamTypes()) + " -> " + names(f.ResultTypes())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
