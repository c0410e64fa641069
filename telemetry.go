package mapper

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the Mapper's tracer and meter.
const instrumentationName = "github.com/chatico/mapper"

// Attribute keys. OpenTelemetry's semantic conventions where they exist;
// the Mapper's own are namespaced "mapper.". No attribute ever holds
// payload text, a token or a secret.
const (
	attrHTTPMethod     = attribute.Key("http.request.method")
	attrHTTPStatus     = attribute.Key("http.response.status_code")
	attrURLPath        = attribute.Key("url.path")
	attrServerAddress  = attribute.Key("server.address")
	attrBodySize       = attribute.Key("http.request.body.size")
	attrErrorType      = attribute.Key("error.type")
	attrEventID        = attribute.Key("mapper.event.id")
	attrEventItems     = attribute.Key("mapper.event.items")
	attrOutcome        = attribute.Key("mapper.outcome")
	attrDeliveryID     = attribute.Key("mapper.delivery.id")
	attrAttempt        = attribute.Key("mapper.delivery.attempt")
	attrAppID          = attribute.Key("mapper.app.id")
	attrMediaID        = attribute.Key("mapper.media.id")
	attrCacheHit       = attribute.Key("mapper.cache.hit")
	attrOwnerCount     = attribute.Key("mapper.route.owners")
	attrUnroutable     = attribute.Key("mapper.route.unroutable")
	attrDeliveryCount  = attribute.Key("mapper.route.deliveries")
	attrUsageBudget    = attribute.Key("mapper.graph.budget")
	attrCacheResult    = attribute.Key("mapper.cache.result")
	attrRouteOutcome   = attribute.Key("mapper.route.outcome")
	attrAttemptOutcome = attribute.Key("mapper.delivery.outcome")
)

// usageReporter is implemented by resolvers that know how much of the
// Graph API's budgets they use (graphresolver does): percentages by
// budget name, exported as the mapper.graph.usage gauge.
type usageReporter interface {
	UsagePercent() map[string]int
}

// telemetry holds the Mapper's tracer, propagator and instruments. The
// counters of the JSON /monitoring/metrics and the OTel instruments read
// the same atomics, so the two always agree.
type telemetry struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	ackLatency metric.Float64Histogram
	e2eLatency metric.Float64Histogram
	reg        metric.Registration

	statsMu   sync.Mutex
	statsAt   time.Time
	stats     Stats
	statsErr  error
	perApp    sync.Map // appID → *appCounters
	nowFn     func() time.Time
	storeStat func(context.Context) (Stats, error)
}

type appCounters struct {
	delivered, retrying, dead atomic.Int64
	// attrs is the app's attribute set for a measurement, made once: made
	// at each delivery (hashed and sorted), the sets of two histogram
	// records were 2.6 % of a loaded server's CPU.
	attrs metric.MeasurementOption
}

func (m *Mapper) appCounter(appID string) *appCounters {
	if c, ok := m.tel.perApp.Load(appID); ok {
		return c.(*appCounters)
	}
	c, _ := m.tel.perApp.LoadOrStore(appID, &appCounters{attrs: metric.WithAttributeSet(attribute.NewSet(attrAppID.String(appID)))})
	return c.(*appCounters)
}

// outcomeAttrs are the attribute sets of the intake outcomes' ack latency,
// indexed like intakeOutcomes (see appCounters.attrs).
var outcomeAttrs = func() []metric.MeasurementOption {
	attrs := make([]metric.MeasurementOption, len(intakeOutcomes))
	for i, o := range intakeOutcomes {
		attrs[i] = metric.WithAttributeSet(attribute.NewSet(attrOutcome.String(string(o))))
	}
	return attrs
}()

// ackAttrs is the attribute set of an intake outcome's ack latency.
func ackAttrs(o intakeOutcome) metric.MeasurementOption {
	if i := slices.Index(intakeOutcomes, o); i >= 0 {
		return outcomeAttrs[i]
	}
	return metric.WithAttributes(attrOutcome.String(string(o)))
}

