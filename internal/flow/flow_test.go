package flow

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/store"
)

// goFunc is a "function" written in Go for these tests.
type goFunc func(ctx context.Context, ev *runtime.Event) ([]byte, error)

// goRunner stands in for the scheduler: it runs Go funcs as functions, one
// attempt per Run, and reports a fixed CPU time per function so billing
// can be checked exactly. The system's end-to-end tests run real wasm.
type goRunner struct {
	mu    sync.Mutex
	fns   map[string]goFunc
	cpu   map[string]time.Duration
	runs  map[string]int
	count atomic.Int64
}

func newGoRunner() *goRunner {
	return &goRunner{fns: map[string]goFunc{}, cpu: map[string]time.Duration{}, runs: map[string]int{}}
}

func (r *goRunner) add(name string, cpu time.Duration, f goFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fns[name], r.cpu[name] = f, cpu
}

func (r *goRunner) executions(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[name]
}

func (r *goRunner) Run(ctx context.Context, fn string, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, string, error) {
	r.mu.Lock()
	f, cpu := r.fns[fn], r.cpu[fn]
	r.runs[fn]++
	r.mu.Unlock()
	r.count.Add(1)
	if f == nil {
		return runtime.Result{}, runtime.Usage{}, false, "", errs.E(errs.NotFound, "no function %s", fn)
	}
	out, err := f(ctx, ev)
	return runtime.Result{Output: out}, runtime.Usage{CPU: cpu}, false, "v1", err
}

// policies is the Functions of these tests; unknown names are not found.
type policies struct {
	mu sync.Mutex
	m  map[string]Policy
}

func (p *policies) set(fn string, pol Policy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]Policy{}
	}
	p.m[fn] = pol
}

func (p *policies) Policy(fn string) (Policy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pol, ok := p.m[fn]
	if !ok {
		return Policy{}, errs.E(errs.NotFound, "no function %s", fn)
	}
	return pol, nil
}

// fakeClock records backoff sleeps instead of sleeping: its timers fire
// at once. Its time is the system clock's, or, with Fake set, the fake's.
type fakeClock struct {
	Fake   *clock.Fake
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *fakeClock) base() clock.Clock {
	if c.Fake != nil {
		return c.Fake
	}
	return clock.System{}
}

func (c *fakeClock) Now() time.Time                  { return c.base().Now() }
func (c *fakeClock) Since(t time.Time) time.Duration { return c.base().Since(t) }
func (c *fakeClock) NewTicker(d time.Duration) clock.Ticker {
	return c.base().NewTicker(d)
}
func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.base().AfterFunc(d, f)
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	t := firedTimer(make(chan time.Time, 1))
	t <- time.Time{}
	return t
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time    { return t }
func (firedTimer) Stop() bool               { return false }
func (firedTimer) Reset(time.Duration) bool { return false }

type harness struct {
	t   testing.TB
	dir string
	db  *store.DB
	e   *Engine
	r   *goRunner
	p   *policies
	cfg Config
}

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), r: newGoRunner(), p: &policies{}}
	h.cfg = Config{Runner: h.r, Functions: h.p, Clock: &fakeClock{}}
	if mod != nil {
		mod(&h.cfg)
	}
	h.open()
	t.Cleanup(h.close)
	return h
}

