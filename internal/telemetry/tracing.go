package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// TracingConfig configures tracing. Tracing is on when Endpoint is set
// (or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, as
// every OpenTelemetry SDK reads them) or when Processors are given.
type TracingConfig struct {
	// Endpoint is the OTLP/HTTP base URL spans are sent to, such as
	// http://localhost:4318 (Jaeger, Tempo, an OpenTelemetry Collector);
	// spans go to its /v1/traces.
	Endpoint string
	// SampleRatio is the share of root invocations traced, 0 to 1
	// (default 1; OTEL_TRACES_SAMPLER_ARG overrides). An invocation whose
	// request carries a sampled traceparent is always traced, one whose
	// traceparent is not sampled never is.
	SampleRatio *float64
	// Processors receive every span in addition to the exporter (tests
	// pass tracetest's SpanRecorder).
	Processors []sdktrace.SpanProcessor
}

// endpoint returns the configured endpoint, from the environment when
// Endpoint is empty.
func (c *TracingConfig) endpoint() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		return v
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

// Enabled reports whether c turns tracing on.
func (c *TracingConfig) Enabled() bool { return c.endpoint() != "" || len(c.Processors) > 0 }

func (c *TracingConfig) ratio() (float64, error) {
	r := 1.0
	if c.SampleRatio != nil {
		r = *c.SampleRatio
	}
	if v := os.Getenv("OTEL_TRACES_SAMPLER_ARG"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("telemetry: OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, not %q", v)
		}
		r = f
	}
	if r < 0 || r > 1 {
		return 0, fmt.Errorf("telemetry: the trace sample ratio must be from 0 to 1, not %v", r)
	}
	return r, nil
}

// provider returns the tracer provider c describes, nil when tracing is off.
func (c *TracingConfig) provider() (*sdktrace.TracerProvider, error) {
	if !c.Enabled() {
		return nil, nil
	}
	ratio, err := c.ratio()
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "mote"))),
	}
	for _, p := range c.Processors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	if ep := c.endpoint(); ep != "" {
		exp, err := otlpExporter(ep)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// otlpExporter returns an OTLP/HTTP exporter to the base URL ep.
func otlpExporter(ep string) (sdktrace.SpanExporter, error) {
	if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
		return nil, fmt.Errorf("telemetry: the OTLP endpoint must be an http:// or https:// URL, not %q", ep)
	}
	url := strings.TrimSuffix(ep, "/")
	if !strings.HasSuffix(url, "/v1/traces") {
		url += "/v1/traces"
	}
	return otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(url))
}

// rootless is a tracer that samples no root: a span is started only
// under a valid span context (a caller's traceparent, a traced parent
// invocation). Without one it returns ctx and a no-op span at once,
// without the SDK's work of making ids and a non-recording span, so a
// server with tracing sampled off pays next to nothing per invocation.
type rootless struct {
	embedded.Tracer
	t trace.Tracer
}

// Traces reports whether Start would trace under ctx (flow.Filter).
func (r rootless) Traces(ctx context.Context) bool {
	return trace.SpanContextFromContext(ctx).IsValid()
}

func (r rootless) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(nil)
	}
	return r.t.Start(ctx, name, opts...)
}

// propagator reads and writes W3C traceparent and tracestate headers.
var propagator = propagation.TraceContext{}

// Extract returns ctx carrying the remote span context of h's traceparent
// header, if it has a valid one.
func Extract(ctx context.Context, h http.Header) context.Context {
	if len(h["Traceparent"]) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes ctx's span context into h as traceparent (and tracestate).
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}