func (m *Mapper) setupTelemetry() error {
	tp, mp := m.cfg.tracerProvider, m.cfg.meterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &m.tel
	t.tracer = tp.Tracer(instrumentationName)
	t.propagator = m.cfg.propagator
	t.nowFn = m.cfg.now
	t.storeStat = m.stats
	meter := mp.Meter(instrumentationName)
	var err error
	if t.ackLatency, err = meter.Float64Histogram("mapper.webhook.ack.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a webhook POST's arrival to its answer."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)); err != nil {
		return err
	}
	if t.e2eLatency, err = meter.Float64Histogram("mapper.delivery.latency", metric.WithUnit("s"),
		metric.WithDescription("Time from a webhook's arrival to its delivery to a worker app."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)); err != nil {
		return err
	}
	received, err := meter.Int64ObservableCounter("mapper.webhooks.received", metric.WithDescription("Webhook POSTs by outcome."))
	if err != nil {
		return err
	}
	routing, err := meter.Int64ObservableCounter("mapper.routing.events", metric.WithDescription("Routing steps by outcome: routed, unroutable, retried."))
	if err != nil {
		return err
	}
	attempts, err := meter.Int64ObservableCounter("mapper.delivery.attempts", metric.WithDescription("Delivery attempts by outcome and worker app."))
	if err != nil {
		return err
	}
	cache, err := meter.Int64ObservableCounter("mapper.cache.lookups", metric.WithDescription("Owner cache lookups by result: hit, miss, error."))
	if err != nil {
		return err
	}
	graphCalls, err := meter.Int64ObservableCounter("mapper.resolver.calls", metric.WithDescription("Calls to the owner resolver (the Graph API)."))
	if err != nil {
		return err
	}
	usage, err := meter.Int64ObservableGauge("mapper.graph.usage", metric.WithUnit("%"), metric.WithDescription("Last reported use of each Graph API budget."))
	if err != nil {
		return err
	}
	depth, err := meter.Int64ObservableGauge("mapper.queue.depth", metric.WithDescription("Pending events and deliveries."))
	if err != nil {
		return err
	}
	oldest, err := meter.Float64ObservableGauge("mapper.queue.oldest_age", metric.WithUnit("s"), metric.WithDescription("Age of the oldest pending event or delivery."))
	if err != nil {
		return err
	}
	dead, err := meter.Int64ObservableGauge("mapper.deliveries.dead", metric.WithDescription("Dead deliveries kept for replay."))
	if err != nil {
		return err
	}
	c := &m.counters
	t.reg, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		for i, name := range intakeOutcomes {
			o.ObserveInt64(received, c.intake[i].Load(), metric.WithAttributes(attrOutcome.String(string(name))))
		}
		o.ObserveInt64(routing, c.routed.Load(), metric.WithAttributes(attrRouteOutcome.String("routed")))
		o.ObserveInt64(routing, c.unroutable.Load(), metric.WithAttributes(attrRouteOutcome.String("unroutable")))
		o.ObserveInt64(routing, c.routeRetries.Load(), metric.WithAttributes(attrRouteOutcome.String("retried")))
		t.perApp.Range(func(k, v any) bool {
			app, ac := k.(string), v.(*appCounters)
			for _, p := range []struct {
				name string
				n    int64
			}{{"delivered", ac.delivered.Load()}, {"retrying", ac.retrying.Load()}, {"dead", ac.dead.Load()}} {
				o.ObserveInt64(attempts, p.n, metric.WithAttributes(attrAttemptOutcome.String(p.name), attrAppID.String(app)))
			}
			return true
		})
		o.ObserveInt64(cache, c.cacheHits.Load(), metric.WithAttributes(attrCacheResult.String("hit")))
		o.ObserveInt64(cache, c.cacheMisses.Load(), metric.WithAttributes(attrCacheResult.String("miss")))
		o.ObserveInt64(cache, c.cacheErrors.Load(), metric.WithAttributes(attrCacheResult.String("error")))
		o.ObserveInt64(graphCalls, c.resolverCalls.Load())
		if u, ok := m.cfg.resolver.(usageReporter); ok {
			for budget, pct := range u.UsagePercent() {
				o.ObserveInt64(usage, int64(pct), metric.WithAttributes(attrUsageBudget.String(budget)))
			}
		}
		if st, err := t.cachedStats(ctx); err == nil {
			o.ObserveInt64(depth, st.QueueDepth)
			o.ObserveFloat64(oldest, st.OldestPending.Seconds())
			o.ObserveInt64(dead, st.DeliveriesByStatus[DeliveryDead])
		}
		return nil
	}, received, routing, attempts, cache, graphCalls, usage, depth, oldest, dead)
	return err
}

