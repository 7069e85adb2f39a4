package flow

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/meter"
)

// Handler serves the flow routes of the HTTP API:
//
//	GET  /v1/invocations/{id}     the invocation with its call tree (Node)
//	GET  /v1/dlq?limit=N           dead letters ([]DeadLetter)
//	POST /v1/dlq/{id}/redrive      queue a dead letter again (202)
//	GET  /v1/usage?fn=&from=&to=   usage per function per hour (Usage)
//
// from and to are RFC 3339 times; the default range is the last 24 hours.
// Authentication is the caller's (the gateway wraps this handler).
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/invocations/{id}", handler.Func(e.getInvocation))
	mux.Handle("GET /v1/dlq", handler.Func(e.listDLQ))
	mux.Handle("POST /v1/dlq/{id}/redrive", handler.Func(e.redrive))
	mux.Handle("GET /v1/usage", handler.Func(e.usage))
	return mux
}

var writeJSON = handler.WriteJSON

func (e *Engine) getInvocation(w http.ResponseWriter, r *http.Request) error {
	n, err := e.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (e *Engine) listDLQ(w http.ResponseWriter, r *http.Request) error {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errs.E(errs.BadRequest, "flow: limit must be a non-negative number, not %q", s)
		}
		limit = n
	}
	dl, err := e.DeadLetters(limit)
	if err != nil {
		return err
	}
	if dl == nil {
		dl = []DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, dl)
}

func (e *Engine) redrive(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := e.Redrive(id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": string(StatusQueued)})
}

// UsageReport is the body of GET /v1/usage.
type UsageReport struct {
	From  time.Time     `json:"from"`
	To    time.Time     `json:"to"`
	Rows  []meter.Usage `json:"rows"`
	Total meter.Usage   `json:"total"`
}

func (e *Engine) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	to := time.Now()
	from := to.Add(-24 * time.Hour)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return errs.E(errs.BadRequest, "flow: %s must be an RFC 3339 time, not %q", p.name, s)
			}
			*p.t = t
		}
	}
	rows, err := e.ledger.Query(q.Get("fn"), from, to)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []meter.Usage{}
	}
	return writeJSON(w, http.StatusOK, UsageReport{From: from, To: to, Rows: rows, Total: meter.Sum(rows)})
}

// RenderTree draws n and its children for a terminal, one invocation a
// line with its status and timings, as `mote trace ID` shows it:
//
//	chain  succeeded  wall 1.20ms  cpu 0.31ms  billed 1ms  0192f3...
//	├─ step  succeeded  wall 0.40ms  cpu 0.10ms  billed 1ms  0192f3...
//	└─ step  failed  ...  function_error: boom
func RenderTree(w io.Writer, n *Node) error {
	return render(w, n, "", "")
}

func render(w io.Writer, n *Node, first, rest string) error {
	var b strings.Builder
	b.WriteString(first)
	fmt.Fprintf(&b, "%s  %s  wall %s  cpu %s  billed %dms", n.Function, n.Status,
		micros(n.WallMicros), micros(n.CPUMicros), n.BilledMs)
	if n.Attempts > 1 {
		fmt.Fprintf(&b, "  attempts %d", n.Attempts)
	}
	if n.Cold {
		b.WriteString("  cold")
	}
	if n.Async {
		b.WriteString("  async")
	}
	b.WriteString("  " + n.ID)
	if n.ErrorCode != "" {
		fmt.Fprintf(&b, "  %s: %s", n.ErrorCode, n.ErrorMessage)
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	for i, c := range n.Children {
		last := i == len(n.Children)-1 && !n.Truncated
		branch, cont := "├─ ", "│  "
		if last {
			branch, cont = "└─ ", "   "
		}
		if err := render(w, c, rest+branch, rest+cont); err != nil {
			return err
		}
	}
	if n.Truncated {
		if _, err := io.WriteString(w, rest+"└─ … (more children not loaded)\n"); err != nil {
			return err
		}
	}
	return nil
}

func micros(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", us)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(us)/1000)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
