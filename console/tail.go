package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
)

func (c *Console) handleTail(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "tail", nil)
}

// tailEvent is one arrival as the live tail's script receives it.
type tailEvent struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Status     string    `json:"status"`
	Accounts   []string  `json:"accounts"`
	Fields     []string  `json:"fields"`
	Items      int       `json:"items"`
	URL        string    `json:"url"`
}

// tailBacklog is how many recent events a new stream starts with.
const tailBacklog = 20

// handleTailStream sends each event as it is stored, as Server-Sent Events
// ("webhook" events whose data is a tailEvent). It reads the log every
// half second from the admin API, so that it shows what every replica
// stored, not only this one.
func (c *Console) handleTailStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// A stream outlives the server's write timeout; the client reconnects
	// by itself if it is cut.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	ctx := r.Context()
	var since time.Time
	seen := map[string]time.Time{} // events at or after since already sent
	q := url.Values{"limit": {fmt.Sprint(tailBacklog)}}
	poll := time.NewTicker(c.tailPoll)
	defer poll.Stop()
	lastWrite := time.Now()
	for {
		var page eventPage
		if err := c.call(ctx, "GET", "/monitoring/webhook-logs", q, nil, &page); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.logger.Warn("console: live tail", "error", err)
		}
		// The log lists newest first; the tail shows them in arrival order.
		slices.Reverse(page.Events)
		for _, ev := range page.Events {
			if _, ok := seen[ev.ID]; ok {
				continue
			}
			seen[ev.ID] = ev.ReceivedAt
			if ev.ReceivedAt.After(since) {
				since = ev.ReceivedAt
			}
			data, _ := json.Marshal(tailEvent{ID: ev.ID, ReceivedAt: ev.ReceivedAt, Status: string(ev.Status), Accounts: ev.AccountIDs,
				Fields: fieldsOf(ev), Items: len(ev.Items), URL: c.base + "events/" + url.PathEscape(ev.ID)})
			if _, err := fmt.Fprintf(w, "event: webhook\nid: %s\ndata: %s\n\n", ev.ID, data); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		for id, at := range seen {
			if at.Before(since) {
				delete(seen, id) // the next query starts at since
			}
		}
		if time.Since(lastWrite) > 15*time.Second {
			// A comment line keeps proxies from closing an idle stream.
			if _, err := fmt.Fprint(w, ": idle\n\n"); err != nil {
				return
			}
			lastWrite = time.Now()
		}
		if rc.Flush() != nil {
			return
		}
		if !since.IsZero() {
			q = url.Values{"limit": {"100"}, "since": {since.Format(time.RFC3339Nano)}}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.stopping:
			return
		case <-poll.C:
		}
	}
}
