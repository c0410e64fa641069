package mapper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/payload"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

func TestSingleAppGetsOriginalBytes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	appA, _ := h.addApp("a", accountA)
	body := mappertest.NewWebhook().
		Comment(accountA, "18000000000000001", "17900000000000001", "Ünïcödé / @friend 😍").
		Comment(accountA, "18000000000000001", "17900000000000002", "second").Bytes()
	if !bytes.Contains(body, []byte(`\u00dc`)) || !bytes.Contains(body, []byte(`\ud83d\ude0d`)) || !bytes.Contains(body, []byte(`\/`)) {
		t.Fatalf("builder did not escape as Meta does: %s", body)
	}
	id := h.accept(body)
	got, err := appA.WaitFor(ctxTimeout(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	r := got[0]
	if !bytes.Equal(r.Body, body) {
		t.Errorf("body changed on the way:\n got %s\nwant %s", r.Body, body)
	}
	if !r.SignatureOK {
		t.Error("the mapper's signature did not verify")
	}
	if r.Header.Get(workerauth.HeaderMetaSignature) != mappertest.Sign(metaSecret, body) {
		t.Errorf("Meta's signature not forwarded: %q", r.Header.Get(workerauth.HeaderMetaSignature))
	}
	for k, want := range map[string]string{
		workerauth.HeaderEventID:  id,
		workerauth.HeaderAttempt:  "1",
		workerauth.HeaderOwnerIDs: accountA,
		workerauth.HeaderEnvelope: "original",
	} {
		if v := r.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	ev := h.settled(id)
	if ev.Status != mapper.EventDelivered {
		t.Errorf("event %s, want delivered", ev.Status)
	}
	ds := h.deliveries(id)
	if len(ds) != 1 || r.Header.Get(workerauth.HeaderDeliveryID) != ds[0].ID || ds[0].Attempts != 1 {
		t.Errorf("deliveries %+v", ds)
	}
	if n := h.graph.Calls(); n != 0 {
		t.Errorf("%d Graph API calls for comments under the default policy", n)
	}
}

func TestMixedBatchIsSplitWithoutLeaks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	appA, _ := h.addApp("a", accountA)
	appB, _ := h.addApp("b", accountB)
	body := mappertest.NewWebhook().
		Comment(accountA, "18000000000000001", "17900000000000001", "secret of A").
		Comment(accountB, "18000000000000002", "17900000000000002", "secret of B").
		Message(accountA, "1236422025128657", "mid.A.1", "dm to A ä").
		Comment(accountC, "18000000000000003", "17900000000000003", "secret of C").Bytes()
	id := h.accept(body)
	ctx := ctxTimeout(t)
	gotA, err := appA.WaitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	gotB, err := appB.WaitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, r mappertest.Received, own string, mine, others []string) {
		t.Helper()
		if !r.SignatureOK {
			t.Errorf("%s: bad mapper signature", name)
		}
		if r.Header.Get(workerauth.HeaderEnvelope) != "split" || r.Header.Get(workerauth.HeaderMetaSignature) != "" {
			t.Errorf("%s: envelope %q with Meta signature %q", name, r.Header.Get(workerauth.HeaderEnvelope), r.Header.Get(workerauth.HeaderMetaSignature))
		}
		p, err := payload.Parse(r.Body)
		if err != nil {
			t.Fatalf("%s: envelope does not parse: %v\n%s", name, err, r.Body)
		}
		if p.Object != "instagram" || len(p.Entries) != 1 || p.Entries[0].ID != own {
			t.Errorf("%s: entries %+v", name, p.Entries)
		}
		for _, s := range mine {
			if !bytes.Contains(r.Body, []byte(s)) {
				t.Errorf("%s: missing %q in %s", name, s, r.Body)
			}
		}
		for _, s := range others {
			if bytes.Contains(r.Body, []byte(s)) {
				t.Errorf("%s: LEAK of %q in %s", name, s, r.Body)
			}
		}
	}
	check("A", gotA[0], accountA, []string{"secret of A", "mid.A.1", `dm to A \u00e4`}, []string{"secret of B", "secret of C", accountB, accountC})
	check("B", gotB[0], accountB, []string{"secret of B"}, []string{"secret of A", "secret of C", "mid.A.1", accountA, accountC})
	ev := h.settled(id)
	if ev.Status != mapper.EventUnroutable || !slices.Equal(ev.Unroutable, []string{accountC}) {
		t.Errorf("event %s unroutable %v; want unroutable [%s] after delivering the rest", ev.Status, ev.Unroutable, accountC)
	}
	if ds := h.deliveries(id); len(ds) != 2 {
		t.Errorf("%d deliveries, want one per app", len(ds))
	}
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	appA, _ := h.addApp("a", accountA)
	first := mappertest.NewWebhook().Comment(accountA, "18000000000000001", "17900000000000001", "hello").Bytes()
	id1 := h.accept(first)
	if _, err := appA.WaitFor(ctxTimeout(t), 1); err != nil {
		t.Fatal(err)
	}
	h.settled(id1)

	// Meta's retry: the same change, sent again later (another time).
	retry := mappertest.NewWebhook().Time(time.Now().Add(time.Minute)).Comment(accountA, "18000000000000001", "17900000000000001", "hello").Bytes()
	resp, ir, raw := h.post(retry, metaSecret)
	if resp.StatusCode != 200 || ir.Status != "duplicate" {
		t.Fatalf("retry answered %d %s", resp.StatusCode, raw)
	}
	if ev := h.settled(ir.EventID); ev.Status != mapper.EventDuplicate {
		t.Errorf("retry stored as %s", ev.Status)
	}

	// The retried change comes back batched with a new one: only the new
	// one is delivered.
	batch := mappertest.NewWebhook().
		Comment(accountA, "18000000000000001", "17900000000000001", "hello").
		Comment(accountA, "18000000000000001", "17900000000000009", "new one").Bytes()
	id3 := h.accept(batch)
	got, err := appA.WaitFor(ctxTimeout(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	if b := got[1].Body; bytes.Contains(b, []byte("17900000000000001")) || !bytes.Contains(b, []byte("17900000000000009")) {
		t.Errorf("second delivery carries %s", b)
	}
	ev := h.settled(id3)
	if ev.Status != mapper.EventDelivered || !ev.Items[0].Duplicate || ev.Items[1].Duplicate {
		t.Errorf("event %s items %+v", ev.Status, ev.Items)
	}
	if n := len(appA.Received()); n != 2 {
		t.Errorf("app received %d deliveries, want 2", n)
	}
	if c := h.metrics().Counters.Webhooks; c["duplicate"] != 1 || c["accepted"] != 2 {
		t.Errorf("counters %v", c)
	}
}

func TestConcurrentCopiesDeliveredOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	appA, _ := h.addApp("a", accountA)
	body := mappertest.NewWebhook().Comment(accountA, "18000000000000001", "17900000000000001", "hello").Bytes()
	const copies = 20
	statuses := make(chan string, copies)
	for range copies {
		go func() {
			resp, err := http.DefaultClient.Do(mappertest.SignedRequest(h.srv.URL+"/webhook/", metaSecret, body))
			if err != nil {
				statuses <- err.Error()
				return
			}
			var ir intakeResponse
			_ = json.NewDecoder(resp.Body).Decode(&ir)
			resp.Body.Close()
			statuses <- ir.Status
		}()
	}
	counts := map[string]int{}
	for range copies {
		counts[<-statuses]++
	}
	if counts["accepted"] != 1 || counts["duplicate"] != copies-1 {
		t.Fatalf("answers %v, want 1 accepted and %d duplicates", counts, copies-1)
	}
	if _, err := appA.WaitFor(ctxTimeout(t), 1); err != nil {
		t.Fatal(err)
	}
	page, _ := h.store.ListEvents(context.Background(), mapper.EventQuery{Status: mapper.EventPending})
	for _, e := range page.Items {
		h.settled(e.ID)
	}
	page, _ = h.store.ListEvents(context.Background(), mapper.EventQuery{Status: mapper.EventDispatched})
	for _, e := range page.Items {
		h.settled(e.ID)
	}
	if n := len(appA.Received()); n != 1 {
		t.Errorf("app received %d deliveries, want 1", n)
	}
}

func TestUnroutableIsKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := mappertest.NewWebhook().Comment(accountC, "18000000000000003", "17900000000000003", "nobody home").Bytes()
	id := h.accept(body)
	ev := h.settled(id)
	if ev.Status != mapper.EventUnroutable || !slices.Equal(ev.Unroutable, []string{accountC}) {
		t.Fatalf("event %s %v", ev.Status, ev.Unroutable)
	}
	resp, raw := h.admin(http.MethodGet, "/monitoring/webhook-logs?status=unroutable", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), id) {
		t.Errorf("logs: %d %s", resp.StatusCode, raw)
	}
	resp, raw = h.admin(http.MethodGet, "/monitoring/webhook-logs/"+id, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "nobody home") {
		t.Errorf("event detail: %d %s", resp.StatusCode, raw)
	}
}

