package mapper_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chatico/mapper"
)

// An ID with a control character is not Meta's: 400 naming it, nothing
// stored. A filter or path with one is a 400 too, never a database error.
func TestPoisonInputRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addApp("a", accountA)
	for _, tc := range []struct{ name, body, names string }{
		{"NUL in entry.id", `{"object":"instagram","entry":[{"id":"178414000\u00000001","time":1,"changes":[{"field":"comments","value":{"id":"1","media":{"id":"2"}}}]}]}`, "entry[0].id"},
		{"newline in a comment id", `{"object":"instagram","entry":[{"id":"` + accountA + `","time":1,"changes":[{"field":"comments","value":{"id":"1\n2","media":{"id":"2"}}}]}]}`, "the id"},
		{"NUL in a media id", `{"object":"instagram","entry":[{"id":"` + accountA + `","time":1,"changes":[{"field":"comments","value":{"id":"1","media":{"id":"2\u0000"}}}]}]}`, "the media id"},
		{"NUL in a message id", `{"object":"instagram","entry":[{"id":"` + accountA + `","time":1,"messaging":[{"sender":{"id":"9"},"recipient":{"id":"` + accountA + `"},"timestamp":1,"message":{"mid":"m\u0000","text":"x"}}]}]}`, "the id"},
	} {
		before := countEvents(t, h)
		resp, _, raw := h.post([]byte(tc.body), metaSecret)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), tc.names) || !strings.Contains(string(raw), "control character") {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, raw)
		}
		if n := countEvents(t, h); n != before {
			t.Errorf("%s: %d events stored", tc.name, n-before)
		}
	}
	for _, path := range []string{
		"/monitoring/webhook-logs?account=" + url.QueryEscape("\x00"),
		"/monitoring/webhook-logs?app_id=" + url.QueryEscape("\x00"),
		"/deliveries/?event_id=" + url.QueryEscape("a\x00b"),
		"/monitoring/webhook-logs/" + url.PathEscape("evt\x00"),
		"/worker-apps/" + url.PathEscape("x\x00") + "/accounts",
	} {
		resp, raw := h.admin(http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), "control character") {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, raw)
		}
	}
	resp, raw := h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": "x\x00", "url": "http://127.0.0.1:1", "secret": "0123456789abcdef\x00"})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "name") || !strings.Contains(string(raw), "secret") {
		t.Errorf("app with control characters: %d %s", resp.StatusCode, raw)
	}
}

// refusingStore refuses every route lookup as invalid input, as a store
// does a value it can never take.
type refusingStore struct{ *watchedStore }

func (s refusingStore) ListRoutes(context.Context, mapper.RouteQuery) (mapper.Page[mapper.Route], error) {
	return mapper.Page[mapper.Route]{}, fmt.Errorf("account holds a NUL: %w", mapper.ErrInvalidInput)
}

// Routing that fails for a reason that will not pass ends dead with the
// reason at its first try, instead of retrying for a day and a half.
func TestPermanentRoutingFailureEndsDead(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	m, err := mapper.New(refusingStore{h.store}, mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken(verifyToken), mapper.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	h.m = m
	h.srv.Config.Handler = m.Handler()
	h.start()
	id := h.accept([]byte(`{"object":"instagram","entry":[{"id":"` + accountA + `","time":1,"changes":[{"field":"comments","value":{"id":"p1","media":{"id":"2"}}}]}]}`))
	ev := h.settled(id)
	if ev.Status != mapper.EventDead || ev.RouteAttempts != 1 || !strings.Contains(ev.LastError, "NUL") {
		t.Errorf("event %s after %d tries: %q", ev.Status, ev.RouteAttempts, ev.LastError)
	}
}
