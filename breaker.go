package mapper

import (
	"cmp"
	"sync"
	"time"
)

// BreakerPolicy says when a worker app's circuit opens: after
// ConsecutiveFailures failed attempts in a row, or when at least
// FailureRate of its last Window attempts failed (once there are
// MinSamples). Open, the app gets no attempt for Cooldown (doubling up to
// MaxCooldown while probes keep failing); then one probe is let through,
// and its success closes the circuit. Only retryable failures count
// (network errors, timeouts, 408, 425, 429, 5xx): a 4xx says nothing of
// the app's health. A zero field takes its default: 5 failures in a row,
// or half (0.5) of the last 20 attempts with at least 10 of them; 10
// seconds at first, 30 seconds at most, so that an app that comes back
// gets its backlog within half a minute.
type BreakerPolicy struct {
	ConsecutiveFailures int
	FailureRate         float64
	Window              int
	MinSamples          int
	Cooldown            time.Duration
	MaxCooldown         time.Duration
}

// withDefaults fills the zero fields.
func (p BreakerPolicy) withDefaults() BreakerPolicy {
	p.ConsecutiveFailures = cmp.Or(p.ConsecutiveFailures, 5)
	p.FailureRate = cmp.Or(p.FailureRate, 0.5)
	p.Window = cmp.Or(p.Window, 20)
	p.MinSamples = cmp.Or(p.MinSamples, min(10, p.Window))
	p.Cooldown = cmp.Or(p.Cooldown, 10*time.Second)
	p.MaxCooldown = cmp.Or(p.MaxCooldown, max(30*time.Second, p.Cooldown))
	return p
}

// circuitState is a worker app's circuit in one Mapper, as
// [Mapper.Circuit] and the admin API report it.
type circuitState string

// Circuit states.
const (
	circuitClosed   circuitState = "closed"
	circuitOpen     circuitState = "open"
	circuitHalfOpen circuitState = "half-open"
)

// appState is one worker app's share of this Mapper: attempts in flight,
// their limit, and the circuit.
type appState struct {
	inflight int
	limit    int
	known    bool // limit was read from the app's record

	state       circuitState
	consecutive int
	outcomes    []bool // ring of the last Window outcomes, true = failure
	next        int
	filled      int
	openUntil   time.Time
	cooldown    time.Duration
	probing     bool
}

// apps tracks every worker app's state. Its lock is held for tiny steps.
type apps struct {
	mu        sync.Mutex
	byID      map[string]*appState
	policy    BreakerPolicy
	defLimit  int
	onOpen    func(appID string, until time.Time)
	openCount int64
}

func newApps(p BreakerPolicy, defLimit int) *apps {
	return &apps{byID: map[string]*appState{}, policy: p, defLimit: defLimit}
}

func (a *apps) get(id string) *appState {
	s := a.byID[id]
	if s == nil {
		s = &appState{limit: a.defLimit, state: circuitClosed, outcomes: make([]bool, a.policy.Window)}
		a.byID[id] = s
	}
	return s
}

// setLimit records the app's concurrency limit as its record says.
func (a *apps) setLimit(app *WorkerApp) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.get(app.ID)
	s.known = true
	switch {
	case app.Ordered:
		s.limit = 1
	case app.MaxConcurrency > 0:
		s.limit = app.MaxConcurrency
	default:
		s.limit = a.defLimit
	}
}

// known reports whether the app's limit was read from its record.
func (a *apps) known(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.byID[id]
	return s != nil && s.known
}

// skip lists the apps that can take no attempt now: circuit open (or
// half-open with its probe out), or as many in flight as their limit.
func (a *apps) skip(now time.Time) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for id, s := range a.byID {
		if s.inflight >= s.limit || s.state == circuitOpen && now.Before(s.openUntil) || s.state == circuitHalfOpen && s.probing {
			out = append(out, id)
		}
	}
	return out
}

// acquire takes an attempt slot for the app, if its limit and circuit
// allow one now.
func (a *apps) acquire(id string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.get(id)
	if s.inflight >= s.limit {
		return false
	}
	switch s.state {
	case circuitOpen:
		if now.Before(s.openUntil) {
			return false
		}
		s.state, s.probing = circuitHalfOpen, true
	case circuitHalfOpen:
		if s.probing {
			return false
		}
		s.probing = true
	}
	s.inflight++
	return true
}

// release returns the slot; counted says whether the attempt's outcome
// tells of the app's health (failed is then its verdict). It reports
// whether the app was at its limit, so that work left waiting for a slot
// can be claimed now.
func (a *apps) release(id string, now time.Time, counted, failed bool) (wasFull bool) {
	a.mu.Lock()
	s := a.get(id)
	wasFull = s.inflight >= s.limit || s.state == circuitHalfOpen
	s.inflight--
	var opened time.Time
	if counted {
		opened = a.record(s, now, failed)
	} else if s.state == circuitHalfOpen {
		s.probing = false // the probe told nothing; let another try
	}
	onOpen := a.onOpen
	a.mu.Unlock()
	if !opened.IsZero() && onOpen != nil {
		onOpen(id, opened)
	}
	return wasFull
}

// record notes an outcome and returns the time the circuit reopens at if
// this outcome opened it.
func (a *apps) record(s *appState, now time.Time, failed bool) time.Time {
	p := a.policy
	if s.state == circuitHalfOpen {
		s.probing = false
		if failed {
			s.cooldown = min(2*s.cooldown, p.MaxCooldown)
			return a.open(s, now)
		}
		s.state, s.consecutive, s.filled, s.cooldown = circuitClosed, 0, 0, 0
		return time.Time{}
	}
	if len(s.outcomes) > 0 {
		s.outcomes[s.next] = failed
		s.next = (s.next + 1) % len(s.outcomes)
		s.filled = min(s.filled+1, len(s.outcomes))
	}
	if !failed {
		s.consecutive = 0
		return time.Time{}
	}
	s.consecutive++
	failures := 0
	for i := range s.filled {
		if s.outcomes[i] {
			failures++
		}
	}
	if s.state == circuitClosed && (s.consecutive >= p.ConsecutiveFailures ||
		s.filled >= p.MinSamples && float64(failures) >= p.FailureRate*float64(s.filled)) {
		s.cooldown = p.Cooldown
		return a.open(s, now)
	}
	return time.Time{}
}

func (a *apps) open(s *appState, now time.Time) time.Time {
	s.state, s.openUntil = circuitOpen, now.Add(s.cooldown)
	s.filled, s.consecutive = 0, 0
	a.openCount++
	return s.openUntil
}

// circuit reports an app's circuit state and its attempts in flight.
func (a *apps) circuit(id string, now time.Time) (_ circuitState, inflight int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.byID[id]
	if !ok {
		return circuitClosed, 0
	}
	if s.state == circuitOpen && !now.Before(s.openUntil) {
		return circuitHalfOpen, s.inflight // the next attempt is the probe
	}
	return s.state, s.inflight
}

// reset closes an app's circuit and forgets its history, after the app was
// changed (a new URL, re-enabled): what failed before says nothing of it.
// Its attempts in flight keep their slots.
func (a *apps) reset(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.byID[id]; ok {
		s.state, s.consecutive, s.filled, s.cooldown, s.probing = circuitClosed, 0, 0, 0, false
	}
}
