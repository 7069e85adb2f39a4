// Command resultguest checks, from inside a wasm reactor, how the Go SDK
// places host-call results: each result holds exactly what the host
// returned, shares no bytes with any other result, and stays intact while
// later calls are made, from one goroutine or several, whatever its size.
// It answers "ok" or what went wrong.
package main

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.Handle(handle) }

func main() {}

// want is the result of test.echo of arg i, unique to i, of a length that
// cycles through small results, results that overflow the SDK's block
// and results that need an allocation of their own.
func want(i int) []byte {
	n := []int{0, 1, 7, 100, 255, 256, 300, 900, 1024, 1025, 2047, 5000}[i%12]
	tag := strconv.Itoa(i) + ":"
	return bytes.Repeat([]byte(tag), n/len(tag)+1)[:n]
}

func handle(_ *mote.Context, event []byte) ([]byte, error) {
	switch string(event) {
	case "sequential":
		return check(0, 1, 600)
	case "goroutines":
		// Goroutines interleave at each Gosched and wherever the runtime
		// parks one (a garbage collector's assist), which the garbage
		// these loops make provokes.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for g := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[g] = check(g, len(errs), 600)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		return []byte("ok"), nil
	}
	return nil, fmt.Errorf("unknown event %q", event)
}

// check makes n calls, the i-th echoing want(first+i*step), keeping every
// result, then checks them all.
func check(first, step, n int) ([]byte, error) {
	var kept [][]byte
	var garbage [][]byte
	for i := range n {
		k := first + i*step
		res, err := mote.Call("test.echo", want(k))
		if err != nil {
			return nil, err
		}
		if cap(res) != len(res) {
			return nil, fmt.Errorf("call %d: result has capacity %d beyond its %d bytes", k, cap(res), len(res))
		}
		// A caller appending to its result must not write over the next.
		_ = append(res, "overwrite?"...)
		kept = append(kept, res)
		garbage = append(garbage, make([]byte, 32<<10))
		if i%16 == 0 {
			garbage = nil
			runtime.Gosched()
		}
	}
	for i, res := range kept {
		k := first + i*step
		if !bytes.Equal(res, want(k)) {
			return nil, fmt.Errorf("call %d: result %.40q… (%d bytes), want %.40q… (%d bytes)", k, res, len(res), want(k), len(want(k)))
		}
	}
	return []byte("ok"), nil
}
