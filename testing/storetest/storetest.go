// Package storetest is the conformance suite every mapper.Store must pass,
// in the style of testing/slogtest: call Run from a test of your store with
// a function that returns a fresh, empty store, and each property is
// checked in its own subtest.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) mapper.Store { return newEmptyStore(t) })
//	}
//
// The suite covers what the Mapper relies on: not-found and conflict
// errors, deduplication that holds under concurrent inserts, leases that
// hide claimed work and expire, claimers that never share work, stale
// lease holders refused, events settled when their last delivery ends,
// keyset pagination with equal timestamps, metrics and pruning.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
)

// Run runs every conformance check against stores made by newStore. Each
// subtest gets a new store, which must be empty.
func Run(t *testing.T, newStore func(t *testing.T) mapper.Store) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newStore(t))
		})
	}
}

var cases = []struct {
	name string
	fn   func(*testing.T, mapper.Store)
}{
	{"apps_crud_and_not_found", appsCRUD},
	{"account_served_by_one_app", accountConflicts},
	{"routes_by_account", routesByAccount},
	{"field_routes_one_app_per_account_and_field", fieldRoutes},
	{"routes_put_remove_page_and_clash", routesAsResource},
	{"concurrent_route_writes_never_lost", concurrentRoutes},
	{"event_round_trip", eventRoundTrip},
	{"event_id_conflict", eventConflict},
	{"dedup_across_and_within_events", dedup},
	{"dedup_race_one_winner", dedupRace},
	{"dedup_of_a_large_batch", dedupLarge},
	{"claim_due_only_lease_hides", claimDue},
	{"lease_expiry_and_stale_holder", leaseExpiry},
	{"concurrent_claimers_never_share", concurrentClaims},
	{"route_record_and_settle", routeAndSettle},
	{"original_body_read_from_payload", originalBody},
	{"retry_event", retryEvent},
	{"route_with_attempts", recordRoute},
	{"route_settled_by_caller", recordRouteSettled},
	{"route_refused_stores_nothing", recordRouteRefused},
	{"list_filters_and_pagination_with_ties", listEvents},
	{"stats", stats},
	{"prune", prune},
	{"app_delivery_settings_round_trip", appSettings},
	{"skip_apps_and_release", skipAndRelease},
	{"ordered_waits_for_older", orderedClaims},
	{"find_deliveries", findDeliveries},
	{"reopen_dead_delivery_once", reopenDelivery},
	{"reopen_unroutable_event", reopenEvent},
	{"nul_in_input_is_not_unavailability", nulInput},
	{"extend_leases_of_held_work", extendLeases},
}

var ctx = context.Background()

// base is a fixed, microsecond-precise time: stores may keep no more.
var base = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newEvent(id string, at time.Time, account string, keys ...string) *mapper.Event {
	ev := &mapper.Event{
		ID: id, ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
		Payload:      []byte(`{"object":"instagram","entry":[{"id":"` + account + `","note":"\u00e4 \/ \ud83d\ude0d"}]}`),
		Signature:    "sha256=" + fmt.Sprintf("%064d", 0),
		AccountIDs:   []string{account},
		TraceContext: `{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`,
	}
	for _, k := range keys {
		ev.Items = append(ev.Items, mapper.EventItem{Key: k})
	}
	return ev
}

func createApp(t *testing.T, s mapper.Store, id string, enabled bool, accounts ...string) {
	t.Helper()
	must(t, s.CreateApp(ctx, &mapper.WorkerApp{ID: id, Name: id, URL: "http://127.0.0.1:1/" + id, Secret: "secret-" + id,
		AccountIDs: accounts, Enabled: enabled, CreatedAt: base, UpdatedAt: base}))
}

// getApp finds one app through ListApps.
func getApp(s mapper.Store, id string) (*mapper.WorkerApp, error) {
	apps, err := s.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	for i := range apps {
		if apps[i].ID == id {
			return &apps[i], nil
		}
	}
	return nil, fmt.Errorf("app %s: %w", id, mapper.ErrNotFound)
}

