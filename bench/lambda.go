package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
)

// RIEModule is the AWS Lambda Runtime Interface Emulator the lambda
// scenario installs with `go install` into a temporary GOBIN (never
// vendored): the peer Mote's process runtime is measured against.
const RIEModule = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

// lambdaEvent is the event every function in the lambda scenario gets:
// the aws-lambda-go example needs a name.
const lambdaEvent = `{"name":"bench"}`

// Lambda measures process functions (issue 3): warm invocations of the
// aws-lambda-go example through Mote and through the AWS Lambda Runtime
// Interface Emulator serving the same binary, at 1 and 32 connections in
// interleaved rounds, beside the wasm reactor hello and the Go SDK's native
// build; then cold starts of Go, Python and Node functions.
func Lambda(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	wrk, err := NeedTool("wrk", "wrk")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-lambda-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The functions, built from source.
	goLambda := filepath.Join(tmp, "go-lambda")
	goSDK := filepath.Join(tmp, "go-sdk")
	helloWasm := filepath.Join(tmp, "hello.wasm")
	for _, b := range []struct {
		src, out string
		wasm     bool
	}{
		{"hello-go-lambda", filepath.Join(goLambda, "bootstrap"), false},
		{"hello-reactor", filepath.Join(goSDK, "bootstrap"), false},
		{"hello-reactor", helloWasm, true},
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
	rie, err := installRIE(ctx, tmp)
	if err != nil {
		return err
	}

	peer, err := startRIE(ctx, rie, goLambda)
	if err != nil {
		return err
	}
	defer func() { peer.Stop() }()
	rieRestarts := 0
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	for _, d := range []struct {
		name, path string
		flags      []string
	}{
		{"golambda", goLambda, []string{"--runtime", "process", "--handler", "./bootstrap", "--min-warm", "1"}},
		{"gosdk", goSDK, []string{"--runtime", "process", "--handler", "./bootstrap", "--min-warm", "1"}},
		{"hello", helloWasm, []string{"--min-warm", "2"}},
	} {
		if err := deploy(ctx, o.Mote, mote.URL, d.name, d.path, d.flags...); err != nil {
			return err
		}
	}

	// The bare net/http server answering fixed bytes: the cost of the HTTP
	// round trip alone, for the floor below.
	bare, err := startProc(ctx, o.Mote, []string{"bench-peer", "--addr", "127.0.0.1:0"}, regexp.MustCompile(`http://(\S+)`))
	if err != nil {
		return err
	}
	defer bare.Stop()

	rieURL := peer.URL + "/2015-03-31/functions/function/invocations"
	type target struct{ name, url string }
	var (
		tBare   = target{"bare net/http, no function", bare.URL + "/"}
		tRIE    = target{"RIE + aws-lambda-go", rieURL}
		tLambda = target{"mote Lambda API, aws-lambda-go", mote.URL + "/2015-03-31/functions/golambda/invocations"}
		tFnGo   = target{"mote /fn, aws-lambda-go", mote.URL + "/fn/golambda"}
		tFnSDK  = target{"mote /fn, Go SDK native", mote.URL + "/fn/gosdk"}
		tWasm   = target{"mote /fn, wasm reactor", mote.URL + "/fn/hello"}
	)
	for _, t := range []target{tBare, tRIE, tLambda, tFnGo, tFnSDK, tWasm} {
		body, _, err := post(t.url, lambdaEvent, nil)
		if err != nil || !strings.Contains(body, "hello") {
			return fmt.Errorf("%s answered %q, %v", t.name, body, err)
		}
	}
	// Targets are compared by name: the emulator's URL changes when it is
	// restarted.
	points := map[int][]target{1: {tBare, tRIE, tLambda, tFnGo, tFnSDK, tWasm}, 32: {tRIE, tLambda, tWasm}}
	results := map[string]map[int][]Load{}
	fmt.Fprintf(o.Out, "warm POST %s, wrk on loopback, %d rounds of %s per point, interleaved\n", lambdaEvent, o.Rounds, o.Duration)
	for round := 0; round < o.Rounds; round++ {
		for _, conns := range []int{1, 32} {
			for _, t := range points[conns] {
				if t.name == tRIE.name {
					// The emulator exits when it fails under concurrency;
					// each of its runs starts with one that answers.
					if peer, err = ensureRIE(ctx, peer, rie, goLambda, &rieRestarts); err != nil {
						return err
					}
					t.url = peer.URL + "/2015-03-31/functions/function/invocations"
				}
				l, err := wrkAll(ctx, wrk, t.url, conns, o.Duration, lambdaEvent)
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				if results[t.name] == nil {
					results[t.name] = map[int][]Load{}
				}
				results[t.name][conns] = append(results[t.name][conns], l)
				fmt.Fprintf(o.Out, "  round %d %-32s c=%-2d p50 %-8s p99 %-9s %8.0f req/s errors %d/%d\n",
					round+1, t.name, conns, us(l.P50), us(l.P99), l.RPS, l.Errors, l.Requests)
			}
		}
	}

	p50 := func(l Load) float64 { return float64(l.P50) }
	p99 := func(l Load) float64 { return float64(l.P99) }
	rps := func(l Load) float64 { return l.RPS }
	errsOf := func(l Load) float64 { return float64(l.Errors) }
	med := func(t target, c int, f func(Load) float64) float64 { return Median(results[t.name][c], f) }
	// The emulator's best error-free rate over every run of it.
	bestRIE, bestAt := 0.0, 0
	for _, c := range []int{1, 32} {
		for _, l := range results[tRIE.name][c] {
			if l.Errors == 0 && l.RPS > bestRIE {
				bestRIE, bestAt = l.RPS, c
			}
		}
	}
	fmt.Fprintf(o.Out, "\nmedians of %d rounds\n\n| target | p50 @ 1 | p99 @ 1 | req/s @ 1 | req/s @ 32 | errors @ 32 (of requests) |\n|---|---|---|---|---|---|\n", o.Rounds)
	for _, t := range points[1] {
		r32, e32 := "—", "—"
		if len(results[t.name][32]) > 0 {
			r32 = fmt.Sprintf("%.0f", med(t, 32, rps))
			e32 = fmt.Sprintf("%.0f (of %.0f)", med(t, 32, errsOf), Median(results[t.name][32], func(l Load) float64 { return float64(l.Requests) }))
		}
		fmt.Fprintf(o.Out, "| %s | %s | %s | %.0f | %s | %s |\n", t.name, us(time.Duration(med(t, 1, p50))), us(time.Duration(med(t, 1, p99))), med(t, 1, rps), r32, e32)
	}
	fmt.Fprintf(o.Out, "\nthe emulator exited under load and was restarted %d times in %d rounds\n", rieRestarts, o.Rounds)
	ratio := med(tLambda, 1, p50) / med(tRIE, 1, p50)
	fmt.Fprintf(o.Out, "\n| check | figure | target | |\n|---|---|---|---|\n")
	fmt.Fprintf(o.Out, "| warm p50, Mote ÷ RIE (same aws-lambda-go binary, Lambda Invoke API) | %.2f× | ≤ 0.3× | %s |\n", ratio, verdict(ratio <= 0.3))
	moteErrs := 0
	for _, l := range results[tLambda.name][32] {
		moteErrs += l.Errors
	}
	r32 := med(tLambda, 32, rps) / bestRIE
	fmt.Fprintf(o.Out, "| req/s @ 32 conns, Mote ÷ RIE's best error-free rate (%.0f req/s at c=%d) | %.2f× (Mote errors: %d) | ≥ 3×, no errors | %s |\n", bestRIE, bestAt, r32, moteErrs, verdict(r32 >= 3 && moteErrs == 0))
	// The target compares the same handler source built both ways; the
	// aws-lambda-go function (another client library, HTTP both ways) is
	// reported beside it.
	x := med(tFnSDK, 1, p50) / med(tWasm, 1, p50)
	fmt.Fprintf(o.Out, "| warm p50, %s ÷ the same source as a wasm reactor (p99 %s vs %s) | %.2f× | ≤ 1.5× | %s |\n",
		tFnSDK.name, us(time.Duration(med(tFnSDK, 1, p99))), us(time.Duration(med(tWasm, 1, p99))), x, verdict(x <= 1.5))
	x = med(tFnGo, 1, p50) / med(tWasm, 1, p50)
	fmt.Fprintf(o.Out, "| warm p50, %s ÷ wasm reactor | %.2f× | — | reported |\n", tFnGo.name, x)
	// The fastest HTTP round trip measured in this run: the bare server's
	// or Mote's own with a function that does almost nothing.
	rtt := min(med(tBare, 1, p50), med(tWasm, 1, p50))
	if err := lambdaFloor(o, tLambda.url, rtt, med(tRIE, 1, p50), med(tLambda, 1, p50)); err != nil {
		return err
	}
	return coldStarts(ctx, o, mote.URL, goLambda, goSDK)
}

// lambdaFloor reports the least p50 any gateway could reach serving the
// aws-lambda-go function at one connection: an HTTP round trip (the
// fastest p50 measured in the same rounds) plus the CPU the function
// itself spends per invocation, which lies on the request's path (the
// median of X-Mote-Cpu-Us, read from the function's cgroup, over
// sequential invocations). Against the emulator's p50 it says how far
// below the emulator any platform can get with this unchanged binary.
func lambdaFloor(o Options, url string, rttP50, rieP50, moteP50 float64) error {
	const n = 300
	cpu := make([]float64, 0, n)
	for range n {
		_, h, err := post(url, lambdaEvent, nil)
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(h.Get("X-Mote-Cpu-Us"), 64)
		if err != nil {
			return fmt.Errorf("X-Mote-Cpu-Us %q: %v", h.Get("X-Mote-Cpu-Us"), err)
		}
		cpu = append(cpu, v*1e3)
	}
	fnCPU := median(cpu)
	floor := rttP50 + fnCPU
	fmt.Fprintf(o.Out, "\nfloor at 1 connection for any gateway serving the aws-lambda-go function:\n"+
		"  fastest HTTP round trip p50 %s + the function's own CPU per invocation p50 %s (its cgroup, %d calls)\n"+
		"  = %s = %.2f× the emulator's p50 (Mote: %.2f×; overhead above the floor %s)\n",
		us(time.Duration(rttP50)), us(time.Duration(fnCPU)), n, us(time.Duration(floor)), floor/rieP50, moteP50/rieP50, us(time.Duration(moteP50-floor)))
	return nil
}

// coldStarts reports, per language, deploy → first answer (a new function
// each round, through the CLI as a user would) and a fresh instance's
// first answer (an instance stopped by its idle timeout, then invoked).
func coldStarts(ctx context.Context, o Options, moteURL, goLambda, goSDK string) error {
	type fn struct {
		lang, dir string
		flags     []string
	}
	procFlags := []string{"--runtime", "process", "--handler", "./bootstrap"}
	fns := []fn{
		{"Go (aws-lambda-go)", goLambda, procFlags},
		{"Go (Mote SDK)", goSDK, procFlags},
		{"Python 3 (Mote SDK)", filepath.Join(o.Examples, "hello-python"), nil},
		{"Node (Mote SDK)", filepath.Join(o.Examples, "hello-node"), nil},
	}
	deployFirst := make([][]float64, len(fns))
	fresh := make([][]float64, len(fns))
	fmt.Fprintf(o.Out, "\ncold starts, %d rounds\n", o.Rounds)
	for i, f := range fns {
		// The function that is left idle, then invoked.
		name := fmt.Sprintf("idle%d", i)
		if err := deploy(ctx, o.Mote, moteURL, name, f.dir, append([]string{"--idle-timeout", "1s"}, f.flags...)...); err != nil {
			return err
		}
		if _, _, err := post(moteURL+"/fn/"+name, lambdaEvent, nil); err != nil {
			return err
		}
	}
	for round := 0; round < o.Rounds; round++ {
		for i, f := range fns {
			name := fmt.Sprintf("cold%d-%d", i, round)
			t0 := time.Now()
			if err := deploy(ctx, o.Mote, moteURL, name, f.dir, f.flags...); err != nil {
				return err
			}
			_, h, err := post(moteURL+"/fn/"+name, lambdaEvent, nil)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			deployFirst[i] = append(deployFirst[i], float64(d))
			fmt.Fprintf(o.Out, "  round %d %-20s deploy → first answer %7.1f ms (X-Mote-Cold %s)\n", round+1, f.lang, ms(d), h.Get("X-Mote-Cold"))
		}
		// Idle timeout 1 s, reaped within the next 1 s sweep.
		if err := sleepCtx(ctx, 2500*time.Millisecond); err != nil {
			return err
		}
		for i, f := range fns {
			t0 := time.Now()
			_, h, err := post(moteURL+fmt.Sprintf("/fn/idle%d", i), lambdaEvent, nil)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			if h.Get("X-Mote-Cold") != "true" {
				fmt.Fprintf(o.Out, "  round %d %-20s instance was still warm; not counted\n", round+1, f.lang)
				continue
			}
			fresh[i] = append(fresh[i], float64(d))
			fmt.Fprintf(o.Out, "  round %d %-20s fresh instance's first answer %7.1f ms\n", round+1, f.lang, ms(d))
		}
	}
	fmt.Fprintf(o.Out, "\n| function | deploy → first answer (p50) | fresh instance → first answer (p50) |\n|---|---|---|\n")
	for i, f := range fns {
		fmt.Fprintf(o.Out, "| %s | %.1f ms | %.1f ms |\n", f.lang, ms(time.Duration(median(deployFirst[i]))), ms(time.Duration(median(fresh[i]))))
	}
	return nil
}

// installRIE installs the emulator into tmp/gobin with the local Go.
func installRIE(ctx context.Context, tmp string) (string, error) {
	gobin := filepath.Join(tmp, "gobin")
	cmd := exec.CommandContext(ctx, gobuild.Go(), "install", RIEModule)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", RIEModule, err, out)
	}
	return filepath.Join(gobin, "aws-lambda-rie"), nil
}

