package flow

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mote-run/mote/internal/errs"
)

// Observer is told of every invocation's end (roots, children, async and
// queued ones alike) and of every host call, for metrics. It is called on
// the invocation's own goroutine and must not block.
type Observer interface {
	// Ended reports an invocation that ended; n is complete and must
	// not be kept or changed.
	Ended(n *Node)
	// HostCall reports one host call of fn, the op, how long it took and
	// its error.
	HostCall(fn, op string, took time.Duration, err error)
}

// Tracing: with Config.Tracer set, every invocation is a span, a child of
// the span in the context it runs under (a caller's traceparent, the
// parent invocation's host call), and every host call a span below its
// invocation's; a child invocation's span is below the host call that
// started it, so a fan-out is one trace. Without a Tracer none of this
// runs.

// Span attribute keys (OpenTelemetry's FaaS conventions where they have one).
const (
	attrInvocationID = attribute.Key("faas.invocation_id")
	attrFunction     = attribute.Key("faas.invoked_name")
	attrColdStart    = attribute.Key("faas.coldstart")
	attrVersion      = attribute.Key("faas.version")
	attrRoot         = attribute.Key("mote.root_id")
	attrAttempts     = attribute.Key("mote.attempts")
	attrCPUMicros    = attribute.Key("mote.cpu_us")
	attrBilledMs     = attribute.Key("mote.billed_ms")
	attrErrorCode    = attribute.Key("mote.error_code")
	attrAsync        = attribute.Key("mote.async")
	attrHostOp       = attribute.Key("mote.host_op")
)

// Filter is a Tracer that can tell, before a span's options are made,
// that it would not trace an invocation under ctx (a tracer sampled off,
// ctx without a traced parent).
type Filter interface {
	Traces(ctx context.Context) bool
}

// traceStart starts in's span under ctx's and returns ctx with it.
func (e *Engine) traceStart(ctx context.Context, in *inv) context.Context {
	t := e.cfg.Tracer
	if t == nil {
		return ctx
	}
	if f, ok := t.(Filter); ok && !f.Traces(ctx) {
		return ctx // not even the span options are made
	}
	n := &in.node
	ctx, in.span = t.Start(ctx, n.Function, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(n.Start),
		trace.WithAttributes(attrInvocationID.String(n.ID), attrFunction.String(n.Function), attrRoot.String(n.Root)))
	return ctx
}

// observeEnd reports in's end to the Observer and ends its span.
func (e *Engine) observeEnd(in *inv, err error) {
	n := &in.node
	if o := e.cfg.Observer; o != nil {
		o.Ended(n)
	}
	s := in.span
	if s == nil {
		return
	}
	// in.span is kept, ended: a destination queued next hangs below it.
	if s.IsRecording() {
		s.SetAttributes(attrColdStart.Bool(n.Cold), attrVersion.String(n.Version), attrAttempts.Int(n.Attempts),
			attrCPUMicros.Int64(n.CPUMicros), attrBilledMs.Int64(n.BilledMs), attrAsync.Bool(n.Async))
		if err != nil {
			s.SetAttributes(attrErrorCode.String(string(n.ErrorCode)))
			s.SetStatus(codes.Error, n.ErrorMessage)
		}
	}
	s.End(trace.WithTimestamp(n.End))
}

// childContext is ctx, which a child invocation runs under, carrying the
// span of hctx, the host call that starts the child.
func (e *Engine) childContext(ctx, hctx context.Context) context.Context {
	if e.cfg.Tracer == nil || hctx == nil {
		return ctx
	}
	s := trace.SpanFromContext(hctx)
	if !s.SpanContext().IsValid() {
		return ctx // nothing traced: nothing to carry
	}
	return trace.ContextWithSpan(ctx, s)
}

// Call serves one host call of the attempt's function (host.Host),
// timed for the Observer and traced as a span when either is set.
func (a *attempt) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	o, t := a.e.cfg.Observer, a.e.cfg.Tracer
	if o == nil && t == nil {
		return a.dispatch(ctx, op, args)
	}
	var span trace.Span
	if t != nil {
		parent := a.in.span
		if parent == nil {
			parent = trace.SpanFromContext(ctx)
		}
		// An invocation not traced (no valid span) has host calls that
		// are not either.
		if parent.SpanContext().IsValid() {
			ctx, span = t.Start(trace.ContextWithSpan(ctx, parent), op, trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(attrHostOp.String(op)))
		}
	}
	start := time.Now()
	out, err := a.dispatch(ctx, op, args)
	took := time.Since(start)
	if o != nil {
		o.HostCall(a.in.node.Function, op, took, err)
	}
	if span != nil {
		if err != nil {
			span.SetAttributes(attrErrorCode.String(string(errs.CodeOf(err))))
			span.SetStatus(codes.Error, errs.MessageOf(err))
		}
		span.End()
	}
	return out, err
}

// traceparent is ctx's span context as a W3C traceparent, for a queue
// record; "" without tracing or a valid span.
func (e *Engine) traceparent(ctx context.Context) string {
	if e.cfg.Tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// withTraceparent is ctx carrying the remote span context of tp, a queue
// record's traceparent.
func (e *Engine) withTraceparent(ctx context.Context, tp string) context.Context {
	if e.cfg.Tracer == nil || tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// spanContext is a context carrying in's span, ended or not, for what
// in's end starts (a destination).
func (e *Engine) spanContext(in *inv) context.Context {
	if in.span == nil {
		return e.base
	}
	return trace.ContextWithSpanContext(e.base, in.span.SpanContext())
}

// QueueDepth is how many async invocations wait in the durable queue for
// a worker (not those running).
func (e *Engine) QueueDepth() int {
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	return len(e.q.ids)
}

// DeadLetterCount counts the dead letters.
func (e *Engine) DeadLetterCount() (int, error) {
	e.w.flush()
	n := 0
	err := e.cfg.DB.Scan([]byte(keyDead), func(_, _ []byte) bool {
		n++
		return true
	})
	if err != nil {
		return 0, errs.Wrap(errs.Internal, err, "flow: count dead letters")
	}
	return n, nil
}
