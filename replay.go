package mapper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chatico/mapper/internal/ids"
)

// Replays are decided here and stored with [Store.Reopen], which refuses
// (ErrConflict) when the event or a delivery changed since it was read; a
// replay then reads again and decides again, a few times at most.
const replayTries = 3

// replayDelivery makes a dead delivery pending again, due now, starting
// a new retry cycle, and reopens its event.
func (m *Mapper) replayDelivery(ctx context.Context, id string) (*Delivery, error) {
	for try := 1; ; try++ {
		page, err := m.store.FindDeliveries(ctx, DeliveryQuery{ID: id, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Items) == 0 {
			return nil, fmt.Errorf("delivery %q: %w", id, ErrNotFound)
		}
		d := page.Items[0]
		if d.Status != DeliveryDead {
			return nil, fmt.Errorf("delivery %s is %s, not dead: %w", id, d.Status, ErrConflict)
		}
		ev, err := m.store.GetEvent(ctx, d.EventID)
		if err != nil {
			return nil, err
		}
		was := ev.Status
		ds := []Delivery{d}
		m.reopen(ev, ds, false)
		err = m.store.Reopen(ctx, was, ev, ds)
		if err == nil {
			return &ds[0], nil
		}
		if !errors.Is(err, ErrConflict) || try == replayTries {
			return nil, err
		}
	}
}

// replayEvent replays an event that ended dead or unroutable: its dead
// deliveries as replayDelivery does, and, when some of its items were
// unroutable or its routing gave up, the event is routed again (only what
// its Unroutable lists).
func (m *Mapper) replayEvent(ctx context.Context, id string) (*Event, error) {
	for try := 1; ; try++ {
		ev, err := m.store.GetEvent(ctx, id)
		if err != nil {
			return nil, err
		}
		if ev.Status != EventDead && ev.Status != EventUnroutable {
			return nil, fmt.Errorf("event %s is %s, neither dead nor unroutable: %w", id, ev.Status, ErrConflict)
		}
		all, err := m.eventDeliveries(ctx, id, false)
		if err != nil {
			return nil, err
		}
		dead := slices.DeleteFunc(all, func(d Delivery) bool { return d.Status != DeliveryDead })
		was := ev.Status
		m.reopen(ev, dead, len(ev.Unroutable) > 0 || len(dead) == 0)
		err = m.store.Reopen(ctx, was, ev, dead)
		if err == nil {
			ev.Payload = nil
			return ev, nil
		}
		if !errors.Is(err, ErrConflict) || try == replayTries {
			return nil, err
		}
	}
}

// replayDead replays every dead delivery q matches (AppID, Since and
// Until), a page at a time, and returns how many it replayed. A delivery
// that changed meanwhile (replayed by someone else) is skipped.
func (m *Mapper) replayDead(ctx context.Context, q DeliveryQuery) (int64, error) {
	q.Status, q.Limit, q.Cursor = DeliveryDead, ids.MaxPageLimit, ""
	var n int64
	skipped := map[string]bool{}
	for {
		page, err := m.store.FindDeliveries(ctx, q)
		if err != nil {
			return n, err
		}
		byEvent := map[string][]Delivery{}
		var order []string
		for _, d := range page.Items {
			if skipped[d.ID] {
				continue
			}
			if byEvent[d.EventID] == nil {
				order = append(order, d.EventID)
			}
			byEvent[d.EventID] = append(byEvent[d.EventID], d)
		}
		for _, evID := range order {
			done, err := m.replayDeliveries(ctx, evID, byEvent[evID])
			if err != nil {
				return n, err
			}
			n += int64(done)
			if done == 0 {
				for _, d := range byEvent[evID] {
					skipped[d.ID] = true
				}
			}
		}
		// Replayed deliveries leave the dead ones, so the first page is
		// read again until only skipped ones remain on it.
		if len(order) == 0 {
			if page.NextCursor == "" {
				return n, nil
			}
			q.Cursor = page.NextCursor
		}
	}
}

// replayDeliveries replays dead deliveries of one event; it returns 0
// when they changed meanwhile.
func (m *Mapper) replayDeliveries(ctx context.Context, eventID string, ds []Delivery) (int, error) {
	ev, err := m.store.GetEvent(ctx, eventID)
	if errors.Is(err, ErrNotFound) {
		return 0, nil // pruned meanwhile
	}
	if err != nil {
		return 0, err
	}
	was := ev.Status
	m.reopen(ev, ds, false)
	switch err := m.store.Reopen(ctx, was, ev, ds); {
	case errors.Is(err, ErrConflict):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return len(ds), nil
}

// reopen is the replay rule: dead deliveries become pending, due now, in
// a new retry cycle (the retry policy's limits count from here); an ended
// event becomes dispatched again, or pending, due now, when it must be
// routed again.
func (m *Mapper) reopen(ev *Event, ds []Delivery, reroute bool) {
	now := m.cfg.now()
	for i := range ds {
		d := &ds[i]
		d.Status, d.NextAttemptAt, d.CompletedAt, d.LeaseToken = DeliveryPending, now, nil, ""
		d.AttemptBase, d.CycleStart = d.Attempts, now
	}
	switch {
	case reroute:
		ev.Status, ev.NextAttemptAt, ev.LastError, ev.CompletedAt = EventPending, now, "", nil
	case ev.Status.Terminal() && len(ds) > 0:
		ev.Status, ev.CompletedAt = EventDispatched, nil
	}
	ev.LeaseToken = ""
}

// ping reports whether the store can take writes: its Ping, or a read.
func (m *Mapper) ping(ctx context.Context) error {
	if p, ok := m.raw.(pinger); ok {
		return p.Ping(ctx)
	}
	_, err := m.store.ListApps(ctx)
	return err
}

// stats reads the store's aggregates, if it keeps them; percentiles cover
// the last hour.
func (m *Mapper) stats(ctx context.Context) (Stats, error) {
	if s, ok := m.raw.(statser); ok {
		return s.Stats(ctx, m.cfg.now().Add(-time.Hour))
	}
	return Stats{EventsByStatus: map[EventStatus]int64{}, DeliveriesByStatus: map[DeliveryStatus]int64{}}, nil
}
