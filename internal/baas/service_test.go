package baas

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/store"
)

func newService(t testing.TB) *Service {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(dir + "/db")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{DB: db, Dir: dir, KV: store.KVConfig{SweepInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		db.Close()
	})
	return s
}

var admin = Caller{Function: "fn", Root: "root-1", Perms: Permissions{Read: []string{"*"}, Write: []string{"*"}}}

func call(t testing.TB, s *Service, who Caller, op string, args ...string) ([]byte, error) {
	t.Helper()
	argv := make([][]byte, len(args))
	for i, a := range args {
		argv[i] = []byte(a)
	}
	return s.Call(context.Background(), who, op, argv)
}

func mustCall(t testing.TB, s *Service, who Caller, op string, args ...string) string {
	t.Helper()
	out, err := call(t, s, who, op, args...)
	if err != nil {
		t.Fatalf("%s %q: %v", op, args, err)
	}
	return string(out)
}

func list(t testing.TB, b []byte) []string {
	t.Helper()
	args, err := host.ParseArgs(b)
	if err != nil {
		t.Fatalf("result is not an arg list: %v", err)
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(a)
	}
	return out
}

func TestCallKV(t *testing.T) {
	s := newService(t)
	v1 := mustCall(t, s, admin, OpKVPut, "b", "k", "hello")
	if got := mustCall(t, s, admin, OpKVGet, "b", "k"); got != "hello" {
		t.Errorf("kv.get = %q, want hello", got)
	}
	gv := list(t, []byte(mustCall(t, s, admin, OpKVGetV, "b", "k")))
	if len(gv) != 2 || gv[0] != "hello" || gv[1] != v1 {
		t.Errorf("kv.getv = %q, want [hello %s]", gv, v1)
	}
	v2 := mustCall(t, s, admin, OpKVCAS, "b", "k", v1, "world")
	if _, err := call(t, s, admin, OpKVCAS, "b", "k", v1, "stale"); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("stale kv.cas: %v, want conflict", err)
	}
	if got := mustCall(t, s, admin, OpKVGet, "b", "k"); got != "world" {
		t.Errorf("after cas = %q", got)
	}
	if n1, _ := strconv.Atoi(v1); strconv.Itoa(n1) == v2 {
		t.Errorf("cas did not change the version")
	}
	if got := mustCall(t, s, admin, OpKVIncr, "b", "n", "5"); got != "5" {
		t.Errorf("kv.incr = %s, want 5", got)
	}
	if got := mustCall(t, s, admin, OpKVIncr, "b", "n"); got != "6" {
		t.Errorf("kv.incr default delta = %s, want 6", got)
	}
	mustCall(t, s, admin, OpKVPut, "b", "t", "x", "60000", "buffered")
	page := list(t, []byte(mustCall(t, s, admin, OpKVList, "b", "", "", "2")))
	if strings.Join(page, ",") != "n,k,n" {
		t.Errorf("kv.list = %q, want [n k n] (next cursor n, keys k n)", page)
	}
	vers := list(t, []byte(mustCall(t, s, admin, OpKVBatch, "b", "", "put", "x", "1", "delete", "k", "", "put", "y", "2")))
	if len(vers) != 3 || vers[1] != "0" {
		t.Errorf("kv.batch versions = %q", vers)
	}
	if _, err := call(t, s, admin, OpKVGet, "b", "k"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("deleted by batch: %v", err)
	}
	mustCall(t, s, admin, OpKVDelete, "b", "x")
	if _, err := call(t, s, admin, OpKVGet, "b", "x"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("kv.delete: %v", err)
	}
}

