package bench

import (
	"context"
	"fmt"
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
// server, at 1 and 32 connections in interleaved rounds.
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
	bare, fn, route := results[targets[0].name], results[targets[1].name], results[targets[2].name]
	fmt.Fprintf(o.Out, "\n| | bare net/http | mote /fn/hello (plain) | mote route (HTTP function) | route ÷ /fn |\n|---|---|---|---|---|\n")
	fmt.Fprintf(o.Out, "| p50 @ 1 conn | %s | %s | %s | %.2f× |\n", us(time.Duration(Median(bare[1], p50))), us(time.Duration(Median(fn[1], p50))), us(time.Duration(Median(route[1], p50))), Median(route[1], p50)/Median(fn[1], p50))
	fmt.Fprintf(o.Out, "| req/s @ 32 conns | %.0f | %.0f | %.0f | %.2f× |\n", Median(bare[32], rps), Median(fn[32], rps), Median(route[32], rps), Median(route[32], rps)/Median(fn[32], rps))
	fmt.Fprintf(o.Out, "| p50 @ 32 conns | %s | %s | %s | %.2f× |\n", us(time.Duration(Median(bare[32], p50))), us(time.Duration(Median(fn[32], p50))), us(time.Duration(Median(route[32], p50))), Median(route[32], p50)/Median(fn[32], p50))
	return nil
}