// startRIE runs the emulator serving dir/bootstrap on free loopback ports
// and waits until it accepts connections. Its output (and the function's,
// which it relays) goes to /dev/null, as Mote's goes to its log store.
func startRIE(ctx context.Context, rie, dir string) (*Proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", api, "./bootstrap")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{URL: "http://" + addr, cmd: cmd}
	if err := waitListening(addr, 30*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("RIE: %w", err)
	}
	return p, nil
}

// wrkAll is Wrk for a server that may fail every request: a run without
// one successful response has no latency figures, which Wrk refuses, so
// its request and error counts are read from wrk's output here.
func wrkAll(ctx context.Context, wrk, url string, conns int, d time.Duration, body string) (Load, error) {
	l, err := Wrk(ctx, wrk, url, conns, d, body, nil)
	if err == nil || !strings.Contains(err.Error(), "requests in") {
		return l, err
	}
	out := err.Error()
	var failed Load
	if m := wrkReqs.FindStringSubmatch(out); m != nil {
		failed.Requests, _ = strconv.Atoi(m[1])
	}
	if m := wrkSock.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			failed.Errors += n
		}
	}
	if m := wrkNon2.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		failed.Errors += n
	}
	if failed.Errors == 0 {
		return l, err
	}
	return failed, nil
}

