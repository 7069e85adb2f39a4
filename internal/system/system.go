// Package system wires Mote's parts into one platform: the store, the
// registry, the runtimes, the scheduler, logs and the invocation path. The
// HTTP gateway and the CLI's embedded mode talk to a *System; nothing else
// holds references across parts.
package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/baas"
	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/meter"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/routes"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/scheduler"
	"github.com/mote-run/mote/internal/secrets"
	"github.com/mote-run/mote/internal/store"
	"github.com/mote-run/mote/internal/telemetry"
	"github.com/mote-run/mote/internal/trigger"
)

// Config configures a System.
type Config struct {
	DataDir     string
	Logger      *slog.Logger
	MaxPayload  int64 // largest event accepted, bytes; default 6 MiB (Lambda's)
	MaxArtifact int64 // largest artifact accepted at deploy; default 256 MiB
	// Runtimes by kind. The system closes them on Shutdown.
	Runtimes map[runtime.Kind]runtime.Runtime
	// ReapEvery is how often idle instances are scaled down; default 1s.
	ReapEvery time.Duration
	// History is how long invocation records (call trees) are kept:
	// 0 is the flow engine's default (7 days), negative keeps them forever.
	History time.Duration
	// FunctionsDir is where process functions' directories are unpacked
	// (a cache of the artifacts); Open makes it 0700, as the sandbox
	// mounts each function's directory into the function's own root.
	// Default: DataDir/functions.
	FunctionsDir string
	// SecretsKeyFile holds the key that seals secrets at rest. Default:
	// DataDir/secrets.key, created 0600 on first start.
	SecretsKeyFile string
	// Telemetry receives metrics and traces (telemetry.go). Default:
	// metrics only. Its owner shuts it down.
	Telemetry *telemetry.Telemetry
	// TriggerClock is the schedules' and consumers' clock (default: the
	// system clock); OnTriggerFire is told as each triggered invocation
	// starts (benchmarks read it). See trigger.Config.
	TriggerClock  clock.Clock
	OnTriggerFire func(trigger.Fire)
	// Cluster, if set, makes this server a node of a cluster
	// (cluster.go): deploys, rollbacks and removals take effect on every
	// node, invocations that find no idle instance here may run on
	// another, async invocations queue in the cluster.
	Cluster Cluster
	// Logs configures the function log files; Logs.Dir defaults to
	// DataDir/logs.
	Logs logs.Config
}

// Defaults.
const (
	DefaultMaxPayload  = 6 << 20
	DefaultMaxArtifact = 256 << 20
)

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("system: DataDir is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.MaxArtifact <= 0 {
		c.MaxArtifact = DefaultMaxArtifact
	}
	if c.FunctionsDir == "" {
		c.FunctionsDir = filepath.Join(c.DataDir, "functions")
	}
	if c.SecretsKeyFile == "" {
		c.SecretsKeyFile = filepath.Join(c.DataDir, "secrets.key")
	}
	if c.Logs.Dir == "" {
		c.Logs.Dir = filepath.Join(c.DataDir, "logs")
	}
	if len(c.Runtimes) == 0 {
		return errors.New("system: no runtimes configured")
	}
	return c.defaultTelemetry()
}

// active is the version of a function that takes traffic, with its pool.
type active struct {
	version *activeVersion
	pool    *scheduler.Pool
	perCall bool // the runtime starts a new instance for every invocation
	policy  flow.Policy
	caller  baas.Caller // Function and permissions; Root set per invocation
}

// activeVersion is a registry version with what the hot path derives from
// it computed once.
type activeVersion struct {
	*registry.Version
	numberText string
}

