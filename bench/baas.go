package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
)

// kvResult is examples/bench-kv's answer: its own timing of N operations.
type kvResult struct {
	N       int     `json:"n"`
	TotalNs int64   `json:"total_ns"`
	OpsPerS float64 `json:"ops_per_s"`
	MeanNs  float64 `json:"mean_ns"`
	P50Ns   float64 `json:"p50_ns"`
	P99Ns   float64 `json:"p99_ns"`
	Missing int     `json:"missing"`
}

// kvEvent is examples/bench-kv's event.
type kvEvent struct {
	Op         string `json:"op"`
	Backend    string `json:"backend,omitempty"`
	Redis      string `json:"redis,omitempty"`
	Bucket     string `json:"bucket,omitempty"`
	Prefix     string `json:"prefix"`
	Keys       int    `json:"keys"`
	N          int    `json:"n,omitempty"`
	Size       int    `json:"size,omitempty"`
	Durability string `json:"durability,omitempty"`
	Batch      int    `json:"batch,omitempty"`
}

// Sizes of the BaaS scenario's runs.
const (
	baasProcOps   = 5000    // ops per process-function run (each a round trip)
	baasWasmOps   = 200_000 // host calls per wasm run
	baasKeys      = 1000    // distinct keys the get/put runs cycle through
	baasColdKeys  = 20_000  // keys read once each after a restart (uncached)
	baasWriters   = 16      // concurrent durable writers
	baasDurOps    = 250     // durable puts per writer per round
	baasObjectLen = 1 << 30 // the streamed object
)

