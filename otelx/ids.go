package otelx

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// When no trace leaves the process, the SDK's tracer still builds a
// recording span for every span started (attributes, events, a child
// count, a clock read at each end) for a processor that does not exist:
// about seven spans a webhook, 5 % of the reference server's CPU flat out.
// What the process needs of them is their identity: trace and span IDs in
// the logs, and a traceparent in every delivery, so that a worker app's
// own traces continue the webhook's. IDs gives exactly that: each span a
// fresh span ID, in its parent's trace (a new one for a root), with the
// parent's flags and trace state (a root is sampled, as the SDK's default
// sampler would have it, so a worker app sampling by its parent keeps its
// traces), and nothing recorded.

// IDs returns a TracerProvider whose spans carry IDs and propagate but
// record nothing: for a process that exports no traces.
func IDs() trace.TracerProvider { return idProvider{} }

type idProvider struct{ embedded.TracerProvider }

func (idProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return idTracer{} }

type idTracer struct{ embedded.Tracer }

// Start ignores opts: they shape only what would be recorded, except
// WithNewRoot, which none of this module's spans uses.
func (idTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanContextFromContext(ctx)
	cfg := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: trace.FlagsSampled}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	// A context holding only a span context holds a span that records
	// nothing and answers with that context.
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
	return ctx, trace.SpanFromContext(ctx)
}

// IDs come from math/rand/v2's generator (ChaCha8, seeded from the
// system's randomness, per thread and without a lock), as random as the
// SDK's own and never zero, which W3C Trace Context reserves.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