// System is the running platform.
type System struct {
	cfg   Config
	log   *slog.Logger
	db    *store.DB
	lock  *os.File // DataDir/mote.lock, held while open
	reg   *registry.Registry
	sched *scheduler.Scheduler
	Logs  *logs.Store
	baas  *baas.Service
	flow  *flow.Engine
	usage *meter.Ledger
	keys  *auth.Keys
	audit *auth.Audit
	sec   *secrets.Store

	triggers  *trigger.Manager
	observeMu sync.Mutex                       // ObserveTriggered
	triggered atomic.Pointer[[]func(*Outcome)] // replaced whole under observeMu

	// redactors hold, per function with secrets, the values its log
	// lines are cleaned of (secrets.go): a map replaced whole under
	// redactMu, read with one atomic load per log line.
	redactMu  sync.Mutex
	redactors atomic.Pointer[map[string]*redactor]

	// fns is the active version of every function, by name: a map that
	// is never changed once published, replaced whole under fnsMu by
	// deploys and removals, so the invocation path reads it with one
	// atomic load (an RWMutex's read lock is a contended write to one
	// cache line from every core).
	fnsMu sync.Mutex
	fns   atomic.Pointer[map[string]*active]

	deployMu sync.Mutex // one deploy/rollback/remove at a time
	autoMem  autoMemory // limits of "memory": "auto" versions (automem.go)

	routes *routes.Table // HTTP routes to functions
	pins   pins          // versions invoked by number or alias (versions.go)
	hits   aliasHits     // invocations through aliases, by version

	draining atomic.Bool
	inflight inflight
}

// Open opens (or creates) the platform's data directory and loads every
// deployed function's current version.
func Open(ctx context.Context, cfg Config) (*System, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The data directory holds every bucket's values (Pebble's files), the
	// artifacts, and the functions' code and configs: it is Mote's alone.
	// One that an earlier version made 0755 is closed here too. Functions
	// reach their own code through the sandbox, which mounts it into
	// their root.
	for _, d := range []string{cfg.DataDir, cfg.FunctionsDir} {
		if err := privateDir(d); err != nil {
			return nil, err
		}
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "db"))
	if err != nil {
		lock.Close()
		return nil, err
	}
	reg, err := registry.Open(db, filepath.Join(cfg.DataDir, "artifacts"))
	if err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}
	sec, err := secrets.Open(secrets.Config{DB: db, KeyFile: cfg.SecretsKeyFile})
	if err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}
	if cfg.Logs.Logger == nil {
		cfg.Logs.Logger = cfg.Logger.With("part", "logs")
	}
	fnLogs, err := logs.Open(cfg.Logs)
	if err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}
	s := &System{
		cfg:   cfg,
		lock:  lock,
		log:   cfg.Logger,
		db:    db,
		reg:   reg,
		sec:   sec,
		sched: scheduler.New(scheduler.Config{Logger: cfg.Logger, ReapEvery: cfg.ReapEvery, OnStart: cfg.Telemetry.Metrics().InstanceStarted}),
		Logs:  fnLogs,
	}
	s.fns.Store(&map[string]*active{})
	s.pins.m.Store(&map[string]*active{})
	s.redactors.Store(&map[string]*redactor{})
	if err := s.openServices(); err != nil {
		s.Shutdown(ctx)
		return nil, err
	}
	if err := s.openAuth(); err != nil {
		s.Shutdown(ctx)
		return nil, err
	}
	fns, err := reg.List()
	if err != nil {
		s.Shutdown(ctx)
		return nil, err
	}
	for _, f := range fns {
		if f.Current == 0 {
			continue
		}
		v, err := reg.Version(f.Name, f.Current)
		if err == nil {
			err = s.activate(ctx, v, false)
		}
		if err != nil {
			// One broken function must not keep the platform down.
			s.log.Error("loading function", "fn", f.Name, "err", s.redactErr(f.Name, err))
		}
	}
	// Queued async invocations resume once their functions are loaded.
	if err := s.flow.Start(); err != nil {
		s.Shutdown(ctx)
		return nil, err
	}
	if err := s.openTriggers(); err != nil {
		s.Shutdown(ctx)
		return nil, err
	}
	return s, nil
}

