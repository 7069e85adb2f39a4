package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
)

// fnRecord is a function's entry in the registry bucket (key f.NAME).
type fnRecord struct {
	Name    string `json:"name"`
	Current int    `json:"current"`
	Latest  int    `json:"latest"`
}

// ack is a node's answer to a registry change (subject ack.NAME).
type ack struct {
	Node    string `json:"node"`
	Version int    `json:"version"` // 0: removed
	Err     string `json:"err,omitempty"`
}

func fnKey(name string) string             { return "f." + name }
func versionKey(name string, n int) string { return "v." + name + "." + strconv.Itoa(n) }

// unavailable turns a JetStream failure into the error callers see: the
// cluster has no quorum or the request timed out.
func unavailable(err error, what string) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	return errs.Wrap(errs.Unavailable, err, "cluster: "+what+": "+err.Error())
}

// Reserve takes the next version number of fn in the cluster for a new
// version of the stored artifact with cfg, and uploads the artifact for
// the other nodes. The version is not current anywhere until Publish; a
// failed deploy gives the number back with Release.
func (n *Node) Reserve(ctx context.Context, name, sum string, size int64, cfg registry.Config, artifact []byte) (*registry.Version, error) {
	if _, err := n.art.GetInfo(ctx, sum); errors.Is(err, jetstream.ErrObjectNotFound) {
		if _, err := n.art.PutBytes(ctx, sum, artifact); err != nil {
			return nil, unavailable(err, "storing the artifact")
		}
	} else if err != nil {
		return nil, unavailable(err, "looking up the artifact")
	}
	rec, _, err := n.record(ctx, name)
	if err != nil {
		return nil, err
	}
	for num := rec.Latest + 1; ; num++ {
		v := registry.NewVersion(name, num, sum, size, cfg, time.Now().UTC())
		b, _ := json.Marshal(v)
		_, err := n.reg.Create(ctx, versionKey(name, num), b)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, unavailable(err, "reserving a version number")
		}
	}
}

// Release gives back a version number Reserve took, for a deploy that
// failed before Publish.
func (n *Node) Release(ctx context.Context, v *registry.Version) {
	if err := n.reg.Purge(ctx, versionKey(v.Function, v.Number)); err != nil {
		n.log.Warn("releasing a version number", "fn", v.Function, "version", v.Number, "err", err)
	}
}

// record returns fn's registry record (zero if none) and its revision.
func (n *Node) record(ctx context.Context, name string) (fnRecord, uint64, error) {
	e, err := n.reg.Get(ctx, fnKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fnRecord{Name: name}, 0, nil
	}
	if err != nil {
		return fnRecord{}, 0, unavailable(err, "reading the registry")
	}
	var r fnRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return fnRecord{}, 0, fmt.Errorf("cluster: corrupt registry record %s: %w", fnKey(name), err)
	}
	return r, e.Revision(), nil
}

// Sync installs on this node fn's current version as the cluster's
// registry has it, when this node runs none or an older one, and
// reports whether the registry has fn at all. A node asked for a
// function it does not know calls it before answering "not found": a
// deploy waits only for the nodes it knows are alive, so a node that
// joined a moment before may not have installed it yet.
func (n *Node) Sync(ctx context.Context, name string) (bool, error) {
	rec, rev, err := n.record(ctx, name)
	if err != nil {
		return false, err
	}
	if rev == 0 || rec.Current == 0 {
		return false, nil
	}
	// Only a newer version is installed: this node's own deploy makes
	// its version current here a moment before the registry says so, and
	// must not be undone; a rollback (an older current) is the watch's.
	if have := n.local.CurrentVersion(name); have != 0 && have >= rec.Current {
		return true, nil
	}
	return true, n.install(ctx, name, rec.Current)
}

// Publish makes version current of fn the cluster's current version
// (deploy's last step, and rollback), then waits until every live node
// has it taking traffic, or DeployWait passes: it returns the nodes that
// did not confirm (with the reason, where one said it).
func (n *Node) Publish(ctx context.Context, name string, current int) (func() []string, error) {
	return n.change(ctx, name, current, func(ctx context.Context) error {
		if _, err := n.reg.Get(ctx, versionKey(name, current)); err != nil {
			return unavailable(err, fmt.Sprintf("version %d of %s", current, name))
		}
		for {
			rec, rev, err := n.record(ctx, name)
			if err != nil {
				return err
			}
			rec.Current = current
			rec.Latest = max(rec.Latest, current)
			b, _ := json.Marshal(rec)
			if rev == 0 {
				_, err = n.reg.Create(ctx, fnKey(name), b)
			} else {
				_, err = n.reg.Update(ctx, fnKey(name), b, rev)
			}
			if err == nil {
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return unavailable(err, "updating the registry")
			}
			// Another node changed fn meanwhile: read it again.
		}
	})
}

// PublishRemove removes fn from the cluster and waits as Publish does.
func (n *Node) PublishRemove(ctx context.Context, name string) (func() []string, error) {
	return n.change(ctx, name, 0, func(ctx context.Context) error {
		keys, err := n.reg.ListKeysFiltered(ctx, "v."+name+".*")
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return unavailable(err, "listing versions")
		}
		if err := n.reg.Delete(ctx, fnKey(name)); err != nil {
			return unavailable(err, "removing from the registry")
		}
		if keys != nil {
			for k := range keys.Keys() {
				n.reg.Purge(ctx, k)
			}
		}
		return nil
	})
}