// accountsOf reads every route of an app, a page of two at a time, and
// returns their accounts in order.
func accountsOf(t *testing.T, s mapper.Store, appID string) []string {
	t.Helper()
	var out []string
	q := mapper.RouteQuery{AppID: appID, Limit: 2}
	for {
		page, err := s.ListRoutes(ctx, q)
		must(t, err)
		if len(page.Items) > 2 {
			t.Fatalf("page of %d routes, limit 2", len(page.Items))
		}
		for _, r := range page.Items {
			if r.AppID != appID {
				t.Fatalf("route of app %s listed for app %s", r.AppID, appID)
			}
			out = append(out, r.AccountID)
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}

// routesFor reads the routes of accounts, by account.
func routesFor(t *testing.T, s mapper.Store, accounts ...string) map[string][]mapper.Route {
	t.Helper()
	page, err := s.ListRoutes(ctx, mapper.RouteQuery{Accounts: accounts, Limit: 500})
	must(t, err)
	out := map[string][]mapper.Route{}
	for _, r := range page.Items {
		out[r.AccountID] = append(out[r.AccountID], r)
	}
	return out
}

func appsCRUD(t *testing.T, s mapper.Store) {
	if err := s.DeleteApp(ctx, "missing"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("DeleteApp of a missing app: %v, want ErrNotFound", err)
	}
	if err := s.UpdateApp(ctx, &mapper.WorkerApp{ID: "missing"}); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("UpdateApp of a missing app: %v, want ErrNotFound", err)
	}
	createApp(t, s, "b", true, "2")
	createApp(t, s, "a", true, "3", "1")
	got, err := getApp(s, "a")
	must(t, err)
	if got.Name != "a" || got.Secret != "secret-a" || !got.Enabled || got.AccountIDs != nil || !got.CreatedAt.Equal(base) {
		t.Errorf("stored app (AccountIDs nil: routes are read with ListRoutes): %+v", got)
	}
	if acc := accountsOf(t, s, "a"); !slices.Equal(acc, []string{"1", "3"}) {
		t.Errorf("routes of a: %v, want [1 3]", acc)
	}
	list, err := s.ListApps(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
		t.Errorf("ListApps (by CreatedAt, then ID): %+v", list)
	}
	got.Name, got.AccountIDs, got.Enabled = "renamed", []string{"4"}, false
	must(t, s.UpdateApp(ctx, got))
	again, err := getApp(s, "a")
	must(t, err)
	if again.Name != "renamed" || again.Enabled || !again.CreatedAt.Equal(base) || !slices.Equal(accountsOf(t, s, "a"), []string{"4"}) {
		t.Errorf("after UpdateApp: %+v, routes %v", again, accountsOf(t, s, "a"))
	}
	// AccountIDs nil keeps the routes.
	again.Name, again.AccountIDs = "kept", nil
	must(t, s.UpdateApp(ctx, again))
	if acc := accountsOf(t, s, "a"); !slices.Equal(acc, []string{"4"}) {
		t.Errorf("update without AccountIDs changed the routes: %v", acc)
	}
	must(t, s.DeleteApp(ctx, "a"))
	if _, err := getApp(s, "a"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("after DeleteApp: %v", err)
	}
	if r := routesFor(t, s, "4"); len(r) != 0 {
		t.Errorf("routes of a deleted app remain: %v", r)
	}
	// The deleted app's account is free again.
	createApp(t, s, "c", true, "4")
}

func accountConflicts(t *testing.T, s mapper.Store) {
	createApp(t, s, "a", true, "1", "2")
	err := s.CreateApp(ctx, &mapper.WorkerApp{ID: "b", Name: "b", URL: "http://x", Secret: "s", AccountIDs: []string{"3", "2"}, CreatedAt: base, UpdatedAt: base})
	if !errors.Is(err, mapper.ErrConflict) {
		t.Fatalf("second app for account 2: %v, want ErrConflict", err)
	}
	// Nothing of the refused app was kept.
	if _, err := getApp(s, "b"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("refused app was stored: %v", err)
	}
	if r := routesFor(t, s, "3"); len(r) != 0 {
		t.Errorf("refused app's routes were stored: %v", r)
	}
	createApp(t, s, "c", true, "3")
	if err := s.CreateApp(ctx, &mapper.WorkerApp{ID: "a", Name: "a", URL: "http://x", Secret: "s", CreatedAt: base, UpdatedAt: base}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("duplicate app ID: %v, want ErrConflict", err)
	}
	if err := s.UpdateApp(ctx, &mapper.WorkerApp{ID: "c", Name: "c", URL: "http://x", Secret: "s", AccountIDs: []string{"1"}}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("update taking another app's account: %v, want ErrConflict", err)
	}
	if got, _ := getApp(s, "c"); got == nil || got.Name != "c" || !slices.Equal(accountsOf(t, s, "c"), []string{"3"}) {
		t.Errorf("refused update changed the app: %+v", got)
	}
}

// routesByAccount: lookups by account return every app's route, none for
// an account no app serves, and nothing for an empty list.
func routesByAccount(t *testing.T, s mapper.Store) {
	createApp(t, s, "on", true, "1", "2")
	createApp(t, s, "off", false, "3")
	got := routesFor(t, s, "1", "2", "3", "4")
	if len(got) != 3 || got["1"][0].AppID != "on" || got["3"][0].AppID != "off" || len(got["4"]) != 0 {
		t.Errorf("routes by account: %v", got)
	}
	if page, err := s.ListRoutes(ctx, mapper.RouteQuery{Accounts: []string{}}); err != nil || len(page.Items) != 0 {
		t.Errorf("no accounts: %v %v", page, err)
	}
}

func fieldApp(id string, fields []string, accounts ...string) *mapper.WorkerApp {
	return &mapper.WorkerApp{ID: id, Name: id, URL: "http://127.0.0.1:1/" + id, Secret: "secret-" + id,
		AccountIDs: accounts, Fields: fields, Enabled: true, CreatedAt: base, UpdatedAt: base}
}

// fieldRoutes: one account split across apps by field; an app that would
// take a pair another app serves is refused with a RouteConflictError
// naming the pair and the holder, and leaves nothing behind.
func fieldRoutes(t *testing.T, s mapper.Store) {
	must(t, s.CreateApp(ctx, fieldApp("mod", []string{"comments", "live_comments"}, "1", "2")))
	must(t, s.CreateApp(ctx, fieldApp("inbox", []string{"messages"}, "1")))
	for _, tc := range []struct {
		app          *mapper.WorkerApp
		acc, field   string
		holder       string
		anyFieldOkay bool
	}{
		{fieldApp("all", nil, "3", "1"), "1", "", "", true},
		{fieldApp("dm", []string{"standby", "messages"}, "1"), "1", "messages", "inbox", false},
		{fieldApp("live", []string{"live_comments"}, "2"), "2", "live_comments", "mod", false},
	} {
		err := s.CreateApp(ctx, tc.app)
		var rc *mapper.RouteConflictError
		if !errors.Is(err, mapper.ErrConflict) || !errors.As(err, &rc) {
			t.Fatalf("app %s: %v, want a RouteConflictError", tc.app.ID, err)
		}
		if rc.AccountID != tc.acc || (!tc.anyFieldOkay && (rc.Field != tc.field || rc.AppID != tc.holder)) {
			t.Errorf("app %s: conflict %+v, want account %s field %q held by %s", tc.app.ID, rc, tc.acc, tc.field, tc.holder)
		}
		if _, err := getApp(s, tc.app.ID); !errors.Is(err, mapper.ErrNotFound) {
			t.Errorf("refused app %s was stored: %v", tc.app.ID, err)
		}
	}
	must(t, s.CreateApp(ctx, fieldApp("standby", []string{"standby"}, "1")))
	got := routesFor(t, s, "1", "2", "3")
	var ids []string
	for _, r := range got["1"] {
		ids = append(ids, r.AppID)
	}
	if !slices.Equal(ids, []string{"inbox", "mod", "standby"}) || len(got["2"]) != 1 || len(got["3"]) != 0 {
		t.Errorf("routes (by app ID): %v", got)
	}
	mod, err := getApp(s, "mod")
	must(t, err)
	if !slices.Equal(mod.Fields, []string{"comments", "live_comments"}) {
		t.Errorf("fields did not round-trip: %+v", mod)
	}
	// Taking every field of account 1 clashes, with the routes kept as
	// they are; giving up a field frees it.
	inbox, err := getApp(s, "inbox")
	must(t, err)
	inbox.Fields = nil
	if err := s.UpdateApp(ctx, inbox); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("update taking every field of a shared account: %v, want ErrConflict", err)
	}
	if inbox, _ = getApp(s, "inbox"); inbox == nil || !slices.Equal(inbox.Fields, []string{"messages"}) {
		t.Errorf("refused update was stored: %+v", inbox)
	}
	mod.Fields = []string{"comments"}
	must(t, s.UpdateApp(ctx, mod))
	must(t, s.CreateApp(ctx, fieldApp("live", []string{"live_comments"}, "1", "2")))
	must(t, s.DeleteApp(ctx, "standby"))
	must(t, s.CreateApp(ctx, fieldApp("standby2", []string{"standby"}, "1")))
}

// routesAsResource: routes put one at a time and in bulk, replaced with
// new fields, removed; pages by app; a route's own fields override its
// app's in clashes and in the field filter.
func routesAsResource(t *testing.T, s mapper.Store) {
	if err := s.SetRoutes(ctx, "missing", []mapper.Route{{AccountID: "1"}}, nil); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("routes of a missing app: %v, want ErrNotFound", err)
	}
	must(t, s.CreateApp(ctx, fieldApp("mod", []string{"comments"})))
	must(t, s.CreateApp(ctx, fieldApp("inbox", []string{"messages"})))
	must(t, s.SetRoutes(ctx, "mod", []mapper.Route{{AccountID: "5"}, {AccountID: "1"}, {AccountID: "3"}}, nil))
	must(t, s.SetRoutes(ctx, "mod", []mapper.Route{{AccountID: "1"}, {AccountID: "2", Fields: []string{"messages"}}}, nil)) // 1 again: idempotent
	if acc := accountsOf(t, s, "mod"); !slices.Equal(acc, []string{"1", "2", "3", "5"}) {
		t.Errorf("routes of mod: %v", acc)
	}
	// Route 2 of mod takes messages, so inbox cannot; route 1 takes mod's
	// comments, so inbox's messages of 1 are free.
	err := s.SetRoutes(ctx, "inbox", []mapper.Route{{AccountID: "1"}, {AccountID: "2"}, {AccountID: "9", Fields: []string{"comments"}}}, nil)
	var rc *mapper.RouteConflictError
	if !errors.As(err, &rc) || rc.AccountID != "2" || rc.Field != "messages" || rc.AppID != "mod" {
		t.Fatalf("clashing route: %v, want account 2 field messages held by mod", err)
	}
	if acc := accountsOf(t, s, "inbox"); len(acc) != 0 {
		t.Errorf("a refused batch stored routes: %v", acc)
	}
	// Every clash is reported, not only the first.
	must(t, s.SetRoutes(ctx, "inbox", []mapper.Route{{AccountID: "1"}}, nil))
	err = s.SetRoutes(ctx, "mod", []mapper.Route{{AccountID: "1", Fields: []string{"messages"}}, {AccountID: "7"}}, nil)
	if err == nil || !errors.Is(err, mapper.ErrConflict) {
		t.Fatalf("narrowing route 1 of mod to inbox's field: %v", err)
	}
	err = s.SetRoutes(ctx, "inbox", []mapper.Route{{AccountID: "2"}, {AccountID: "1"}, {AccountID: "3", Fields: []string{"comments"}}}, nil)
	if n := countConflicts(err); n != 2 {
		t.Errorf("two clashes (2 and 3): %d reported in %v", n, err)
	}
	// The field filter reads a route's own fields, else its app's.
	page, err := s.ListRoutes(ctx, mapper.RouteQuery{Field: "messages"})
	must(t, err)
	var got []string
	for _, r := range page.Items {
		got = append(got, r.AppID+"/"+r.AccountID)
	}
	if !slices.Equal(got, []string{"inbox/1", "mod/2"}) {
		t.Errorf("routes taking messages: %v", got)
	}
	// Removal, absent accounts skipped, together with a put.
	must(t, s.SetRoutes(ctx, "mod", []mapper.Route{{AccountID: "6"}}, []string{"3", "404"}))
	if acc := accountsOf(t, s, "mod"); !slices.Equal(acc, []string{"1", "2", "5", "6"}) {
		t.Errorf("after removing 3 and adding 6: %v", acc)
	}
	if _, err := s.ListRoutes(ctx, mapper.RouteQuery{Cursor: "forged"}); !errors.Is(err, mapper.ErrInvalidInput) {
		t.Errorf("forged cursor: %v, want ErrInvalidInput", err)
	}
}