func (h *harness) open() {
	h.t.Helper()
	db, err := store.Open(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := h.cfg
	cfg.DB = db
	e, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db, h.e = db, e
}

func (h *harness) close() {
	if h.e == nil {
		return
	}
	if err := h.e.Close(); err != nil {
		h.t.Error(err)
	}
	if err := h.db.Close(); err != nil {
		h.t.Error(err)
	}
	h.e, h.db = nil, nil
}

// fn registers a function with a policy.
func (h *harness) fn(name string, pol Policy, cpu time.Duration, f goFunc) {
	h.p.set(name, pol)
	h.r.add(name, cpu, f)
}

func (h *harness) invoke(fn, payload string) (*Outcome, error) {
	return h.e.Invoke(context.Background(), Request{Function: fn, Payload: []byte(payload)})
}

// waitStatus polls Get until id reaches a final status.
func (h *harness) waitStatus(id string) *Node {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := h.e.Get(id)
		if err != nil {
			h.t.Fatal(err)
		}
		if n.Status.Final() {
			return n
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("invocation %s still %s", id, n.Status)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// call is what an SDK's invoke does.
func call(ctx context.Context, ev *runtime.Event, op string, args ...string) ([]byte, error) {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	return ev.Host.Call(ctx, op, bs)
}

type result struct {
	code, data string
}

func parseResults(t testing.TB, b []byte) []result {
	t.Helper()
	args, err := host.ParseArgs(b)
	if err != nil || len(args)%2 != 0 {
		t.Fatalf("bad results encoding %q: %v", b, err)
	}
	var out []result
	for i := 0; i < len(args); i += 2 {
		out = append(out, result{string(args[i]), string(args[i+1])})
	}
	return out
}

func echo(_ context.Context, ev *runtime.Event) ([]byte, error) { return ev.Payload, nil }

func TestChainRecordsTreeAndBillsOwnCPUOnly(t *testing.T) {
	h := newHarness(t, nil)
	h.fn("c", Policy{}, 2*time.Millisecond, func(_ context.Context, ev *runtime.Event) ([]byte, error) {
		return append(ev.Payload, "c"...), nil
	})
	h.fn("b", Policy{}, 1500*time.Microsecond, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		out, err := call(ctx, ev, OpInvoke, "c", string(ev.Payload)+"b")
		return out, err
	})
	h.fn("a", Policy{Memory: 256 << 20}, 300*time.Microsecond, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		// The parent waits on its child a while: none of it is billed.
		time.Sleep(5 * time.Millisecond)
		return call(ctx, ev, OpInvoke, "b", "a")
	})
	o, err := h.invoke("a", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(o.Output), "abc"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	if o.CPU != 300*time.Microsecond || o.BilledMs != 1 {
		t.Errorf("root CPU %v billed %d ms, want 300µs and 1 ms (its own only)", o.CPU, o.BilledMs)
	}
	n, err := h.e.Get(o.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for d, x := 0, n; x != nil; d++ {
		got = append(got, fmt.Sprintf("%s d%d %s cpu%d billed%d root=%v", x.Function, x.Depth, x.Status, x.CPUMicros, x.BilledMs, x.Root == o.ID))
		if d > 0 && x.Parent == "" {
			t.Errorf("%s has no parent", x.Function)
		}
		if len(x.Children) > 1 {
			t.Fatalf("%s has %d children, want 1", x.Function, len(x.Children))
		}
		if len(x.Children) == 0 {
			break
		}
		if x.Children[0].Parent != x.ID {
			t.Errorf("%s's child has parent %s", x.Function, x.Children[0].Parent)
		}
		x = x.Children[0]
	}
	want := []string{
		"a d0 succeeded cpu300 billed1 root=true",
		"b d1 succeeded cpu1500 billed2 root=true",
		"c d2 succeeded cpu2000 billed2 root=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n.WallMicros < 5000 {
		t.Errorf("root wall %d µs, want ≥ 5000 (it slept 5 ms)", n.WallMicros)
	}

	var buf bytes.Buffer
	if err := RenderTree(&buf, n); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "a  succeeded") || !strings.HasPrefix(lines[1], "└─ b  succeeded") || !strings.HasPrefix(lines[2], "   └─ c  succeeded") {
		t.Errorf("RenderTree:\n%s", buf.String())
	}

	rows, err := h.e.Ledger().Query("", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	billed := map[string]int64{}
	for _, r := range rows {
		billed[r.Function] += r.BilledMs
	}
	if billed["a"] != 1 || billed["b"] != 2 || billed["c"] != 2 {
		t.Errorf("ledger billed ms = %v, want a:1 b:2 c:2", billed)
	}
}

func TestLimits(t *testing.T) {
	t.Run("depth", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxDepth = 3 })
		h.fn("rec", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
			return call(ctx, ev, OpInvoke, "rec", "")
		})
		_, err := h.invoke("rec", "")
		if got, want := errs.CodeOf(err), errs.LimitExceeded; got != want {
			t.Fatalf("code = %q (%v), want %q", got, err, want)
		}
		if !strings.Contains(err.Error(), "depth limit of 3") {
			t.Errorf("message %q does not name the depth limit", err)
		}
		if got, want := h.r.executions("rec"), 4; got != want { // depths 0..3
			t.Errorf("executions = %d, want %d", got, want)
		}
	})
	t.Run("descendants", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxDescendants = 5 })
		h.fn("leaf", Policy{}, 0, echo)
		var res []result
		h.fn("fan", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
			out, err := call(ctx, ev, OpMap, "leaf", "1", "0", "1", "2", "3", "4", "5", "6", "7")
			res = parseResults(t, out)
			return nil, err
		})
		if _, err := h.invoke("fan", ""); err != nil {
			t.Fatal(err)
		}
		var ok, limited int
		for i, r := range res {
			switch {
			case r.code == "" && r.data == fmt.Sprint(i):
				ok++
			case r.code == string(errs.LimitExceeded):
				limited++
			default:
				t.Errorf("result %d = %+v", i, r)
			}
		}
		if ok != 5 || limited != 3 {
			t.Errorf("ok %d, limited %d; want 5 and 3", ok, limited)
		}
	})
	t.Run("concurrency", func(t *testing.T) {
		h := newHarness(t, nil)
		started, release := make(chan struct{}), make(chan struct{})
		h.fn("one", Policy{Concurrency: 1}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
			close(started)
			<-release
			return nil, nil
		})
		done := make(chan error)
		go func() {
			_, err := h.invoke("one", "")
			done <- err
		}()
		<-started
		o, err := h.invoke("one", "")
		if got, want := errs.CodeOf(err), errs.LimitExceeded; got != want {
			t.Errorf("second call: code %q, want %q", got, want)
		}
		if o == nil || o.Status != StatusFailed {
			t.Errorf("second call outcome %+v, want a failed node", o)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestCancellationStopsSubtree(t *testing.T) {
	h := newHarness(t, nil)
	var asyncID atomic.Value
	block := func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	h.fn("block", Policy{}, 0, block)
	h.fn("parent", Policy{Timeout: 30 * time.Millisecond}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		hd, err := call(ctx, ev, OpInvokeAsync, "block", "")
		if err != nil {
			return nil, err
		}
		asyncID.Store(string(hd))
		return call(ctx, ev, OpInvoke, "block", "")
	})
	start := time.Now()
	o, err := h.invoke("parent", "")
	if got, want := errs.CodeOf(err), errs.Timeout; got != want {
		t.Fatalf("code %q (%v), want %q", got, err, want)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the parent's timeout did not stop it")
	}
	async := h.waitStatus(asyncID.Load().(string))
	if async.Status != StatusCancelled {
		t.Errorf("async child status %s, want cancelled", async.Status)
	}
	n, err := h.e.Get(o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Children) != 2 {
		t.Fatalf("%d children, want 2", len(n.Children))
	}
	for _, c := range n.Children {
		if !c.Status.Final() || c.Status == StatusSucceeded {
			t.Errorf("child %s status %s, want stopped", c.ID, c.Status)
		}
	}
}

// An attempt that ends at its deadline is a timeout whatever the Runner
// reported (the scheduler answers a queue wait cut short by the deadline
// with overloaded), whether the Engine's context or the Runner keeps the
// deadline (Policy.RunnerDeadline); a child of an attempt whose Runner
// keeps it still runs under the attempt's deadline.
func TestAttemptDeadlineIsATimeout(t *testing.T) {
	for _, rd := range []bool{false, true} {
		h := newHarness(t, nil)
		var childDeadline time.Time
		h.fn("child", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
			childDeadline, _ = ctx.Deadline()
			return nil, nil
		})
		h.fn("slow", Policy{Timeout: 30 * time.Millisecond, RunnerDeadline: rd}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
			if _, ok := ctx.Deadline(); ok == rd {
				t.Errorf("RunnerDeadline %v: the Runner's context has a deadline: %v, want %v", rd, ok, !rd)
			}
			if _, err := call(ctx, ev, OpInvoke, "child", ""); err != nil {
				return nil, err
			}
			if !childDeadline.Equal(ev.Deadline) {
				t.Errorf("RunnerDeadline %v: child's deadline %v, want the attempt's %v", rd, childDeadline, ev.Deadline)
			}
			// Wait as the scheduler's queue does, then refuse.
			if rd {
				time.Sleep(time.Until(ev.Deadline))
			} else {
				<-ctx.Done()
			}
			return nil, errs.E(errs.Overloaded, "no instance became free before the deadline")
		})
		_, err := h.invoke("slow", "")
		if got, want := errs.CodeOf(err), errs.Timeout; got != want {
			t.Errorf("RunnerDeadline %v: code %q (%v), want %q", rd, got, err, want)
		}
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		pol       Policy
		failures  int
		code      errs.Code
		wantCode  errs.Code
		wantRuns  int
		wantSleep []time.Duration
	}{
		{"succeeds on third", Policy{MaxAttempts: 3, Backoff: Backoff{Base: 10 * time.Millisecond}}, 2, errs.FunctionError, "", 3, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}},
		{"gives up", Policy{MaxAttempts: 3, Backoff: Backoff{Base: 10 * time.Millisecond, Max: 15 * time.Millisecond}}, 5, errs.Timeout, errs.Timeout, 3, []time.Duration{10 * time.Millisecond, 15 * time.Millisecond}},
		{"not retryable", Policy{MaxAttempts: 3}, 5, errs.BadRequest, errs.BadRequest, 1, nil},
		{"retry on chosen code", Policy{MaxAttempts: 2, RetryOn: []errs.Code{errs.OutOfMemory}}, 1, errs.OutOfMemory, "", 2, []time.Duration{100 * time.Millisecond}},
		{"default one attempt", Policy{}, 1, errs.FunctionError, errs.FunctionError, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{}
			h := newHarness(t, func(c *Config) { c.Clock = clock })
			var n atomic.Int64
			h.fn("f", tt.pol, time.Millisecond, func(context.Context, *runtime.Event) ([]byte, error) {
				if n.Add(1) <= int64(tt.failures) {
					return nil, errs.E(tt.code, "attempt failed")
				}
				return []byte("ok"), nil
			})
			o, err := h.invoke("f", "")
			if got := errs.CodeOf(err); got != tt.wantCode {
				t.Errorf("code %q, want %q", got, tt.wantCode)
			}
			if got := h.r.executions("f"); got != tt.wantRuns {
				t.Errorf("runs %d, want %d", got, tt.wantRuns)
			}
			if o.Attempts != tt.wantRuns || o.BilledMs != int64(tt.wantRuns) {
				t.Errorf("attempts %d billed %d, want %d each", o.Attempts, o.BilledMs, tt.wantRuns)
			}
			if fmt.Sprint(clock.sleeps) != fmt.Sprint(tt.wantSleep) {
				t.Errorf("backoff %v, want %v", clock.sleeps, tt.wantSleep)
			}
		})
	}
}

