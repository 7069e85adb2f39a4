package telemetry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mote-run/mote/internal/flow"
)

// BenchmarkMetricsEnded is what metrics add to every invocation: one
// Ended call (counts and two histogram observations), alone and from
// every core at once on one function (the contended case).
func BenchmarkMetricsEnded(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	n := &flow.Node{Function: "hello", CPUMicros: 180, WallMicros: 4100, BilledMs: 1}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m.Ended(n)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Ended(n)
			}
		})
	})
}

// BenchmarkMetricsHostCall is what metrics add to every host call.
func BenchmarkMetricsHostCall(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	b.ReportAllocs()
	for range b.N {
		m.HostCall("hello", "kv.get", 600*time.Nanosecond, nil)
	}
}
