package mapper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
)

const (
	metaSecret  = "meta-app-secret"
	igSecret    = "instagram-login-app-secret"
	verifyToken = "verify-me"
	adminToken  = "admin-token-for-tests"
	graphToken  = "graph-token"
	accountA    = "17841400000000001"
	accountB    = "17841400000000002"
	accountC    = "17841400000000003" // no worker app
)

// watchedStore is a memstore that announces every write of the outbox, so
// tests wait for state changes instead of sleeping.
type watchedStore struct {
	*memstore.Store
	mu      sync.Mutex
	changed chan struct{}
	writes  map[string]int  // calls by method
	leased  map[string]bool // events stored leased (handed over), by ID
	// claims counts the outbox's event claims; each first waits
	// claimDelay (set before Run), as a claim queued behind a database's
	// commit does.
	claims     atomic.Int64
	claimDelay time.Duration
}

func (s *watchedStore) ClaimEvents(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mapper.Event, error) {
	s.claims.Add(1)
	time.Sleep(s.claimDelay)
	return s.Store.ClaimEvents(ctx, now, limit, lease)
}

func newWatchedStore() *watchedStore {
	return &watchedStore{Store: memstore.New(), changed: make(chan struct{}), writes: map[string]int{}, leased: map[string]bool{}}
}

func (s *watchedStore) count(method string) {
	s.mu.Lock()
	s.writes[method]++
	s.mu.Unlock()
}

// calls returns how often each write method was called.
func (s *watchedStore) calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.writes)
}

func (s *watchedStore) signal() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// storedLeased reports whether the event was stored leased to the
// Mapper, that is handed over to its loop rather than left to the outbox.
func (s *watchedStore) storedLeased(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leased[id]
}

func (s *watchedStore) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *watchedStore) CreateEvent(ctx context.Context, ev *mapper.Event) error {
	s.count("CreateEvent")
	s.mu.Lock()
	s.leased[ev.ID] = ev.LeaseToken != ""
	s.mu.Unlock()
	defer s.signal()
	return s.Store.CreateEvent(ctx, ev)
}

// RouteEvent is counted as RecordRoute when it carries attempts (a route
// written with its first attempts), and RecordAttempt as ReleaseDelivery
// when it carries none (a claim given back).
func (s *watchedStore) RouteEvent(ctx context.Context, ev *mapper.Event, ds []mapper.Delivery, as []mapper.Attempt) error {
	if len(as) > 0 {
		s.count("RecordRoute")
	} else {
		s.count("RouteEvent")
	}
	defer s.signal()
	return s.Store.RouteEvent(ctx, ev, ds, as)
}

func (s *watchedStore) RecordAttempt(ctx context.Context, d *mapper.Delivery, a *mapper.Attempt) error {
	if a == nil {
		s.count("ReleaseDelivery")
	} else {
		s.count("RecordAttempt")
	}
	defer s.signal()
	return s.Store.RecordAttempt(ctx, d, a)
}

// attempts reads the attempts of a delivery.
func (s *watchedStore) attempts(id string) ([]mapper.Attempt, error) {
	page, err := s.FindDeliveries(context.Background(), mapper.DeliveryQuery{ID: id, Attempts: true})
	if err != nil || len(page.Items) != 1 {
		return nil, fmt.Errorf("delivery %s: %d found, %v", id, len(page.Items), err)
	}
	return page.Items[0].History, nil
}

type harness struct {
	t     *testing.T
	store *watchedStore
	graph *mappertest.GraphAPI
	res   *graphresolver.Resolver
	m     *mapper.Mapper
	srv   *httptest.Server
	stop  func() // stops Run and waits for it
}

// newHarness starts a Mapper on a watched memstore with a fake Graph API,
// serves its handler, and runs its loop unless noRun is among the options
// (pass run=false through newHarnessNoRun).
func newHarness(t *testing.T, opts ...mapper.Option) *harness {
	h := newHarnessNoRun(t, opts...)
	h.start()
	return h
}

func newHarnessNoRun(t *testing.T, opts ...mapper.Option) *harness {
	t.Helper()
	return newHarnessOn(t, opts...)
}

func newHarnessOn(t *testing.T, opts ...mapper.Option) *harness {
	t.Helper()
	h := &harness{t: t, store: newWatchedStore(), graph: mappertest.NewGraphAPI(graphToken)}
	t.Cleanup(h.graph.Close)
	res, err := graphresolver.New(graphToken, graphresolver.WithBaseURL(h.graph.URL()),
		graphresolver.WithThrottleBackoff(20*time.Millisecond, 100*time.Millisecond), graphresolver.WithTokenProbe(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	h.res = res
	base := []mapper.Option{
		mapper.WithMetaSecrets(metaSecret, igSecret),
		mapper.WithVerifyToken(verifyToken),
		mapper.WithAdminToken(adminToken),
		mapper.WithResolver(res),
		mapper.WithRetryPolicy(mapper.RetryPolicy{MaxAttempts: 5, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}),
		mapper.WithDeliveryTimeout(5 * time.Second),
		mapper.WithLease(20 * time.Second),
		mapper.WithParkInterval(20 * time.Millisecond),
	}
	h.m, err = mapper.New(h.store, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.m.Close() })
	h.srv = httptest.NewServer(contractCheck(t, h.m.Handler()))
	t.Cleanup(h.srv.Close)
	h.stop = func() {}
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("Run: %v", err)
			}
		})
	}
	h.t.Cleanup(h.stop)
}

