// Command bench-flow is the wasm function `mote bench flows` measures: it
// calls other functions through the flow host ops (sdk/go/flow.go) and
// times the calls itself, so the figures are what a function sees.
//
// Deployed twice, as the parent ("flow") and as the trivial child
// ("leaf"), it takes these events:
//
//	{"op":"sync","n":1000,"fn":"leaf"}       n synchronous calls, each timed
//	{"op":"chain","n":200,"depth":10}        n chains of depth synchronous calls
//	{"op":"map","n":1000,"fn":"leaf"}        one Map of n children (fan-out + fan-in)
//	{"op":"async","n":1000,"fn":"leaf"}      n InvokeAsync, then one AwaitAll
//
// A payload that is not a JSON object is a child's: "cN" continues a chain
// with N calls left (calling this function again), anything else is
// echoed back, which is the trivial child.
package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.Handle(handle) }

// main runs only in a native build; a wasm reactor never calls it.
func main() { mote.Start() }

// Request says what to run.
type Request struct {
	Op    string `json:"op"`
	N     int    `json:"n"`
	Depth int    `json:"depth"`
	Fn    string `json:"fn"`
	Conc  int    `json:"conc"`
}

// Result is the timing: per-call figures in nanoseconds for sync and
// chain; for map and async, TotalNs is the fan-out and fan-in of all n.
type Result struct {
	Op      string  `json:"op"`
	N       int     `json:"n"`
	TotalNs int64   `json:"total_ns"`
	P50Ns   float64 `json:"p50_ns"`
	P99Ns   float64 `json:"p99_ns"`
	MeanNs  float64 `json:"mean_ns"`
	Failed  int     `json:"failed"`
	Error   string  `json:"error,omitempty"`
}

func handle(ctx *mote.Context, event []byte) ([]byte, error) {
	if len(event) == 0 || event[0] != '{' {
		return child(ctx, event)
	}
	var r Request
	if err := json.Unmarshal(event, &r); err != nil {
		return nil, fmt.Errorf("bad event: %v", err)
	}
	if r.Fn == "" {
		r.Fn = "leaf"
	}
	res := Result{Op: r.Op, N: r.N}
	var err error
	switch r.Op {
	case "sync":
		err = timeEach(&res, r.N, func() error { _, err := mote.Invoke(r.Fn, []byte("x")); return err })
	case "chain":
		ev := []byte("c" + strconv.Itoa(r.Depth-1))
		err = timeEach(&res, r.N, func() error { _, err := mote.Invoke(ctx.Function, ev); return err })
	case "map":
		events := make([][]byte, r.N)
		for i := range events {
			events[i] = []byte("x")
		}
		t0 := time.Now()
		rs, e := mote.Map(r.Fn, events, r.Conc)
		res.TotalNs, err = time.Since(t0).Nanoseconds(), e
		countFailed(&res, rs)
	case "async":
		t0 := time.Now()
		hs := make([]mote.AsyncCall, 0, r.N)
		for i := 0; i < r.N && err == nil; i++ {
			var h mote.AsyncCall
			h, err = mote.InvokeAsync(r.Fn, []byte("x"))
			hs = append(hs, h)
		}
		if err == nil {
			var rs []mote.Result
			rs, err = mote.AwaitAll(0, hs...)
			countFailed(&res, rs)
		}
		res.TotalNs = time.Since(t0).Nanoseconds()
	default:
		return nil, fmt.Errorf("unknown op %q", r.Op)
	}
	if err != nil {
		res.Error = err.Error()
	}
	return json.Marshal(res)
}

// child serves a child's payload: "cN" calls this function again with
// "c(N-1)" until N is 0; anything else is echoed.
func child(ctx *mote.Context, event []byte) ([]byte, error) {
	if len(event) < 2 || event[0] != 'c' {
		return event, nil
	}
	n, err := strconv.Atoi(string(event[1:]))
	if err != nil || n <= 0 {
		return event, nil
	}
	return mote.Invoke(ctx.Function, []byte("c"+strconv.Itoa(n-1)))
}

// timeEach runs call n times, timing each (these calls take microseconds,
// so the ~0.1 µs clock read is small beside them).
func timeEach(res *Result, n int, call func() error) error {
	ds := make([]float64, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := call(); err != nil {
			return err
		}
		ds = append(ds, float64(time.Since(t0).Nanoseconds()))
	}
	res.TotalNs = time.Since(start).Nanoseconds()
	if n > 0 {
		res.MeanNs = float64(res.TotalNs) / float64(n)
		slices.Sort(ds)
		res.P50Ns = ds[len(ds)/2]
		res.P99Ns = ds[min(len(ds)-1, len(ds)*99/100)]
	}
	return nil
}

func countFailed(res *Result, rs []mote.Result) {
	for _, r := range rs {
		if r.Err != nil {
			res.Failed++
			if res.Error == "" {
				res.Error = r.Err.Error()
			}
		}
	}
}