// BaaS measures Mote's storage from inside functions (issue 4): a native
// process function doing KV gets and puts through Mote's host API and, in
// the same instance, through a Redis client against a redis-server started
// here; a wasm reactor's per-host-call cost for cached and uncached gets
// and buffered puts; durable puts from 16 concurrent writers; and a 1 GiB
// object streamed in and out over HTTP with the server's peak RSS.
func BaaS(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	redisBin, err := NeedTool("redis-server", "redis-server")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-baas-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	kvWasm := filepath.Join(tmp, "kv.wasm")
	kvProc := filepath.Join(tmp, "kv-proc")
	src := filepath.Join(o.Examples, "bench-kv")
	fmt.Fprintf(o.Out, "building %s as a wasm reactor and natively\n", src)
	if err := gobuild.Wasm(src, kvWasm, true); err != nil {
		return err
	}
	if err := gobuild.Native(src, filepath.Join(kvProc, "bootstrap")); err != nil {
		return err
	}

	redis, redisAddr, err := startRedis(ctx, redisBin)
	if err != nil {
		return err
	}
	defer redis.Stop()
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer func() { mote.Stop() }()
	perms := []string{"--read", "bench", "--write", "bench"}
	if err := deploy(ctx, o.Mote, mote.URL, "kvw", kvWasm, append([]string{"--min-warm", strconv.Itoa(baasWriters), "--max-instances", strconv.Itoa(baasWriters)}, perms...)...); err != nil {
		return err
	}
	// The process function reaches redis-server on the host's loopback, so
	// it shares the host's network.
	if err := deploy(ctx, o.Mote, mote.URL, "kvp", kvProc, append([]string{"--runtime", "process", "--handler", "./bootstrap", "--network", "--min-warm", "1"}, perms...)...); err != nil {
		return err
	}

	// Data: the keys the get runs read, in Mote and in Redis, and the key
	// sets read once each after a restart.
	var r kvResult
	fill := []kvEvent{
		{Op: "fill", Prefix: "k", Keys: baasKeys, Durability: "buffered"},
		{Op: "fill", Backend: "redis", Redis: redisAddr, Prefix: "k", Keys: baasKeys},
	}
	for i := 0; i < o.Rounds; i++ {
		fill = append(fill, kvEvent{Op: "fill", Prefix: fmt.Sprintf("u%d-", i), Keys: baasColdKeys, Durability: "buffered"})
	}
	for _, ev := range fill {
		fn := "kvw"
		if ev.Backend == "redis" {
			fn = "kvp"
		}
		if err := invokeJSON(mote.URL, fn, ev, &r); err != nil {
			return err
		}
	}

	// 1. Process function: Mote's host API vs. Redis, interleaved.
	type run struct {
		name, fn string
		ev       kvEvent
	}
	procRuns := []run{
		{"process → Mote KV get", "kvp", kvEvent{Op: "get", Prefix: "k", Keys: baasKeys, N: baasProcOps, Batch: 1}},
		{"process → Redis GET", "kvp", kvEvent{Op: "get", Backend: "redis", Redis: redisAddr, Prefix: "k", Keys: baasKeys, N: baasProcOps, Batch: 1}},
		{"process → Mote KV put (buffered)", "kvp", kvEvent{Op: "put", Prefix: "k", Keys: baasKeys, N: baasProcOps, Durability: "buffered", Batch: 1}},
		{"process → Redis SET", "kvp", kvEvent{Op: "put", Backend: "redis", Redis: redisAddr, Prefix: "k", Keys: baasKeys, N: baasProcOps, Batch: 1}},
		{"wasm → Mote KV get (cached)", "kvw", kvEvent{Op: "get", Prefix: "k", Keys: baasKeys, N: baasWasmOps}},
		{"wasm → Mote KV put (buffered)", "kvw", kvEvent{Op: "put", Prefix: "k", Keys: baasKeys, N: baasWasmOps, Durability: "buffered"}},
	}
	// --only process runs only the process-function rows, for iterating
	// on the host-call path.
	var processOnly bool
	switch o.Only {
	case "":
	case "process":
		processOnly = true
	default:
		return fmt.Errorf("baas: --only takes \"process\", not %q", o.Only)
	}
	if processOnly {
		procRuns = procRuns[:4]
	}
	res := map[string][]kvResult{}
	fmt.Fprintf(o.Out, "KV from inside functions, 100-byte values, %d rounds, interleaved (timed inside the function)\n", o.Rounds)
	// A first pass warms the instances and Redis's connection; not counted.
	for round := -1; round < o.Rounds; round++ {
		for _, x := range procRuns {
			if err := invokeJSON(mote.URL, x.fn, x.ev, &r); err != nil {
				return fmt.Errorf("%s: %w", x.name, err)
			}
			if r.Missing > 0 {
				return fmt.Errorf("%s: %d keys missing", x.name, r.Missing)
			}
			if round < 0 {
				continue
			}
			res[x.name] = append(res[x.name], r)
			fmt.Fprintf(o.Out, "  round %d %-34s %9.0f ops/s  p50 %7.2f µs  p99 %7.2f µs\n", round+1, x.name, r.OpsPerS, r.P50Ns/1e3, r.P99Ns/1e3)
		}
	}

	if processOnly {
		fmt.Fprintf(o.Out, "\nmedians of %d rounds\n\n", o.Rounds)
		printKVRuns(o.Out, res, runNames(procRuns, func(x run) string { return x.name }))
		printProcessChecks(o.Out, res)
		return nil
	}

	// 2. Uncached gets: restart the server (the read cache is in memory),
	// then read key sets that were written before, once each.
	mote.Stop()
	if mote, err = StartMote(ctx, o.Mote, tmp); err != nil {
		return err
	}
	if err := invokeJSON(mote.URL, "kvw", kvEvent{Op: "get", Prefix: "k", Keys: 1, N: 1}, &r); err != nil {
		return err
	}
	const uncached = "wasm → Mote KV get (uncached)"
	for round := 0; round < o.Rounds; round++ {
		if err := invokeJSON(mote.URL, "kvw", kvEvent{Op: "get", Prefix: fmt.Sprintf("u%d-", round), Keys: baasColdKeys, N: baasColdKeys}, &r); err != nil {
			return err
		}
		if r.Missing > 0 {
			return fmt.Errorf("uncached gets: %d keys missing after the restart", r.Missing)
		}
		res[uncached] = append(res[uncached], r)
		fmt.Fprintf(o.Out, "  round %d %-34s %9.0f ops/s  p50 %7.2f µs  p99 %7.2f µs\n", round+1, uncached, r.OpsPerS, r.P50Ns/1e3, r.P99Ns/1e3)
	}

	// 3. Durable puts, 16 writers at once (each its own wasm instance).
	var durRate, durP50 []float64
	for round := -1; round < o.Rounds; round++ {
		rate, p50, err := durableWriters(mote.URL, round)
		if err != nil {
			return err
		}
		if round < 0 {
			continue
		}
		durRate, durP50 = append(durRate, rate), append(durP50, p50)
		fmt.Fprintf(o.Out, "  round %d durable puts, %d writers         %9.0f puts/s p50 %7.0f µs\n", round+1, baasWriters, rate, p50/1e3)
	}

	// 4. A 1 GiB object in and out over HTTP.
	var putMBs, getMBs, putHWM, getHWM []float64
	base, err := statusKB(mote.pid(), "VmRSS")
	if err != nil {
		return err
	}
	for round := 0; round < o.Rounds; round++ {
		url := fmt.Sprintf("%s/v1/objects/bench/big%d", mote.URL, round)
		put, hwm, err := objectRun(mote.pid(), func() (int64, error) { return putObject(url, baasObjectLen) })
		if err != nil {
			return err
		}
		get, ghwm, err := objectRun(mote.pid(), func() (int64, error) { return getObject(url) })
		if err != nil {
			return err
		}
		if err := deleteObject(url); err != nil {
			return err
		}
		putMBs, getMBs = append(putMBs, put), append(getMBs, get)
		putHWM, getHWM = append(putHWM, float64(hwm)), append(getHWM, float64(ghwm))
		fmt.Fprintf(o.Out, "  round %d 1 GiB object: put %6.0f MB/s (peak RSS %d MiB), get %6.0f MB/s (peak RSS %d MiB)\n", round+1, put, hwm>>10, get, ghwm>>10)
	}

	// Summary.
	m := func(name string, f func(kvResult) float64) float64 { return medianOf(res, name, f) }
	fmt.Fprintf(o.Out, "\nmedians of %d rounds (p50/p99 of wasm runs are over batches of 32 calls)\n\n", o.Rounds)
	printKVRuns(o.Out, res, append(runNames(procRuns, func(x run) string { return x.name }), uncached))
	fmt.Fprintf(o.Out, "| wasm → Mote KV put (durable), %d writers | %.0f | %.0f | — |\n", baasWriters, median(durRate), median(durP50)/1e3)
	redisGet, redisSet := m("process → Redis GET", kvRate), m("process → Redis SET", kvRate)
	cached, putB, unc := m("wasm → Mote KV get (cached)", kvP50), m("wasm → Mote KV put (buffered)", kvP50), m(uncached, kvP50)
	printProcessChecks(o.Out, res)
	x := m("wasm → Mote KV get (cached)", kvRate) / redisGet
	fmt.Fprintf(o.Out, "| wasm gets ÷ Redis unpipelined GETs | %.1f× | ≥ 10× | %s |\n", x, verdict(x >= 10))
	x = m("wasm → Mote KV put (buffered)", kvRate) / redisSet
	fmt.Fprintf(o.Out, "| wasm puts ÷ Redis unpipelined SETs | %.1f× | ≥ 10× | %s |\n", x, verdict(x >= 10))
	fmt.Fprintf(o.Out, "| cached get from wasm, p50 | %.2f µs | ≤ 1 µs | %s |\n", cached, verdict(cached <= 1))
	fmt.Fprintf(o.Out, "| uncached get from wasm, p50 | %.2f µs | ≤ 10 µs | %s |\n", unc, verdict(unc <= 10))
	fmt.Fprintf(o.Out, "| buffered put from wasm, p50 | %.2f µs | ≤ 5 µs | %s |\n", putB, verdict(putB <= 5))
	fmt.Fprintf(o.Out, "| durable puts, %d writers | %.0f/s, p50 %.2f ms | ≥ 10k/s | %s |\n", baasWriters, median(durRate), median(durP50)/1e6, verdict(median(durRate) >= 10_000))
	fmt.Fprintf(o.Out, "| 1 GiB object put / get | %.0f / %.0f MB/s | report | |\n", median(putMBs), median(getMBs))
	fmt.Fprintf(o.Out, "| server peak RSS during put / get (idle RSS before: %d MiB) | %.0f / %.0f MiB | flat (≪ 1 GiB) | %s |\n",
		base>>10, median(putHWM)/1024, median(getHWM)/1024, verdict(median(putHWM) < 256*1024 && median(getHWM) < 256*1024))
	return nil
}

