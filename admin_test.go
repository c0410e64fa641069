package mapper_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	tests := []struct {
		name string
		auth string
		path string
		want int
		kind string
	}{
		{"no token", "", "/worker-apps/", 401, "unauthorized"},
		{"wrong token", "Bearer nope", "/worker-apps/", 401, "unauthorized"},
		{"basic auth", "Basic " + adminToken, "/monitoring/metrics", 401, "unauthorized"},
		{"right token", "Bearer " + adminToken, "/worker-apps/", 200, ""},
		{"health is public", "", "/monitoring/health", 200, ""},
		{"logs need the token", "", "/monitoring/webhook-logs", 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := mustRequest(t, http.MethodGet, h.srv.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, raw := h.do(req)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.want, raw)
			}
			if tt.kind != "" {
				wantProblem(t, resp, raw, tt.kind)
			}
		})
	}

	// Without an admin token the admin routes are closed, never open.
	m, err := mapper.New(newWatchedStore(), mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"), mapper.WithOwnerPolicy(mapper.OwnerFromEntry))
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, m.Handler())
	req := mustRequest(t, http.MethodGet, url+"/worker-apps/", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, raw := h.do(req)
	if resp.StatusCode != 403 {
		t.Fatalf("no admin token configured: %d %s", resp.StatusCode, raw)
	}
	wantProblem(t, resp, raw, "admin-disabled")
}

func TestWorkerAppsCRUD(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	w := mappertest.NewWorkerApp("0123456789abcdef-secret")
	t.Cleanup(w.Close)
	valid := map[string]any{"name": "shop", "url": w.URL(), "account_ids": []string{accountA}, "secret": w.Secret()}

	resp, raw := h.admin(http.MethodPost, "/worker-apps/", valid)
	if resp.StatusCode != 201 || resp.Header.Get("Location") == "" {
		t.Fatalf("create: %d %s", resp.StatusCode, raw)
	}
	if strings.Contains(string(raw), w.Secret()) || strings.Contains(string(raw), `"secret"`) {
		t.Errorf("the secret came back: %s", raw)
	}
	var app mapper.WorkerApp
	_ = json.Unmarshal(raw, &app)
	if !app.Enabled || app.ID == "" {
		t.Errorf("created %+v", app)
	}

	bad := []struct {
		name string
		body any
		want int
		kind string
	}{
		{"not JSON", "{", 400, "invalid-json"},
		{"unknown field", map[string]any{"name": "x", "url": w.URL(), "account_ids": []string{"1"}, "secret": w.Secret(), "colour": "red"}, 400, "invalid-json"},
		{"no name", map[string]any{"url": w.URL(), "account_ids": []string{"1"}, "secret": w.Secret()}, 422, "invalid-worker-app"},
		{"ftp URL", map[string]any{"name": "x", "url": "ftp://x", "account_ids": []string{"1"}, "secret": w.Secret()}, 422, "invalid-worker-app"},
		{"credentials in URL", map[string]any{"name": "x", "url": "http://u:p@x", "account_ids": []string{"1"}, "secret": w.Secret()}, 422, "invalid-worker-app"},
		{"account listed twice", map[string]any{"name": "x", "url": w.URL(), "account_ids": []string{"1", "1"}, "secret": w.Secret()}, 422, "invalid-worker-app"},
		{"app-scoped ID", map[string]any{"name": "x", "url": w.URL(), "account_ids": []string{"abc"}, "secret": w.Secret()}, 422, "invalid-worker-app"},
		{"short secret", map[string]any{"name": "x", "url": w.URL(), "account_ids": []string{"1"}, "secret": "short"}, 422, "invalid-worker-app"},
		{"account taken", valid, 409, "conflict"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			var raw []byte
			if s, ok := tt.body.(string); ok {
				req := mustRequest(t, http.MethodPost, h.srv.URL+"/worker-apps/", strings.NewReader(s))
				req.Header.Set("Authorization", "Bearer "+adminToken)
				resp, raw = h.do(req)
			} else {
				resp, raw = h.admin(http.MethodPost, "/worker-apps/", tt.body)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.want, raw)
			}
			wantProblem(t, resp, raw, tt.kind)
		})
	}

	// Each invalid field is named, so that a form can show the reason by it.
	resp, raw = h.admin(http.MethodPost, "/worker-apps/", map[string]any{"name": " ", "url": "ftp://x", "secret": "short"})
	var prob struct {
		Fields []struct{ Field, Detail string } `json:"fields"`
	}
	if err := json.Unmarshal(raw, &prob); err != nil || resp.StatusCode != 422 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	var named []string
	for _, f := range prob.Fields {
		if f.Detail == "" {
			t.Errorf("field %s without a reason", f.Field)
		}
		named = append(named, f.Field)
	}
	if !slices.Equal(named, []string{"name", "url", "secret"}) {
		t.Errorf("fields named %v, want name, url, secret: %s", named, raw)
	}

	resp, raw = h.admin(http.MethodGet, "/worker-apps/"+app.ID, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), accountA) {
		t.Errorf("get: %d %s", resp.StatusCode, raw)
	}
	resp, raw = h.admin(http.MethodPut, "/worker-apps/"+app.ID, map[string]any{"name": "renamed", "url": w.URL(), "account_ids": []string{accountA, accountB}})
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "renamed") {
		t.Errorf("put: %d %s", resp.StatusCode, raw)
	}
	apps, _ := h.store.ListApps(t.Context())
	routes, _ := h.store.ListRoutes(t.Context(), mapper.RouteQuery{AppID: app.ID})
	if i := slices.IndexFunc(apps, func(a mapper.WorkerApp) bool { return a.ID == app.ID }); i < 0 || apps[i].Secret != w.Secret() || len(routes.Items) != 2 {
		t.Errorf("after PUT without secret: %+v, routes %+v", apps, routes)
	}
	resp, raw = h.admin(http.MethodGet, "/worker-apps/", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "renamed") {
		t.Errorf("list: %d %s", resp.StatusCode, raw)
	}
	resp, _ = h.admin(http.MethodDelete, "/worker-apps/"+app.ID, nil)
	if resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	resp, raw = h.admin(http.MethodGet, "/worker-apps/"+app.ID, nil)
	if resp.StatusCode != 404 {
		t.Errorf("get after delete: %d", resp.StatusCode)
	}
	wantProblem(t, resp, raw, "not-found")
}

