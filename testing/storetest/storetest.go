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
	{"apps_for_accounts_skips_disabled", appsForAccounts},
	{"event_round_trip", eventRoundTrip},
	{"event_id_conflict", eventConflict},
	{"dedup_across_and_within_events", dedup},
	{"dedup_race_one_winner", dedupRace},
	{"claim_due_only_lease_hides", claimDue},
	{"lease_expiry_and_stale_holder", leaseExpiry},
	{"concurrent_claimers_never_share", concurrentClaims},
	{"route_record_and_settle", routeAndSettle},
	{"original_body_read_from_payload", originalBody},
	{"retry_event", retryEvent},
	{"list_filters_and_pagination_with_ties", listEvents},
	{"stats", stats},
	{"prune", prune},
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
		Payload:    []byte(`{"object":"instagram","entry":[{"id":"` + account + `","note":"\u00e4 \/ \ud83d\ude0d"}]}`),
		Signature:  "sha256=" + fmt.Sprintf("%064d", 0),
		AccountIDs: []string{account},
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

func appsCRUD(t *testing.T, s mapper.Store) {
	if _, err := s.GetApp(ctx, "missing"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("GetApp of a missing app: %v, want ErrNotFound", err)
	}
	if err := s.DeleteApp(ctx, "missing"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("DeleteApp of a missing app: %v, want ErrNotFound", err)
	}
	if err := s.UpdateApp(ctx, &mapper.WorkerApp{ID: "missing"}); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("UpdateApp of a missing app: %v, want ErrNotFound", err)
	}
	createApp(t, s, "b", true, "2")
	createApp(t, s, "a", true, "1", "3")
	got, err := s.GetApp(ctx, "a")
	must(t, err)
	slices.Sort(got.AccountIDs)
	if got.Name != "a" || got.Secret != "secret-a" || !got.Enabled || !slices.Equal(got.AccountIDs, []string{"1", "3"}) || !got.CreatedAt.Equal(base) {
		t.Errorf("GetApp: %+v", got)
	}
	list, err := s.ListApps(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
		t.Errorf("ListApps (by CreatedAt, then ID): %+v", list)
	}
	got.Name, got.AccountIDs, got.Enabled = "renamed", []string{"4"}, false
	must(t, s.UpdateApp(ctx, got))
	again, err := s.GetApp(ctx, "a")
	must(t, err)
	if again.Name != "renamed" || again.Enabled || !slices.Equal(again.AccountIDs, []string{"4"}) || !again.CreatedAt.Equal(base) {
		t.Errorf("after UpdateApp: %+v", again)
	}
	must(t, s.DeleteApp(ctx, "a"))
	if _, err := s.GetApp(ctx, "a"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("after DeleteApp: %v", err)
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
	if _, err := s.GetApp(ctx, "b"); !errors.Is(err, mapper.ErrNotFound) {
		t.Errorf("refused app was stored: %v", err)
	}
	createApp(t, s, "c", true, "3")
	if err := s.CreateApp(ctx, &mapper.WorkerApp{ID: "a", Name: "a", URL: "http://x", Secret: "s", CreatedAt: base, UpdatedAt: base}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("duplicate app ID: %v, want ErrConflict", err)
	}
	if err := s.UpdateApp(ctx, &mapper.WorkerApp{ID: "c", Name: "c", URL: "http://x", Secret: "s", AccountIDs: []string{"1"}}); !errors.Is(err, mapper.ErrConflict) {
		t.Errorf("update taking another app's account: %v, want ErrConflict", err)
	}
	if got, _ := s.GetApp(ctx, "c"); got == nil || !slices.Equal(got.AccountIDs, []string{"3"}) {
		t.Errorf("refused update changed the app: %+v", got)
	}
}

