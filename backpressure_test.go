package mapper_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// TestHandoffBackpressure: when the loop is behind, a webhook waits a
// while for a place in the handoff (its answer slows down to what the loop
// processes) and is handed over once one frees; if none frees in time, it
// goes through the outbox. Nothing is lost either way.
func TestHandoffBackpressure(t *testing.T) {
	t.Parallel()
	const account = "17841400000000001"
	release, called := make(chan struct{}), make(chan struct{}, 1)
	// The loop's one slot is held by the first event, whose owner lookup
	// waits until the test releases it.
	res := resolverFunc(func(ctx context.Context, mediaID string) (string, error) {
		select {
		case called <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return account, nil
	})
	h := newHarness(t, mapper.WithResolver(res), mapper.WithOwnerPolicy(mapper.OwnerFromMedia), mapper.WithConcurrency(1, 1),
		mapper.WithHandoffWait(200*time.Millisecond), mapper.WithRateLimit(0, 0, nil))
	// However the test ends, the lookup returns, or the harness's graceful
	// stop would wait for it.
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	w, _ := h.addApp("a", account)
	comment := func(i int) []byte {
		return mappertest.NewWebhook().Comment(account, fmt.Sprintf("1800000000%07d", i), fmt.Sprintf("1790000000%07d", i), "hi").Bytes()
	}
	var ids []string
	ids = append(ids, h.accept(comment(0)))
	<-called
	for i := 1; i <= mapper.HandoffSize; i++ {
		id := h.accept(comment(i))
		if !h.store.storedLeased(id) {
			t.Fatalf("webhook %d of a handoff with room went to the outbox", i)
		}
		ids = append(ids, id)
	}
	// The handoff is full and nothing frees it: after its wait, the next
	// webhook is stored for the outbox, and answered.
	id := h.accept(comment(mapper.HandoffSize + 1))
	if h.store.storedLeased(id) {
		t.Fatal("a webhook was handed over to a full handoff")
	}
	ids = append(ids, id)
	// The loop moves on while the next one waits: it gets a place.
	go func() { time.Sleep(50 * time.Millisecond); free() }()
	id = h.accept(comment(mapper.HandoffSize + 2))
	if !h.store.storedLeased(id) {
		t.Error("a webhook that waited while a place freed was not handed over")
	}
	ids = append(ids, id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.WaitFor(ctx, len(ids)); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		h.waitEvent(id, func(ev *mapper.Event) bool { return ev.Status == mapper.EventDelivered })
	}
}

// TestSteadyHandoffDoesNotClaim: webhooks handed over one after another
// do not make the loop read the outbox; the poll does, and the start. A
// claim that got less than its room found the outbox drained. The loop
// used to claim again whenever more webhooks had been handed over during
// a claim, which under a steady load made a chain, a claim every pass
// (on SQLite each waiting for a commit, holding the handed-over webhooks
// up meanwhile): here a claim takes 5 ms, and webhooks come faster.
func TestSteadyHandoffDoesNotClaim(t *testing.T) {
	t.Parallel()
	const poll = 100 * time.Millisecond
	// The app takes as many at once as come: deliveries that wait for its
	// slots go through the outbox, and are claimed from it.
	h := newHarnessNoRun(t, mapper.WithPollInterval(poll), mapper.WithRateLimit(0, 0, nil), mapper.WithConcurrency(0, 128))
	h.store.claimDelay = 5 * time.Millisecond
	h.start()
	w, _ := h.addApp("a", accountA)
	const n = 1000
	start, before := time.Now(), h.store.claims.Load()
	for i := range n {
		id := h.accept(mappertest.NewWebhook().Comment(accountA, fmt.Sprintf("1800000000%07d", i), fmt.Sprintf("1790000000%07d", i), "hi").Bytes())
		if !h.store.storedLeased(id) {
			t.Fatalf("webhook %d went to the outbox", i)
		}
	}
	claims, elapsed := h.store.claims.Load()-before, time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.WaitFor(ctx, n); err != nil {
		t.Fatal(err)
	}
	// One claim a poll (a poll more than whole periods fit), the start's
	// if it came late, and one to spare.
	if most := int64(elapsed/poll) + 3; claims > most {
		t.Errorf("%d claims of the outbox while %d webhooks were handed over in %v (a poll every %v): want at most %d", claims, n, elapsed.Round(time.Millisecond), poll, most)
	}
}
