package mapper_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/otelx"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

// resolverFunc is an in-process resolver, so the benchmarks measure the
// Mapper, not a network.
type resolverFunc func(ctx context.Context, mediaID string) (string, error)

func (f resolverFunc) ResolveOwner(ctx context.Context, mediaID string) (string, error) {
	return f(ctx, mediaID)
}

type nopForwarder struct{}

func (nopForwarder) Forward(context.Context, *mapper.ForwardRequest) httpforwarder.Result {
	return httpforwarder.Result{StatusCode: 200}
}

// benchRouting takes one signed comment webhook per iteration through the
// handler in sync mode: verify, parse, store, route (owner looked up
// through cache → singleflight → resolver), build the delivery and record
// the attempt. newMedia picks the media of iteration i.
func benchRouting(b *testing.B, newMedia func(i int) string) {
	store := memstore.New()
	if err := store.CreateApp(context.Background(), &mapper.WorkerApp{ID: "a", Name: "a", URL: "http://127.0.0.1:1", Secret: "0123456789abcdef", AccountIDs: []string{accountA}, Enabled: true}); err != nil {
		b.Fatal(err)
	}
	m, err := mapper.New(store, mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken("v"),
		mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithSyncDelivery(true), mapper.WithRateLimit(0, 0, nil),
		mapper.WithForwarder(nopForwarder{}),
		mapper.WithResolver(resolverFunc(func(context.Context, string) (string, error) { return accountA, nil })))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	postSigned(b, m.Handler(), newMedia)
}

// postSigned prepares b.N signed comment webhooks (on the media newMedia
// picks), then times posting them to h one by one.
func postSigned(b *testing.B, h http.Handler, newMedia func(i int) string) {
	bodies := make([][]byte, b.N)
	sigs := make([]string, b.N)
	for i := range b.N {
		bodies[i] = mappertest.NewWebhook().Comment(accountA, newMedia(i), "179"+strconv.Itoa(i), "Love it! 😍").Bytes()
		sigs[i] = mappertest.Sign(metaSecret, bodies[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest(http.MethodPost, "/webhook/", bytes.NewReader(bodies[i]))
		req.Header.Set(workerauth.HeaderMetaSignature, sigs[i])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkRoutingCacheHit: every comment is on the same media.
func BenchmarkRoutingCacheHit(b *testing.B) {
	benchRouting(b, func(int) string { return "18000000000000001" })
}

// BenchmarkRoutingCacheMiss: every comment is on a new media.
func BenchmarkRoutingCacheMiss(b *testing.B) {
	benchRouting(b, func(i int) string { return fmt.Sprintf("18%016d", i) })
}

// BenchmarkIntake takes one signed comment webhook per iteration through
// the handler (async mode, memstore): rate limit, read, verify, parse,
// store, answer. With tracing on, every span is sampled and batched to an
// exporter that drops it, which is the cost an exporting service pays
// before the network; with tracing=ids, spans carry IDs only.
func BenchmarkIntake(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []mapper.Option
	}{
		{"tracing=off", nil},
		// What the reference server runs when it exports no traces.
		{"tracing=ids", []mapper.Option{mapper.WithTelemetry(otelx.IDs(), nil, nil)}},
		{"tracing=on", []mapper.Option{mapper.WithTelemetry(sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter())), nil, nil)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			opts := append([]mapper.Option{mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken("v"),
				mapper.WithOwnerPolicy(mapper.OwnerFromEntry), mapper.WithRateLimit(0, 0, nil)}, tc.opts...)
			m, err := mapper.New(memstore.New(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			postSigned(b, m.Handler(), func(int) string { return "18000000000000001" })
		})
	}
}
