// Package cluster makes several Mote servers one platform over NATS with
// JetStream: an embedded nats-server per node (StartServer), or an
// existing NATS deployment, carries the shared state and the traffic
// between nodes.
//
//   - The function registry (KV bucket mote_<cluster>_registry: f.NAME is
//     a function's current and latest version, v.NAME.N a version with its
//     config) and artifacts (object store mote_<cluster>_artifacts, by
//     SHA-256). Every node watches the registry and installs each version
//     locally (Local.ApplyVersion); a deploy waits for every live node's
//     acknowledgement on core NATS (registry.go).
//   - Heartbeats (core NATS, every Config.Heartbeat) say which nodes live,
//     their Mote version and each function's idle instances: the
//     placement of an invocation that finds no idle instance where it
//     arrived (route.go).
//   - Invocations handed to another node go by request/reply to that
//     node's subject; the function's host calls come back to the node that
//     owns the invocation, so its call tree, storage and flow ops stay
//     there (route.go).
//   - Async invocations go through a JetStream stream, deduplicated by
//     invocation id, consumed by every node's workers (async.go).
//
// Every JetStream asset is stored with Config.Replicas replicas and the
// embedded server fsyncs before acknowledging (sync_interval: always).
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
)

// Protocol is the version of what nodes say to each other. Nodes of
// another protocol or another Mote version are refused (Open) and never
// sent work (see docs/cluster.md: upgrade by stopping every node).
const Protocol = 1

