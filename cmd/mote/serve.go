package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/process"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/telemetry"
)

// serveConfig is what `mote serve` is started with.
type serveConfig struct {
	addr       string
	dataDir    string
	tokenFile  string
	tlsCert    string
	tlsKey     string
	maxPayload registry.Size
	drain      time.Duration
	logLevel   string
	debugAddr  string
	history    time.Duration
	maxConns   int
	unconfined bool
	secretsKey string
	tracing    telemetry.TracingConfig
	cluster    clusterFlags  // cluster.go
	logsSize   string        // per function, e.g. 64MiB
	logsAge    time.Duration // per function
}

// defaultDataDir is $MOTE_DATA, else $XDG_DATA_HOME/mote, else
// ~/.local/share/mote.
func defaultDataDir() string {
	if d := os.Getenv("MOTE_DATA"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "mote")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "mote")
	}
	return "mote-data"
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sc := serveConfig{maxPayload: system.DefaultMaxPayload}
	fs.StringVar(&sc.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&sc.dataDir, "data", defaultDataDir(), "data directory (env MOTE_DATA)")
	fs.StringVar(&sc.tokenFile, "token-file", "", "file holding the admin bearer token (required off loopback)")
	fs.StringVar(&sc.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS (with --tls-key)")
	fs.StringVar(&sc.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.TextVar(&sc.maxPayload, "max-payload", sc.maxPayload, "largest event accepted")
	fs.DurationVar(&sc.drain, "drain", 30*time.Second, "how long SIGTERM waits for in-flight invocations")
	fs.StringVar(&sc.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&sc.history, "history", flow.DefaultRetention, "how long invocation records (call trees) are kept; 0 keeps them forever")
	fs.BoolVar(&sc.unconfined, "unconfined-processes", false, "run process functions even where they cannot be sandboxed (not root): they then see the host's files and run as your user; for your own code only")
	fs.IntVar(&sc.maxConns, "max-conns", 0, "most API connections open at once; more are closed at once (default 8192, or half the file descriptor limit)")
	fs.StringVar(&sc.secretsKey, "secrets-key-file", "", "file holding the key that seals secrets at rest (default DATA/secrets.key, created 0600 on first start)")
	sc.cluster.register(fs)
	fs.StringVar(&sc.logsSize, "logs-max-size", "64MiB", "function logs kept per function, at most (oldest 4 MiB segments go first)")
	fs.DurationVar(&sc.logsAge, "logs-max-age", 7*24*time.Hour, "function log lines older than this are deleted")
	fs.StringVar(&sc.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this loopback address (e.g. 127.0.0.1:6060)")
	traceFlags(fs, &sc.tracing)
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(sc.logLevel)); err != nil {
		fmt.Fprintf(stderr, "mote: bad --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if os.Getenv("GOGC") == "" {
		// The live heap of a serving Mote is small and its allocation rate
		// high (every invocation allocates a little), so the default
		// GOGC=100 collects very often; 400 trades some memory for CPU.
		// GOGC in the environment overrides this.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	scheme := "http"
	if sc.tlsCert != "" {
		scheme = "https"
	}
	ready := func(addr string) {
		fmt.Fprintf(stdout, "mote serving on %s://%s (data in %s)\n", scheme, addr, sc.dataDir)
	}
	if err := serve(ctx, sc, log, ready); err != nil {
		fmt.Fprintf(stderr, "mote: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the platform until ctx ends, then drains and shuts down.
func serve(ctx context.Context, sc serveConfig, log *slog.Logger, ready func(addr string)) error {
	token, err := readToken(sc.tokenFile)
	if err != nil {
		return err
	}
	if token == "" && !isLoopback(sc.addr) {
		return fmt.Errorf("refusing to listen on %s without an admin token: pass --token-file (or bind to 127.0.0.1)", sc.addr)
	}
	tlsConfig, err := loadTLS(sc.tlsCert, sc.tlsKey)
	if err != nil {
		return err
	}
	fdir, err := functionsDir(sc.dataDir)
	if err != nil {
		return err
	}
	tel, err := telemetry.New(telemetry.Config{Tracing: sc.tracing})
	if err != nil {
		return err
	}
	defer shutdownTelemetry(tel, log)
	rts, err := newRuntimes(ctx, sc.dataDir, fdir, sc.unconfined, log)
	if err != nil {
		return err
	}
	cl, err := sc.cluster.open(ctx, sc.dataDir, log)
	if err != nil {
		for _, rt := range rts {
			rt.Close(ctx)
		}
		return err
	}
	defer cl.close()
	var member system.Cluster
	if cl != nil {
		member = cl.node
	}
	var logsSize registry.Size // 0: the default
	if sc.logsSize != "" {
		if logsSize, err = registry.ParseSize(sc.logsSize); err != nil {
			return fmt.Errorf("--logs-max-size: %w", err)
		}
	}
	sys, err := system.Open(ctx, system.Config{
		Telemetry:      tel,
		Logs:           logs.Config{MaxBytes: int64(logsSize), MaxAge: sc.logsAge},
		DataDir:        sc.dataDir,
		Logger:         log,
		MaxPayload:     int64(sc.maxPayload),
		Runtimes:       rts,
		FunctionsDir:   fdir,
		History:        history(sc.history),
		SecretsKeyFile: sc.secretsKey,
		Cluster:        member,
	})
	if err != nil {
		for _, rt := range rts {
			rt.Close(ctx)
		}
		return err
	}
	acfg := api.Config{System: sys, Logger: log, Token: token}
	if cl != nil {
		acfg.Cluster = cl.node
	}
	gw := api.New(acfg)
	if sc.debugAddr != "" {
		if !isLoopback(sc.debugAddr) {
			sys.Shutdown(context.Background())
			return fmt.Errorf("--debug-addr must be a loopback address, not %s", sc.debugAddr)
		}
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			if err := http.ListenAndServe(sc.debugAddr, mux); err != nil {
				log.Warn("debug listener", "err", err)
			}
		}()
	}
	ln, err := net.Listen("tcp", sc.addr)
	if err != nil {
		sys.Shutdown(context.Background())
		return err
	}
	// Header and idle timeouts and a connection cap, the same on the fast
	// path and net/http's side, so idle clients cannot stall the API. The
	// cap counts TCP connections, below TLS, so that one stalled in its
	// handshake counts too.
	lim := api.Limits{MaxConns: sc.maxConns}.WithDefaults()
	ln = api.LimitListener(ln, lim.MaxConns, log)
	if tlsConfig != nil {
		// Both servers read decrypted bytes: the fast path from the
		// *tls.Conn it accepts, net/http from the connections handed on.
		ln = tls.NewListener(ln, tlsConfig)
	}
	if cl != nil {
		// The node takes work from the others (registry changes, handed-over
		// and queued invocations) once its own functions are loaded.
		if err := cl.node.Start(sys, ln.Addr().String()); err != nil {
			ln.Close()
			sys.Shutdown(context.Background())
			return err
		}
	}
	srv := gw.HTTPServer(lim)
	errc := make(chan error, 1)
	// Plain invocations are served by the gateway's fast path; every other
	// connection is handed to srv through fast's Accept.
	fast := gw.Listen(ln, api.FastConfig{ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout})
	go func() { errc <- srv.Serve(fast) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight invocations", "timeout", sc.drain)
	}
	dctx, cancel := context.WithTimeout(context.Background(), sc.drain)
	defer cancel()
	// Stop accepting, let in-flight requests finish, then close the parts.
	serr := srv.Shutdown(dctx)
	if serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", serr)
	}
	if ferr := fast.Shutdown(dctx); ferr != nil {
		log.Warn("http fast path shutdown", "err", ferr)
	}
	if e := sys.Shutdown(dctx); e != nil && err == nil {
		err = e
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// history maps --history to the system's setting: 0 on the command line
// means forever.
func history(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// newRuntimes starts the runtimes available on this machine. The process
// runtime needs to sandbox processes; where it cannot (not root, no
// namespaces) and --unconfined-processes was not given, Mote serves wasm
// functions alone and says why.
func newRuntimes(ctx context.Context, dataDir, functionsDir string, unconfined bool, log *slog.Logger) (map[runtime.Kind]runtime.Runtime, error) {
	w, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(dataDir, "wasm-cache"), Logger: log.With("runtime", "wasm")})
	if err != nil {
		return nil, err
	}
	rts := map[runtime.Kind]runtime.Runtime{runtime.KindWasm: w}
	// The SDKs go beside the function directories, so functions import
	// them without bundling a copy.
	if err := os.MkdirAll(functionsDir, 0o700); err != nil {
		return nil, err
	}
	p, err := process.New(ctx, process.Config{Logger: log.With("runtime", "process"), SDKRoot: functionsDir, Unconfined: unconfined})
	if err != nil {
		log.Warn("process functions are not available on this server", "err", err)
	} else {
		rts[runtime.KindProcess] = p
		log.Info("process functions: sandbox ready", "namespaces", p.Sandbox().Namespaces(), "cgroups", p.Sandbox().Controllers())
	}
	return rts, nil
}

// functionsDir is where process functions are unpacked: DataDir/functions,
// absolute, as the sandbox mounts each function's directory and the SDKs at
// their host paths in the function's own root. Like the data directory it
// is Mote's alone (0700); functions never need to reach it from the host.
func functionsDir(dataDir string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(abs, "functions"), nil
}

// loadTLS returns the HTTPS configuration of --tls-cert and --tls-key, or
// nil when neither is set. It offers HTTP/1.1 alone: the fast path reads
// HTTP/1.1, and a connection it hands to net/http is no longer a
// *tls.Conn, on which net/http would negotiate HTTP/2.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}

// readToken reads the admin token from path. As ssh does for a private
// key, it refuses a file that group or others may read or write, or that
// another user owns: anyone who can read the token is the admin.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o: group or others can read or change it; run chmod 600 %s", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Getuid() {
		return "", fmt.Errorf("token file %s belongs to uid %d, not to the user running mote (uid %d)", path, st.Uid, os.Getuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if len(b) > 4096 {
		return "", fmt.Errorf("token file %s is larger than 4 KiB", path)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("token in %s is too short: use at least 16 characters", path)
	}
	return t, nil
}

// isLoopback reports whether a listen address only accepts local
// connections.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
