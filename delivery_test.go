package mapper_test

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

func TestDeliveryRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		script       []int
		wantStatus   mapper.DeliveryStatus
		wantAttempts int
	}{
		{"500 three times then 200", []int{500, 500, 500}, mapper.DeliveryDelivered, 4},
		{"429 and 408 are retried", []int{429, 408}, mapper.DeliveryDelivered, 3},
		{"400 is permanent", []int{400}, mapper.DeliveryDead, 1},
		{"a redirect is not followed", []int{307}, mapper.DeliveryDead, 1},
		{"attempts are capped", []int{503, 503, 503, 503, 503, 503}, mapper.DeliveryDead, 5},
	}
	func(t *testing.T, newHarness func(*testing.T, ...mapper.Option) *harness) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := newHarness(t)
				h.start()
				app, _ := h.addApp("a", accountA)
				app.FailNext(tt.script...)
				id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Bytes())
				ev := h.settled(id)
				ds := h.deliveries(id)
				if len(ds) != 1 {
					t.Fatalf("%d deliveries", len(ds))
				}
				d := ds[0]
				if d.Status != tt.wantStatus || d.Attempts != tt.wantAttempts {
					t.Errorf("delivery %s after %d attempts, want %s after %d", d.Status, d.Attempts, tt.wantStatus, tt.wantAttempts)
				}
				wantEvent := mapper.EventDelivered
				if tt.wantStatus == mapper.DeliveryDead {
					wantEvent = mapper.EventDead
				}
				if ev.Status != wantEvent {
					t.Errorf("event %s, want %s", ev.Status, wantEvent)
				}
				as, err := h.store.attempts(d.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(as) != tt.wantAttempts {
					t.Fatalf("%d attempts recorded, want %d", len(as), tt.wantAttempts)
				}
				for i, a := range as {
					want := 200
					if i < len(tt.script) {
						want = tt.script[i]
					}
					if a.Number != i+1 || a.StatusCode != want {
						t.Errorf("attempt %d: number %d status %d, want status %d", i, a.Number, a.StatusCode, want)
					}
				}
				if got := app.Received(); got[len(got)-1].Header.Get(workerauth.HeaderAttempt) != strconv.Itoa(tt.wantAttempts) {
					t.Errorf("last attempt header %q", got[len(got)-1].Header.Get(workerauth.HeaderAttempt))
				}
			})
		}
	}(t, newHarnessNoRun)
}

func TestDisabledAppIsUnroutable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, id := h.addApp("a", accountA)
	f := false
	resp, raw := h.admin(http.MethodPut, "/worker-apps/"+id, map[string]any{"name": "a", "url": app.URL(), "account_ids": []string{accountA}, "enabled": f})
	if resp.StatusCode != 200 {
		t.Fatalf("disable: %d %s", resp.StatusCode, raw)
	}
	ev := h.settled(h.accept(mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Bytes()))
	if ev.Status != mapper.EventUnroutable || len(app.Received()) != 0 {
		t.Errorf("event %s, app got %d", ev.Status, len(app.Received()))
	}
}

func TestSyncMode(t *testing.T) { testSyncMode(t, newHarnessNoRun) }

func testSyncMode(t *testing.T, newHarness func(*testing.T, ...mapper.Option) *harness) {
	h := newHarness(t, mapper.WithSyncDelivery(true))
	appA, _ := h.addApp("a", accountA)
	appB, _ := h.addApp("b", accountB)
	appB.FailNext(400)
	body := mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Comment(accountB, "3", "4", "y").Bytes()
	resp, ir, raw := h.post(body, metaSecret)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	// No loop runs: the handler itself delivered before answering.
	if len(appA.Received()) != 1 || len(appB.Received()) != 1 {
		t.Fatalf("apps got %d and %d before the answer", len(appA.Received()), len(appB.Received()))
	}
	if ir.Status != string(mapper.EventDead) || len(ir.Deliveries) != 2 {
		t.Fatalf("answer %s", raw)
	}
	for _, d := range ir.Deliveries {
		want := mapper.DeliveryDelivered
		if len(appB.Received()) == 1 && d.StatusCode == 400 {
			want = mapper.DeliveryDead
		}
		if d.Status != string(want) {
			t.Errorf("delivery %+v, want %s", d, want)
		}
	}
	if ev, _ := h.store.GetEvent(context.Background(), ir.EventID); ev.Status != mapper.EventDead {
		t.Errorf("stored event %s", ev.Status)
	}

	// A retryable failure is left to the background loop.
	appA.FailNext(503)
	resp, ir, raw = h.post(mappertest.NewWebhook().Comment(accountA, "1", "5", "z").Bytes(), metaSecret)
	if resp.StatusCode != 200 || ir.Status != string(mapper.EventDispatched) || ir.Deliveries[0].Status != string(mapper.DeliveryPending) {
		t.Fatalf("answer %d %s", resp.StatusCode, raw)
	}
	h.start()
	if ev := h.settled(ir.EventID); ev.Status != mapper.EventDelivered {
		t.Errorf("after the loop: %s", ev.Status)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, _ := h.addApp("a", accountA)
	started, release := make(chan struct{}), make(chan struct{})
	app.Respond(func(*http.Request) int {
		close(started)
		<-release
		return 200
	})
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Bytes())
	<-started
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned with a delivery in flight")
	case <-time.After(50 * time.Millisecond):
		// Not a timing assertion: only a check that Run has not returned
		// early; the outcome below is what the test is about.
	}
	close(release)
	<-stopped
	ev, err := h.store.GetEvent(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Status != mapper.EventDelivered {
		t.Errorf("event %s after shutdown, want delivered", ev.Status)
	}
}

func TestRunOnlyOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addApp("a", accountA)
	// Once an event is delivered, the loop is certainly running.
	h.settled(h.accept(mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Bytes()))
	if err := h.m.Run(ctxTimeout(t)); err == nil {
		t.Error("a second Run started")
	}
}

// TestRouteRecordedWithItsAttempts checks how many writes a webhook costs:
// with a RouteRecorder, the route and the first attempts are one write;
// without, the route and each attempt are one each. A retry is a write of
// its own either way, and ordered apps always take the outbox, with no
// write to give their delivery back.
func TestRouteRecordedWithItsAttempts(t *testing.T) {
	t.Parallel()
	func(t *testing.T, newHarness func(*testing.T, ...mapper.Option) *harness) {
		h := newHarness(t)
		h.start()
		_, _ = h.addApp("a", accountA)
		appB, _ := h.addApp("b", accountB)
		appB.FailNext(503)
		one := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Bytes())
		if ev := h.settled(one); ev.Status != mapper.EventDelivered || ev.CompletedAt == nil {
			t.Fatalf("one-app event: %+v", ev)
		}
		want := map[string]int{"CreateEvent": 1, "RecordRoute": 1}
		if got := h.store.calls(); !maps.Equal(got, want) {
			t.Errorf("writes for one webhook to one app: %v, want %v", got, want)
		}

		two := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "3", "y").Comment(accountB, "4", "5", "z").Bytes())
		ev := h.settled(two)
		if ev.Status != mapper.EventDelivered || len(appB.Received()) != 2 {
			t.Fatalf("two-app event %s, app b got %d", ev.Status, len(appB.Received()))
		}
		as, err := h.store.attempts(h.deliveries(two)[1].ID)
		if err != nil || len(as) != 2 || as[0].StatusCode != 503 || as[1].StatusCode != 200 {
			t.Fatalf("attempts of b: %+v %v", as, err)
		}
		want = map[string]int{"CreateEvent": 2, "RecordRoute": 2, "RecordAttempt": 1}
		if got := h.store.calls(); !maps.Equal(got, want) {
			t.Errorf("writes after a two-app webhook with one retry: %v, want %v", got, want)
		}

		// An ordered app's delivery is stored unleased and claimed by the
		// loop: no write to give it back.
		w := mappertest.NewWorkerApp("secret-of-o-0123456789")
		t.Cleanup(w.Close)
		if resp, raw := h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": "o", "url": w.URL(), "account_ids": []string{accountC},
			"secret": w.Secret(), "ordered": true}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("creating the ordered app: %d %s", resp.StatusCode, raw)
		}
		if ev := h.settled(h.accept(mappertest.NewWebhook().Comment(accountC, "6", "7", "o").Bytes())); ev.Status != mapper.EventDelivered {
			t.Fatalf("ordered app's event: %s", ev.Status)
		}
		want["CreateEvent"]++
		want["RouteEvent"]++
		want["RecordAttempt"]++
		if got := h.store.calls(); !maps.Equal(got, want) {
			t.Errorf("writes after a webhook to an ordered app: %v, want %v", got, want)
		}
	}(t, newHarnessNoRun)
}

// bigAnswerForwarder answers every attempt with 1 MiB, as a Forwarder that
// reads the whole answer would.
type bigAnswerForwarder struct{}

func (bigAnswerForwarder) Forward(context.Context, *mapper.ForwardRequest) httpforwarder.Result {
	return httpforwarder.Result{StatusCode: 200, ResponseBody: bytes.Repeat([]byte("é"), 1<<19)}
}

// maxAnswer is how much of an app's answer the Mapper keeps (4 KiB, as
// documented).
const maxAnswer = 4 << 10

// The Mapper keeps 4 KiB of an answer, whatever the Forwarder returns, as
// valid UTF-8.
func TestAnswerCappedWhateverTheForwarder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithForwarder(bigAnswerForwarder{}))
	h.addApp("a", accountA)
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "17900000000000001", "x").Bytes())
	h.settled(id)
	ds := h.deliveries(id)
	as, err := h.store.attempts(ds[0].ID)
	if err != nil || len(as) != 1 {
		t.Fatalf("attempts %v %v", as, err)
	}
	if n := len(as[0].ResponseBody); n > maxAnswer || n < maxAnswer-4 || !utf8.ValidString(as[0].ResponseBody) {
		t.Errorf("stored %d bytes of the answer (valid UTF-8: %v), want about %d", n, utf8.ValidString(as[0].ResponseBody), maxAnswer)
	}
}
