package api

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/system"
)

// The invocation fast path takes only the paths the mux would route to an
// invocation without a redirect; everything else goes to the mux.
func TestFnName(t *testing.T) {
	for _, tc := range []struct {
		path, name string
		ok         bool
	}{
		{"/fn/hello", "hello", true},
		{"/fn/hello/", "hello", true},
		{"/fn/hello/a/b", "hello", true},
		{"/fn/hello?x=1", "hello", true},
		{"/fn/", "", false},
		{"/fn", "", false},
		{"/fnx/hello", "", false},
		{"/fn//hello", "", false},
		{"/fn/hello//a", "", false},
		{"/fn/./hello", "", false},
		{"/fn/hello/../other", "", false},
		{"/fn/a%2Fb", "", false},
		{"/v1/functions/hello", "", false},
	} {
		r := httptest.NewRequest("POST", tc.path, nil)
		name, ok := fnName(r)
		if name != tc.name || ok != tc.ok {
			t.Errorf("fnName(%q) = %q, %v; want %q, %v", tc.path, name, ok, tc.name, tc.ok)
		}
	}
}

// The invocation counters come out as the Prometheus series they always
// were: ok and failures by code, cold starts, CPU seconds, billed ms.
func TestMetricsSeries(t *testing.T) {
	m := &metrics{reg: prometheus.NewRegistry(), failed: map[failKey]uint64{}}
	m.reg.MustRegister(invocationCollector{m})
	for _, out := range []*system.Outcome{
		{Function: "f", Usage: runtime.Usage{CPU: 1500 * time.Microsecond}, BilledMs: 2, Cold: true},
		{Function: "f", Usage: runtime.Usage{CPU: 500 * time.Microsecond}, BilledMs: 1},
		{Function: "f", Err: errs.E(errs.Timeout, "slow"), BilledMs: 1},
	} {
		m.observe(out)
	}
	m.rejected("f", errs.E(errs.Overloaded, "busy"))
	m.rejected("nope", errs.E(errs.NotFound, "no such function"))
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			k := mf.GetName()
			for _, l := range mt.GetLabel() {
				k += " " + l.GetName() + "=" + l.GetValue()
			}
			got[k] = mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"mote_invocations_total code=ok function=f":         2,
		"mote_invocations_total code=timeout function=f":    1,
		"mote_invocations_total code=overloaded function=f": 1,
		"mote_cold_starts_total function=f":                 1,
		"mote_cpu_seconds_total function=f":                 0.002,
		"mote_billed_milliseconds_total function=f":         4,
	}
	if len(got) != len(want) {
		t.Errorf("got %d series %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
