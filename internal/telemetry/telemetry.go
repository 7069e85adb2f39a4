// Package telemetry holds Mote's metrics and traces: the Prometheus
// registry served at /metrics, with the series every invocation, host call
// and instance start feeds (metrics.go), and the OpenTelemetry tracer that
// makes invocations and host calls spans, exported over OTLP/HTTP when an
// endpoint is configured (tracing.go).
//
// The flow engine reports to it through flow.Observer and the scheduler
// through its OnStart hook, so invocations are counted where they end,
// whatever started them: a request, a parent function, the async queue.
package telemetry

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mote-run/mote/internal/flow"
)

// Config configures Telemetry. The zero value has metrics on and tracing
// off.
type Config struct {
	Tracing TracingConfig
	// NoMetrics leaves the flow engine without an Observer: invocations
	// and host calls are not counted (the benchmarks' baseline for what
	// metrics cost).
	NoMetrics bool
}

// Telemetry is one server's metrics and tracer.
type Telemetry struct {
	cfg      Config
	reg      *prometheus.Registry
	metrics  *Metrics
	provider *sdktrace.TracerProvider // nil: tracing off
	tracer   trace.Tracer
}

// New returns Telemetry for cfg, with its exporter started if tracing is
// configured. Shutdown flushes and stops it.
func New(cfg Config) (*Telemetry, error) {
	t := &Telemetry{cfg: cfg, reg: prometheus.NewRegistry()}
	t.metrics = newMetrics(t.reg)
	p, err := cfg.Tracing.provider()
	if err != nil {
		return nil, err
	}
	if p != nil {
		t.provider = p
		t.tracer = p.Tracer("github.com/mote-run/mote")
		if r, _ := cfg.Tracing.ratio(); r == 0 {
			t.tracer = rootless{t: t.tracer}
		}
	}
	return t, nil
}

// Registry is the Prometheus registry /metrics serves; the gateway adds
// its scrape-time collectors (pools, queue, caches) to it.
func (t *Telemetry) Registry() *prometheus.Registry { return t.reg }

// Metrics returns the invocation, host-call and start series.
func (t *Telemetry) Metrics() *Metrics { return t.metrics }

// Tracer is the tracer of invocations and host calls, nil when tracing is
// off (flow.Config.Tracer).
func (t *Telemetry) Tracer() trace.Tracer {
	if t.tracer == nil {
		return nil
	}
	return t.tracer
}

// Observer is what the flow engine reports to (flow.Config.Observer).
func (t *Telemetry) Observer() flow.Observer {
	if t.cfg.NoMetrics {
		return nil
	}
	return t.metrics
}

// Shutdown exports the spans not yet sent and stops the exporter.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