// medianOf is the median over name's rounds of f.
func medianOf(res map[string][]kvResult, name string, f func(kvResult) float64) float64 {
	v := make([]float64, 0, len(res[name]))
	for _, r := range res[name] {
		v = append(v, f(r))
	}
	return median(v)
}

func kvRate(r kvResult) float64 { return r.OpsPerS }
func kvP50(r kvResult) float64  { return r.P50Ns / 1e3 }
func kvP99(r kvResult) float64  { return r.P99Ns / 1e3 }

// printKVRuns prints a row per run: its median rate, p50 and p99.
func printKVRuns(w io.Writer, res map[string][]kvResult, names []string) {
	fmt.Fprintf(w, "| run | ops/s | p50 µs/op | p99 µs/op |\n|---|---|---|---|\n")
	for _, name := range names {
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f |\n", name, medianOf(res, name, kvRate), medianOf(res, name, kvP50), medianOf(res, name, kvP99))
	}
}

// printProcessChecks prints the checks table's header and the process
// function's rows: its gets and puts through Mote against Redis's.
func printProcessChecks(w io.Writer, res map[string][]kvResult) {
	fmt.Fprintf(w, "\n| check | figure | target | |\n|---|---|---|---|\n")
	x := medianOf(res, "process → Mote KV get", kvRate) / medianOf(res, "process → Redis GET", kvRate)
	fmt.Fprintf(w, "| process function gets, Mote ÷ Redis | %.2f× | ≥ 1× (on par) | %s |\n", x, verdict(x >= 1))
	x = medianOf(res, "process → Mote KV put (buffered)", kvRate) / medianOf(res, "process → Redis SET", kvRate)
	fmt.Fprintf(w, "| process function puts, Mote (buffered) ÷ Redis | %.2f× | ≥ 1× (on par) | %s |\n", x, verdict(x >= 1))
}

