package mapper

import (
	"context"
	"log/slog"
	"time"

	"github.com/chatico/mapper/internal/payload"
)

// The handoff passes events taken by this process's handler straight to
// its loop. The event is stored already leased to this process, so the
// loop need not claim it (a write, on SQLite the costliest statement of the
// flow) and starts on it at once. Capacity is reserved before the write,
// so that a stored, leased event always has a place in the queue; when the
// queue is full, or no loop runs, events go through the outbox as usual.

// handoffSize bounds the events handed over and not yet started: at a
// few thousand a second, a few hundred milliseconds of work.
const handoffSize = 512

// defaultHandoffWait is how long a webhook waits for a place in the handoff when
// the loop is behind. Under a load the process cannot route and deliver as
// fast as it takes in, answering Meta a little later keeps the delivery lag
// bounded; past the wait the event goes through the outbox, as when no
// loop runs. A slow worker app does not fill the handoff: its deliveries
// wait for its own slots, not the loop's.
const defaultHandoffWait = time.Second

// reserveHandoff takes a place in the handoff, waiting up to its wait
// (or until ctx ends) when there is none.
func (m *Mapper) reserveHandoff(ctx context.Context) bool {
	if !m.running.Load() {
		return false
	}
	select {
	case m.handoffRoom <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(m.cfg.handoffWait)
	defer t.Stop()
	select {
	case m.handoffRoom <- struct{}{}:
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
	if !m.running.Load() {
		m.cancelHandoff() // Run stopped meanwhile
		return false
	}
	return true
}

func (m *Mapper) cancelHandoff() { <-m.handoffRoom }

// handed is an event handed over, with its payload as intake parsed it,
// so that routing does not parse it again.
type handed struct {
	ev *Event
	p  *payload.Payload
}

// handOver queues an event stored leased to this process.
func (m *Mapper) handOver(ev *Event, p *payload.Payload) {
	m.handoff <- handed{ev, p} // a place was reserved
	m.wakeLoop()
}

// takeHandoff returns up to n handed-over events.
func (m *Mapper) takeHandoff(n int) []handed {
	var out []handed
	for len(out) < n {
		select {
		case h := <-m.handoff:
			<-m.handoffRoom
			out = append(out, h)
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
	for _, h := range m.takeHandoff(handoffSize) {
		ev := h.ev
		ev.NextAttemptAt = m.cfg.now()
		if err := m.store.RouteEvent(context.WithoutCancel(ctx), ev, nil, nil); err != nil {
			m.cfg.logger.WarnContext(ctx, "handed-over event not returned; it is claimed when its lease ends",
				slog.String("event_id", ev.ID), slog.String("error", err.Error()))
		}
	}
}
