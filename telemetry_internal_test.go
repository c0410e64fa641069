package mapper

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A span context is stored as its traceparent alone when that is all
// there is, as a JSON object when there is more (tracestate), and read
// back either way, as well as from rows that stored the JSON object for a
// traceparent alone.
func TestStoredTraceContext(t *testing.T) {
	m := &Mapper{}
	m.tel.propagator = propagation.TraceContext{}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	state, _ := trace.ParseTraceState("vendor=abc")
	plain := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	withState := plain.WithTraceState(state)

	stored := m.carrier(trace.ContextWithSpanContext(context.Background(), plain))
	if stored != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent alone stored as %q", stored)
	}
	legacy, _ := json.Marshal(map[string]string{"traceparent": stored})
	storedState := m.carrier(trace.ContextWithSpanContext(context.Background(), withState))
	var obj map[string]string
	if json.Unmarshal([]byte(storedState), &obj) != nil || obj["tracestate"] != "vendor=abc" {
		t.Errorf("with tracestate stored as %q", storedState)
	}
	for _, tc := range []struct {
		stored string
		want   trace.SpanContext
	}{{stored, plain}, {string(legacy), plain}, {storedState, withState}} {
		got := trace.SpanContextFromContext(m.resume(context.Background(), tc.stored))
		if !got.Equal(tc.want) {
			t.Errorf("%q read back as %v, want %v", tc.stored, got, tc.want)
		}
	}
	if got := trace.SpanContextFromContext(m.resume(context.Background(), "")); got.IsValid() {
		t.Errorf("nothing stored read back as %v", got)
	}
	if m.carrier(context.Background()) != "" {
		t.Error("no span stored as something")
	}
}
