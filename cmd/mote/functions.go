package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

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
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	var out struct {
		Functions []system.Function `json:"functions"`
	}
	if err := c.json(http.MethodGet, "/v1/functions", nil, &out); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, out.Functions)
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
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote info NAME [--json]")
		return 2
	}
	var f system.Function
	if err := c.json(http.MethodGet, "/v1/functions/"+url.PathEscape(pos[0]), nil, &f); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, f)
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
