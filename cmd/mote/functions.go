package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/system"
)

// manifestName is the optional config file in a function's directory.
const manifestName = "mote.json"

func cmdDeploy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	var (
		memory, cache, configFile, read, write, invoke, secretList string
		calls                                                      string
		timeout, idle                                              time.Duration
		env                                                        = envList{}
		cfg                                                        registry.Config
		kind                                                       string
	)
	fs.StringVar(&memory, "memory", "", "memory limit, e.g. 128MiB")
	fs.DurationVar(&timeout, "timeout", 0, "per-invocation timeout, e.g. 30s")
	fs.IntVar(&cfg.MinWarm, "min-warm", 0, "instances kept warm")
	fs.IntVar(&cfg.MaxInstances, "max-instances", 0, "most instances at once")
	fs.IntVar(&cfg.MaxQueue, "max-queue", 0, "invocations that may wait for an instance")
	fs.DurationVar(&idle, "idle-timeout", 0, "stop idle instances after this")
	fs.Var(env, "env", "environment variable K=V (repeatable)")
	fs.StringVar(&kind, "runtime", "", "wasm or process (default: wasm for a file, process for a directory)")
	fs.StringVar(&cfg.Handler, "handler", "", "process functions: the command that starts the function")
	fs.BoolVar(&cfg.Network, "network", false, "process functions: allow network access")
	fs.StringVar(&cache, "cache", "", "budget of the function's local cache, e.g. 16MiB")
	fs.StringVar(&read, "read", "", "buckets the function may read (comma-separated, '*' for all)")
	fs.StringVar(&write, "write", "", "buckets the function may write")
	fs.StringVar(&invoke, "invoke", "", "functions the function may invoke, start or map over (comma-separated, 'img-*' patterns, '*' for all; default none)")
	fs.StringVar(&calls, "calls", "", "functions this one calls, prewarmed when it gets traffic (comma-separated)")
	fs.StringVar(&secretList, "secrets", "", "secrets injected as env vars of the same name (comma-separated; see mote secret)")
	fs.Var(httpFlag{&cfg.HTTP}, "http", "an HTTP function: sees the whole request (--http=wagi: a WASI command by CGI)")
	fs.StringVar(&configFile, "config", "", "JSON config file (default: DIR/"+manifestName+" if present)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: mote deploy NAME FILE.wasm|DIR [flags]")
		return 2
	}
	name, path := pos[0], pos[1]
	info, err := os.Stat(path)
	if err != nil {
		return fail(stderr, err)
	}
	// Start from the manifest, then apply the flags that were set.
	var base registry.Config
	if configFile == "" && info.IsDir() {
		if _, err := os.Stat(filepath.Join(path, manifestName)); err == nil {
			configFile = filepath.Join(path, manifestName)
		}
	}
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return fail(stderr, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&base); err != nil {
			return fail(stderr, fmt.Errorf("%s: %w", configFile, err))
		}
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "memory":
			s, err := registry.ParseSize(memory)
			flagErr = errors.Join(flagErr, err)
			base.Memory = s
		case "cache":
			s, err := registry.ParseSize(cache)
			flagErr = errors.Join(flagErr, err)
			base.Cache = s
		case "timeout":
			base.Timeout = registry.Duration(timeout)
		case "idle-timeout":
			base.IdleTimeout = registry.Duration(idle)
		case "min-warm":
			base.MinWarm = cfg.MinWarm
		case "max-instances":
			base.MaxInstances = cfg.MaxInstances
		case "max-queue":
			base.MaxQueue = cfg.MaxQueue
		case "handler":
			base.Handler = cfg.Handler
		case "network":
			base.Network = cfg.Network
		case "http":
			base.HTTP = cfg.HTTP
		case "runtime":
			base.Runtime = runtime.Kind(kind)
		case "read":
			base.Permissions.Read = splitList(read)
		case "write":
			base.Permissions.Write = splitList(write)
		case "invoke":
			base.Permissions.Invoke = splitList(invoke)
		case "calls":
			base.Calls = splitList(calls)
		case "secrets":
			base.Secrets = nil
			for _, n := range splitList(secretList) {
				base.Secrets = append(base.Secrets, registry.SecretGrant{Name: n})
			}
		case "env":
			if base.Env == nil {
				base.Env = map[string]string{}
			}
			for k, v := range env {
				base.Env[k] = v
			}
		}
	})
	if flagErr != nil {
		return fail(stderr, flagErr)
	}
	if base.Runtime == "" {
		base.Runtime = runtime.KindWasm
		if info.IsDir() {
			base.Runtime = runtime.KindProcess
		}
	}
	v, err := c.deploy(name, path, info.IsDir(), base)
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "deployed %s version %d (%s, %d bytes, id %s)\n", v.Function, v.Number, v.Config.Runtime, v.Size, v.ID)
	for _, m := range v.Missing {
		fmt.Fprintf(stderr, "mote: warning: not confirmed by node %s\n", m)
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// deploy streams a multipart upload: the config, then the artifact (the
// file itself, or the directory packed as tar.gz).
// deployed is a deploy's answer: the version, and on a cluster the nodes
// that did not confirm it in time (docs/cluster.md).
type deployed struct {
	registry.Version
	Missing []string `json:"missing_nodes"`
}

func (c *client) deploy(name, path string, dir bool, cfg registry.Config) (*deployed, error) {
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("config", string(cfgJSON)); err != nil {
				return err
			}
			part, err := mw.CreateFormFile("artifact", filepath.Base(path))
			if err != nil {
				return err
			}
			if dir {
				if err := registry.Pack(part, path); err != nil {
					return err
				}
			} else {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if _, err := io.Copy(part, f); err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := c.request(http.MethodPut, "/v1/functions/"+url.PathEscape(name), pr, mw.FormDataContentType())
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v deployed
	return &v, json.NewDecoder(resp.Body).Decode(&v)
}

func cmdInvoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	data := fs.String("d", "", "event data, or @FILE to read it from a file (@- for stdin)")
	verbose := fs.Bool("v", false, "print the invocation's id, cold flag and CPU/billing to stderr")
	async := fs.Bool("async", false, "queue the invocation durably and print its id at once (see mote trace)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote invoke NAME [-d DATA|-d @FILE] [-v]")
		return 2
	}
	var body io.Reader = strings.NewReader(*data)
	if f, ok := strings.CutPrefix(*data, "@"); ok {
		if f == "-" {
			body = os.Stdin
		} else {
			fh, err := os.Open(f)
			if err != nil {
				return fail(stderr, err)
			}
			defer fh.Close()
			body = fh
		}
	}
	req, err := c.request(http.MethodPost, "/fn/"+url.PathEscape(pos[0]), body, "application/octet-stream")
	if err != nil {
		return fail(stderr, err)
	}
	if *async {
		req.Header.Set(api.HeaderAsync, "true")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fail(stderr, fmt.Errorf("cannot reach the Mote server at %s: %w", c.base, err))
	}
	defer resp.Body.Close()
	if *verbose || resp.StatusCode >= 300 {
		if id := resp.Header.Get(api.HeaderInvocationID); id != "" {
			fmt.Fprintf(stderr, "invocation %s version %s cold=%s cpu=%sµs billed=%sms\n", id, resp.Header.Get(api.HeaderVersion),
				resp.Header.Get(api.HeaderCold), resp.Header.Get(api.HeaderCPU), resp.Header.Get(api.HeaderBilled))
		}
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return fail(stderr, errs.FromHTTP(resp.StatusCode, b))
	}
	if *async {
		fmt.Fprintln(stdout, resp.Header.Get(api.HeaderInvocationID))
		return 0
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return fail(stderr, err)
	}
	return 0
}