func TestBackoffJitterStaysInRange(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}
	for n := 1; n <= 6; n++ {
		full := min(100*time.Millisecond<<(n-1), time.Second)
		for i := 0; i < 50; i++ {
			if d := b.delay(n); d > full || d < full/2 {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

// TestRetriedParentReplaysJournal is the recovery requirement: a parent
// starts 10 children, crashes after 5 completed and is retried; the 5
// that completed are not run again.
func TestRetriedParentReplaysJournal(t *testing.T) {
	h := newHarness(t, nil)
	h.fn("child", Policy{}, 0, echo)
	var attempts atomic.Int64
	h.fn("parent", Policy{MaxAttempts: 2}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		a := attempts.Add(1)
		var sum []string
		for i := 0; i < 10; i++ {
			if a == 1 && i == 5 {
				return nil, errs.E(errs.FunctionError, "crash")
			}
			out, err := call(ctx, ev, OpInvoke, "child", fmt.Sprint(i))
			if err != nil {
				return nil, err
			}
			sum = append(sum, string(out))
		}
		return []byte(strings.Join(sum, ",")), nil
	})
	o, err := h.invoke("parent", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(o.Output), "0,1,2,3,4,5,6,7,8,9"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if got, want := h.r.executions("child"), 10; got != want {
		t.Errorf("child executions = %d, want %d", got, want)
	}
	n, err := h.e.Get(o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n.Attempts != 2 || len(n.Children) != 10 {
		t.Errorf("attempts %d children %d, want 2 and 10", n.Attempts, len(n.Children))
	}
}

func TestRetriedMapReplaysOnlyCompleted(t *testing.T) {
	h := newHarness(t, nil)
	var runs sync.Map
	h.fn("flaky", Policy{}, 0, func(_ context.Context, ev *runtime.Event) ([]byte, error) {
		// Odd events fail on their first run.
		if v, _ := runs.LoadOrStore(string(ev.Payload), new(atomic.Int64)); v.(*atomic.Int64).Add(1) == 1 && ev.Payload[0]%2 == 1 {
			return nil, errs.E(errs.FunctionError, "flaky")
		}
		return ev.Payload, nil
	})
	h.fn("parent", Policy{MaxAttempts: 2}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		out, err := call(ctx, ev, OpMap, "flaky", "3", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
		if err != nil {
			return nil, err
		}
		for _, r := range parseResults(t, out) {
			if r.code != "" {
				return nil, errs.E(errs.FunctionError, "a child failed: %s", r.data)
			}
		}
		return out, nil
	})
	if _, err := h.invoke("parent", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := h.r.executions("flaky"), 15; got != want {
		t.Errorf("child executions = %d, want %d (10, then the 5 that failed)", got, want)
	}
}

func TestFanOutAndFanIn(t *testing.T) {
	h := newHarness(t, nil)
	gate := make(chan struct{})
	h.fn("echo", Policy{}, 0, echo)
	h.fn("slow", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return []byte("slow"), nil
	})
	h.fn("bad", Policy{}, 0, func(context.Context, *runtime.Event) ([]byte, error) {
		return nil, errs.E(errs.FunctionError, "bad input")
	})
	type step struct {
		name string
		got  []result
		err  error
	}
	var steps []step
	h.fn("root", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		slow, _ := call(ctx, ev, OpInvokeAsync, "slow", "")
		e1, _ := call(ctx, ev, OpInvokeAsync, "echo", "x")
		b, _ := call(ctx, ev, OpInvokeAsync, "bad", "")
		out, err := call(ctx, ev, OpAwait, "any", "0", string(slow), string(e1))
		steps = append(steps, step{"any", parseResultsOrNil(out), err})
		_, err = call(ctx, ev, OpAwait, "all", "20", string(slow))
		steps = append(steps, step{"all timeout", nil, err})
		close(gate)
		out, err = call(ctx, ev, OpAwait, "all", "0", string(slow), string(e1), string(b))
		steps = append(steps, step{"all", parseResultsOrNil(out), err})
		_, err = call(ctx, ev, OpAwait, "all", "0", "0123456789abcdef01234567")
		steps = append(steps, step{"unknown handle", nil, err})
		out, err = call(ctx, ev, OpMap, "echo", "0", "a", "b", "c")
		steps = append(steps, step{"map", parseResultsOrNil(out), err})
		return nil, nil
	})
	if _, err := h.invoke("root", ""); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`any [{pending } { x}] <nil>`,
		`all timeout [] timeout`,
		`all [{ slow} { x} {function_error bad input}] <nil>`,
		`unknown handle [] bad_request`,
		`map [{ a} { b} { c}] <nil>`,
	}
	for i, s := range steps {
		got := fmt.Sprintf("%s %v %v", s.name, s.got, errCode(s.err))
		if s.got == nil {
			got = fmt.Sprintf("%s [] %v", s.name, errCode(s.err))
		}
		if i >= len(want) || got != want[i] {
			t.Errorf("step %d: got %s, want %s", i, got, want[min(i, len(want)-1)])
		}
	}
}

func parseResultsOrNil(b []byte) []result {
	if b == nil {
		return nil
	}
	args, _ := host.ParseArgs(b)
	var out []result
	for i := 0; i+1 < len(args); i += 2 {
		out = append(out, result{string(args[i]), string(args[i+1])})
	}
	return out
}

func errCode(err error) any {
	if err == nil {
		return nil
	}
	return errs.CodeOf(err)
}

func TestAsyncSurvivesRestart(t *testing.T) {
	h := newHarness(t, nil)
	h.fn("echo", Policy{}, 0, echo)
	o, err := h.e.Invoke(context.Background(), Request{Function: "echo", Payload: []byte("later"), Async: true})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusQueued {
		t.Fatalf("status %s, want queued", o.Status)
	}
	// Not started: the invocation waits in the store across a restart.
	h.close()
	h.open()
	if n, err := h.e.Get(o.ID); err != nil || n.Status != StatusQueued {
		t.Fatalf("after reopen: %+v, %v; want queued", n, err)
	}
	if err := h.e.Start(); err != nil {
		t.Fatal(err)
	}
	n := h.waitStatus(o.ID)
	if n.Status != StatusSucceeded || string(n.Output) != "later" || !n.Async {
		t.Errorf("got %s %q, want succeeded \"later\"", n.Status, n.Output)
	}
}

// TestAsyncCrashRecoveryReplaysJournal stops the engine while an async
// parent is half way through its children; the next process runs the
// parent again and replays the children that completed.
func TestAsyncCrashRecoveryReplaysJournal(t *testing.T) {
	h := newHarness(t, nil)
	h.fn("child", Policy{}, 0, echo)
	halfway := make(chan struct{}, 1)
	var roots atomic.Int64
	h.fn("parent", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		first := roots.Add(1) == 1
		for i := 0; i < 10; i++ {
			if i == 5 && first {
				halfway <- struct{}{}
				<-ctx.Done() // "crash": the process stops here
				return nil, ctx.Err()
			}
			if _, err := call(ctx, ev, OpInvoke, "child", fmt.Sprint(i)); err != nil {
				return nil, err
			}
		}
		return []byte("done"), nil
	})
	if err := h.e.Start(); err != nil {
		t.Fatal(err)
	}
	o, err := h.e.Invoke(context.Background(), Request{Function: "parent", Async: true})
	if err != nil {
		t.Fatal(err)
	}
	<-halfway
	h.close()
	if got := h.r.executions("child"); got != 5 {
		t.Fatalf("children before the crash = %d, want 5", got)
	}
	h.open()
	if err := h.e.Start(); err != nil {
		t.Fatal(err)
	}
	n := h.waitStatus(o.ID)
	if n.Status != StatusSucceeded {
		t.Fatalf("status %s (%s), want succeeded", n.Status, n.ErrorMessage)
	}
	if got, want := h.r.executions("child"), 10; got != want {
		t.Errorf("child executions = %d, want %d", got, want)
	}
	if roots.Load() != 2 {
		t.Errorf("parent ran %d times, want 2", roots.Load())
	}
	// The tree is done: its journal is gone.
	h.e.w.flush()
	var left int
	_ = h.db.Scan(journalPrefix(o.ID, ""), func(_, _ []byte) bool { left++; return true })
	if left != 0 {
		t.Errorf("%d journal entries left after the root completed", left)
	}
}

func TestDeadLettersRedriveAndDestinations(t *testing.T) {
	h := newHarness(t, nil)
	var fail atomic.Bool
	fail.Store(true)
	var dests sync.Map
	h.fn("sink", Policy{}, 0, func(_ context.Context, ev *runtime.Event) ([]byte, error) {
		dests.Store(string(ev.Payload), true)
		return nil, nil
	})
	h.fn("job", Policy{MaxAttempts: 2, OnFailure: "sink", OnSuccess: "sink"}, 0, func(_ context.Context, ev *runtime.Event) ([]byte, error) {
		if fail.Load() {
			return nil, errs.E(errs.FunctionError, "broken")
		}
		return []byte(`{"ok":true}`), nil
	})
	if err := h.e.Start(); err != nil {
		t.Fatal(err)
	}
	o, err := h.e.Invoke(context.Background(), Request{Function: "job", Payload: []byte("p"), Async: true})
	if err != nil {
		t.Fatal(err)
	}
	n := h.waitStatus(o.ID)
	if n.Status != StatusFailed || n.Attempts != 2 {
		t.Fatalf("got %s after %d attempts, want failed after 2", n.Status, n.Attempts)
	}
	dl, err := h.e.DeadLetters(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].ID != o.ID || dl[0].ErrorCode != errs.FunctionError || dl[0].Attempts != 2 || dl[0].PayloadBytes != 1 {
		t.Fatalf("dead letters %+v", dl)
	}

	fail.Store(false)
	if err := h.e.Redrive(o.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Redrive(o.ID); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("second redrive: %v, want not_found", err)
	}
	n = h.waitStatus(o.ID)
	if n.Status != StatusSucceeded || string(n.Output) != `{"ok":true}` || n.Attempts != 3 {
		t.Errorf("after redrive: %s %q attempts %d", n.Status, n.Output, n.Attempts)
	}
	if dl, _ := h.e.DeadLetters(0); len(dl) != 0 {
		t.Errorf("dead letters after redrive: %+v", dl)
	}
	wantDests := []string{
		fmt.Sprintf(`{"id":"%s","function":"job","status":"failed","attempts":2,"error":{"code":"function_error","message":"broken"}}`, o.ID),
		fmt.Sprintf(`{"id":"%s","function":"job","status":"succeeded","attempts":3,"output":{"ok":true}}`, o.ID),
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, w := range wantDests {
		for {
			if _, ok := dests.Load(w); ok {
				break
			}
			if time.Now().After(deadline) {
				var got []any
				dests.Range(func(k, _ any) bool { got = append(got, k); return true })
				t.Fatalf("destination event %s not received; got %v", w, got)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func TestOnRootDoneAfterAsyncChildren(t *testing.T) {
	var mu sync.Mutex
	var done []string
	h := newHarness(t, func(c *Config) {
		c.OnRootDone = func(root string) {
			mu.Lock()
			done = append(done, root)
			mu.Unlock()
		}
		c.Fallback = func(Ref) host.Host {
			return host.Func(func(context.Context, string, [][]byte) ([]byte, error) { return nil, nil })
		}
	})
	release := make(chan struct{})
	h.fn("bg", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		<-release
		return nil, nil
	})
	h.fn("root", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		if _, err := call(ctx, ev, "kv.get", "k"); err != nil { // through Fallback
			return nil, err
		}
		_, err := call(ctx, ev, OpInvokeAsync, "bg", "")
		return nil, err
	})
	h.fn("plain", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		_, err := call(ctx, ev, OpInvoke, "bg2", "")
		return nil, err
	})
	h.fn("bg2", Policy{}, 0, echo)
	// A tree that never used Fallback has no per-tree data to drop.
	if _, err := h.invoke("plain", ""); err != nil {
		t.Fatal(err)
	}
	o, err := h.invoke("root", "")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	early := len(done)
	mu.Unlock()
	if early != 0 {
		t.Errorf("OnRootDone called while an async child still runs")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := append([]string(nil), done...)
		mu.Unlock()
		if len(got) == 1 {
			if got[0] != o.ID {
				t.Errorf("OnRootDone(%s), want %s", got[0], o.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnRootDone calls %v, want [%s]", got, o.ID)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFallbackServesOtherOps(t *testing.T) {
	var got Ref
	h := newHarness(t, func(c *Config) {
		c.Fallback = func(r Ref) host.Host {
			got = r
			return host.Func(func(_ context.Context, op string, args [][]byte) ([]byte, error) {
				return []byte(op + ":" + string(args[0])), nil
			})
		}
	})
	h.fn("f", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		return call(ctx, ev, "kv.get", "k")
	})
	o, err := h.invoke("f", "")
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Output) != "kv.get:k" || got.ID != o.ID || got.Root != o.ID || got.Function != "f" {
		t.Errorf("output %q ref %+v", o.Output, got)
	}

	h2 := newHarness(t, nil)
	h2.fn("f", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		return call(ctx, ev, "kv.get", "k")
	})
	if _, err := h2.invoke("f", ""); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("without a fallback: %v, want bad_request", err)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t, nil)
	h.fn("f", Policy{}, 0, echo)
	tests := []struct {
		name string
		op   string
		args []string
		want errs.Code
	}{
		{"invoke unknown function", OpInvoke, []string{"nope", ""}, errs.NotFound},
		{"invoke arity", OpInvoke, []string{"f"}, errs.BadRequest},
		{"invoke empty name", OpInvoke, []string{"", ""}, errs.BadRequest},
		{"async arity", OpInvokeAsync, []string{"f", "", ""}, errs.BadRequest},
		{"await mode", OpAwait, []string{"some", "0"}, errs.BadRequest},
		{"await timeout", OpAwait, []string{"all", "-1"}, errs.BadRequest},
		{"map concurrency", OpMap, []string{"f", "x", "e"}, errs.BadRequest},
		{"map arity", OpMap, []string{"f"}, errs.BadRequest},
	}
	h.fn("caller", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		for _, tt := range tests {
			_, err := call(ctx, ev, tt.op, tt.args...)
			if got := errs.CodeOf(err); got != tt.want {
				t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.want)
			}
		}
		return nil, nil
	})
	if _, err := h.invoke("caller", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.invoke("nope", ""); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("root unknown: %v, want not_found", err)
	}
	if _, err := h.e.Get("../../x"); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("Get bad id: %v, want bad_request", err)
	}
	if _, err := h.e.Get(newID()); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Get unknown id: %v, want not_found", err)
	}
	if err := (&Config{}).Validate(); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("empty config: %v, want bad_request", err)
	}
}

