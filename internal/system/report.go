package system

import (
	"encoding/json"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/meter"
)

// report writes the log line that ends every attempt of every invocation
// (flow.Config.OnAttempt): what `mote logs` prints as START, END and
// REPORT, with the failure, a process function's own error payload
// (type and stack trace) included, so that an uncaught exception, an OOM
// kill or a timeout shows in the invocation's log.
func (s *System) report(a *flow.Attempt) {
	r := logs.Report{
		Start:      a.Start,
		Version:    a.Version,
		DurationUs: a.End.Sub(a.Start).Microseconds(),
		BilledMs:   meter.BilledMs(a.Usage.CPU),
		CPUUs:      a.Usage.CPU.Microseconds(),
		MemoryMB:   a.Memory >> 20,
		MaxMemMB:   (a.Usage.Memory + 1<<20 - 1) >> 20,
		InitUs:     a.Usage.Init.Microseconds(),
	}
	if a.Try > 1 {
		r.Attempt = a.Try
	}
	if a.Err != nil {
		r.ErrorCode = string(errs.CodeOf(a.Err))
		r.Error = s.redact(a.Function, errs.MessageOf(a.Err))
		if len(a.Output) > 0 && a.Output[0] == '{' {
			var le struct {
				Type  string   `json:"errorType"`
				Trace []string `json:"stackTrace"`
			}
			if json.Unmarshal(a.Output, &le) == nil {
				r.ErrorType = le.Type
				for _, l := range le.Trace {
					r.StackTrace = append(r.StackTrace, s.redact(a.Function, l))
				}
			}
		}
	}
	s.Logs.Add(logs.Line{Time: a.End, Function: a.Function, Invocation: a.ID, Stream: logs.StreamReport, Report: r})
}