func cmdList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	var out struct {
		Functions []system.Function `json:"functions"`
	}
	if err := c.json(http.MethodGet, "/v1/functions", nil, &out); err != nil {
		return fail(stderr, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tLATEST\tINSTANCES\tINVOCATIONS\tUPDATED")
	for _, f := range out.Functions {
		inst, n := "-", "-"
		if f.Pool != nil {
			inst = fmt.Sprintf("%d (%d idle)", f.Pool.Live, f.Pool.Idle)
			n = strconv.FormatUint(f.Pool.Invocations, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", f.Name, f.Current, f.Latest, inst, n, f.Updated.Local().Format(time.DateTime))
	}
	tw.Flush()
	return 0
}

func cmdInfo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote info NAME")
		return 2
	}
	var f system.Function
	if err := c.json(http.MethodGet, "/v1/functions/"+url.PathEscape(pos[0]), nil, &f); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: version %d of %d\n", f.Name, f.Current, f.Latest)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVERSION\tRUNTIME\tSIZE\tMEMORY\tTIMEOUT\tCREATED")
	for _, v := range f.Versions {
		mark := ""
		if v.Number == f.Current {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", mark, v.Number, v.Config.Runtime, v.Size, v.Config.Memory, v.Config.Timeout, v.Created.Local().Format(time.DateTime))
	}
	tw.Flush()
	for _, v := range f.Versions {
		if v.Number != f.Current {
			continue
		}
		if len(v.Config.Secrets) > 0 {
			var gs []string
			for _, g := range v.Config.Secrets {
				if g.EnvName() != g.Name {
					gs = append(gs, g.Name+" as "+g.EnvName())
				} else {
					gs = append(gs, g.Name)
				}
			}
			fmt.Fprintf(stdout, "secrets: %s (values never shown)\n", strings.Join(gs, ", "))
		}
		if inv := v.Config.Permissions.Invoke; len(inv) > 0 {
			fmt.Fprintf(stdout, "may invoke: %s\n", strings.Join(inv, ", "))
		}
	}
	printAliases(stdout, &f)
	if f.Pool != nil {
		fmt.Fprintf(stdout, "instances: %d live, %d idle, %d busy, %d waiting; %d invocations, %d cold starts\n",
			f.Pool.Live, f.Pool.Idle, f.Pool.Busy, f.Pool.Waiting, f.Pool.Invocations, f.Pool.ColdStarts)
		if f.Pool.Invocations > 0 {
			fmt.Fprintf(stdout, "observed (this version, since the server started): peak memory %.1f MiB, CPU per invocation %v mean, %v most\n",
				float64(f.Pool.PeakMemory)/(1<<20), f.Pool.MeanCPU.Round(time.Microsecond), f.Pool.MaxCPU.Round(time.Microsecond))
		}
		if rec := f.Pool.RecommendedMemory; rec > 0 {
			fmt.Fprintf(stdout, "recommended memory limit: %d MiB\n", rec>>20)
		}
		if f.MemoryLimit > 0 && f.Current > 0 {
			for _, v := range f.Versions {
				if v.Number == f.Current && v.Config.Memory == registry.SizeAuto {
					fmt.Fprintf(stdout, "memory: auto, now %d MiB (at most %s)\n", f.MemoryLimit>>20, v.Config.MemoryMax)
				}
			}
		}
		if n := f.Pool.Predicted; n > 0 {
			fmt.Fprintf(stdout, "kept live ahead of arrivals: %d instances (about %.0f MiB at the observed peak)\n",
				n, float64(int64(n)*f.Pool.PeakMemory)/(1<<20))
		}
	}
	return 0
}

func cmdRemove(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil || len(pos) == 0 {
		fmt.Fprintln(stderr, "usage: mote rm NAME...")
		return 2
	}
	for _, name := range pos {
		if err := c.json(http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed %s\n", name)
	}
	return 0
}

func cmdRollback(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil || len(pos) < 1 || len(pos) > 2 {
		fmt.Fprintln(stderr, "usage: mote rollback NAME [VERSION]   (default: the version before the current one)")
		return 2
	}
	n := 0
	if len(pos) == 2 {
		if n, err = strconv.Atoi(strings.TrimPrefix(pos[1], "v")); err != nil || n < 1 {
			fmt.Fprintf(stderr, "mote: %q is not a version number\n", pos[1])
			return 2
		}
	}
	var v registry.Version
	if err := c.json(http.MethodPost, "/v1/functions/"+url.PathEscape(pos[0])+"/rollback", map[string]int{"version": n}, &v); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s now serves version %d\n", v.Function, v.Number)
	return 0
}

func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	n := fs.Int("n", 100, "how many recent lines")
	inv := fs.String("invocation", "", "only this invocation's lines")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote logs NAME [-f] [-n N] [--invocation ID]")
		return 2
	}
	q := url.Values{"n": {strconv.Itoa(*n)}}
	if *follow {
		q.Set("follow", "1")
	}
	if *inv != "" {
		q.Set("invocation", *inv)
	}
	req, err := c.request(http.MethodGet, "/v1/functions/"+url.PathEscape(pos[0])+"/logs?"+q.Encode(), nil, "")
	if err != nil {
		return fail(stderr, err)
	}
	resp, err := c.do(req)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l logs.Line
		if len(strings.TrimSpace(sc.Text())) == 0 || json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		inv := l.Invocation
		if len(inv) > 8 {
			inv = inv[len(inv)-8:]
		}
		fmt.Fprintf(stdout, "%s %s %s\n", l.Time.Local().Format("15:04:05.000"), inv, l.Text)
	}
	return 0
}
