package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/mote-run/mote/internal/cluster"
)

// clusterFlags are mote serve's cluster flags: --cluster-name and its
// company start an embedded nats-server, --nats joins an existing NATS;
// neither leaves the server one node, with no NATS at all.
type clusterFlags struct {
	name     string
	listen   string
	peers    string
	natsAddr string
	natsURLs string
	node     string
	replicas int
	ackWait  time.Duration
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.name, "cluster-name", "", "run as a node of this cluster, with an embedded nats-server (needs --cluster-listen; see docs/cluster.md)")
	fs.StringVar(&c.listen, "cluster-listen", "", "address for the other nodes' routes, e.g. 0.0.0.0:6222")
	fs.StringVar(&c.peers, "peers", "", "the other nodes' --cluster-listen addresses, comma-separated")
	fs.StringVar(&c.natsAddr, "nats-listen", "127.0.0.1:0", "address of the embedded nats-server's client port")
	fs.StringVar(&c.natsURLs, "nats", "", "join the cluster over an existing NATS deployment: its URLs, comma-separated (with --cluster-name to name the cluster, default mote)")
	fs.StringVar(&c.node, "node-name", "", "this node's name (kept in DATA/node-name; default a random n-XXXXXXXX)")
	fs.IntVar(&c.replicas, "replicas", 0, "JetStream replicas of the cluster's state (default min(3, nodes) embedded, 3 with --nats)")
	fs.DurationVar(&c.ackWait, "async-ack-wait", 5*time.Second, "how long a queued async invocation goes without a sign of life from its node before another node runs it")
}

func (c *clusterFlags) enabled() bool { return c.name != "" || c.natsURLs != "" }

// clustered is a running cluster membership: the node, and the embedded
// server where there is one.
type clustered struct {
	node *cluster.Node
	srv  *natsserver.Server
}

func (cl *clustered) close() {
	if cl == nil {
		return
	}
	if cl.node != nil {
		cl.node.Close()
	}
	if cl.srv != nil {
		cl.srv.Shutdown()
		cl.srv.WaitForShutdown()
	}
}

// open starts the embedded nats-server (if asked) and joins the cluster.
// It returns nil, nil without cluster flags.
func (c *clusterFlags) open(ctx context.Context, dataDir string, log *slog.Logger) (*clustered, error) {
	if !c.enabled() {
		if c.listen != "" || c.peers != "" {
			return nil, errors.New("--cluster-listen and --peers need --cluster-name")
		}
		return nil, nil
	}
	node, err := cluster.NodeName(dataDir, c.node)
	if err != nil {
		return nil, err
	}
	cfg := cluster.Config{Name: c.name, Node: node, Replicas: c.replicas, Version: version, Logger: log, AckWait: c.ackWait}
	cl := &clustered{}
	if c.natsURLs != "" {
		if c.listen != "" || c.peers != "" {
			return nil, errors.New("--nats joins an existing NATS: it goes without --cluster-listen and --peers")
		}
		if cfg.Name == "" {
			cfg.Name = "mote"
		}
		cfg.URLs = splitList(c.natsURLs)
	} else {
		peers := splitList(c.peers)
		srv, err := cluster.StartServer(cluster.ServerConfig{
			Name: c.name, Node: node, Listen: c.listen, Peers: peers, Client: c.natsAddr, DataDir: dataDir, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		cl.srv = srv
		cfg.Server, cfg.Peers, cfg.URLs = srv, len(peers), []string{srv.ClientURL()}
		if cfg.Replicas == 0 {
			cfg.Replicas = min(3, 1+len(peers))
		}
		log.Info("embedded nats-server started", "node", node, "cluster", c.name, "routes", c.listen, "clients", srv.ClientURL(), "peers", peers)
	}
	if cl.node, err = cluster.Open(ctx, cfg); err != nil {
		cl.close()
		return nil, err
	}
	return cl, nil
}

func cmdCluster(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprintln(stderr, "usage: mote cluster status [--json]")
		return 2
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON")
	if _, err := parse(fs, args[1:]); err != nil {
		return 2
	}
	var st cluster.Status
	if err := c.json(http.MethodGet, "/v1/cluster", nil, &st); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, st)
	}
	fmt.Fprintf(stdout, "cluster %s, seen from node %s; JetStream meta leader %s; replicas %d\n", st.Cluster, st.Node, orDash(st.MetaLeader), st.Replicas)
	for _, s := range []struct {
		name string
		st   *cluster.StreamState
	}{{"registry", st.Registry}, {"async queue", st.Async}} {
		if s.st != nil {
			fmt.Fprintf(stdout, "%s: leader %s, replicas %s, %d messages\n", s.name, orDash(s.st.Leader), strings.Join(s.st.Replicas, ", "), s.st.Messages)
		}
	}
	if st.Error != "" {
		fmt.Fprintf(stdout, "problem: %s\n", st.Error)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHEALTH\tVERSION\tHTTP\tFUNCTION\tINSTANCES")
	for _, n := range st.Nodes {
		health := "alive"
		if !n.Alive {
			health = fmt.Sprintf("silent %s", n.LastSeen.Round(time.Second))
		}
		if n.Problem != "" {
			health = "incompatible"
		}
		name := n.Name
		if n.Self {
			name += " *"
		}
		fns := make([]string, 0, len(n.Functions))
		for f := range n.Functions {
			fns = append(fns, f)
		}
		sort.Strings(fns)
		if len(fns) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\n", name, health, n.Version, orDash(n.HTTP))
		}
		for i, f := range fns {
			l := n.Functions[f]
			inst := fmt.Sprintf("@%d: %d live, %d idle, %d busy", l.Version, l.Live, l.Idle, l.Busy)
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, health, n.Version, orDash(n.HTTP), f, inst)
			} else {
				fmt.Fprintf(tw, "\t\t\t\t%s\t%s\n", f, inst)
			}
		}
	}
	tw.Flush()
	return 0
}
