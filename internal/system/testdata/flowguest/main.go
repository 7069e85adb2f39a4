// Command flowguest is the system tests' function: a Go SDK reactor whose
// event, "verb:args", says what to do with the platform's host API.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.Handle(handle) }

// main runs only in the native build (a process function); a wasm reactor
// never calls it.
func main() { mote.Start() }

func spin(ms int) {
	for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
	}
}

// work does n rounds of a xorshift: CPU time proportional to n, however
// busy the machine is (unlike spinning until a wall-clock time).
func work(n int) uint64 {
	x := uint64(88172645463325252)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func handle(ctx *mote.Context, event []byte) ([]byte, error) {
	verb, arg, _ := strings.Cut(string(event), ":")
	switch verb {
	case "echo":
		return []byte(arg), nil
	case "fail":
		return nil, errors.New(arg)
	case "spin": // burn CPU for arg ms
		ms, _ := strconv.Atoi(arg)
		spin(ms)
		return []byte("spun"), nil
	case "work": // work:N does N rounds of arithmetic: a fixed amount of CPU
		n, _ := strconv.Atoi(arg)
		return []byte(strconv.FormatUint(work(n), 10)), nil
	case "worksleep": // worksleep:N:MS works N rounds, then sleeps MS ms
		a, b, _ := strings.Cut(arg, ":")
		n, _ := strconv.Atoi(a)
		sink := work(n)
		d, _ := strconv.Atoi(b)
		time.Sleep(time.Duration(d) * time.Millisecond)
		return []byte(strconv.FormatUint(sink, 10)), nil
	case "spinsleep": // burn A ms of CPU, then sleep B ms
		a, b, _ := strings.Cut(arg, ":")
		ms, _ := strconv.Atoi(a)
		spin(ms)
		d, _ := strconv.Atoi(b)
		time.Sleep(time.Duration(d) * time.Millisecond)
		return []byte("done"), nil
	case "call": // call:FN:PAYLOAD
		fn, payload, _ := strings.Cut(arg, ":")
		return mote.Invoke(fn, []byte(payload))
	case "chain": // chain:N calls itself N deep
		n, _ := strconv.Atoi(arg)
		if n == 0 {
			return []byte(fmt.Sprint("depth ", ctx.Depth)), nil
		}
		return mote.Invoke(ctx.Function, []byte(fmt.Sprint("chain:", n-1)))
	case "fan": // fan:N maps echo over N events and sums the lengths
		n, _ := strconv.Atoi(arg)
		events := make([][]byte, n)
		for i := range events {
			events[i] = []byte("echo:" + strconv.Itoa(i))
		}
		rs, err := mote.Map(ctx.Function, events, 0)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for i, r := range rs {
			if r.Err != nil {
				return nil, fmt.Errorf("child %d: %v", i, r.Err)
			}
			if string(r.Output) != strconv.Itoa(i) {
				return nil, fmt.Errorf("child %d answered %q", i, r.Output)
			}
		}
		fmt.Fprint(&b, len(rs))
		return []byte(b.String()), nil
	case "async": // async:N starts N echo children and awaits all
		n, _ := strconv.Atoi(arg)
		var calls []mote.AsyncCall
		for i := 0; i < n; i++ {
			c, err := mote.InvokeAsync(ctx.Function, []byte("echo:a"+strconv.Itoa(i)))
			if err != nil {
				return nil, err
			}
			calls = append(calls, c)
		}
		rs, err := mote.AwaitAll(5*time.Second, calls...)
		if err != nil {
			return nil, err
		}
		var outs []string
		for _, r := range rs {
			outs = append(outs, string(r.Output))
		}
		return []byte(strings.Join(outs, ",")), nil
	case "kvput": // kvput:BUCKET:KEY:VALUE
		p := strings.SplitN(arg, ":", 3)
		if _, err := mote.KV(p[0]).Put(p[1], []byte(p[2])); err != nil {
			return nil, err
		}
		return []byte("ok"), nil
	case "incr": // incr:BUCKET:KEY adds one and returns the new value
		b, k, _ := strings.Cut(arg, ":")
		n, err := mote.KV(b).Incr(k, 1)
		return []byte(strconv.FormatInt(n, 10)), err
	case "crashy": // calls 10 children ("incr:b:children"); the first attempt traps after 5
		attempt, err := mote.KV("b").Incr("attempts", 1)
		if err != nil {
			return nil, err
		}
		for i := 0; i < 10; i++ {
			if i == 5 && attempt == 1 {
				panic("crash after 5 children")
			}
			if _, err := mote.Invoke(ctx.Function, []byte("incr:b:children")); err != nil {
				return nil, err
			}
		}
		return []byte(fmt.Sprint("attempt ", attempt)), nil
	case "mapto": // mapto:FN:N maps echo over N events on FN
		fn, a, _ := strings.Cut(arg, ":")
		n, _ := strconv.Atoi(a)
		events := make([][]byte, n)
		for i := range events {
			events[i] = []byte("echo:" + strconv.Itoa(i))
		}
		rs, err := mote.Map(fn, events, 0)
		if err != nil {
			return nil, err
		}
		var outs []string
		for _, r := range rs {
			if r.Err != nil {
				return nil, r.Err
			}
			outs = append(outs, string(r.Output))
		}
		return []byte(strings.Join(outs, ",")), nil
	case "asyncto": // asyncto:FN:PAYLOAD starts FN and awaits it
		fn, payload, _ := strings.Cut(arg, ":")
		c, err := mote.InvokeAsync(fn, []byte(payload))
		if err != nil {
			return nil, err
		}
		rs, err := mote.AwaitAll(5*time.Second, c)
		if err != nil {
			return nil, err
		}
		if rs[0].Err != nil {
			return nil, rs[0].Err
		}
		return rs[0].Output, nil
	case "env": // env:NAME returns the variable's value, or "<unset>"
		v, ok := os.LookupEnv(arg)
		if !ok {
			return []byte("<unset>"), nil
		}
		return []byte(v), nil
	case "failenv": // failenv:NAME fails with the variable's value in the message
		return nil, errors.New("cannot connect with " + os.Getenv(arg))
	case "logenv": // logenv:NAME logs the variable's value
		mote.Log("%s is %s", arg, os.Getenv(arg))
		return []byte("logged"), nil
	case "kvget": // kvget:BUCKET:KEY
		b, k, _ := strings.Cut(arg, ":")
		return mote.KV(b).Get(k)
	}
	return nil, fmt.Errorf("unknown verb %q", verb)
}
