package bunstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/testing/containertest"
)

// TestConcurrentRecordRoutes sends many RouteEvents with attempts at once, so that they
// share batches (PostgreSQL pipelines them in one transaction, SQLite's
// committer shares one): a lost lease or a bad write fails alone, and
// every other route is stored with its delivery and attempt.
func TestConcurrentRecordRoutes(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { concurrentRecordRoutes(t, newSQLite(t)) })
	t.Run("postgres", func(t *testing.T) {
		containertest.PostgresURL(t)
		concurrentRecordRoutes(t, newPostgres(t))
	})
}

func concurrentRecordRoutes(t *testing.T, s *bunstore.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const n = 60
	for i := range n {
		ev := &mapper.Event{ID: fmt.Sprintf("ev-%02d", i), ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
			Payload: []byte(`{"object":"instagram","entry":[]}`), AccountIDs: []string{"1"}, Items: []mapper.EventItem{{Key: fmt.Sprint("k", i)}}}
		if err := s.CreateEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ClaimEvents(ctx, at, n, time.Minute)
	if err != nil || len(evs) != n {
		t.Fatalf("claimed %d: %v", len(evs), err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range evs {
		wg.Go(func() {
			ev := &evs[i]
			done := at.Add(time.Second)
			ev.Status, ev.Owners, ev.RoutedAt, ev.RouteAttempts, ev.CompletedAt = mapper.EventDelivered, []string{"1"}, &done, 1, &done
			d := mapper.Delivery{ID: "d-" + ev.ID, EventID: ev.ID, AppID: "app", OwnerIDs: []string{"1"}, Body: []byte("{}"),
				Status: mapper.DeliveryDelivered, Attempts: 1, CreatedAt: done, CycleStart: done, CompletedAt: &done, LastStatusCode: 200}
			as := []mapper.Attempt{{DeliveryID: d.ID, Number: 1, StartedAt: done, StatusCode: 200, Outcome: mapper.DeliveryDelivered}}
			switch {
			case i%10 == 3:
				as = append(as, as[0]) // the same attempt twice: refused
			case i%7 == 5:
				ev.LeaseToken = "stale"
			}
			errs[i] = s.RouteEvent(ctx, ev, []mapper.Delivery{d}, as)
		})
	}
	wg.Wait()
	for i := range evs {
		page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: evs[i].ID, Attempts: true})
		if err != nil {
			t.Fatal(err)
		}
		ds := page.Items
		got, err := s.GetEvent(ctx, evs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i%10 == 3:
			if errs[i] == nil || len(ds) != 0 || got.Status != mapper.EventPending {
				t.Errorf("%s, a bad attempt: err %v, %d deliveries, %s", evs[i].ID, errs[i], len(ds), got.Status)
			}
		case i%7 == 5:
			if !errors.Is(errs[i], mapper.ErrLeaseLost) || len(ds) != 0 || got.Status != mapper.EventPending {
				t.Errorf("%s, a stale lease: err %v, %d deliveries, %s", evs[i].ID, errs[i], len(ds), got.Status)
			}
		default:
			if errs[i] != nil || len(ds) != 1 || len(ds[0].History) != 1 || got.Status != mapper.EventDelivered {
				t.Errorf("%s: err %v, deliveries %+v, %s", evs[i].ID, errs[i], ds, got.Status)
			}
		}
	}
}
