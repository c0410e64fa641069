package mapper

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Leases that follow liveness. With a Store that can extend leases
// (ExtendLeases), work is claimed for a short lease (10 seconds by
// default) and a heartbeat extends the leases of the work this Mapper
// holds, every third of a lease: a process that dies, however it dies,
// lets its work go within one lease, and another replica (or the process
// restarted) takes it at the next poll. Without it, leases are long (2
// minutes) and must outlast any attempt.

// leaseExtender is the optional part of a Store that extends leases.
type leaseExtender interface {
	ExtendLeases(ctx context.Context, tokens []string, until time.Time) error
}

// maxHold bounds how long one piece of work is kept alive by the
// heartbeat: longer than any attempt may take, so a token the Mapper lost
// track of (a bug, a write that failed) is let go rather than held forever.
const maxHold = maxAppTimeout + time.Minute

// leases is the set of lease tokens this Mapper holds, with when each was
// taken.
type leases struct {
	mu   sync.Mutex
	held map[string]time.Time
}

func (l *leases) hold(now time.Time, tokens ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]time.Time{}
	}
	for _, t := range tokens {
		if t != "" {
			if _, ok := l.held[t]; !ok {
				l.held[t] = now
			}
		}
	}
}

func (l *leases) drop(tokens ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range tokens {
		delete(l.held, t)
	}
}

// live returns the tokens to extend: those held for at least minAge,
// forgetting those held past maxHold. Younger ones have most of their
// lease left, and most work ends before it needs an extension: extending
// everything held cost PostgreSQL an update of each row (and of each of
// its indexes) every beat, thousands under load, contending with the
// writes that finish the same rows.
func (l *leases) live(now time.Time, minAge time.Duration) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.held))
	for t, since := range l.held {
		age := now.Sub(since)
		if age > maxHold {
			delete(l.held, t)
			continue
		}
		if age >= minAge {
			out = append(out, t)
		}
	}
	return out
}

// trackedStore is the Store as the Mapper uses it: every write that takes
// or ends a lease updates the set the heartbeat extends.
type trackedStore struct {
	Store
	leases *leases
	now    func() time.Time
}

func (s *trackedStore) CreateEvent(ctx context.Context, ev *Event) error {
	err := s.Store.CreateEvent(ctx, ev)
	if err == nil && ev.Status == EventPending {
		s.leases.hold(s.now(), ev.LeaseToken)
	}
	return err
}

func (s *trackedStore) ClaimEvents(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Event, error) {
	evs, err := s.Store.ClaimEvents(ctx, now, limit, lease)
	for i := range evs {
		s.leases.hold(s.now(), evs[i].LeaseToken)
	}
	return evs, err
}

func (s *trackedStore) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration, skipApps []string) ([]Delivery, error) {
	ds, err := s.Store.ClaimDeliveries(ctx, now, limit, lease, skipApps)
	for i := range ds {
		s.leases.hold(s.now(), ds[i].LeaseToken)
	}
	return ds, err
}

// RouteEvent ends the event's lease, whatever happened (an event not
// stored waits out its lease), and holds the deliveries leased to the
// caller.
func (s *trackedStore) RouteEvent(ctx context.Context, ev *Event, deliveries []Delivery, attempts []Attempt) error {
	token := ev.LeaseToken
	err := s.Store.RouteEvent(ctx, ev, deliveries, attempts)
	s.leases.drop(token)
	if err == nil {
		for i := range deliveries {
			s.leases.hold(s.now(), deliveries[i].LeaseToken)
		}
	}
	return err
}

func (s *trackedStore) RecordAttempt(ctx context.Context, d *Delivery, a *Attempt) error {
	err := s.Store.RecordAttempt(ctx, d, a)
	s.leases.drop(d.LeaseToken)
	return err
}

// renewing reports whether leases are short and extended by a heartbeat.
func (m *Mapper) renewing() bool { return m.extender != nil }

// heartbeat extends the leases this Mapper holds every third of a lease,
// until ctx ends. A failed extension is logged and tried again at the
// next beat; should the store stay away longer than a lease, the work is
// claimable elsewhere and this Mapper's later writes about it are refused
// (ErrLeaseLost), which is the at-least-once promise.
func (m *Mapper) heartbeat(ctx context.Context) {
	if !m.renewing() {
		return
	}
	beat := m.cfg.lease / 3
	t := time.NewTicker(beat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := m.cfg.now()
		// Work taken less than half a beat ago still has two and a half
		// beats of lease: it is extended at the next beat, with a beat to
		// spare should that extension fail.
		tokens := m.leases.live(now, beat/2)
		if len(tokens) == 0 {
			continue
		}
		if err := m.extender.ExtendLeases(ctx, tokens, now.Add(m.cfg.lease)); err != nil && ctx.Err() == nil {
			m.cfg.logger.WarnContext(ctx, "leases not extended", slog.Int("held", len(tokens)), slog.String("error", err.Error()))
		}
	}
}

// setLease picks the default lease for the store and checks a given one.
func (m *Mapper) setLease() error {
	c := &m.cfg
	switch {
	case m.renewing() && c.lease == 0:
		c.lease = 10 * time.Second
	case c.lease == 0:
		c.lease = max(2*time.Minute, 2*c.deliveryTimeout)
	}
	switch {
	case m.renewing() && c.lease < 3*time.Second:
		return fmt.Errorf("mapper: lease %s is below 3 seconds", c.lease)
	case !m.renewing() && c.lease < 2*c.deliveryTimeout:
		// A lease shorter than an attempt would let a second claimer send
		// the same delivery while the first is still waiting for an answer.
		return fmt.Errorf("mapper: lease %s must be at least twice the delivery timeout %s (the store does not extend leases)", c.lease, c.deliveryTimeout)
	}
	return nil
}