func TestCallBadInput(t *testing.T) {
	s := newService(t)
	tests := []struct {
		op   string
		args []string
		want errs.Code
	}{
		{"kv.nope", nil, errs.BadRequest},
		{OpKVGet, []string{"b"}, errs.BadRequest},
		{OpKVGet, []string{"b", "k", "extra"}, errs.BadRequest},
		{OpKVGet, []string{"../x", "k"}, errs.BadRequest},
		{OpKVPut, []string{"b", "a/../b", "v"}, errs.BadRequest},
		{OpKVPut, []string{"b", "k", strings.Repeat("x", 1<<20+1)}, errs.PayloadTooLarge},
		{OpKVPut, []string{"b", "k", "v", "soon"}, errs.BadRequest},
		{OpKVPut, []string{"b", "k", "v", "-5"}, errs.BadRequest},
		{OpKVPut, []string{"b", "k", "v", "", "maybe"}, errs.BadRequest},
		{OpKVCAS, []string{"b", "k", "v1", "x"}, errs.BadRequest},
		{OpKVIncr, []string{"b", "k", "1.5"}, errs.BadRequest},
		{OpKVBatch, []string{"b", "", "put", "k"}, errs.BadRequest},
		{OpKVBatch, []string{"b", "", "upsert", "k", "v"}, errs.BadRequest},
		{OpBarrierWait, []string{"b", "x", "0", "10"}, errs.BadRequest},
		{OpCacheGet, []string{""}, errs.BadRequest},
	}
	for _, tt := range tests {
		_, err := call(t, s, admin, tt.op, tt.args...)
		if got := errs.CodeOf(err); got != tt.want {
			t.Errorf("%s %.40q: code %q (%v), want %q", tt.op, tt.args, got, err, tt.want)
		}
	}
	if _, err := call(t, s, admin, OpKVGet, "b", "k"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("bad calls wrote something: %v", err)
	}
}

func TestCallPermissions(t *testing.T) {
	s := newService(t)
	mustCall(t, s, admin, OpKVPut, "public", "k", "v")
	mustCall(t, s, admin, OpKVPut, "secret", "k", "v")
	reader := Caller{Function: "reader", Root: "r", Perms: Permissions{
		Read: []string{"public", "team-*"}, Write: []string{"scratch"},
	}}
	tests := []struct {
		op   string
		args []string
		want errs.Code // "" for allowed
	}{
		{OpKVGet, []string{"public", "k"}, ""},
		{OpKVGet, []string{"team-a", "k"}, errs.NotFound},
		{OpKVGet, []string{"secret", "k"}, errs.Forbidden},
		{OpKVGet, []string{"teamx", "k"}, errs.Forbidden},
		{OpKVPut, []string{"public", "k", "v"}, errs.Forbidden},
		{OpKVPut, []string{"scratch", "k", "v"}, ""},
		{OpKVGet, []string{"scratch", "k"}, errs.Forbidden}, // write does not imply read
		{OpKVIncr, []string{"scratch", "n"}, errs.Forbidden},
		{OpKVList, []string{"secret"}, errs.Forbidden},
		{OpKVBatch, []string{"public", "", "put", "k", "v"}, errs.Forbidden},
		{OpObjPut, []string{"public", "o", "data"}, errs.Forbidden},
		{OpObjGet, []string{"secret", "o"}, errs.Forbidden},
		{OpCounterAdd, []string{"scratch", "c"}, errs.Forbidden},
		{OpQueuePush, []string{"public", "q", "item"}, errs.Forbidden},
		{OpQueuePop, []string{"public", "q"}, errs.Forbidden},
		{OpSignalWait, []string{"secret", "s", "1"}, errs.Forbidden},
		{OpLeaseAcquire, []string{"public", "l", "1000"}, errs.Forbidden},
		{OpBarrierWait, []string{"public", "b", "1", "10"}, errs.Forbidden},
		{OpEphPut, []string{"k", "v"}, ""}, // its own tree's scope
		{OpCachePut, []string{"k", "v"}, ""},
	}
	for _, tt := range tests {
		_, err := call(t, s, reader, tt.op, tt.args...)
		if got := errs.CodeOf(err); got != tt.want {
			t.Errorf("%s %q: code %q (%v), want %q", tt.op, tt.args, got, err, tt.want)
		}
	}
	if got := mustCall(t, s, admin, OpKVGet, "public", "k"); got != "v" {
		t.Errorf("forbidden write changed public/k to %q", got)
	}
}

func TestPermissionsValidate(t *testing.T) {
	tests := []struct {
		p  Permissions
		ok bool
	}{
		{Permissions{Read: []string{"*", "a", "b-*"}}, true},
		{Permissions{Write: []string{"a*b"}}, false},
		{Permissions{Read: []string{""}}, false},
	}
	for _, tt := range tests {
		if got := tt.p.Validate() == nil; got != tt.ok {
			t.Errorf("Validate(%+v) ok = %v, want %v", tt.p, got, tt.ok)
		}
	}
}