// privateDir makes dir, and its parents that do not exist, with mode 0700,
// and sets an existing dir's to 0700.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("system: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("system: %w", err)
	}
	return nil
}

// openServices starts the BaaS layer, the usage ledger and the flow engine.
func (s *System) openServices() error {
	var err error
	if s.baas, err = baas.New(baas.Config{DB: s.db, Dir: s.cfg.DataDir, Logger: s.log.With("part", "baas")}); err != nil {
		return err
	}
	if s.usage, err = meter.NewLedger(s.db, meter.LedgerConfig{Logger: s.log.With("part", "ledger")}); err != nil {
		return err
	}
	s.flow, err = flow.New(flow.Config{
		Runner:     s,
		Functions:  s,
		DB:         s.db,
		Ledger:     s.usage,
		Fallback:   s.hostFor,
		OnRootDone: s.rootDone,
		OnAttempt:  s.report,
		Retention:  s.cfg.History,
		Logger:     s.log.With("part", "flow"),
		Observer:   s.cfg.Telemetry.Observer(),
		Tracer:     s.cfg.Telemetry.Tracer(),
	})
	return err
}

// openAuth loads the API keys and opens the audit log.
func (s *System) openAuth() error {
	var err error
	if s.keys, err = auth.OpenKeys(s.db, auth.KeysConfig{}); err != nil {
		return err
	}
	if s.routes, err = routes.Open(s.db); err != nil {
		return err
	}
	s.audit, err = auth.OpenAudit(s.db, auth.AuditConfig{Logger: s.log.With("part", "audit")})
	return err
}

// Routes returns the HTTP routes to functions.
func (s *System) Routes() *routes.Table { return s.routes }

// Keys returns the API keys.
func (s *System) Keys() *auth.Keys { return s.keys }

// Audit returns the audit log of management actions: every part that
// changes what the platform runs or who may reach it records there.
func (s *System) Audit() *auth.Audit { return s.audit }

// Flow returns the flow engine (call trees, dead letters, usage routes).
func (s *System) Flow() *flow.Engine { return s.flow }

// BaaS returns the storage and coordination service.
func (s *System) BaaS() *baas.Service { return s.baas }

func (s *System) rootDone(root string) {
	if err := s.baas.EndScope(root); err != nil {
		s.log.Warn("ending ephemeral scope", "root", root, "err", err)
	}
}

// Run runs one attempt of an invocation on a warm instance of fn's current
// version (flow.Runner: the flow engine calls it for every invocation).
func (s *System) Run(ctx context.Context, fn string, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, string, error) {
	a := s.lookupRef(fn)
	if a == nil {
		a = s.syncMissing(ctx, fn)
	}
	if a == nil {
		return runtime.Result{}, runtime.Usage{}, false, "", errs.E(errs.NotFound, "function %q not found", fn)
	}
	var res runtime.Result
	var u runtime.Usage
	var cold bool
	var err error
	if c := s.cfg.Cluster; c != nil {
		res, u, cold, err = s.runRouted(ctx, c, fn, a, ev)
	} else {
		res, u, cold, err = a.pool.Invoke(ctx, ev)
	}
	if err != nil {
		res, u, cold, err = s.retryOutOfMemory(ctx, a, ev, res, u, cold, err)
	}
	if err != nil {
		err = s.redactErr(fn, err)
	}
	return res, u, cold, a.version.numberText, err
}

// Policy returns fn's flow settings from its current version's config
// (flow.Functions).
func (s *System) Policy(fn string) (flow.Policy, error) {
	a := s.lookupRef(fn)
	if a == nil && s.cfg.Cluster != nil {
		// The flow engine asks before every invocation; on a cluster a
		// function deployed elsewhere may not be installed here yet.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		a = s.syncMissing(ctx, fn)
		cancel()
	}
	if a == nil {
		return flow.Policy{}, errs.E(errs.NotFound, "function %q not found", fn)
	}
	return a.policy, nil
}