// cachedStats reads the store's aggregates at most every few seconds,
// whatever the scrape rate, since they cost queries.
func (t *telemetry) cachedStats(ctx context.Context) (Stats, error) {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	if now := t.nowFn(); now.Sub(t.statsAt) > 5*time.Second || t.statsErr != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t.stats, t.statsErr = t.storeStat(ctx)
		cancel()
		t.statsAt = now
	}
	return t.stats, t.statsErr
}

// startSpan starts a span of the Mapper's tracer.
func (m *Mapper) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if int(kind) >= len(spanKinds) {
		return m.tel.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	}
	if len(attrs) == 0 {
		return m.tel.tracer.Start(ctx, name, spanKinds[kind]...)
	}
	return m.tel.tracer.Start(ctx, name, spanKinds[kind][0], trace.WithAttributes(attrs...))
}

// spanKinds holds, by kind, the option that sets it, made once: made at
// each span (a boxed value, and a slice to pass it in) it was about ten
// allocations a webhook, spent even on a tracer that records nothing.
var spanKinds = func() [][]trace.SpanStartOption {
	kinds := make([][]trace.SpanStartOption, trace.SpanKindConsumer+1)
	for k := range kinds {
		kinds[k] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKind(k))}
	}
	return kinds
}()

// endSpan records err (if any) and ends the span.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attrErrorType.String(errorType(err)))
	}
	span.End()
}

// errorType is a low-cardinality name for an error.
func errorType(err error) string {
	switch {
	case err == nil:
		return ""
	case mediaNotFound(err):
		return "media_not_found"
	case needsConfiguration(err):
		return "needs_configuration"
	case retryAfter(err) > 0:
		return "retry_later"
	}
	return "error"
}

// carrier serialises a span context for the store: the traceparent's
// value alone when that is all the propagator wrote (the common case, 55
// bytes instead of 73 as JSON, in every event kept), else the carrier
// (traceparent, tracestate, ...) as a JSON object.
func (m *Mapper) carrier(ctx context.Context) string {
	c := propagation.MapCarrier{}
	m.tel.propagator.Inject(ctx, c)
	if len(c) == 0 {
		return ""
	}
	if tp, ok := c[traceparent]; ok && len(c) == 1 && !strings.HasPrefix(tp, "{") {
		return tp
	}
	b, _ := json.Marshal(c)
	return string(b)
}

const traceparent = "traceparent"

// resume returns ctx with the stored span context as remote parent, so
// background work continues the intake's trace, even after a restart or
// on another replica.
func (m *Mapper) resume(ctx context.Context, stored string) context.Context {
	if stored == "" {
		return ctx
	}
	if !strings.HasPrefix(stored, "{") {
		return m.tel.propagator.Extract(ctx, traceparentCarrier(stored))
	}
	c := propagation.MapCarrier{}
	if json.Unmarshal([]byte(stored), &c) != nil {
		return ctx
	}
	return m.tel.propagator.Extract(ctx, c)
}

// traceparentCarrier holds a stored traceparent alone (see carrier), read
// without a map made for it: an event is resumed twice, to route it and
// to deliver it.
type traceparentCarrier string

func (c traceparentCarrier) Get(key string) string {
	if key == traceparent {
		return string(c)
	}
	return ""
}

func (traceparentCarrier) Set(string, string) {}

func (traceparentCarrier) Keys() []string { return []string{traceparent} }

// injectHeader writes the span context of ctx into h (traceparent).
func (m *Mapper) injectHeader(ctx context.Context, h http.Header) {
	m.tel.propagator.Inject(ctx, propagation.HeaderCarrier(h))
}
