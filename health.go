package mapper

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// checkTimeout bounds each health check, so that the health endpoint
// answers within a second even when the database hangs.
const checkTimeout = 500 * time.Millisecond

// Check outcomes, as the health endpoint reports them.
const (
	checkOK       = "ok"
	checkDegraded = "degraded" // the Mapper takes webhooks, something around it is impaired
	checkDown     = "down"     // webhooks cannot be stored
)

// checkResult is one health check: its outcome, and what only an admin sees.
type checkResult struct {
	status  string
	err     error
	latency time.Duration
}

// checks runs every health check at once, each within checkTimeout: the
// store (down when it fails: no webhook can be stored), the resolver and
// the cache (degraded: routing waits, or costs Graph API calls, but
// webhooks are taken).
func (m *Mapper) checks(ctx context.Context) map[string]checkResult {
	type check struct {
		name string
		fail string
		fn   func(context.Context) error
	}
	list := []check{{"store", checkDown, m.ping}}
	if h, ok := m.cfg.resolver.(interface{ Health() error }); ok {
		list = append(list, check{"resolver", checkDegraded, func(context.Context) error { return h.Health() }})
	}
	if p, ok := m.cfg.cache.(interface{ Ping(context.Context) error }); ok {
		list = append(list, check{"cache", checkDegraded, p.Ping})
	}
	out := make(map[string]checkResult, len(list))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			start := time.Now()
			err := runCheck(cctx, c.fn)
			res := checkResult{status: checkOK, err: err, latency: time.Since(start)}
			if err != nil {
				res.status = c.fail
			}
			mu.Lock()
			out[c.name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// runCheck returns when fn does or ctx ends, whichever is first: a check
// stuck in a driver that ignores its context does not hold the answer.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// healthView is the body of GET /monitoring/health. Details (errors and
// latencies) are shown only to a caller with the admin token.
type healthView struct {
	Status  string                  `json:"status"`
	Checks  map[string]string       `json:"checks"`
	Details map[string]checkDetails `json:"details,omitempty"`
}

type checkDetails struct {
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// handleHealth answers 200 when the Mapper can store webhooks (status ok
// or degraded) and 503 when it cannot (down), with each check's outcome.
func (m *Mapper) handleHealth(w http.ResponseWriter, r *http.Request) {
	results := m.checks(r.Context())
	v := healthView{Status: checkOK, Checks: make(map[string]string, len(results))}
	admin := m.isAdmin(r)
	if admin {
		v.Details = make(map[string]checkDetails, len(results))
	}
	for name, res := range results {
		v.Checks[name] = res.status
		switch {
		case res.status == checkDown:
			v.Status = checkDown
		case res.status == checkDegraded && v.Status == checkOK:
			v.Status = checkDegraded
		}
		if admin {
			d := checkDetails{LatencyMS: float64(res.latency.Microseconds()) / 1000}
			if res.err != nil {
				d.Error = res.err.Error()
			}
			v.Details[name] = d
		}
	}
	code := http.StatusOK
	if v.Status == checkDown {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, v)
}

// handleLive answers 200 while the process serves: Kubernetes' liveness.
func (m *Mapper) handleLive(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": checkOK})
}

// handleReady answers 200 when a webhook can be stored now, and 503
// otherwise: Kubernetes' readiness, which takes the replica out of the
// Service while its database is unreachable.
func (m *Mapper) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	if err := runCheck(ctx, m.ping); err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "not-ready", "the store cannot take webhooks now")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
