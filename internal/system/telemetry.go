package system

import "github.com/mote-run/mote/internal/telemetry"

// defaultTelemetry gives c metrics without tracing when it has no
// Telemetry.
func (c *Config) defaultTelemetry() error {
	if c.Telemetry != nil {
		return nil
	}
	t, err := telemetry.New(telemetry.Config{})
	c.Telemetry = t
	return err
}

// Telemetry returns the metrics and tracer the platform reports to.
func (s *System) Telemetry() *telemetry.Telemetry { return s.cfg.Telemetry }
