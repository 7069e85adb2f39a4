package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/trigger"
)

// cmdSchedule is `mote schedule add NAME (--cron EXPR | --rate 'N units')
// --fn F [--tz ZONE] [--payload JSON] [--missed skip|once] | ls [--json]
// | rm NAME`.
func cmdSchedule(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schedule", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	cron := fs.String("cron", "", "add: a cron expression ('*/5 * * * *'), EventBridge's 'cron(0 12 * * ? *)' or 'rate(5 minutes)'")
	rate := fs.String("rate", "", "add: a rate, as '5 minutes' (the same as --cron 'rate(5 minutes)')")
	fn := fs.String("fn", "", "add: the function to invoke")
	tz := fs.String("tz", "", "add: the time zone of a cron expression (IANA name, as Europe/Paris; default UTC)")
	payload := fs.String("payload", "", "add: JSON given to the function as the event's detail")
	missed := fs.String("missed", "skip", "add: ticks missed while the server was down: skip, or run the latest once")
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	usage := "usage: mote schedule add NAME (--cron EXPR | --rate 'N minutes') --fn FUNCTION [--tz ZONE] [--payload JSON] [--missed skip|once] | ls [--json] | rm NAME"
	if err != nil || len(pos) < 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch verb := pos[0]; {
	case verb == "add" && len(pos) == 2:
		expr := *cron
		if *rate != "" {
			if expr != "" {
				fmt.Fprintln(stderr, "mote: give --cron or --rate, not both")
				return 2
			}
			expr = "rate(" + *rate + ")"
		}
		if expr == "" || *fn == "" {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		sc := trigger.Schedule{Expression: expr, Timezone: *tz, Function: *fn, Missed: trigger.Missed(*missed)}
		if *payload != "" {
			if !json.Valid([]byte(*payload)) {
				fmt.Fprintln(stderr, "mote: --payload is not valid JSON")
				return 2
			}
			sc.Payload = json.RawMessage(*payload)
		}
		var st trigger.ScheduleStatus
		if err := c.json(http.MethodPut, "/v1/schedules/"+url.PathEscape(pos[1]), sc, &st); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "added schedule %s: %s → %s, next run %s\n", st.Name, st.Expression, st.Function, whenText(st.Next))
		return 0
	case verb == "ls" && len(pos) == 1:
		var out struct {
			Schedules []trigger.ScheduleStatus `json:"schedules"`
		}
		if err := c.json(http.MethodGet, "/v1/schedules", nil, &out); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, out.Schedules)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tEXPRESSION\tZONE\tFUNCTION\tMISSED\tNEXT RUN\tLAST RUN\tRESULT")
		for _, s := range out.Schedules {
			zone, last, result := s.Timezone, "-", "-"
			if zone == "" {
				zone = "UTC"
			}
			if r := s.LastRun; r != nil {
				last, result = r.Due.Local().Format(time.DateTime), r.Result
				if r.Error != "" {
					result += ": " + r.Error
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Expression, zone, s.Function, s.Missed, whenText(s.Next), last, result)
		}
		tw.Flush()
		return 0
	case verb == "rm" && len(pos) == 2:
		if err := c.json(http.MethodDelete, "/v1/schedules/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed schedule %s\n", pos[1])
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

func whenText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}