func countConflicts(err error) int {
	n := 0
	var walk func(error)
	walk = func(err error) {
		if _, ok := err.(*mapper.RouteConflictError); ok {
			n++
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if u := errors.Unwrap(err); u != nil {
			walk(u)
		}
	}
	walk(err)
	return n
}

// concurrentRoutes: onboardings of one account each, at once, never lose
// one another, and of two apps taking the same account at once one wins.
func concurrentRoutes(t *testing.T, s mapper.Store) {
	must(t, s.CreateApp(ctx, fieldApp("a", nil)))
	must(t, s.CreateApp(ctx, fieldApp("b", nil)))
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() { errs <- s.SetRoutes(ctx, "a", []mapper.Route{{AccountID: fmt.Sprint(1000 + i)}}, nil) })
		wg.Go(func() {
			app := []string{"a", "b"}[i%2]
			errs <- s.SetRoutes(ctx, app, []mapper.Route{{AccountID: "7"}}, nil)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, mapper.ErrConflict) {
			t.Errorf("concurrent SetRoutes: %v", err)
		}
	}
	if acc := accountsOf(t, s, "a"); len(acc) < n || len(acc) > n+1 {
		t.Errorf("%d routes of a, want %d (+1 if it won account 7)", len(acc), n)
	}
	if r := routesFor(t, s, "7"); len(r["7"]) != 1 {
		t.Errorf("account 7 routed to %v, want exactly one app", r["7"])
	}
}

func eventRoundTrip(t *testing.T, s mapper.Store) {
	ev := newEvent("e1", base, "17841400000000001", "k1", "k2")
	ev.Items[0].Field, ev.Items[0].Kind = "comments", "change"
	must(t, s.CreateEvent(ctx, ev))
	got, err := s.GetEvent(ctx, "e1")
	must(t, err)
	if string(got.Payload) != string(ev.Payload) || got.Signature != ev.Signature || !got.ReceivedAt.Equal(base) ||
		got.Status != mapper.EventPending || len(got.Items) != 2 || got.Items[1].Key != "k2" || got.Items[0].Duplicate ||
		got.Items[0].Field != "comments" || got.Items[0].Kind != "change" ||
		!slices.Equal(got.AccountIDs, ev.AccountIDs) || got.Object != "instagram" || got.TraceContext != ev.TraceContext {
		t.Errorf("GetEvent: %+v", got)
	}
	if _, err := s.GetEvent(ctx, "missing"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("missing event: %v", err)
	}
	ignored := newEvent("e2", base, "1")
	ignored.Status = mapper.EventIgnored
	ignored.CompletedAt = &base
	must(t, s.CreateEvent(ctx, ignored))
	if got, _ := s.GetEvent(ctx, "e2"); got == nil || got.Status != mapper.EventIgnored {
		t.Errorf("an event with no items: %+v", got)
	}
}

func eventConflict(t *testing.T, s mapper.Store) {
	must(t, s.CreateEvent(ctx, newEvent("e1", base, "1", "k1")))
	if err := s.CreateEvent(ctx, newEvent("e1", base, "1", "k9")); !errors.Is(err, mapper.ErrConflict) {
		t.Fatalf("same event ID twice: %v, want ErrConflict", err)
	}
	// The refused event claimed no key.
	ev := newEvent("e2", base, "1", "k9")
	must(t, s.CreateEvent(ctx, ev))
	if ev.Items[0].Duplicate {
		t.Error("a refused event kept its key")
	}
}

func dedup(t *testing.T, s mapper.Store) {
	first := newEvent("e1", base, "1", "a", "b")
	must(t, s.CreateEvent(ctx, first))
	retry := newEvent("e2", base.Add(time.Second), "1", "a", "b")
	must(t, s.CreateEvent(ctx, retry))
	if retry.Status != mapper.EventDuplicate || !retry.Items[0].Duplicate || !retry.Items[1].Duplicate {
		t.Errorf("retry: %s %+v", retry.Status, retry.Items)
	}
	if got, _ := s.GetEvent(ctx, "e2"); got == nil || got.Status != mapper.EventDuplicate || got.CompletedAt == nil {
		t.Errorf("stored retry: %+v", got)
	}
	mixed := newEvent("e3", base.Add(2*time.Second), "1", "b", "c", "c")
	must(t, s.CreateEvent(ctx, mixed))
	want := []bool{true, false, true}
	for i, it := range mixed.Items {
		if it.Duplicate != want[i] {
			t.Errorf("item %d (%s): duplicate %v, want %v", i, it.Key, it.Duplicate, want[i])
		}
	}
	if mixed.Status != mapper.EventPending {
		t.Errorf("batch with a new item: %s", mixed.Status)
	}
	if got, _ := s.GetEvent(ctx, "e3"); got == nil || got.Items[0].Duplicate != true || got.Items[1].Duplicate {
		t.Errorf("stored flags: %+v", got)
	}
}

func dedupRace(t *testing.T, s mapper.Store) {
	const n = 16
	var wg sync.WaitGroup
	fresh := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			ev := newEvent(fmt.Sprintf("e%02d", i), base, "1", "same-change")
			if err := s.CreateEvent(ctx, ev); err != nil {
				t.Error(err)
				return
			}
			if !ev.Items[0].Duplicate {
				fresh <- ev.ID
			}
		})
	}
	wg.Wait()
	close(fresh)
	var winners []string
	for id := range fresh {
		winners = append(winners, id)
	}
	if len(winners) != 1 {
		t.Fatalf("%d concurrent copies got the key (%v), want exactly 1", len(winners), winners)
	}
	page, err := s.ListEvents(ctx, mapper.EventQuery{Status: mapper.EventPending, Limit: 100})
	must(t, err)
	if len(page.Items) != 1 || page.Items[0].ID != winners[0] {
		t.Errorf("pending events %v, want only %s", ids(page.Items), winners[0])
	}
}

