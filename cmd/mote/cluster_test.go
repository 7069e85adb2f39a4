package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/cluster"
)

// clusterNode is one `mote serve --cluster-name` process of a test
// cluster, restartable on its data directory.
type clusterNode struct {
	name  string
	data  string
	addr  string // API address, fixed across restarts
	route string // --cluster-listen
	peers []string
	cmd   *exec.Cmd
	done  chan struct{}
	url   string
}

// freeAddrs returns n loopback addresses with ports free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// startCluster starts n nodes at once: each waits for the others'
// JetStream quorum before it says it serves.
func startCluster(t *testing.T, n int) []*clusterNode {
	t.Helper()
	routes, apis := freeAddrs(t, n), freeAddrs(t, n)
	nodes := make([]*clusterNode, n)
	for i := range nodes {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		nodes[i] = &clusterNode{name: fmt.Sprintf("node%d", i+1), data: t.TempDir(), addr: apis[i], route: routes[i], peers: peers}
	}
	startNodes(t, nodes...)
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.kill()
		}
	})
	return nodes
}

// startNodes starts the nodes' processes together and waits until each
// serves.
func startNodes(t *testing.T, nodes ...*clusterNode) {
	t.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, len(nodes))
	for _, nd := range nodes {
		nd.cmd = exec.Command(moteBinary(t), "serve", "--addr", nd.addr, "--data", nd.data,
			"--cluster-name", "t", "--cluster-listen", nd.route, "--peers", strings.Join(nd.peers, ","),
			"--node-name", nd.name, "--async-ack-wait", "1s", "--log-level", "warn")
		stdout, _ := nd.cmd.StdoutPipe()
		if testing.Verbose() {
			nd.cmd.Stderr = os.Stderr
		}
		if err := nd.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		nd.done = make(chan struct{})
		wg.Add(1)
		go func(nd *clusterNode, cmd *exec.Cmd) {
			line, err := bufio.NewReader(stdout).ReadString('\n')
			nd.url = "http://" + nd.addr
			if err != nil {
				errc <- fmt.Errorf("%s did not start: %v", nd.name, err)
			} else if !strings.Contains(line, nd.url) {
				errc <- fmt.Errorf("%s: unexpected first line %q", nd.name, line)
			}
			wg.Done()
			io.Copy(io.Discard, stdout)
			cmd.Wait()
			close(nd.done)
		}(nd, nd.cmd)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func (nd *clusterNode) kill() {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.done
	nd.cmd = nil
}

// call is one HTTP request to a node and what came of it.
type call struct {
	status int
	code   string // X-Mote-Error-Code
	body   string
	took   time.Duration
	err    error
}

var httpc = &http.Client{Timeout: 30 * time.Second}

func clusterPost(url, body string, hdr ...string) call {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := httpc.Do(req)
	c := call{took: time.Since(start), err: err}
	if err != nil {
		return c
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.took = time.Since(start)
	c.status, c.code, c.body = resp.StatusCode, resp.Header.Get("X-Mote-Error-Code"), string(b)
	return c
}

// asyncDone reports whether async invocation id has a recorded outcome,
// as node nd answers.
func asyncDone(t *testing.T, nd *clusterNode, id string) (*cluster.AsyncRecord, bool) {
	resp, err := httpc.Get(nd.url + "/v1/cluster/async/" + id)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, false
	}
	var rec cluster.AsyncRecord
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		t.Errorf("async record %s: %v", id, err)
		return nil, false
	}
	return &rec, true
}

// checkAsync is the set checker: every acknowledged async invocation
// completes, at least once, within the deadline.
func checkAsync(t *testing.T, nd *clusterNode, acked []string, within time.Duration) {
	t.Helper()
	pending := map[string]bool{}
	for _, id := range acked {
		pending[id] = true
	}
	deadline := time.Now().Add(within)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for id := range pending {
			if rec, ok := asyncDone(t, nd, id); ok {
				if rec.Status != "succeeded" {
					t.Errorf("async %s: %s (%s)", id, rec.Status, rec.Error)
				}
				delete(pending, id)
			}
		}
		if len(pending) > 0 {
			time.Sleep(100 * time.Millisecond) // polling a server in another process
		}
	}
	if len(pending) > 0 {
		t.Errorf("%d of %d acknowledged async invocations never completed (lost), e.g. %v", len(pending), len(acked), firstKeys(pending, 3))
	}
}

// waitUntil polls cond, which asks processes of the test's cluster,
// until it holds or a minute passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: a minute passed", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func firstKeys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}

func enqueue(nd *clusterNode, payload string) (string, call) {
	c := clusterPost(nd.url+"/fn/g", payload, "X-Mote-Async", "true")
	if c.err != nil || c.status != http.StatusAccepted {
		return "", c
	}
	var out struct{ ID string }
	json.Unmarshal([]byte(c.body), &out)
	return out.ID, c
}