func appsForAccounts(t *testing.T, s mapper.Store) {
	createApp(t, s, "on", true, "1", "2")
	createApp(t, s, "off", false, "3")
	got, err := s.AppsForAccounts(ctx, []string{"1", "2", "3", "4"})
	must(t, err)
	if len(got) != 2 || got["1"] == nil || got["1"].ID != "on" || got["2"] == nil || got["2"].URL == "" || got["2"].Secret == "" {
		t.Errorf("AppsForAccounts: %v", got)
	}
	if empty, err := s.AppsForAccounts(ctx, nil); err != nil || len(empty) != 0 {
		t.Errorf("no accounts: %v %v", empty, err)
	}
}

func eventRoundTrip(t *testing.T, s mapper.Store) {
	ev := newEvent("e1", base, "17841400000000001", "k1", "k2")
	must(t, s.CreateEvent(ctx, ev))
	got, err := s.GetEvent(ctx, "e1")
	must(t, err)
	if string(got.Payload) != string(ev.Payload) || got.Signature != ev.Signature || !got.ReceivedAt.Equal(base) ||
		got.Status != mapper.EventPending || len(got.Items) != 2 || got.Items[1].Key != "k2" || got.Items[0].Duplicate ||
		!slices.Equal(got.AccountIDs, ev.AccountIDs) || got.Object != "instagram" {
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
	if len(page.Events) != 1 || page.Events[0].ID != winners[0] {
		t.Errorf("pending events %v, want only %s", ids(page.Events), winners[0])
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
	if err := s.RouteEvent(ctx, &stale, nil); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale holder routed: %v, want ErrLeaseLost", err)
	}
	if err := s.RetryEvent(ctx, &stale); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale holder retried: %v, want ErrLeaseLost", err)
	}
	cur := second[0]
	cur.Status = mapper.EventDispatched
	d := mapper.Delivery{ID: "d1", EventID: "e1", AppID: "a", OwnerIDs: []string{"1"}, Body: []byte("{}"), Status: mapper.DeliveryPending,
		NextAttemptAt: base.Add(3 * time.Minute), CreatedAt: base.Add(2 * time.Minute), LeaseToken: "router"}
	must(t, s.RouteEvent(ctx, &cur, []mapper.Delivery{d}))
	// The router's lease on the delivery runs out; another claimer takes it.
	claimed, err := s.ClaimDeliveries(ctx, base.Add(4*time.Minute), 5, time.Minute)
	must(t, err)
	if len(claimed) != 1 || claimed[0].LeaseToken == "router" || string(claimed[0].Body) != "{}" {
		t.Fatalf("delivery after lease expiry: %+v", claimed)
	}
	d.Status, d.Attempts = mapper.DeliveryDelivered, 1
	if err := s.RecordAttempt(ctx, &d, mapper.Attempt{DeliveryID: "d1", Number: 1, StartedAt: base, Outcome: mapper.DeliveryDelivered}); !errors.Is(err, mapper.ErrLeaseLost) {
		t.Errorf("stale holder recorded: %v, want ErrLeaseLost", err)
	}
	if as, _ := s.ListAttempts(ctx, "d1"); len(as) != 0 {
		t.Errorf("a refused attempt was recorded: %+v", as)
	}
	missing := mapper.Delivery{ID: "nope", LeaseToken: "x", Status: mapper.DeliveryDead}
	if err := s.RecordAttempt(ctx, &missing, mapper.Attempt{DeliveryID: "nope", Number: 1}); !errors.Is(err, mapper.ErrNotFound) && !errors.Is(err, mapper.ErrLeaseLost) {
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
			Status: mapper.DeliveryPending, NextAttemptAt: base.Add(time.Minute), CreatedAt: routedAt, LeaseToken: "lease-" + a})
	}
	must(t, s.RouteEvent(ctx, mine, ds))
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
	must(t, s.RecordAttempt(ctx, d, mapper.Attempt{DeliveryID: d.ID, Number: d.Attempts, StartedAt: at, Duration: 1500 * time.Microsecond, StatusCode: code, Outcome: status}))
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
		got, err := s.ListDeliveries(ctx, c.id)
		must(t, err)
		if len(got) != len(ds) || got[0].AppID != "app0" || got[0].Status != mapper.DeliveryPending {
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
				cl, err := s.ClaimDeliveries(ctx, base.Add(5*time.Minute), 100, time.Minute)
				must(t, err)
				for _, d := range cl {
					for j := range ds {
						if d.ID == ds[j].ID {
							ds[j].LeaseToken = d.LeaseToken
						}
					}
				}
			}
			finish(t, s, &ds[i], c.outcomes[i], 200, base.Add(time.Duration(3+i)*time.Second))
		}
		ev, err := s.GetEvent(ctx, c.id)
		must(t, err)
		if ev.Status != c.want || ev.CompletedAt == nil || ev.CompletedAt.Before(base.Add(3*time.Second)) {
			t.Errorf("%s: event %s completed %v, want %s", c.id, ev.Status, ev.CompletedAt, c.want)
		}
		as, err := s.ListAttempts(ctx, ds[0].ID)
		must(t, err)
		if len(as) != 2 || as[0].Number != 1 || as[0].StatusCode != 503 || as[0].Duration != 1500*time.Microsecond || as[1].Number != 2 || !as[0].StartedAt.Equal(base.Add(2*time.Second)) {
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
	must(t, s.RouteEvent(ctx, &cl, []mapper.Delivery{d}))
	got, err := s.ClaimDeliveries(ctx, base, 1, time.Minute)
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
	must(t, s.RetryEvent(ctx, &e))
	if got, _ := s.ClaimEvents(ctx, base.Add(5*time.Minute), 1, time.Minute); len(got) != 0 {
		t.Error("claimed before its retry time")
	}
	got, err := s.ClaimEvents(ctx, base.Add(10*time.Minute), 1, time.Minute)
	must(t, err)
	if len(got) != 1 || got[0].RouteAttempts != 1 || got[0].LastError != "Graph API throttled" {
		t.Errorf("after retry: %+v", got)
	}
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
		for _, e := range page.Events {
			if len(e.Payload) != 0 {
				// Allowed, but the log must at least carry the metadata.
				_ = e
			}
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
		if got := ids(page.Events); !slices.Equal(got, want) {
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

func stats(t *testing.T, s mapper.Store) {
	must(t, s.Ping(ctx))
	must(t, s.CreateEvent(ctx, newEvent("pending", base, "1", "p")))
	ds := routed(t, s, "done", nil, "a")
	finish(t, s, &ds[0], mapper.DeliveryDelivered, 200, base.Add(3*time.Second))
	routed(t, s, "open", nil, "a")
	st, err := s.Stats(ctx, base.Add(-time.Hour))
	must(t, err)
	if st.EventsByStatus[mapper.EventPending] != 0 && st.EventsByStatus[mapper.EventPending] != 1 {
		t.Errorf("pending events: %v", st.EventsByStatus)
	}
	if st.EventsByStatus[mapper.EventDelivered] != 1 || st.DeliveriesByStatus[mapper.DeliveryDelivered] != 1 || st.DeliveriesByStatus[mapper.DeliveryPending] != 1 {
		t.Errorf("counts: %+v", st)
	}
	if st.QueueDepth < 1 || st.OldestPending <= 0 {
		t.Errorf("queue: depth %d oldest %v", st.QueueDepth, st.OldestPending)
	}
	if st.ProcessingP50 != 3*time.Second || st.ProcessingP95 != 3*time.Second {
		t.Errorf("processing p50 %v p95 %v, want 3s", st.ProcessingP50, st.ProcessingP95)
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
	if ds, _ := s.ListDeliveries(ctx, "old"); len(ds) != 0 {
		t.Errorf("old deliveries kept: %v", ds)
	}
	if as, _ := s.ListAttempts(ctx, old[0].ID); len(as) != 0 {
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
}
