package mapper_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

// latencies measures, per event, from the 200 Meta got to the worker
// app's receipt of the delivery.
type latencies struct {
	tag string // keeps the comment IDs of two runs apart
	mu  sync.Mutex
	ack map[string]time.Time
}

func (l *latencies) send(t *testing.T, h *harness, account string, i int) {
	body := mappertest.NewWebhook().Comment(account, "18000000000000001", fmt.Sprintf("c-%s-%s-%d", l.tag, account, i), "x").Bytes()
	resp, ir, raw := h.post(body, metaSecret)
	if resp.StatusCode != 200 {
		t.Errorf("webhook: %d %s", resp.StatusCode, raw)
		return
	}
	l.mu.Lock()
	l.ack[ir.EventID] = time.Now()
	l.mu.Unlock()
}

func (l *latencies) of(got []mappertest.Received) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, r := range got {
		if at, ok := l.ack[r.Header.Get(workerauth.HeaderEventID)]; ok {
			out = append(out, max(r.At.Sub(at), 0))
		}
	}
	slices.Sort(out)
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[(len(ds)-1)*p/100]
}

// load sends n webhooks for each account from 8 senders at once.
func load(t *testing.T, h *harness, l *latencies, n int, accounts ...string) {
	var wg sync.WaitGroup
	work := make(chan [2]any)
	for range 8 {
		wg.Go(func() {
			for w := range work {
				l.send(t, h, w[0].(string), w[1].(int))
			}
		})
	}
	for i := range n {
		for _, a := range accounts {
			work <- [2]any{a, i}
		}
	}
	close(work)
	wg.Wait()
}

// One app hangs, another is healthy: the healthy one's deliveries never
// wait behind a hanging attempt, the hanging app's circuit opens, and it
// closes once the app answers again.
func TestHangingAppDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	h := newHarness(t, mapper.WithDeliveryTimeout(timeout), mapper.WithRateLimit(0, 0, nil),
		mapper.WithRetryPolicy(mapper.RetryPolicy{MaxAttempts: 50, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
		mapper.WithBreaker(mapper.BreakerPolicy{ConsecutiveFailures: 3, FailureRate: 0.5, Window: 20, MinSamples: 10, Cooldown: 300 * time.Millisecond, MaxCooldown: 600 * time.Millisecond}))
	fast, _ := h.addApp("fast", accountA)
	slow, slowID := h.addApp("slow", accountB)
	slow.Respond(func(*http.Request) int { return 0 }) // hang until the client gives up
	const n = 100
	// Warm up (connections, the race detector's first passes), so that
	// the first measured run is not the slower for it.
	load(t, h, &latencies{tag: "warm", ack: map[string]time.Time{}}, 20, accountA)
	if _, err := fast.WaitFor(ctxTimeout(t), 20); err != nil {
		t.Fatal(err)
	}

	alone := &latencies{tag: "alone", ack: map[string]time.Time{}}
	load(t, h, alone, n, accountA)
	got, err := fast.WaitFor(ctxTimeout(t), 20+n)
	if err != nil {
		t.Fatal(err)
	}
	base := alone.of(got)

	shared := &latencies{tag: "shared", ack: map[string]time.Time{}}
	load(t, h, shared, n, accountA, accountB)
	got, err = fast.WaitFor(ctxTimeout(t), 20+2*n)
	if err != nil {
		dumpState(t, h)
		t.Fatal(err)
	}
	withHang := shared.of(got)
	t.Logf("healthy app alone:          p50 %v  p95 %v  p99 %v  max %v", pct(base, 50), pct(base, 95), pct(base, 99), pct(base, 100))
	t.Logf("healthy app beside a hang:  p50 %v  p95 %v  p99 %v  max %v  (p99 ratio %.2f)", pct(withHang, 50), pct(withHang, 95), pct(withHang, 99), pct(withHang, 100),
		float64(pct(withHang, 99))/float64(max(pct(base, 99), time.Microsecond)))
	// Had a healthy delivery queued behind a hanging attempt, it would
	// have waited for that attempt's timeout.
	if worst := pct(withHang, 100); worst >= timeout {
		t.Errorf("a healthy delivery took %v, as long as a hanging attempt (%v)", worst, timeout)
	}
	// Its attempts time out one by one; after three the circuit opens.
	deadline := time.Now().Add(20 * time.Second)
	for h.circuit(slowID) == "closed" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c := h.circuit(slowID); c == "closed" {
		t.Errorf("the hanging app's circuit is %s", c)
	}

	// The app comes back: the probe succeeds, the circuit closes, and
	// everything waiting is delivered.
	slow.Respond(nil)
	if _, err := slow.WaitFor(ctxTimeout(t), n); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for h.circuit(slowID) != "closed" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the close follows the probe's answer
	}
	if c := h.circuit(slowID); c != "closed" {
		t.Errorf("circuit after recovery: %s", c)
	}
}

