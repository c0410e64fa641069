package mapper_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// A viral post: 10,000 comments on one new media arrive at once, in 100
// concurrent webhooks. The owner is looked up once.
func TestTenThousandCommentsOneGraphCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithRateLimit(0, 0, nil))
	const media = "18000000000000777"
	h.graph.SetOwner(media, accountA)
	h.graph.SetLatency(100 * time.Millisecond) // misses pile up behind the first call
	app, _ := h.addApp("a", accountA)
	const webhooks, perHook = 100, 100
	var wg sync.WaitGroup
	for i := range webhooks {
		wg.Go(func() {
			w := mappertest.NewWebhook()
			for j := range perHook {
				w.Comment(accountA, media, fmt.Sprintf("179%05d%05d", i, j), "🔥")
			}
			resp, err := http.DefaultClient.Do(w.Request(h.srv.URL+"/webhook/", metaSecret))
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
	got, err := app.WaitFor(ctxTimeout(t), webhooks)
	if err != nil {
		t.Fatal(err)
	}
	comments := 0
	for _, r := range got {
		comments += strings.Count(string(r.Body), `"field":"comments"`)
	}
	if comments != webhooks*perHook {
		t.Errorf("%d comments delivered, want %d", comments, webhooks*perHook)
	}
	if n := h.graph.Calls(); n != 1 {
		t.Errorf("%d Graph API calls for 10,000 comments on one media, want 1", n)
	}
	c := h.metrics().Counters.Resolver
	t.Logf("resolver counters: %v", c)
}

// Meta throttles: the resolver stops calling for its backoff, the events
// wait (saying why), and all are delivered once Meta lets calls through.
func TestThrottledGraphNoStormThenRecovery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  mappertest.GraphError
	}{
		{"app limit (4)", mappertest.GraphError{HTTPStatus: 400, Code: 4, Message: "Application request limit reached"}},
		{"BUC limit (80002) with usage at 100%", mappertest.GraphError{HTTPStatus: 400, Code: 80002, Message: "There have been too many calls to this Instagram account",
			Header: http.Header{"X-Business-Use-Case-Usage": {`{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":40,"total_time":40}]}`},
				"X-App-Usage": {`{"call_count":64,"total_time":20,"total_cputime":20}`}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One event at a time, so that no lookups are already in flight
			// when the first throttling answer comes (with more, up to the
			// concurrency can be; a bounded burst, not a storm).
			h := newHarness(t, mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithConcurrency(1, 0))
			app, _ := h.addApp("a", accountA)
			h.graph.ThrottleAfter(0, tc.err)
			const n = 30
			var ids []string
			start := time.Now()
			for i := range n {
				media := fmt.Sprintf("1800000000000%04d", i) // all different: no coalescing helps
				h.graph.SetOwner(media, accountA)
				ids = append(ids, h.accept(mappertest.NewWebhook().Comment(accountA, media, fmt.Sprintf("c%d", i), "x").Bytes()))
			}
			// Every event is parked, saying it waits for Meta.
			for _, id := range ids {
				ev := h.waitEvent(id, func(e *mapper.Event) bool { return e.LastError != "" })
				if ev.Status != mapper.EventPending || !strings.Contains(ev.LastError, "throttled") && !strings.Contains(ev.LastError, "80002") && !strings.Contains(ev.LastError, "error 4") {
					t.Errorf("event %s: %s %q", id, ev.Status, ev.LastError)
				}
			}
			if hl := healthStatus(t, h); hl != "degraded" {
				t.Errorf("health while throttled: %s", hl)
			}
			elapsed := time.Since(start)
			calls := h.graph.Calls()
			// The resolver waits at least its 20 ms floor between calls while
			// throttled: without it, each of the 30 events would have called.
			if limit := 1 + int(elapsed/(20*time.Millisecond)); calls > limit || calls >= n {
				t.Errorf("%d Graph calls in %v while throttled (at most %d, and fewer than the %d events)", calls, elapsed, limit, n)
			}
			h.graph.Recover()
			for _, id := range ids {
				if ev := h.settled(id); ev.Status != mapper.EventDelivered {
					t.Errorf("event %s after recovery: %s %q", id, ev.Status, ev.LastError)
				}
			}
			if len(app.Received()) != n {
				t.Errorf("%d deliveries, want %d", len(app.Received()), n)
			}
			t.Logf("%d Graph calls for %d events, %d while throttled", h.graph.Calls(), n, calls)
		})
	}
}

func healthStatus(t *testing.T, h *harness) string {
	t.Helper()
	resp, raw := h.do(mustRequest(t, http.MethodGet, h.srv.URL+"/monitoring/health", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("health %d %s", resp.StatusCode, raw)
	}
	switch {
	case strings.Contains(string(raw), `"status":"degraded"`):
		return "degraded"
	case strings.Contains(string(raw), `"status":"ok"`):
		return "ok"
	}
	return string(raw)
}

// The token expires: health says so, events wait without dying, and they
// flow once the token is replaced.
func TestExpiredTokenEventsWaitThenFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithRetryPolicy(mapper.RetryPolicy{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}))
	app, _ := h.addApp("a", accountA)
	h.graph.SetOwner("18000000000000001", accountA)
	h.graph.SetToken("the-refreshed-token") // ours is now rejected (190/463)
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "18000000000000001", "c1", "x").Bytes())
	// Parked again and again, past the retry policy's two attempts.
	ev := h.waitEvent(id, func(e *mapper.Event) bool { return e.RouteAttempts >= 4 })
	if ev.Status != mapper.EventPending || !strings.Contains(ev.LastError, "190") {
		t.Fatalf("event %s %q", ev.Status, ev.LastError)
	}
	if hl := healthStatus(t, h); hl != "degraded" {
		t.Errorf("health with a rejected token: %s", hl)
	}
	if err := h.res.SetToken("the-refreshed-token"); err != nil {
		t.Fatal(err)
	}
	if ev := h.settled(id); ev.Status != mapper.EventDelivered {
		t.Fatalf("after the new token: %s %q", ev.Status, ev.LastError)
	}
	if len(app.Received()) != 1 {
		t.Errorf("%d deliveries", len(app.Received()))
	}
	if hl := healthStatus(t, h); hl != "ok" {
		t.Errorf("health after the new token: %s", hl)
	}
}
