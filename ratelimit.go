package mapper

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientLimiter is a token bucket per client key. Its memory is bounded: a
// client whose bucket has refilled is forgotten at the next sweep, and past
// maxClients new clients share one overflow bucket, so a flood from many
// addresses cannot grow the map without end.
type clientLimiter struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	clients   map[string]*clientBucket
	overflow  *rate.Limiter
	lastSweep time.Time
	idle      time.Duration
	now       func() time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const maxClients = 50_000

func newClientLimiter(rps float64, burst int, now func() time.Time) *clientLimiter {
	// A bucket untouched for the time it takes to refill completely is
	// the same as a new one, so it can be dropped.
	idle := time.Duration(float64(burst) / rps * float64(time.Second))
	if idle < time.Second {
		idle = time.Second
	}
	return &clientLimiter{
		limit:     rate.Limit(rps),
		burst:     burst,
		clients:   make(map[string]*clientBucket),
		overflow:  rate.NewLimiter(rate.Limit(rps), burst),
		lastSweep: now(),
		idle:      idle,
		now:       now,
	}
}

// allow takes a token for key; when none is left it reports how long until
// one is.
func (l *clientLimiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.lastSweep) > l.idle && len(l.clients) > 0 {
		for k, b := range l.clients {
			if now.Sub(b.seen) > l.idle {
				delete(l.clients, k)
			}
		}
		l.lastSweep = now
	}
	var lim *rate.Limiter
	if b, ok := l.clients[key]; ok {
		b.seen = now
		lim = b.lim
	} else if len(l.clients) < maxClients {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.clients[key] = &clientBucket{lim: lim, seen: now}
	} else {
		lim = l.overflow
	}
	l.mu.Unlock()

	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
