package bunstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

// TestBatch writes batches as the store's committer does, on each
// database, with nothing else writing meanwhile: of events alone
// (batchOfEvents), and of events and routes together
// (batchOfEventsAndRoutes).
func TestBatch(t *testing.T) {
	t.Parallel()
	for name, open := range dialects {
		for what, run := range map[string]func(*testing.T, *Store){"events": batchOfEvents, "events and routes": batchOfEventsAndRoutes} {
			t.Run(name+"/"+what, func(t *testing.T) {
				t.Parallel()
				run(t, migrated(t, open))
			})
		}
	}
}

// batchOfEvents: a batch of new events (on PostgreSQL one statement per
// table, on SQLite one transaction without savepoints) keeps the batch's
// order for its keys (the first event claims a key the next ones share)
// and writes every row, with its accounts, in full; an event whose ID
// exists is refused without writing any of it, and the rest of its batch
// is written.
func batchOfEvents(t *testing.T, s *Store) {
	ctx := context.Background()
	at := time.UnixMicro(1_700_000_000_000_000).UTC()
	event := func(id string, accounts []string, keys ...string) *mapper.Event {
		ev := &mapper.Event{ID: id, ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
			Payload: []byte(`{"object":"instagram","entry":[{"id":"1","changes":[]}]}`), Signature: "sha256=00", AccountIDs: accounts}
		for _, k := range keys {
			ev.Items = append(ev.Items, mapper.EventItem{Key: k})
		}
		return ev
	}
	// commit writes evs as one batch, as the store's committer does
	// (nothing else writes to the store meanwhile).
	commit := func(evs ...*mapper.Event) []error {
		errs := make([]error, len(evs))
		batch := make([]commitReq, len(evs))
		for i, ev := range evs {
			batch[i] = s.createReq(ctx, ev)
		}
		s.commits.run(batch, errs)
		return errs
	}
	if err := s.CreateEvent(ctx, event("e0", []string{"a"}, "taken")); err != nil {
		t.Fatal(err)
	}
	evs := []*mapper.Event{
		event("e1", []string{"a", "b"}, "k", "x"),
		event("e2", []string{"a"}, "k", "m"),
		event("e3", nil, "m", "taken"),
	}
	if errs := commit(evs...); errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if s.cautious != 0 {
		t.Errorf("the batch was written with savepoints")
	}
	for id, want := range map[string][]bool{"e1": {false, false}, "e2": {true, false}, "e3": {true, true}} {
		got, err := s.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if dups := duplicates(got); !slices.Equal(dups, want) {
			t.Errorf("%s: duplicates %v, want %v", id, dups, want)
		}
	}
	if got, _ := s.GetEvent(ctx, "e3"); got == nil || got.Status != mapper.EventDuplicate || got.CompletedAt == nil {
		t.Errorf("e3, all of whose keys were taken: %+v", got)
	}
	got, err := s.GetEvent(ctx, "e1")
	if err != nil || string(got.Payload) != string(evs[0].Payload) || !got.ReceivedAt.Equal(at) || got.Signature != "sha256=00" ||
		got.RoutedAt != nil || got.CompletedAt != nil || got.Status != mapper.EventPending || !slices.Equal(got.AccountIDs, []string{"a", "b"}) {
		t.Errorf("e1 read back: %+v, %v", got, err)
	}

	errs := commit(event("e0", []string{"c"}, "n"), event("e4", []string{"c"}, "p"))
	if !errors.Is(errs[0], mapper.ErrConflict) || errs[1] != nil {
		t.Fatalf("a batch with a taken ID: errors %v", errs)
	}
	if got, _ := s.GetEvent(ctx, "e0"); got == nil || got.AccountIDs[0] != "a" || len(got.Items) != 1 || got.Items[0].Key != "taken" {
		t.Errorf("e0 was touched by its refused copy: %+v", got)
	}
	if got, _ := s.GetEvent(ctx, "e4"); got == nil || got.Items[0].Duplicate {
		t.Errorf("e4, beside a refused event: %+v", got)
	}

	var rows []struct {
		Account string `bun:"account_id"`
		Event   string `bun:"event_id"`
	}
	if err := s.db.NewRaw("SELECT account_id, event_id FROM mapper_event_accounts ORDER BY event_id, account_id").Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, r := range rows {
		pairs = append(pairs, r.Account+"/"+r.Event)
	}
	if want := []string{"a/e0", "a/e1", "b/e1", "a/e2", "c/e4"}; !slices.Equal(pairs, want) {
		t.Errorf("event accounts %v, want %v", pairs, want)
	}
	var keys int
	if err := s.db.NewRaw("SELECT count(*) FROM mapper_dedup_keys WHERE dedup_key = 'n'").Scan(ctx, &keys); err != nil || keys != 0 {
		t.Errorf("the refused event's key was claimed: %d, %v", keys, err)
	}
}

