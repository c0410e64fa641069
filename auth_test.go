package mapper_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Every route of the table is tried with no token, a wrong one and the
// right one: an admin route must refuse the first two, and the public
// routes are exactly the ones Meta and load balancers need.
func TestEveryAdminRouteNeedsTheToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	public := []string{"GET /webhook/{$}", "GET /webhook", "POST /webhook/{$}", "POST /webhook", "GET /monitoring/health", "GET /monitoring/live", "GET /monitoring/ready",
		"GET /openapi.json", "GET /docs", "GET /redoc", "GET /docs-assets/{file...}"}
	table := h.m.RouteTable()
	admin := 0
	for pattern, open := range table {
		if open != slices.Contains(public, pattern) {
			t.Errorf("%s: public %v; the public routes are %v", pattern, open, public)
		}
		if open {
			continue
		}
		admin++
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{$}", "", "{id}", "x1", "{account_id}", "17841400000000001").Replace(path)
		for _, auth := range []string{"", "Bearer wrong-" + adminToken, "Basic " + adminToken, "Bearer " + adminToken} {
			req := mustRequest(t, method, h.srv.URL+path, strings.NewReader("{}"))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, raw := h.do(req)
			switch right := auth == "Bearer "+adminToken; {
			case !right && resp.StatusCode != http.StatusUnauthorized:
				t.Errorf("%s with %q: %d, want 401", pattern, auth, resp.StatusCode)
			case right && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusMethodNotAllowed || strings.Contains(string(raw), "no route for")):
				t.Errorf("%s with the token: %d %s", pattern, resp.StatusCode, raw)
			}
		}
	}
	if admin < 18 {
		t.Errorf("%d admin routes in the table, want all 18", admin)
	}
}