func TestNodeRecordRoundTrip(t *testing.T) {
	n := &Node{ID: newID(), Parent: newID(), Root: newID(), Depth: 3, Function: "f", Version: "v9",
		Status: StatusFailed, Async: true, Attempts: 2, Start: time.Unix(100, 5), End: time.Unix(101, 7),
		WallMicros: 1000, CPUMicros: 20, BilledMs: 1, Cold: true, ErrorCode: errs.Timeout, ErrorMessage: "slow", Output: []byte("o")}
	got, err := decodeNode(encodeNode(n))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", n) {
		t.Errorf("got  %+v\nwant %+v", got, n)
	}
	for i := 0; i < len(encodeNode(n)); i++ {
		if _, err := decodeNode(encodeNode(n)[:i]); err == nil && i < 2 {
			t.Errorf("truncated record (%d bytes) decoded", i)
		}
	}
}

// Version 2 records round-trip every shape of node, and version 1 records
// (written before it) are still read.
func TestNodeRecordShapes(t *testing.T) {
	id, other := newID(), newID()
	start := time.Unix(1_700_000_000, 123)
	for _, tc := range []struct {
		name string
		n    Node
	}{
		{"leaf root", Node{ID: id, Root: id, Function: "hello", Version: "3", Status: StatusSucceeded, Attempts: 1, Start: start, End: start.Add(7 * time.Microsecond), WallMicros: 7, CPUMicros: 3, BilledMs: 1}},
		{"child", Node{ID: id, Parent: other, Root: other, Depth: 1, Function: "f", Status: StatusRunning, Start: start}},
		{"odd ids", Node{ID: "x", Root: "y", Function: "f", Status: StatusQueued}},
		{"unknown status", Node{ID: id, Root: id, Function: "f", Status: "weird"}},
		{"end before start", Node{ID: id, Root: id, Function: "f", Status: StatusFailed, Start: start, End: start.Add(-time.Second), ErrorCode: errs.Internal, ErrorMessage: "m"}},
		{"end without start", Node{ID: id, Root: id, Function: "f", Status: StatusCancelled, End: start}},
	} {
		got, err := decodeNode(encodeNode(&tc.n))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", tc.n) {
			t.Errorf("%s: got  %+v\nwant %+v", tc.name, *got, tc.n)
		}
		v1, err := decodeNode(encodeNodeV1(&tc.n))
		if err != nil || fmt.Sprintf("%+v", *v1) != fmt.Sprintf("%+v", tc.n) {
			t.Errorf("%s: version 1 record: got %+v, %v", tc.name, v1, err)
		}
	}
}

