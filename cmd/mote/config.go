package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// cmdConfig prints the whole effective config of a function's current
// version: what a redeploy starts from.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the config as JSON (the form of mote.json)")
	ver := fs.Int("version", 0, "that version's config instead of the current one's")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote config NAME [--json] [--version N]")
		return 2
	}
	var f system.Function
	if err := c.json(http.MethodGet, "/v1/functions/"+url.PathEscape(pos[0]), nil, &f); err != nil {
		return fail(stderr, err)
	}
	want := f.Current
	if *ver > 0 {
		want = *ver
	}
	var v *registry.Version
	for _, x := range f.Versions {
		if x.Number == want {
			v = x
		}
	}
	if v == nil {
		return fail(stderr, fmt.Errorf("function %q has no version %d", f.Name, want))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v.Config); err != nil {
			return fail(stderr, err)
		}
		return 0
	}
	cfg := v.Config
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k string, val any) { fmt.Fprintf(tw, "%s\t%v\n", k, val) }
	row("function", fmt.Sprintf("%s, version %d of %d (id %s)", f.Name, v.Number, f.Latest, v.ID))
	row("runtime", cfg.Runtime)
	if cfg.Handler != "" {
		row("handler", cfg.Handler)
	}
	row("memory", cfg.Memory)
	row("timeout", cfg.Timeout)
	row("min_warm", cfg.MinWarm)
	row("max_instances", cfg.MaxInstances)
	row("max_queue", cfg.MaxQueue)
	row("idle_timeout", cfg.IdleTimeout)
	row("concurrency", orNone(cfg.Concurrency == 0, "max_instances + max_queue", fmt.Sprint(cfg.Concurrency)))
	row("cache", cfg.Cache)
	row("network", cfg.Network)
	row("read", list(cfg.Permissions.Read))
	row("write", list(cfg.Permissions.Write))
	row("invoke", list(cfg.Permissions.Invoke))
	var env []string
	for k, val := range cfg.Env {
		env = append(env, k+"="+val)
	}
	sort.Strings(env)
	row("env", list(env))
	var secrets []string
	for _, g := range cfg.Secrets {
		if g.EnvName() != g.Name {
			secrets = append(secrets, g.Name+" as "+g.EnvName())
		} else {
			secrets = append(secrets, g.Name)
		}
	}
	row("secrets", list(secrets))
	r := cfg.Retry
	row("retry", orNone(r.Attempts == 0 && len(r.On) == 0, "default", fmt.Sprintf("attempts %d, backoff %s, on %s", r.Attempts, r.Backoff, list(r.On))))
	row("on_success", orNone(cfg.OnSuccess == "", "-", cfg.OnSuccess))
	row("on_failure", orNone(cfg.OnFailure == "", "-", cfg.OnFailure))
	tw.Flush()
	return 0
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func orNone(none bool, ifNone, value string) string {
	if none {
		return ifNone
	}
	return value
}
