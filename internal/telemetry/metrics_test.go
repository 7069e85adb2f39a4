package telemetry

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
)

// gather returns every counter and histogram count as "name label=value..."
// → value (a histogram's sample count), and the native histograms' names.
func gather(t *testing.T, reg *prometheus.Registry) (map[string]float64, map[string]bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, native := map[string]float64{}, map[string]bool{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range mt.GetLabel() {
				k += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.GetHistogram() != nil:
				h := mt.GetHistogram()
				got[k] = float64(h.GetSampleCount())
				// Native: a zero threshold and spans; classic: buckets too.
				if h.GetZeroThreshold() > 0 && len(h.GetPositiveSpan()) > 0 && len(h.GetBucket()) > 0 {
					native[mf.GetName()] = true
				}
			case mt.GetCounter() != nil:
				got[k] = mt.GetCounter().GetValue()
			}
		}
	}
	return got, native
}

// Every invocation that ends is counted by function, code and kind, with
// its latency and CPU in histograms that are native and classic at once;
// refusals count as roots; host calls by op; starts by function.
func TestMetricsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	for _, n := range []*flow.Node{
		{Function: "f", CPUMicros: 1500, WallMicros: 2000, BilledMs: 2, Cold: true},
		{Function: "f", CPUMicros: 500, WallMicros: 700, BilledMs: 1},
		{Function: "f", Parent: "p", ErrorCode: errs.Timeout, BilledMs: 1},
		{Function: "g", Parent: "p", Async: true},
		{Function: "g", Parent: "p", ErrorCode: errs.LimitExceeded},
	} {
		m.Ended(n)
	}
	m.Rejected("f", errs.E(errs.Overloaded, "busy"))
	m.Rejected("nope", errs.E(errs.NotFound, "no such function"))
	m.HostCall("f", "kv.get", 3*time.Microsecond, nil)
	m.HostCall("f", "kv.get", 2*time.Microsecond, errs.E(errs.NotFound, "no key"))
	m.HostCall("f", "Evil Op\n", time.Microsecond, nil)
	m.InstanceStarted("f@3", 40*time.Millisecond, nil)
	m.InstanceStarted("f@3", time.Millisecond, errors.New("boom"))

	got, native := gather(t, reg)
	want := map[string]float64{
		"mote_invocations_total code=ok function=f kind=root":               2,
		"mote_invocations_total code=timeout function=f kind=nested":        1,
		"mote_invocations_total code=overloaded function=f kind=root":       1,
		"mote_invocations_total code=ok function=g kind=async":              1,
		"mote_invocations_total code=limit_exceeded function=g kind=nested": 1,
		"mote_throttles_total code=overloaded function=f":                   1,
		"mote_throttles_total code=limit_exceeded function=g":               1,
		"mote_cold_starts_total function=f":                                 1,
		"mote_cold_starts_total function=g":                                 0,
		"mote_cpu_seconds_total function=f":                                 0.002,
		"mote_cpu_seconds_total function=g":                                 0,
		"mote_billed_milliseconds_total function=f":                         4,
		"mote_billed_milliseconds_total function=g":                         0,
		"mote_invocation_duration_seconds function=f":                       3,
		"mote_invocation_duration_seconds function=g":                       2,
		"mote_invocation_cpu_seconds function=f":                            3,
		"mote_invocation_cpu_seconds function=g":                            2,
		"mote_host_calls_total code=ok op=kv.get":                           1,
		"mote_host_calls_total code=not_found op=kv.get":                    1,
		"mote_host_calls_total code=ok op=other":                            1,
		"mote_host_call_duration_seconds op=kv.get":                         2,
		"mote_host_call_duration_seconds op=other":                          1,
		"mote_init_duration_seconds function=f":                             1,
		"mote_init_failures_total function=f":                               1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s = %v", k, got[k])
		}
	}
	for _, h := range []string{"mote_invocation_duration_seconds", "mote_invocation_cpu_seconds", "mote_host_call_duration_seconds", "mote_init_duration_seconds"} {
		if !native[h] {
			t.Errorf("%s is not a native histogram with classic buckets too", h)
		}
	}
}