// Config configures a Node.
type Config struct {
	Name     string   // cluster name: prefixes every subject and bucket
	Node     string   // this node's name
	URLs     []string // NATS servers to connect to
	Replicas int      // JetStream replicas of every bucket and stream; default 3
	Version  string   // Mote's version; nodes of another are refused
	Logger   *slog.Logger
	// Server is the embedded nats-server, when this node runs one: status
	// reads the JetStream meta leader from it.
	Server *server.Server
	// Peers is how many other nodes the embedded server was told of,
	// for the log while they do not answer.
	Peers int

	DeployWait time.Duration // how long a deploy waits for nodes; default 30s
	Heartbeat  time.Duration // default 500ms
	DeadAfter  time.Duration // a node silent this long is dead; default 4 heartbeats
	// AckWait is how long a queued async invocation may go without a
	// sign of life from the node running it before another node gets
	// it; default 5s.
	AckWait time.Duration
	// Workers is how many async invocations a node runs at once; default 16.
	Workers int
	// Reconcile is how often a node compares every function's current
	// version in the registry with its own and installs what differs, in
	// case its registry watch missed a change (a process paused or cut
	// off long enough for the watch's consumer to be lost); default 5s.
	Reconcile time.Duration
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	if !clusterName.MatchString(c.Name) {
		return fmt.Errorf("cluster: invalid cluster name %q: use 1-32 of a-z A-Z 0-9 _ -", c.Name)
	}
	if !clusterName.MatchString(c.Node) {
		return fmt.Errorf("cluster: invalid node name %q", c.Node)
	}
	if len(c.URLs) == 0 {
		return errors.New("cluster: no NATS URL")
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("cluster: replicas %d out of range 1..5", c.Replicas)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DeployWait <= 0 {
		c.DeployWait = 30 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 500 * time.Millisecond
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 4 * c.Heartbeat
	}
	if c.AckWait <= 0 {
		c.AckWait = 5 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Reconcile <= 0 {
		c.Reconcile = 5 * time.Second
	}
	return nil
}

// Local is what a node needs of the Mote server it is part of
// (system.System implements it).
type Local interface {
	// ApplyVersion makes v, made on another node, this node's current
	// version of v.Function; artifact returns its bytes where this node
	// does not have them.
	ApplyVersion(ctx context.Context, v *registry.Version, artifact func() ([]byte, error)) error
	// ApplyRemove removes a function removed on another node.
	ApplyRemove(ctx context.Context, name string) error
	// CurrentVersion returns the version of fn taking traffic here, 0: none.
	CurrentVersion(fn string) int
	// RunVersion runs one attempt of an invocation handed over by another
	// node on version n of fn. NotRun in the error says it did not start.
	RunVersion(ctx context.Context, fn string, n int, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error)
	// RunAsync runs a queued async invocation to its end (retries
	// included) and returns the id of its call tree.
	RunAsync(ctx context.Context, fn string, payload []byte) (string, error)
	// Load is, per function, its current version's instances here.
	Load() map[string]FnLoad
}

// FnLoad is one function's instances on one node.
type FnLoad struct {
	Version int `json:"version"`
	Live    int `json:"live"`
	Idle    int `json:"idle"`
	Busy    int `json:"busy"`
	Waiting int `json:"waiting,omitempty"`
}

// heartbeat is what every node says of itself, every Config.Heartbeat.
type heartbeat struct {
	Node      string            `json:"node"`
	Protocol  int               `json:"protocol"`
	Version   string            `json:"version"`
	HTTP      string            `json:"http,omitempty"`
	Started   time.Time         `json:"started"`
	Functions map[string]FnLoad `json:"functions,omitempty"`
}

// peer is the last heartbeat heard from a node, and when.
type peer struct {
	hb   heartbeat
	seen time.Time
}

// Node is this server's membership of a cluster.
type Node struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	reg  jetstream.KeyValue
	art  jetstream.ObjectStore
	done jetstream.KeyValue // completions of async invocations
	q    jetstream.Stream   // async invocations
	dlq  jetstream.Stream

	started time.Time
	local   Local
	http    string // this node's API address, for status
	prefix  string // "mote.<cluster>."

	mu    sync.Mutex
	peers map[string]*peer
	// live is the peers that heartbeat recently and speak this
	// node's version, rebuilt on each heartbeat: the placement's view,
	// read with one atomic load.
	live atomic.Pointer[[]*peer]
	next atomic.Uint32 // round robin over live peers

	route  router
	stop   context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	consMu sync.Mutex
	cons   jetstream.ConsumeContext
}

// Open connects to NATS and makes (or finds) the cluster's buckets and
// streams. Until JetStream has a quorum (a node started before its peers)
// it retries, and says so in the log, until ctx ends. It refuses to join
// a cluster whose live nodes run another Mote version.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("part", "cluster"), prefix: "mote." + cfg.Name + ".", peers: map[string]*peer{}, started: time.Now()}
	n.live.Store(&[]*peer{})
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","),
		nats.Name("mote "+cfg.Node),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250*time.Millisecond),
		nats.PingInterval(2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { n.log.Info("reconnected to NATS", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to NATS %v: %w", cfg.URLs, err)
	}
	n.nc = nc
	if n.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := n.waitAssets(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	if err := n.checkVersions(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return n, nil
}

// waitAssets creates the buckets and streams, retrying while JetStream
// has no quorum.
func (n *Node) waitAssets(ctx context.Context) error {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		// Short tries: while the routes and the meta leader settle, a
		// request's answer can be lost, and a retry is answered at once.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.createAssets(actx)
		cancel()
		if err == nil {
			if attempt > 0 {
				n.log.Info("JetStream ready", "after", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: JetStream not ready: %w (last error: %v)", ctx.Err(), err)
		}
		msg := []any{"err", err, "waited", time.Since(start).Round(time.Second), "replicas", n.cfg.Replicas}
		if s := n.cfg.Server; s != nil {
			msg = append(msg, "routes", s.NumRoutes(), "peers", n.cfg.Peers)
		}
		if attempt%5 == 4 {
			n.log.Warn("waiting for a JetStream quorum: peers do not answer yet; retrying", msg...)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Node) createAssets(ctx context.Context) error {
	r, st := n.cfg.Replicas, jetstream.FileStorage
	// Each is a Raft group of its own whose creation waits for an
	// election: made at once, they cost one election's time, not five.
	var wg sync.WaitGroup
	errc := make([]error, 5)
	run := func(i int, f func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); errc[i] = f() }()
	}
	run(0, func() (err error) {
		n.reg, err = n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: n.asset("registry"), Description: "Mote functions and versions", History: 1, Replicas: r, Storage: st,
		})
		return err
	})
	run(1, func() (err error) {
		n.art, err = n.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: n.asset("artifacts"), Description: "Mote artifacts by SHA-256", Replicas: r, Storage: st,
		})
		return err
	})
	run(2, func() (err error) {
		n.done, err = n.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: n.asset("async"), Description: "Mote async invocations' outcomes", History: 1, Replicas: r, Storage: st,
			TTL: 7 * 24 * time.Hour,
		})
		return err
	})
	run(3, func() (err error) {
		n.q, err = n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: n.asset("ASYNC"), Subjects: []string{n.prefix + "async.>"}, Retention: jetstream.WorkQueuePolicy,
			Replicas: r, Storage: st, Duplicates: 2 * time.Minute, Description: "Mote async invocations",
		})
		return err
	})
	run(4, func() (err error) {
		n.dlq, err = n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: n.asset("DLQ"), Subjects: []string{n.prefix + "dlq.>"}, Replicas: r, Storage: st,
			Duplicates: 2 * time.Minute, MaxAge: 14 * 24 * time.Hour, Description: "Mote async invocations that failed",
		})
		return err
	})
	wg.Wait()
	return errors.Join(errc...)
}

// asset names a bucket or stream of this cluster.
func (n *Node) asset(what string) string { return "mote_" + n.cfg.Name + "_" + what }