// TestOwnerPolicy: with a fake Graph API answering Meta's documented
// shapes (owner for the token's own media, username only for others',
// 100/33 for invisible media), every item goes to the subscribed account
// by default with no Graph call; under media_owner a comment goes to its
// media's owner and a mention whose owner cannot be seen falls back to
// the subscriber, saying why.
func TestOwnerPolicy(t *testing.T) {
	t.Parallel()
	const ownMedia, theirMedia, othersMedia, unknownMedia = "18000000000000001", "18000000000000002", "18000000000000003", "18000000000000404"
	tests := []struct {
		name   string
		policy mapper.OwnerPolicy
		body   []byte
		// wantApp is the app that must receive it ("" for none).
		wantApp        string
		wantGraphCalls int
		wantNote       string
	}{
		{"default: comment by entry.id", mapper.OwnerFromEntry,
			mappertest.NewWebhook().Comment(accountA, theirMedia, "1", "x").Bytes(), "a", 0, ""},
		{"default: mention of A on someone else's media goes to A", mapper.OwnerFromEntry,
			mappertest.NewWebhook().Mention(accountA, othersMedia, "17894227972186120").Bytes(), "a", 0, ""},
		{"default: mention of media nobody can see goes to A", mapper.OwnerFromEntry,
			mappertest.NewWebhook().Mention(accountA, unknownMedia, "").Bytes(), "a", 0, ""},
		{"media_owner: comment goes to the media's owner", mapper.OwnerFromMedia,
			mappertest.NewWebhook().Comment(accountA, theirMedia, "2", "x").Bytes(), "b", 1, ""},
		{"media_owner: mention with a username-only answer falls back to A", mapper.OwnerFromMedia,
			mappertest.NewWebhook().Mention(accountA, othersMedia, "").Bytes(), "a", 1, "media " + othersMedia + ": owner not visible"},
		{"media_owner: invisible media falls back to A", mapper.OwnerFromMedia,
			mappertest.NewWebhook().Mention(accountA, unknownMedia, "").Bytes(), "a", 1, "media " + unknownMedia + ": owner not visible"},
		{"media_owner: messaging has no media, routes by entry.id", mapper.OwnerFromMedia,
			mappertest.NewWebhook().Message(accountA, "99", "mid.1", "hi").Bytes(), "a", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, mapper.WithOwnerPolicy(tt.policy))
			h.graph.SetOwner(ownMedia, accountA)
			h.graph.SetOwner(theirMedia, accountB)
			h.graph.SetUsername(othersMedia, "someone_else")
			apps := map[string]*mappertest.WorkerApp{}
			apps["a"], _ = h.addApp("a", accountA)
			apps["b"], _ = h.addApp("b", accountB)
			id := h.accept(tt.body)
			ev := h.settled(id)
			if ev.Status != mapper.EventDelivered || len(ev.Unroutable) != 0 {
				t.Errorf("status %s, want delivered (unroutable %v, error %q)", ev.Status, ev.Unroutable, ev.LastError)
			}
			if !strings.HasPrefix(ev.LastError, tt.wantNote) || (tt.wantNote == "") != (ev.LastError == "") {
				t.Errorf("note %q, want %q", ev.LastError, tt.wantNote)
			}
			for name, app := range apps {
				n := len(app.Received())
				if want := map[bool]int{true: 1, false: 0}[name == tt.wantApp]; n != want {
					t.Errorf("app %s got %d deliveries, want %d", name, n, want)
				}
			}
			if n := h.graph.Calls(); n != tt.wantGraphCalls {
				t.Errorf("%d Graph API calls, want %d", n, tt.wantGraphCalls)
			}
		})
	}
}

