package mapper_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// TestStopHard: Stop waits for the work in flight until its context ends,
// then cancels it; the deliveries cut short are not counted as attempts,
// and go back to the store due now and unleased, so that a restart or
// another replica takes them at once rather than after the lease.
func TestStopHard(t *testing.T) {
	t.Parallel()
	func(t *testing.T, newHarness func(*testing.T, ...mapper.Option) *harness) {
		h := newHarness(t)
		h.start()
		app, appID := h.addApp("hangs", accountA)
		arrived := make(chan struct{}, 16)
		app.Respond(func(*http.Request) int { arrived <- struct{}{}; return 0 })
		var events []string
		// More than the breaker's 5 failures in a row: were the cut attempts
		// counted as failures, the circuit would open.
		for i := range 6 {
			c := fmt.Sprintf("1790000000000000%d", i)
			events = append(events, h.accept(mappertest.NewWebhook().Comment(accountA, "1", c, "x").Bytes()))
		}
		for range events {
			select {
			case <-arrived:
			case <-time.After(20 * time.Second):
				t.Fatal("the deliveries never reached the app")
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := h.m.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want the deadline's error", err)
		}
		now := time.Now()
		for _, id := range events {
			ds := h.deliveries(id)
			if len(ds) != 1 || ds[0].Status != mapper.DeliveryPending || ds[0].Attempts != 0 || ds[0].NextAttemptAt.After(now) {
				for _, d := range ds {
					t.Errorf("event %s: delivery %s %s after %d attempts, due %v: want one pending, unattempted, due now", id, d.ID, d.Status, d.Attempts, d.NextAttemptAt)
				}
			}
		}
		claimed, err := h.store.ClaimDeliveries(context.Background(), now, 10, time.Minute, nil)
		if err != nil || len(claimed) != len(events) {
			t.Errorf("claimable at once after the stop: %d of %d (%v)", len(claimed), len(events), err)
		}
		if a := h.metrics().Counters.Attempts; a["delivered"]+a["retrying"]+a["dead"] != 0 {
			t.Errorf("cut attempts counted: %v", a)
		}
		resp, raw := h.admin(http.MethodGet, "/worker-apps/"+appID, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"circuit":"closed"`) {
			t.Errorf("the cut attempts counted against the app: %s", raw)
		}
	}(t, newHarnessNoRun)
}

// TestStopGraceful: work that ends before Stop's context does is finished
// and recorded, and Stop returns nil.
func TestStopGraceful(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, _ := h.addApp("slowish", accountA)
	arrived := make(chan struct{}, 1)
	app.Respond(func(*http.Request) int {
		arrived <- struct{}{}
		time.Sleep(100 * time.Millisecond)
		return http.StatusOK
	})
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "17900000000000001", "x").Bytes())
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.m.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if ds := h.deliveries(id); len(ds) != 1 || ds[0].Status != mapper.DeliveryDelivered || ds[0].Attempts != 1 {
		t.Errorf("deliveries %+v, want one delivered", ds)
	}
	if err := h.m.Stop(ctx); err != nil {
		t.Errorf("Stop after Run returned: %v", err)
	}
}
