package system

import (
	"context"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/scheduler"
)

// Versions and aliases. A function reference is "name" (the current
// version), "name@N" (version N, pinned) or "name:alias". Resolve turns
// one into a Target before the flow engine sees it: an alias's weighted
// choice is made once, there, and the flow engine runs "name@N" for
// anything but the current version. A pinned version that is not current
// gets a pool of its own (pins), kept while the function lives, with
// min_warm 0 so that its instances age out when unused.

// Target is a function reference resolved to the version that runs.
type Target struct {
	Function string // the function's name
	Version  int    // the version that runs
	Alias    string // the alias it came through, if any
	// Key is what the flow engine runs: Function for the current
	// version, Function@Version for a pinned one.
	Key  string
	HTTP registry.HTTPMode
}

// pins holds the pools of versions invoked by number or through an alias
// while not current, by key name@N.
type pins struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*active] // replaced whole under mu
}

// aliasHits counts invocations through each alias by the version they ran.
type aliasHits struct {
	m sync.Map // "fn:alias@N" -> *atomic.Int64
}

// Resolve resolves a function reference. An unknown function, version or
// alias is errs.NotFound.
func (s *System) Resolve(ctx context.Context, ref string) (Target, error) {
	name, n, alias, err := registry.ParseRef(ref)
	if err != nil {
		return Target{}, err
	}
	if alias != "" {
		a, err := s.reg.Alias(name, alias)
		if err != nil {
			return Target{}, err
		}
		n = a.Version
		if w := a.Weight; w != nil && rand.Float64()*100 < w.Percent {
			n = w.Version
		}
		s.countAlias(name, alias, n)
	}
	cur := s.lookup(name)
	if cur == nil {
		cur = s.syncMissing(ctx, name)
	}
	if n == 0 || cur != nil && cur.version.Number == n {
		if cur == nil {
			return Target{}, errs.E(errs.NotFound, "function %q not found", name)
		}
		return Target{Function: name, Version: cur.version.Number, Alias: alias, Key: name, HTTP: cur.version.Config.HTTP}, nil
	}
	a, err := s.pin(ctx, name, n)
	if err != nil {
		return Target{}, err
	}
	return Target{Function: name, Version: n, Alias: alias, Key: a.version.Key(), HTTP: a.version.Config.HTTP}, nil
}

// lookupRef is lookup for a reference the flow engine runs: a name, or
// name@N as Resolve makes them.
func (s *System) lookupRef(ref string) *active {
	name, q, pinned := strings.Cut(ref, "@")
	if !pinned {
		return s.lookup(ref)
	}
	if a := s.lookup(name); a != nil && a.version.numberText == q {
		return a
	}
	if a := (*s.pins.m.Load())[ref]; a != nil {
		return a
	}
	// Pinned by a caller that did not go through Resolve (a function's
	// own invoke of name@N): start its pool now.
	n, err := strconv.Atoi(q)
	if err != nil {
		return nil
	}
	a, err := s.pin(context.Background(), name, n)
	if err != nil {
		return nil
	}
	return a
}

// pin returns the active form of version n of fn, starting its pool if
// it has none.
func (s *System) pin(ctx context.Context, fn string, n int) (*active, error) {
	v, err := s.reg.Version(fn, n)
	if err != nil {
		return nil, err
	}
	key := v.Key()
	if a := (*s.pins.m.Load())[key]; a != nil {
		return a, nil
	}
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	if a := (*s.pins.m.Load())[key]; a != nil {
		return a, nil
	}
	pool := s.sched.Revive(key) // it served before, or serves now
	if pool == nil {
		rt, ok := s.cfg.Runtimes[v.Config.Runtime]
		if !ok {
			return nil, errs.E(errs.Unavailable, "runtime %q is not available on this server", v.Config.Runtime)
		}
		mod, err := s.load(ctx, rt, v)
		if err != nil {
			return nil, err
		}
		c := v.Config
		var created bool
		pool, created, err = s.sched.Add(key, mod, scheduler.PoolConfig{
			MaxInstances:   c.MaxInstances,
			MaxQueue:       c.MaxQueue,
			IdleTimeout:    time.Duration(c.IdleTimeout),
			NestedHeadroom: flow.DefaultMaxDepth,
		})
		if err != nil {
			mod.Close(ctx)
			return nil, err
		}
		if !created {
			mod.Close(ctx)
		}
	}
	a := s.newActive(v, pool)
	cur := *s.pins.m.Load()
	next := make(map[string]*active, len(cur)+1)
	for k, x := range cur {
		next[k] = x
	}
	next[key] = a
	s.pins.m.Store(&next)
	return a, nil
}

// pinned reports whether key's pool serves a pinned version, which a
// deploy must not retire.
func (s *System) pinned(key string) bool {
	_, ok := (*s.pins.m.Load())[key]
	return ok
}

// unpin forgets fn's pinned versions (its pools are removed with it).
func (s *System) unpin(fn string) {
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	cur := *s.pins.m.Load()
	next := make(map[string]*active, len(cur))
	for k, x := range cur {
		if x.version.Function != fn {
			next[k] = x
		}
	}
	s.pins.m.Store(&next)
}

func (s *System) countAlias(fn, alias string, n int) {
	key := fn + ":" + alias + "@" + strconv.Itoa(n)
	c, ok := s.hits.m.Load(key)
	if !ok {
		c, _ = s.hits.m.LoadOrStore(key, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// AliasCount is how many invocations went through an alias to a version
// since the server started.
type AliasCount struct {
	Function    string `json:"function"`
	Alias       string `json:"alias"`
	Version     int    `json:"version"`
	Invocations int64  `json:"invocations"`
}

// AliasCounts returns the invocations through aliases (of fn, or of every
// function if fn is empty) by version, since the server started.
func (s *System) AliasCounts(fn string) []AliasCount {
	var out []AliasCount
	s.hits.m.Range(func(k, v any) bool {
		ref, ver, _ := strings.Cut(k.(string), "@")
		name, alias, _ := strings.Cut(ref, ":")
		if fn != "" && name != fn {
			return true
		}
		n, _ := strconv.Atoi(ver)
		out = append(out, AliasCount{Function: name, Alias: alias, Version: n, Invocations: v.(*atomic.Int64).Load()})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Function != b.Function {
			return a.Function < b.Function
		}
		if a.Alias != b.Alias {
			return a.Alias < b.Alias
		}
		return a.Version < b.Version
	})
	return out
}

// SetAlias creates or moves an alias of fn (registry.Registry.SetAlias).
func (s *System) SetAlias(a registry.Alias) (*registry.Alias, error) {
	if _, err := s.reg.Function(a.Function); err != nil {
		return nil, err
	}
	return s.reg.SetAlias(a)
}

// HTTPMode returns the HTTP mode of fn's current version ("" for a plain
// function or none): one atomic load, for the invocation path.
func (s *System) HTTPMode(fn string) registry.HTTPMode {
	if a := s.lookup(fn); a != nil {
		return a.version.Config.HTTP
	}
	return registry.HTTPOff
}

// payloadLimit is the largest event Invoke takes: MaxPayload, or for an
// HTTP function's envelope room for its body base64-encoded and a
// request header of up to 1 MiB (net/http's default limit).
func (s *System) payloadLimit(envelope bool) int64 {
	if !envelope {
		return s.cfg.MaxPayload
	}
	return s.cfg.MaxPayload/3*4 + 4 + 2<<20
}