// batchOfEventsAndRoutes: events and routes share a batch (on PostgreSQL
// one transaction, on SQLite the writer's), and what fails in it fails
// alone: a route the database refuses (its delivery's ID is taken) and
// one whose lease was lost write nothing and get their errors; the events
// and the other route are written in full. So is a batch in which a new
// event's ID is taken, but for that event.
func batchOfEventsAndRoutes(t *testing.T, s *Store) {
	ctx := context.Background()
	at := time.UnixMicro(1_700_000_000_000_000).UTC()
	event := func(id string) *mapper.Event {
		return &mapper.Event{ID: id, ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
			Payload: []byte(`{"object":"instagram","entry":[]}`), AccountIDs: []string{"1"}, Items: []mapper.EventItem{{Key: "k-" + id}}}
	}
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		if err := s.CreateEvent(ctx, event(id)); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.ClaimEvents(ctx, at, 5, time.Minute)
	if err != nil || len(claimed) != 5 {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	evs := map[string]*mapper.Event{}
	for i := range claimed {
		evs[claimed[i].ID] = &claimed[i]
	}
	done := at.Add(time.Second)
	// route is r's route, delivered at once, in a delivery with this ID.
	route := func(r *mapper.Event, delivery string) commitReq {
		r.Status, r.Owners, r.RoutedAt, r.RouteAttempts, r.CompletedAt = mapper.EventDelivered, []string{"1"}, &done, 1, &done
		d := mapper.Delivery{ID: delivery, EventID: r.ID, AppID: "app", OwnerIDs: []string{"1"}, Body: []byte("{}"),
			Status: mapper.DeliveryDelivered, Attempts: 1, CreatedAt: done, CycleStart: done, CompletedAt: &done, LastStatusCode: 200}
		req, err := s.routeReq(ctx, r, []mapper.Delivery{d}, []mapper.Attempt{{DeliveryID: d.ID, Number: 1, StartedAt: done, StatusCode: 200, Outcome: mapper.DeliveryDelivered}})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	if err := s.commits.send(route(evs["r4"], "d-taken")); err != nil {
		t.Fatal(err)
	}
	r3 := *evs["r3"]
	evs["r3"].LeaseToken = "stale"
	// Writes of another kind, one that fails and one that does not.
	failed := errors.New("a write that fails")
	other := func(note string, result error) commitReq {
		return commitReq{ctx: ctx, fn: func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewRaw("UPDATE mapper_events SET last_error = ? WHERE id = 'r4'", note).Exec(ctx); err != nil {
				return err
			}
			return result
		}}
	}
	batch := []commitReq{
		s.createReq(ctx, event("n1")),
		route(evs["r1"], "d-r1"),
		other("written", nil),
		route(evs["r2"], "d-taken"),
		s.createReq(ctx, event("n2")),
		other("rolled back", failed),
		route(evs["r3"], "d-r3"),
	}
	errs := make([]error, len(batch))
	s.commits.run(batch, errs)

	if errs[0] != nil || errs[1] != nil || errs[2] != nil || errs[4] != nil || !errors.Is(errs[3], mapper.ErrConflict) ||
		!errors.Is(errs[5], failed) || !errors.Is(errs[6], mapper.ErrLeaseLost) {
		t.Fatalf("errors %v", errs)
	}
	if got, err := s.GetEvent(ctx, "r4"); err != nil || got.LastError != "written" {
		t.Errorf("the other writes: r4's last error %q, want the one that did not fail (%v)", got.LastError, err)
	}
	for id, want := range map[string]struct {
		status     mapper.EventStatus
		deliveries int
	}{"n1": {mapper.EventPending, 0}, "n2": {mapper.EventPending, 0}, "r1": {mapper.EventDelivered, 1}, "r2": {mapper.EventPending, 0}, "r3": {mapper.EventPending, 0}} {
		got, err := s.GetEvent(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: id, Attempts: true})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != want.status || len(page.Items) != want.deliveries {
			t.Errorf("%s: %s with %d deliveries, want %s with %d", id, got.Status, len(page.Items), want.status, want.deliveries)
		}
		if want.deliveries > 0 && len(page.Items[0].History) != 1 {
			t.Errorf("%s: delivery with %d attempts, want the one made", id, len(page.Items[0].History))
		}
	}

	// A new event whose ID is taken, beside a new one and a route (on
	// PostgreSQL the batch meets the taken ID unchecked, and is written
	// again checking): it alone is refused.
	batch = []commitReq{s.createReq(ctx, event("n3")), s.createReq(ctx, event("n1")), route(evs["r2"], "d-r2")}
	errs = make([]error, len(batch))
	s.commits.run(batch, errs)
	if errs[0] != nil || !errors.Is(errs[1], mapper.ErrConflict) || errs[2] != nil {
		t.Fatalf("a batch with a taken event ID: errors %v", errs)
	}
	for id, want := range map[string]mapper.EventStatus{"n3": mapper.EventPending, "n1": mapper.EventPending, "r2": mapper.EventDelivered} {
		if got, err := s.GetEvent(ctx, id); err != nil || got.Status != want {
			t.Errorf("%s after the batch with a taken ID: %+v, %v; want %s", id, got, err, want)
		}
	}

	// Two routes of one event, one with a lease lost (on PostgreSQL one
	// statement writes both: the lost one's delivery must not follow the
	// other's update), and a batch of routes without deliveries.
	batch = []commitReq{route(evs["r3"], "d-r3-stale"), route(&r3, "d-r3")}
	errs = make([]error, len(batch))
	s.commits.run(batch, errs)
	if !errors.Is(errs[0], mapper.ErrLeaseLost) || errs[1] != nil {
		t.Fatalf("two routes of one event: errors %v", errs)
	}
	page, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: "r3"})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != "d-r3" {
		t.Errorf("r3's deliveries %+v, %v; want d-r3 alone", page.Items, err)
	}
	r5 := evs["r5"]
	r5.Status, r5.Unroutable, r5.RoutedAt, r5.RouteAttempts, r5.CompletedAt = mapper.EventUnroutable, []string{"1"}, &done, 1, &done
	req, err := s.routeReq(ctx, r5, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.pg {
		// Through the batch statement itself: the committer would retry a
		// route it failed alone, in recordRoutePG's statement.
		held, err := s.writePG(ctx, nil, nil, nil, []*routeReq{req.route}, claimFirst)
		if err != nil || !held[0] {
			t.Fatalf("a batch of a route without deliveries: held %v, %v", held, err)
		}
	} else if err := s.commits.send(req); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetEvent(ctx, "r5"); err != nil || got.Status != mapper.EventUnroutable || len(got.Unroutable) != 1 {
		t.Errorf("r5 routed without deliveries: %+v, %v", got, err)
	}
}

