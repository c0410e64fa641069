package mapper_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// routePage is the body of GET /worker-apps/{id}/accounts.
type routePage struct {
	Accounts []struct {
		AccountID string   `json:"account_id"`
		Fields    []string `json:"fields"`
	} `json:"accounts"`
	NextCursor string `json:"next_cursor"`
}

// accountsOf pages through an app's accounts, limit at a time.
func (h *harness) accountsOf(appID string, limit int) []string {
	h.t.Helper()
	var out []string
	cursor := ""
	for {
		resp, raw := h.admin(http.MethodGet, fmt.Sprintf("/worker-apps/%s/accounts?limit=%d&cursor=%s", appID, limit, cursor), nil)
		var page routePage
		if resp.StatusCode != 200 || json.Unmarshal(raw, &page) != nil || len(page.Accounts) > limit {
			h.t.Fatalf("accounts of %s: %d %s", appID, resp.StatusCode, raw)
		}
		for _, a := range page.Accounts {
			out = append(out, a.AccountID)
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// Routes as a resource: one account at a time, idempotently, with its
// own fields; removal; pages; which app serves an account; webhooks
// follow at once.
func TestRoutesOneAtATime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	mod, modID := h.addFieldApp("mod", []string{"comments"})
	inbox, inboxID := h.addFieldApp("inbox", []string{"messages"})

	resp, raw := h.admin(http.MethodPut, "/worker-apps/"+modID+"/accounts/"+accountA, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"account_id":"`+accountA+`"`) {
		t.Fatalf("put route: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := h.admin(http.MethodPut, "/worker-apps/"+modID+"/accounts/"+accountA, nil); resp.StatusCode != 200 {
		t.Fatalf("put again (idempotent): %d %s", resp.StatusCode, raw)
	}
	// inbox takes messages of A too, and the live comments by the route's
	// own fields.
	resp, raw = h.admin(http.MethodPut, "/worker-apps/"+inboxID+"/accounts/"+accountA, map[string]any{"fields": []string{"messages", "live_comments"}})
	if resp.StatusCode != 200 {
		t.Fatalf("put route with fields: %d %s", resp.StatusCode, raw)
	}
	// The same field again names the account, the field and the holder.
	resp, raw = h.admin(http.MethodPut, "/worker-apps/"+modID+"/accounts/"+accountA, map[string]any{"fields": []string{"comments", "messages"}})
	var p struct {
		Detail    string `json:"detail"`
		Conflicts []struct {
			AccountID string `json:"account_id"`
			Field     string `json:"field"`
			AppID     string `json:"app_id"`
		} `json:"conflicts"`
	}
	if resp.StatusCode != 409 || json.Unmarshal(raw, &p) != nil || len(p.Conflicts) != 1 ||
		p.Conflicts[0].AccountID != accountA || p.Conflicts[0].Field != "messages" || p.Conflicts[0].AppID != inboxID {
		t.Fatalf("clashing route: %d %s", resp.StatusCode, raw)
	}
	wantProblem(t, resp, raw, "conflict")

	resp, raw = h.admin(http.MethodGet, "/accounts/"+accountA, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"app_id":"`+modID+`","app_name":"mod","enabled":true,"fields":["comments"]`) ||
		!strings.Contains(string(raw), `"fields":["messages","live_comments"]`) {
		t.Errorf("who serves A: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := h.admin(http.MethodGet, "/accounts/"+accountC, nil); resp.StatusCode != 404 {
		t.Errorf("an account nobody serves: %d %s", resp.StatusCode, raw)
	}

	// A webhook follows the routes just made: comments to mod, messages
	// and live comments to inbox.
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "1", "c1", "x").Message(accountA, "u1", "m1", "hi").Bytes())
	if ev := h.settled(id); ev.Status != mapper.EventDelivered || len(mod.Received()) != 1 || len(inbox.Received()) != 1 {
		t.Fatalf("event %s; mod got %d, inbox %d", ev.Status, len(mod.Received()), len(inbox.Received()))
	}

	// Removal: 204, then 404; the account's webhooks are unroutable again.
	if resp, raw := h.admin(http.MethodDelete, "/worker-apps/"+modID+"/accounts/"+accountA, nil); resp.StatusCode != 204 {
		t.Fatalf("delete route: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := h.admin(http.MethodDelete, "/worker-apps/"+modID+"/accounts/"+accountA, nil); resp.StatusCode != 404 {
		t.Errorf("delete again: %d %s", resp.StatusCode, raw)
	}
	id = h.accept(mappertest.NewWebhook().Comment(accountA, "1", "c2", "y").Bytes())
	if ev := h.settled(id); ev.Status != mapper.EventUnroutable {
		t.Errorf("comment after its route went: %s", ev.Status)
	}

	for _, tc := range []struct {
		method, path string
		body         any
		want         int
	}{
		{http.MethodPut, "/worker-apps/nope/accounts/" + accountA, nil, 404},
		{http.MethodPut, "/worker-apps/" + modID + "/accounts/abc", nil, 422},
		{http.MethodPut, "/worker-apps/" + modID + "/accounts/" + accountB, map[string]any{"fields": []string{"comment"}}, 422},
		{http.MethodPut, "/worker-apps/" + modID + "/accounts/" + accountB, map[string]any{"account_id": accountC}, 422},
		{http.MethodPut, "/worker-apps/" + modID + "/accounts/" + accountB, map[string]any{"colour": "red"}, 400},
		{http.MethodGet, "/worker-apps/nope/accounts", nil, 404},
		{http.MethodGet, "/worker-apps/" + modID + "/accounts?field=nope", nil, 400},
		{http.MethodGet, "/worker-apps/" + modID + "/accounts?cursor=forged", nil, 400},
		{http.MethodGet, "/accounts/abc", nil, 400},
	} {
		if resp, raw := h.admin(tc.method, tc.path, tc.body); resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.want, raw)
		}
	}
}

