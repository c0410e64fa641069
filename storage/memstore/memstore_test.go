package memstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/storetest"
)

func event(id string, keys ...string) *mapper.Event {
	now := time.Now()
	ev := &mapper.Event{ID: id, ReceivedAt: now, Status: mapper.EventPending, NextAttemptAt: now}
	for _, k := range keys {
		ev.Items = append(ev.Items, mapper.EventItem{Key: k})
	}
	return ev
}

func TestLeases(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if err := s.CreateEvent(ctx, event("e1", "k1")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first, _ := s.ClaimEvents(ctx, now, 10, time.Minute)
	if len(first) != 1 {
		t.Fatalf("claimed %d", len(first))
	}
	if again, _ := s.ClaimEvents(ctx, now, 10, time.Minute); len(again) != 0 {
		t.Fatal("a leased event was claimed twice")
	}
	// The lease runs out: another claimer takes it, and the first holder's
	// write is refused.
	second, _ := s.ClaimEvents(ctx, now.Add(2*time.Minute), 10, time.Minute)
	if len(second) != 1 {
		t.Fatal("an expired lease was not claimable")
	}
	first[0].Status = mapper.EventUnroutable
	if err := s.RouteEvent(ctx, &first[0], nil, nil); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Fatalf("stale holder: %v", err)
	}
	d := mapper.Delivery{ID: "d1", EventID: "e1", AppID: "a", Status: mapper.DeliveryPending, NextAttemptAt: now, LeaseToken: "mine"}
	second[0].Status = mapper.EventDispatched
	if err := s.RouteEvent(ctx, &second[0], []mapper.Delivery{d}, nil); err != nil {
		t.Fatal(err)
	}
	d.Status, d.Attempts = mapper.DeliveryDelivered, 1
	if err := s.RecordAttempt(ctx, &d, &mapper.Attempt{DeliveryID: "d1", Number: 1, Outcome: mapper.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, &d, &mapper.Attempt{DeliveryID: "d1", Number: 2}); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Fatalf("second record of a finished delivery: %v", err)
	}
	ev, _ := s.GetEvent(ctx, "e1")
	if ev.Status != mapper.EventDelivered || ev.CompletedAt == nil {
		t.Errorf("event not settled: %+v", ev)
	}
}

func TestConcurrentDeduplication(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	var wg sync.WaitGroup
	dups := make(chan bool, 50)
	for i := range 50 {
		wg.Go(func() {
			ev := event(string(rune('A'+i%26))+string(rune('a'+i/26)), "same")
			if err := s.CreateEvent(ctx, ev); err != nil {
				t.Error(err)
			}
			dups <- ev.Status == mapper.EventDuplicate
		})
	}
	wg.Wait()
	close(dups)
	fresh := 0
	for d := range dups {
		if !d {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d copies got the key, want 1", fresh)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) mapper.Store { return memstore.New() })
}
