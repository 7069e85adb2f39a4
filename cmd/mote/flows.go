package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/meter"
	"github.com/mote-run/mote/internal/system"
)

// cmdTrace is `mote trace ID`: the invocation's call tree with timings.
func cmdTrace(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the tree as JSON")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mote trace INVOCATION_ID [--json]")
		return 2
	}
	p := "/v1/invocations/" + url.PathEscape(pos[0])
	if *asJSON {
		return c.stream(http.MethodGet, p, nil, stdout, stderr)
	}
	var n flow.Node
	if err := c.json(http.MethodGet, p, nil, &n); err != nil {
		return fail(stderr, err)
	}
	if err := flow.RenderTree(stdout, &n); err != nil {
		return fail(stderr, err)
	}
	return 0
}

// cmdUsage is `mote usage [NAME]`: invocations, CPU and billed time per
// function and hour, beside what Lambda's wall-clock GB-s would charge.
func cmdUsage(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	since := fs.Duration("since", 24*time.Hour, "how far back")
	hourly := fs.Bool("hourly", false, "one row per function and hour")
	asJSON := fs.Bool("json", false, "print the report as JSON (hourly rows and the total)")
	pos, err := parse(fs, args)
	if err != nil || len(pos) > 1 {
		fmt.Fprintln(stderr, "usage: mote usage [NAME] [--since 24h] [--hourly]")
		return 2
	}
	q := url.Values{"from": {time.Now().Add(-*since).UTC().Format(time.RFC3339)}}
	if len(pos) == 1 {
		q.Set("fn", pos[0])
	}
	var rep flow.UsageReport
	if err := c.json(http.MethodGet, "/v1/usage?"+q.Encode(), nil, &rep); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, rep)
	}
	rows := rep.Rows
	if !*hourly {
		byFn := map[string][]meter.Usage{}
		var order []string
		for _, r := range rows {
			if _, ok := byFn[r.Function]; !ok {
				order = append(order, r.Function)
			}
			byFn[r.Function] = append(byFn[r.Function], r)
		}
		rows = nil
		for _, fn := range order {
			s := meter.Sum(byFn[fn])
			s.Function = fn
			rows = append(rows, s)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "FUNCTION\tINVOCATIONS\tERRORS\tCPU ms\tBILLED ms\tBILLED GB-s\tWALL ms\tLAMBDA GB-s\t"
	if *hourly {
		head = "HOUR\t" + head
	}
	fmt.Fprintln(tw, head)
	line := func(u meter.Usage, label string) {
		if *hourly {
			fmt.Fprintf(tw, "%s\t", label)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%.4f\t%d\t%.4f\t\n", u.Function, u.Invocations, u.Errors,
			strconv.FormatFloat(float64(u.CPUMicros)/1000, 'f', 1, 64), u.BilledMs, u.BilledGBs, u.WallMs, u.LambdaGBs)
	}
	for _, r := range rows {
		line(r, r.Hour.Local().Format("2006-01-02 15h"))
	}
	t := rep.Total
	t.Function = "total"
	line(t, "")
	tw.Flush()
	if t.LambdaGBs > 0 {
		fmt.Fprintf(stdout, "CPU-time billing charges %.1f%% of what wall-clock GB-s billing would.\n", 100*t.BilledGBs/t.LambdaGBs)
	}
	if !*hourly {
		atRecommended(c, rows, stdout)
	}
	return 0
}

// atRecommended prints what each function's billed GB-s would have been
// at the memory limit Mote recommends from its current version's observed
// peak (mote info), against its limit in force. It scales the billed
// GB-s by the ratio of the two: an estimate, exact only if the period's
// invocations all ran under the current limit.
func atRecommended(c *client, rows []meter.Usage, stdout io.Writer) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	wrote := false
	for _, r := range rows {
		var f system.Function
		if c.json(http.MethodGet, "/v1/functions/"+url.PathEscape(r.Function), nil, &f) != nil || f.Pool == nil {
			continue
		}
		rec, cur := f.Pool.RecommendedMemory, f.MemoryLimit
		if rec <= 0 || cur <= 0 {
			continue
		}
		if !wrote {
			fmt.Fprintln(stdout, "\nat the recommended memory limit (observed peak + 25 %, from the current version):")
			fmt.Fprintln(tw, "FUNCTION\tLIMIT MiB\tRECOMMENDED MiB\tBILLED GB-s\tAT RECOMMENDED\t")
			wrote = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.4f\t%.4f\t\n", r.Function, cur>>20, rec>>20, r.BilledGBs, r.BilledGBs*float64(rec)/float64(cur))
	}
	tw.Flush()
}

// cmdDLQ is `mote dlq ls | redrive ID`.
func cmdDLQ(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	if err != nil || len(pos) == 0 || (pos[0] == "redrive" && len(pos) != 2) || (pos[0] != "ls" && pos[0] != "redrive") {
		fmt.Fprintln(stderr, "usage: mote dlq ls | mote dlq redrive INVOCATION_ID")
		return 2
	}
	if pos[0] == "redrive" {
		if err := c.json(http.MethodPost, "/v1/dlq/"+url.PathEscape(pos[1])+"/redrive", nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "re-queued %s\n", pos[1])
		return 0
	}
	var dead []flow.DeadLetter
	if err := c.json(http.MethodGet, "/v1/dlq", nil, &dead); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, dead)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFUNCTION\tAT\tATTEMPTS\tERROR")
	for _, d := range dead {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s: %s\n", d.ID, d.Function, d.At.Local().Format(time.DateTime), d.Attempts, d.ErrorCode, d.ErrorMessage)
	}
	tw.Flush()
	return 0
}
