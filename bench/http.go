package bench

import (
	"context"
	"fmt"
	"github.com/mote-run/mote/internal/gobuild"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// ServePeer runs the baseline the gateway is measured against: a bare Go
// net/http server that answers POST with "hello, " + body, the same bytes
// the hello reactor returns. It prints its URL, then serves until ctx ends.
func ServePeer(ctx context.Context, addr string, out func(string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 0, 64)
		buf = append(buf, "hello, "...)
		b := make([]byte, 512)
		for {
			n, err := r.Body.Read(b)
			buf = append(buf, b[:n]...)
			if err != nil {
				break
			}
		}
		w.Write(buf)
	})}
	out(fmt.Sprintf("peer serving on http://%s", ln.Addr()))
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// Gateway measures warm POST /fn/hello (a Go SDK reactor) against the bare
// Go server, at 1 and 32 connections, in interleaved rounds.
func Gateway(ctx context.Context, o Options) error {
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
	wasm := filepath.Join(tmp, "hello.wasm")
	if err := gobuild.Wasm(filepath.Join(o.Examples, "hello-reactor"), wasm, true); err != nil {
		return err
	}
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	if out, err := exec.CommandContext(ctx, o.Mote, "deploy", "hello", wasm, "--server", mote.URL, "--min-warm", "2").CombinedOutput(); err != nil {
		return fmt.Errorf("deploy: %v: %s", err, out)
	}
	peer, err := startProc(ctx, o.Mote, []string{"bench-peer", "--addr", "127.0.0.1:0"}, regexp.MustCompile(`http://(\S+)`))
	if err != nil {
		return err
	}
	defer peer.Stop()

	targets := []struct{ name, url string }{{"bare net/http", peer.URL + "/"}, {"mote /fn/hello", mote.URL + "/fn/hello"}}
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
				fmt.Fprintf(o.Out, "  round %d %-15s c=%-2d p50 %-8s p99 %-8s %8.0f req/s errors %d\n", round+1, t.name, conns, us(l.P50), us(l.P99), l.RPS, l.Errors)
			}
		}
	}
	p50 := func(l Load) float64 { return float64(l.P50) }
	p99 := func(l Load) float64 { return float64(l.P99) }
	rps := func(l Load) float64 { return l.RPS }
	bare, m := results[targets[0].name], results[targets[1].name]
	fmt.Fprintf(o.Out, "\n| | bare net/http | mote /fn/hello | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(o.Out, "| p50 @ 1 conn | %s | %s | %.2f× |\n", us(time.Duration(Median(bare[1], p50))), us(time.Duration(Median(m[1], p50))), Median(m[1], p50)/Median(bare[1], p50))
	fmt.Fprintf(o.Out, "| p99 @ 1 conn | %s | %s | %.2f× |\n", us(time.Duration(Median(bare[1], p99))), us(time.Duration(Median(m[1], p99))), Median(m[1], p99)/Median(bare[1], p99))
	fmt.Fprintf(o.Out, "| req/s @ 32 conns | %.0f | %.0f | %.2f× |\n", Median(bare[32], rps), Median(m[32], rps), Median(m[32], rps)/Median(bare[32], rps))
	fmt.Fprintf(o.Out, "| p50 @ 32 conns | %s | %s | %.2f× |\n", us(time.Duration(Median(bare[32], p50))), us(time.Duration(Median(m[32], p50))), Median(m[32], p50)/Median(bare[32], p50))
	return nil
}
