package mapper

import "sync/atomic"

// Outcome is what became of a webhook POST at intake: accepted, or the
// reason it was refused. [Counters] counts them, and so do the metrics.
type Outcome string

// Intake outcomes.
const (
	OutcomeAccepted         Outcome = "accepted"
	OutcomeDuplicate        Outcome = "duplicate"
	OutcomeBadSignature     Outcome = "bad_signature"
	OutcomeTooLarge         Outcome = "too_large"
	OutcomeRateLimited      Outcome = "rate_limited"
	OutcomeMalformed        Outcome = "malformed"
	OutcomeStoreUnavailable Outcome = "store_unavailable"
)

var intakeOutcomes = []Outcome{OutcomeAccepted, OutcomeDuplicate, OutcomeBadSignature, OutcomeTooLarge, OutcomeRateLimited, OutcomeMalformed, OutcomeStoreUnavailable}

// counters are the Mapper's in-process totals since start.
type counters struct {
	intake             [7]atomic.Int64 // indexed like intakeOutcomes
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

func (c *counters) countIntake(outcome Outcome) {
	for i, o := range intakeOutcomes {
		if o == outcome {
			c.intake[i].Add(1)
			return
		}
	}
}

// Counters is a snapshot of the Mapper's totals since it started.
type Counters struct {
	Webhooks         map[Outcome]int64 `json:"webhooks"`
	HandshakeOK      int64             `json:"handshake_ok"`
	HandshakeRefused int64             `json:"handshake_refused"`
	Attempts         map[string]int64  `json:"delivery_attempts"`
	Routing          map[string]int64  `json:"routing"`
	Resolver         map[string]int64  `json:"resolver"`
}

// Counters returns the in-process totals since the Mapper started.
func (m *Mapper) Counters() Counters {
	c := &m.counters
	out := Counters{
		Webhooks:         make(map[Outcome]int64, len(intakeOutcomes)),
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
