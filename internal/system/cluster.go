package system

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mote-run/mote/internal/cluster"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
)

// Cluster is what a System asks of the cluster it is a node of
// (*cluster.Node); nil in Config: one node, as before.
type Cluster interface {
	Reserve(ctx context.Context, name, sum string, size int64, cfg registry.Config, artifact []byte) (*registry.Version, error)
	Release(ctx context.Context, v *registry.Version)
	// Publish and PublishRemove change the cluster's registry and return
	// how to wait for the live nodes to confirm: the nodes that did not.
	Publish(ctx context.Context, name string, current int) (wait func() []string, err error)
	PublishRemove(ctx context.Context, name string) (wait func() []string, err error)
	Route(ctx context.Context, fn string, version int, idleHere bool) string
	Forward(ctx context.Context, node, fn string, version int, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error)
	Enqueue(ctx context.Context, fn string, payload []byte) (string, error)
	// Sync installs fn's current version here if the cluster has one
	// this node lacks, and reports whether the cluster has fn.
	Sync(ctx context.Context, fn string) (bool, error)
}

// syncMissing is lookup for a function this node does not know: on a
// cluster it asks the registry first (Cluster.Sync), so a function
// deployed on another node is never "not found" here just because this
// node has not installed it yet. A plain name only; nil if there is
// still none.
func (s *System) syncMissing(ctx context.Context, name string) *active {
	c := s.cfg.Cluster
	if c == nil || strings.Contains(name, "@") {
		return nil
	}
	if ok, err := c.Sync(ctx, name); err != nil {
		s.log.Warn("cluster: installing a function asked for before its deploy reached this node", "fn", name, "err", s.redactErr(name, err))
	} else if !ok {
		return nil
	}
	return s.lookup(name)
}

var (
	_ Cluster       = (*cluster.Node)(nil)
	_ cluster.Local = (*System)(nil)
)

// PartialDeploy is the error of a deploy (or rollback, or removal) that
// took effect in the cluster but that some live nodes did not confirm in
// time: they may serve the old version for a while.
type PartialDeploy struct {
	Version *registry.Version // nil for a removal
	Missing []string          // "node: why"
}

func (e *PartialDeploy) Error() string {
	return fmt.Sprintf("done, but not confirmed by %d node(s): %s", len(e.Missing), strings.Join(e.Missing, "; "))
}

// waitCluster waits (without deployMu) for the nodes to confirm a change,
// and returns a *PartialDeploy for those that did not.
func waitCluster(v *registry.Version, wait func() []string, err error) error {
	if err != nil || wait == nil {
		return err
	}
	if missing := wait(); len(missing) > 0 {
		return &PartialDeploy{Version: v, Missing: missing}
	}
	return nil
}

// deployClustered is Deploy's second half on a node of a cluster: the
// cluster numbers the version, this node records and warms it, then the
// cluster makes it current everywhere.
func (s *System) deployClustered(ctx context.Context, name string, cfg registry.Config, sum string, size int64, mod runtime.Module) (*registry.Version, func() []string, error) {
	c := s.cfg.Cluster
	art, err := s.reg.ReadArtifact(sum)
	if err != nil {
		mod.Close(ctx)
		return nil, nil, err
	}
	v, err := c.Reserve(ctx, name, sum, size, cfg, art)
	if err != nil {
		mod.Close(ctx)
		return nil, nil, err
	}
	if err := s.reg.PutVersion(v); err != nil {
		mod.Close(ctx)
		c.Release(ctx, v)
		return nil, nil, err
	}
	prev := s.lookup(name)
	if err := s.activateModule(ctx, v, mod, true); err != nil {
		c.Release(ctx, v)
		return nil, nil, s.redactErr(name, err)
	}
	wait, err := c.Publish(ctx, name, v.Number)
	if err != nil {
		s.undoLocal(ctx, name, prev)
		c.Release(ctx, v)
		return nil, nil, err
	}
	return v, wait, nil
}

// undoLocal puts back prev (nil: none) as fn's version here after the
// cluster refused a change this node had already made: the node keeps
// serving what the cluster serves. (Had the cluster taken the change
// after all, its registry watch brings it back.)
func (s *System) undoLocal(ctx context.Context, fn string, prev *active) {
	var err error
	if prev == nil {
		err = s.removeLocked(ctx, fn)
	} else {
		err = s.activate(ctx, prev.version.Version, true)
	}
	if err != nil {
		s.log.Error("putting back the version the cluster serves", "fn", fn, "err", s.redactErr(fn, err))
	}
}

