package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
)

// Goals of issue 13 for a new instance's first answer, and for deploy →
// first answer.
const (
	goalInterpreted = 10 * time.Millisecond // Python, Node
	goalGo          = 5 * time.Millisecond  // Go SDK, aws-lambda-go
	goalWasm        = 1 * time.Millisecond  // Go wasm reactor
	goalDeploy      = 100 * time.Millisecond
)

// peerPython is the peer of a Python process function: plain python3,
// no SDK, answering over the Runtime API with the standard library's
// socket alone: what a new Python instance costs in Mote's sandbox with
// nothing of Mote's inside it.
const peerPython = `import os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
f = s.makefile("rb")
def req(method, path, body=b""):
    s.sendall(f"{method} /2018-06-01{path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    f.readline()
    h = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        h[k.strip().lower()] = v.strip()
    return h, f.read(int(h.get("content-length", 0)))
while True:
    h, _ = req("GET", "/runtime/invocation/next")
    req("POST", "/runtime/invocation/" + h["lambda-runtime-aws-request-id"] + "/response", b'"peer"')
`

// peerNode is the same for Node: plain node and its http module.
const peerNode = `const http = require("http");
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function req(method, path, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host, port, method, agent, path: "/2018-06-01" + path,
      headers: { "Content-Length": body ? Buffer.byteLength(body) : 0 } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.headers));
    });
    r.on("error", reject);
    r.end(body);
  });
}
(async () => {
  for (;;) {
    const h = await req("GET", "/runtime/invocation/next");
    await req("POST", "/runtime/invocation/" + h["lambda-runtime-aws-request-id"] + "/response", '"peer"');
  }
})();
`

// chainLink is a Python function of the prewarm chain: it calls the
// function named by NEXT, or answers at the end of the chain.
const chainLink = `import os
import mote


def handler(event, context):
    nxt = os.environ.get("NEXT")
    if not nxt:
        return "end"
    return mote.invoke(nxt, b"x").decode()
`