// change applies write to the registry and returns how to collect the
// other live nodes' acknowledgements of version want of name (this node
// has it already).
func (n *Node) change(ctx context.Context, name string, want int, write func(context.Context) error) (func() []string, error) {
	ch := make(chan *nats.Msg, 64)
	sub, err := n.nc.ChanSubscribe(n.prefix+"ack."+name, ch)
	if err != nil {
		return nil, unavailable(err, "subscribing to acknowledgements")
	}
	// Long enough for JetStream to elect a new leader when the old one
	// died (Raft's election timeout is up to 9 s).
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = write(wctx)
	cancel()
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return func() []string {
		defer sub.Unsubscribe()
		return n.collect(ctx, ch, want)
	}, nil
}

func (n *Node) collect(ctx context.Context, ch chan *nats.Msg, want int) []string {
	waiting := map[string]string{}
	for _, node := range n.liveNodes() {
		if node != n.cfg.Node {
			waiting[node] = "no answer within " + n.cfg.DeployWait.String()
		}
	}
	t := time.NewTimer(n.cfg.DeployWait)
	defer t.Stop()
	// A node that dies meanwhile is not waited for any longer.
	tick := time.NewTicker(n.cfg.Heartbeat)
	defer tick.Stop()
	for len(waiting) > 0 {
		select {
		case <-tick.C:
			live := n.liveNodes()
			for node, why := range waiting {
				if strings.HasPrefix(why, "no answer") && !slices.Contains(live, node) {
					waiting[node] = "stopped answering (no heartbeat for " + n.cfg.DeadAfter.String() + ")"
				}
			}
		case m := <-ch:
			var a ack
			if json.Unmarshal(m.Data, &a) != nil || a.Version != want {
				continue
			}
			if _, ok := waiting[a.Node]; !ok {
				continue
			}
			if a.Err != "" {
				waiting[a.Node] = a.Err
				continue
			}
			delete(waiting, a.Node)
		case <-t.C:
			return missing(waiting)
		case <-ctx.Done():
			return missing(waiting)
		}
		if allFailed(waiting) {
			break
		}
	}
	return missing(waiting)
}

func allFailed(w map[string]string) bool {
	for _, why := range w {
		if strings.HasPrefix(why, "no answer") {
			return false
		}
	}
	return true
}

func missing(w map[string]string) []string {
	var out []string
	for node, why := range w {
		out = append(out, node+": "+why)
	}
	return out
}

// watchRegistry installs every change of the registry on this node, from
// the bucket's current state on, and acknowledges each.
func (n *Node) watchRegistry(ctx context.Context) {
	defer n.wg.Done()
	for ctx.Err() == nil {
		w, err := n.reg.Watch(ctx, "f.*")
		if err != nil {
			n.log.Warn("watching the registry; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				n.log.Debug("registry caught up")
				continue
			}
			n.apply(ctx, e)
		}
		w.Stop()
	}
}

// reconcile is the registry watch's safety net: every Config.Reconcile
// it installs (Sync) each function whose current version in the registry
// is newer than the one running here. A watch delivers changes in order but
// can stall after this process was paused or cut off (its consumer is
// then recreated only when the client notices); reconciling bounds how
// long a node serves a stale version after it heals. Removals are left
// to the watch. One key listing and a read per function each period.
func (n *Node) reconcile(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Reconcile)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, n.cfg.Reconcile)
		keys, err := n.reg.ListKeysFiltered(lctx, "f.*")
		if err != nil {
			cancel()
			continue // no quorum, or no functions: the next period tries again
		}
		for k := range keys.Keys() {
			name := strings.TrimPrefix(k, "f.")
			if _, err := n.Sync(lctx, name); err != nil {
				n.log.Warn("reconciling a function with the registry", "fn", name, "err", err)
			}
		}
		cancel()
	}
}

// apply installs one registry entry here and acknowledges it.
func (n *Node) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	name := strings.TrimPrefix(e.Key(), "f.")
	a := ack{Node: n.cfg.Node}
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		if n.local.CurrentVersion(name) != 0 {
			if err := n.local.ApplyRemove(ctx, name); err != nil {
				a.Err = err.Error()
			}
		}
	default:
		var rec fnRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			n.log.Error("corrupt registry record", "key", e.Key(), "err", err)
			return
		}
		a.Version = rec.Current
		if rec.Current != 0 && n.local.CurrentVersion(name) != rec.Current {
			if err := n.install(ctx, name, rec.Current); err != nil {
				n.log.Error("installing a version made on another node", "fn", name, "version", rec.Current, "err", err)
				a.Err = err.Error()
			}
		}
	}
	b, _ := json.Marshal(a)
	n.nc.Publish(n.prefix+"ack."+name, b)
}

func (n *Node) install(ctx context.Context, name string, num int) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DeployWait)
	defer cancel()
	e, err := n.reg.Get(ctx, versionKey(name, num))
	if err != nil {
		return unavailable(err, fmt.Sprintf("reading version %d of %s", num, name))
	}
	var v registry.Version
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return fmt.Errorf("cluster: corrupt version record %s: %w", e.Key(), err)
	}
	return n.local.ApplyVersion(ctx, &v, func() ([]byte, error) {
		b, err := n.art.GetBytes(ctx, v.Artifact)
		if err != nil {
			return nil, unavailable(err, "fetching artifact "+v.Artifact)
		}
		return b, nil
	})
}