// MayInvoke reports whether caller's current version grants invoking
// callee (flow.Grants): permissions.invoke in its config. A function with
// no list may invoke nothing.
func (s *System) MayInvoke(caller, callee string) error {
	a := s.lookupRef(caller)
	if a != nil && a.version.Config.Permissions.MayInvoke(registry.BaseName(callee)) {
		return nil
	}
	return errs.E(errs.Forbidden, "function %q may not invoke %q: add it to permissions.invoke in %s's config", caller, callee, caller)
}

var _ flow.Grants = (*System)(nil)

// DB returns the platform's store (for the parts that keep data there).
func (s *System) DB() *store.DB { return s.db }

// Registry returns the function registry.
func (s *System) Registry() *registry.Registry { return s.reg }

// Scheduler returns the scheduler.
func (s *System) Scheduler() *scheduler.Scheduler { return s.sched }

// Config returns the validated configuration.
func (s *System) Config() Config { return s.cfg }

// Deploy stores a new version of fn from the artifact and config, loads
// (validates and compiles) it, warms its pool, then points fn at it. On any
// failure nothing changes: the old version keeps serving.
func (s *System) Deploy(ctx context.Context, name string, cfg registry.Config, artifact io.Reader) (*registry.Version, error) {
	if err := registry.ValidName(name); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rt, ok := s.cfg.Runtimes[cfg.Runtime]
	if !ok {
		return nil, errs.E(errs.BadRequest, "runtime %q is not available on this server", cfg.Runtime)
	}
	sum, size, err := s.reg.PutArtifact(artifact, s.cfg.MaxArtifact)
	if err != nil {
		return nil, err
	}
	v, wait, err := s.deployLocked(ctx, rt, name, cfg, sum, size)
	return v, waitCluster(v, wait, err)
}

// deployLocked is Deploy under deployMu; on a node of a cluster it
// returns how to wait for the other nodes, which Deploy does unlocked.
func (s *System) deployLocked(ctx context.Context, rt runtime.Runtime, name string, cfg registry.Config, sum string, size int64) (*registry.Version, func() []string, error) {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	// Validate and compile before anything is recorded, as the version
	// this deploy will make (deployMu keeps the number free): the module
	// tells the function its version (AWS_LAMBDA_FUNCTION_VERSION,
	// MOTE_VERSION), which read "0" when it was loaded unnumbered.
	next := 1
	if f, err := s.reg.Function(name); err == nil {
		next = f.Latest + 1
	}
	probe := &registry.Version{Function: name, Number: next, Artifact: sum, Size: size, Config: cfg}
	mod, err := s.load(ctx, rt, probe)
	if err != nil {
		s.reg.DropUnused(sum)
		return nil, nil, err
	}
	if s.cfg.Cluster != nil {
		return s.deployClustered(ctx, name, cfg, sum, size, mod)
	}
	v, err := s.reg.AddVersion(name, sum, size, cfg, false)
	if err != nil {
		mod.Close(ctx)
		return nil, nil, err
	}
	if err := s.activateModule(ctx, v, mod, true); err != nil {
		// Nothing of a version that never took traffic is kept: no
		// "version 0 of 1" left behind.
		if derr := s.reg.DropVersion(name, v.Number); derr != nil {
			s.log.Warn("dropping a version that failed to start", "fn", name, "version", v.Number, "err", derr)
		}
		return nil, nil, s.redactErr(name, err)
	}
	return v, nil, nil
}

// Rollback points fn at an earlier version n (0: the one before current).
func (s *System) Rollback(ctx context.Context, name string, n int) (*registry.Version, error) {
	v, wait, err := s.rollbackLocked(ctx, name, n)
	return v, waitCluster(v, wait, err)
}