// ApplyVersion makes v, made on another node, current here
// (cluster.Local).
func (s *System) ApplyVersion(ctx context.Context, v *registry.Version, artifact func() ([]byte, error)) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if a := s.lookup(v.Function); a != nil && a.version.Number == v.Number && a.version.ID == v.ID {
		return nil
	}
	if _, err := s.reg.ReadArtifact(v.Artifact); err != nil {
		b, err := artifact()
		if err != nil {
			return err
		}
		sum, _, err := s.reg.PutArtifact(strings.NewReader(string(b)), int64(len(b)))
		if err != nil {
			return err
		}
		if sum != v.Artifact {
			s.reg.DropUnused(sum)
			return errs.E(errs.Internal, "artifact of %s@%d has SHA-256 %s, not %s", v.Function, v.Number, sum, v.Artifact)
		}
	}
	have, err := s.reg.Version(v.Function, v.Number)
	if err != nil || have.ID != v.ID {
		if err := s.reg.PutVersion(v); err != nil {
			return err
		}
	}
	return s.redactErr(v.Function, s.activate(ctx, v, true))
}

// ApplyRemove removes fn, removed on another node (cluster.Local).
func (s *System) ApplyRemove(ctx context.Context, name string) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	return s.removeLocked(ctx, name)
}

// CurrentVersion returns the version of fn taking traffic here
// (cluster.Local).
func (s *System) CurrentVersion(fn string) int {
	if a := s.lookup(fn); a != nil {
		return a.version.Number
	}
	return 0
}

// RunVersion runs an attempt handed over by another node on version n of
// fn (cluster.Local); it does not start one if n is not the version
// taking traffic here or the server is shutting down.
func (s *System) RunVersion(ctx context.Context, fn string, n int, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error) {
	a := s.lookup(fn)
	if a == nil || a.version.Number != n {
		return runtime.Result{}, runtime.Usage{}, false, errs.Wrap(errs.Unavailable, cluster.ErrNotRun, fmt.Sprintf("version %d of %s is not current on this node", n, fn))
	}
	nc := s.inflight.add()
	defer nc.Add(-1)
	if s.draining.Load() {
		return runtime.Result{}, runtime.Usage{}, false, errs.Wrap(errs.Unavailable, cluster.ErrNotRun, "node is shutting down")
	}
	res, u, cold, err := a.pool.Invoke(ctx, ev)
	if err != nil {
		err = s.redactErr(fn, err)
	}
	return res, u, cold, err
}

// RunAsync runs a queued async invocation here to its end, through the
// flow engine (retries by the function's policy), and returns its call
// tree's id (cluster.Local).
func (s *System) RunAsync(ctx context.Context, fn string, payload []byte) (string, error) {
	n := s.inflight.add()
	defer n.Add(-1)
	if s.draining.Load() {
		return "", errs.Wrap(errs.Unavailable, cluster.ErrNotRun, "server is shutting down")
	}
	if s.lookup(fn) == nil {
		s.syncMissing(ctx, fn) // queued on a node that had it; maybe not installed here yet
	}
	fo, err := s.flow.Invoke(ctx, flow.Request{Function: fn, Payload: payload})
	if fo == nil {
		return "", err
	}
	return fo.ID, err
}

// Load returns, per function, its current version's instances here
// (cluster.Local).
func (s *System) Load() map[string]cluster.FnLoad {
	fns := *s.fns.Load()
	out := make(map[string]cluster.FnLoad, len(fns))
	for name, a := range fns {
		st := a.pool.Stats()
		out[name] = cluster.FnLoad{Version: a.version.Number, Live: st.Live, Idle: st.Idle, Busy: st.Busy, Waiting: st.Waiting}
	}
	return out
}

// runRouted runs an attempt of a on another node when the cluster places
// it there (no instance is idle here), else here. An attempt the other
// node did not start runs here.
func (s *System) runRouted(ctx context.Context, c Cluster, fn string, a *active, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error) {
	node := c.Route(ctx, fn, a.version.Number, a.pool.Stats().Idle > 0)
	if node != "" {
		res, u, cold, err := c.Forward(ctx, node, fn, a.version.Number, ev)
		// One the node did not start runs here, unless the caller
		// asked for that node.
		if err == nil || !isNotRun(err) || cluster.Pinned(ctx) {
			return res, u, cold, err
		}
	}
	return a.pool.Invoke(ctx, ev)
}

func isNotRun(err error) bool { return errors.Is(err, cluster.ErrNotRun) }
