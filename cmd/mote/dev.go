package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mote-run/mote/internal/ignore"
)

// cmdDev is `mote dev [DIR]`: deploy DIR, then watch it and rebuild,
// redeploy and invoke on every save, streaming the function's logs.
func cmdDev(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	d := addDeployFlags(fs)
	var o devOptions
	fs.StringVar(&o.name, "name", "", "the function's name (default: mote.json's name, or the directory's)")
	fs.StringVar(&o.event, "d", "", "the event sent after each deploy")
	fs.BoolVar(&o.noInvoke, "no-invoke", false, "do not invoke after a deploy (the time printed is then to the deploy's end)")
	fs.DurationVar(&o.poll, "poll", 200*time.Millisecond, "how often the directory is checked for changes")
	pos, err := parse(fs, args)
	if err != nil || len(pos) > 1 {
		if err == nil {
			fmt.Fprintln(stderr, "usage: mote dev [DIR] [-d EVENT] [deploy flags]")
		}
		return 2
	}
	o.dir = "."
	if len(pos) == 1 {
		o.dir = pos[0]
	}
	if st, err := os.Stat(o.dir); err != nil || !st.IsDir() {
		return fail(stderr, fmt.Errorf("%s is not a function's directory", o.dir))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := devLoop(ctx, c, d, o, stdout, stderr); err != nil {
		return fail(stderr, err)
	}
	return 0
}

type devOptions struct {
	dir, name, event string
	noInvoke         bool
	poll             time.Duration
}

// devLoop deploys, then redeploys on every change until ctx ends. A
// failed build or deploy is reported and the loop waits for the next
// change; the version that served before keeps serving.
func devLoop(ctx context.Context, c *client, d *deployFlags, o devOptions, stdout, stderr io.Writer) error {
	var out sync.Mutex // lines from the log follower and the loop
	say := func(w io.Writer, format string, a ...any) {
		out.Lock()
		fmt.Fprintf(w, format+"\n", a...)
		out.Unlock()
	}
	var followOnce sync.Once
	round := func(changed time.Time) {
		p, err := d.plan(c, o.name, o.dir, io.Discard)
		if err != nil {
			say(stderr, "mote dev: %v", err)
			return
		}
		o.name = p.name
		v, err := p.deploy(c, stderr)
		if err != nil {
			say(stderr, "mote dev: %v\nwaiting for the next change (the version before keeps serving)", errText(err))
			return
		}
		took := time.Since(changed)
		followOnce.Do(func() {
			go followLogs(ctx, c, p.name, time.Now(), func(line string) { say(stdout, "%s", line) })
		})
		if o.noInvoke {
			say(stdout, "== %s version %d deployed %s after the change", v.Function, v.Number, took.Round(time.Millisecond))
			return
		}
		resp, body, err := post(c, "/fn/"+url.PathEscape(p.name), o.event)
		took = time.Since(changed)
		switch {
		case err != nil:
			say(stderr, "mote dev: invoking: %v", err)
		case resp.StatusCode >= 300:
			say(stdout, "== %s version %d: %s after the change, failed: %d %s", v.Function, v.Number, took.Round(time.Millisecond), resp.StatusCode, oneLine(body))
		default:
			say(stdout, "== %s version %d answered %s after the change: %s", v.Function, v.Number, took.Round(time.Millisecond), oneLine(body))
		}
	}

	say(stdout, "== watching %s (Ctrl-C to stop)", o.dir)
	last, err := snapshot(o.dir)
	if err != nil {
		return err
	}
	round(time.Now())
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now, err := snapshot(o.dir)
		if err != nil {
			say(stderr, "mote dev: %v", err)
			continue
		}
		if now.sum == last.sum {
			continue
		}
		last = now
		changed := now.newest
		if changed.IsZero() || changed.After(time.Now()) {
			changed = time.Now()
		}
		say(stdout, "== change in %s: rebuilding", now.which)
		round(changed)
	}
}

// dirState is what the watcher compares: a hash of every watched file's
// path, size and modification time, the newest of them and its path.
type dirState struct {
	sum    uint64
	newest time.Time
	which  string
}

// snapshot reads dir's state, leaving out what .moteignore leaves out of
// a deploy and the copy of the Go SDK.
func snapshot(dir string) (dirState, error) {
	m, err := ignore.Load(dir)
	if err != nil {
		return dirState{}, err
	}
	h := fnv.New64a()
	var st dirState
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking; the next poll sees it
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if m.Match(rel, e.IsDir()) || rel == ".mote" {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := e.Info()
		if err != nil || e.IsDir() {
			return nil
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", rel, info.Size(), info.ModTime().UnixNano())
		if info.ModTime().After(st.newest) {
			st.newest, st.which = info.ModTime(), rel
		}
		return nil
	})
	st.sum = h.Sum64()
	return st, err
}

// followLogs prints fn's log lines from since on until ctx ends,
// reconnecting when the stream breaks.
func followLogs(ctx context.Context, c *client, fn string, since time.Time, print func(string)) {
	for ctx.Err() == nil {
		q := url.Values{"follow": {"1"}, "since": {since.UTC().Format(time.RFC3339Nano)}}
		req, err := c.request(http.MethodGet, "/v1/functions/"+url.PathEscape(fn)+"/logs?"+q.Encode(), nil, "")
		if err == nil {
			req = req.WithContext(ctx)
			var resp *http.Response
			if resp, err = c.do(req); err == nil {
				p := &logPrinter{}
				last := readLogLines(resp.Body, func(l logLine) {
					for _, s := range p.render(l) {
						print(s)
					}
				})
				resp.Body.Close()
				if !last.IsZero() {
					since = last.Add(time.Nanosecond)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func errText(err error) string { return strings.TrimSpace(err.Error()) }