// An app that is down gets no storm of attempts: its circuit opens after
// three failures and only probes go out until it is back; then everything
// is delivered and nothing died.
func TestDownAppNoStormThenDelivered(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	h := newHarness(t,
		mapper.WithRetryPolicy(mapper.RetryPolicy{MaxAttempts: 30, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}),
		mapper.WithBreaker(mapper.BreakerPolicy{ConsecutiveFailures: 3, FailureRate: 0.5, Window: 20, MinSamples: 10, Cooldown: 50 * time.Millisecond, MaxCooldown: 100 * time.Millisecond}))
	resp, raw := h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": "down", "url": "http://" + addr, "account_ids": []string{accountA}, "secret": "0123456789abcdef"})
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	var app struct{ ID string }
	_ = json.Unmarshal(raw, &app)
	const n = 20
	var ids []string
	for i := range n {
		ids = append(ids, h.accept(mappertest.NewWebhook().Comment(accountA, "1", fmt.Sprintf("c%d", i), "x").Bytes()))
	}
	start := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for h.circuit(app.ID) == "closed" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // waiting for the failures to open it
	}
	time.Sleep(400 * time.Millisecond) // the app stays down a while
	down := time.Since(start)
	mt := h.metrics()
	failed := mt.Counters.Attempts["retrying"] + mt.Counters.Attempts["dead"]

	// The app comes back on the same address.
	w := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(w.Close)
	back := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		proxyTo(rw, r, w.URL())
	})}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	go back.Serve(ln2)
	t.Cleanup(func() { back.Close() })
	upAt := time.Now()
	defer func() { t.Logf("all delivered %v after the app came back", time.Since(upAt).Round(time.Millisecond)) }()
	for _, id := range ids {
		if ev := h.settled(id); ev.Status != mapper.EventDelivered {
			t.Errorf("event %s: %s", id, ev.Status)
		}
	}
	// While down: the three failures that opened the circuit, what was in
	// flight then (the app's limit, 4), and about one probe per cooldown.
	limit := int64(3 + 4 + int(down/(50*time.Millisecond)) + 2)
	t.Logf("%d failed attempts in %v down for %d deliveries (limit %d)", failed, down.Round(time.Millisecond), n, limit)
	if failed > limit {
		t.Errorf("%d failed attempts while the app was down, want at most %d", failed, limit)
	}
}

