package main

import (
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
	"strings"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/ignore"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/system"
)

// manifestName is the optional config file in a function's directory.
const manifestName = "mote.json"

// deployFlags are deploy's config flags; dev shares them.
type deployFlags struct {
	fs                                                         *flag.FlagSet
	memory, cache, configFile, read, write, invoke, secretList string
	timeout, idle                                              time.Duration
	env                                                        envList
	cfg                                                        registry.Config
	kind, calls                                                string
	reset                                                      bool
}

func addDeployFlags(fs *flag.FlagSet) *deployFlags {
	d := &deployFlags{fs: fs, env: envList{}}
	fs.StringVar(&d.memory, "memory", "", "memory limit, e.g. 128MiB")
	fs.DurationVar(&d.timeout, "timeout", 0, "per-invocation timeout, e.g. 30s")
	fs.IntVar(&d.cfg.MinWarm, "min-warm", 0, "instances kept warm")
	fs.IntVar(&d.cfg.MaxInstances, "max-instances", 0, "most instances at once")
	fs.IntVar(&d.cfg.MaxQueue, "max-queue", 0, "invocations that may wait for an instance")
	fs.DurationVar(&d.idle, "idle-timeout", 0, "stop idle instances after this, e.g. 5m")
	fs.Var(d.env, "env", "environment variable K=V (repeatable)")
	fs.StringVar(&d.kind, "runtime", "", "wasm or process (default: from mote.json, the sources, or wasm for a file and process for a directory)")
	fs.StringVar(&d.cfg.Handler, "handler", "", "process functions: the command that starts the function")
	fs.BoolVar(&d.cfg.Network, "network", false, "process functions: allow network access")
	fs.StringVar(&d.cache, "cache", "", "budget of the function's local cache, e.g. 16MiB")
	fs.StringVar(&d.read, "read", "", "buckets the function may read (comma-separated, '*' for all)")
	fs.StringVar(&d.write, "write", "", "buckets the function may write")
	fs.StringVar(&d.invoke, "invoke", "", "functions the function may invoke, start or map over (comma-separated, 'img-*' patterns, '*' for all; default none)")
	fs.StringVar(&d.secretList, "secrets", "", "secrets injected as env vars of the same name (comma-separated; see mote secret)")
	fs.StringVar(&d.calls, "calls", "", "functions this one calls, prewarmed when it gets traffic (comma-separated)")
	fs.Var(httpFlag{&d.cfg.HTTP}, "http", "an HTTP function: sees the whole request (--http=wagi: a WASI command by CGI)")
	fs.StringVar(&d.configFile, "config", "", "JSON config file (default: DIR/"+manifestName+" if present)")
	fs.BoolVar(&d.reset, "reset", false, "start from the defaults instead of the current version's config")
	return d
}

// apply sets on c the flags that were given.
func (d *deployFlags) apply(c *registry.Config) error {
	var flagErr error
	d.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "memory":
			s, err := registry.ParseSize(d.memory)
			flagErr = errors.Join(flagErr, err)
			c.Memory = s
		case "cache":
			s, err := registry.ParseSize(d.cache)
			flagErr = errors.Join(flagErr, err)
			c.Cache = s
		case "timeout":
			c.Timeout = registry.Duration(d.timeout)
		case "idle-timeout":
			c.IdleTimeout = registry.Duration(d.idle)
		case "min-warm":
			c.MinWarm = d.cfg.MinWarm
		case "max-instances":
			c.MaxInstances = d.cfg.MaxInstances
		case "max-queue":
			c.MaxQueue = d.cfg.MaxQueue
		case "handler":
			c.Handler = d.cfg.Handler
		case "network":
			c.Network = d.cfg.Network
		case "http":
			c.HTTP = d.cfg.HTTP
		case "runtime":
			c.Runtime = runtime.Kind(d.kind)
		case "read":
			c.Permissions.Read = splitList(d.read)
		case "write":
			c.Permissions.Write = splitList(d.write)
		case "invoke":
			c.Permissions.Invoke = splitList(d.invoke)
		case "calls":
			c.Calls = splitList(d.calls)
		case "secrets":
			c.Secrets = nil
			for _, n := range splitList(d.secretList) {
				c.Secrets = append(c.Secrets, registry.SecretGrant{Name: n})
			}
		case "env":
			if c.Env == nil {
				c.Env = map[string]string{}
			}
			for k, v := range d.env {
				c.Env[k] = v
			}
		}
	})
	return flagErr
}

