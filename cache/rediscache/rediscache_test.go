package rediscache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/rediscache"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/cachetest"
	"github.com/chatico/mapper/testing/containertest"
	"github.com/chatico/mapper/testing/mappertest"
)

func TestMain(m *testing.M) { os.Exit(containertest.Main(m)) }

var _ mapper.Cache = (*rediscache.Cache)(nil)

func open(t *testing.T) *rediscache.Cache {
	t.Helper()
	c, err := rediscache.Open(containertest.RedisURL(t), rediscache.WithPrefix("test:"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	containertest.RedisURL(t) // skips here, once, when there is no Redis
	cachetest.Run(t, func(t *testing.T) mapper.Cache { return open(t) })
}

func TestBadURL(t *testing.T) {
	if _, err := rediscache.Open("redis://user:hunter2@[bad"); err == nil {
		t.Fatal("accepted")
	} else if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password in error: %v", err)
	}
}

// Redis stops in the middle: webhooks keep flowing, through the resolver.
func TestRedisDownWebhooksFlow(t *testing.T) {
	cache := open(t)
	ctr := containertest.RedisContainer(t)
	if ctr == nil {
		t.Skip("MAPPER_TEST_REDIS_URL is set: no container to stop")
	}
	graph := mappertest.NewGraphAPI("tok")
	t.Cleanup(graph.Close)
	for _, m := range []string{"101", "102", "103"} {
		graph.SetOwner(m, "1")
	}
	res, err := graphresolver.New("tok", graphresolver.WithBaseURL(graph.URL()))
	if err != nil {
		t.Fatal(err)
	}
	worker := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(worker.Close)
	store := memstore.New()
	if err := store.CreateApp(context.Background(), &mapper.WorkerApp{ID: "w", Name: "w", URL: worker.URL(), Secret: worker.Secret(), AccountIDs: []string{"1"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	m, err := mapper.New(store, mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"), mapper.WithResolver(res), mapper.WithAdminToken("adm"),
		mapper.WithCache(cache, 0, 0), mapper.WithOwnerPolicy(mapper.OwnerFromMedia))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	send := func(media, comment string, want int) {
		t.Helper()
		resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment("1", media, comment, "x").Request(srv.URL+"/webhook/", "s"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("webhook: %v %v", err, resp)
		}
		resp.Body.Close()
		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer wcancel()
		if _, err := worker.WaitFor(wctx, want); err != nil {
			t.Fatal(err)
		}
	}
	send("101", "c1", 1)
	send("101", "c2", 2) // from Redis
	if n := graph.CallsFor("101"); n != 1 {
		t.Fatalf("%d Graph calls with the owner in Redis, want 1", n)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
	defer stopCancel()
	timeout := 10 * time.Second
	if err := ctr.Stop(stopCtx, &timeout); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ctr.Start(context.Background()); err != nil {
			t.Errorf("restarting Redis: %v", err)
		}
	})
	send("102", "c3", 3)
	send("102", "c4", 4)
	mt, err := mappertest.ReadMetrics(m.Handler(), "adm")
	if err != nil {
		t.Fatal(err)
	}
	if got := mt.Counters.Resolver["cache_errors"]; got == 0 {
		t.Error("no cache errors counted while Redis was down")
	}
	if n := graph.CallsFor("102"); n < 1 {
		t.Errorf("media 102 not resolved while Redis was down")
	}
}
