package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
)

// TestFillClonesTheServersRows: -history's fill makes whole events of the
// server's own shape, which the store reads like any other — listed,
// found by account, with their delivery and its attempt — and prunes
// with their keys, exactly the part put beyond the retention. If the
// schema changes under the fill, this fails.
func TestFillClonesTheServersRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mapper.db")
	store, err := bunstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := mapper.New(store, mapper.WithMetaSecrets(secret), mapper.WithVerifyToken("loadgen"), mapper.WithAdminToken(adminToken),
		mapper.WithOwnerPolicy(mapper.OwnerFromEntry))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { _ = m.Run(runCtx); close(ran) }()
	srv := httptest.NewServer(m.Handler())
	workers := newWorkers()
	defer workers.close()
	if err := registerApps(srv.URL, workers, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := sendTemplates(srv.URL, workers); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	stop()
	<-ran
	m.Close()
	store.Close()

	const n, prune = 1000, 100
	db, err := openHistoryDB(options{}, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := fill(db, "sqlite", n, prune, now); err != nil {
		t.Fatal(err)
	}
	db.Close()

	store, err = bunstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	count := func(table string) int {
		t.Helper()
		var c int
		if err := store.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for table, want := range map[string]int{"mapper_events": templates + n, "mapper_deliveries": templates + n,
		// Delivered on the first attempt, which the delivery's row holds.
		"mapper_attempts":   0,
		"mapper_dedup_keys": templates + n, "mapper_event_accounts": templates + n} {
		if got := count(table); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
	id := fmt.Sprintf("evt_%026d", 500)
	ev, err := store.GetEvent(ctx, id)
	if err != nil || ev.Status != mapper.EventDelivered || len(ev.Payload) == 0 || len(ev.Items) != 1 ||
		ev.ReceivedAt.Before(now.Add(-7*24*time.Hour)) || ev.ReceivedAt.After(now) {
		t.Fatalf("clone %s: %+v %v", id, ev, err)
	}
	ds, err := store.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: id, Attempts: true})
	if err != nil || len(ds.Items) != 1 || ds.Items[0].Status != mapper.DeliveryDelivered || len(ds.Items[0].History) != 1 ||
		ds.Items[0].CreatedAt.Before(ev.ReceivedAt) || ds.Items[0].History[0].StartedAt.Before(ds.Items[0].CreatedAt) ||
		ds.Items[0].History[0].StartedAt.After(*ds.Items[0].CompletedAt) {
		t.Fatalf("clone %s's deliveries: %+v %v", id, ds, err)
	}
	page, err := store.ListEvents(ctx, mapper.EventQuery{Account: ev.AccountIDs[0], Until: ev.ReceivedAt.Add(time.Microsecond), Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != id {
		t.Fatalf("clone %s by its account: %+v %v", id, page, err)
	}
	pruned, err := store.Prune(ctx, now.Add(-7*24*time.Hour), 1000)
	if err != nil || pruned != prune {
		t.Fatalf("pruned %d, %v; want the %d beyond the retention", pruned, err, prune)
	}
	if got := count("mapper_dedup_keys"); got != templates+n-prune {
		t.Errorf("%d deduplication keys after pruning, want %d", got, templates+n-prune)
	}
}