func (d *deployFlags) set(name string) bool {
	set := false
	d.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func cmdDeploy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	d := addDeployFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	var name, path string
	switch len(pos) {
	case 1:
		path = pos[0]
	case 2:
		name, path = pos[0], pos[1]
	default:
		fmt.Fprintln(stderr, "usage: mote deploy [NAME] DIR | mote deploy NAME FILE.wasm|DIR [flags]")
		return 2
	}
	p, err := d.plan(c, name, path, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	v, err := p.deploy(c, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "deployed %s version %d (%s, %d bytes, id %s)\n", v.Function, v.Number, v.Config.Runtime, v.Size, v.ID)
	for _, m := range v.Missing {
		fmt.Fprintf(stderr, "mote: warning: not confirmed by node %s\n", m)
	}
	return 0
}

// deployPlan is what a deploy will do: the function, its effective
// config and how its artifact is made.
type deployPlan struct {
	name  string
	path  string // the file or directory given
	isDir bool
	build string // a build* constant
	cfg   registry.Config
	kept  int // the version whose config was the base; 0 if none
}

// plan works out name, config and build for a deploy of path. The config
// is the current version's (unless --reset), then mote.json's fields,
// then the flags given: a redeploy changes only what something names.
func (d *deployFlags) plan(c *client, name, path string, log io.Writer) (*deployPlan, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	p := &deployPlan{path: path, isDir: info.IsDir(), build: buildNone}
	configFile := d.configFile
	if configFile == "" && p.isDir {
		if _, err := os.Stat(filepath.Join(path, manifestName)); err == nil {
			configFile = filepath.Join(path, manifestName)
		}
	}
	var m *manifest
	if configFile != "" {
		if m, err = loadManifest(configFile); err != nil {
			return nil, err
		}
	}
	switch {
	case name != "":
	case m != nil && m.Name != "":
		name = m.Name
	case p.isDir:
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		name = filepath.Base(abs)
	default:
		return nil, errs.E(errs.BadRequest, "a file needs a name: mote deploy NAME %s", path)
	}
	p.name = name
	if err := registry.ValidName(name); err != nil {
		return nil, err
	}

	// The base: the current version's config, if there is one.
	if !d.reset {
		var f system.Function
		err := c.json(http.MethodGet, "/v1/functions/"+url.PathEscape(name), nil, &f)
		var e *errs.Error
		switch {
		case err == nil:
			for _, v := range f.Versions {
				if v.Number == f.Current {
					p.cfg, p.kept = v.Config, v.Number
				}
			}
		case errors.As(err, &e) && e.Code == errs.NotFound:
		default:
			return nil, err
		}
	}
	prevRuntime := p.cfg.Runtime
	p.cfg.Runtime = "" // from the manifest, the flags, the sources or the artifact
	if m != nil {
		if err := m.apply(&p.cfg); err != nil {
			return nil, err
		}
	}
	if err := d.apply(&p.cfg); err != nil {
		return nil, err
	}
	if p.cfg.Runtime == "" && p.kept > 0 {
		// Unnamed: the current version's runtime, where the artifact can
		// be one (a file is wasm; a directory without Go sources is a
		// process function's).
		_, err := os.Stat(filepath.Join(path, "go.mod"))
		switch {
		case !p.isDir && prevRuntime == runtime.KindWasm,
			p.isDir && (prevRuntime == runtime.KindProcess || err == nil):
			p.cfg.Runtime = prevRuntime
		}
	}
	if p.isDir {
		declared := ""
		if m != nil {
			declared = m.Build
		}
		p.build = buildKind(path, declared, p.cfg.Runtime)
	}
	if p.cfg.Runtime == "" {
		switch {
		case p.build == buildGoReactor || p.build == buildGoWASI:
			p.cfg.Runtime = runtime.KindWasm
		case p.isDir:
			p.cfg.Runtime = runtime.KindProcess
		default:
			p.cfg.Runtime = runtime.KindWasm
		}
	}
	if p.cfg.Runtime != prevRuntime && p.kept > 0 {
		// A handler belongs to the process runtime it was given for.
		if p.cfg.Runtime != runtime.KindProcess || !d.set("handler") && (m == nil || m.Handler == "") {
			p.cfg.Handler = ""
		}
	}
	if p.build == buildGoNative && p.cfg.Handler == "" {
		p.cfg.Handler = "./bootstrap"
	}
	if p.kept > 0 {
		fmt.Fprintf(log, "config: version %d's, changed only where mote.json or a flag says (--reset for the defaults; mote config %s shows it)\n", p.kept, name)
	}
	return p, nil
}

// deploy builds the sources if there are any, and uploads.
func (p *deployPlan) deploy(c *client, log io.Writer) (*deployed, error) {
	a := artifact{path: p.path, dir: p.isDir}
	if p.isDir {
		var err error
		if a, err = buildSources(p.path, p.build, p.cfg.Handler, log); err != nil {
			return nil, err
		}
		defer a.cleanup()
	}
	var skip func(string, bool) bool
	if a.dir && a.tmp == "" {
		m, err := ignore.Load(a.path)
		if err != nil {
			return nil, err
		}
		skip = m.Match
	}
	return c.deployArtifact(p.name, a.path, a.dir, p.cfg, skip, log)
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

// deployed is a deploy's answer: the version, and on a cluster the nodes
// that did not confirm it in time (docs/cluster.md).
type deployed struct {
	registry.Version
	Missing []string `json:"missing_nodes"`
}

// deploy uploads path as fn's new version with cfg, as it is.
func (c *client) deploy(name, path string, dir bool, cfg registry.Config) (*deployed, error) {
	return c.deployArtifact(name, path, dir, cfg, nil, io.Discard)
}

// progressEvery is how much is uploaded between two progress lines; an
// artifact smaller than that shows none.
const progressEvery = 8 << 20

// deployArtifact streams a multipart upload: the config, then the
// artifact (the file itself, or the directory packed as tar.gz, leaving
// out what skip names). Progress goes to log for large artifacts.
func (c *client) deployArtifact(name, path string, dir bool, cfg registry.Config, skip func(string, bool) bool, log io.Writer) (*deployed, error) {
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var total int64 // for a directory, before compression
	filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
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
				return errors.Join(registry.PackFiltered(part, path, skip), mw.Close())
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(part, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	var body io.Reader = pr
	if total >= progressEvery {
		body = &progressReader{r: pr, total: total, dir: dir, log: log, start: time.Now()}
	}
	req, err := c.request(http.MethodPut, "/v1/functions/"+url.PathEscape(name), body, mw.FormDataContentType())
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

// progressReader prints how much of an upload has been sent.
type progressReader struct {
	r          io.Reader
	total, n   int64
	next       int64
	dir        bool
	log        io.Writer
	start      time.Time
	doneSaying bool
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n >= p.next && !p.doneSaying {
		p.next = p.n + progressEvery
		rate := float64(p.n) / 1e6 / max(time.Since(p.start).Seconds(), 1e-3)
		if p.dir {
			fmt.Fprintf(p.log, "uploading: %.1f MB sent (%.1f MB before compression), %.1f MB/s\n", float64(p.n)/1e6, float64(p.total)/1e6, rate)
		} else {
			fmt.Fprintf(p.log, "uploading: %.1f of %.1f MB (%d%%), %.1f MB/s\n", float64(p.n)/1e6, float64(p.total)/1e6, 100*p.n/max(p.total, 1), rate)
		}
	}
	if err == io.EOF && !p.doneSaying {
		p.doneSaying = true
		fmt.Fprintf(p.log, "uploaded %.1f MB in %s; the server validates and warms it up\n", float64(p.n)/1e6, time.Since(p.start).Round(time.Millisecond))
	}
	return n, err
}