func TestCallObjects(t *testing.T) {
	s := newService(t)
	data := strings.Repeat("abcdefghij", 1000)
	res := list(t, []byte(mustCall(t, s, admin, OpObjPut, "b", "o/1", data, "text/plain")))
	if len(res) != 2 || res[0] != "10000" || len(res[1]) != 64 {
		t.Errorf("obj.put = %q", res)
	}
	if got := mustCall(t, s, admin, OpObjGet, "b", "o/1"); got != data {
		t.Errorf("obj.get returned %d bytes, want %d", len(got), len(data))
	}
	if got := mustCall(t, s, admin, OpObjGet, "b", "o/1", "10", "5"); got != "abcde" {
		t.Errorf("obj.get range = %q, want abcde", got)
	}
	head := list(t, []byte(mustCall(t, s, admin, OpObjHead, "b", "o/1")))
	if len(head) != 4 || head[0] != "10000" || head[1] != res[1] || head[2] != "text/plain" {
		t.Errorf("obj.head = %q", head)
	}
	if page := list(t, []byte(mustCall(t, s, admin, OpObjList, "b", "o/"))); strings.Join(page, ",") != ",o/1" {
		t.Errorf("obj.list = %q", page)
	}
	s.cfg.MaxHostObjectBytes = 100
	if _, err := call(t, s, admin, OpObjGet, "b", "o/1"); errs.CodeOf(err) != errs.PayloadTooLarge {
		t.Errorf("obj.get over the host cap: %v, want payload_too_large", err)
	}
	if _, err := call(t, s, admin, OpObjPut, "b", "o/2", strings.Repeat("x", 101)); errs.CodeOf(err) != errs.PayloadTooLarge {
		t.Errorf("obj.put over the host cap: %v", err)
	}
	mustCall(t, s, admin, OpObjDelete, "b", "o/1")
	if _, err := call(t, s, admin, OpObjHead, "b", "o/1"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("obj.head after delete: %v", err)
	}
}

func TestCallEphemeralScopedToTree(t *testing.T) {
	s := newService(t)
	tree1 := Caller{Function: "map", Root: "tree-1"}
	tree1b := Caller{Function: "reduce", Root: "tree-1"}
	tree2 := Caller{Function: "map", Root: "tree-2"}
	mustCall(t, s, tree1, OpEphPut, "shuffle/0", "part")
	if got := mustCall(t, s, tree1b, OpEphGet, "shuffle/0"); got != "part" {
		t.Errorf("same tree, other function: %q", got)
	}
	if _, err := call(t, s, tree2, OpEphGet, "shuffle/0"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("other tree read: %v, want not_found", err)
	}
	if page := list(t, []byte(mustCall(t, s, tree1, OpEphList, "shuffle/"))); len(page) != 2 {
		t.Errorf("eph.list = %q", page)
	}
	if err := s.EndScope("tree-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, s, tree1, OpEphGet, "shuffle/0"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("after EndScope: %v", err)
	}
	if _, err := call(t, s, Caller{Function: "x"}, OpEphGet, "k"); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("no root: %v, want bad_request", err)
	}
}

// TestCallEphemeralDurability: eph.put takes kv.put's durability argument
// (a shuffle has no use for an fsync per chunk), and refuses a bad one
// without writing.
func TestCallEphemeralDurability(t *testing.T) {
	s := newService(t)
	tree := Caller{Function: "map", Root: "tree-1"}
	for _, d := range []string{"", "durable", "buffered"} {
		mustCall(t, s, tree, OpEphPut, "k/"+d, "v"+d, "", d)
		if got := mustCall(t, s, tree, OpEphGet, "k/"+d); got != "v"+d {
			t.Errorf("durability %q: got %q, want %q", d, got, "v"+d)
		}
	}
	if _, err := call(t, s, tree, OpEphPut, "bad", "v", "", "sometimes"); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("durability \"sometimes\": %v, want bad_request", err)
	}
	if _, err := call(t, s, tree, OpEphGet, "bad"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("a refused put wrote: %v, want not_found", err)
	}
}

