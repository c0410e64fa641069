package mapper

import "sync/atomic"

// intakeOutcome is what became of a webhook POST at intake: accepted, or
// the reason it was refused. The metrics count them.
type intakeOutcome string

// Intake outcomes.
const (
	outcomeAccepted         intakeOutcome = "accepted"
	outcomeDuplicate        intakeOutcome = "duplicate"
	outcomeBadSignature     intakeOutcome = "bad_signature"
	outcomeTooLarge         intakeOutcome = "too_large"
	outcomeRateLimited      intakeOutcome = "rate_limited"
	outcomeMalformed        intakeOutcome = "malformed"
	outcomeStoreUnavailable intakeOutcome = "store_unavailable"
	outcomeBusy             intakeOutcome = "busy"      // the bodies in flight filled their budget
	outcomeSlowBody         intakeOutcome = "slow_body" // the body did not arrive in time
)

var intakeOutcomes = []intakeOutcome{outcomeAccepted, outcomeDuplicate, outcomeBadSignature, outcomeTooLarge, outcomeRateLimited,
	outcomeMalformed, outcomeStoreUnavailable, outcomeBusy, outcomeSlowBody}

// counters are the Mapper's in-process totals since start.
type counters struct {
	intake             [9]atomic.Int64 // indexed like intakeOutcomes
	handshakeOK        atomic.Int64
	handshakeRefused   atomic.Int64
	routed             atomic.Int64
	unroutable         atomic.Int64
	routeRetries       atomic.Int64
	resolverCalls      atomic.Int64
	cacheHits          atomic.Int64
	cacheMisses        atomic.Int64
	cacheErrors        atomic.Int64
	resolverNotFound   atomic.Int64
	resolverRetryLater atomic.Int64
}

func (c *counters) countIntake(outcome intakeOutcome) {
	for i, o := range intakeOutcomes {
		if o == outcome {
			c.intake[i].Add(1)
			return
		}
	}
}

// countersView is a snapshot of the Mapper's totals since it started, as
// GET /monitoring/metrics shows it.
type countersView struct {
	Webhooks         map[intakeOutcome]int64 `json:"webhooks"`
	HandshakeOK      int64                   `json:"handshake_ok"`
	HandshakeRefused int64                   `json:"handshake_refused"`
	Attempts         map[string]int64        `json:"delivery_attempts"`
	Routing          map[string]int64        `json:"routing"`
	Resolver         map[string]int64        `json:"resolver"`
}

// snapshot returns the in-process totals since the Mapper started.
func (m *Mapper) snapshot() countersView {
	c := &m.counters
	out := countersView{
		Webhooks:         make(map[intakeOutcome]int64, len(intakeOutcomes)),
		HandshakeOK:      c.handshakeOK.Load(),
		HandshakeRefused: c.handshakeRefused.Load(),
		Attempts:         map[string]int64{"delivered": 0, "retrying": 0, "dead": 0},
		Routing: map[string]int64{
			"routed":     c.routed.Load(),
			"unroutable": c.unroutable.Load(),
			"retried":    c.routeRetries.Load(),
		},
		Resolver: map[string]int64{
			"calls":        c.resolverCalls.Load(),
			"cache_hits":   c.cacheHits.Load(),
			"cache_misses": c.cacheMisses.Load(),
			"cache_errors": c.cacheErrors.Load(),
			"not_found":    c.resolverNotFound.Load(),
			"retry_later":  c.resolverRetryLater.Load(),
		},
	}
	for i, o := range intakeOutcomes {
		out.Webhooks[o] = c.intake[i].Load()
	}
	// The per-app counts are the ones the OTel metric reports; the totals
	// are their sums.
	m.tel.perApp.Range(func(_, v any) bool {
		ac := v.(*appCounters)
		out.Attempts["delivered"] += ac.delivered.Load()
		out.Attempts["retrying"] += ac.retrying.Load()
		out.Attempts["dead"] += ac.dead.Load()
		return true
	})
	return out
}