func TestRoutingErrorsAreProblems(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	resp, raw := h.do(mustRequest(t, http.MethodGet, h.srv.URL+"/nope", nil))
	if resp.StatusCode != 404 {
		t.Fatalf("%d", resp.StatusCode)
	}
	wantProblem(t, resp, raw, "not-found")
	resp, raw = h.do(mustRequest(t, http.MethodDelete, h.srv.URL+"/webhook/", nil))
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("%d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	wantProblem(t, resp, raw, "method-not-allowed")
}

func TestLogsAndMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addApp("a", accountA)
	var ids []string
	for i := range 5 {
		ids = append(ids, h.accept(mappertest.NewWebhook().Comment(accountA, "1", "c"+strings.Repeat("x", i), "x").Bytes()))
	}
	h.settled(h.accept(mappertest.NewWebhook().Comment(accountC, "1", "lost", "x").Bytes()))
	for _, id := range ids {
		h.settled(id)
	}
	// Page through delivered events two at a time: every one exactly once.
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		resp, raw := h.admin(http.MethodGet, "/monitoring/webhook-logs?status=delivered&limit=2&cursor="+cursor, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
		var page struct {
			Events     []mapper.Event `json:"events"`
			NextCursor string         `json:"next_cursor"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if seen[e.ID] || e.Status != mapper.EventDelivered {
				t.Errorf("event %s (%s) seen twice or wrong status", e.ID, e.Status)
			}
			seen[e.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 5 {
		t.Errorf("paged through %d events, want 5", len(seen))
	}
	for _, q := range []string{"status=bogus", "limit=0", "limit=x", "since=yesterday", "cursor=%25%25"} {
		resp, raw := h.admin(http.MethodGet, "/monitoring/webhook-logs?"+q, nil)
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", q, resp.StatusCode, raw)
		}
	}
	resp, raw := h.admin(http.MethodGet, "/monitoring/metrics", nil)
	var mr mappertest.Metrics
	if resp.StatusCode != 200 || json.Unmarshal(raw, &mr) != nil {
		t.Fatalf("metrics: %d %s", resp.StatusCode, raw)
	}
	// Totals are counters; the store's figures are what is live, here
	// nothing.
	if mr.Counters.Webhooks["accepted"] != 6 || mr.Counters.Routing["unroutable"] != 1 || mr.Counters.Attempts["delivered"] != 5 ||
		!maps.Equal(mr.Store.EventsByStatus, map[string]int64{"pending": 0, "dispatched": 0, "dead": 0}) ||
		!maps.Equal(mr.Store.DeliveriesByStatus, map[string]int64{"pending": 0, "dead": 0}) {
		t.Errorf("metrics %s", raw)
	}
}

// TestHandlersUnderPrefixes: WebhookHandler and AdminHandler mounted
// apart, each under its own prefix with http.StripPrefix, serve their own
// routes only; a created app's Location keeps the admin prefix.
func TestHandlersUnderPrefixes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	mux := http.NewServeMux()
	mux.Handle("/meta/", http.StripPrefix("/meta", h.m.WebhookHandler()))
	mux.Handle("/ops/", http.StripPrefix("/ops", h.m.AdminHandler()))
	srv := newServer(t, mux)
	worker := mappertest.NewWorkerApp("secret-of-prefixed-0123456789")
	t.Cleanup(worker.Close)
	body := `{"name":"p","url":"` + worker.URL() + `","account_ids":["` + accountA + `"],"secret":"` + worker.Secret() + `"}`
	req := mustRequest(t, http.MethodPost, srv+"/ops/worker-apps/", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, raw := h.do(req)
	var app mapper.WorkerApp
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &app) != nil {
		t.Fatalf("create under /ops: %d %s", resp.StatusCode, raw)
	}
	if loc := resp.Header.Get("Location"); loc != "/ops/worker-apps/"+app.ID {
		t.Errorf("Location %q", loc)
	}
	resp, raw = h.do(mappertest.NewWebhook().Comment(accountA, "1", "17900000000000001", "via prefix").Request(srv+"/meta/webhook/", metaSecret))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook under /meta: %d %s", resp.StatusCode, raw)
	}
	if _, err := worker.WaitFor(ctxTimeout(t), 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/meta/worker-apps/", http.StatusNotFound},
		{"/meta/monitoring/webhook-logs", http.StatusNotFound},
		{"/meta/monitoring/health", http.StatusOK},
		{"/ops/webhook/?hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=1", http.StatusNotFound},
		{"/ops/monitoring/health", http.StatusOK},
		{"/ops/worker-apps/" + app.ID, http.StatusOK},
	} {
		req := mustRequest(t, http.MethodGet, srv+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, raw := h.do(req); resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d: %s", tc.path, resp.StatusCode, tc.want, raw)
		}
	}
}
