package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/system"
)

// TestTriggeredInvocationsInMetrics creates a consumer over the API and
// checks that its invocations are counted in /metrics like the gateway's
// own.
func TestTriggeredInvocationsInMetrics(t *testing.T) {
	modules(t)
	p := start(t, t.TempDir(), "")
	p.mustDeploy("g", guest, `{"permissions":{"read":["b"],"write":["b"]}}`)
	done := make(chan *system.Outcome, 4)
	p.sys.ObserveTriggered(func(o *system.Outcome) { done <- o })
	if r := p.do("PUT", "/v1/consumers/c", strings.NewReader(`{"bucket":"b","queue":"q","function":"g","batch_size":1,"backoff_ms":300000}`), nil); r.status != 201 {
		t.Fatalf("create consumer: %d %s", r.status, r.body)
	}
	if r := p.do("PUT", "/v1/consumers/c", strings.NewReader(`{"bucket":"b","queue":"q","function":"g"}`), nil); r.status != 409 {
		t.Fatalf("create it again: %d %s, want 409", r.status, r.body)
	}
	if r := p.do("PUT", "/v1/schedules/s", strings.NewReader(`{"expression":"*/61 * * * *","function":"g"}`), nil); r.status != 400 ||
		!strings.Contains(r.body, "minute field") {
		t.Fatalf("bad schedule: %d %s", r.status, r.body)
	}
	for range 2 {
		if r := p.do("POST", "/v1/queues/b/q", strings.NewReader("echo:x"), nil); r.status != 200 {
			t.Fatalf("push: %d %s", r.status, r.body)
		}
	}
	for range 2 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the consumer did not run")
		}
	}
	// This guest fails on an SQS event (it is not its format): the two
	// invocations are counted with their code, as any others.
	m := p.do("GET", "/metrics", nil, nil)
	if !strings.Contains(m.body, `mote_invocations_total{code="function_error",function="g",kind="root"} 2`) {
		t.Errorf("metrics do not count the consumer's 2 invocations:\n%s", m.body)
	}
	if r := p.do("DELETE", "/v1/consumers/c", nil, nil); r.status != 204 {
		t.Errorf("delete consumer: %d %s", r.status, r.body)
	}
}
