package mapper

import (
	"context"
	"slices"
	"sync"
	"time"
)

// The waiting room keeps deliveries the loop claimed whose app had no free
// slot, still leased, until a slot frees. One claim can return more of an
// app's deliveries than the app has room for; giving each back to the
// outbox (a write) only for the next pass to claim it again (another)
// turned an app at its limit into a storm of store writes, just when the
// system was busiest. Apps with deliveries waiting are left out of claims,
// and the loop starts their waiting deliveries first as slots free. A
// delivery that waited half its lease goes back to the outbox, so that its
// lease never runs out here.

// waitingFactor bounds the room at this many times the loop's concurrency.
const waitingFactor = 4

type waitingRoom struct {
	mu     sync.Mutex
	byApp  map[string][]waitingDelivery
	n, max int
}

type waitingDelivery struct {
	d     *Delivery
	since time.Time
}

func newWaitingRoom(max int) *waitingRoom {
	return &waitingRoom{byApp: map[string][]waitingDelivery{}, max: max}
}

// add queues d, claimed at now, unless the room is full.
func (w *waitingRoom) add(d *Delivery, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n >= w.max {
		return false
	}
	w.byApp[d.AppID] = append(w.byApp[d.AppID], waitingDelivery{d, now})
	w.n++
	return true
}

// has reports whether deliveries of app wait.
func (w *waitingRoom) has(app string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byApp[app]) > 0
}

// apps lists the apps with deliveries waiting.
func (w *waitingRoom) apps() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.byApp))
	for app := range w.byApp {
		out = append(out, app)
	}
	slices.Sort(out)
	return out
}

// expire removes and returns app's deliveries that have waited since
// before stale, to be given back.
func (w *waitingRoom) expire(app string, stale time.Time) []*Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.byApp[app]
	var out []*Delivery
	for len(q) > 0 && q[0].since.Before(stale) {
		out = append(out, q[0].d)
		q = q[1:]
	}
	w.set(app, q)
	w.n -= len(out)
	return out
}

// pop removes and returns app's oldest waiting delivery, nil when none.
func (w *waitingRoom) pop(app string) *Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.byApp[app]
	if len(q) == 0 {
		return nil
	}
	w.set(app, q[1:])
	w.n--
	return q[0].d
}

// set stores app's queue; the caller holds mu.
func (w *waitingRoom) set(app string, q []waitingDelivery) {
	if len(q) == 0 {
		delete(w.byApp, app)
	} else {
		w.byApp[app] = q
	}
}

// drain removes every waiting delivery.
func (w *waitingRoom) drain() []*Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Delivery
	for _, q := range w.byApp {
		for _, wd := range q {
			out = append(out, wd.d)
		}
	}
	clear(w.byApp)
	w.n = 0
	return out
}

// waitLimit is how long a claimed delivery may wait in memory for its
// app's slot before it goes back to the store: while the heartbeat keeps
// its lease, a minute; else half the lease, well before it runs out.
func (m *Mapper) waitLimit() time.Duration {
	if m.renewing() {
		return time.Minute
	}
	return m.cfg.lease / 2
}

// startWaiting starts waiting deliveries whose apps have a free slot, as
// many as free loop slots allow, and gives back those that waited too
// long. It returns how many it started. Only the loop adds to the room
// and takes from it, so what has() saw is still there for pop().
func (m *Mapper) startWaiting(work context.Context, free int, start func(*Delivery)) int {
	started := 0
	for _, app := range m.waiting.apps() {
		now := m.cfg.now()
		for _, d := range m.waiting.expire(app, now.Add(-m.waitLimit())) {
			m.releaseDelivery(work, d)
		}
		for started < free && m.waiting.has(app) && m.apps.acquire(app, now) {
			start(m.waiting.pop(app))
			started++
		}
	}
	return started
}

// returnWaiting gives every waiting delivery back to the outbox, due now,
// when Run stops.
func (m *Mapper) returnWaiting(ctx context.Context) {
	for _, d := range m.waiting.drain() {
		m.releaseDelivery(ctx, d)
	}
}