// proxyTo forwards a request to the fake worker app, headers and body.
func proxyTo(w http.ResponseWriter, r *http.Request, target string) {
	req, _ := http.NewRequest(r.Method, target+r.URL.Path, r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
}

// Dead deliveries and unroutable events are replayed through the admin
// API, and the audit keeps the whole history.
func TestReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, appID := h.addApp("a", accountA)
	app.FailNext(400)
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "c1", "x").Bytes())
	if ev := h.settled(id); ev.Status != mapper.EventDead {
		t.Fatalf("event %s", ev.Status)
	}
	resp, raw := h.admin(http.MethodGet, "/deliveries/?status=dead&app_id="+appID, nil)
	var page struct {
		Deliveries []mapper.Delivery `json:"deliveries"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &page) != nil || len(page.Deliveries) != 1 {
		t.Fatalf("dead letters: %d %s", resp.StatusCode, raw)
	}
	dl := page.Deliveries[0]
	if resp, raw := h.admin(http.MethodPost, "/deliveries/"+dl.ID+"/replay", nil); resp.StatusCode != 200 {
		t.Fatalf("replay: %d %s", resp.StatusCode, raw)
	}
	if ev := h.settled(id); ev.Status != mapper.EventDelivered {
		t.Fatalf("after replay: %s", ev.Status)
	}
	resp, raw = h.admin(http.MethodGet, "/monitoring/webhook-logs/"+id, nil)
	var detail struct {
		Deliveries []struct {
			History []mapper.Attempt `json:"attempts_history"`
		} `json:"deliveries"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &detail) != nil {
		t.Fatalf("detail: %d %s", resp.StatusCode, raw)
	}
	if h := detail.Deliveries[0].History; len(h) != 2 || h[0].StatusCode != 400 || h[0].Outcome != mapper.DeliveryDead || h[1].StatusCode != 200 || h[1].Number != 2 {
		t.Errorf("history: %+v", h)
	}
	if resp, raw := h.admin(http.MethodPost, "/deliveries/"+dl.ID+"/replay", nil); resp.StatusCode != 409 {
		t.Errorf("replaying a delivered one: %d %s", resp.StatusCode, raw)
	}

	// Unroutable until an app exists for the account.
	uid := h.accept(mappertest.NewWebhook().Comment(accountC, "3", "c3", "for C").Bytes())
	if ev := h.settled(uid); ev.Status != mapper.EventUnroutable {
		t.Fatalf("event %s", ev.Status)
	}
	appC, _ := h.addApp("c", accountC)
	if resp, raw := h.admin(http.MethodPost, "/events/"+uid+"/replay", nil); resp.StatusCode != 200 {
		t.Fatalf("replay event: %d %s", resp.StatusCode, raw)
	}
	got, err := appC.WaitFor(ctxTimeout(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got[0].Body), "for C") {
		t.Errorf("delivered %s", got[0].Body)
	}
	if ev := h.settled(uid); ev.Status != mapper.EventDelivered || len(ev.Unroutable) != 0 {
		t.Errorf("after replay: %s %v", ev.Status, ev.Unroutable)
	}

	// Everything dead for one app, in one call.
	app.FailNext(400, 400, 400)
	var dead []string
	for i := range 3 {
		dead = append(dead, h.accept(mappertest.NewWebhook().Comment(accountA, "1", fmt.Sprintf("bulk%d", i), "x").Bytes()))
	}
	for _, id := range dead {
		h.settled(id)
	}
	resp, raw = h.admin(http.MethodPost, "/deliveries/replay", map[string]any{"app_id": appID})
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"replayed":3`) {
		t.Fatalf("bulk replay: %d %s", resp.StatusCode, raw)
	}
	for _, id := range dead {
		if ev := h.settled(id); ev.Status != mapper.EventDelivered {
			t.Errorf("event %s after bulk replay: %s", id, ev.Status)
		}
	}
}

// An ordered app gets its deliveries one at a time, in receive order, even
// when one of them needs retries.
func TestOrderedDelivery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(w.Close)
	resp, raw := h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": "o", "url": w.URL(), "account_ids": []string{accountA}, "secret": w.Secret(), "ordered": true})
	if resp.StatusCode != 201 || !strings.Contains(string(raw), `"ordered":true`) {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	w.FailNext(500, 500)
	var ids []string
	for i := range 8 {
		ids = append(ids, h.accept(mappertest.NewWebhook().Comment(accountA, "1", fmt.Sprintf("o%d", i), "x").Bytes()))
	}
	got, err := w.WaitFor(ctxTimeout(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range got {
		if r.Status == 200 {
			order = append(order, r.Header.Get(workerauth.HeaderEventID))
		}
	}
	if !slices.Equal(order, ids) {
		t.Errorf("delivered in order %v, want %v", order, ids)
	}
}

// Updating an app (say, to a new URL) closes its circuit at once.
func TestUpdateClosesCircuit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithBreaker(mapper.BreakerPolicy{ConsecutiveFailures: 2, FailureRate: 1, Window: 10, MinSamples: 10, Cooldown: time.Hour, MaxCooldown: time.Hour}))
	app, id := h.addApp("a", accountA)
	app.FailNext(503, 503)
	ev := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "c1", "x").Bytes())
	deadline := time.Now().Add(10 * time.Second)
	for h.circuit(id) != "open" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := h.circuit(id); c != "open" {
		t.Fatalf("circuit %s after two failures", c)
	}
	resp, raw := h.admin(http.MethodPut, "/worker-apps/"+id, map[string]any{"name": "a", "url": app.URL(), "account_ids": []string{accountA}})
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"circuit":"closed"`) {
		t.Fatalf("update: %d %s", resp.StatusCode, raw)
	}
	if e := h.settled(ev); e.Status != mapper.EventDelivered {
		t.Errorf("after the update: %s", e.Status)
	}
}