// TestMediaEnrichment: a mention is delivered to the mentioned account
// with what the Graph API shows of the media (the username for someone
// else's media, the owner for the token's own), and a throttled Graph API
// delivers at once without it, saying "unknown".
func TestMediaEnrichment(t *testing.T) {
	t.Parallel()
	const ownMedia, othersMedia, throttledMedia = "18000000000000001", "18000000000000003", "18000000000000005"
	h := newHarness(t, mapper.WithMediaEnrichment(5*time.Second))
	h.graph.SetOwner(ownMedia, accountA)
	h.graph.SetUsername(othersMedia, "someone_else")
	h.graph.SetError(throttledMedia, mappertest.GraphError{HTTPStatus: 400, Code: 4, Message: "Application request limit reached"})
	appA, _ := h.addApp("a", accountA)
	for i, tc := range []struct{ media, want string }{
		{othersMedia, othersMedia + "=username:someone_else"},
		{ownMedia, ownMedia + "=owner:" + accountA},
		{throttledMedia, throttledMedia + "=unknown"},
	} {
		h.accept(mappertest.NewWebhook().Mention(accountA, tc.media, "1789422797218612"+string(rune('0'+i))).Bytes())
		got, err := appA.WaitFor(ctxTimeout(t), i+1)
		if err != nil {
			t.Fatal(err)
		}
		if v := got[i].Header.Get(workerauth.HeaderMedia); v != tc.want {
			t.Errorf("%s = %q, want %q", workerauth.HeaderMedia, v, tc.want)
		}
	}
	// Comments are not enriched unless asked for: no header, no call.
	calls := h.graph.Calls()
	h.accept(mappertest.NewWebhook().Comment(accountA, ownMedia, "17900000000000009", "hi").Bytes())
	got, err := appA.WaitFor(ctxTimeout(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	if v := got[3].Header.Get(workerauth.HeaderMedia); v != "" || h.graph.Calls() != calls {
		t.Errorf("a comment got %s %q and %d Graph calls", workerauth.HeaderMedia, v, h.graph.Calls()-calls)
	}
}

func TestResolverCacheAndSingleflight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithOwnerPolicy(mapper.OwnerFromMedia))
	h.graph.SetOwner("18000000000000001", accountA)
	h.graph.SetLatency(50 * time.Millisecond) // let concurrent misses meet
	appA, _ := h.addApp("a", accountA)
	const n = 40
	for i := range n {
		go h.accept(mappertest.NewWebhook().Comment(accountA, "18000000000000001", "179"+strings.Repeat("0", 10)+string(rune('a'+i%26))+string(rune('a'+i/26)), "burst").Bytes())
	}
	if _, err := appA.WaitFor(ctxTimeout(t), n); err != nil {
		t.Fatal(err)
	}
	if c := h.graph.CallsFor("18000000000000001"); c != 1 {
		t.Errorf("%d Graph API calls for one media in a burst, want 1", c)
	}
}

func TestResolverThrottledEventWaits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, mapper.WithOwnerPolicy(mapper.OwnerFromMedia))
	h.graph.SetOwner("18000000000000001", accountA)
	h.graph.SetError("18000000000000001", mappertest.GraphError{HTTPStatus: 400, Code: 80002, Message: "too many calls", Times: 2})
	appA, _ := h.addApp("a", accountA)
	id := h.accept(mappertest.NewWebhook().Comment(accountA, "18000000000000001", "1", "x").Bytes())
	if _, err := appA.WaitFor(ctxTimeout(t), 1); err != nil {
		t.Fatal(err)
	}
	ev := h.settled(id)
	if ev.Status != mapper.EventDelivered || ev.RouteAttempts != 3 {
		t.Errorf("event %s after %d routing attempts", ev.Status, ev.RouteAttempts)
	}
}
