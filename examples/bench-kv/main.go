// Command bench-kv is the function `mote bench baas` measures: it makes N
// KV gets or puts per invocation and times them itself, so the figures are
// what a function sees, without the gateway in between. The same source
// builds as a wasm reactor (host calls into Mote) and as a native process
// function, which can also run the same loop against Redis with the small
// RESP client in redis.go, for a side-by-side rate.
//
// The event is JSON, for example
//
//	{"op":"get","backend":"mote","bucket":"bench","prefix":"k","keys":1,"n":100000}
//
// and the answer is the timing, also JSON (see Result).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.Handle(handle) }

// main runs only in the native build; a wasm reactor never calls it.
func main() { mote.Start() }

// Request says what to run.
type Request struct {
	Op         string `json:"op"`      // "get", "put" or "fill" (put every key once, untimed figures)
	Backend    string `json:"backend"` // "mote" (default) or "redis"
	Redis      string `json:"redis"`   // host:port of redis-server for the redis backend
	Bucket     string `json:"bucket"`
	Prefix     string `json:"prefix"`
	Keys       int    `json:"keys"`       // distinct keys, used round-robin
	First      int    `json:"first"`      // number of the first key
	N          int    `json:"n"`          // operations
	Size       int    `json:"size"`       // value bytes for puts
	Durability string `json:"durability"` // for Mote puts: "", "durable" or "buffered"
	Batch      int    `json:"batch"`      // operations per timed batch (1: time each one)
}

// Result is the timing of one run. PerOp figures are nanoseconds; the
// median and p99 are over batches of Batch operations (each batch's time
// divided by its size), so the clock is not read around every sub-µs op.
type Result struct {
	N        int     `json:"n"`
	TotalNs  int64   `json:"total_ns"`
	OpsPerS  float64 `json:"ops_per_s"`
	MeanNs   float64 `json:"mean_ns"`
	P50Ns    float64 `json:"p50_ns"`
	P99Ns    float64 `json:"p99_ns"`
	Batch    int     `json:"batch"`
	Missing  int     `json:"missing"` // gets of keys that were not there
	Backend  string  `json:"backend"`
	Op       string  `json:"op"`
	Instance string  `json:"instance,omitempty"`
}

// store is one backend's get and put.
type store interface {
	get(key string) (found bool, err error)
	put(key string, value []byte) error
}

type moteStore struct {
	b mote.KVBucket
	o mote.PutOptions
}

func (m moteStore) get(key string) (bool, error) {
	_, err := m.b.Get(key)
	if mote.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (m moteStore) put(key string, v []byte) error {
	_, err := m.b.PutWith(key, v, m.o)
	return err
}

func handle(ctx *mote.Context, event []byte) ([]byte, error) {
	var r Request
	if err := json.Unmarshal(event, &r); err != nil {
		return nil, fmt.Errorf("bad event: %v", err)
	}
	if r.Keys <= 0 {
		r.Keys = 1
	}
	if r.Batch <= 0 {
		r.Batch = 32
	}
	if r.Bucket == "" {
		r.Bucket = "bench"
	}
	if r.Size <= 0 {
		r.Size = 100
	}
	var s store
	switch r.Backend {
	case "", "mote":
		r.Backend = "mote"
		s = moteStore{b: mote.KV(r.Bucket), o: mote.PutOptions{Durability: mote.Durability(r.Durability)}}
	case "redis":
		c, err := redisConn(r.Redis)
		if err != nil {
			return nil, err
		}
		s = c
	default:
		return nil, fmt.Errorf("unknown backend %q", r.Backend)
	}
	if r.Op == "fill" {
		r.Op, r.N = "put", r.Keys
	}
	// Keys and the value are made before the clock starts.
	keys := make([]string, r.Keys)
	for i := range keys {
		keys[i] = r.Prefix + strconv.Itoa(r.First+i)
	}
	value := make([]byte, r.Size)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	var op func(i int) error
	res := Result{N: r.N, Batch: r.Batch, Backend: r.Backend, Op: r.Op}
	switch r.Op {
	case "get":
		op = func(i int) error {
			found, err := s.get(keys[i%len(keys)])
			if !found && err == nil {
				res.Missing++
			}
			return err
		}
	case "put":
		op = func(i int) error { return s.put(keys[i%len(keys)], value) }
	default:
		return nil, errors.New("op must be get, put or fill")
	}
	batches := make([]float64, 0, r.N/r.Batch+1)
	start := time.Now()
	for i := 0; i < r.N; {
		t0 := time.Now()
		n := min(r.Batch, r.N-i)
		for j := 0; j < n; j++ {
			if err := op(i + j); err != nil {
				return nil, fmt.Errorf("%s %d: %w", r.Op, i+j, err)
			}
		}
		batches = append(batches, float64(time.Since(t0).Nanoseconds())/float64(n))
		i += n
	}
	res.TotalNs = time.Since(start).Nanoseconds()
	res.OpsPerS = float64(r.N) / (float64(res.TotalNs) / 1e9)
	res.MeanNs = float64(res.TotalNs) / float64(max(r.N, 1))
	slices.Sort(batches)
	if len(batches) > 0 {
		res.P50Ns = batches[len(batches)/2]
		res.P99Ns = batches[min(len(batches)-1, len(batches)*99/100)]
	}
	return json.Marshal(res)
}
