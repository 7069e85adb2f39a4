package flow_test

import (
	"os"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/flow"
)

// RenderTree draws what GET /v1/invocations/{id} returns, as `mote trace`
// shows it.
func ExampleRenderTree() {
	tree := &flow.Node{
		ID: "18eb6b0a00000000aaaa0001", Function: "order", Status: flow.StatusSucceeded,
		Attempts: 1, WallMicros: 1830, CPUMicros: 210, BilledMs: 1,
		Children: []*flow.Node{
			{ID: "18eb6b0a00000000aaaa0002", Function: "charge", Status: flow.StatusSucceeded,
				Attempts: 2, WallMicros: 910, CPUMicros: 1400, BilledMs: 3, Cold: true},
			{ID: "18eb6b0a00000000aaaa0003", Function: "notify", Status: flow.StatusFailed,
				Attempts: 1, WallMicros: 112, CPUMicros: 80, BilledMs: 1,
				ErrorCode: errs.FunctionError, ErrorMessage: "no address"},
		},
	}
	_ = flow.RenderTree(os.Stdout, tree)
	// Output:
	// order  succeeded  wall 1.83ms  cpu 210µs  billed 1ms  18eb6b0a00000000aaaa0001
	// ├─ charge  succeeded  wall 910µs  cpu 1.40ms  billed 3ms  attempts 2  cold  18eb6b0a00000000aaaa0002
	// └─ notify  failed  wall 112µs  cpu 80µs  billed 1ms  18eb6b0a00000000aaaa0003  function_error: no address
}
