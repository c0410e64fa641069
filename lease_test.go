package mapper_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
)

// An attempt that outlasts the lease keeps its delivery: the heartbeat
// extends the lease, so a second replica polling the same store does not
// send it again.
func TestHeartbeatKeepsLongAttempts(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			time.Sleep(4500 * time.Millisecond) // past the 3-second lease
		}
	}))
	t.Cleanup(app.Close)
	store := memstore.New()
	if err := store.CreateApp(t.Context(), &mapper.WorkerApp{ID: "slow", Name: "slow", URL: app.URL, Secret: "0123456789abcdef",
		AccountIDs: []string{accountA}, Enabled: true, Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	replica := func() *mapper.Mapper {
		m, err := mapper.New(store, mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken(verifyToken),
			mapper.WithLease(3*time.Second), mapper.WithPollInterval(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		t.Cleanup(func() { stop(); <-done; m.Close() })
		return m
	}
	first := replica()
	replica() // the other replica, polling every 50 ms
	srv := httptest.NewServer(first.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment(accountA, "1", "long", "x").Request(srv.URL+"/webhook/", metaSecret))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", err, resp)
	}
	resp.Body.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		page, _ := store.ListEvents(t.Context(), mapper.EventQuery{Status: mapper.EventDelivered})
		if len(page.Items) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered; %d attempts", hits.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a second sending would show by now
	if n := hits.Load(); n != 1 {
		t.Errorf("the app got %d requests, want 1", n)
	}
}
