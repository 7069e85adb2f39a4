package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/registry"
)

// cmdDemo starts a server on a free loopback port with a fresh data
// directory, builds the bundled example functions from source, deploys and
// invokes them, and prints what happened.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	examples := fs.String("examples", "examples", "directory holding the example functions' sources")
	keep := fs.Bool("keep", false, "keep serving after the demo (Ctrl-C to stop)")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	if err := demo(*examples, *keep, stdout); err != nil {
		fmt.Fprintf(stderr, "mote demo: %v\n", err)
		return 1
	}
	return 0
}

func demo(examples string, keep bool, out io.Writer) error {
	if _, err := os.Stat(filepath.Join(examples, "hello-wasi")); err != nil {
		return fmt.Errorf("example sources not found under %s (run from the repository root, or pass --examples)", examples)
	}
	tmp, err := os.MkdirTemp("", "mote-demo-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	say("== building the example functions from source (Go %s)", strings.TrimPrefix(gobuild.Version(), "go"))
	if firstBuild() {
		say("   (a first run compiles the Go standard library for wasm, a few minutes on a small machine; later runs take seconds)")
	}
	type fn struct {
		name, dir, note string
		reactor         bool
	}
	fns := []fn{
		{"hello-wasi", "hello-wasi", "plain WASI command: stdin → stdout, no SDK", false},
		{"hello", "hello-reactor", "Go SDK reactor: instantiated once, reused", true},
	}
	built := map[string]string{}
	for _, f := range fns {
		t0 := time.Now()
		path := filepath.Join(tmp, f.name+".wasm")
		if err := gobuild.Wasm(filepath.Join(examples, f.dir), path, f.reactor); err != nil {
			return err
		}
		st, _ := os.Stat(path)
		say("   %-11s %5.1f MB in %s", f.name, float64(st.Size())/1e6, time.Since(t0).Round(time.Millisecond))
		built[f.name] = path
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	sc := serveConfig{addr: "127.0.0.1:0", dataDir: filepath.Join(tmp, "data"), maxPayload: 6 << 20, drain: 5 * time.Second}
	go func() {
		errc <- serve(ctx, sc, slog.New(slog.DiscardHandler), func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		return err
	}
	base := "http://" + addr
	c := &client{base: base, http: &http.Client{}}
	say("\n== mote serve is running on %s (data in a temporary directory)", base)

	say("\n== deploying (validated, compiled once, pool warmed before traffic)")
	for _, f := range fns {
		t0 := time.Now()
		v, err := c.deploy(f.name, built[f.name], false, registry.Config{})
		if err != nil {
			return fmt.Errorf("deploying %s: %w", f.name, err)
		}
		say("   %-11s version %d in %-8s %s", f.name, v.Number, time.Since(t0).Round(time.Millisecond), f.note)
	}

	say("\n== invoking over HTTP: POST %s/fn/NAME", base)
	for _, f := range fns {
		for _, event := range []string{"Berkeley", "again"} {
			resp, body, err := post(c, "/fn/"+f.name, event)
			if err != nil {
				return err
			}
			say("   %-11s %-10q → %-18q cold=%-5s cpu=%sµs billed=%sms  (id %s)", f.name, event, strings.TrimSpace(body),
				resp.Header.Get(api.HeaderCold), resp.Header.Get(api.HeaderCPU), resp.Header.Get(api.HeaderBilled), resp.Header.Get(api.HeaderInvocationID))
		}
	}

	say("\n== warm latency, 2000 sequential invocations of the reactor over HTTP (Go client, same process)")
	lat := make([]time.Duration, 0, 2000)
	for i := 0; i < 2000; i++ {
		t0 := time.Now()
		if _, _, err := post(c, "/fn/hello", "x"); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	say("   p50 %s  p99 %s  (bench/ measures with wrk against a bare Go server)", lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))

	say("\n== bad input gets a clear error and the platform keeps serving")
	garbage := filepath.Join(tmp, "garbage.wasm")
	os.WriteFile(garbage, []byte("this is not wasm"), 0o644)
	if _, err := c.deploy("broken", garbage, false, registry.Config{}); err != nil {
		say("   deploy of a non-wasm file   → %v", err)
	}
	if resp, body, err := post(c, "/fn/nope", ""); err == nil {
		say("   invoke of an unknown name   → %d %s", resp.StatusCode, strings.TrimSpace(body))
	}
	if resp, body, err := post(c, "/fn/hello", strings.Repeat("x", 7<<20)); err == nil {
		say("   a 7 MiB event               → %d %s", resp.StatusCode, strings.TrimSpace(body))
	}
	if _, body, err := post(c, "/fn/hello", "still here"); err == nil {
		say("   and then                    → %q", strings.TrimSpace(body))
	}

	if keep {
		say("\nserving on %s until Ctrl-C", base)
		<-waitSignal()
	}
	cancel()
	return <-errc
}

func post(c *client, path, body string) (*http.Response, string, error) {
	req, err := c.request(http.MethodPost, path, strings.NewReader(body), "text/plain")
	if err != nil {
		return nil, "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}