// encodeNodeV1 writes a record as versions before 2 did.
func encodeNodeV1(n *Node) []byte {
	e := enc{b: []byte{recordVersion}}
	e.s(n.ID)
	e.s(n.Parent)
	e.s(n.Root)
	e.u(uint64(n.Depth))
	e.s(n.Function)
	e.s(n.Version)
	e.s(string(n.Status))
	e.u(n.flags())
	e.u(uint64(n.Attempts))
	e.t(n.Start)
	e.t(n.End)
	e.nodeTail(n)
	return e.b
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add(encodeNode(&Node{ID: "x", Function: "f"}))
	f.Add(encodeNode(&Node{ID: newID(), Root: newID(), Parent: newID(), Function: "f", Start: time.Unix(1, 0), End: time.Unix(2, 0)}))
	f.Add(encodeNodeV1(&Node{ID: "x", Function: "f"}))
	f.Add(encodeQueued(&queued{ID: "x", Payload: []byte("p")}))
	f.Add(encodeJournal(&journalEntry{Child: "c", Output: []byte("o")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Corrupt records fail with an error; they never panic.
		_, _ = decodeNode(b)
		_, _ = decodeQueued(b)
		_, _ = decodeJournal(b)
	})
}

func TestIDsAreUniqueAndSorted(t *testing.T) {
	prev := newID()
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := newID()
		if !validID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		if id[:16] < prev[:16] {
			t.Fatalf("id %s sorts before the earlier %s", id, prev)
		}
		seen[id], prev = true, id
	}
}
