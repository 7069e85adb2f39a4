package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/host"
)

// Metrics are the series fed by every invocation, host call and instance
// start. It implements flow.Observer.
//
// Counts of invocations are kept in plain atomics, one function's on one
// cache line, and turned into series at scrape time (Collect): every
// invocation updates them from whichever core runs it, and a Prometheus
// CounterVec would cost a label hash and a lookup per invocation.
// Latencies are client_golang histograms, one per function looked up
// once: native (sparse, exponential buckets, factor 1.1) for scrapers that
// negotiate the protobuf format, classic buckets for the rest.
type Metrics struct {
	byFn sync.Map // function name → *fnSeries

	mu     sync.Mutex
	failed map[failKey]uint64 // invocations that failed, by function, code and kind

	wall, cpu, init *prometheus.HistogramVec
	hostTook        *prometheus.HistogramVec
	hostOps         sync.Map // op → *opSeries
	initFailures    *prometheus.CounterVec
	throttles       *prometheus.CounterVec
}

// Kinds of invocation, the kind label: a root called from outside, a
// child a function called synchronously (invoke, map), and an async one
// (invoke_async, the durable queue, a destination, a redrive).
const (
	KindRoot   = "root"
	KindNested = "nested"
	KindAsync  = "async"
)

var kinds = [...]string{KindRoot, KindNested, KindAsync}

type failKey struct {
	fn, kind string
	code     errs.Code
}

// fnSeries are one function's counts and histograms.
type fnSeries struct {
	ok                        [len(kinds)]atomic.Uint64
	cold, cpuMicros, billedMs atomic.Uint64
	wall, cpu                 prometheus.Observer
}

// opSeries are one host op's histogram and counts by result.
type opSeries struct {
	took   prometheus.Observer
	ok     atomic.Uint64
	mu     sync.Mutex
	byCode map[errs.Code]uint64
}

var (
	descInvocations = prometheus.NewDesc("mote_invocations_total", "Invocations that ended, by function, result code (ok or an error code) and kind (root, nested, async); refusals before an invocation started count with kind root.", []string{"function", "code", "kind"}, nil)
	descCold        = prometheus.NewDesc("mote_cold_starts_total", "Invocations that waited for a new instance.", []string{"function"}, nil)
	descCPU         = prometheus.NewDesc("mote_cpu_seconds_total", "CPU time used by functions.", []string{"function"}, nil)
	descBilled      = prometheus.NewDesc("mote_billed_milliseconds_total", "Billed CPU milliseconds (rounded up per invocation).", []string{"function"}, nil)
	descHostCalls   = prometheus.NewDesc("mote_host_calls_total", "Host calls by op and result code (ok or an error code): kv.*, obj.*, invoke, log, ...", []string{"op", "code"}, nil)
)

// Histogram buckets: classic ones for scrapers without native histograms.
var (
	latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	hostBuckets    = []float64{.000001, .0000025, .000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, 1}
)

func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         buckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}, labels)
}

func newMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		failed:       map[failKey]uint64{},
		wall:         histogram("mote_invocation_duration_seconds", "Wall time of invocations, from start to end, retries and waits for an instance included.", latencyBuckets, "function"),
		cpu:          histogram("mote_invocation_cpu_seconds", "CPU time of invocations, the function's own (what is billed).", latencyBuckets, "function"),
		init:         histogram("mote_init_duration_seconds", "How long starting an instance took (cold starts and pre-warms): the runtime's load of the module or process up to ready.", latencyBuckets, "function"),
		hostTook:     histogram("mote_host_call_duration_seconds", "Latency of host calls by op, as the function sees them.", hostBuckets, "op"),
		initFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mote_init_failures_total", Help: "Instance starts that failed."}, []string{"function"}),
		throttles:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mote_throttles_total", Help: "Invocations refused or cut short for capacity: a full pool (overloaded) or a concurrency or tree limit (limit_exceeded)."}, []string{"function", "code"}),
	}
	reg.MustRegister(invocationCollector{m}, m.wall, m.cpu, m.init, m.hostTook, m.initFailures, m.throttles)
	return m
}

func (m *Metrics) series(fn string) *fnSeries {
	if v, ok := m.byFn.Load(fn); ok {
		return v.(*fnSeries)
	}
	fs := &fnSeries{wall: m.wall.WithLabelValues(fn), cpu: m.cpu.WithLabelValues(fn)}
	v, _ := m.byFn.LoadOrStore(fn, fs)
	return v.(*fnSeries)
}

