// Package bench is Mote's benchmark harness for end-to-end figures: it
// starts the real `mote serve` and the peer it is compared with in the same
// run, drives both with the same load generator (wrk on loopback), and
// reports medians and ratios. `mote bench NAME` runs a scenario; results
// with their commands are kept in bench/RESULTS.md.
//
// Hot paths inside one process are measured by `go test -bench` next to
// their code; this harness is for what crosses processes and sockets.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options are shared by every scenario.
type Options struct {
	Mote     string        // path of the mote binary (the running one by default)
	Examples string        // examples directory
	Duration time.Duration // per load run
	Rounds   int           // repetitions; medians are reported
	Only     string        // a scenario's subset to run ("" for all; baas: "process")
	Size     string        // input size per job (mapreduce: default "1GiB")
	Video    VideoConfig   // the video scenario's input and settings
	Out      io.Writer
}

func (o *Options) defaults() error {
	if o.Mote == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Mote = exe
	}
	if o.Examples == "" {
		o.Examples = "examples"
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	return nil
}

// Proc is a server process started for a benchmark.
type Proc struct {
	URL string
	cmd *exec.Cmd
}

// StartMote starts `mote serve` on a free loopback port with a fresh data
// directory under tmp.
func StartMote(ctx context.Context, mote, tmp string, extra ...string) (*Proc, error) {
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(tmp, "data"), "--log-level", "warn"}, extra...)
	return startProc(ctx, mote, args, regexp.MustCompile(`http://(\S+)`))
}

// startProc starts a command and waits for its first stdout line to name
// the URL it serves.
func startProc(ctx context.Context, bin string, args []string, urlRe *regexp.Regexp) (*Proc, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
	}()
	select {
	case line, ok := <-lines:
		m := urlRe.FindStringSubmatch(line)
		if !ok || m == nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s did not report its address (got %q)", bin, line)
		}
		return &Proc{URL: "http://" + strings.TrimPrefix(m[1], "http://"), cmd: cmd}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s did not start in 30s", bin)
	}
}

// Stop ends the process.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// Load is one load run's result.
type Load struct {
	P50, P99 time.Duration
	RPS      float64
	Errors   int // non-2xx responses and socket errors
	Requests int
}

// NeedTool returns the path of a benchmark tool, installing its Debian
// package with apt-get when it is missing and we are root.
func NeedTool(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err == nil {
			exec.Command("apt-get", "update", "-qq").Run()
			if out, err := exec.Command("apt-get", "install", "-y", "-qq", pkg).CombinedOutput(); err != nil {
				return "", fmt.Errorf("installing %s: %v\n%s", pkg, err, out)
			}
			if p, err := exec.LookPath(name); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s is needed for this benchmark: install the Debian package %s", name, pkg)
}

// Wrk runs wrk against url with conns connections for d, POSTing body.
func Wrk(ctx context.Context, wrk, url string, conns int, d time.Duration, body string, headers map[string]string) (Load, error) {
	script, err := os.CreateTemp("", "mote-wrk-*.lua")
	if err != nil {
		return Load{}, err
	}
	defer os.Remove(script.Name())
	fmt.Fprintf(script, "wrk.method = \"POST\"\nwrk.body = %q\n", body)
	for k, v := range headers {
		fmt.Fprintf(script, "wrk.headers[%q] = %q\n", k, v)
	}
	script.Close()
	threads := min(conns, 2)
	out, err := exec.CommandContext(ctx, wrk, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", "-s", script.Name(), url).CombinedOutput()
	if err != nil {
		return Load{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkPct  = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)`)
	wrkRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkReqs = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2 = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSock = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(out string) (Load, error) {
	var l Load
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			l.P50 = d
		} else {
			l.P99 = d
		}
	}
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil || l.P50 == 0 {
		return l, fmt.Errorf("cannot read wrk's output:\n%s", out)
	}
	l.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkReqs.FindStringSubmatch(out); m != nil {
		l.Requests, _ = strconv.Atoi(m[1])
	}
	if m := wrkNon2.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		l.Errors += n
	}
	if m := wrkSock.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			l.Errors += n
		}
	}
	return l, nil
}

// Median returns the median of the loads' field f.
func Median(ls []Load, f func(Load) float64) float64 {
	v := make([]float64, len(ls))
	for i, l := range ls {
		v[i] = f(l)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

// post sends one request and returns the body; it checks a server works
// before it is measured.
func post(url, body string, headers map[string]string) (string, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return string(b), resp.Header, fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), resp.Header, err
}

// us formats a duration in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
