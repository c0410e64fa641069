// Command workerapp is a worker app: it checks the Mapper's signature,
// drops repeats, and reads the webhook's items.
package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/chatico/mapper/workerauth"
)

func main() {
	secret := os.Getenv("MAPPER_SECRET")
	if len(secret) < 16 {
		slog.Error("MAPPER_SECRET must be the app's secret as registered with the Mapper (16 characters or more)")
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /instagram", newHandler(secret, slog.Default()))
	addr := os.Getenv("ADDR") // e.g. :9000 in a container
	if addr == "" {
		addr = "127.0.0.1:9000"
	}
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	slog.Info("worker app listening", slog.String("addr", srv.Addr))
	if err := srv.ListenAndServe(); err != nil {
		slog.Error("serve", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// webhook is the part of Meta's payload this app reads; the rest stays in
// the raw items.
type webhook struct {
	Object string `json:"object"`
	Entry  []struct {
		ID        string            `json:"id"`
		Changes   []json.RawMessage `json:"changes"`
		Messaging []json.RawMessage `json:"messaging"`
		Standby   []json.RawMessage `json:"standby"`
	} `json:"entry"`
}

// handler verifies, deduplicates and handles deliveries.
type handler struct {
	secret string
	log    *slog.Logger
	mu     sync.Mutex
	seen   map[string]time.Time // delivery ID → when it was handled
}

func newHandler(secret string, log *slog.Logger) *handler {
	return &handler{secret: secret, log: log, seen: map[string]time.Time{}}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := workerauth.Verify(r, h.secret)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, workerauth.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	id := r.Header.Get(workerauth.HeaderDeliveryID)
	if h.handled(id) {
		w.WriteHeader(http.StatusOK) // done before: say so, do nothing
		return
	}
	var hook webhook
	if err := json.Unmarshal(body, &hook); err != nil {
		// Signed by the Mapper but not a webhook: a bug somewhere; a 4xx
		// makes it dead (listed, replayable) rather than retried.
		http.Error(w, "not a webhook: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	for _, e := range hook.Entry {
		h.log.Info("items", slog.String("delivery_id", id), slog.String("account", e.ID),
			slog.Int("changes", len(e.Changes)), slog.Int("messaging", len(e.Messaging)), slog.Int("standby", len(e.Standby)),
			slog.String("envelope", r.Header.Get(workerauth.HeaderEnvelope)), slog.String("media", r.Header.Get(workerauth.HeaderMedia)))
	}
	h.done(id)
	w.WriteHeader(http.StatusOK)
}

// handled reports whether a delivery was handled in the last three days
// (the Mapper gives up retrying by then, by default). A real app keeps
// this in its database, written with the work it did, so that a crash
// between the two cannot lose either.
func (h *handler) handled(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.seen[id]
	return ok
}

// done records a delivery as handled, and forgets those too old to come
// again.
func (h *handler) done(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for k, at := range h.seen {
		if now.Sub(at) > 72*time.Hour {
			delete(h.seen, k)
		}
	}
	h.seen[id] = now
}