// TestAppAtItsLimitCostsNoExtraWrites sends a burst to an app that takes
// one delivery at a time: the deliveries the loop claims beyond the app's
// room wait in memory for its slot, rather than going back to the store
// one write each to be claimed again.
func TestAppAtItsLimitCostsNoExtraWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := mappertest.NewWorkerApp("secret-of-one-0123456789")
	t.Cleanup(w.Close)
	var inflight, most atomic.Int32
	w.Respond(func(*http.Request) int {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		return http.StatusOK
	})
	if resp, raw := h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": "one", "url": w.URL(), "account_ids": []string{accountA},
		"secret": w.Secret(), "max_concurrency": 1}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating the app: %d %s", resp.StatusCode, raw)
	}
	const n = 40
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, ir, raw := h.post(mappertest.NewWebhook().Comment(accountA, "1", fmt.Sprint("burst-", i), "x").Bytes(), metaSecret)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("POST: %d %s", resp.StatusCode, raw)
			}
			ids[i] = ir.EventID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if ev := h.settled(id); ev.Status != mapper.EventDelivered {
			t.Fatalf("event %s: %s", id, ev.Status)
		}
	}
	calls := h.store.calls()
	if calls["ReleaseDelivery"] != 0 || calls["RecordRoute"]+calls["RecordAttempt"] != n {
		t.Errorf("writes: %v; want no release and one record per delivery", calls)
	}
	if most.Load() != 1 || len(w.Received()) != n {
		t.Errorf("app got %d deliveries, at most %d at once; want %d, 1", len(w.Received()), most.Load(), n)
	}
}

// An operator who knows an app is back resets its circuit, and its backlog
// goes at once instead of at the next probe (an hour away here).
func TestCircuitResetDeliversBacklog(t *testing.T) {
	t.Parallel()
	h := newHarness(t,
		mapper.WithRetryPolicy(mapper.RetryPolicy{MaxAttempts: 30, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}),
		mapper.WithBreaker(mapper.BreakerPolicy{ConsecutiveFailures: 2, Cooldown: time.Hour}))
	w, appID := h.addApp("flaky", accountA)
	w.FailNext(503, 503) // then it is back
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "reset1", "x").Bytes())
	deadline := time.Now().Add(10 * time.Second)
	for h.circuit(appID) == "closed" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := h.circuit(appID); c != "open" {
		t.Fatalf("circuit after two failures: %s", c)
	}
	resp, raw := h.admin(http.MethodPost, "/worker-apps/"+appID+"/circuit:reset", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"circuit":"closed"`) {
		t.Fatalf("reset: %d %s", resp.StatusCode, raw)
	}
	if ev := h.settled(id); ev.Status != mapper.EventDelivered {
		t.Errorf("after the reset: %s", ev.Status)
	}
	if resp, _ := h.admin(http.MethodPost, "/worker-apps/nope/circuit:reset", nil); resp.StatusCode != 404 {
		t.Errorf("reset of a missing app: %d", resp.StatusCode)
	}
}
