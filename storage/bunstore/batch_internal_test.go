package bunstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chatico/mapper"
)

// TestBatchOfEvents: a batch of new events (on PostgreSQL one statement
// per table, on SQLite one transaction without savepoints) keeps the
// batch's order for its keys (the first event claims a key the next ones
// share) and writes every row, with its accounts, in full; an event whose
// ID exists is refused without writing any of it, and the rest of its
// batch is written.
func TestBatchOfEvents(t *testing.T) {
	t.Parallel()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			batchOfEvents(t, migrated(t, open))
		})
	}
}

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
	// commit writes evs as one batch, as the store's committer does.
	commit := func(evs ...*mapper.Event) []error {
		errs := make([]error, len(evs))
		if s.pg {
			payloads := make([]stored, len(evs))
			for i, ev := range evs {
				payloads[i] = pack(ev.Payload)
			}
			if err := s.commitEventsPG(ctx, evs, payloads, errs); err != nil {
				t.Fatal(err)
			}
			return errs
		}
		batch := make([]commitReq, len(evs))
		for i, ev := range evs {
			batch[i] = s.createReq(ctx, ev)
		}
		s.commitShared(batch, errs) // nothing else writes to the store
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
		var dups []bool
		for _, it := range got.Items {
			dups = append(dups, it.Duplicate)
		}
		if !slices.Equal(dups, want) {
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
