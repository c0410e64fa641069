package mappertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
)

// Metrics is the JSON of GET /monitoring/metrics: the Mapper's counters
// since it started (this process's own), and the store's live figures
// (pending, dispatched and dead rows; the same from every replica).
type Metrics struct {
	Counters struct {
		// Webhooks counts intake outcomes: accepted, duplicate,
		// bad_signature, too_large, rate_limited, malformed,
		// store_unavailable.
		Webhooks         map[string]int64 `json:"webhooks"`
		HandshakeOK      int64            `json:"handshake_ok"`
		HandshakeRefused int64            `json:"handshake_refused"`
		// Attempts counts delivery attempts: delivered, retrying, dead.
		Attempts map[string]int64 `json:"delivery_attempts"`
		// Routing counts routed, unroutable and retried events.
		Routing map[string]int64 `json:"routing"`
		// Resolver counts calls, cache hits, misses and errors, not_found
		// and retry_later answers.
		Resolver map[string]int64 `json:"resolver"`
	} `json:"counters"`
	Store struct {
		EventsByStatus     map[string]int64 `json:"events_by_status"`
		DeliveriesByStatus map[string]int64 `json:"deliveries_by_status"`
		QueueDepth         int64            `json:"queue_depth"`
	} `json:"store"`
}

// ReadMetrics asks an admin handler (Mapper.AdminHandler or Handler) for
// its metrics, in process.
func ReadMetrics(h http.Handler, adminToken string) (*Metrics, error) {
	req := httptest.NewRequest(http.MethodGet, "/monitoring/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET /monitoring/metrics: %d %s", rec.Code, rec.Body)
	}
	var m Metrics
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("GET /monitoring/metrics: %w", err)
	}
	return &m, nil
}
