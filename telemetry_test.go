package mapper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
)

// One webhook, followed from intake through a restart of the Mapper to the
// worker app: one trace, and the worker sees its ID in traceparent.
func TestTraceSurvivesRestart(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	graph := mappertest.NewGraphAPI("tok")
	t.Cleanup(graph.Close)
	graph.SetOwner("18000000000000001", accountA)
	res, err := graphresolver.New("tok", graphresolver.WithBaseURL(graph.URL()), graphresolver.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	worker := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(worker.Close)
	store := memstore.New()
	if err := store.CreateApp(context.Background(), &mapper.WorkerApp{ID: "w", Name: "w", URL: worker.URL(), Secret: worker.Secret(), AccountIDs: []string{accountA}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	newMapper := func() *mapper.Mapper {
		m, err := mapper.New(store, mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken("v"), mapper.WithResolver(res),
			mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithTelemetry(tp, nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// The first Mapper takes the webhook and stops before routing it.
	m1 := newMapper()
	srv := httptest.NewServer(m1.Handler())
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment(accountA, "18000000000000001", "c1", "x").Request(srv.URL+"/webhook/", metaSecret))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", err, resp)
	}
	resp.Body.Close()
	srv.Close()
	m1.Close()
	// A second one, as after a restart, routes and delivers it.
	m2 := newMapper()
	defer m2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m2.Run(ctx); close(done) }()
	got, err := worker.WaitFor(ctxTimeout(t), 1)
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	intake, ok := byName["POST /webhook/"]
	if !ok {
		t.Fatalf("no intake span among %d", len(spans))
	}
	traceID := intake.SpanContext.TraceID()
	kinds := map[string]trace.SpanKind{"POST /webhook/": trace.SpanKindServer, "verify signature": trace.SpanKindInternal,
		"parse payload": trace.SpanKindInternal, "persist event": trace.SpanKindInternal, "route event": trace.SpanKindInternal,
		"resolve owner": trace.SpanKindInternal, "GET": trace.SpanKindClient, "deliver": trace.SpanKindClient}
	for _, name := range []string{"verify signature", "parse payload", "persist event", "route event", "resolve owner", "GET", "deliver"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no %q span", name)
			continue
		}
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %q is in trace %s, not the intake's %s", name, s.SpanContext.TraceID(), traceID)
		}
	}
	for name, kind := range kinds {
		if s, ok := byName[name]; ok && s.SpanKind != kind {
			t.Errorf("span %q is of kind %s, want %s", name, s.SpanKind, kind)
		}
	}
	if p := byName["persist event"]; !slices.ContainsFunc(p.Attributes, func(kv attribute.KeyValue) bool { return kv.Key == "mapper.event.id" && kv.Value.AsString() != "" }) {
		t.Errorf("persist event's attributes %v name no event", p.Attributes)
	}
	tp1 := got[0].Header.Get("traceparent")
	if !strings.Contains(tp1, traceID.String()) {
		t.Errorf("worker got traceparent %q, want trace %s", tp1, traceID)
	}
	// The delivery span is the worker's parent.
	if d := byName["deliver"]; !strings.Contains(tp1, d.SpanContext.SpanID().String()) {
		t.Errorf("traceparent %q does not name the deliver span %s", tp1, d.SpanContext.SpanID())
	}
}

func findMetric(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// sumWith adds up the data points of a sum metric whose attributes include
// every given one.
func sumWith(t *testing.T, rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := findMetric(rm, name)
	if !ok {
		t.Errorf("no metric %s", name)
		return -1
	}
	var total int64
	points := func(attrs attribute.Set, v int64) {
		for _, w := range want {
			if got, ok := attrs.Value(w.Key); !ok || got != w.Value {
				return
			}
		}
		total += v
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			points(p.Attributes, p.Value)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			points(p.Attributes, p.Value)
		}
	default:
		t.Errorf("%s is a %T", name, m.Data)
	}
	return total
}

// histogramCount counts the samples of a histogram whose attributes
// include want.
func histogramCount(t *testing.T, rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) uint64 {
	t.Helper()
	m, ok := findMetric(rm, name)
	if !ok {
		t.Errorf("no metric %s", name)
		return 0
	}
	var n uint64
points:
	for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
		for _, w := range want {
			if got, ok := p.Attributes.Value(w.Key); !ok || got != w.Value {
				continue points
			}
		}
		n += p.Count
	}
	return n
}

