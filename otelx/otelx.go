// Package otelx sets up the OpenTelemetry SDK for a program that runs the
// Mapper (the reference server does): traces exported over OTLP when the
// standard OTEL_* variables say so, metrics served to Prometheus, a
// resource naming the service, W3C propagation, logs that carry trace and
// span IDs, and a shutdown that flushes. Libraries embedding the Mapper
// need none of it: the mapper package only uses the OpenTelemetry API.
//
// Variables, read from the process environment like the SDK and the
// exporters read theirs (OTEL_EXPORTER_OTLP_* endpoint, headers, timeout,
// TLS; the sampler):
//
//   - OTEL_SDK_DISABLED=true: no SDK; nothing is recorded or exported.
//   - OTEL_TRACES_EXPORTER: "otlp" or "none". Unset, traces are exported
//     when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
//     is set, and not otherwise.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL:
//     "http/protobuf" (the default) or "grpc".
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: read by the SDK
//     (parentbased_always_on by default). With no exporter and no sampler
//     set, spans are not recorded at all: they carry IDs for the logs and
//     the traceparent of deliveries (see IDs).
//   - OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: the resource.
package otelx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is what Setup made.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// MetricsHandler serves the metrics in Prometheus' text format.
	MetricsHandler http.Handler
	// TracesExported says whether spans leave the process.
	TracesExported bool
	shutdown       []func(context.Context) error
}

// Shutdown flushes what is buffered and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Setup builds the providers from the environment for a service of the
// given name and version, and installs them as the globals.
func Setup(ctx context.Context, service, version string) (*Telemetry, error) {
	getenv := os.Getenv
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	otel.SetTextMapPropagator(prop)
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return &Telemetry{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider(), Propagator: prop,
			MetricsHandler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "metrics are disabled (OTEL_SDK_DISABLED=true)", http.StatusNotFound)
			})}, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithHost(), resource.WithProcessRuntimeName(), resource.WithProcessRuntimeVersion())
	if err != nil && res == nil {
		return nil, fmt.Errorf("otelx: resource: %w", err)
	}
	t := &Telemetry{Propagator: prop}

	reg := prometheus.NewRegistry()
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("otelx: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(promExp))
	t.MeterProvider = mp
	t.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	t.shutdown = append(t.shutdown, mp.Shutdown)

	exporter, err := traceExporter(ctx, getenv)
	if err != nil {
		return nil, err
	}
	switch {
	case exporter == nil && getenv("OTEL_TRACES_SAMPLER") == "":
		// Nothing leaves the process: spans need their IDs, not a record
		// (see IDs). A sampler that is set still decides the flags that
		// worker apps receive, so it keeps the SDK.
		t.TracerProvider = IDs()
	default:
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if exporter != nil {
			opts = append(opts, sdktrace.WithBatcher(exporter))
			t.TracesExported = true
		}
		tp := sdktrace.NewTracerProvider(opts...)
		t.TracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(mp)
	return t, nil
}

func traceExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	kind := strings.ToLower(getenv("OTEL_TRACES_EXPORTER"))
	if kind == "" {
		kind = "none"
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			kind = "otlp"
		}
	}
	switch kind {
	case "none":
		return nil, nil
	case "otlp":
	default:
		return nil, fmt.Errorf("otelx: OTEL_TRACES_EXPORTER %q is not supported (otlp or none)", kind)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	}
	return nil, fmt.Errorf("otelx: OTLP protocol %q is not supported (http/protobuf or grpc)", proto)
}

// LogHandler wraps h so that every record logged with a context carrying
// a span gets trace_id and span_id attributes.
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
