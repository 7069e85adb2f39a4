package api

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/system"
)

// metrics are the gateway's Prometheus series, served at /metrics.
type metrics struct {
	reg         *prometheus.Registry
	invocations *prometheus.CounterVec // by function, code ("ok" on success)
	cold        *prometheus.CounterVec
	cpuSeconds  *prometheus.CounterVec
	billedMs    *prometheus.CounterVec
	byFn        sync.Map // function name → *fnSeries
}

func newMetrics(sys *system.System) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mote_invocations_total", Help: "Invocations by function and result code.",
		}, []string{"function", "code"}),
		cold: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mote_cold_starts_total", Help: "Invocations that waited for a new instance.",
		}, []string{"function"}),
		cpuSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mote_cpu_seconds_total", Help: "CPU time used by functions.",
		}, []string{"function"}),
		billedMs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mote_billed_milliseconds_total", Help: "Billed CPU milliseconds (rounded up per invocation).",
		}, []string{"function"}),
	}
	m.reg.MustRegister(m.invocations, m.cold, m.cpuSeconds, m.billedMs, poolCollector{sys})
	return m
}

// fnSeries are one function's series, looked up once: resolving label
// values hashes them, and this runs for every invocation.
type fnSeries struct {
	ok, cold, cpu, billed prometheus.Counter
}

func (m *metrics) series(fn string) *fnSeries {
	if v, ok := m.byFn.Load(fn); ok {
		return v.(*fnSeries)
	}
	fs := &fnSeries{
		ok:     m.invocations.WithLabelValues(fn, "ok"),
		cold:   m.cold.WithLabelValues(fn),
		cpu:    m.cpuSeconds.WithLabelValues(fn),
		billed: m.billedMs.WithLabelValues(fn),
	}
	v, _ := m.byFn.LoadOrStore(fn, fs)
	return v.(*fnSeries)
}

func (m *metrics) observe(out *system.Outcome) {
	fs := m.series(out.Function)
	if out.Err != nil {
		m.invocations.WithLabelValues(out.Function, string(errs.CodeOf(out.Err))).Inc()
	} else {
		fs.ok.Inc()
	}
	if out.Cold {
		fs.cold.Inc()
	}
	fs.cpu.Add(out.Usage.CPU.Seconds())
	fs.billed.Add(float64(out.BilledMs))
}

func (m *metrics) rejected(fn string, err error) {
	if errs.CodeOf(err) == errs.NotFound {
		return // unknown names would make unbounded label values
	}
	m.invocations.WithLabelValues(fn, string(errs.CodeOf(err))).Inc()
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
