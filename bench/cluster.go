package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mote-run/mote/internal/gobuild"
)

// clusterNode is one node of the benchmark's cluster.
type clusterNode struct {
	*Proc
	name string
	nats string // client URL of its embedded nats-server
}

// Cluster measures a three-node cluster on this machine (issue 11):
//
//   - a synchronous invocation handed from node1 to node2, against a bare
//     NATS request/reply between the same two embedded servers (a client
//     on node1's, a responder on node2's) and against the same invocation
//     run on node1 itself, all through the same route
//     (POST /v1/cluster/nodes/NODE/fn/hello), one client, sequential;
//   - throughput with load on 1, 2 and 3 of the nodes, and the CPU the
//     mote processes spent per invocation.
func Cluster(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-cluster-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wasm := filepath.Join(tmp, "hello.wasm")
	src := filepath.Join(o.Examples, "hello-reactor")
	fmt.Fprintf(o.Out, "building %s as a wasm reactor\n", src)
	if err := gobuild.Wasm(src, wasm, true); err != nil {
		return err
	}
	nodes, err := startBenchCluster(ctx, o.Mote, tmp, 3)
	defer func() {
		for _, n := range nodes {
			n.Stop()
		}
	}()
	if err != nil {
		return err
	}
	if err := deploy(ctx, o.Mote, nodes[0].URL, "hello", wasm, "--min-warm", "2"); err != nil {
		return err
	}
	n1, n2 := nodes[0], nodes[1]
	for _, n := range nodes {
		if _, _, err := post(n.URL+"/fn/hello", "x", nil); err != nil {
			return err
		}
	}

	const calls = 2000
	fmt.Fprintf(o.Out, "\nlatency, one client, %d sequential calls a round, %d rounds (median of round p50s)\n", calls, o.Rounds)
	var local, cross, bare []time.Duration
	for range o.Rounds {
		l, err := sequential(n1.URL+"/v1/cluster/nodes/"+n1.name+"/fn/hello", calls)
		if err != nil {
			return err
		}
		c, err := sequential(n1.URL+"/v1/cluster/nodes/"+n2.name+"/fn/hello", calls)
		if err != nil {
			return err
		}
		b, err := natsRoundTrip(n1.nats, n2.nats, calls)
		if err != nil {
			return err
		}
		local, cross, bare = append(local, l), append(cross, c), append(bare, b)
	}
	ml, mc, mb := medianD(local), medianD(cross), medianD(bare)
	fmt.Fprintf(o.Out, "  invoke on node1, run on node1 (local)      p50 %s\n", us(ml))
	fmt.Fprintf(o.Out, "  invoke on node1, run on node2 (cross-node) p50 %s\n", us(mc))
	fmt.Fprintf(o.Out, "  bare NATS request/reply node1 -> node2     p50 %s\n", us(mb))
	fmt.Fprintf(o.Out, "  cross-node minus local: %s; of which above bare NATS: %s\n", us(mc-ml), us(mc-ml-mb))

	wrk, err := NeedTool("wrk", "wrk")
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "\nthroughput, wrk with 16 connections on each loaded node, %s a run, %d rounds (medians)\n", o.Duration, o.Rounds)
	fmt.Fprintln(o.Out, "  loaded nodes   req/s      p50        CPU per invocation (all mote processes)")
	for k := 1; k <= len(nodes); k++ {
		var rps, p50, cpu []float64
		for range o.Rounds {
			before := cpuOf(nodes)
			loads := make([]Load, k)
			errs := make([]error, k)
			var wg sync.WaitGroup
			for i := range k {
				wg.Add(1)
				go func() {
					defer wg.Done()
					loads[i], errs[i] = Wrk(ctx, wrk, nodes[i].URL+"/fn/hello", 16, o.Duration, "x", nil)
				}()
			}
			wg.Wait()
			used := cpuOf(nodes) - before
			var sum float64
			var reqs int
			var ps []float64
			for i := range k {
				if errs[i] != nil {
					return errs[i]
				}
				if loads[i].Errors > 0 {
					return fmt.Errorf("node %d: %d errors of %d requests", i+1, loads[i].Errors, loads[i].Requests)
				}
				sum += loads[i].RPS
				reqs += loads[i].Requests
				ps = append(ps, float64(loads[i].P50))
			}
			sort.Float64s(ps)
			rps, p50 = append(rps, sum), append(p50, ps[len(ps)/2])
			cpu = append(cpu, float64(used)/float64(max(reqs, 1)))
		}
		fmt.Fprintf(o.Out, "  %d              %-10.0f %-10s %s\n", k, medianF(rps), us(time.Duration(medianF(p50))), us(time.Duration(medianF(cpu))))
	}
	return clusterKV(ctx, o, tmp, n1)
}

