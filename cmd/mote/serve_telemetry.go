package main

import (
	"context"
	"flag"
	"log/slog"
	"strconv"
	"time"

	"github.com/mote-run/mote/internal/telemetry"
)

// traceFlags registers serve's tracing flags into c.
func traceFlags(fs *flag.FlagSet, c *telemetry.TracingConfig) {
	fs.StringVar(&c.Endpoint, "otlp-endpoint", "", "send traces over OTLP/HTTP to this base URL, e.g. http://localhost:4318 (env OTEL_EXPORTER_OTLP_ENDPOINT); none: tracing off")
	fs.Func("trace-sample", "share of root invocations traced, 0 to 1 (default 1; env OTEL_TRACES_SAMPLER_ARG); a caller's sampled traceparent is always followed", func(v string) error {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			return strconv.ErrRange
		}
		c.SampleRatio = &r
		return nil
	})
}

// shutdownTelemetry sends the spans not yet exported, for at most 5 s.
func shutdownTelemetry(tel *telemetry.Telemetry, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		log.Warn("exporting the last traces", "err", err)
	}
}
