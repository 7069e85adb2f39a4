package system

import (
	"context"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
)

// autoMemory holds the limits Mote chose for versions with "memory":
// "auto": each starts at Config.AutoMemoryStart and doubles, up to
// MemoryMax, when an invocation runs out of memory; the attempt then runs
// again on an instance with the new limit, so the caller sees the answer,
// not the failure. The limits live in memory: a restart starts again
// from AutoMemoryStart.
type autoMemory struct {
	mu     sync.Mutex
	limits map[string]autoLimit // by version key
}

type autoLimit struct {
	bytes  int64
	raised time.Time
}

// raiseWindow: an out-of-memory failure within this long of a raise ran
// at the old limit (it started before the raise); it is retried at the
// new one, not raised again.
const raiseWindow = time.Second

// memoryLimit is v's current limit in bytes (its configured one unless auto).
func (s *System) memoryLimit(v *registry.Version) int64 {
	if v.Config.Memory != registry.SizeAuto {
		return int64(v.Config.Memory)
	}
	s.autoMem.mu.Lock()
	defer s.autoMem.mu.Unlock()
	if l, ok := s.autoMem.limits[v.Key()]; ok {
		return l.bytes
	}
	return int64(v.Config.AutoMemoryStart())
}

// retryOutOfMemory runs ev again at a raised limit when the attempt that
// returned err ran out of memory under "memory": "auto" and the limit
// can still grow; otherwise it returns what it was given.
func (s *System) retryOutOfMemory(ctx context.Context, a *active, ev *runtime.Event, res runtime.Result, u runtime.Usage, cold bool, err error) (runtime.Result, runtime.Usage, bool, error) {
	v := a.version.Version
	if err == nil || errs.CodeOf(err) != errs.OutOfMemory || v.Config.Memory != registry.SizeAuto {
		return res, u, cold, err
	}
	if !s.raiseMemory(ctx, v) {
		return res, u, cold, err
	}
	res2, u2, cold2, err2 := a.pool.Invoke(ctx, ev)
	// Both attempts used the machine; the caller waited for both.
	u2.CPU += u.CPU
	u2.Wall += u.Wall
	return res2, u2, cold || cold2, err2
}

// raiseMemory doubles v's limit (up to MemoryMax) and reloads its pool at
// the new one, unless another failure raised it just now. It reports
// whether a retry may find more memory.
func (s *System) raiseMemory(ctx context.Context, v *registry.Version) bool {
	s.autoMem.mu.Lock()
	defer s.autoMem.mu.Unlock()
	cur, ok := s.autoMem.limits[v.Key()]
	if !ok {
		cur = autoLimit{bytes: int64(v.Config.AutoMemoryStart())}
	}
	if ok && time.Since(cur.raised) < raiseWindow {
		return true
	}
	ceiling := int64(v.Config.MemoryMax)
	if cur.bytes >= ceiling {
		return false
	}
	next := autoLimit{bytes: min(cur.bytes*2, ceiling), raised: time.Now()}
	if s.autoMem.limits == nil {
		s.autoMem.limits = map[string]autoLimit{}
	}
	s.autoMem.limits[v.Key()] = next
	// reload reads the new limit through load → memoryLimit: unlock
	// while it runs (it starts no instance of its own but for min_warm).
	s.autoMem.mu.Unlock()
	err := s.reload(ctx, v, v.Key())
	s.autoMem.mu.Lock()
	if err != nil {
		s.autoMem.limits[v.Key()] = cur
		s.log.Warn("memory auto: could not reload at a raised limit", "fn", v.Function, "err", s.redactErr(v.Function, err))
		return false
	}
	s.log.Info("memory auto: raised the limit after an out-of-memory failure", "fn", v.Function, "version", v.Number, "from_mib", cur.bytes>>20, "to_mib", next.bytes>>20)
	s.setPolicyMemory(v, next.bytes)
	return true
}

// setPolicyMemory makes v's active entry bill at limit bytes.
func (s *System) setPolicyMemory(v *registry.Version, limit int64) {
	s.fnsMu.Lock()
	defer s.fnsMu.Unlock()
	cur := *s.fns.Load()
	a := cur[v.Function]
	if a == nil || a.version.Number != v.Number {
		return
	}
	na := *a
	na.policy.Memory = limit
	next := make(map[string]*active, len(cur))
	for k, x := range cur {
		next[k] = x
	}
	next[v.Function] = &na
	s.fns.Store(&next)
}
