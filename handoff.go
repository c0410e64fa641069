package mapper

import (
	"context"
	"log/slog"
)

// The handoff passes events taken by this process's handler straight to
// its loop. The event is stored already leased to this process, so the
// loop need not claim it (a write, on SQLite the costliest statement of the
// flow) and starts on it at once. Capacity is reserved before the write,
// so that a stored, leased event always has a place in the queue; when the
// queue is full, or no loop runs, events go through the outbox as usual.

const handoffSize = 4096

func (m *Mapper) reserveHandoff() bool {
	if !m.running.Load() {
		return false
	}
	for {
		n := m.handoffFree.Load()
		if n <= 0 {
			return false
		}
		if m.handoffFree.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (m *Mapper) cancelHandoff() { m.handoffFree.Add(1) }

// handOver queues an event stored leased to this process.
func (m *Mapper) handOver(ev *Event) {
	m.handoff <- ev // a place was reserved
	m.wakeLoop()
}

// takeHandoff returns up to n handed-over events.
func (m *Mapper) takeHandoff(n int) []*Event {
	var out []*Event
	for len(out) < n {
		select {
		case ev := <-m.handoff:
			m.handoffFree.Add(1)
			out = append(out, ev)
		default:
			return out
		}
	}
	return out
}

// returnHandoff gives events still queued when Run stops back to the
// outbox, due now, so that the next loop (here or on a replica) takes them
// without waiting for their leases to run out.
func (m *Mapper) returnHandoff(ctx context.Context) {
	for _, ev := range m.takeHandoff(handoffSize) {
		ev.NextAttemptAt = m.cfg.now()
		if err := m.store.RouteEvent(context.WithoutCancel(ctx), ev, nil, nil); err != nil {
			m.cfg.logger.WarnContext(ctx, "handed-over event not returned; it is claimed when its lease ends",
				slog.String("event_id", ev.ID), slog.String("error", err.Error()))
		}
	}
}
