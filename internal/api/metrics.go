package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/system"
)

// The series the gateway serves at /metrics are the system's telemetry
// registry (internal/telemetry: invocations, latencies, host calls,
// starts) and, read at scrape time, the state below: pools, the async
// queue, dead letters and caches.
func registerStateCollectors(sys *system.System) *prometheus.Registry {
	reg := sys.Telemetry().Registry()
	// A second gateway over the same system (tests) finds them there.
	_ = reg.Register(stateCollector{sys})
	_ = reg.Register(aliasCollector{sys}) // routes.go
	return reg
}

// stateCollector reports the platform's state at scrape time.
type stateCollector struct{ sys *system.System }

var (
	descPoolInstances = prometheus.NewDesc("mote_pool_instances", "Instances per function version and state (idle, busy; waiting counts invocations queued for one).", []string{"version", "state"}, nil)
	descPoolRejected  = prometheus.NewDesc("mote_pool_rejected_total", "Invocations a pool refused: its queue was full or no instance became free in time.", []string{"version"}, nil)
	descQueueDepth    = prometheus.NewDesc("mote_async_queue_depth", "Async invocations queued durably and waiting for a worker.", nil, nil)
	descDLQ           = prometheus.NewDesc("mote_dead_letters", "Async invocations that failed their last attempt and wait for a redrive.", nil, nil)
	descCacheHits     = prometheus.NewDesc("mote_cache_hits_total", "Cache hits: the KV read cache (cache=kv) and each function's cache (cache=fn:NAME).", []string{"cache"}, nil)
	descCacheMisses   = prometheus.NewDesc("mote_cache_misses_total", "Cache misses, as mote_cache_hits_total.", []string{"cache"}, nil)
	descCacheBytes    = prometheus.NewDesc("mote_cache_bytes", "Bytes a cache holds.", []string{"cache"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolInstances, descPoolRejected, descQueueDepth, descDLQ, descCacheHits, descCacheMisses, descCacheBytes} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, p := range c.sys.Scheduler().Pools() {
		st := p.Stats()
		gauge(descPoolInstances, float64(st.Idle), p.Key(), "idle")
		gauge(descPoolInstances, float64(st.Busy), p.Key(), "busy")
		gauge(descPoolInstances, float64(st.Waiting), p.Key(), "waiting")
		counter(descPoolRejected, float64(st.Rejected), p.Key())
	}
	fl := c.sys.Flow()
	gauge(descQueueDepth, float64(fl.QueueDepth()))
	if n, err := fl.DeadLetterCount(); err == nil {
		gauge(descDLQ, float64(n))
	}
	st := c.sys.BaaS().Stats()
	caches := map[string]struct {
		hits, misses uint64
		bytes        int64
	}{"kv": {st.KVCache.Hits, st.KVCache.Misses, st.KVCache.Bytes}}
	for fn, cs := range st.FunctionCaches {
		caches["fn:"+fn] = struct {
			hits, misses uint64
			bytes        int64
		}{cs.Hits, cs.Misses, cs.Bytes}
	}
	for name, cs := range caches {
		counter(descCacheHits, float64(cs.hits), name)
		counter(descCacheMisses, float64(cs.misses), name)
		gauge(descCacheBytes, float64(cs.bytes), name)
	}
}
