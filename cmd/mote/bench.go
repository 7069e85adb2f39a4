package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/mote-run/mote/bench"
)

// scenarios are the end-to-end benchmarks `mote bench` runs.
var scenarios = map[string]func(context.Context, bench.Options) error{
	"gateway":   bench.Gateway,
	"lambda":    bench.Lambda,
	"baas":      bench.BaaS,
	"flows":     bench.Flows,
	"triggers":  bench.Triggers,
	"cluster":   bench.Cluster,
	"coldstart": bench.Coldstart,
	"mapreduce": bench.MapReduce,
	"video":     bench.Video,
	"http":      bench.HTTPFunctions,
}

func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bench.Options{Out: stdout}
	fs.StringVar(&o.Examples, "examples", "examples", "directory holding the example functions' sources")
	fs.DurationVar(&o.Duration, "duration", 0, "length of each load run (default 5s)")
	fs.IntVar(&o.Rounds, "rounds", 0, "rounds per point; medians are reported (default 3)")
	fs.StringVar(&o.Only, "only", "", `run part of a scenario (baas: "process", the process-function rows; coldstart: "chain", the prewarm chain)`)
	fs.StringVar(&o.Size, "size", "", "mapreduce: input size per job, e.g. 256MiB (default 1GiB)")
	fs.StringVar(&o.Video.Input, "video-input", "", "video: the file to encode (default: generated testsrc2)")
	fs.StringVar(&o.Video.Size, "video-size", "", "video: generated input's size (default 1920x1080)")
	fs.Float64Var(&o.Video.Seconds, "video-seconds", 0, "video: generated input's length in seconds (default 60)")
	fs.StringVar(&o.Video.Preset, "video-preset", "", "video: x264 preset (default veryfast)")
	fs.IntVar(&o.Video.CRF, "video-crf", 0, "video: x264 CRF (default 23)")
	chunks := fs.String("video-chunks", "", "video: chunk lengths in seconds, the first timed against the baseline (default 2,1,4,10)")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if *chunks != "" {
		for _, c := range strings.Split(*chunks, ",") {
			s, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
			if err != nil {
				fmt.Fprintf(stderr, "mote bench: --video-chunks: %q is not a number of seconds\n", c)
				return 2
			}
			o.Video.Chunks = append(o.Video.Chunks, s)
		}
	}
	if len(pos) != 1 || scenarios[pos[0]] == nil {
		fmt.Fprintln(stderr, "usage: mote bench SCENARIO [flags]; scenarios:")
		for name := range scenarios {
			fmt.Fprintln(stderr, "  ", name)
		}
		return 2
	}
	if o.Size != "" && pos[0] != "mapreduce" {
		fmt.Fprintf(stderr, "mote bench: --size applies to the mapreduce scenario, not %s\n", pos[0])
		return 2
	}
	if o.Only != "" && pos[0] != "baas" && pos[0] != "coldstart" {
		fmt.Fprintf(stderr, "mote bench: --only applies to the baas and coldstart scenarios, not %s\n", pos[0])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := scenarios[pos[0]](ctx, o); err != nil {
		fmt.Fprintf(stderr, "mote bench: %v\n", err)
		return 1
	}
	return 0
}

// cmdBenchPeer runs the bare baseline server the harness compares with.
func cmdBenchPeer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-peer", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := bench.ServePeer(ctx, *addr, func(s string) { fmt.Fprintln(stdout, s) }); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
