package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/logs"
)

func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	n := fs.Int("n", 100, "how many of the latest matching lines")
	inv := fs.String("invocation", "", "only this invocation's lines")
	since := fs.String("since", "", "lines after this: a duration back from now (1h) or an RFC 3339 time")
	until := fs.String("until", "", "lines before this: a duration back from now or an RFC 3339 time")
	grep := fs.String("grep", "", "only lines containing this text (a report matches on its error and stack trace)")
	all := fs.Bool("all", false, "every function's lines")
	asJSON := fs.Bool("json", false, "print the lines as NDJSON, as the API sends them")
	pos, err := parse(fs, args)
	if err != nil || len(pos) > 1 || (len(pos) == 1) == *all {
		if err == nil {
			fmt.Fprintln(stderr, "usage: mote logs NAME|--all [-f] [-n N] [--since 1h] [--until T] [--grep TEXT] [--invocation ID] [--json]")
		}
		return 2
	}
	q := url.Values{"n": {strconv.Itoa(*n)}}
	for k, v := range map[string]string{"invocation": *inv, "since": *since, "until": *until, "grep": *grep} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *follow {
		q.Set("follow", "1")
	}
	path := "/v1/logs?"
	if len(pos) == 1 {
		path = "/v1/functions/" + url.PathEscape(pos[0]) + "/logs?"
	}
	req, err := c.request(http.MethodGet, path+q.Encode(), nil, "")
	if err != nil {
		return fail(stderr, err)
	}
	resp, err := c.do(req)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	p := &logPrinter{all: *all}
	readLogLines(resp.Body, func(l logLine) {
		if *asJSON {
			b, _ := json.Marshal(l.Line)
			fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		for _, s := range p.render(l) {
			fmt.Fprintln(stdout, s)
		}
	})
	return 0
}

// logLine is a line as the API sends it.
type logLine struct{ logs.Line }

// readLogLines calls each for every line of an NDJSON log stream and
// returns the time of the last.
func readLogLines(r io.Reader, each func(logLine)) time.Time {
	var last time.Time
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l logLine
		if len(strings.TrimSpace(sc.Text())) == 0 || json.Unmarshal(sc.Bytes(), &l.Line) != nil {
			continue
		}
		each(l)
		last = l.Time
	}
	return last
}

// format renders a plain line: time, the invocation's last 8 characters,
// the function with all set, the text.
func (l logLine) format(all bool) string {
	inv := l.Invocation
	if len(inv) > 8 {
		inv = inv[len(inv)-8:]
	}
	if inv == "" {
		inv = "-"
	}
	fn := ""
	if all {
		fn = l.Function + " "
	}
	return fmt.Sprintf("%s %s%-8s %s", l.Time.Local().Format("15:04:05.000"), fn, inv, l.Text)
}

// logPrinter turns reports into Lambda-style START, END and REPORT lines:
// START before an invocation's first line, END and REPORT (and the
// failure, with its stack trace) where its report is.
type logPrinter struct {
	all     bool
	started map[string]bool
}

func (p *logPrinter) render(l logLine) []string {
	if p.started == nil || len(p.started) > 10000 {
		p.started = map[string]bool{}
	}
	var out []string
	start := func(t time.Time, version string) {
		if l.Invocation == "" || p.started[l.Invocation] {
			return
		}
		p.started[l.Invocation] = true
		s := logLine{l.Line}
		s.Time = t
		s.Text = "START RequestId: " + l.Invocation
		if version != "" {
			s.Text += " Version: " + version
		}
		out = append(out, s.format(p.all))
	}
	r := &l.Report
	if l.Stream != logs.StreamReport {
		start(l.Time, "")
		return append(out, l.format(p.all))
	}
	start(r.Start, r.Version)
	delete(p.started, l.Invocation)
	say := func(text string) {
		s := logLine{l.Line}
		s.Text = text
		out = append(out, s.format(p.all))
	}
	if r.ErrorCode != "" {
		msg := r.ErrorCode + ": " + r.Error
		if r.ErrorType != "" && !strings.Contains(r.Error, r.ErrorType) {
			msg = r.ErrorCode + ": " + r.ErrorType + ": " + r.Error
		}
		say("ERROR RequestId: " + l.Invocation + " " + msg)
		for _, t := range r.StackTrace {
			for _, line := range strings.Split(strings.TrimRight(t, "\n"), "\n") {
				say("    " + line)
			}
		}
	}
	say("END RequestId: " + l.Invocation)
	rep := fmt.Sprintf("REPORT RequestId: %s Duration: %.2f ms Billed Duration: %d ms CPU: %.3f ms Memory Size: %d MB",
		l.Invocation, float64(r.DurationUs)/1000, r.BilledMs, float64(r.CPUUs)/1000, r.MemoryMB)
	if r.MaxMemMB > 0 {
		rep += fmt.Sprintf(" Max Memory Used: %d MB", r.MaxMemMB)
	}
	if r.InitUs > 0 {
		rep += fmt.Sprintf(" Init Duration: %.2f ms", float64(r.InitUs)/1000)
	}
	if r.Attempt > 1 {
		rep += fmt.Sprintf(" Attempt: %d", r.Attempt)
	}
	if r.ErrorCode != "" {
		rep += " Status: " + r.ErrorCode
	}
	say(rep)
	return out
}