// Coldstart measures issue 13's cold-start figures end to end, through
// the HTTP API as a user meets them, in one run: for each runtime, a new
// instance's first answer with today's pre-initialised start (a started
// spare for process functions, a snapshot for wasm reactors) and with it
// off (MOTE_PREINIT=off: the path before), beside the peer path (plain
// python3 and node answering the Runtime API without the SDK, in the same
// sandbox, started fresh); then deploy → first answer.
//
// A new instance is made the way users meet one: the function's pool
// scales to zero after its idle timeout (1 s here), and the next call
// starts an instance (X-Mote-Cold: true; other answers are not counted).
func Coldstart(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-coldstart-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.Only == "chain" {
		mote, err := StartMote(ctx, o.Mote, tmp)
		if err != nil {
			return err
		}
		defer mote.Stop()
		return chainPrewarm(ctx, o, mote.URL, tmp)
	}

	goLambda := filepath.Join(tmp, "go-lambda")
	goSDK := filepath.Join(tmp, "go-sdk")
	reactor := filepath.Join(tmp, "hello.wasm")
	for _, b := range []struct {
		src, out string
		wasm     bool
	}{
		{"hello-go-lambda", filepath.Join(goLambda, "bootstrap"), false},
		{"hello-reactor", filepath.Join(goSDK, "bootstrap"), false},
		{"hello-reactor", reactor, true},
	} {
		fmt.Fprintf(o.Out, "building %s → %s\n", b.src, b.out)
		if b.wasm {
			err = gobuild.Wasm(filepath.Join(o.Examples, b.src), b.out, true)
		} else {
			err = gobuild.Native(filepath.Join(o.Examples, b.src), b.out)
		}
		if err != nil {
			return err
		}
	}
	pyPeer := filepath.Join(tmp, "python-peer")
	nodePeer := filepath.Join(tmp, "node-peer")
	for dir, file := range map[string][2]string{pyPeer: {"peer.py", peerPython}, nodePeer: {"peer.js", peerNode}} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, file[0]), []byte(file[1]), 0o644); err != nil {
			return err
		}
	}

	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()

	proc := []string{"--runtime", "process", "--handler", "./bootstrap"}
	type fn struct {
		row, dir string
		flags    []string
		goal     time.Duration
		peer     bool // the peer path: no SDK, always a fresh start
	}
	fns := []fn{
		{"Python 3 (Mote SDK)", filepath.Join(o.Examples, "hello-python"), nil, goalInterpreted, false},
		{"Python 3 peer: plain python3, no SDK", pyPeer, []string{"--runtime", "process", "--handler", "/usr/bin/python3 peer.py"}, goalInterpreted, true},
		{"Node (Mote SDK)", filepath.Join(o.Examples, "hello-node"), nil, goalInterpreted, false},
		{"Node peer: plain node, no SDK", nodePeer, []string{"--runtime", "process", "--handler", "node peer.js"}, goalInterpreted, true},
		{"Go (Mote SDK), native", goSDK, proc, goalGo, false},
		{"Go (aws-lambda-go)", goLambda, proc, goalGo, false},
		{"Go wasm reactor (Mote SDK)", reactor, nil, goalWasm, false},
	}
	// Each function twice: pre-initialised starts on (the default) and
	// off; a peer only off.
	type variant struct {
		fn   int
		on   bool
		name string
		got  []float64
	}
	var vs []*variant
	for i, f := range fns {
		for _, on := range []bool{true, false} {
			if on && f.peer {
				continue
			}
			v := &variant{fn: i, on: on, name: fmt.Sprintf("fresh%d-%t", i, on)}
			flags := append([]string{"--idle-timeout", "1s"}, f.flags...)
			if !on {
				flags = append(flags, "--env", "MOTE_PREINIT=off")
			}
			if err := deploy(ctx, o.Mote, mote.URL, v.name, f.dir, flags...); err != nil {
				return err
			}
			vs = append(vs, v)
		}
	}
	// A first call each (a wasm reactor's snapshot is taken from its
	// first instance and compiled in the background meanwhile).
	for _, v := range vs {
		if _, _, err := post(mote.URL+"/fn/"+v.name, lambdaEvent, nil); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Out, "\nnew instance → first answer, %d rounds (pool scaled to zero by its 1 s idle timeout, then one call)\n", o.Rounds)
	for round := 0; round < o.Rounds; round++ {
		if err := sleepCtx(ctx, 2500*time.Millisecond); err != nil {
			return err
		}
		for _, v := range vs {
			t0 := time.Now()
			_, h, err := post(mote.URL+"/fn/"+v.name, lambdaEvent, nil)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			if h.Get("X-Mote-Cold") != "true" {
				fmt.Fprintf(o.Out, "  round %d %-40s still warm; not counted\n", round+1, v.name)
				continue
			}
			v.got = append(v.got, float64(d))
		}
	}
	fmt.Fprintf(o.Out, "\n| function | pre-initialised (spare / snapshot) p50 | off (MOTE_PREINIT=off) p50 | ratio | goal | met |\n|---|---|---|---|---|---|\n")
	for i, f := range fns {
		var on, off *variant
		for _, v := range vs {
			if v.fn == i && v.on {
				on = v
			} else if v.fn == i {
				off = v
			}
		}
		offMs := ms(time.Duration(median(off.got)))
		if on == nil {
			fmt.Fprintf(o.Out, "| %s | — | %.2f ms | — | %v | %s |\n", f.row, offMs, f.goal, verdict(median(off.got) <= float64(f.goal)))
			continue
		}
		onMs := ms(time.Duration(median(on.got)))
		fmt.Fprintf(o.Out, "| %s | %.2f ms | %.2f ms | %.1f× | %v | %s |\n", f.row, onMs, offMs, offMs/onMs, f.goal, verdict(median(on.got) <= float64(f.goal)))
	}

	// Deploy → first answer: a new function each round, through the CLI
	// as a user deploys, then its first call.
	fmt.Fprintf(o.Out, "\ndeploy → first answer, %d rounds (`mote deploy` then one call)\n", o.Rounds)
	fmt.Fprintf(o.Out, "\n| function | p50 | min | goal | met |\n|---|---|---|---|---|\n")
	for i, f := range fns {
		if f.peer {
			continue
		}
		var got []float64
		for round := 0; round < o.Rounds; round++ {
			name := fmt.Sprintf("deploy%d-%d", i, round)
			t0 := time.Now()
			if err := deploy(ctx, o.Mote, mote.URL, name, f.dir, f.flags...); err != nil {
				return err
			}
			if _, _, err := post(mote.URL+"/fn/"+name, lambdaEvent, nil); err != nil {
				return err
			}
			got = append(got, float64(time.Since(t0)))
		}
		fmt.Fprintf(o.Out, "| %s | %.1f ms | %.1f ms | %v | %s |\n", f.row, ms(time.Duration(median(got))), ms(time.Duration(minOf(got))), goalDeploy, verdict(median(got) <= float64(goalDeploy)))
	}
	if err := chainPrewarm(ctx, o, mote.URL, tmp); err != nil {
		return err
	}
	fmt.Fprintln(o.Out, "\n(load on the machine: "+strings.TrimSpace(loadAvg())+")")
	return nil
}

