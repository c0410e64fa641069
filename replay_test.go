package mapper_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// A bulk replay takes only the dead deliveries it is asked for: by app
// and by time; each at most once however often it is asked.
func TestReplayDeadFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, aID := h.addApp("a", accountA)
	b, _ := h.addApp("b", accountB)
	a.FailNext(400, 400)
	b.FailNext(400)
	var ids []string
	for i, acc := range []string{accountA, accountA, accountB} {
		ids = append(ids, h.accept(mappertest.NewWebhook().Comment(acc, "1", "r"+string(rune('0'+i)), "x").Bytes()))
	}
	for _, id := range ids {
		if ev := h.settled(id); ev.Status != mapper.EventDead {
			t.Fatalf("event %s: %s", id, ev.Status)
		}
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if resp, raw := h.admin(http.MethodPost, "/deliveries/replay", map[string]any{"app_id": aID, "until": past}); resp.StatusCode != 200 || !strings.Contains(string(raw), `"replayed":0`) {
		t.Errorf("replay of nothing before an hour ago: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := h.admin(http.MethodPost, "/deliveries/replay", map[string]any{"app_id": aID}); resp.StatusCode != 200 || !strings.Contains(string(raw), `"replayed":2`) {
		t.Fatalf("replay of app a: %d %s", resp.StatusCode, raw)
	}
	for _, id := range ids[:2] {
		if ev := h.settled(id); ev.Status != mapper.EventDelivered {
			t.Errorf("event %s after replay: %s", id, ev.Status)
		}
	}
	if ev := h.settled(ids[2]); ev.Status != mapper.EventDead || h.deliveries(ids[2])[0].AttemptBase != 0 {
		t.Errorf("app b's delivery was replayed: %s", ev.Status)
	}
	// A delivery replayed already is not dead: replaying it again is 409.
	d := h.deliveries(ids[0])[0]
	if resp, raw := h.admin(http.MethodPost, "/deliveries/"+d.ID+"/replay", nil); resp.StatusCode != 409 {
		t.Errorf("replay of a delivered delivery: %d %s", resp.StatusCode, raw)
	}
	if d.AttemptBase != 1 || d.Attempts != 2 {
		t.Errorf("replayed delivery's cycle: base %d, attempts %d", d.AttemptBase, d.Attempts)
	}
}