// A batch is applied whole or not at all, says what went wrong item by
// item, and an app with many routes is shown without them.
func TestRouteBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, holderID := h.addApp("holder", "900", "901")
	_, bigID := h.addApp("big")
	var put []map[string]any
	for i := range 150 {
		put = append(put, map[string]any{"account_id": fmt.Sprint(1000 + i)})
	}
	resp, raw := h.admin(http.MethodPost, "/worker-apps/"+bigID+"/accounts:batch", map[string]any{"put": put})
	if resp.StatusCode != 200 || strings.Count(string(raw), `"action":"put"`) != 150 {
		t.Fatalf("batch of 150: %d %.300s", resp.StatusCode, raw)
	}
	if got := h.accountsOf(bigID, 40); len(got) != 150 || !slices.IsSorted(got) || got[0] != "1000" {
		t.Errorf("pages of 40: %d accounts", len(got))
	}
	// The app is listed without its accounts past 100, and a PUT that
	// round-trips such a view keeps them.
	resp, raw = h.admin(http.MethodGet, "/worker-apps/"+bigID, nil)
	var view map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(raw, &view) != nil || view["accounts_truncated"] != true || view["account_ids"] != nil {
		t.Fatalf("view of an app with 150 accounts: %s", raw)
	}
	view["secret"] = ""
	for _, k := range []string{"id", "created_at", "updated_at", "circuit", "in_flight", "accounts_truncated"} {
		delete(view, k)
	}
	if resp, raw := h.admin(http.MethodPut, "/worker-apps/"+bigID, view); resp.StatusCode != 200 {
		t.Fatalf("PUT of the view: %d %s", resp.StatusCode, raw)
	}
	if got := h.accountsOf(bigID, 500); len(got) != 150 {
		t.Errorf("after a PUT without account_ids: %d accounts, want 150 kept", len(got))
	}

	// Clashes with another app: 409 naming each, nothing applied.
	resp, raw = h.admin(http.MethodPost, "/worker-apps/"+bigID+"/accounts:batch", map[string]any{
		"put": []map[string]any{{"account_id": "5"}, {"account_id": "900"}, {"account_id": "901"}}, "remove": []string{"1000"}})
	var p struct {
		Conflicts []struct {
			AccountID string `json:"account_id"`
			AppID     string `json:"app_id"`
		} `json:"conflicts"`
	}
	if resp.StatusCode != 409 || json.Unmarshal(raw, &p) != nil || len(p.Conflicts) != 2 || p.Conflicts[0].AppID != holderID {
		t.Fatalf("clashing batch: %d %s", resp.StatusCode, raw)
	}
	if got := h.accountsOf(bigID, 500); len(got) != 150 || got[0] != "1000" {
		t.Errorf("a refused batch changed the routes: %d", len(got))
	}
	// Bad items: 422 with their places, nothing applied.
	resp, raw = h.admin(http.MethodPost, "/worker-apps/"+bigID+"/accounts:batch", map[string]any{
		"put": []map[string]any{{"account_id": "6"}, {"account_id": "x"}, {"account_id": "7", "fields": []string{"nope"}}}, "remove": []string{"6"}})
	var bad struct {
		Errors []struct{ Index int } `json:"errors"`
	}
	if resp.StatusCode != 422 || json.Unmarshal(raw, &bad) != nil || len(bad.Errors) != 3 || bad.Errors[0].Index != 1 || bad.Errors[2].Index != 3 {
		t.Fatalf("invalid batch: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := h.admin(http.MethodPost, "/worker-apps/"+bigID+"/accounts:batch", map[string]any{}); resp.StatusCode != 422 {
		t.Errorf("empty batch: %d %s", resp.StatusCode, raw)
	}
	// Removal in bulk.
	resp, raw = h.admin(http.MethodPost, "/worker-apps/"+bigID+"/accounts:batch", map[string]any{"remove": []string{"1000", "1001", "404"}})
	if resp.StatusCode != 200 || len(h.accountsOf(bigID, 500)) != 148 {
		t.Errorf("bulk removal: %d %s", resp.StatusCode, raw)
	}
}