// ensureRIE returns an emulator that answers: p if it does, else a new
// one (counted in restarts) in place of p, which has exited or hangs.
func ensureRIE(ctx context.Context, p *Proc, rie, dir string, restarts *int) (*Proc, error) {
	if answers(p.URL + "/2015-03-31/functions/function/invocations") {
		return p, nil
	}
	p.Stop()
	*restarts++
	np, err := startRIE(ctx, rie, dir)
	if err != nil {
		return nil, fmt.Errorf("restarting RIE: %w", err)
	}
	if !answers(np.URL + "/2015-03-31/functions/function/invocations") {
		np.Stop()
		return nil, fmt.Errorf("restarted RIE does not answer")
	}
	return np, nil
}

// answers reports whether url answers the lambda event with 200 within 5 s.
func answers(url string) bool {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(lambdaEvent))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// deploy runs `mote deploy NAME PATH FLAGS...` against the server at url.
func deploy(ctx context.Context, mote, url, name, path string, flags ...string) error {
	args := append([]string{"deploy", name, path, "--server", url}, flags...)
	if out, err := exec.CommandContext(ctx, mote, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mote %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// invokeJSON posts event to /fn/NAME and decodes the function's JSON
// answer into v.
func invokeJSON(url, name string, event any, v any) error {
	b, err := json.Marshal(event)
	if err != nil {
		return err
	}
	body, _, err := post(url+"/fn/"+name, string(b), nil)
	if err != nil {
		return err
	}
	if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(v); err != nil {
		return fmt.Errorf("%s answered %q: %v", name, body, err)
	}
	return nil
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %s", addr, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// pid is the process id of a started server.
func (p *Proc) pid() int { return p.cmd.Process.Pid }

// median returns the median of v (0 when empty).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// statusKB reads a "Name: N kB" field of /proc/PID/status.
func statusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}
