package otelx_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper/otelx"
)

// setenv sets the variables for this test (and undoes them after).
func setenv(t *testing.T, m map[string]string) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, m[k])
	}
}

// Spans reach an OTLP/HTTP receiver by the time Shutdown returns, and
// metrics are served to Prometheus.
func TestSetupExportsAndServes(t *testing.T) {
	var posts atomic.Int32
	var lastPath atomic.Value
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		lastPath.Store(r.URL.Path)
		posts.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(receiver.Close)
	ctx := context.Background()
	setenv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.URL, "OTEL_SERVICE_NAME": "mapper-test"})
	tel, err := otelx.Setup(ctx, "mapper", "v0")
	if err != nil {
		t.Fatal(err)
	}
	if !tel.TracesExported {
		t.Error("an OTLP endpoint is set but traces are not exported")
	}
	_, span := tel.TracerProvider.Tracer("test").Start(ctx, "work")
	span.End()
	counter, err := tel.MeterProvider.Meter("test").Int64Counter("mapper.test.things")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 3, metric.WithAttributes())
	rec := httptest.NewRecorder()
	tel.MetricsHandler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "mapper_test_things_total") || !strings.Contains(rec.Body.String(), `service_name="mapper-test"`) {
		t.Errorf("metrics:\n%.1500s", rec.Body.String())
	}
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 || lastPath.Load() != "/v1/traces" {
		t.Errorf("%d posts to the receiver (last %v)", posts.Load(), lastPath.Load())
	}
}

func TestSetupOptions(t *testing.T) {
	ctx := context.Background()
	setenv(t, nil)
	tel, err := otelx.Setup(ctx, "mapper", "v0")
	if err != nil || tel.TracesExported {
		t.Errorf("no endpoint: exported %v, err %v", tel != nil && tel.TracesExported, err)
	}
	setenv(t, map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"})
	if _, err := otelx.Setup(ctx, "mapper", "v0"); err == nil {
		t.Error("an unsupported exporter was accepted")
	}
	setenv(t, map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})
	if _, err := otelx.Setup(ctx, "mapper", "v0"); err == nil {
		t.Error("an unsupported protocol was accepted")
	}
	setenv(t, map[string]string{"OTEL_SDK_DISABLED": "true"})
	off, err := otelx.Setup(ctx, "mapper", "v0")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	off.MetricsHandler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("disabled metrics: %d", rec.Code)
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	setenv(t, nil)
	tel, err := otelx.Setup(context.Background(), "mapper", "v0")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger := slog.New(otelx.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	ctx, span := tel.TracerProvider.Tracer("test").Start(context.Background(), "work")
	logger.InfoContext(ctx, "inside")
	span.End()
	logger.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"trace_id":"`+span.SpanContext().TraceID().String()) || strings.Contains(lines[1], "trace_id") {
		t.Errorf("logs:\n%s", buf.String())
	}
}

// Exporting nothing, Setup's spans record nothing, yet carry the IDs a
// trace needs and propagate them; a sampler that is set keeps the SDK.
func TestSetupWithoutExporterRecordsNothing(t *testing.T) {
	ctx := context.Background()
	setenv(t, nil)
	tel, err := otelx.Setup(ctx, "mapper", "v0")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("test").Start(ctx, "work")
	if span.IsRecording() || !span.SpanContext().IsValid() {
		t.Errorf("no exporter: recording %v, span context %+v", span.IsRecording(), span.SpanContext())
	}
	setenv(t, map[string]string{"OTEL_TRACES_SAMPLER": "always_on"})
	sampled, err := otelx.Setup(ctx, "mapper", "v0")
	if err != nil {
		t.Fatal(err)
	}
	if _, span := sampled.TracerProvider.Tracer("test").Start(ctx, "work"); !span.IsRecording() {
		t.Error("a sampler is set but the SDK is not used")
	}
}

func TestIDs(t *testing.T) {
	tracer := otelx.IDs().Tracer("test")
	ctx, root := tracer.Start(context.Background(), "root")
	rc := root.SpanContext()
	if !rc.IsValid() || !rc.IsSampled() || root.IsRecording() {
		t.Fatalf("root: %+v, recording %v", rc, root.IsRecording())
	}
	_, child := tracer.Start(ctx, "child")
	if cc := child.SpanContext(); cc.TraceID() != rc.TraceID() || cc.SpanID() == rc.SpanID() || !cc.IsSampled() {
		t.Errorf("child %+v of root %+v", cc, rc)
	}
	if _, other := tracer.Start(context.Background(), "other"); other.SpanContext().TraceID() == rc.TraceID() {
		t.Error("two roots share a trace")
	}

	// A remote parent's trace, flags and state carry over, and what is
	// injected downstream is the child's.
	prop := propagation.TraceContext{}
	in := propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate": "vendor=x"}
	_, span := tracer.Start(prop.Extract(context.Background(), in), "remote child")
	sc := span.SpanContext()
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() == "00f067aa0ba902b7" || sc.IsSampled() ||
		sc.TraceState().String() != "vendor=x" {
		t.Errorf("remote child: %+v", sc)
	}
	out := propagation.MapCarrier{}
	prop.Inject(trace.ContextWithSpan(context.Background(), span), out)
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + sc.SpanID().String() + "-00"; out["traceparent"] != want {
		t.Errorf("injected %q, want %q", out["traceparent"], want)
	}
}