func ids(evs []mapper.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func claimDue(t *testing.T, s mapper.Store) {
	due := newEvent("due", base, "1", "a")
	later := newEvent("later", base, "1", "b")
	later.NextAttemptAt = base.Add(time.Hour)
	dup := newEvent("dup", base, "1", "a")
	for _, e := range []*mapper.Event{due, later, dup} {
		must(t, s.CreateEvent(ctx, e))
	}
	got, err := s.ClaimEvents(ctx, base, 10, time.Minute)
	must(t, err)
	if len(got) != 1 || got[0].ID != "due" || got[0].LeaseToken == "" || string(got[0].Payload) != string(due.Payload) {
		t.Fatalf("claim: %+v", got)
	}
	if again, _ := s.ClaimEvents(ctx, base.Add(30*time.Second), 10, time.Minute); len(again) != 0 {
		t.Errorf("leased work claimed again within the lease: %v", ids(again))
	}
	if none, _ := s.ClaimEvents(ctx, base, 0, time.Minute); len(none) != 0 {
		t.Error("limit 0 claimed work")
	}
}

func leaseExpiry(t *testing.T, s mapper.Store) {
	must(t, s.CreateEvent(ctx, newEvent("e1", base, "1", "a")))
	first, err := s.ClaimEvents(ctx, base, 1, time.Minute)
	must(t, err)
	second, err := s.ClaimEvents(ctx, base.Add(2*time.Minute), 1, time.Minute)
	must(t, err)
	if len(first) != 1 || len(second) != 1 || first[0].LeaseToken == second[0].LeaseToken {
		t.Fatalf("expired lease not taken over: %v %v", first, second)
	}
	stale := first[0]
	stale.Status = mapper.EventUnroutable
	if err := s.RouteEvent(ctx, &stale, nil, nil); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale holder routed: %v, want ErrLeaseLost", err)
	}
	stale.Status = mapper.EventPending
	if err := s.RouteEvent(ctx, &stale, nil, nil); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale holder put it back: %v, want ErrLeaseLost", err)
	}
	cur := second[0]
	cur.Status = mapper.EventDispatched
	d := mapper.Delivery{ID: "d1", EventID: "e1", AppID: "a", OwnerIDs: []string{"1"}, Body: []byte("{}"), Status: mapper.DeliveryPending,
		NextAttemptAt: base.Add(3 * time.Minute), CreatedAt: base.Add(2 * time.Minute), LeaseToken: "router"}
	must(t, s.RouteEvent(ctx, &cur, []mapper.Delivery{d}, nil))
	// The router's lease on the delivery runs out; another claimer takes it.
	claimed, err := s.ClaimDeliveries(ctx, base.Add(4*time.Minute), 5, time.Minute, nil)
	must(t, err)
	if len(claimed) != 1 || claimed[0].LeaseToken == "router" || string(claimed[0].Body) != "{}" {
		t.Fatalf("delivery after lease expiry: %+v", claimed)
	}
	d.Status, d.Attempts = mapper.DeliveryDelivered, 1
	if err := s.RecordAttempt(ctx, &d, &mapper.Attempt{DeliveryID: "d1", Number: 1, StartedAt: base, Outcome: mapper.DeliveryDelivered}); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale holder recorded: %v, want ErrLeaseLost", err)
	}
	if as, _ := attemptsOf(s, "d1"); len(as) != 0 {
		t.Errorf("a refused attempt was recorded: %+v", as)
	}
	missing := mapper.Delivery{ID: "nope", LeaseToken: "x", Status: mapper.DeliveryDead}
	if err := s.RecordAttempt(ctx, &missing, &mapper.Attempt{DeliveryID: "nope", Number: 1}); !errors.Is(err, mapper.ErrNotFound) && !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("attempt for a missing delivery: %v", err)
	}
}

func concurrentClaims(t *testing.T, s mapper.Store) {
	const n = 120
	for i := range n {
		must(t, s.CreateEvent(ctx, newEvent(fmt.Sprintf("e%03d", i), base.Add(time.Duration(i)*time.Millisecond), "1", fmt.Sprintf("k%03d", i))))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				got, err := s.ClaimEvents(ctx, base.Add(time.Second), 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d events claimed, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s claimed %d times under one lease", id, c)
		}
	}
}

// routed stores an event with deliveries to the given apps, leased to the
// caller, and returns the deliveries.
func routed(t *testing.T, s mapper.Store, id string, unroutable []string, apps ...string) []mapper.Delivery {
	t.Helper()
	ev := newEvent(id, base, "1", "key-"+id)
	must(t, s.CreateEvent(ctx, ev))
	claimed, err := s.ClaimEvents(ctx, base, 100, time.Minute)
	must(t, err)
	var mine *mapper.Event
	for i := range claimed {
		if claimed[i].ID == id {
			mine = &claimed[i]
		}
	}
	if mine == nil {
		t.Fatalf("event %s not claimed", id)
	}
	mine.Status, mine.Unroutable, mine.Owners = mapper.EventDispatched, unroutable, []string{"1"}
	routedAt := base.Add(time.Second)
	mine.RoutedAt, mine.RouteAttempts = &routedAt, 1
	var ds []mapper.Delivery
	for _, a := range apps {
		ds = append(ds, mapper.Delivery{ID: id + "-" + a, EventID: id, AppID: a, OwnerIDs: []string{"1"}, Body: []byte(`{"for":"` + a + `"}`),
			Status: mapper.DeliveryPending, NextAttemptAt: base.Add(time.Minute), CreatedAt: routedAt, LeaseToken: "lease-" + a, TraceContext: mine.TraceContext})
	}
	must(t, s.RouteEvent(ctx, mine, ds, nil))
	return ds
}

func finish(t *testing.T, s mapper.Store, d *mapper.Delivery, status mapper.DeliveryStatus, code int, at time.Time) {
	t.Helper()
	d.Status, d.Attempts, d.LastStatusCode = status, d.Attempts+1, code
	if status.Terminal() {
		d.CompletedAt = &at
	} else {
		d.NextAttemptAt = at.Add(time.Minute)
	}
	must(t, s.RecordAttempt(ctx, d, &mapper.Attempt{DeliveryID: d.ID, Number: d.Attempts, StartedAt: at, Duration: 1500 * time.Microsecond,
		StatusCode: code, Outcome: status, ResponseBody: fmt.Sprintf("answer %d ä", code)}))
}