func TestCallCoordination(t *testing.T) {
	s := newService(t)
	if got := mustCall(t, s, admin, OpCounterAdd, "c", "hits", "3"); got != "3" {
		t.Errorf("counter.add = %s", got)
	}
	if got := mustCall(t, s, admin, OpCounterGet, "c", "hits"); got != "3" {
		t.Errorf("counter.get = %s", got)
	}
	if got := mustCall(t, s, admin, OpQueuePush, "c", "q", "a", "b"); got != "2" {
		t.Errorf("queue.push = %s", got)
	}
	if got := mustCall(t, s, admin, OpQueuePop, "c", "q"); got != "a" {
		t.Errorf("queue.pop = %s", got)
	}
	if got := mustCall(t, s, admin, OpQueueLen, "c", "q"); got != "1" {
		t.Errorf("queue.len = %s", got)
	}
	lease := list(t, []byte(mustCall(t, s, admin, OpLeaseAcquire, "c", "l", "60000")))
	if len(lease) != 2 || len(lease[0]) != 32 {
		t.Fatalf("lease.acquire = %q", lease)
	}
	if _, err := call(t, s, admin, OpLeaseAcquire, "c", "l", "60000"); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("second acquire: %v", err)
	}
	mustCall(t, s, admin, OpLeaseRenew, "c", "l", lease[0], "1000")
	mustCall(t, s, admin, OpLeaseRelease, "c", "l", lease[0])

	var wg sync.WaitGroup
	results := make([]string, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := call(t, s, admin, OpBarrierWait, "c", "phase", "3", "5000")
			if err != nil {
				t.Error(err)
			}
			results[i] = string(out)
		}()
	}
	wg.Wait()
	if got := strings.Join(sortedCopy(results), ","); got != "1,2,3" {
		t.Errorf("barrier arrival orders %s, want 1,2,3", got)
	}

	got := make(chan string)
	go func() {
		out, err := call(t, s, admin, OpSignalWait, "c", "go", "5000")
		if err != nil {
			t.Error(err)
		}
		got <- string(out)
	}()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if n := mustCall(t, s, admin, OpSignalPublish, "c", "go", "payload"); n == "1" {
			break
		}
	}
	if p := <-got; p != "payload" {
		t.Errorf("signal.wait = %q", p)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestBlockingWaitUsesNoCPU checks that a host call blocked on an empty
// queue sleeps (the property that keeps waits unbilled): the process uses
// almost no CPU while a pop waits 300 ms.
func TestBlockingWaitUsesNoCPU(t *testing.T) {
	s := newService(t)
	before := cpuTime(t)
	start := time.Now()
	_, err := call(t, s, admin, OpQueuePop, "c", "empty", "300")
	wall := time.Since(start)
	used := cpuTime(t) - before
	if errs.CodeOf(err) != errs.Timeout {
		t.Fatalf("pop on an empty queue: %v, want timeout", err)
	}
	if wall < 250*time.Millisecond {
		t.Errorf("pop returned after %v, want ~300ms", wall)
	}
	if used > 100*time.Millisecond {
		t.Errorf("process used %v of CPU during a %v wait, want it asleep", used, wall)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Call(ctx, admin, OpQueuePop, [][]byte{[]byte("c"), []byte("empty"), []byte("60000")}); errs.CodeOf(err) != errs.Timeout {
		t.Errorf("pop past the invocation deadline: %v, want timeout", err)
	}
}

func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestFunctionCache(t *testing.T) {
	s := newService(t)
	a := Caller{Function: "a", CacheBytes: 4096}
	b := Caller{Function: "b"}
	mustCall(t, s, a, OpCachePut, "model", "weights")
	if got := mustCall(t, s, a, OpCacheGet, "model"); got != "weights" {
		t.Errorf("cache.get = %q", got)
	}
	if _, err := call(t, s, b, OpCacheGet, "model"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("other function's cache: %v, want not_found", err)
	}
	for i := range 100 { // 100 × ~170 B overflows the 4 KiB budget
		mustCall(t, s, a, OpCachePut, "k"+strconv.Itoa(i), strings.Repeat("x", 100))
	}
	st := s.Stats().FunctionCaches["a"]
	if st.Bytes > 4096 || st.Budget != 4096 {
		t.Errorf("cache a: %+v, want within a 4096-byte budget", st)
	}
	if _, err := call(t, s, a, OpCacheGet, "model"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("least recent entry survived: %v", err)
	}
	mustCall(t, s, a, OpCachePut, "k", "v")
	mustCall(t, s, a, OpCacheDelete, "k")
	if _, err := call(t, s, a, OpCacheGet, "k"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("after cache.delete: %v", err)
	}
}

func TestCloseWakesWaiters(t *testing.T) {
	s := newService(t)
	done := make(chan error)
	go func() {
		_, err := call(t, s, admin, OpQueuePop, "c", "q", "60000")
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if errs.CodeOf(err) != errs.Unavailable {
			t.Errorf("waiter woken by Close with %v, want unavailable", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not wake a blocked pop")
	}
}