func (s *System) rollbackLocked(ctx context.Context, name string, n int) (*registry.Version, func() []string, error) {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	f, err := s.reg.Function(name)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		n = f.Current - 1
		if n < 1 {
			return nil, nil, errs.E(errs.Conflict, "function %q has no version before %d", name, f.Current)
		}
	}
	v, err := s.reg.Version(name, n)
	if err != nil {
		return nil, nil, err
	}
	prev := s.lookup(name)
	if err := s.activate(ctx, v, true); err != nil {
		return nil, nil, err
	}
	if c := s.cfg.Cluster; c != nil {
		wait, err := c.Publish(ctx, name, v.Number)
		if err != nil {
			s.undoLocal(ctx, name, prev)
			return nil, nil, err
		}
		return v, wait, nil
	}
	return v, nil, nil
}

// Remove deletes fn, its versions and their instances.
func (s *System) Remove(ctx context.Context, name string) error {
	s.deployMu.Lock()
	err := s.removeLocked(ctx, name)
	s.deployMu.Unlock()
	if c := s.cfg.Cluster; c != nil && err == nil {
		wait, err := c.PublishRemove(ctx, name)
		return waitCluster(nil, wait, err)
	}
	return err
}

func (s *System) removeLocked(ctx context.Context, name string) error {
	vs, err := s.reg.Versions(name)
	if err != nil {
		return err
	}
	s.setActive(name, nil)
	s.unpin(name)
	for _, v := range vs {
		s.sched.Remove(ctx, v.Key())
	}
	s.Logs.Drop(name)
	s.baas.DropCache(name)
	s.forget(name)
	return s.reg.Delete(name)
}

// Function describes a function and its versions.
type Function struct {
	registry.Function
	Versions []*registry.Version `json:"versions,omitempty"`
	Pool     *scheduler.Stats    `json:"pool,omitempty"`
	// MemoryLimit is the current version's memory limit in bytes: the
	// one Mote chose under "memory": "auto".
	MemoryLimit int64             `json:"memory_limit,omitempty"`
	Aliases     []*registry.Alias `json:"aliases,omitempty"`
	// AliasCounts is the invocations through each alias by version since
	// the server started: a weighted alias's split as served.
	AliasCounts []AliasCount `json:"alias_counts,omitempty"`
}

// Describe returns fn with its versions and its current pool's state.
func (s *System) Describe(name string) (*Function, error) {
	f, err := s.reg.Function(name)
	if err != nil {
		return nil, err
	}
	vs, err := s.reg.Versions(name)
	if err != nil {
		return nil, err
	}
	as, err := s.reg.Aliases(name)
	if err != nil {
		return nil, err
	}
	out := &Function{Function: *f, Versions: vs, Aliases: as, AliasCounts: s.AliasCounts(name)}
	if a := s.lookup(name); a != nil {
		st := a.pool.Stats()
		out.Pool = &st
		out.MemoryLimit = s.memoryLimit(a.version.Version)
	}
	return out, nil
}

// List returns every function with its current pool's state.
func (s *System) List() ([]*Function, error) {
	fs, err := s.reg.List()
	if err != nil {
		return nil, err
	}
	out := make([]*Function, 0, len(fs))
	for _, f := range fs {
		x := &Function{Function: *f}
		if a := s.lookup(f.Name); a != nil {
			st := a.pool.Stats()
			x.Pool = &st
		}
		out = append(out, x)
	}
	return out, nil
}

func (s *System) lookup(name string) *active {
	return (*s.fns.Load())[name]
}

