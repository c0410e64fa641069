package bunstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/testing/containertest"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

const secret = "meta-secret"

// ledger is a worker app that counts every delivery per event, and notes
// when one delivery is being handled by two requests at once.
type ledger struct {
	mu       sync.Mutex
	byEvent  map[string]int
	inflight map[string]int
	overlap  atomic.Int32
	changed  chan struct{}
}

func newLedger() *ledger {
	return &ledger{byEvent: map[string]int{}, inflight: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (l *ledger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev, dl := r.Header.Get(workerauth.HeaderEventID), r.Header.Get(workerauth.HeaderDeliveryID)
	l.mu.Lock()
	l.inflight[dl]++
	if l.inflight[dl] > 1 {
		l.overlap.Add(1)
	}
	l.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // give a second holder the chance to overlap
	l.mu.Lock()
	l.inflight[dl]--
	l.byEvent[ev]++
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
}

func (l *ledger) waitEvents(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.byEvent)
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("worker saw %d of %d events", got, n)
		}
	}
}

func replica(t *testing.T, url string, opts ...mapper.Option) (*mapper.Mapper, *bunstore.Store, string) {
	t.Helper()
	s, err := bunstore.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := []mapper.Option{mapper.WithMetaSecrets(secret), mapper.WithVerifyToken("v"), mapper.WithAdminToken("adm"), mapper.WithRateLimit(0, 0, nil)}
	m, err := mapper.New(s, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, s, srv.URL
}

func runLoop(t *testing.T, m *mapper.Mapper) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Two Mappers on one PostgreSQL take webhooks at once: every event reaches
// the worker exactly once, and no delivery is ever sent by both.
func TestTwoReplicasOnePostgres(t *testing.T) {
	url := containertest.PostgresURL(t)
	worker := newLedger()
	wsrv := httptest.NewServer(worker)
	t.Cleanup(wsrv.Close)
	m1, s1, url1 := replica(t, url)
	m2, _, url2 := replica(t, url)
	if err := s1.CreateApp(context.Background(), &mapper.WorkerApp{ID: "w", Name: "w", URL: wsrv.URL, Secret: "0123456789abcdef", AccountIDs: []string{"1", "2"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	runLoop(t, m1)
	runLoop(t, m2)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			target := []string{url1, url2}[i%2]
			body := mappertest.NewWebhook().Comment([]string{"1", "2"}[i%2], "10", fmt.Sprintf("c%d", i), "x").Bytes()
			resp, err := http.DefaultClient.Do(mappertest.SignedRequest(target+"/webhook/", secret, body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("webhook %d: %d", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	worker.waitEvents(t, n)
	settled(t, s1, n)
	worker.mu.Lock()
	defer worker.mu.Unlock()
	for ev, c := range worker.byEvent {
		if c != 1 {
			t.Errorf("event %s delivered %d times", ev, c)
		}
	}
	if o := worker.overlap.Load(); o != 0 {
		t.Errorf("%d deliveries were in flight twice at once", o)
	}
	a, b := delivered(t, m1), delivered(t, m2)
	t.Logf("replica 1 delivered %d, replica 2 delivered %d", a, b)
	if a+b != n {
		t.Errorf("replicas delivered %d+%d, want %d", a, b, n)
	}
}

// A replica claims work and dies holding the lease: another replica takes
// the work over when the lease ends and delivers it, once, and the dead
// holder's late write is refused.
func TestLeaseHolderDies(t *testing.T) {
	url := containertest.PostgresURL(t)
	worker := newLedger()
	wsrv := httptest.NewServer(worker)
	t.Cleanup(wsrv.Close)
	// The intake replica takes the webhook but runs no loop.
	_, s, intake := replica(t, url)
	if err := s.CreateApp(context.Background(), &mapper.WorkerApp{ID: "w", Name: "w", URL: wsrv.URL, Secret: "0123456789abcdef", AccountIDs: []string{"1"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment("1", "10", "c1", "x").Request(intake+"/webhook/", secret))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", err, resp)
	}
	resp.Body.Close()
	// The doomed replica claims it with a one-second lease, then vanishes.
	claimed, err := s.ClaimEvents(context.Background(), time.Now(), 10, time.Second)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	// The survivor polls often and holds short leases.
	survivor, _, _ := replica(t, url, mapper.WithPollInterval(50*time.Millisecond), mapper.WithDeliveryTimeout(200*time.Millisecond), mapper.WithLease(3*time.Second))
	runLoop(t, survivor)
	worker.waitEvents(t, 1)
	settled(t, s, 1)
	late := claimed[0]
	late.Status = mapper.EventUnroutable
	if err := s.RouteEvent(context.Background(), &late, nil, nil); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("the dead holder's late write: %v, want ErrLeaseLost", err)
	}
	worker.mu.Lock()
	defer worker.mu.Unlock()
	if worker.byEvent[claimed[0].ID] != 1 {
		t.Errorf("delivered %d times", worker.byEvent[claimed[0].ID])
	}
}

// settled waits until n events are delivered in the store: the record of
// an attempt follows the worker's answer, so the worker seeing everything
// is not enough.
func settled(t *testing.T, s *bunstore.Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var delivered int64
		if err := s.DB().QueryRowContext(context.Background(), "SELECT COUNT(*) FROM mapper_events WHERE status = 'delivered'").Scan(&delivered); err != nil {
			t.Fatal(err)
		}
		if delivered >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered", delivered, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A webhook taken by one replica wakes another through LISTEN/NOTIFY: the
// other delivers it at once although its poll is an hour away.
func TestNotifyWakesOtherReplica(t *testing.T) {
	url := containertest.PostgresURL(t)
	worker := newLedger()
	wsrv := httptest.NewServer(worker)
	t.Cleanup(wsrv.Close)
	_, s, intake := replica(t, url) // takes webhooks, runs no loop
	if err := s.CreateApp(context.Background(), &mapper.WorkerApp{ID: "w", Name: "w", URL: wsrv.URL, Secret: "0123456789abcdef", AccountIDs: []string{"1"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	sleeper, _, _ := replica(t, url, mapper.WithPollInterval(time.Hour))
	runLoop(t, sleeper)
	// Let the first poll and the LISTEN happen before the webhook comes,
	// so that only a notification can bring the sleeper to it.
	settle := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(settle) {
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment("1", "10", "c1", "x").Request(intake+"/webhook/", secret))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", err, resp)
	}
	resp.Body.Close()
	worker.waitEvents(t, 1)
	t.Logf("delivered by the other replica %v after the webhook", time.Since(start).Round(time.Millisecond))
}

// delivered is how many attempts a replica delivered, from its metrics.
func delivered(t *testing.T, m *mapper.Mapper) int {
	t.Helper()
	mt, err := mappertest.ReadMetrics(m.AdminHandler(), "adm")
	if err != nil {
		t.Fatal(err)
	}
	return int(mt.Counters.Attempts["delivered"])
}