// listDeliveries is every delivery of an event, oldest first, through
// FindDeliveries' event filter.
func listDeliveries(t *testing.T, s mapper.Store, eventID string) ([]mapper.Delivery, error) {
	t.Helper()
	var out []mapper.Delivery
	q := mapper.DeliveryQuery{EventID: eventID, Limit: 2}
	for {
		page, err := s.FindDeliveries(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Items {
			if d.EventID != eventID || d.Body != nil {
				t.Errorf("FindDeliveries(EventID %s) gave %s of event %s, body %q", eventID, d.ID, d.EventID, d.Body)
			}
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			slices.Reverse(out)
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}

// reclaim claims every due delivery and gives ds the new leases.
func reclaim(t *testing.T, s mapper.Store, ds []mapper.Delivery) {
	t.Helper()
	cl, err := s.ClaimDeliveries(ctx, base.Add(5*time.Minute), 100, time.Minute, nil)
	must(t, err)
	for _, d := range cl {
		for j := range ds {
			if d.ID == ds[j].ID {
				ds[j].LeaseToken = d.LeaseToken
			}
		}
	}
}

func routeAndSettle(t *testing.T, s mapper.Store) {
	cases := []struct {
		id         string
		unroutable []string
		outcomes   []mapper.DeliveryStatus
		want       mapper.EventStatus
	}{
		{"all-delivered", nil, []mapper.DeliveryStatus{mapper.DeliveryDelivered, mapper.DeliveryDelivered}, mapper.EventDelivered},
		{"one-dead", nil, []mapper.DeliveryStatus{mapper.DeliveryDelivered, mapper.DeliveryDead}, mapper.EventDead},
		{"part-unroutable", []string{"9"}, []mapper.DeliveryStatus{mapper.DeliveryDelivered}, mapper.EventUnroutable},
	}
	for _, c := range cases {
		var apps []string
		for i := range c.outcomes {
			apps = append(apps, fmt.Sprintf("app%d", i))
		}
		ds := routed(t, s, c.id, c.unroutable, apps...)
		got, err := listDeliveries(t, s, c.id)
		must(t, err)
		if len(got) != len(ds) || got[0].AppID != "app0" || got[0].Status != mapper.DeliveryPending || got[0].TraceContext == "" {
			t.Fatalf("%s: deliveries %+v", c.id, got)
		}
		// A retry first, then the outcomes; the event stays dispatched
		// until the last delivery ends.
		finish(t, s, &ds[0], mapper.DeliveryPending, 503, base.Add(2*time.Second))
		for i := range ds {
			if ev, _ := s.GetEvent(ctx, c.id); ev.Status != mapper.EventDispatched {
				t.Fatalf("%s: settled early as %s", c.id, ev.Status)
			}
			// Retried work goes back to the claimable pool; take its lease again.
			if i == 0 {
				reclaim(t, s, ds)
			}
			finish(t, s, &ds[i], c.outcomes[i], 200, base.Add(time.Duration(3+i)*time.Second))
		}
		ev, err := s.GetEvent(ctx, c.id)
		must(t, err)
		if ev.Status != c.want || ev.CompletedAt == nil || ev.CompletedAt.Before(base.Add(3*time.Second)) {
			t.Errorf("%s: event %s completed %v, want %s", c.id, ev.Status, ev.CompletedAt, c.want)
		}
		as, err := attemptsOf(s, ds[0].ID)
		must(t, err)
		if len(as) != 2 || as[0].Number != 1 || as[0].StatusCode != 503 || as[0].Duration != 1500*time.Microsecond || as[1].Number != 2 ||
			!as[0].StartedAt.Equal(base.Add(2*time.Second)) || as[0].ResponseBody != "answer 503 ä" || as[0].Outcome != mapper.DeliveryPending ||
			as[1].StatusCode != 200 || as[1].Outcome != c.outcomes[0] || as[1].ResponseBody != "answer 200 ä" || !as[1].StartedAt.Equal(base.Add(3*time.Second)) {
			t.Errorf("%s: attempts %+v", c.id, as)
		}
	}
}

func originalBody(t *testing.T, s mapper.Store) {
	ev := newEvent("e1", base, "1", "a")
	must(t, s.CreateEvent(ctx, ev))
	claimed, err := s.ClaimEvents(ctx, base, 1, time.Minute)
	must(t, err)
	cl := claimed[0]
	cl.Status = mapper.EventDispatched
	d := mapper.Delivery{ID: "d1", EventID: "e1", AppID: "a", OwnerIDs: []string{"1"}, Body: ev.Payload, Original: true, MetaSignature: ev.Signature,
		Status: mapper.DeliveryPending, NextAttemptAt: base, CreatedAt: base, LeaseToken: ""}
	must(t, s.RouteEvent(ctx, &cl, []mapper.Delivery{d}, nil))
	got, err := s.ClaimDeliveries(ctx, base, 1, time.Minute, nil)
	must(t, err)
	if len(got) != 1 || string(got[0].Body) != string(ev.Payload) || !got[0].Original || got[0].MetaSignature != ev.Signature {
		t.Errorf("original delivery: %+v", got)
	}
}

func retryEvent(t *testing.T, s mapper.Store) {
	must(t, s.CreateEvent(ctx, newEvent("e1", base, "1", "a")))
	cl, err := s.ClaimEvents(ctx, base, 1, time.Minute)
	must(t, err)
	e := cl[0]
	e.RouteAttempts, e.LastError, e.NextAttemptAt = 1, "Graph API throttled", base.Add(10*time.Minute)
	must(t, s.RouteEvent(ctx, &e, nil, nil))
	if got, _ := s.ClaimEvents(ctx, base.Add(5*time.Minute), 1, time.Minute); len(got) != 0 {
		t.Error("claimed before its retry time")
	}
	got, err := s.ClaimEvents(ctx, base.Add(10*time.Minute), 1, time.Minute)
	must(t, err)
	if len(got) != 1 || got[0].RouteAttempts != 1 || got[0].LastError != "Graph API throttled" {
		t.Errorf("after retry: %+v", got)
	}
}

// routeRecording sets up cases of RouteEvent with attempts: events
// claimed one at a time, routes planned for them, attempts made.
type routeRecording struct {
	t  *testing.T
	s  mapper.Store
	at time.Time
}

func newRouteRecording(t *testing.T, s mapper.Store) *routeRecording {
	return &routeRecording{t: t, s: s, at: base.Add(time.Second)}
}

func (r *routeRecording) claimOne(id string) mapper.Event {
	r.t.Helper()
	must(r.t, r.s.CreateEvent(ctx, newEvent(id, base, "1", "key-"+id)))
	cl, err := r.s.ClaimEvents(ctx, base, 1, time.Minute)
	must(r.t, err)
	if len(cl) != 1 || cl[0].ID != id {
		r.t.Fatalf("claimed %v, want %s", ids(cl), id)
	}
	return cl[0]
}

func (r *routeRecording) plan(ev *mapper.Event, apps ...string) []mapper.Delivery {
	at := r.at
	ev.Status, ev.Owners, ev.RoutedAt, ev.RouteAttempts = mapper.EventDispatched, []string{"1"}, &at, 1
	var ds []mapper.Delivery
	for _, a := range apps {
		ds = append(ds, mapper.Delivery{ID: ev.ID + "-" + a, EventID: ev.ID, AppID: a, OwnerIDs: []string{"1"}, Body: []byte(`{"for":"` + a + `"}`),
			Status: mapper.DeliveryPending, Attempts: 1, CreatedAt: at, CycleStart: at, TraceContext: ev.TraceContext})
	}
	return ds
}

func (r *routeRecording) attempt(d *mapper.Delivery, code int) mapper.Attempt {
	return mapper.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: r.at, Duration: time.Millisecond, StatusCode: code, Outcome: d.Status,
		ResponseBody: fmt.Sprint("answer ", code)}
}

// recordRoute: one delivered, one to retry; the event stays dispatched,
// and the retry is claimable when due and not leased before.
// oneAttempt checks that a delivery has its one recorded attempt.
func oneAttempt(t *testing.T, s mapper.Store, deliveryID string, code int) {
	t.Helper()
	as, err := attemptsOf(s, deliveryID)
	must(t, err)
	if len(as) != 1 || as[0].StatusCode != code || as[0].Number != 1 || as[0].ResponseBody != fmt.Sprint("answer ", code) {
		t.Errorf("attempts of %s: %+v", deliveryID, as)
	}
}

func recordRoute(t *testing.T, s mapper.Store) {
	r := newRouteRecording(t, s)
	at := r.at
	ev := r.claimOne("e1")
	ds := r.plan(&ev, "app0", "app1")
	done := at.Add(time.Millisecond)
	ds[0].Status, ds[0].LastStatusCode, ds[0].CompletedAt = mapper.DeliveryDelivered, 200, &done
	ds[1].Status, ds[1].LastStatusCode, ds[1].LastError, ds[1].NextAttemptAt = mapper.DeliveryPending, 503, "HTTP 503", base.Add(time.Minute)
	must(t, r.s.RouteEvent(ctx, &ev, ds, []mapper.Attempt{r.attempt(&ds[0], 200), r.attempt(&ds[1], 503)}))
	got, err := s.GetEvent(ctx, "e1")
	must(t, err)
	if got.Status != mapper.EventDispatched || got.RoutedAt == nil || got.CompletedAt != nil || got.LeaseToken != "" {
		t.Errorf("event after RouteEvent: %+v", got)
	}
	stored, err := listDeliveries(t, s, "e1")
	must(t, err)
	if len(stored) != 2 || stored[0].Status != mapper.DeliveryDelivered || stored[1].Status != mapper.DeliveryPending ||
		stored[1].LastStatusCode != 503 || stored[0].LeaseToken != "" || stored[1].LeaseToken != "" || stored[1].Attempts != 1 {
		t.Fatalf("deliveries after RouteEvent: %+v", stored)
	}
	for i, code := range []int{200, 503} {
		oneAttempt(t, s, ds[i].ID, code)
	}
	if got := claimIDs(t, s, base.Add(30*time.Second)); len(got) != 0 {
		t.Errorf("claimed before due: %v", got)
	}
	cl, err := s.ClaimDeliveries(ctx, base.Add(time.Minute), 10, time.Minute, nil)
	must(t, err)
	if len(cl) != 1 || cl[0].ID != ds[1].ID {
		t.Fatalf("claimed %+v, want the retry", cl)
	}
	finish(t, s, &cl[0], mapper.DeliveryDelivered, 200, base.Add(2*time.Minute))
	if got, _ := s.GetEvent(ctx, "e1"); got.Status != mapper.EventDelivered {
		t.Errorf("event after the retry: %s", got.Status)
	}

}

// recordRouteSettled: a route the caller settled in one go.
func recordRouteSettled(t *testing.T, s mapper.Store) {
	r := newRouteRecording(t, s)
	done := r.at.Add(time.Millisecond)
	ev := r.claimOne("e2")
	ds := r.plan(&ev, "app0")
	ds[0].Status, ds[0].LastStatusCode, ds[0].CompletedAt = mapper.DeliveryDelivered, 200, &done
	ev.Status, ev.CompletedAt = mapper.EventDelivered, &done
	must(t, r.s.RouteEvent(ctx, &ev, ds, []mapper.Attempt{r.attempt(&ds[0], 200)}))
	if got, _ := s.GetEvent(ctx, "e2"); got.Status != mapper.EventDelivered || got.CompletedAt == nil || !got.CompletedAt.Equal(done) {
		t.Errorf("settled event: %+v", got)
	}

}

// recordRouteRefused: a lost lease, or an attempt of a delivery the route
// lacks, stores nothing.
func recordRouteRefused(t *testing.T, s mapper.Store) {
	r := newRouteRecording(t, s)
	done := r.at.Add(time.Millisecond)
	ev := r.claimOne("e3")
	ds := r.plan(&ev, "app0")
	ds[0].Status, ds[0].CompletedAt = mapper.DeliveryDelivered, &done
	stale := ev
	stale.LeaseToken = "not-the-lease"
	if err := r.s.RouteEvent(ctx, &stale, ds, []mapper.Attempt{r.attempt(&ds[0], 200)}); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale lease: %v, want ErrLeaseLost", err)
	}
	stray := mapper.Delivery{ID: "elsewhere"}
	if err := r.s.RouteEvent(ctx, &ev, ds, []mapper.Attempt{r.attempt(&ds[0], 200), r.attempt(&stray, 200)}); err == nil {
		t.Error("an attempt of a delivery outside the route was stored")
	}
	if err := r.s.RouteEvent(ctx, &ev, ds, []mapper.Attempt{r.attempt(&ds[0], 503), r.attempt(&ds[0], 200)}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("two attempts of one delivery in one route: %v, want ErrConflict", err)
	}
	if got, _ := listDeliveries(t, s, "e3"); len(got) != 0 {
		t.Errorf("deliveries stored by failed calls: %+v", got)
	}
	if got, _ := s.GetEvent(ctx, "e3"); got.Status != mapper.EventPending || got.RoutedAt != nil {
		t.Errorf("event changed by failed calls: %+v", got)
	}
	must(t, r.s.RouteEvent(ctx, &ev, ds, []mapper.Attempt{r.attempt(&ds[0], 200)}))
}

func listEvents(t *testing.T, s mapper.Store) {
	// Seven events at the same instant (ties), three later; accounts alternate.
	for i := range 10 {
		at := base
		if i >= 7 {
			at = base.Add(time.Duration(i) * time.Second)
		}
		acc := []string{"A", "B"}[i%2]
		ev := newEvent(fmt.Sprintf("e%02d", i), at, acc, fmt.Sprintf("k%02d", i))
		must(t, s.CreateEvent(ctx, ev))
	}
	routed(t, s, "routed", nil, "app-x")
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := s.ListEvents(ctx, mapper.EventQuery{Limit: 3, Cursor: cursor})
		must(t, err)
		for _, e := range page.Items {
			all = append(all, e.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 10 {
			t.Fatal("pagination never ends")
		}
	}
	want := []string{"e09", "e08", "e07", "routed", "e06", "e05", "e04", "e03", "e02", "e01", "e00"}
	if !slices.Equal(all, want) {
		t.Errorf("pages %v, want %v (newest first, ID descending among ties, each once)", all, want)
	}
	check := func(q mapper.EventQuery, want ...string) {
		t.Helper()
		page, err := s.ListEvents(ctx, q)
		must(t, err)
		if got := ids(page.Items); !slices.Equal(got, want) {
			t.Errorf("query %+v: %v, want %v", q, got, want)
		}
	}
	check(mapper.EventQuery{Account: "B", Since: base.Add(time.Second)}, "e09", "e07")
	check(mapper.EventQuery{AppID: "app-x"}, "routed")
	check(mapper.EventQuery{Status: mapper.EventDispatched}, "routed")
	check(mapper.EventQuery{Since: base.Add(7 * time.Second), Until: base.Add(9 * time.Second)}, "e08", "e07")
	if _, err := s.ListEvents(ctx, mapper.EventQuery{Cursor: "not a cursor"}); err == nil {
		t.Error("a bad cursor was accepted")
	}
}

// statser is the optional Stats of a Store.
type statser interface {
	Stats(ctx context.Context, since time.Time) (mapper.Stats, error)
}

func stats(t *testing.T, store mapper.Store) {
	s, ok := store.(interface {
		mapper.Store
		statser
	})
	if !ok {
		t.Skip("the store keeps no Stats")
	}
	if p, ok := store.(interface{ Ping(context.Context) error }); ok {
		must(t, p.Ping(ctx))
	}
	must(t, s.CreateEvent(ctx, newEvent("pending", base, "1", "p")))
	ds := routed(t, s, "done", nil, "a")
	finish(t, s, &ds[0], mapper.DeliveryDelivered, 200, base.Add(3*time.Second))
	routed(t, s, "open", nil, "a")
	gone := routed(t, s, "gone", nil, "a")
	finish(t, s, &gone[0], mapper.DeliveryDead, 500, base.Add(4*time.Second))
	st, err := s.Stats(ctx, base.Add(-time.Hour))
	must(t, err)
	// Only live rows are counted, and every live status is there, zero or
	// not: delivered ones are history, which the counters tell.
	wantEvents := map[mapper.EventStatus]int64{mapper.EventPending: 1, mapper.EventDispatched: 1, mapper.EventDead: 1}
	wantDeliveries := map[mapper.DeliveryStatus]int64{mapper.DeliveryPending: 1, mapper.DeliveryDead: 1}
	if !maps.Equal(st.EventsByStatus, wantEvents) || !maps.Equal(st.DeliveriesByStatus, wantDeliveries) {
		t.Errorf("counts: events %v deliveries %v, want %v and %v", st.EventsByStatus, st.DeliveriesByStatus, wantEvents, wantDeliveries)
	}
	if st.QueueDepth != 2 || st.OldestPending <= 0 {
		t.Errorf("queue: depth %d oldest %v, want 2 and the pending event's age", st.QueueDepth, st.OldestPending)
	}
	if st.ProcessingP50 != 3*time.Second || st.ProcessingP95 != 3*time.Second {
		t.Errorf("processing p50 %v p95 %v, want 3s", st.ProcessingP50, st.ProcessingP95)
	}
	st, err = s.Stats(ctx, base.Add(time.Hour))
	must(t, err)
	if st.ProcessingP50 != 0 || st.ProcessingP95 != 0 {
		t.Errorf("processing p50 %v p95 %v since after the last delivery, want none", st.ProcessingP50, st.ProcessingP95)
	}
}

func prune(t *testing.T, s mapper.Store) {
	old := routed(t, s, "old", nil, "a")
	finish(t, s, &old[0], mapper.DeliveryDelivered, 200, base.Add(time.Second))
	recent := routed(t, s, "recent", nil, "a")
	finish(t, s, &recent[0], mapper.DeliveryDelivered, 200, base.Add(48*time.Hour))
	routed(t, s, "open", nil, "a") // not ended: kept, however old
	n, err := s.Prune(ctx, base.Add(time.Hour), 1)
	must(t, err)
	if n != 1 {
		t.Errorf("pruned %d events, want 1", n)
	}
	if _, err := s.GetEvent(ctx, "old"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("old event kept: %v", err)
	}
	if ds, _ := listDeliveries(t, s, "old"); len(ds) != 0 {
		t.Errorf("old deliveries kept: %v", ds)
	}
	if as, _ := attemptsOf(s, old[0].ID); len(as) != 0 {
		t.Errorf("old attempts kept: %v", as)
	}
	for _, id := range []string{"recent", "open"} {
		if _, err := s.GetEvent(ctx, id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	// The old event's key is forgotten: the same change is new again.
	again := newEvent("again", base.Add(2*time.Hour), "1", "key-old")
	must(t, s.CreateEvent(ctx, again))
	if again.Items[0].Duplicate {
		t.Error("a pruned key still marks duplicates")
	}
	// The open event's key stays with it, however old: Meta's retry of a
	// change still in flight is a duplicate.
	retry := newEvent("retry", base.Add(2*time.Hour), "1", "key-open")
	must(t, s.CreateEvent(ctx, retry))
	if !retry.Items[0].Duplicate {
		t.Error("the key of an event not yet ended was pruned")
	}
}

func appSettings(t *testing.T, s mapper.Store) {
	app := &mapper.WorkerApp{ID: "a", Name: "a", URL: "http://x", Secret: "s", AccountIDs: []string{"1"}, Enabled: true,
		Timeout: 2500 * time.Millisecond, MaxConcurrency: 3, Ordered: true, CreatedAt: base, UpdatedAt: base}
	must(t, s.CreateApp(ctx, app))
	got, err := getApp(s, "a")
	must(t, err)
	if got.Timeout != 2500*time.Millisecond || got.MaxConcurrency != 3 || !got.Ordered {
		t.Errorf("delivery settings: %+v", got)
	}
}

// pending stores an event with one pending delivery per (id, app, ordered)
// and returns them, created a second apart in the given order.
func pendingDeliveries(t *testing.T, s mapper.Store, specs ...[3]string) []mapper.Delivery {
	t.Helper()
	var out []mapper.Delivery
	for i, sp := range specs {
		evID := "ev-" + sp[0]
		must(t, s.CreateEvent(ctx, newEvent(evID, base, "1", "key-"+sp[0])))
		cl, err := s.ClaimEvents(ctx, base, 100, time.Minute)
		must(t, err)
		for _, e := range cl {
			if e.ID != evID {
				continue
			}
			e.Status = mapper.EventDispatched
			at := base.Add(time.Duration(i) * time.Second)
			d := mapper.Delivery{ID: sp[0], EventID: evID, AppID: sp[1], OwnerIDs: []string{"1"}, Body: []byte("{}"), Ordered: sp[2] == "ordered",
				Status: mapper.DeliveryPending, NextAttemptAt: base, CreatedAt: at, CycleStart: at, LeaseToken: "router"}
			must(t, s.RouteEvent(ctx, &e, []mapper.Delivery{d}, nil))
			out = append(out, d)
		}
	}
	return out
}

func claimIDs(t *testing.T, s mapper.Store, at time.Time, skip ...string) []string {
	t.Helper()
	got, err := s.ClaimDeliveries(ctx, at, 100, time.Minute, skip)
	must(t, err)
	var ids []string
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids
}

func skipAndRelease(t *testing.T, s mapper.Store) {
	pendingDeliveries(t, s, [3]string{"d1", "slow", ""}, [3]string{"d2", "fast", ""})
	if got := claimIDs(t, s, base, "slow"); !slices.Equal(got, []string{"d2"}) {
		t.Fatalf("claim skipping app slow: %v", got)
	}
	cl, err := s.ClaimDeliveries(ctx, base, 10, time.Minute, nil)
	must(t, err)
	if len(cl) != 1 || cl[0].ID != "d1" {
		t.Fatalf("claim: %+v", cl)
	}
	// Given back unattempted: RecordAttempt without an attempt.
	cl[0].NextAttemptAt = base.Add(time.Second)
	must(t, s.RecordAttempt(ctx, &cl[0], nil))
	if err := s.RecordAttempt(ctx, &cl[0], nil); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("second release: %v", err)
	}
	if got := claimIDs(t, s, base); len(got) != 0 {
		t.Errorf("released for later, claimed now: %v", got)
	}
	if got := claimIDs(t, s, base.Add(time.Second)); !slices.Equal(got, []string{"d1"}) {
		t.Errorf("after the release time: %v", got)
	}
	if as, _ := attemptsOf(s, "d1"); len(as) != 0 {
		t.Errorf("a release recorded an attempt: %v", as)
	}
}

func orderedClaims(t *testing.T, s mapper.Store) {
	ds := pendingDeliveries(t, s, [3]string{"o1", "ord", "ordered"}, [3]string{"o2", "ord", "ordered"}, [3]string{"u1", "free", ""}, [3]string{"u2", "free", ""})
	got := claimIDs(t, s, base)
	if !slices.Equal(got, []string{"o1", "u1", "u2"}) {
		t.Fatalf("claim: %v, want the oldest ordered one and every unordered one", got)
	}
	// o1 fails and waits for a retry: o2 still waits behind it.
	cl := ds[0]
	cl.LeaseToken = ""
	fresh, err := s.ClaimDeliveries(ctx, base.Add(2*time.Minute), 100, time.Minute, []string{"free"})
	must(t, err)
	for _, d := range fresh {
		if d.ID == "o2" {
			t.Fatal("o2 claimed while o1 is pending")
		}
		if d.ID == "o1" {
			cl = d
		}
	}
	finish(t, s, &cl, mapper.DeliveryDelivered, 200, base.Add(3*time.Minute))
	if got := claimIDs(t, s, base.Add(4*time.Minute), "free"); !slices.Equal(got, []string{"o2"}) {
		t.Errorf("after o1 ended: %v", got)
	}
}

// failedDeliveries stores deliveries and kills each, or delivers it.
func deadDeliveries(t *testing.T, s mapper.Store, specs ...[3]string) {
	t.Helper()
	ds := pendingDeliveries(t, s, specs...)
	cl, err := s.ClaimDeliveries(ctx, base.Add(5*time.Minute), 100, time.Minute, nil)
	must(t, err)
	for _, d := range cl {
		for _, sp := range specs {
			if sp[0] == d.ID {
				outcome := mapper.DeliveryDead
				if sp[2] == "ok" {
					outcome = mapper.DeliveryDelivered
				}
				finish(t, s, &d, outcome, 400, base.Add(6*time.Minute))
			}
		}
	}
	if len(cl) != len(ds) {
		t.Fatalf("claimed %d of %d", len(cl), len(ds))
	}
}

func findDeliveries(t *testing.T, s mapper.Store) {
	deadDeliveries(t, s, [3]string{"f1", "a", ""}, [3]string{"f2", "b", ""}, [3]string{"f3", "a", "ok"}, [3]string{"f4", "a", ""})
	var all []string
	cursor := ""
	for {
		page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{Status: mapper.DeliveryDead, Limit: 1, Cursor: cursor})
		must(t, err)
		for _, d := range page.Items {
			all = append(all, d.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !slices.Equal(all, []string{"f4", "f2", "f1"}) {
		t.Errorf("dead deliveries, newest first: %v", all)
	}
	page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{AppID: "a", Since: base.Add(time.Second)})
	must(t, err)
	var ids []string
	for _, d := range page.Items {
		ids = append(ids, d.ID)
	}
	if !slices.Equal(ids, []string{"f4", "f3"}) {
		t.Errorf("app a since 1s: %v", ids)
	}
	page, err = s.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: "ev-f2"})
	must(t, err)
	if len(page.Items) != 1 || page.Items[0].ID != "f2" || page.Items[0].Body != nil {
		t.Errorf("the deliveries of event ev-f2: %+v", page.Items)
	}
	if _, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{Cursor: "nope"}); err == nil {
		t.Error("bad cursor accepted")
	}
}

// reopened is a delivery as a replay makes it: pending, due at, in a new
// retry cycle.
func reopened(d mapper.Delivery, at time.Time) mapper.Delivery {
	d.Status, d.NextAttemptAt, d.CompletedAt, d.AttemptBase, d.CycleStart = mapper.DeliveryPending, at, nil, d.Attempts, at
	return d
}

// reopenDelivery: a dead delivery and its dead event reopened as given;
// a second reopen from the same state, or of a delivery not dead, is
// refused and changes nothing.
func reopenDelivery(t *testing.T, s mapper.Store) {
	deadDeliveries(t, s, [3]string{"r1", "a", ""}, [3]string{"r2", "a", "ok"})
	ev, err := s.GetEvent(ctx, "ev-r1")
	must(t, err)
	if ev.Status != mapper.EventDead {
		t.Fatalf("event before replay: %s", ev.Status)
	}
	ds, err := listDeliveries(t, s, "ev-r1")
	must(t, err)
	at := base.Add(time.Hour)
	d := reopened(ds[0], at)
	ev.Status, ev.CompletedAt = mapper.EventDispatched, nil
	must(t, s.Reopen(ctx, mapper.EventDead, ev, []mapper.Delivery{d}))
	if err := s.Reopen(ctx, mapper.EventDead, ev, []mapper.Delivery{d}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("second reopen from dead: %v, want ErrConflict", err)
	}
	page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{ID: "r1", Attempts: true})
	must(t, err)
	if got := page.Items[0]; got.Status != mapper.DeliveryPending || got.AttemptBase != 1 || !got.CycleStart.Equal(at) || got.CompletedAt != nil || len(got.History) != 1 {
		t.Errorf("reopened: %+v", got)
	}
	if ev, _ := s.GetEvent(ctx, "ev-r1"); ev.Status != mapper.EventDispatched || ev.CompletedAt != nil {
		t.Errorf("event after reopen: %s", ev.Status)
	}
	// Not dead: refused, and the event is left as it was.
	ev2, err := s.GetEvent(ctx, "ev-r2")
	must(t, err)
	ds2, err := listDeliveries(t, s, "ev-r2")
	must(t, err)
	ev2.Status = mapper.EventDispatched
	if err := s.Reopen(ctx, mapper.EventDelivered, ev2, []mapper.Delivery{reopened(ds2[0], at)}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("reopen of a delivered delivery: %v, want ErrConflict", err)
	}
	if ev2, _ := s.GetEvent(ctx, "ev-r2"); ev2.Status != mapper.EventDelivered {
		t.Errorf("a refused reopen changed the event: %s", ev2.Status)
	}
	if got := claimIDs(t, s, at); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("claim after reopen: %v", got)
	}
}

