package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
)

// HTTPFunctions measures an HTTP function (the Go SDK's http.Handler in a
// wasm reactor, examples/hello-http) through a public route against the
// plain invocation of a handler answering the same bytes (POST /fn/hello,
// examples/hello-reactor, the fast path), beside a bare Go net/http
// server and, when it can be had, workerd (npm's workerd package) serving
// an equivalent fetch worker, at 1 and 32 connections in interleaved
// rounds.
func HTTPFunctions(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	wrk, err := NeedTool("wrk", "wrk")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	hello, web := filepath.Join(tmp, "hello.wasm"), filepath.Join(tmp, "web.wasm")
	if err := gobuild.Wasm(filepath.Join(o.Examples, "hello-reactor"), hello, true); err != nil {
		return err
	}
	if err := gobuild.Wasm(filepath.Join(o.Examples, "hello-http"), web, true); err != nil {
		return err
	}
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	for _, args := range [][]string{
		{"deploy", "hello", hello, "--min-warm", "2"},
		{"deploy", "web", web, "--min-warm", "2", "--http"},
		{"route", "add", "/web/*", "web", "--public"},
	} {
		if out, err := exec.CommandContext(ctx, o.Mote, append(args, "--server", mote.URL)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v: %s", args, err, out)
		}
	}
	peer, err := startProc(ctx, o.Mote, []string{"bench-peer", "--addr", "127.0.0.1:0"}, regexp.MustCompile(`http://(\S+)`))
	if err != nil {
		return err
	}
	defer peer.Stop()

	targets := []struct{ name, url string }{
		{"bare net/http", peer.URL + "/"},
		{"mote /fn/hello", mote.URL + "/fn/hello"},
		{"mote route /web/hello", mote.URL + "/web/hello"},
	}
	if wd, err := startWorkerd(ctx, tmp); err != nil {
		fmt.Fprintf(o.Out, "workerd: not run: %v\n", err)
	} else {
		defer wd.Stop()
		targets = append(targets, struct{ name, url string }{"workerd fetch", wd.URL + "/"})
	}
	for _, t := range targets {
		if body, _, err := post(t.url, "x", nil); err != nil || body != "hello, x" {
			return fmt.Errorf("%s answered %q, %v", t.name, body, err)
		}
	}
	results := map[string]map[int][]Load{}
	for _, t := range targets {
		results[t.name] = map[int][]Load{}
	}
	fmt.Fprintf(o.Out, "warm POST, wrk on loopback, %d rounds of %s per point, interleaved\n", o.Rounds, o.Duration)
	for round := 0; round < o.Rounds; round++ {
		for _, conns := range []int{1, 32} {
			for _, t := range targets {
				l, err := Wrk(ctx, wrk, t.url, conns, o.Duration, "x", nil)
				if err != nil {
					return err
				}
				results[t.name][conns] = append(results[t.name][conns], l)
				fmt.Fprintf(o.Out, "  round %d %-22s c=%-2d p50 %-8s p99 %-8s %8.0f req/s errors %d\n", round+1, t.name, conns, us(l.P50), us(l.P99), l.RPS, l.Errors)
			}
		}
	}
	p50 := func(l Load) float64 { return float64(l.P50) }
	rps := func(l Load) float64 { return l.RPS }
	fn, route := results[targets[1].name], results[targets[2].name]
	fmt.Fprintf(o.Out, "\n| | p50 @ 1 conn | req/s @ 32 conns | p50 @ 32 conns |\n|---|---|---|---|\n")
	for _, t := range targets {
		r := results[t.name]
		fmt.Fprintf(o.Out, "| %s | %s | %.0f | %s |\n", t.name, us(time.Duration(Median(r[1], p50))), Median(r[32], rps), us(time.Duration(Median(r[32], p50))))
	}
	fmt.Fprintf(o.Out, "| **route ÷ /fn** | %.2f× | %.2f× | %.2f× |\n",
		Median(route[1], p50)/Median(fn[1], p50), Median(route[32], rps)/Median(fn[32], rps), Median(route[32], p50)/Median(fn[32], p50))
	return nil
}

// workerdWorker answers as the hello reactor does.
const workerdWorker = `export default {
  async fetch(request) {
    return new Response("hello, " + (await request.text()));
  },
};
`

// startWorkerd starts workerd serving workerdWorker on a free loopback
// port: the binary named by MOTE_BENCH_WORKERD, else workerd on PATH,
// else npm's workerd package installed under tmp with npm.
func startWorkerd(ctx context.Context, tmp string) (*Proc, error) {
	bin := os.Getenv("MOTE_BENCH_WORKERD")
	if bin == "" {
		bin, _ = exec.LookPath("workerd")
	}
	if bin == "" {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return nil, fmt.Errorf("no workerd on PATH and no npm to install it (set MOTE_BENCH_WORKERD)")
		}
		dir := filepath.Join(tmp, "workerd")
		if out, err := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "workerd").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm install workerd: %v: %s", err, out)
		}
		bin = filepath.Join(dir, "node_modules", "@cloudflare", "workerd-linux-64", "bin", "workerd")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := filepath.Join(tmp, "workerd-config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .hello) ],
  sockets = [ ( name = "http", address = %q, http = (), service = "main" ) ]
);
const hello :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "worker.js") ],
  compatibilityDate = "2024-09-01",
);
`, addr)
	if err := os.WriteFile(filepath.Join(dir, "worker.js"), []byte(workerdWorker), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.capnp"), []byte(config), 0o644); err != nil {
		return nil, err
	}
	// workerd says where it listens on stderr, if at all: wait for the
	// port instead.
	cmd := exec.CommandContext(ctx, bin, "serve", filepath.Join(dir, "config.capnp"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return &Proc{URL: "http://" + addr, cmd: cmd}, nil
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("workerd did not listen on %s within 30s", addr)
}
