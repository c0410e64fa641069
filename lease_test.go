package mapper_test

import (
	"context"
	"fmt"
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

// Webhooks arriving all the time wake the loop for each; the poll, which
// finds work stored by other replicas or left by a dead one, must still
// come on time.
func TestPollNotPostponedByLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithPollInterval(100*time.Millisecond))
	w, _ := h.addApp("a", accountA)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			h.post(mappertest.NewWebhook().Comment(accountA, "1", fmt.Sprint("load", i), "x").Bytes(), metaSecret)
		}
	}()
	defer func() { close(stop); <-done }()
	// Work another process stored: due now, leased to nobody.
	body := mappertest.NewWebhook().Comment(accountA, "1", "elsewhere", "y").Bytes()
	ev := &mapper.Event{ID: "evt_elsewhere", ReceivedAt: time.Now(), Object: "instagram", Payload: body, Status: mapper.EventPending,
		NextAttemptAt: time.Now(), AccountIDs: []string{accountA}, Items: []mapper.EventItem{{Key: accountA + "/comments/elsewhere", Field: "comments", Kind: "change"}}}
	time.Sleep(300 * time.Millisecond) // the load is on
	if err := h.store.Store.CreateEvent(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if got, _ := h.store.GetEvent(t.Context(), ev.ID); got != nil && got.Status == mapper.EventDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored work not claimed under load; the app got %d deliveries", len(w.Received()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
