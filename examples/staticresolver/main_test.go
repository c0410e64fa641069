package main

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/rediscache"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/containertest"
	"github.com/chatico/mapper/testing/mappertest"
)

func TestMain(m *testing.M) { os.Exit(containertest.Main(m)) }

func TestReadTable(t *testing.T) {
	tab, err := ReadTable(strings.NewReader("# media,owner\n18000000000000001, 17841400000000002\n"))
	if err != nil || tab["18000000000000001"] != "17841400000000002" {
		t.Fatalf("%v %v", tab, err)
	}
	if _, err := ReadTable(strings.NewReader("1,2,3\n")); err == nil {
		t.Error("a line of three fields was read")
	}
}

// A comment on media the table places goes to the owner's app, through
// the Redis cache; one on media it does not know goes by entry.id.
func TestRoutesThroughTheTable(t *testing.T) {
	cache, err := rediscache.Open(containertest.RedisURL(t), rediscache.WithPrefix("test:"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	owner := mappertest.NewWorkerApp("owner-secret-0123456789")
	defer owner.Close()
	subscriber := mappertest.NewWorkerApp("subscriber-secret-0123")
	defer subscriber.Close()
	store := memstore.New()
	ctx := context.Background()
	for _, a := range []struct {
		w       *mappertest.WorkerApp
		account string
	}{{owner, "17841400000000002"}, {subscriber, "17841400000000001"}} {
		if err := store.CreateApp(ctx, &mapper.WorkerApp{Name: a.account, URL: a.w.URL(), Secret: a.w.Secret(), AccountIDs: []string{a.account}, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := mapper.New(store, mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"),
		mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithResolver(Table{"18000000000000001": "17841400000000002"}),
		mapper.WithCache(cache, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = m.Run(rctx) }()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, body := range [][]byte{
		mappertest.NewWebhook().Comment("17841400000000001", "18000000000000001", "17900000000000001", "owned by 2").Bytes(),
		mappertest.NewWebhook().Comment("17841400000000001", "18000000000000404", "17900000000000002", "unknown media").Bytes(),
	} {
		resp, err := srv.Client().Do(mappertest.SignedRequest(srv.URL+"/webhook/", "s", body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", err, resp)
		}
		resp.Body.Close()
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if got, err := owner.WaitFor(wctx, 1); err != nil || !strings.Contains(string(got[0].Body), "owned by 2") {
		t.Fatalf("owner: %v", err)
	}
	if got, err := subscriber.WaitFor(wctx, 1); err != nil || !strings.Contains(string(got[0].Body), "unknown media") {
		t.Fatalf("subscriber: %v", err)
	}
	if v, ok, err := cache.Get(ctx, "mapper:owner:18000000000000001"); err != nil || !ok || v != "17841400000000002" {
		t.Errorf("owner in Redis: %q %v %v", v, ok, err)
	}
}