// Concurrent onboardings through the API never lose one another.
func TestConcurrentOnboarding(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, appID := h.addApp("platform")
	const clients, each = 8, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				acc := fmt.Sprint(5000 + c*each + i)
				if resp, raw := h.admin(http.MethodPut, "/worker-apps/"+appID+"/accounts/"+acc, nil); resp.StatusCode != 200 {
					t.Errorf("onboard %s: %d %s", acc, resp.StatusCode, raw)
				}
			}
		})
	}
	wg.Wait()
	if got := h.accountsOf(appID, 500); len(got) != clients*each {
		t.Errorf("%d accounts routed, want %d", len(got), clients*each)
	}
}

// A route written straight through the Store, as another replica or an
// embedding service would, is used within the cache TTL.
func TestRouteSeenWithinCacheTTL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithWorkerAppCacheTTL(50*time.Millisecond))
	w, appID := h.addApp("late")
	first := h.accept(mappertest.NewWebhook().Comment(accountC, "1", "ttl1", "x").Bytes())
	if ev := h.settled(first); ev.Status != mapper.EventUnroutable {
		t.Fatalf("before the route: %s", ev.Status)
	}
	if err := h.store.SetRoutes(t.Context(), appID, []mapper.Route{{AccountID: accountC}}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // past the TTL of what routing read
	second := h.accept(mappertest.NewWebhook().Comment(accountC, "1", "ttl2", "y").Bytes())
	if ev := h.settled(second); ev.Status != mapper.EventDelivered || len(w.Received()) != 1 {
		t.Errorf("after the TTL: %s, app got %d", ev.Status, len(w.Received()))
	}
}
