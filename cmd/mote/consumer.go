package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/trigger"
)

// cmdConsumer is `mote consumer add NAME --queue BUCKET/QUEUE --fn F
// [--batch N] [--wait D] [--attempts N] [--backoff D] [--dlq QUEUE]
// [--concurrency N] | ls [--json] | rm NAME`.
func cmdConsumer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	queue := fs.String("queue", "", "add: the queue to consume, as BUCKET/QUEUE")
	fn := fs.String("fn", "", "add: the function that gets the batches")
	batch := fs.Int("batch", 0, "add: most items in one invocation (default 10)")
	wait := fs.Duration("wait", 0, "add: batching window: how long a batch that is not full waits for more (default 0)")
	attempts := fs.Int("attempts", 0, "add: deliveries of an item before it goes to the dead-letter queue (default 3)")
	backoff := fs.Duration("backoff", 0, "add: wait before an item's first retry, doubling after (default 1s)")
	dlq := fs.String("dlq", "", "add: dead-letter queue in the same bucket (default QUEUE-dlq)")
	conc := fs.Int("concurrency", 0, "add: batches run at once (default 1)")
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	usage := "usage: mote consumer add NAME --queue BUCKET/QUEUE --fn FUNCTION [--batch N] [--wait 100ms] [--attempts N] [--backoff 1s] [--dlq QUEUE] [--concurrency N] | ls [--json] | rm NAME"
	if err != nil || len(pos) < 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch verb := pos[0]; {
	case verb == "add" && len(pos) == 2:
		bucket, q, ok := strings.Cut(*queue, "/")
		if !ok || *fn == "" {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		def := trigger.Consumer{Bucket: bucket, Queue: q, Function: *fn, BatchSize: *batch,
			MaxWaitMs: int(wait.Milliseconds()), MaxAttempts: *attempts, BackoffMs: int(backoff.Milliseconds()),
			DeadLetterQueue: *dlq, Concurrency: *conc}
		var st trigger.ConsumerStatus
		if err := c.json(http.MethodPut, "/v1/consumers/"+url.PathEscape(pos[1]), def, &st); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "added consumer %s: %s/%s → %s, batches of %d, dead letters to %s\n",
			st.Name, st.Bucket, st.Queue, st.Function, st.BatchSize, st.DeadLetterQueue)
		return 0
	case verb == "ls" && len(pos) == 1:
		var out struct {
			Consumers []trigger.ConsumerStatus `json:"consumers"`
		}
		if err := c.json(http.MethodGet, "/v1/consumers", nil, &out); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, out.Consumers)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tQUEUE\tFUNCTION\tQUEUED\tIN FLIGHT\tDONE\tDEAD\tLAST BATCH")
		for _, s := range out.Consumers {
			last := "-"
			if b := s.LastBatch; b != nil {
				last = fmt.Sprintf("%s %d items %s", b.Started.Local().Format(time.DateTime), b.Items, b.Result)
				if b.Failed > 0 {
					last += fmt.Sprintf(" (%d failed)", b.Failed)
				}
			}
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Bucket, s.Queue, s.Function, s.Queued, s.InFlight, s.Delivered, s.DeadLetter, last)
		}
		tw.Flush()
		return 0
	case verb == "rm" && len(pos) == 2:
		if err := c.json(http.MethodDelete, "/v1/consumers/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed consumer %s\n", pos[1])
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}