// chainPrewarm measures declared-call prewarming (issue 13): two chains
// of 5 Python functions, each calling the next, one declaring its calls
// ("calls") and one not, both without spares (MOTE_PREINIT=off) so that
// every start is on a call's path. Each round both chains scale to zero,
// then a burst of concurrent first calls reaches each entry.
func chainPrewarm(ctx context.Context, o Options, url, tmp string) error {
	const links, burst = 5, 4
	dir := filepath.Join(tmp, "chain-link")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "handler.py"), []byte(chainLink), 0o644); err != nil {
		return err
	}
	for _, prewarm := range []bool{true, false} {
		for k := links; k >= 1; k-- {
			name := chainName(prewarm, k)
			flags := []string{"--runtime", "process", "--handler", "/usr/bin/python3 -m mote handler.handler",
				"--idle-timeout", "1s", "--invoke", "*", "--env", "MOTE_PREINIT=off"}
			if k < links {
				flags = append(flags, "--env", "NEXT="+chainName(prewarm, k+1))
				if prewarm {
					flags = append(flags, "--calls", chainName(prewarm, k+1))
				}
			}
			if err := deploy(ctx, o.Mote, url, name, dir, flags...); err != nil {
				return err
			}
		}
	}
	got := map[bool][]float64{}
	for round := 0; round < o.Rounds; round++ {
		if err := sleepCtx(ctx, 2500*time.Millisecond); err != nil {
			return err
		}
		for _, prewarm := range []bool{true, false} {
			type res struct {
				d   time.Duration
				err error
			}
			ch := make(chan res, burst)
			for range burst {
				go func() {
					t0 := time.Now()
					body, _, err := post(url+"/fn/"+chainName(prewarm, 1), "{}", nil)
					if err == nil && !strings.Contains(body, "end") {
						err = fmt.Errorf("chain answered %q", body)
					}
					ch <- res{time.Since(t0), err}
				}()
			}
			for range burst {
				r := <-ch
				if r.err != nil {
					return r.err
				}
				got[prewarm] = append(got[prewarm], float64(r.d))
			}
		}
	}
	fmt.Fprintf(o.Out, "\nchain of %d Python functions from zero, bursts of %d first calls, %d rounds (no spares)\n", links, burst, o.Rounds)
	fmt.Fprintf(o.Out, "\n| declared calls | p50 | p99 |\n|---|---|---|\n")
	for _, prewarm := range []bool{true, false} {
		label := "prewarm off (no \"calls\")"
		if prewarm {
			label = "prewarm on (\"calls\": next link)"
		}
		fmt.Fprintf(o.Out, "| %s | %.1f ms | %.1f ms |\n", label, ms(time.Duration(median(got[prewarm]))), ms(time.Duration(percentile(got[prewarm], 0.99))))
	}
	return nil
}

func chainName(prewarm bool, k int) string {
	if prewarm {
		return fmt.Sprintf("chain-on-%d", k)
	}
	return fmt.Sprintf("chain-off-%d", k)
}

// percentile returns the p-th percentile of v (nearest rank).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(p*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func minOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	m := v[0]
	for _, x := range v[1:] {
		m = min(m, x)
	}
	return m
}

// loadAvg is /proc/loadavg's first three fields, to print beside figures
// taken on a shared machine.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
