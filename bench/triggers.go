package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
	"github.com/mote-run/mote/internal/trigger"
)

// Triggers measures schedules and queue consumers through `mote serve`
// with a real wasm function (examples/hello-reactor): the jitter of 100
// schedules ticking at the same instants, beside 100 bare Go timers in
// this process at the same instants (the machine's own floor); the time
// from a queue push over HTTP to the consumer's invocation, beside the
// push's own round trip; and how many items a consumer works through.
func Triggers(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-triggers-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wasmPath := filepath.Join(tmp, "hello.wasm")
	src := filepath.Join(o.Examples, "hello-reactor")
	fmt.Fprintf(o.Out, "building %s as a wasm reactor\n", src)
	if err := gobuild.Wasm(src, wasmPath, true); err != nil {
		return err
	}
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	if err := deploy(ctx, o.Mote, mote.URL, "job", wasmPath, "--read", "b", "--write", "b", "--min-warm", "4", "--max-instances", "8"); err != nil {
		return err
	}
	var p99s, peers, p50s []float64
	for round := range o.Rounds {
		j, st, err := scheduleJitter(ctx, mote.URL, round)
		if err != nil {
			return err
		}
		peer := timerJitter(100, 5)
		fmt.Fprintf(o.Out, "  round %d  100 schedules, rate(1 second), %d ticks: jitter p50 %s p99 %s max %s; invocation handed to flow p99 %s | 100 Go timers: p50 %s p99 %s\n",
			round+1, len(j), us(pct(j, 0.5)), us(pct(j, 0.99)), us(slices.Max(j)), us(pct(st, 0.99)), us(pct(peer, 0.5)), us(pct(peer, 0.99)))
		p99s, peers, p50s = append(p99s, float64(pct(j, 0.99))), append(peers, float64(pct(peer, 0.99))), append(p50s, float64(pct(j, 0.5)))
	}
	fmt.Fprintf(o.Out, "schedule jitter (fire − due), median of %d rounds: p50 %s, p99 %s (bare Go timers p99 %s)\n",
		o.Rounds, us(time.Duration(medianF(p50s))), us(time.Duration(medianF(p99s))), us(time.Duration(medianF(peers))))

	starts, rtts, err := pushToStart(mote.URL, 200)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "queue push → consumer start, idle, 200 pushes over HTTP: p50 %s p99 %s (the push's own HTTP round trip, a durable commit included: p50 %s)\n",
		us(pct(starts, 0.5)), us(pct(starts, 0.99)), us(pct(rtts, 0.5)))

	for _, conc := range []int{1, 4} {
		rate, err := consumerThroughput(mote.URL, 20000, conc)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "consumer throughput, batches of 10, concurrency %d: %.0f items/s (%.0f invocations/s)\n", conc, rate, rate/10)
	}
	return nil
}

func pct(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func putJSON(url string, in, out any) error {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(string(b)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, e.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func getJSON(url string, out any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func del(url string) error {
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// scheduleJitter adds 100 rate(1 second) schedules (anchored at the same
// second, so they tick together), collects each run's due and fire times
// from /v1/schedules for about 6 s, and removes them.
func scheduleJitter(ctx context.Context, url string, round int) (fired, started []time.Duration, err error) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("j%d-%03d", round, i)
		sc := trigger.Schedule{Expression: "rate(1 second)", Function: "job"}
		if err := putJSON(url+"/v1/schedules/"+names[i], sc, nil); err != nil {
			return nil, nil, err
		}
	}
	defer func() {
		for _, n := range names {
			del(url + "/v1/schedules/" + n)
		}
	}()
	seen := map[string][2]time.Duration{}
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		var out struct {
			Schedules []trigger.ScheduleStatus `json:"schedules"`
		}
		if err := getJSON(url+"/v1/schedules", &out); err != nil {
			return nil, nil, err
		}
		for _, s := range out.Schedules {
			if r := s.LastRun; r != nil && strings.HasPrefix(s.Name, fmt.Sprintf("j%d-", round)) {
				seen[s.Name+r.Due.String()] = [2]time.Duration{r.Fired.Sub(r.Due), r.Started.Sub(r.Due)}
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}

	for _, d := range seen {
		fired, started = append(fired, d[0]), append(started, d[1])
	}
	if len(fired) < 100 {
		return nil, nil, fmt.Errorf("schedules ran only %d times in 6 s", len(fired))
	}
	return fired, started, nil
}

// timerJitter is the peer: n goroutines in this process, each with a
// timer for the same whole seconds, for ticks ticks.
func timerJitter(n, ticks int) []time.Duration {
	var mu sync.Mutex
	var out []time.Duration
	first := time.Now().Truncate(time.Second).Add(time.Second)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ticks {
				due := first.Add(time.Duration(k) * time.Second)
				time.Sleep(time.Until(due))
				d := time.Since(due)
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// pushToStart pushes one item at a time over HTTP to an idle consumer and
// reads the batch's start time from /v1/consumers: the time from just
// before the push request to the consumer's invocation.
func pushToStart(url string, n int) (starts, rtts []time.Duration, err error) {
	c := trigger.Consumer{Bucket: "b", Queue: "lat", Function: "job", BatchSize: 1}
	if err := putJSON(url+"/v1/consumers/lat", c, nil); err != nil {
		return nil, nil, err
	}
	defer del(url + "/v1/consumers/lat")
	var last time.Time
	for i := range n {
		t0 := time.Now()
		if _, _, err := post(url+"/v1/queues/b/lat", fmt.Sprint("item-", i), nil); err != nil {
			return nil, nil, err
		}
		rtts = append(rtts, time.Since(t0))
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Microsecond) {
			var st trigger.ConsumerStatus
			if err := getJSON(url+"/v1/consumers/lat", &st); err != nil {
				return nil, nil, err
			}
			if st.LastBatch != nil && st.LastBatch.Started.After(last) && st.Delivered == int64(i+1) {
				last = st.LastBatch.Started
				starts = append(starts, last.Sub(t0))
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("push %d: the consumer did not run", i)
			}
		}
	}
	return starts, rtts, nil
}

// consumerThroughput fills a queue with n items (8 clients), then adds a
// consumer and times it until the queue is drained and every item done.
func consumerThroughput(url string, n, concurrency int) (float64, error) {
	q := fmt.Sprintf("tp%d", concurrency)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, _, err := post(url+"/v1/queues/b/"+q, fmt.Sprint("item-", i), nil); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	name := "tp" + fmt.Sprint(concurrency)
	c := trigger.Consumer{Bucket: "b", Queue: q, Function: "job", BatchSize: 10, Concurrency: concurrency}
	start := time.Now()
	if err := putJSON(url+"/v1/consumers/"+name, c, nil); err != nil {
		return 0, err
	}
	defer del(url + "/v1/consumers/" + name)
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var st trigger.ConsumerStatus
		if err := getJSON(url+"/v1/consumers/"+name, &st); err != nil {
			return 0, err
		}
		if st.Delivered == int64(n) {
			return float64(n) / time.Since(start).Seconds(), nil
		}
	}
	return 0, fmt.Errorf("consumer did not finish %d items in 5 minutes", n)
}