// clusterKV compares durable KV puts at 16 writers: a JetStream KV bucket
// with 3 replicas on the cluster's embedded servers (fsync before every
// acknowledgement), put by Go clients of node1's server, against Mote's
// embedded store, put by examples/bench-kv on node1 (its host calls, timed
// inside the function, as in mote bench baas). Functions' KV is not on
// JetStream yet: this is what that step would stand on.
func clusterKV(ctx context.Context, o Options, tmp string, n1 *clusterNode) error {
	kvWasm := filepath.Join(tmp, "kv.wasm")
	if err := gobuild.Wasm(filepath.Join(o.Examples, "bench-kv"), kvWasm, true); err != nil {
		return err
	}
	if err := deploy(ctx, o.Mote, n1.URL, "kvw", kvWasm, "--min-warm", strconv.Itoa(baasWriters), "--max-instances", strconv.Itoa(baasWriters), "--read", "bench", "--write", "bench"); err != nil {
		return err
	}
	nc, err := nats.Connect(n1.nats)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "benchkv", Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "\ndurable KV puts, %d writers x %d puts, %d rounds (medians)\n", baasWriters, baasDurOps, o.Rounds)
	var jsRate, jsP50, moteRate, moteP50 []float64
	for round := range o.Rounds {
		rate, p50, err := jetstreamWriters(ctx, kv, round)
		if err != nil {
			return err
		}
		jsRate, jsP50 = append(jsRate, rate), append(jsP50, p50)
		// Pinned to node1, so no put travels between nodes.
		rate, p50, err = durableWriters(n1.URL+"/v1/cluster/nodes/"+n1.name, round)
		if err != nil {
			return err
		}
		moteRate, moteP50 = append(moteRate, rate), append(moteP50, p50)
	}
	fmt.Fprintf(o.Out, "  JetStream KV, R3, sync always (Go client)   %8.0f puts/s  p50 %s\n", medianF(jsRate), us(time.Duration(medianF(jsP50))))
	fmt.Fprintf(o.Out, "  Mote embedded store, durable (from wasm)    %8.0f puts/s  p50 %s\n", medianF(moteRate), us(time.Duration(medianF(moteP50))))
	return nil
}

// jetstreamWriters runs 16 writers of baasDurOps puts each, timed one by
// one, and returns the total rate and the median of their p50s (ns).
func jetstreamWriters(ctx context.Context, kv jetstream.KeyValue, round int) (rate, p50 float64, err error) {
	p50s := make([]float64, baasWriters)
	errc := make(chan error, baasWriters)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range baasWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds := make([]time.Duration, 0, baasDurOps)
			for j := range baasDurOps {
				start := time.Now()
				if _, err := kv.Put(ctx, fmt.Sprintf("r%d.w%d.k%d", round, i, j), []byte("0123456789abcdef")); err != nil {
					errc <- err
					return
				}
				ds = append(ds, time.Since(start))
			}
			p50s[i] = float64(medianD(ds))
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	close(errc)
	if err := <-errc; err != nil {
		return 0, 0, err
	}
	return float64(baasWriters*baasDurOps) / wall.Seconds(), medianF(p50s), nil
}

// startBenchCluster starts n `mote serve` nodes of one cluster with
// fresh data directories under tmp.
func startBenchCluster(ctx context.Context, mote, tmp string, n int) ([]*clusterNode, error) {
	routes, clients := make([]string, n), make([]string, n)
	for i := range n {
		var err error
		if routes[i], err = freeAddr(); err != nil {
			return nil, err
		}
		if clients[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	nodes := make([]*clusterNode, n)
	errc := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		var peers []string
		for j := range n {
			if j != i {
				peers = append(peers, routes[j])
			}
		}
		name := fmt.Sprintf("node%d", i+1)
		args := []string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(tmp, name), "--log-level", "warn",
			"--cluster-name", "bench", "--cluster-listen", routes[i], "--peers", strings.Join(peers, ","),
			"--nats-listen", clients[i], "--node-name", name}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := startProc(ctx, mote, args, regexp.MustCompile(`http://(\S+)`))
			if err != nil {
				errc[i] = fmt.Errorf("%s: %w", name, err)
				return
			}
			nodes[i] = &clusterNode{Proc: p, name: name, nats: "nats://" + clients[i]}
		}()
	}
	wg.Wait()
	var up []*clusterNode
	for i, n := range nodes {
		if n != nil {
			up = append(up, n)
		} else if errc[i] != nil {
			return up, errc[i]
		}
	}
	return up, nil
}

// sequential posts to url calls times, one at a time, and returns the
// median latency.
func sequential(url string, calls int) (time.Duration, error) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	ds := make([]time.Duration, 0, calls)
	for range calls {
		start := time.Now()
		resp, err := c.Post(url, "text/plain", strings.NewReader("x"))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("%s: %d", url, resp.StatusCode)
		}
		ds = append(ds, time.Since(start))
	}
	return medianD(ds), nil
}

// natsRoundTrip measures a bare request/reply: a client of the server at
// from asks a responder on the server at to, through their route.
func natsRoundTrip(from, to string, calls int) (time.Duration, error) {
	rc, err := nats.Connect(to)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if _, err := rc.Subscribe("bench.echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		return 0, err
	}
	rc.Flush()
	qc, err := nats.Connect(from)
	if err != nil {
		return 0, err
	}
	defer qc.Close()
	// Interest crosses the route asynchronously: wait until it arrived.
	for i := 0; ; i++ {
		if _, err := qc.Request("bench.echo", []byte("x"), time.Second); err == nil {
			break
		} else if i == 50 {
			return 0, fmt.Errorf("bare NATS request/reply: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ds := make([]time.Duration, 0, calls)
	for range calls {
		start := time.Now()
		if _, err := qc.Request("bench.echo", []byte("x"), 5*time.Second); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	return medianD(ds), nil
}

// cpuOf sums the CPU time (user + system) the nodes' processes used so far.
func cpuOf(nodes []*clusterNode) time.Duration {
	var total time.Duration
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	return total
}

func medianD(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
