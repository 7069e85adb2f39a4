package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded nats-server of one node.
type ServerConfig struct {
	Name    string   // cluster name, shared by every node
	Node    string   // this node's name, stable across restarts (NodeName)
	Listen  string   // host:port for routes from the other nodes
	Peers   []string // host:port of the other nodes' route listeners
	Client  string   // host:port for NATS clients; default 127.0.0.1:0
	DataDir string   // JetStream's store goes in DataDir/nats
	Logger  *slog.Logger
}

var clusterName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,32}$`)

// Validate checks c and fills defaults.
func (c *ServerConfig) Validate() error {
	if !clusterName.MatchString(c.Name) {
		return fmt.Errorf("cluster: invalid --cluster-name %q: use 1-32 of a-z A-Z 0-9 _ -", c.Name)
	}
	if c.Listen == "" {
		return errors.New("cluster: --cluster-listen is required with --cluster-name")
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		return fmt.Errorf("cluster: --cluster-listen %q: %w", c.Listen, err)
	}
	for _, p := range c.Peers {
		if _, _, err := splitHostPort(p); err != nil {
			return fmt.Errorf("cluster: --peers entry %q: %w", p, err)
		}
	}
	if c.Client == "" {
		c.Client = "127.0.0.1:0"
	}
	if _, _, err := splitHostPort(c.Client); err != nil {
		return fmt.Errorf("cluster: --nats-listen %q: %w", c.Client, err)
	}
	if c.DataDir == "" {
		return errors.New("cluster: DataDir is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

// StartServer starts the embedded nats-server of one node: a member of the
// NATS cluster cfg.Name, with JetStream storing in DataDir/nats and
// fsyncing every write before it is acknowledged (sync_interval: always).
// It returns once the server accepts client connections; the routes to
// peers that do not answer yet are retried for as long as it runs (see
// Node, which says so in the log).
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ch, cp, _ := splitHostPort(cfg.Client)
	rh, rp, _ := splitHostPort(cfg.Listen)
	// Port 0 is "the default" (4222, 6222) to nats-server, "any free
	// port" to us.
	if cp == 0 {
		cp = server.RANDOM_PORT
	}
	if rp == 0 {
		rp = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.Node,
		Host:       ch,
		Port:       cp,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		// Jepsen (NATS 2.12.1, 2025) lost acknowledged writes under the
		// default lazy fsync; Mote acknowledges nothing not on disk.
		SyncAlways:   true,
		SyncInterval: 2 * time.Minute,
		Cluster: server.ClusterOpts{
			Name: cfg.Name,
			Host: rh,
			Port: rp,
		},
		NoSigs: true,
		// Shorter than the 2-minute default so that a dead peer's routes
		// and interest are dropped within seconds.
		PingInterval: 2 * time.Second,
		MaxPingsOut:  3,
	}
	opts.Cluster.PingInterval = time.Second
	opts.Cluster.MaxPingsOut = 3
	for _, p := range cfg.Peers {
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: p})
	}
	if len(cfg.Peers) == 0 {
		// JetStream runs clustered only with routes: a node without peers
		// is a cluster of one with a standalone JetStream, which cannot
		// grow into a cluster later (docs/cluster.md).
		opts.Cluster = server.ClusterOpts{}
		cfg.Logger.Warn("cluster: no --peers: one node with a standalone JetStream; a cluster that is to grow starts with all its peers")
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: starting nats-server: %w", err)
	}
	s.SetLoggerV2(natsLogger{cfg.Logger.With("part", "nats")}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("cluster: nats-server did not start listening within 30s (client %s, routes %s)", cfg.Client, cfg.Listen)
	}
	return s, nil
}

// NodeName returns this node's name, kept in DATA/node-name so that it
// outlives restarts (JetStream's Raft groups know peers by it); a new data
// directory gets "n-" and 8 random hex digits unless want names one.
func NodeName(dataDir, want string) (string, error) {
	p := filepath.Join(dataDir, "node-name")
	b, err := os.ReadFile(p)
	if err == nil {
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("cluster: %s names this node %q, not %q: a node keeps its name (JetStream knows its peers by it); use a new data directory for a new node", p, have, want)
		}
		return have, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("cluster: %w", err)
	}
	name := want
	if name == "" {
		var r [4]byte
		rand.Read(r[:])
		name = "n-" + hex.EncodeToString(r[:])
	}
	if !clusterName.MatchString(name) {
		return "", fmt.Errorf("cluster: invalid node name %q: use 1-32 of a-z A-Z 0-9 _ -", name)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	if err := os.WriteFile(p, []byte(name+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	return name, nil
}

// natsLogger sends the nats-server's log to slog; its notices are Debug
// (they are many and routine), warnings and errors stay what they are.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) {
	l.log.Log(context.Background(), slog.LevelDebug, fmt.Sprintf(format, v...))
}
func (l natsLogger) Warnf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any) {}
func (l natsLogger) Tracef(format string, v ...any) {}