// reopenEvent: an unroutable event made pending again keeps its routing
// history and is claimable when due.
func reopenEvent(t *testing.T, s mapper.Store) {
	must(t, s.CreateEvent(ctx, newEvent("u", base, "9", "ku")))
	cl, err := s.ClaimEvents(ctx, base, 1, time.Minute)
	must(t, err)
	cl[0].Status, cl[0].Unroutable, cl[0].CompletedAt, cl[0].RoutedAt, cl[0].LastError = mapper.EventUnroutable, []string{"9"}, &base, &base, "no app"
	must(t, s.RouteEvent(ctx, &cl[0], nil, nil))
	ev, err := s.GetEvent(ctx, "u")
	must(t, err)
	at := base.Add(time.Hour)
	ev.Status, ev.NextAttemptAt, ev.LastError, ev.CompletedAt = mapper.EventPending, at, "", nil
	if err := s.Reopen(ctx, mapper.EventDead, ev, nil); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("reopen from the wrong status: %v, want ErrConflict", err)
	}
	must(t, s.Reopen(ctx, mapper.EventUnroutable, ev, nil))
	again, err := s.ClaimEvents(ctx, at, 10, time.Minute)
	must(t, err)
	if len(again) != 1 || again[0].ID != "u" || again[0].RoutedAt == nil || again[0].LastError != "" || !slices.Equal(again[0].Unroutable, []string{"9"}) {
		t.Errorf("claim after reopen: %+v", again)
	}
}

