// Command guest is the runtimes' test function: a Go SDK function, built
// as a wasm reactor or natively as a process function, whose event names
// what it should do ("spin:20", "call:op:arg", "panic:x", ...). The wasm
// runtime's tests and the conformance suite (internal/runtime/runtimetest)
// run it.
package main

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

var (
	initCallErr error    // what a host call made during initialisation returned
	hoard       [][]byte // what "bomb" allocates, kept reachable
	count       int      // invocations served by this instance
	hoardOnce   []string // what "heap" appended, in this instance
)

func init() {
	mote.Handle(handle)
	mote.Log("guest initialising")
	_, initCallErr = mote.Call("test.echo", []byte("x"))
}

// main runs the native build's Runtime API loop (a process function, for
// internal/runtime/runtimetest); a wasm reactor never runs it, and
// mote.Start says so and exits if a module built as a command does.
func main() { mote.Start() }

func handle(ctx *mote.Context, event []byte) ([]byte, error) {
	count++
	verb, arg, _ := strings.Cut(string(event), ":")
	switch verb {
	case "echo":
		return []byte(arg), nil
	case "hello":
		return append([]byte("hello, "), arg...), nil
	case "count":
		return []byte(strconv.Itoa(count)), nil
	case "spin":
		ms, _ := strconv.Atoi(arg)
		for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
		}
		return []byte("spun"), nil
	case "sleep": // time.Sleep: WASI poll_oneoff on a clock
		ms, _ := strconv.Atoi(arg)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return []byte("slept"), nil
	case "call":
		op, a, _ := strings.Cut(arg, ":")
		res, err := mote.Call(op, []byte(a))
		var e *mote.Error
		if errors.As(err, &e) {
			return []byte("error " + e.Code + ": " + e.Message), nil
		}
		return res, err
	case "calln": // n host calls of test.echo, for the benchmark
		n, _ := strconv.Atoi(arg)
		for range n {
			if _, err := mote.Call("test.nop"); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case "initcall":
		return []byte(fmt.Sprint(initCallErr)), nil
	case "error":
		return nil, errors.New(arg)
	case "panic":
		panic(arg)
	case "exit":
		fmt.Fprintln(os.Stderr, "exiting on purpose")
		os.Exit(3)
	case "bomb":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "signal-loop": // tell the host the invocation runs, then loop
		if _, err := mote.Call("test.started"); err != nil {
			return nil, err
		}
		for {
		}
	case "loop":
		for {
		}
	case "log":
		mote.Log("log %s", arg)
		fmt.Fprintln(os.Stderr, "stderr", arg)
		fmt.Println("stdout", arg)
		return []byte("logged"), nil
	case "alloc": // hold N bytes, every page touched, for the invocation
		n, _ := strconv.Atoi(arg)
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		return []byte(strconv.Itoa(len(b))), nil
	case "big":
		n, _ := strconv.Atoi(arg)
		return make([]byte, n), nil
	case "ctx":
		return fmt.Appendf(nil, "%s|%s|%s|%d|%s|%s|%d",
			ctx.InvocationID, ctx.RootID, ctx.ParentID, ctx.Depth, ctx.Function, ctx.Version, ctx.Deadline.UnixMilli()), nil
	case "env":
		return []byte(os.Getenv(arg)), nil
	case "crand": // 8 bytes of crypto/rand, in hex
		b := make([]byte, 8)
		if _, err := crand.Read(b); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(b)), nil
	case "mrand": // the unseeded math/rand sequence's next value
		return []byte(strconv.FormatUint(rand.Uint64(), 16)), nil
	case "heap": // write to memory the snapshot holds, then read it back
		hoardOnce = append(hoardOnce, arg)
		return []byte(strings.Join(hoardOnce, ",")), nil
	}
	return nil, fmt.Errorf("unknown verb %q", verb)
}