// TestOptimisticBatchMeetsTakenKey: on PostgreSQL a batch none of whose
// keys the writer saw recently is written in one round trip, its keys
// assumed fresh; when one was taken all the same (by another replica, or
// before a restart), the batch is written again claiming its keys first,
// and its items are marked as they would have been.
func TestOptimisticBatchMeetsTakenKey(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	at := time.UnixMicro(1_700_000_000_000_000).UTC()
	event := func(id string, keys ...string) *mapper.Event {
		ev := &mapper.Event{ID: id, ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
			Payload: []byte(`{"object":"instagram","entry":[]}`), AccountIDs: []string{"a"}}
		for _, k := range keys {
			ev.Items = append(ev.Items, mapper.EventItem{Key: k})
		}
		return ev
	}
	if err := s.CreateEvent(ctx, event("e0", "taken", "taken too")); err != nil {
		t.Fatal(err)
	}
	s.recent = newRecentKeys() // as another replica's writer would not have seen it
	evs := []*mapper.Event{event("e1", "taken", "fresh"), event("e2", "other"), event("e3", "taken too")}
	if !s.recent.fresh(evs) {
		t.Fatal("the batch would not be written optimistic")
	}
	batch := make([]commitReq, len(evs))
	for i, ev := range evs {
		batch[i] = s.createReq(ctx, ev)
	}
	errs := make([]error, len(batch))
	s.commits.run(batch, errs)
	if errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	for id, want := range map[string]struct {
		dups   []bool
		status mapper.EventStatus
	}{"e1": {[]bool{true, false}, mapper.EventPending}, "e2": {[]bool{false}, mapper.EventPending}, "e3": {[]bool{true}, mapper.EventDuplicate}} {
		got, err := s.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if dups := duplicates(got); !slices.Equal(dups, want.dups) || got.Status != want.status {
			t.Errorf("%s: %s, duplicates %v; want %s, %v", id, got.Status, dups, want.status, want.dups)
		}
	}
	var owner string
	if err := s.db.NewRaw("SELECT event_id FROM mapper_dedup_keys WHERE dedup_key = 'taken'").Scan(ctx, &owner); err != nil || owner != "e0" {
		t.Errorf("the taken key's owner: %q, %v", owner, err)
	}
	if s.recent.fresh([]*mapper.Event{event("e4", "taken")}) {
		t.Error("the writer forgot the taken key it met")
	}
}

