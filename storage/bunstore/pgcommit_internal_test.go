package bunstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatico/mapper"
)

// TestPostgresBatchOfEvents: a batch written in one statement per table
// keeps the batch's order for its keys (the first event claims a key the
// next ones share), refuses an event whose ID exists without writing any
// of it, and writes every row, with its accounts, in full.
func TestPostgresBatchOfEvents(t *testing.T) {
	t.Parallel()
	s := migrated(t, dialects["postgres"])
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
	if err := s.CreateEvent(ctx, event("e0", []string{"a"}, "taken")); err != nil {
		t.Fatal(err)
	}
	evs := []*mapper.Event{
		event("e1", []string{"a", "b"}, "k", "x"),
		event("e0", []string{"c"}, "m"), // its ID exists
		event("e2", []string{"a"}, "k", "m"),
		event("e3", nil, "m", "taken"),
	}
	payloads := make([]stored, len(evs))
	for i, ev := range evs {
		payloads[i] = pack(ev.Payload)
	}
	errs := make([]error, len(evs))
	if err := s.commitEventsPG(ctx, evs, payloads, errs); err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], mapper.ErrConflict) || errs[2] != nil || errs[3] != nil {
		t.Fatalf("errors %v", errs)
	}
	dups := func(id string) []bool {
		got, err := s.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var d []bool
		for _, it := range got.Items {
			d = append(d, it.Duplicate)
		}
		return d
	}
	for id, want := range map[string][]bool{"e1": {false, false}, "e2": {true, false}, "e3": {true, true}} {
		if got := dups(id); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: duplicates %v, want %v", id, got, want)
		}
	}
	if got, _ := s.GetEvent(ctx, "e3"); got == nil || got.Status != mapper.EventDuplicate || got.CompletedAt == nil {
		t.Errorf("e3, all of whose keys were taken: %+v", got)
	}
	if got, _ := s.GetEvent(ctx, "e0"); got == nil || got.AccountIDs[0] != "a" || len(got.Items) != 1 {
		t.Errorf("e0 was touched by its refused copy: %+v", got)
	}
	var rows []struct {
		Account string `bun:"account_id"`
		Event   string `bun:"event_id"`
	}
	if err := s.db.NewRaw("SELECT account_id, event_id FROM mapper_event_accounts ORDER BY event_id, account_id").Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	want := []string{"a/e0", "a/e1", "b/e1", "a/e2"}
	if len(rows) != len(want) {
		t.Fatalf("event accounts %v, want %v", rows, want)
	}
	for i, r := range rows {
		if r.Account+"/"+r.Event != want[i] {
			t.Errorf("event accounts %v, want %v", rows, want)
			break
		}
	}
	got, err := s.GetEvent(ctx, "e1")
	if err != nil || string(got.Payload) != string(evs[0].Payload) || !got.ReceivedAt.Equal(at) || got.Signature != "sha256=00" ||
		got.RoutedAt != nil || got.CompletedAt != nil || got.Status != mapper.EventPending {
		t.Errorf("e1 read back: %+v, %v", got, err)
	}
}