func runNames[T any](xs []T, f func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// startRedis runs redis-server on a free loopback port without
// persistence, as a cache-style peer.
func startRedis(ctx context.Context, bin string) (*Proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := cutPort(addr)
	cmd := exec.CommandContext(ctx, bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &Proc{URL: "redis://" + addr, cmd: cmd}
	if err := waitListening(addr, 10*time.Second); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("redis-server: %w", err)
	}
	return p, addr, nil
}

func cutPort(addr string) (string, string, bool) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], true
		}
	}
	return addr, "", false
}

// durableWriters runs 16 invocations at once, each doing baasDurOps
// durable puts timed one by one, and returns the total rate and the
// median of the writers' p50 latencies (ns).
func durableWriters(url string, round int) (rate, p50 float64, err error) {
	var wg sync.WaitGroup
	rs := make([]kvResult, baasWriters)
	errc := make(chan error, baasWriters)
	n := baasDurOps
	if round < 0 {
		n = 10 // the warm-up round
	}
	t0 := time.Now()
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := kvEvent{Op: "put", Prefix: fmt.Sprintf("d%d-%d-", round+1, i), Keys: n, N: n, Durability: "durable", Batch: 1}
			if err := invokeJSON(url, "kvw", ev, &rs[i]); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	close(errc)
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	p50s := make([]float64, len(rs))
	for i, r := range rs {
		p50s[i] = r.P50Ns
	}
	return float64(n*baasWriters) / wall.Seconds(), median(p50s), nil
}

// objectRun resets the server's peak RSS (clear_refs 5), runs f, and
// returns its MB/s and the server's peak RSS (kB) while it ran.
func objectRun(pid int, f func() (int64, error)) (mbs float64, hwmKB int64, err error) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return 0, 0, fmt.Errorf("resetting peak RSS: %w", err)
	}
	t0 := time.Now()
	n, err := f()
	if err != nil {
		return 0, 0, err
	}
	mbs = float64(n) / 1e6 / time.Since(t0).Seconds()
	hwmKB, err = statusKB(pid, "VmHWM")
	return mbs, hwmKB, err
}

// patternReader yields n bytes of a repeating 1 MiB pattern without
// holding more than that.
type patternReader struct {
	left int64
	buf  []byte
	off  int
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := copy(b, p.buf[p.off:])
	n = int(min(int64(n), p.left))
	p.off = (p.off + n) % len(p.buf)
	p.left -= int64(n)
	return n, nil
}

func putObject(url string, size int64) (int64, error) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	req, err := http.NewRequest(http.MethodPut, url, &patternReader{left: size, buf: buf})
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, b)
	}
	return size, nil
}

func getObject(url string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return io.Copy(io.Discard, resp.Body)
}

// deleteObject frees the disk a round's object took.
func deleteObject(url string) error {
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("DELETE %s: %d", url, resp.StatusCode)
	}
	return nil
}
