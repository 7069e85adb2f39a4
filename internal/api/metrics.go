package api

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/system"
)

// metrics are the gateway's Prometheus series, served at /metrics.
//
// The per-invocation counts are kept in plain atomics, one function's on
// one cache line, and turned into series at scrape time (Collect): every
// invocation updates them from whichever core runs it, and Prometheus
// counters would be three objects (three cache lines to move between
// cores) per invocation, with a compare-and-swap loop for the float.
type metrics struct {
	reg  *prometheus.Registry
	byFn sync.Map // function name → *fnSeries

	mu     sync.Mutex
	failed map[failKey]uint64 // invocations that failed, by function and code
}

type failKey struct {
	fn   string
	code errs.Code
}

var (
	descInvocations = prometheus.NewDesc("mote_invocations_total", "Invocations by function and result code.", []string{"function", "code"}, nil)
	descCold        = prometheus.NewDesc("mote_cold_starts_total", "Invocations that waited for a new instance.", []string{"function"}, nil)
	descCPU         = prometheus.NewDesc("mote_cpu_seconds_total", "CPU time used by functions.", []string{"function"}, nil)
	descBilled      = prometheus.NewDesc("mote_billed_milliseconds_total", "Billed CPU milliseconds (rounded up per invocation).", []string{"function"}, nil)
)

func newMetrics(sys *system.System) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), failed: map[failKey]uint64{}}
	m.reg.MustRegister(invocationCollector{m}, poolCollector{sys})
	return m
}

// fnSeries are one function's counts.
type fnSeries struct {
	ok, cold, cpuMicros, billedMs atomic.Uint64
}

func (m *metrics) series(fn string) *fnSeries {
	if v, ok := m.byFn.Load(fn); ok {
		return v.(*fnSeries)
	}
	v, _ := m.byFn.LoadOrStore(fn, new(fnSeries))
	return v.(*fnSeries)
}

func (m *metrics) observe(out *system.Outcome) {
	fs := m.series(out.Function)
	if out.Err != nil {
		m.fail(out.Function, errs.CodeOf(out.Err))
	} else {
		fs.ok.Add(1)
	}
	if out.Cold {
		fs.cold.Add(1)
	}
	fs.cpuMicros.Add(uint64(max(out.Usage.CPU.Microseconds(), 0)))
	fs.billedMs.Add(uint64(max(out.BilledMs, 0)))
}

func (m *metrics) fail(fn string, code errs.Code) {
	m.mu.Lock()
	m.failed[failKey{fn, code}]++
	m.mu.Unlock()
}

func (m *metrics) rejected(fn string, err error) {
	if errs.CodeOf(err) == errs.NotFound {
		return // unknown names would make unbounded label values
	}
	m.fail(fn, errs.CodeOf(err))
}

// invocationCollector reports the invocation counts at scrape time.
type invocationCollector struct{ m *metrics }

func (c invocationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInvocations
	ch <- descCold
	ch <- descCPU
	ch <- descBilled
}

func (c invocationCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.byFn.Range(func(k, v any) bool {
		fn, fs := k.(string), v.(*fnSeries)
		if n := fs.ok.Load(); n > 0 {
			ch <- prometheus.MustNewConstMetric(descInvocations, prometheus.CounterValue, float64(n), fn, "ok")
		}
		ch <- prometheus.MustNewConstMetric(descCold, prometheus.CounterValue, float64(fs.cold.Load()), fn)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, float64(fs.cpuMicros.Load())/1e6, fn)
		ch <- prometheus.MustNewConstMetric(descBilled, prometheus.CounterValue, float64(fs.billedMs.Load()), fn)
		return true
	})
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for k, n := range c.m.failed {
		ch <- prometheus.MustNewConstMetric(descInvocations, prometheus.CounterValue, float64(n), k.fn, string(k.code))
	}
}

// poolCollector reports every pool's instances at scrape time.
type poolCollector struct{ sys *system.System }

var poolInstances = prometheus.NewDesc("mote_pool_instances", "Instances per function version and state.", []string{"version", "state"}, nil)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolInstances }

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.sys.Scheduler().Pools() {
		st := p.Stats()
		ch <- prometheus.MustNewConstMetric(poolInstances, prometheus.GaugeValue, float64(st.Idle), p.Key(), "idle")
		ch <- prometheus.MustNewConstMetric(poolInstances, prometheus.GaugeValue, float64(st.Busy), p.Key(), "busy")
		ch <- prometheus.MustNewConstMetric(poolInstances, prometheus.GaugeValue, float64(st.Waiting), p.Key(), "waiting")
	}
}