// TestClusterKillOneNode kills one of three nodes (SIGKILL) under a mixed
// load of sync invocations handed to it, plain sync invocations and async
// invocations, then crashes all three at once and restarts them. It
// checks that no acknowledged async invocation is lost, that sync calls
// on the dead node fail with unavailable (503) within a bound, that the
// survivors serve, and that the deploy and every acknowledged async
// outcome outlive the crash of the whole cluster. Last, with two nodes
// dead, the third refuses writes as unavailable and serves sync calls.
func TestClusterKillOneNode(t *testing.T) {
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	s1 := &server{url: n1.url}
	if code, out, errOut := s1.mote(t, "deploy", "g", guest, "--invoke", "g"); code != 0 || strings.Contains(out, "missing") {
		t.Fatalf("deploy: %s %s", out, errOut)
	}
	// Visible and runnable on every node once deploy returned.
	for _, nd := range nodes {
		if c := clusterPost(nd.url+"/fn/g", "echo:hi"); c.status != 200 || c.body != "hi" {
			t.Fatalf("%s right after deploy: %d %s", nd.name, c.status, c.body)
		}
	}

	var (
		mu     sync.Mutex
		acked  []string
		toDead []call // sync calls handed to node3 from node1
		plain  []call // sync calls to the survivors
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f()
			}
		}()
	}
	for _, nd := range []*clusterNode{n1, n2, n3} {
		for range 2 {
			worker(func() {
				if id, _ := enqueue(nd, "worksleep:1000:20"); id != "" {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			})
		}
	}
	for range 2 {
		worker(func() {
			c := clusterPost(n1.url+"/v1/cluster/nodes/node3/fn/g", "worksleep:1000:50")
			mu.Lock()
			toDead = append(toDead, c)
			mu.Unlock()
		})
	}
	for _, nd := range []*clusterNode{n1, n2} {
		worker(func() {
			c := clusterPost(nd.url+"/fn/g", "echo:x")
			mu.Lock()
			plain = append(plain, c)
			mu.Unlock()
		})
	}
	count := func(calls *[]call, want int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, c := range *calls {
				if c.status == want {
					n++
				}
			}
			return n >= 5 && len(acked) >= 20
		}
	}
	waitUntil(t, "load on every node before the kill", count(&toDead, 200))
	killedAt := time.Now()
	n3.kill()
	waitUntil(t, "sync calls to the dead node failing", count(&toDead, 503))
	close(stop)
	wg.Wait()

	const bound = 5 * time.Second // heartbeat timeout (2s) plus slack on a loaded machine
	var failedFast, ok int
	for _, c := range toDead {
		switch {
		case c.err != nil:
			t.Errorf("sync call to node3: %v", c.err)
		case c.status == 200:
			ok++
		case c.status == 503 && c.code == "unavailable":
			failedFast++
			if c.took > bound {
				t.Errorf("sync call to the dead node failed after %v, over the %v bound", c.took, bound)
			}
		default:
			t.Errorf("sync call to node3: %d %s %s, want 200 or 503 unavailable", c.status, c.code, c.body)
		}
	}
	if ok == 0 || failedFast == 0 {
		t.Errorf("sync calls handed to node3: %d served, %d unavailable: want some of each around the kill", ok, failedFast)
	}
	for _, c := range plain {
		if c.err != nil || (c.status != 200 && !(c.status == 503 && c.code == "unavailable")) {
			t.Errorf("sync call to a survivor: %v %d %s %s", c.err, c.status, c.code, c.body)
		}
	}
	// Survivors serve: after the death was detected, every call succeeds.
	for i := range 20 {
		nd := nodes[i%2]
		if c := clusterPost(nd.url+"/fn/g", "call:g:echo:after"); c.status != 200 || c.body != "after" {
			t.Errorf("%s after node3 died: %d %s %s", nd.name, c.status, c.code, c.body)
		}
	}
	t.Logf("kill at %v: %d async acknowledged, %d sync to node3 (%d served, %d unavailable), %d sync to survivors",
		killedAt.Format(time.TimeOnly), len(acked), len(toDead), ok, failedFast, len(plain))
	checkAsync(t, n1, acked, 20*time.Second)

	// Bring node3 back: it catches up with what happened without it.
	startNodes(t, n3)
	if c := clusterPost(n3.url+"/fn/g", "echo:back"); c.status != 200 || c.body != "back" {
		t.Errorf("node3 after restart: %d %s", c.status, c.body)
	}

	// Crash all three at once with invocations still queued, restart.
	var queued []string
	for i := range 30 {
		id, c := enqueue(nodes[i%3], "worksleep:1000:100")
		if id == "" {
			t.Fatalf("enqueue before the crash: %v %d %s", c.err, c.status, c.body)
		}
		queued = append(queued, id)
	}
	for _, nd := range nodes {
		nd.cmd.Process.Signal(syscall.SIGKILL)
	}
	for _, nd := range nodes {
		<-nd.done
		nd.cmd = nil
	}
	startNodes(t, nodes...)
	for _, nd := range nodes {
		if c := clusterPost(nd.url+"/fn/g", "echo:again"); c.status != 200 || c.body != "again" {
			t.Errorf("%s after the crash of all: %d %s", nd.name, c.status, c.body)
		}
	}
	checkAsync(t, n2, append(acked, queued...), 30*time.Second)

	// Without a quorum (two of three dead), the last node refuses writes
	// as unavailable and keeps serving what it has.
	n1.kill()
	n2.kill()
	if c := clusterPost(n3.url+"/fn/g", "echo:alone"); c.status != 200 || c.body != "alone" {
		t.Errorf("sync call on the last node: %d %s %s", c.status, c.code, c.body)
	}
	if id, c := enqueue(n3, "echo:lost"); id != "" || c.status != 503 || c.code != "unavailable" {
		t.Errorf("async invocation without a quorum: id %q, %d %s %s; want 503 unavailable", id, c.status, c.code, c.body)
	}
	s3 := &server{url: n3.url}
	if code, out, errOut := s3.mote(t, "deploy", "g", guest); code == 0 || !strings.Contains(errOut, "unavailable") {
		t.Errorf("deploy without a quorum: %d %s %s; want it refused as unavailable", code, out, errOut)
	}
	if c := clusterPost(n3.url+"/fn/g", "echo:still"); c.status != 200 || c.body != "still" {
		t.Errorf("sync call on the last node after a refused deploy: %d %s %s", c.status, c.code, c.body)
	}
}

