package flow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/meter"
	"github.com/mote-run/mote/internal/runtime"
)

func TestHandler(t *testing.T) {
	h := newHarness(t, nil)
	h.fn("leaf", Policy{}, 2*time.Millisecond, echo)
	h.fn("root", Policy{}, time.Millisecond, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		return call(ctx, ev, OpMap, "leaf", "0", "a", "b")
	})
	h.fn("broken", Policy{}, 0, func(context.Context, *runtime.Event) ([]byte, error) {
		return nil, errs.E(errs.FunctionError, "nope")
	})
	o, err := h.invoke("root", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.e.Start(); err != nil {
		t.Fatal(err)
	}
	bad, err := h.e.Invoke(context.Background(), Request{Function: "broken", Async: true})
	if err != nil {
		t.Fatal(err)
	}
	h.waitStatus(bad.ID)
	srv := httptest.NewServer(h.e.Handler())
	defer srv.Close()

	tests := []struct {
		method, path string
		status       int
		check        func(t *testing.T, body []byte)
	}{
		{"GET", "/v1/invocations/" + o.ID, 200, func(t *testing.T, body []byte) {
			var n Node
			if err := json.Unmarshal(body, &n); err != nil {
				t.Fatal(err)
			}
			if n.ID != o.ID || n.Function != "root" || len(n.Children) != 2 || n.Children[0].BilledMs != 2 || n.CPUMicros != 1000 {
				t.Errorf("tree %s", body)
			}
		}},
		{"GET", "/v1/invocations/" + newID(), 404, nil},
		{"GET", "/v1/invocations/zz", 400, nil},
		{"GET", "/v1/dlq", 200, func(t *testing.T, body []byte) {
			var dl []DeadLetter
			if err := json.Unmarshal(body, &dl); err != nil {
				t.Fatal(err)
			}
			if len(dl) != 1 || dl[0].ID != bad.ID || dl[0].ErrorMessage != "nope" {
				t.Errorf("dlq %s", body)
			}
		}},
		{"GET", "/v1/dlq?limit=x", 400, nil},
		{"POST", "/v1/dlq/" + newID() + "/redrive", 404, nil},
		{"GET", "/v1/usage?fn=leaf", 200, func(t *testing.T, body []byte) {
			var r struct {
				Rows  []meter.Usage `json:"rows"`
				Total meter.Usage   `json:"total"`
			}
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r.Total.Invocations != 2 || r.Total.BilledMs != 4 || r.Total.CPUMicros != 4000 {
				t.Errorf("usage %s", body)
			}
		}},
		{"GET", "/v1/usage?from=yesterday", 400, nil},
		{"POST", "/v1/dlq/" + bad.ID + "/redrive", 202, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body []byte
			buf := make([]byte, 1<<16)
			for {
				n, err := resp.Body.Read(buf)
				body = append(body, buf[:n]...)
				if err != nil {
					break
				}
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status >= 400 {
				var e struct{ Code string }
				if json.Unmarshal(body, &e) != nil || e.Code == "" {
					t.Errorf("error body without a code: %s", body)
				}
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

func TestGetTruncatesLargeTrees(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TreeLimit = 4 })
	h.fn("leaf", Policy{}, 0, echo)
	h.fn("root", Policy{}, 0, func(ctx context.Context, ev *runtime.Event) ([]byte, error) {
		return call(ctx, ev, OpMap, "leaf", "1", "1", "2", "3", "4", "5")
	})
	o, err := h.invoke("root", "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := h.e.Get(o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Children) != 3 || !n.Truncated {
		t.Errorf("children %d truncated %v, want 3 and true", len(n.Children), n.Truncated)
	}
}