// A scripted run, then every metric is read through a manual reader, and
// compared with the JSON /monitoring/metrics.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	h := newHarness(t, mapper.WithTelemetry(nil, mp, nil))
	ok, okID := h.addApp("ok", accountA)
	bad, badID := h.addApp("bad", accountB)
	bad.FailNext(400)
	_ = ok
	id1 := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "c1", "x").Bytes())
	id2 := h.accept(mappertest.NewWebhook().Comment(accountB, "2", "c2", "x").Bytes())
	if resp, ir, _ := h.post(mappertest.NewWebhook().Comment(accountA, "1", "c1", "x").Bytes(), metaSecret); resp.StatusCode != 200 || ir.Status != "duplicate" {
		t.Fatalf("duplicate: %d %s", resp.StatusCode, ir.Status)
	}
	if resp, _, _ := h.post([]byte(`{"object":"instagram","entry":[]}`), "forged"); resp.StatusCode != 401 {
		t.Fatalf("forged: %d", resp.StatusCode)
	}
	h.settled(id1)
	h.settled(id2)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for outcome, want := range map[string]int64{"accepted": 2, "duplicate": 1, "bad_signature": 1, "too_large": 0} {
		if got := sumWith(t, rm, "mapper.webhooks.received", attribute.String("mapper.outcome", outcome)); got != want {
			t.Errorf("webhooks received %s: %d, want %d", outcome, got, want)
		}
	}
	if got := sumWith(t, rm, "mapper.delivery.attempts", attribute.String("mapper.delivery.outcome", "delivered"), attribute.String("mapper.app.id", okID)); got != 1 {
		t.Errorf("delivered attempts to ok: %d", got)
	}
	if got := sumWith(t, rm, "mapper.delivery.attempts", attribute.String("mapper.delivery.outcome", "dead"), attribute.String("mapper.app.id", badID)); got != 1 {
		t.Errorf("dead attempts to bad: %d", got)
	}
	if got := sumWith(t, rm, "mapper.routing.events", attribute.String("mapper.route.outcome", "routed")); got != 2 {
		t.Errorf("routed: %d", got)
	}
	if got := sumWith(t, rm, "mapper.deliveries.dead"); got != 1 {
		t.Errorf("dead deliveries gauge: %d", got)
	}
	if got := sumWith(t, rm, "mapper.queue.depth"); got != 0 {
		t.Errorf("queue depth: %d", got)
	}
	if got := histogramCount(t, rm, "mapper.webhook.ack.duration"); got != 4 {
		t.Errorf("ack latency samples: %d, want 4", got)
	}
	for outcome, want := range map[string]uint64{"accepted": 2, "duplicate": 1, "bad_signature": 1} {
		if got := histogramCount(t, rm, "mapper.webhook.ack.duration", attribute.String("mapper.outcome", outcome)); got != want {
			t.Errorf("ack latency samples %s: %d, want %d", outcome, got, want)
		}
	}
	if got := histogramCount(t, rm, "mapper.delivery.latency"); got != 1 {
		t.Errorf("end-to-end latency samples: %d, want 1", got)
	}
	if got := histogramCount(t, rm, "mapper.delivery.latency", attribute.String("mapper.app.id", okID)); got != 1 {
		t.Errorf("end-to-end latency samples of app ok: %d, want 1", got)
	}
	for _, name := range []string{"mapper.cache.lookups", "mapper.resolver.calls", "mapper.queue.oldest_age"} {
		if _, ok := findMetric(rm, name); !ok {
			t.Errorf("no metric %s", name)
		}
	}
	// The JSON endpoint reads the same numbers.
	resp, raw := h.admin(http.MethodGet, "/monitoring/metrics", nil)
	var mr mappertest.Metrics
	if resp.StatusCode != 200 || json.Unmarshal(raw, &mr) != nil {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	if mr.Counters.Webhooks["accepted"] != 2 || mr.Counters.Webhooks["bad_signature"] != 1 || mr.Counters.Attempts["dead"] != 1 || mr.Counters.Attempts["delivered"] != 1 {
		t.Errorf("JSON metrics disagree: %s", raw)
	}
}

