package mapper_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chatico/mapper"
)

func TestMarkDuplicates(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	newEvent := func(keys ...string) *mapper.Event {
		ev := &mapper.Event{Status: mapper.EventPending, ReceivedAt: at, LeaseToken: "lease"}
		for _, k := range keys {
			ev.Items = append(ev.Items, mapper.EventItem{Key: k})
		}
		return ev
	}
	dups := func(ev *mapper.Event) []bool {
		var out []bool
		for _, it := range ev.Items {
			out = append(out, it.Duplicate)
		}
		return out
	}

	// A repeat within the event is a duplicate even though its key is new.
	ev := newEvent("a", "b", "a", "c")
	ev.MarkDuplicates(func(k string) bool { return k != "b" })
	if got := dups(ev); !slices.Equal(got, []bool{false, true, true, false}) || ev.Status != mapper.EventPending || ev.LeaseToken != "lease" {
		t.Errorf("some new: duplicates %v, status %s, lease %q", got, ev.Status, ev.LeaseToken)
	}

	ev = newEvent("a", "a")
	ev.MarkDuplicates(func(string) bool { return false })
	if ev.Status != mapper.EventDuplicate || ev.CompletedAt == nil || !ev.CompletedAt.Equal(at) || ev.LeaseToken != "" {
		t.Errorf("nothing new: status %s, completed %v, lease %q", ev.Status, ev.CompletedAt, ev.LeaseToken)
	}

	// An event without items (a dashboard test) is not a duplicate.
	ev = newEvent()
	ev.MarkDuplicates(func(string) bool { return false })
	if ev.Status != mapper.EventPending {
		t.Errorf("no items: status %s", ev.Status)
	}
}
