package mapper_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/payload"
	"github.com/chatico/mapper/testing/mappertest"
)

// TestEveryShapeIsDeliveredOrExplained: each payload of testdata/payloads
// (Meta's documented shapes for every Instagram field, both logins, the
// dashboard's test, and payloads whose member types drifted), signed, is
// answered 200, never ignored, and each of its items reaches the app of
// its entry's account, or is unroutable with the reason named.
func TestEveryShapeIsDeliveredOrExplained(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/payloads/*.json")
	if err != nil || len(files) < 20 {
		t.Fatalf("%d payload files: %v", len(files), err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t)
			app, _ := h.addApp("subscriber", "17841405309211844", "0")
			id := h.accept(body)
			ev := h.settled(id)
			p, err := payload.Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			var withAccount, without int
			for i, e := range p.Entries {
				if e.ID == "" {
					without++
					if !slices.Contains(ev.Unroutable, fmt.Sprintf("entry:%d", i)) {
						t.Errorf("entry %d has no account, but unroutable says %v", i, ev.Unroutable)
					}
				} else {
					withAccount++
				}
			}
			switch {
			case ev.Status == mapper.EventIgnored:
				t.Fatalf("ignored: %+v", ev)
			case without == 0 && ev.Status != mapper.EventDelivered:
				t.Fatalf("status %s (unroutable %v, error %q), want delivered", ev.Status, ev.Unroutable, ev.LastError)
			case without > 0 && ev.Status != mapper.EventUnroutable:
				t.Fatalf("status %s, want unroutable for the entries without an account", ev.Status)
			}
			if withAccount > 0 {
				got := app.Received()
				if len(got) != 1 {
					t.Fatalf("%d deliveries, want 1", len(got))
				}
				if without == 0 && string(got[0].Body) != string(body) {
					t.Errorf("the app did not get Meta's bytes:\n%s", got[0].Body)
				}
			}
			for i, it := range ev.Items {
				if it.Kind == "" || it.Key == "" {
					t.Errorf("item %d of the log: %+v", i, it)
				}
			}
		})
	}
}

// TestSignedEntryArrayIsNeverRefused: any signed JSON object with an
// "object" string and an "entry" array, whatever the entries hold, is
// answered 200, never 4xx, unless an ID it routes or deduplicates by holds
// a control character (a NUL here), which is a 400 naming it. The bodies
// are random JSON, seeded so that a failure repeats.
func TestSignedEntryArrayIsNeverRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addApp("a", accountA)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		entries := make([]any, rng.IntN(4))
		for j := range entries {
			entries[j] = randomEntry(rng)
		}
		body, err := json.Marshal(map[string]any{"object": "instagram", "entry": entries})
		if err != nil {
			t.Fatal(err)
		}
		resp, _, raw := h.post(body, metaSecret)
		poisoned := resp.StatusCode == http.StatusBadRequest && bytes.Contains(raw, []byte("holds a control character")) && bytes.Contains(body, []byte(`\u0000`))
		if resp.StatusCode != http.StatusOK && !poisoned {
			t.Fatalf("body %d answered %d: %s\n%s", i, resp.StatusCode, raw, body)
		}
	}
}

// randomEntry is an entry-like value: mostly objects with Meta's member
// names holding values of any type, sometimes not an object at all.
func randomEntry(rng *rand.Rand) any {
	if rng.IntN(8) == 0 {
		return randomValue(rng, 2)
	}
	e := map[string]any{}
	for _, name := range []string{"id", "time", "changes", "messaging", "standby", "field", "value", "reels"} {
		if rng.IntN(2) == 0 {
			continue
		}
		switch name {
		case "id":
			e[name] = []any{accountA, 17841400000000001, nil, map[string]any{}}[rng.IntN(4)]
		case "changes", "messaging", "standby":
			items := make([]any, rng.IntN(3))
			for k := range items {
				items[k] = randomItem(rng)
			}
			e[name] = items
		default:
			e[name] = randomValue(rng, 2)
		}
	}
	return e
}

func randomItem(rng *rand.Rand) any {
	if rng.IntN(6) == 0 {
		return randomValue(rng, 1)
	}
	it := map[string]any{}
	for _, name := range []string{"field", "value", "sender", "timestamp", "message", "reaction", "read", "optin"} {
		if rng.IntN(2) == 0 {
			it[name] = randomValue(rng, 2)
		}
	}
	if rng.IntN(2) == 0 {
		it["field"] = payload.Fields[rng.IntN(len(payload.Fields))]
	}
	return it
}

func randomValue(rng *rand.Rand, depth int) any {
	n := 6
	if depth == 0 {
		n = 4
	}
	switch rng.IntN(n) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return rng.Float64() * 1e13
	case 3:
		return []string{"", "x", "18000000000000001", "mid.\u00e4", "\u0000"}[rng.IntN(5)]
	case 4:
		a := make([]any, rng.IntN(3))
		for i := range a {
			a[i] = randomValue(rng, depth-1)
		}
		return a
	default:
		o := map[string]any{}
		for _, k := range []string{"id", "mid", "media", "media_id", "comment_id", "message", "is_echo"} {
			if rng.IntN(3) == 0 {
				o[k] = randomValue(rng, depth-1)
			}
		}
		return o
	}
}

// TestFieldRouting: one account's webhooks split across apps by field;
// an item of a field no app takes is unroutable as account/field, and a
// replay once an app takes it delivers only that item.
func TestFieldRouting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	mod, _ := h.addFieldApp("moderation", []string{"comments", "mentions"}, accountA)
	inbox, _ := h.addFieldApp("inbox", []string{"messages", "standby"}, accountA, accountB)
	body := mappertest.NewWebhook().
		Comment(accountA, "18000000000000001", "17900000000000001", "nice post").
		Message(accountA, "1236422025128657", "mid.A.1", "dm to A").
		Reaction(accountA, "1236422025128657", "mid.A.1").
		Standby(accountA, "1236422025128657", "mid.A.2", "to the human agent").
		Message(accountB, "1236422025128657", "mid.B.1", "dm to B").Bytes()
	id := h.accept(body)
	ev := h.settled(id)
	if ev.Status != mapper.EventUnroutable || !slices.Equal(ev.Unroutable, []string{accountA + "/message_reactions"}) {
		t.Fatalf("event %s unroutable %v", ev.Status, ev.Unroutable)
	}
	gotMod, gotInbox := mod.Received(), inbox.Received()
	if len(gotMod) != 1 || len(gotInbox) != 1 {
		t.Fatalf("moderation got %d, inbox %d deliveries; want 1 each", len(gotMod), len(gotInbox))
	}
	has := func(name string, b []byte, want, not []string) {
		t.Helper()
		for _, s := range want {
			if !strings.Contains(string(b), s) {
				t.Errorf("%s: missing %q in %s", name, s, b)
			}
		}
		for _, s := range not {
			if strings.Contains(string(b), s) {
				t.Errorf("%s: %q should not be in %s", name, s, b)
			}
		}
	}
	has("moderation", gotMod[0].Body, []string{"nice post"}, []string{"dm to A", "to the human agent", "dm to B", `"reaction"`})
	has("inbox", gotInbox[0].Body, []string{"dm to A", "to the human agent", "dm to B", `"standby":[`}, []string{"nice post", `"reaction"`})
	for i, want := range []struct{ field, kind string }{{"comments", "change"}, {"messages", "messaging"}, {"message_reactions", "messaging"}, {"standby", "standby"}, {"messages", "messaging"}} {
		if it := ev.Items[i]; it.Field != want.field || it.Kind != want.kind {
			t.Errorf("log item %d: %+v, want field %s kind %s", i, it, want.field, want.kind)
		}
	}

	// An app for reactions; replaying the event sends the reaction only.
	reactions, _ := h.addFieldApp("reactions", []string{"message_reactions"}, accountA)
	if resp, raw := h.admin(http.MethodPost, "/events/"+id+"/replay", nil); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("replay: %d %s", resp.StatusCode, raw)
	}
	got, err := reactions.WaitFor(ctxTimeout(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	has("reactions", got[0].Body, []string{`"reaction"`}, []string{"nice post", "dm to A", "dm to B", "to the human agent"})
	ev = h.settled(id)
	if ev.Status != mapper.EventDelivered || len(ev.Unroutable) != 0 {
		t.Errorf("after replay: %s unroutable %v", ev.Status, ev.Unroutable)
	}
	if len(mod.Received()) != 1 || len(inbox.Received()) != 1 {
		t.Errorf("replay sent again what was delivered: moderation %d, inbox %d", len(mod.Received()), len(inbox.Received()))
	}
}

// TestFieldRoutingAdmin: fields are checked by name (422, with Meta's
// list), aliases are stored under Meta's name, and an app that would
// take another app's (account, field) is a 409 that names both.
func TestFieldRoutingAdmin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, modID := h.addFieldApp("moderation", []string{"comments"}, accountA)
	app := func(fields ...string) map[string]any {
		return map[string]any{"name": "x", "url": "http://127.0.0.1:1/x", "account_ids": []string{accountB, accountA}, "secret": "0123456789abcdef", "fields": fields}
	}
	resp, raw := h.admin(http.MethodPost, "/worker-apps/", app("comments", "coments"))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), `\"coments\" is not an Instagram webhook field`) || !strings.Contains(string(raw), "messaging_handovers") {
		t.Errorf("unknown field: %d %s", resp.StatusCode, raw)
	}
	resp, raw = h.admin(http.MethodPost, "/worker-apps/", app("messages", "comments"))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(raw), "field comments of account "+accountA+" is already served by worker app "+modID) {
		t.Errorf("clash: %d %s", resp.StatusCode, raw)
	}
	resp, raw = h.admin(http.MethodPost, "/worker-apps/", app())
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(raw), modID) {
		t.Errorf("every field of a shared account: %d %s", resp.StatusCode, raw)
	}
	resp, raw = h.admin(http.MethodPost, "/worker-apps/", app("messaging_handover", "messages"))
	var created mapper.WorkerApp
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &created) != nil || !slices.Equal(created.Fields, []string{"messaging_handovers", "messages"}) {
		t.Errorf("alias: %d %s", resp.StatusCode, raw)
	}
	resp, raw = h.admin(http.MethodGet, "/worker-apps/"+modID, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"fields":["comments"]`) {
		t.Errorf("GET: %d %s", resp.StatusCode, raw)
	}
}