// setActive makes a fn's active version (nil: none) and returns the one
// it replaces.
func (s *System) setActive(fn string, a *active) (old *active) {
	s.fnsMu.Lock()
	defer s.fnsMu.Unlock()
	cur := *s.fns.Load()
	next := make(map[string]*active, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	old = next[fn]
	if a == nil {
		delete(next, fn)
	} else {
		next[fn] = a
	}
	s.fns.Store(&next)
	return old
}

// activate loads v and makes it current.
func (s *System) activate(ctx context.Context, v *registry.Version, record bool) error {
	// A version that served before (a rollback) may still have its pool,
	// retiring: take it back rather than let the reaper drop it under the
	// traffic now sent to it, and warm it as a new one would be.
	if p := s.sched.Revive(v.Key()); p != nil {
		if err := p.Warm(ctx, max(v.Config.MinWarm, 1)); err != nil {
			return err
		}
		return s.switchTo(v, p, record)
	}
	rt, ok := s.cfg.Runtimes[v.Config.Runtime]
	if !ok {
		return errs.E(errs.Unavailable, "runtime %q is not available on this server", v.Config.Runtime)
	}
	mod, err := s.load(ctx, rt, v)
	if err != nil {
		return err
	}
	return s.activateModule(ctx, v, mod, record)
}

// activateModule creates v's pool over mod, warms it, and switches traffic.
func (s *System) activateModule(ctx context.Context, v *registry.Version, mod runtime.Module, record bool) error {
	c := v.Config
	pool, created, err := s.sched.Add(v.Key(), mod, scheduler.PoolConfig{
		MinWarm:      c.MinWarm,
		MaxInstances: c.MaxInstances,
		MaxQueue:     c.MaxQueue,
		IdleTimeout:  time.Duration(c.IdleTimeout),
		// Synchronous recursion holds an instance per level: room for as
		// many levels as the flow engine's depth limit allows.
		NestedHeadroom: flow.DefaultMaxDepth,
	})
	if err != nil {
		mod.Close(ctx)
		return err
	}
	if !created {
		mod.Close(ctx)
	}
	// A new version is warmed before it takes traffic: at least one
	// instance, so a start failure fails the deploy instead of users.
	if err := pool.Warm(ctx, max(c.MinWarm, 1)); err != nil {
		s.sched.Remove(ctx, v.Key())
		return err
	}
	return s.switchTo(v, pool, record)
}

func (s *System) switchTo(v *registry.Version, pool *scheduler.Pool, record bool) error {
	if record {
		if _, err := s.reg.SetCurrent(v.Function, v.Number); err != nil {
			return err
		}
	}
	a := s.newActive(v, pool)
	old := s.setActive(v.Function, a)
	if old != nil && old.pool != pool && !s.pinned(old.version.Key()) {
		s.sched.Retire(old.version.Key())
	}
	return nil
}

// newActive is v, served by pool, with what the invocation path derives
// from its config.
func (s *System) newActive(v *registry.Version, pool *scheduler.Pool) *active {
	c := v.Config
	var retryOn []errs.Code
	for _, code := range c.Retry.On {
		retryOn = append(retryOn, errs.Code(code))
	}
	a := &active{
		version: &activeVersion{Version: v, numberText: strconv.Itoa(v.Number)},
		pool:    pool,
		perCall: isPerCall(pool.Module()),
		policy: flow.Policy{
			MaxAttempts: c.Retry.Attempts,
			Backoff:     flow.Backoff{Base: time.Duration(c.Retry.Backoff)},
			RetryOn:     retryOn,
			OnSuccess:   c.OnSuccess,
			OnFailure:   c.OnFailure,
			Concurrency: c.Concurrency,
			Timeout:     time.Duration(c.Timeout),
			Memory:      s.memoryLimit(v),
		},
		caller: baas.Caller{
			Function:   v.Function,
			Perms:      baas.Permissions{Read: c.Permissions.Read, Write: c.Permissions.Write},
			CacheBytes: int64(c.Cache),
		},
	}
	// What the runtime guarantees (runtime.Traits) spares the flow
	// engine work: a timed context per attempt, listing an invocation
	// whose id nobody can know yet.
	if t, ok := s.cfg.Runtimes[c.Runtime].(runtime.Traits); ok {
		a.policy.RunnerDeadline = t.EnforcesDeadline()
		a.policy.LazyListing = t.HostOnlyEgress()
	}
	return a
}

// load turns a stored version into a runtime module.
func (s *System) load(ctx context.Context, rt runtime.Runtime, v *registry.Version) (runtime.Module, error) {
	env, err := s.env(v)
	if err != nil {
		return nil, err
	}
	spec := runtime.Spec{
		Function:    v.Function,
		Version:     fmt.Sprint(v.Number),
		Kind:        v.Config.Runtime,
		Handler:     v.Config.Handler,
		Env:         env,
		MemoryLimit: s.memoryLimit(v),
		Timeout:     time.Duration(v.Config.Timeout),
		Network:     v.Config.Network,
		CacheBudget: int64(v.Config.Cache),
		CGI:         v.Config.HTTP == registry.HTTPWAGI,
		// Output between invocations is the function's, not Mote's: its
		// log, with no invocation id (and, from the process runtime,
		// rate-limited per instance).
		Output: func(stream, line string) {
			s.Logs.Add(logs.Line{Function: v.Function, Stream: stream, Text: s.redact(v.Function, line)})
		},
	}
	switch v.Config.Runtime {
	case runtime.KindWasm:
		b, err := s.reg.ReadArtifact(v.Artifact)
		if err != nil {
			return nil, err
		}
		spec.Artifact = b
	case runtime.KindProcess:
		dir, err := s.reg.Unpack(v.Artifact, s.cfg.FunctionsDir)
		if err != nil {
			return nil, err
		}
		spec.Dir = dir
	}
	return rt.Load(ctx, spec)
}

// maxPrewarm bounds how many functions one invocation's declared call
// graph may prewarm.
const maxPrewarm = 64

// prewarmCalls starts an instance of every function fn declares it calls
// ("calls" in its config), and of theirs, whose pool has none ready: a
// chain answers its first call without a cold start at every link. A
// function without declared calls costs a map lookup.
func (s *System) prewarmCalls(fn string) {
	a := s.lookup(fn)
	if a == nil || len(a.version.Config.Calls) == 0 {
		return
	}
	seen := map[string]bool{fn: true}
	queue := append([]string(nil), a.version.Config.Calls...)
	for len(queue) > 0 && len(seen) < maxPrewarm {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		if ca := s.lookup(c); ca != nil {
			ca.pool.Prewarm()
			queue = append(queue, ca.version.Config.Calls...)
		}
	}
}

// isPerCall reports whether mod starts a new instance for every
// invocation (runtime.InstancePerCall).
func isPerCall(mod runtime.Module) bool {
	p, ok := mod.(runtime.InstancePerCall)
	return ok && p.InstancePerCall()
}

// Invocation is one request to run a function.
type Invocation struct {
	Function string // a name, or name@N as Resolve returns it in Target.Key
	Payload  []byte
	Async    bool // queue durably and return at once with the id
	// Envelope: Payload wraps a request body the gateway held to
	// MaxPayload (an HTTP function's event), which may take up to a
	// third more (base64) and the request's header besides.
	Envelope bool
}

// Outcome is what an invocation produced.
type Outcome struct {
	ID       string
	Function string
	Version  int
	Queued   bool // an async invocation, accepted
	Output   []byte
	Usage    runtime.Usage
	BilledMs int64
	Cold     bool
	// PerCall: the function's runtime starts a new instance of its code
	// for every invocation (a WASI command), so no invocation is warm.
	PerCall  bool
	Attempts int
	Err      error // the function's failure (an *errs.Error), if any
}

// Invoke runs a function as a root invocation, through the flow engine.
// A returned error means the invocation could not run (unknown function,
// overload, too large); a failure of the function itself is in
// Outcome.Err.
func (s *System) Invoke(ctx context.Context, inv Invocation) (*Outcome, error) {
	// Counted before the check: Shutdown, which sets draining and then
	// waits for the count, either sees this invocation or stops it here.
	n := s.inflight.add()
	defer n.Add(-1)
	if s.draining.Load() {
		return nil, errs.E(errs.Unavailable, "server is shutting down")
	}
	if limit := s.payloadLimit(inv.Envelope); int64(len(inv.Payload)) > limit {
		return nil, errs.E(errs.PayloadTooLarge, "event of %d bytes is over the %d-byte limit", len(inv.Payload), limit)
	}
	if c := s.cfg.Cluster; c != nil && inv.Async {
		if s.lookup(inv.Function) == nil && s.syncMissing(ctx, inv.Function) == nil {
			return nil, errs.E(errs.NotFound, "function %q not found", inv.Function)
		}
		id, err := c.Enqueue(ctx, inv.Function, inv.Payload)
		if err != nil {
			return nil, err
		}
		return &Outcome{ID: id, Function: inv.Function, Queued: true}, nil
	}
	s.prewarmCalls(inv.Function)
	fo, err := s.flow.Invoke(ctx, flow.Request{Function: inv.Function, Payload: inv.Payload, Async: inv.Async})
	if fo == nil {
		if err == nil {
			err = errs.E(errs.Internal, "flow engine returned no outcome")
		}
		return nil, err
	}
	out := &Outcome{
		ID:       fo.ID,
		Function: registry.BaseName(inv.Function),
		Queued:   inv.Async,
		Output:   fo.Output,
		Usage:    runtime.Usage{CPU: fo.CPU, Wall: fo.Wall},
		BilledMs: fo.BilledMs,
		Cold:     fo.Cold,
		Attempts: fo.Attempts,
	}
	out.Version, _ = strconv.Atoi(fo.Version)
	if a := s.lookup(inv.Function); a != nil && a.version.Number == out.Version {
		out.PerCall = a.perCall
	}
	if err != nil {
		switch errs.CodeOf(err) {
		case errs.Overloaded, errs.Unavailable, errs.NotFound, errs.LimitExceeded:
			if fo.Attempts == 0 {
				return nil, err
			}
		}
		out.Err = err
	}
	return out, nil
}

// hostFor returns the host surface of one invocation for every op that is
// not a flow op (the flow engine serves invoke, invoke_async, await and
// map itself): log, and the BaaS ops under the function's permissions.
func (s *System) hostFor(ref flow.Ref) host.Host {
	a := s.lookupRef(ref.Function)
	var caller baas.Caller
	if a != nil {
		caller = a.caller
	}
	fn := registry.BaseName(ref.Function)
	caller.Function, caller.Root = fn, ref.Root
	return host.Func(func(ctx context.Context, op string, args [][]byte) ([]byte, error) {
		if op == host.OpLog {
			if len(args) != 1 {
				return nil, errs.E(errs.BadRequest, "log takes one argument")
			}
			s.Logs.Add(logs.Line{Function: fn, Invocation: ref.ID, Stream: "log", Text: s.redact(ref.Function, string(args[0]))})
			return nil, nil
		}
		return s.baas.Call(ctx, caller, op, args)
	})
}

// Shutdown stops taking invocations, waits for in-flight ones (until ctx
// ends), then closes everything.
func (s *System) Shutdown(ctx context.Context) error {
	// Triggers stop first: a run they cancel stays armed or claimed and
	// is resumed at the next start, where one refused as draining would
	// be recorded as failed.
	if s.triggers != nil {
		s.triggers.Close()
	}
	s.draining.Store(true)
	if err := s.inflight.wait(ctx); err != nil {
		s.log.Warn("shutdown: in-flight invocations did not finish in time")
	}
	// Order: stop the async workers (they need pools), then the pools and
	// runtimes, then what functions called into, then the store.
	if s.flow != nil {
		s.flow.Close()
	}
	s.sched.Close(ctx)
	for _, rt := range s.cfg.Runtimes {
		rt.Close(ctx)
	}
	if s.baas != nil {
		s.baas.Close()
	}
	if s.usage != nil {
		s.usage.Close()
	}
	s.Logs.Close()
	err := s.db.Close()
	s.lock.Close() // last: the data directory is free once the store is shut
	return err
}