func kindOf(n *flow.Node) int {
	switch {
	case n.Async:
		return 2
	case n.Parent != "":
		return 1
	}
	return 0
}

// Ended counts an invocation that ended (flow.Observer).
func (m *Metrics) Ended(n *flow.Node) {
	fs := m.series(n.Function)
	k := kindOf(n)
	if n.ErrorCode == "" {
		fs.ok[k].Add(1)
	} else {
		m.fail(n.Function, kinds[k], n.ErrorCode)
	}
	if n.Cold {
		fs.cold.Add(1)
	}
	fs.cpuMicros.Add(uint64(max(n.CPUMicros, 0)))
	fs.billedMs.Add(uint64(max(n.BilledMs, 0)))
	fs.wall.Observe(float64(n.WallMicros) / 1e6)
	fs.cpu.Observe(float64(n.CPUMicros) / 1e6)
}

func (m *Metrics) fail(fn, kind string, code errs.Code) {
	m.mu.Lock()
	m.failed[failKey{fn, kind, code}]++
	m.mu.Unlock()
	if code == errs.Overloaded || code == errs.LimitExceeded {
		m.throttles.WithLabelValues(fn, string(code)).Inc()
	}
}

// Rejected counts a root invocation refused before it started (a full
// server, a payload too large, shutting down). Unknown functions are not
// counted: their names would make unbounded label values.
func (m *Metrics) Rejected(fn string, err error) {
	if errs.CodeOf(err) == errs.NotFound {
		return
	}
	m.fail(fn, KindRoot, errs.CodeOf(err))
}

// HostCall times a host call (flow.Observer).
func (m *Metrics) HostCall(fn, op string, took time.Duration, err error) {
	v, ok := m.hostOps.Load(op)
	if !ok {
		if !knownOp(op) {
			op = "other" // a guest chooses op names: keep the label set bounded
		}
		v, _ = m.hostOps.LoadOrStore(op, &opSeries{took: m.hostTook.WithLabelValues(op), byCode: map[errs.Code]uint64{}})
	}
	s := v.(*opSeries)
	s.took.Observe(took.Seconds())
	if err == nil {
		s.ok.Add(1)
		return
	}
	s.mu.Lock()
	s.byCode[errs.CodeOf(err)]++
	s.mu.Unlock()
}

// knownOp reports whether op is one of the host ops (host.Ops): a guest
// chooses the op names it sends, and anything else is counted as "other".
func knownOp(op string) bool {
	_, ok := host.Describe(op)
	return ok
}

// InstanceStarted records an instance start of the pool key ("fn@version";
// scheduler.Config.OnStart).
func (m *Metrics) InstanceStarted(key string, took time.Duration, err error) {
	fn, _, _ := strings.Cut(key, "@")
	if err != nil {
		m.initFailures.WithLabelValues(fn).Inc()
		return
	}
	m.init.WithLabelValues(fn).Observe(took.Seconds())
}

// invocationCollector reports the invocation counts at scrape time.
type invocationCollector struct{ m *Metrics }

func (c invocationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInvocations
	ch <- descCold
	ch <- descCPU
	ch <- descBilled
	ch <- descHostCalls
}

func (c invocationCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.byFn.Range(func(k, v any) bool {
		fn, fs := k.(string), v.(*fnSeries)
		for i, kind := range kinds {
			if n := fs.ok[i].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(descInvocations, prometheus.CounterValue, float64(n), fn, "ok", kind)
			}
		}
		ch <- prometheus.MustNewConstMetric(descCold, prometheus.CounterValue, float64(fs.cold.Load()), fn)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, float64(fs.cpuMicros.Load())/1e6, fn)
		ch <- prometheus.MustNewConstMetric(descBilled, prometheus.CounterValue, float64(fs.billedMs.Load()), fn)
		return true
	})
	c.m.hostOps.Range(func(k, v any) bool {
		op, s := k.(string), v.(*opSeries)
		ch <- prometheus.MustNewConstMetric(descHostCalls, prometheus.CounterValue, float64(s.ok.Load()), op, "ok")
		s.mu.Lock()
		for code, n := range s.byCode {
			ch <- prometheus.MustNewConstMetric(descHostCalls, prometheus.CounterValue, float64(n), op, string(code))
		}
		s.mu.Unlock()
		return true
	})
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for k, n := range c.m.failed {
		ch <- prometheus.MustNewConstMetric(descInvocations, prometheus.CounterValue, float64(n), k.fn, string(k.code), k.kind)
	}
}

var _ flow.Observer = (*Metrics)(nil)
