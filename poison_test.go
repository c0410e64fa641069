package mapper_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/testing/mappertest"
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

// Worker-app URLs pointing where the Mapper must not call are refused when
// registered, and a delivery to such an address (an app written straight
// to the store) fails once, finally, without reaching anyone.
func TestDialPolicy(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	h := newHarness(t, mapper.WithDialPolicy(httpforwarder.DialPolicy{Deny: loopback}))
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://127.0.0.1:2375/", "http://localhost:8080/"} {
		resp, raw := h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": "x", "url": u, "secret": "0123456789abcdef", "account_ids": []string{accountA}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "url") || !strings.Contains(string(raw), "refused") {
			t.Errorf("%s: %d %s", u, resp.StatusCode, raw)
		}
	}
	w := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(w.Close)
	if err := h.store.CreateApp(t.Context(), &mapper.WorkerApp{ID: "app_direct", Name: "direct", URL: w.URL(), Secret: w.Secret(),
		AccountIDs: []string{accountA}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "dial1", "x").Bytes())
	ev := h.settled(id)
	ds := h.deliveries(id)
	if ev.Status != mapper.EventDead || len(ds) != 1 || ds[0].Attempts != 1 || !strings.Contains(ds[0].LastError, "refused") || len(w.Received()) != 0 {
		t.Errorf("event %s, deliveries %+v, app got %d", ev.Status, ds, len(w.Received()))
	}
}