// nulInput: a NUL in an ID or filter is refused as invalid input (or finds
// nothing), never taken for the store being down, which would have the
// Mapper answer 503 and retry forever.
func nulInput(t *testing.T, s mapper.Store) {
	createApp(t, s, "a", true, "1")
	ok := func(what string, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, mapper.ErrInvalidInput) && !errors.Is(err, mapper.ErrNotFound) {
			t.Errorf("%s: %v, want nil, ErrInvalidInput or ErrNotFound", what, err)
		}
	}
	const nul = "1\x00' OR 1=1 --"
	_, err := s.ListEvents(ctx, mapper.EventQuery{Account: nul, AppID: nul})
	ok("ListEvents", err)
	_, err = s.GetEvent(ctx, nul)
	ok("GetEvent", err)
	_, err = s.FindDeliveries(ctx, mapper.DeliveryQuery{ID: nul, AppID: nul, EventID: nul})
	ok("FindDeliveries", err)
	_, err = s.ListRoutes(ctx, mapper.RouteQuery{AppID: nul, Accounts: []string{nul}})
	ok("ListRoutes", err)
	ok("SetRoutes", s.SetRoutes(ctx, "a", []mapper.Route{{AccountID: nul}}, nil))
	ok("DeleteApp", s.DeleteApp(ctx, nul))
	ok("CreateApp", s.CreateApp(ctx, &mapper.WorkerApp{ID: "b", Name: nul, URL: "http://x", Secret: "s", CreatedAt: base, UpdatedAt: base}))
	ok("CreateEvent", s.CreateEvent(ctx, newEvent("nul", base, nul, nul)))
	// And nothing of it spoiled the store.
	if _, err := s.ListApps(ctx); err != nil {
		t.Errorf("ListApps after: %v", err)
	}
}