// syncBuf is a bytes.Buffer for a logger used from several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Secrets never reach logs or spans, whatever happens.
func TestNoSecretsInLogsOrSpans(t *testing.T) {
	t.Parallel()
	const (
		appSecret    = "APP-SECRET-d41d8cd98f00b204"
		accessToken  = "EAAG-ACCESS-TOKEN-9e107d9d372bb682"
		workerSecret = "WORKER-SECRET-e4d909c290d0fb1c"
		adminTok     = "ADMIN-TOKEN-45c48cce2e2d7fbd"
	)
	logs := &syncBuf{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	graph := mappertest.NewGraphAPI("a-different-token") // ours is rejected first
	t.Cleanup(graph.Close)
	graph.SetOwner("18000000000000001", accountA)
	res, err := graphresolver.New(accessToken, graphresolver.WithBaseURL(graph.URL()), graphresolver.WithTracerProvider(tp), graphresolver.WithTokenProbe(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	worker := mappertest.NewWorkerApp(workerSecret)
	t.Cleanup(worker.Close)
	worker.FailNext(500)
	store := memstore.New()
	if err := store.CreateApp(context.Background(), &mapper.WorkerApp{ID: "w", Name: "w", URL: worker.URL(), Secret: workerSecret, AccountIDs: []string{accountA}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	m, err := mapper.New(store, mapper.WithMetaSecrets(appSecret), mapper.WithVerifyToken("v"), mapper.WithAdminToken(adminTok),
		mapper.WithResolver(res), mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithTelemetry(tp, nil, nil), mapper.WithLogger(logger),
		mapper.WithParkInterval(10*time.Millisecond), mapper.WithRetryPolicy(mapper.RetryPolicy{MaxAttempts: 5, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := mappertest.NewWebhook().Comment(accountA, "18000000000000001", "c1", "x").Bytes()
	for _, secret := range []string{"wrong-secret", appSecret} {
		resp, err := http.DefaultClient.Do(mappertest.SignedRequest(srv.URL+"/webhook/", secret, body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/worker-apps/", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// Let the rejected token park the event, then fix it: the delivery
	// fails once (500) and then goes through.
	deadline := time.Now().Add(10 * time.Second)
	for res.Health() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	graph.SetToken(accessToken)
	if _, err := worker.WaitFor(ctxTimeout(t), 2); err != nil {
		t.Fatal(err)
	}
	var everything strings.Builder
	everything.WriteString(logs.String())
	for _, s := range exp.GetSpans() {
		everything.WriteString(s.Name + s.Status.Description)
		for _, a := range s.Attributes {
			everything.WriteString(string(a.Key) + "=" + a.Value.Emit() + "\n")
		}
		for _, e := range s.Events {
			everything.WriteString(e.Name)
			for _, a := range e.Attributes {
				everything.WriteString(a.Value.Emit())
			}
		}
	}
	text := everything.String()
	if len(exp.GetSpans()) < 8 || !strings.Contains(text, "delivery attempt") {
		t.Fatalf("too little was recorded to mean anything (%d spans):\n%s", len(exp.GetSpans()), text)
	}
	for name, secret := range map[string]string{"app secret": appSecret, "access token": accessToken, "worker secret": workerSecret, "admin token": adminTok} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s appears in logs or spans", name)
		}
	}
}
