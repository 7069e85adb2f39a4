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

// cmdWatch is `mote watch add NAME (--kv BUCKET | --obj BUCKET) [--prefix
// P] --fn F [--batch N] [--attempts N] [--backoff D] [--dlq QUEUE] | ls
// [--json] | rm NAME`.
func cmdWatch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	kvBucket := fs.String("kv", "", "add: the KV bucket to watch")
	objBucket := fs.String("obj", "", "add: the object bucket to watch")
	prefix := fs.String("prefix", "", "add: only keys starting with this")
	fn := fs.String("fn", "", "add: the function that gets the change events")
	batch := fs.Int("batch", 0, "add: most events in one invocation (default 100)")
	attempts := fs.Int("attempts", 0, "add: deliveries of a batch before its events go to the dead-letter queue (default 3)")
	backoff := fs.Duration("backoff", 0, "add: wait before a batch's first retry, doubling after (default 1s)")
	dlq := fs.String("dlq", "", "add: dead-letter queue, named in the bucket (default NAME-dlq)")
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	usage := "usage: mote watch add NAME (--kv BUCKET | --obj BUCKET) [--prefix P] --fn FUNCTION [--batch N] [--attempts N] [--backoff 1s] [--dlq QUEUE] | ls [--json] | rm NAME"
	if err != nil || len(pos) < 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch verb := pos[0]; {
	case verb == "add" && len(pos) == 2:
		def := trigger.Watch{Kind: "kv", Bucket: *kvBucket, Prefix: *prefix, Function: *fn, BatchSize: *batch,
			MaxAttempts: *attempts, BackoffMs: int(backoff.Milliseconds()), DeadLetterQueue: *dlq}
		if *objBucket != "" {
			def.Kind, def.Bucket = "obj", *objBucket
		}
		if (*kvBucket == "") == (*objBucket == "") || *fn == "" {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		var st trigger.WatchStatus
		if err := c.json(http.MethodPut, "/v1/watches/"+url.PathEscape(pos[1]), def, &st); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "added watch %s: %s bucket %s%s → %s\n", st.Name, st.Kind, st.Bucket, prefixText(st.Prefix), st.Function)
		return 0
	case verb == "ls" && len(pos) == 1:
		var out struct {
			Watches []trigger.WatchStatus `json:"watches"`
		}
		if err := c.json(http.MethodGet, "/v1/watches", nil, &out); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, out.Watches)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tBUCKET\tFUNCTION\tDONE\tDEAD\tLAST BATCH")
		for _, s := range out.Watches {
			last := "-"
			if b := s.LastBatch; b != nil {
				last = fmt.Sprintf("%s %d events %s", b.Started.Local().Format(time.DateTime), b.Items, b.Result)
			}
			fmt.Fprintf(tw, "%s\t%s:%s%s\t%s\t%d\t%d\t%s\n", s.Name, s.Kind, s.Bucket, prefixText(s.Prefix), s.Function, s.Delivered, s.DeadLetter, last)
		}
		tw.Flush()
		return 0
	case verb == "rm" && len(pos) == 2:
		if err := c.json(http.MethodDelete, "/v1/watches/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed watch %s\n", pos[1])
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

func prefixText(p string) string {
	if p == "" {
		return ""
	}
	return "/" + strings.TrimSuffix(p, "*") + "*"
}