// checkVersions asks the live nodes their version and refuses another.
func (n *Node) checkVersions(ctx context.Context) error {
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer sub.Unsubscribe()
	if err := n.nc.PublishRequest(n.prefix+"hello", inbox, nil); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	t := time.NewTimer(2 * n.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case m := <-ch:
			var hb heartbeat
			if json.Unmarshal(m.Data, &hb) != nil {
				continue
			}
			if err := n.compatible(hb); err != nil {
				return err
			}
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// gather asks the live nodes for a heartbeat and records the answers,
// until none came for a while.
func (n *Node) gather(ctx context.Context) {
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 256)
	sub, err := n.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return
	}
	defer sub.Unsubscribe()
	if n.nc.PublishRequest(n.prefix+"hello", inbox, nil) != nil {
		return
	}
	quiet := time.NewTimer(n.cfg.Heartbeat)
	defer quiet.Stop()
	for {
		select {
		case m := <-ch:
			n.onHeartbeat(m)
			quiet.Reset(n.cfg.Heartbeat / 2)
		case <-quiet.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// compatible says why a node of hb cannot be in one cluster with this one.
func (n *Node) compatible(hb heartbeat) error {
	if hb.Protocol != Protocol || hb.Version != n.cfg.Version {
		return fmt.Errorf("cluster: node %s runs Mote %s (protocol %d), this node Mote %s (protocol %d): "+
			"a cluster runs one version; stop every node, upgrade, start them again", hb.Node, hb.Version, hb.Protocol, n.cfg.Version, Protocol)
	}
	return nil
}

// Start begins serving the cluster for local, whose API listens on
// httpAddr: heartbeats, the registry watch, invocations handed over by
// other nodes, async workers.
func (n *Node) Start(local Local, httpAddr string) error {
	n.local, n.http = local, httpAddr
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	sub := func(subj string, h nats.MsgHandler) error {
		s, err := n.nc.Subscribe(subj, h)
		if err != nil {
			return fmt.Errorf("cluster: subscribing to %s: %w", subj, err)
		}
		n.subs = append(n.subs, s)
		return nil
	}
	if err := errors.Join(
		sub(n.prefix+"hb", n.onHeartbeat),
		sub(n.prefix+"hello", func(m *nats.Msg) { m.Respond(n.heartbeatJSON()) }),
		sub(n.prefix+"run."+n.cfg.Node, n.onRun),
		sub(n.prefix+"host."+n.cfg.Node, n.onHostCall),
	); err != nil {
		n.Close()
		return err
	}
	// Before it serves, a node has told the others it is here and has
	// heard from every live node, so a deploy right after waits for all.
	n.nc.Publish(n.prefix+"hb", n.heartbeatJSON())
	if err := n.nc.Flush(); err != nil {
		n.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	n.gather(ctx)
	n.wg.Add(3)
	go n.heartbeats(ctx)
	go n.watchRegistry(ctx)
	go n.reconcile(ctx)
	n.startWorkers(ctx)
	return nil
}

// Close stops the node's work and its NATS connection (not the embedded
// server: its owner shuts that down after).
func (n *Node) Close() {
	if n.stop != nil {
		n.stop()
	}
	n.consMu.Lock()
	if n.cons != nil {
		n.cons.Drain()
	}
	n.consMu.Unlock()
	for _, s := range n.subs {
		s.Unsubscribe()
	}
	n.wg.Wait()
	n.route.closeAll()
	n.nc.Close()
}

// Name returns this node's name.
func (n *Node) Name() string { return n.cfg.Node }

func (n *Node) heartbeatJSON() []byte {
	hb := heartbeat{Node: n.cfg.Node, Protocol: Protocol, Version: n.cfg.Version, HTTP: n.http, Started: n.started}
	if n.local != nil {
		hb.Functions = n.local.Load()
	}
	b, _ := json.Marshal(hb)
	return b
}

func (n *Node) heartbeats(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		n.nc.Publish(n.prefix+"hb", n.heartbeatJSON())
		n.sweep()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	var hb heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Node == "" {
		return
	}
	n.mu.Lock()
	p := n.peers[hb.Node]
	if p == nil && hb.Node != n.cfg.Node {
		if err := n.compatible(hb); err != nil {
			n.log.Error("a node of another version is on the cluster's subjects: it gets no work", "err", err)
		} else {
			n.log.Info("node joined", "node", hb.Node, "http", hb.HTTP)
		}
	} else if p != nil && time.Since(p.seen) > n.cfg.DeadAfter {
		n.log.Info("node is back", "node", hb.Node)
	}
	n.peers[hb.Node] = &peer{hb: hb, seen: time.Now()}
	n.rebuildLocked()
	n.mu.Unlock()
}

// sweep declares dead the nodes not heard from within DeadAfter: their
// in-flight handed-over invocations fail at once with unavailable.
func (n *Node) sweep() {
	n.mu.Lock()
	var dead []string
	for name, p := range n.peers {
		if name != n.cfg.Node && time.Since(p.seen) > n.cfg.DeadAfter && !p.hb.Started.IsZero() {
			dead = append(dead, name)
			p.hb.Started = time.Time{} // reported once
		}
	}
	if len(dead) > 0 {
		n.rebuildLocked()
	}
	n.mu.Unlock()
	for _, d := range dead {
		n.log.Warn("node is not answering: in-flight invocations on it fail as unavailable", "node", d, "silent_for", n.cfg.DeadAfter)
		n.route.failNode(d)
	}
}

// rebuildLocked publishes the live, compatible peers other than this node.
func (n *Node) rebuildLocked() {
	live := make([]*peer, 0, len(n.peers))
	for name, p := range n.peers {
		if name == n.cfg.Node || time.Since(p.seen) > n.cfg.DeadAfter || n.compatible(p.hb) != nil {
			continue
		}
		live = append(live, p)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].hb.Node < live[j].hb.Node })
	n.live.Store(&live)
}

// liveNodes returns the names of the nodes alive now, this one included.
func (n *Node) liveNodes() []string {
	out := []string{n.cfg.Node}
	for _, p := range *n.live.Load() {
		out = append(out, p.hb.Node)
	}
	slices.Sort(out)
	return out
}

// NodeStatus is one node as status shows it.
type NodeStatus struct {
	Name      string            `json:"name"`
	Alive     bool              `json:"alive"`
	Self      bool              `json:"self,omitempty"`
	Version   string            `json:"version"`
	HTTP      string            `json:"http,omitempty"`
	LastSeen  time.Duration     `json:"last_seen_ns"`
	Problem   string            `json:"problem,omitempty"`
	Functions map[string]FnLoad `json:"functions,omitempty"`
}

// Status is the cluster as one node sees it.
type Status struct {
	Cluster    string       `json:"cluster"`
	Node       string       `json:"node"`
	MetaLeader string       `json:"meta_leader,omitempty"`
	Replicas   int          `json:"replicas"`
	Registry   *StreamState `json:"registry,omitempty"`
	Async      *StreamState `json:"async,omitempty"`
	Nodes      []NodeStatus `json:"nodes"`
	Error      string       `json:"error,omitempty"`
}

// StreamState is a replicated stream's leader and replicas.
type StreamState struct {
	Leader   string   `json:"leader"`
	Replicas []string `json:"replicas"` // name, with " (lagging N)" or " (offline)"
	Messages uint64   `json:"messages"`
}

// Status reports the nodes, their health and load, and JetStream's
// leaders. It answers from this node's view even when JetStream does not.
func (n *Node) Status(ctx context.Context) *Status {
	st := &Status{Cluster: n.cfg.Name, Node: n.cfg.Node, Replicas: n.cfg.Replicas}
	if s := n.cfg.Server; s != nil {
		if jsz, err := s.Jsz(nil); err == nil && jsz.Meta != nil {
			st.MetaLeader = jsz.Meta.Leader
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var errsSeen []string
	for _, x := range []struct {
		name string
		into **StreamState
	}{{"KV_" + n.asset("registry"), &st.Registry}, {n.asset("ASYNC"), &st.Async}} {
		s, err := n.js.Stream(ctx, x.name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err != nil {
			errsSeen = append(errsSeen, x.name+": "+err.Error())
			continue
		}
		ss := &StreamState{Messages: info.State.Msgs}
		if c := info.Cluster; c != nil {
			ss.Leader = c.Leader
			for _, r := range c.Replicas {
				d := r.Name
				switch {
				case r.Offline:
					d += " (offline)"
				case !r.Current:
					d += fmt.Sprintf(" (lagging %d)", r.Lag)
				}
				ss.Replicas = append(ss.Replicas, d)
			}
		}
		*x.into = ss
	}
	if len(errsSeen) > 0 {
		st.Error = "JetStream: " + strings.Join(errsSeen, "; ")
	}
	n.mu.Lock()
	for name, p := range n.peers {
		ns := NodeStatus{Name: name, Version: p.hb.Version, HTTP: p.hb.HTTP, LastSeen: time.Since(p.seen), Functions: p.hb.Functions}
		ns.Alive = ns.LastSeen <= n.cfg.DeadAfter
		if err := n.compatible(p.hb); err != nil {
			ns.Problem = err.Error()
		}
		if name == n.cfg.Node {
			ns.Self, ns.Alive, ns.Functions = true, true, n.local.Load()
		}
		st.Nodes = append(st.Nodes, ns)
	}
	n.mu.Unlock()
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st
}