// duplicates is whether each of ev's items is marked a duplicate.
func duplicates(ev *mapper.Event) []bool {
	var dups []bool
	for _, it := range ev.Items {
		dups = append(dups, it.Duplicate)
	}
	return dups
}

// TestRecentKeys: the writer's memory of keys sends a batch the careful
// way when a key repeats within it or was seen lately, forgets the
// oldest beyond its bound, and ignores refused events.
func TestRecentKeys(t *testing.T) {
	event := func(keys ...string) *mapper.Event {
		ev := &mapper.Event{}
		for _, k := range keys {
			ev.Items = append(ev.Items, mapper.EventItem{Key: k})
		}
		return ev
	}
	r := newRecentKeys()
	if r.fresh(nil) {
		t.Error("an empty batch was fresh")
	}
	if !r.fresh([]*mapper.Event{event("a", "a"), event("b")}) {
		t.Error("a key repeated within one event (claimed once) made the batch stale")
	}
	if r.fresh([]*mapper.Event{event("a"), event("c", "a")}) {
		t.Error("a key in two events of a batch was fresh")
	}
	// fresh must not remember what it checked, whether it said yes or no.
	if !r.fresh([]*mapper.Event{event("a"), event("c")}) {
		t.Error("fresh kept the keys of a batch it checked")
	}
	r.add([]*mapper.Event{event("a"), event("refused")}, []error{nil, errors.New("refused")})
	if r.fresh([]*mapper.Event{event("a")}) {
		t.Error("a key added was fresh")
	}
	if !r.fresh([]*mapper.Event{event("refused")}) {
		t.Error("a refused event's key was remembered")
	}
	evs := make([]*mapper.Event, recentKeysKept)
	for i := range evs {
		evs[i] = event(fmt.Sprint("k", i))
	}
	r.add(evs, make([]error, len(evs)))
	if len(r.seen) != recentKeysKept || len(r.ring) != recentKeysKept {
		t.Errorf("kept %d keys in a ring of %d; want %d", len(r.seen), len(r.ring), recentKeysKept)
	}
	if !r.fresh([]*mapper.Event{event("a")}) {
		t.Error("the oldest key was not forgotten")
	}
	if r.fresh([]*mapper.Event{event(fmt.Sprint("k", recentKeysKept-1))}) {
		t.Error("the newest key was forgotten")
	}
}