// extendLeases: for stores with the optional ExtendLeases, extended work
// stays hidden past its first lease and is claimable after the new end;
// a token no longer held changes nothing.
func extendLeases(t *testing.T, store mapper.Store) {
	s, ok := store.(interface {
		mapper.Store
		ExtendLeases(ctx context.Context, tokens []string, until time.Time) error
	})
	if !ok {
		t.Skip("the store does not extend leases")
	}
	must(t, s.CreateEvent(ctx, newEvent("e1", base, "1", "k1")))
	must(t, s.CreateEvent(ctx, newEvent("e2", base, "1", "k2")))
	cl, err := s.ClaimEvents(ctx, base, 2, time.Minute)
	must(t, err)
	if len(cl) != 2 {
		t.Fatalf("claimed %d", len(cl))
	}
	ds := pendingDeliveries(t, s, [3]string{"d1", "a", ""})
	dl, err := s.ClaimDeliveries(ctx, base.Add(5*time.Minute), 10, time.Minute, nil)
	must(t, err)
	if len(dl) != 1 || len(ds) != 1 {
		t.Fatalf("claimed deliveries %v", dl)
	}
	must(t, s.ExtendLeases(ctx, []string{cl[0].LeaseToken, dl[0].LeaseToken, "not-a-token"}, base.Add(10*time.Minute)))
	// e2's lease ran out at base+1m; e1's now ends at base+10m.
	got, err := s.ClaimEvents(ctx, base.Add(2*time.Minute), 10, time.Minute)
	must(t, err)
	if len(got) != 1 || got[0].ID != cl[1].ID {
		t.Errorf("claimable at +2m: %v, want only %s", ids(got), cl[1].ID)
	}
	if again := claimIDs(t, s, base.Add(7*time.Minute)); len(again) != 0 {
		t.Errorf("an extended delivery was claimed: %v", again)
	}
	if got, _ := s.ClaimEvents(ctx, base.Add(11*time.Minute), 10, time.Minute); len(got) == 0 {
		t.Error("an extended lease never ended")
	}
	// A lease that was given up is not revived.
	dl[0].NextAttemptAt = base.Add(20 * time.Minute)
	must(t, s.RecordAttempt(ctx, &dl[0], nil))
	must(t, s.ExtendLeases(ctx, []string{dl[0].LeaseToken}, base.Add(time.Hour)))
	if got := claimIDs(t, s, base.Add(21*time.Minute)); len(got) != 1 {
		t.Errorf("a released delivery after its due time: %v", got)
	}
}

// dedupLarge: a batch of many items, some seen before and one repeated
// within, is marked item by item (stores may claim many keys at once).
func dedupLarge(t *testing.T, s mapper.Store) {
	var early, batch []string
	for i := range 300 {
		k := fmt.Sprintf("1/comments/%d", i)
		if i%3 == 0 {
			early = append(early, k)
		}
		batch = append(batch, k)
	}
	batch = append(batch, batch[1]) // a repeat within the batch
	must(t, s.CreateEvent(ctx, newEvent("early", base, "1", early...)))
	ev := newEvent("batch", base.Add(time.Second), "1", batch...)
	must(t, s.CreateEvent(ctx, ev))
	got, err := s.GetEvent(ctx, "batch")
	must(t, err)
	for i, it := range got.Items {
		want := i%3 == 0 || i == len(batch)-1
		if it.Duplicate != want || ev.Items[i].Duplicate != want {
			t.Fatalf("item %d (%s): duplicate %v (returned %v), want %v", i, it.Key, it.Duplicate, ev.Items[i].Duplicate, want)
		}
	}
	if got.Status != mapper.EventPending {
		t.Errorf("status %s", got.Status)
	}
}

// attemptsOf reads the attempts of one delivery through FindDeliveries.
func attemptsOf(s mapper.Store, deliveryID string) ([]mapper.Attempt, error) {
	page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{ID: deliveryID, Attempts: true})
	if err != nil {
		return nil, err
	}
	if len(page.Items) != 1 {
		return nil, fmt.Errorf("FindDeliveries by ID %s: %d deliveries", deliveryID, len(page.Items))
	}
	return page.Items[0].History, nil
}
