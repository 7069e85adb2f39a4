// Command fn is the MapReduce example's function: deployed once as
// "mapreduce", it is the driver (op "run"), which fans map and reduce
// tasks out to itself through Map, and each of those tasks. Input and
// output are objects; the shuffle goes through the call tree's ephemeral
// data, partitioned by key range. Built as a wasm reactor or natively as a
// process function (see ../README.md).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	mote "github.com/mote-run/mote/sdk/go"

	"github.com/mote-run/mote/examples/mapreduce/mr"
)

func init() { mote.Handle(handle) }

// main runs only in a native build; a wasm reactor never calls it.
func main() { mote.Start() }

func handle(ctx *mote.Context, event []byte) ([]byte, error) {
	var t mr.Task
	if err := json.Unmarshal(event, &t); err != nil {
		return nil, fmt.Errorf("bad event: %v", err)
	}
	if t.Job != mr.Sort && t.Job != mr.WordCount {
		return nil, fmt.Errorf("unknown job %q (want %q or %q)", t.Job, mr.Sort, mr.WordCount)
	}
	var res any
	var err error
	switch t.Op {
	case "run":
		res, err = run(ctx, t)
	case "map":
		res, err = mapTask(t)
	case "reduce":
		res, err = reduceTask(t)
	default:
		return nil, fmt.Errorf("unknown op %q", t.Op)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// run is the driver: sample (word count), map, reduce.
func run(ctx *mote.Context, t mr.Task) (*mr.RunResult, error) {
	t0 := time.Now()
	in := mote.Objects(t.Bucket)
	if t.Maps <= 0 || t.Reduces <= 0 {
		return nil, fmt.Errorf("maps and reduces must be positive")
	}
	var splitters []string
	if t.Job == mr.WordCount {
		var samples [][]byte
		for _, off := range mr.SampleOffsets(t.Size) {
			b, err := in.GetRange(t.Input, off, min(mr.SampleLen, t.Size-off))
			if err != nil {
				return nil, fmt.Errorf("sampling the input: %w", err)
			}
			samples = append(samples, b)
		}
		splitters = mr.Splitters(samples, t.Reduces)
	}
	reduces := t.Reduces
	if t.Job == mr.WordCount {
		reduces = len(splitters) + 1
	}
	splits := mr.Splits(t.Job, t.Size, t.Maps)
	events := make([][]byte, len(splits))
	for i, s := range splits {
		m := t
		m.Op, m.Index, m.Split, m.Splitters, m.Reduces = "map", i, s, splitters, reduces
		events[i], _ = json.Marshal(m)
	}
	res := &mr.RunResult{Job: t.Job, Maps: len(splits), Reduces: reduces}
	rs, err := mote.Map(ctx.Function, events, t.Conc)
	if err != nil {
		return nil, fmt.Errorf("map phase: %w", err)
	}
	chunks := make([][]int, reduces) // [reducer][mapper]
	for r := range chunks {
		chunks[r] = make([]int, len(splits))
	}
	for i, r := range rs {
		if r.Err != nil {
			return nil, fmt.Errorf("map task %d: %v", i, r.Err)
		}
		var mres mr.MapResult
		if err := json.Unmarshal(r.Output, &mres); err != nil || len(mres.Chunks) != reduces {
			return nil, fmt.Errorf("map task %d answered %q", i, r.Output)
		}
		for j, n := range mres.Chunks {
			chunks[j][i] = n
		}
		res.ShuffleBytes += mres.Bytes
		res.ShuffleWriteMs += float64(mres.WriteNs) / 1e6
	}
	t1 := time.Now()
	events = make([][]byte, reduces)
	for j := range events {
		rt := t
		rt.Op, rt.Index, rt.Chunks, rt.Maps = "reduce", j, chunks[j], len(splits)
		events[j], _ = json.Marshal(rt)
	}
	rs, err = mote.Map(ctx.Function, events, t.Conc)
	if err != nil {
		return nil, fmt.Errorf("reduce phase: %w", err)
	}
	for i, r := range rs {
		if r.Err != nil {
			return nil, fmt.Errorf("reduce task %d: %v", i, r.Err)
		}
		var rres mr.ReduceResult
		if err := json.Unmarshal(r.Output, &rres); err != nil {
			return nil, fmt.Errorf("reduce task %d answered %q", i, r.Output)
		}
		res.Objects += rres.Objects
		res.OutputBytes += rres.Bytes
		res.ShuffleReadMs += float64(rres.ReadNs) / 1e6
	}
	if t.FailMap > 0 {
		if _, err := mote.EphGet(failMarker(t.FailMap - 1)); err == nil {
			res.Retried++
		}
	}
	t2 := time.Now()
	res.MapMs = float64(t1.Sub(t0).Microseconds()) / 1e3
	res.ReduceMs = float64(t2.Sub(t1).Microseconds()) / 1e3
	res.TotalMs = float64(t2.Sub(t0).Microseconds()) / 1e3
	return res, nil
}

var shuffleWrite = mote.PutOptions{Durability: mote.Buffered}

func shuffleKey(m, r, k int) string { return fmt.Sprintf("s/%d/%d/%d", r, m, k) }

func failMarker(m int) string { return fmt.Sprintf("failed/%d", m) }

// mapTask reads its byte range of the input, partitions it by key range
// and writes each partition to ephemeral data in chunks.
func mapTask(t mr.Task) (*mr.MapResult, error) {
	in := mote.Objects(t.Bucket)
	off, n := t.Split.Off, t.Split.Len
	if t.Job == mr.WordCount {
		off, n = mr.ReadRange(t.Split, t.Size)
	}
	buf, err := readRange(in, t.Input, off, n)
	if err != nil {
		return nil, err
	}
	var parts [][]byte
	switch t.Job {
	case mr.Sort:
		parts, err = mr.SortMap(buf, t.Reduces)
	case mr.WordCount:
		var own []byte
		if own, err = mr.OwnWords(buf, t.Split, t.Size); err == nil {
			parts = mr.WCMap(own, t.Splitters)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("map task %d: %w", t.Index, err)
	}
	unit := 1
	if t.Job == mr.Sort {
		unit = mr.RecordSize
	}
	res := &mr.MapResult{Chunks: make([]int, len(parts))}
	for r, p := range parts {
		if t.FailMap == t.Index+1 && r == len(parts)/2 {
			if err := injectFailure(t); err != nil {
				return nil, err
			}
		}
		t0 := time.Now()
		for k, c := range mr.Chunks(p, mr.ShuffleChunk, unit) {
			// Buffered: a crash loses the tree, whose retry makes the
			// shuffle again; an fsync per chunk would buy nothing.
			if err := mote.EphPutWith(shuffleKey(t.Index, r, k), c, shuffleWrite); err != nil {
				return nil, fmt.Errorf("map task %d: shuffle write: %w", t.Index, err)
			}
			res.Chunks[r]++
			res.Bytes += int64(len(c))
		}
		res.WriteNs += time.Since(t0).Nanoseconds()
	}
	return res, nil
}

// injectFailure fails the first attempt of the task: it leaves a marker
// in the tree's ephemeral data, so the retry, which finds it, goes on.
func injectFailure(t mr.Task) error {
	if _, err := mote.EphGet(failMarker(t.Index)); err == nil {
		return nil
	} else if !mote.IsNotFound(err) {
		return err
	}
	if err := mote.EphPut(failMarker(t.Index), []byte("1"), 0); err != nil {
		return err
	}
	if t.FailMode == "exit" {
		os.Exit(3)
	}
	return fmt.Errorf("map task %d: injected failure on its first attempt", t.Index)
}

func readRange(b mote.ObjectBucket, key string, off, n int64) ([]byte, error) {
	buf := make([]byte, 0, n)
	for n > 0 {
		step := min(n, 8<<20)
		c, err := b.GetRange(key, off, step)
		if err != nil {
			return nil, fmt.Errorf("reading %s at %d: %w", key, off, err)
		}
		if len(c) == 0 {
			return nil, fmt.Errorf("reading %s at %d: object ends early", key, off)
		}
		buf = append(buf, c...)
		off += int64(len(c))
		n -= int64(len(c))
	}
	return buf, nil
}

// reduceTask reads its partition from every map task, sorts or sums it and
// writes output objects.
func reduceTask(t mr.Task) (*mr.ReduceResult, error) {
	t0 := time.Now()
	var parts [][]byte
	for m, n := range t.Chunks {
		var joined []byte
		for k := 0; k < n; k++ {
			c, err := mote.EphGet(shuffleKey(m, t.Index, k))
			if err != nil {
				return nil, fmt.Errorf("reduce task %d: shuffle read: %w", t.Index, err)
			}
			if n == 1 {
				joined = c
			} else {
				joined = append(joined, c...)
			}
		}
		parts = append(parts, joined)
	}
	res := &mr.ReduceResult{ReadNs: time.Since(t0).Nanoseconds()}
	var out []byte
	var err error
	unit := 1
	switch t.Job {
	case mr.Sort:
		out, unit = mr.SortReduce(parts), mr.RecordSize
	case mr.WordCount:
		out, err = mr.WCReduce(parts)
	}
	if err != nil {
		return nil, fmt.Errorf("reduce task %d: %w", t.Index, err)
	}
	objs := mote.Objects(t.Bucket)
	for k, c := range mr.Chunks(out, mr.OutputChunk, unit) {
		if _, err := objs.Put(fmt.Sprintf("%spart-%05d-%04d", t.Output, t.Index, k), c, ""); err != nil {
			return nil, fmt.Errorf("reduce task %d: writing output: %w", t.Index, err)
		}
		res.Objects++
		res.Bytes += int64(len(c))
	}
	return res, nil
}