// status asks nd for the cluster's state.
func status(nd *clusterNode) (*cluster.Status, error) {
	resp, err := httpc.Get(nd.url + "/v1/cluster")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st cluster.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// TestClusterPauseMetaLeader pauses the JetStream meta leader's process
// (SIGSTOP) while the other two take a deploy and async invocations,
// then resumes it (SIGCONT): the two keep accepting writes (a quorum),
// and the resumed node converges: it runs the version deployed while it
// was paused, and every acknowledged async invocation completes.
func TestClusterPauseMetaLeader(t *testing.T) {
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	nodes := startCluster(t, 3)
	s1 := &server{url: nodes[0].url}
	if code, out, errOut := s1.mote(t, "deploy", "g", guest); code != 0 {
		t.Fatalf("deploy: %s %s", out, errOut)
	}
	st, err := status(nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	var leader *clusterNode
	var others []*clusterNode
	for _, nd := range nodes {
		if nd.name == st.MetaLeader {
			leader = nd
		} else {
			others = append(others, nd)
		}
	}
	if leader == nil {
		t.Fatalf("no meta leader among the nodes: %q", st.MetaLeader)
	}
	start := time.Now()
	leader.cmd.Process.Signal(syscall.SIGSTOP)
	paused := true
	defer func() {
		if paused {
			leader.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()

	// The two others hold a quorum: writes go on after the elections.
	var acked []string
	waitUntil(t, "the two unpaused nodes accepting async invocations", func() bool {
		id, _ := enqueue(others[0], "echo:during")
		if id != "" {
			acked = append(acked, id)
		}
		return id != ""
	})
	t.Logf("%v: async accepted with %s paused", time.Since(start).Round(time.Millisecond), leader.name)
	for i := range 20 {
		id, c := enqueue(others[i%2], "echo:during")
		if id == "" {
			t.Fatalf("async invocation on %s while the leader is paused: %v %d %s", others[i%2].name, c.err, c.status, c.body)
		}
		acked = append(acked, id)
	}
	// A deploy may meet an election in progress and be refused as
	// unavailable; a client retries.
	so := &server{url: others[1].url}
	var code int
	var out, errOut string
	waitUntil(t, "a deploy while the leader is paused", func() bool {
		code, out, errOut = so.mote(t, "deploy", "g", guest, "--env", "PAUSED=yes")
		if code != 0 && !strings.Contains(errOut, "unavailable") {
			t.Fatalf("deploy while the leader is paused: %d %s %s", code, out, errOut)
		}
		return code == 0
	})
	if !strings.Contains(out, "version 2") {
		t.Errorf("deploy while the leader is paused: %s, want version 2 (a refused deploy takes no number)", out)
	}
	if !strings.Contains(out+errOut, leader.name) {
		t.Logf("deploy output did not name the paused node %s as missing (it was not live): %s", leader.name, out)
	}

	t.Logf("%v: deployed version 2", time.Since(start).Round(time.Millisecond))
	leader.cmd.Process.Signal(syscall.SIGCONT)
	paused = false
	waitUntil(t, "the resumed node running version 2", func() bool {
		c := clusterPost(leader.url+"/fn/g", "env:PAUSED")
		return c.status == 200 && c.body == "yes"
	})
	t.Logf("%v: the resumed node runs version 2", time.Since(start).Round(time.Millisecond))
	waitUntil(t, "every node seeing the other two alive", func() bool {
		for _, nd := range nodes {
			st, err := status(nd)
			if err != nil {
				return false
			}
			alive := 0
			for _, n := range st.Nodes {
				if n.Alive {
					alive++
				}
			}
			if alive != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("%v: all nodes alive", time.Since(start).Round(time.Millisecond))
	checkAsync(t, leader, acked, 20*time.Second)
	t.Logf("%v: every acknowledged async invocation completed", time.Since(start).Round(time.Millisecond))
}