// addApp registers a fake worker app for accounts through the admin API.
func (h *harness) addApp(name string, accounts ...string) (*mappertest.WorkerApp, string) {
	h.t.Helper()
	return h.addFieldApp(name, nil, accounts...)
}

// addFieldApp registers a fake worker app for some fields of accounts
// (nil: every field).
func (h *harness) addFieldApp(name string, fields []string, accounts ...string) (*mappertest.WorkerApp, string) {
	h.t.Helper()
	w := mappertest.NewWorkerApp("secret-of-" + name + "-0123456789")
	h.t.Cleanup(w.Close)
	resp, body := h.admin(http.MethodPost, "/worker-apps/", map[string]any{
		"name": name, "url": w.URL(), "account_ids": accounts, "secret": w.Secret(), "fields": fields,
	})
	if resp.StatusCode != http.StatusCreated {
		h.t.Fatalf("creating app %s: %d %s", name, resp.StatusCode, body)
	}
	var app mapper.WorkerApp
	if err := json.Unmarshal(body, &app); err != nil {
		h.t.Fatal(err)
	}
	return w, app.ID
}

func (h *harness) admin(method, path string, v any) (*http.Response, []byte) {
	h.t.Helper()
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			h.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// post sends body signed with secret and decodes a 200 answer.
func (h *harness) post(body []byte, secret string) (*http.Response, intakeResponse, []byte) {
	h.t.Helper()
	resp, raw := h.do(mappertest.SignedRequest(h.srv.URL+"/webhook/", secret, body))
	var ir intakeResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &ir); err != nil {
			h.t.Fatalf("decoding %s: %v", raw, err)
		}
	}
	return resp, ir, raw
}

// accept posts a body that must be accepted and returns its event ID.
func (h *harness) accept(body []byte) string {
	h.t.Helper()
	resp, ir, raw := h.post(body, metaSecret)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("POST: %d %s", resp.StatusCode, raw)
	}
	return ir.EventID
}

// waitEvent waits until the event satisfies ok, or fails the test after a
// generous deadline (a hang, not a timing assertion).
func (h *harness) waitEvent(id string, ok func(*mapper.Event) bool) *mapper.Event {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := h.store.wait()
		ev, err := h.store.GetEvent(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if ok(ev) {
			return ev
		}
		select {
		case <-ch:
		case <-deadline:
			h.t.Fatalf("event %s stuck in %s (last error %q)", id, ev.Status, ev.LastError)
		}
	}
}

// settled waits for an event to reach a terminal status.
func (h *harness) settled(id string) *mapper.Event {
	h.t.Helper()
	return h.waitEvent(id, func(e *mapper.Event) bool { return e.Status.Terminal() })
}

func (h *harness) deliveries(eventID string) []mapper.Delivery {
	h.t.Helper()
	page, err := h.store.FindDeliveries(context.Background(), mapper.DeliveryQuery{EventID: eventID, Limit: 500})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(page.Items)
	return page.Items
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// dumpState logs what the store holds, for a test that is about to fail.
func dumpState(t *testing.T, h *harness) {
	st, _ := h.store.Stats(context.Background(), time.Time{})
	t.Logf("stats %+v counters %+v", st, h.metrics().Counters)
	page, _ := h.store.FindDeliveries(context.Background(), mapper.DeliveryQuery{Status: mapper.DeliveryPending, Limit: 5})
	for _, d := range page.Items {
		t.Logf("pending %s app %s next %v (in %v) attempts %d err %q", d.ID, d.AppID, d.NextAttemptAt, time.Until(d.NextAttemptAt), d.Attempts, d.LastError)
	}
}

// intakeResponse is the body of a 200 answer to a webhook POST.
type intakeResponse struct {
	EventID    string `json:"event_id"`
	Status     string `json:"status"`
	Deliveries []struct {
		DeliveryID string `json:"delivery_id"`
		AppID      string `json:"app_id"`
		Status     string `json:"status"`
		StatusCode int    `json:"status_code"`
		Error      string `json:"error"`
	} `json:"deliveries"`
}

// metrics reads GET /monitoring/metrics.
func (h *harness) metrics() *mappertest.Metrics {
	h.t.Helper()
	m, err := mappertest.ReadMetrics(h.m.Handler(), adminToken)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// circuit reads an app's circuit from GET /worker-apps/{id}.
func (h *harness) circuit(appID string) string {
	h.t.Helper()
	resp, raw := h.admin(http.MethodGet, "/worker-apps/"+appID, nil)
	var app struct {
		Circuit string `json:"circuit"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &app) != nil {
		h.t.Fatalf("GET /worker-apps/%s: %d %s", appID, resp.StatusCode, raw)
	}
	return app.Circuit
}
