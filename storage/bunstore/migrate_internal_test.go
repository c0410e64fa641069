package bunstore

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/containertest"
)

// dialects open a new store of each kind.
var dialects = map[string]func(t *testing.T) (*Store, error){
	"sqlite": func(t *testing.T) (*Store, error) {
		return OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	},
	"postgres": func(t *testing.T) (*Store, error) {
		return OpenPostgres(context.Background(), containertest.PostgresURL(t))
	},
}

// migrated opens a store and migrates it all the way; it is closed when
// the test ends.
func migrated(t *testing.T, open func(t *testing.T) (*Store, error)) *Store {
	t.Helper()
	s, err := open(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// migratedUpTo opens a store and migrates it up to the migration named
// last, for a test to put data in an older schema; it is closed when the
// test ends.
func migratedUpTo(t *testing.T, open func(t *testing.T) (*Store, error), last string) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := open(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m, err := s.migratorUpTo(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// Field routing's migration carries every app and route over: apps keep
// their accounts and take every field, as before.
func TestFieldRoutingMigrationKeepsRoutes(t *testing.T) {
	ctx := context.Background()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := migratedUpTo(t, open, "20261128000003")
			for _, q := range []string{
				`INSERT INTO mapper_worker_apps (id, name, url, secret, enabled, created_at, updated_at) VALUES ('app_1', 'one', 'http://x', 's', TRUE, 1, 1), ('app_2', 'two', 'http://y', 's', TRUE, 2, 2)`,
				`INSERT INTO mapper_app_accounts (account_id, app_id) VALUES ('1', 'app_1'), ('2', 'app_1'), ('3', 'app_2')`,
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			apps, err := s.ListApps(ctx)
			if err != nil || len(apps) != 2 || apps[0].ID != "app_1" || len(apps[0].Fields) != 0 {
				t.Fatalf("apps after migration: %+v %v", apps, err)
			}
			page, err := s.ListRoutes(ctx, mapper.RouteQuery{AppID: "app_1"})
			if err != nil || len(page.Items) != 2 || page.Items[0].AccountID != "1" || page.Items[1].AccountID != "2" || page.Items[0].Fields != nil {
				t.Fatalf("routes of app_1 after migration: %+v %v", page, err)
			}
			page, err = s.ListRoutes(ctx, mapper.RouteQuery{Accounts: []string{"1", "3"}})
			if err != nil || len(page.Items) != 2 || page.Items[0].AppID != "app_1" || page.Items[1].AppID != "app_2" {
				t.Fatalf("routes by account after migration: %+v %v", page, err)
			}
			// And back: the down migration keeps one app per account.
			if _, err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.db.NewRaw(`SELECT COUNT(*) FROM mapper_app_accounts`).Scan(ctx, &n); err != nil || n != 3 {
				t.Errorf("after rollback: %d routes, %v", n, err)
			}
		})
	}
}

// The compact-history migration (7) rebuilds SQLite's small tables
// without rowids and moves indexes: every row comes through, both ways.
func TestCompactHistoryMigrationKeepsHistory(t *testing.T) {
	ctx := context.Background()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := migratedUpTo(t, open, "20261130000006")
			for _, q := range []string{
				`INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
VALUES ('evt_1', 10, 'instagram', '{}', 'sha256=abc', '[{"key":"k1"}]', '["1"]', 'delivered', 10, 20)`,
				`INSERT INTO mapper_event_accounts (account_id, received_at, event_id) VALUES ('1', 10, 'evt_1')`,
				`INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at) VALUES ('k1', 'evt_1', 10)`,
				`INSERT INTO mapper_deliveries (id, event_id, app_id, owner_ids, original, meta_signature, status, attempts, next_attempt_at, created_at, completed_at)
VALUES ('dlv_1', 'evt_1', 'app_1', '["1"]', TRUE, 'sha256=abc', 'delivered', 1, 10, 11, 20)`,
				`INSERT INTO mapper_attempts (delivery_id, number, started_at, duration_us, status_code, error, outcome, response_body)
VALUES ('dlv_1', 1, 12, 1500, 200, '', 'delivered', 'ok')`,
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			// Each row is there, read in SQL: the store's code reads the
			// latest schema only.
			rowsThere := func(when string) {
				t.Helper()
				for table, q := range map[string]string{
					"events":         "SELECT COUNT(*) FROM mapper_events WHERE id = 'evt_1' AND payload = '{}'",
					"event accounts": "SELECT COUNT(*) FROM mapper_event_accounts WHERE account_id = '1' AND event_id = 'evt_1'",
					"dedup keys":     "SELECT COUNT(*) FROM mapper_dedup_keys WHERE dedup_key = 'k1' AND event_id = 'evt_1'",
					"deliveries":     "SELECT COUNT(*) FROM mapper_deliveries WHERE id = 'dlv_1' AND event_id = 'evt_1'",
					"attempts":       "SELECT COUNT(*) FROM mapper_attempts WHERE delivery_id = 'dlv_1' AND response_body = 'ok'",
				} {
					var n int
					if err := s.db.QueryRowContext(ctx, q).Scan(&n); err != nil || n != 1 {
						t.Fatalf("%s: %s: %d rows, %v", when, table, n, err)
					}
				}
			}
			rowsThere("before")
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			rowsThere("after")
			page, err := s.ListEvents(ctx, mapper.EventQuery{Account: "1"})
			if err != nil || len(page.Items) != 1 || page.Items[0].ID != "evt_1" {
				t.Fatalf("events of account 1: %+v %v", page, err)
			}
			ev, err := s.GetEvent(ctx, "evt_1")
			if err != nil || string(ev.Payload) != "{}" {
				t.Fatalf("event: %+v %v", ev, err)
			}
			ds, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: "evt_1", Attempts: true})
			if err != nil || len(ds.Items) != 1 || len(ds.Items[0].History) != 1 || ds.Items[0].History[0].ResponseBody != "ok" {
				t.Fatalf("deliveries: %+v %v", ds, err)
			}
			if _, err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			rowsThere("after rollback")
		})
	}
}

// Pruning deletes an event's accounts by their keys, read from the
// event's row (there is no index by event to find them by): none is left
// behind, of one account or of several, and the kept event keeps its.
func TestPruneTakesEventAccounts(t *testing.T) {
	ctx := context.Background()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := migratedUpTo(t, open, "")
			for _, q := range []string{
				`INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
VALUES ('evt_1', 10, 'instagram', '{}', '', '[]', '["1"]', 'delivered', 10, 20),
       ('evt_2', 11, 'instagram', '{}', '', '[]', '["1","2"]', 'delivered', 11, 21),
       ('evt_3', 12, 'instagram', '{}', '', '[]', '["2"]', 'delivered', 12, 9000000)`,
				`INSERT INTO mapper_event_accounts (account_id, received_at, event_id)
VALUES ('1', 10, 'evt_1'), ('1', 11, 'evt_2'), ('2', 11, 'evt_2'), ('2', 12, 'evt_3')`,
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.Prune(ctx, time.UnixMicro(1000), 0)
			if err != nil || n != 2 {
				t.Fatalf("pruned %d, %v", n, err)
			}
			var left []string
			if err := s.db.NewRaw("SELECT event_id FROM mapper_event_accounts ORDER BY event_id").Scan(ctx, &left); err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || left[0] != "evt_3" {
				t.Errorf("event accounts left: %v", left)
			}
		})
	}
}

// A delivery's last attempt is held in its row from migration 10 on: an
// attempt stored before stays in the table and is read with the held one,
// a retry moves the held one to the table, and the rollback moves every
// held attempt back to the table before the columns go.
func TestLastAttemptInRowMigration(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := migratedUpTo(t, open, "20261130000009")
			for _, q := range []string{
				`INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at)
VALUES ('evt_1', 10, 'instagram', '{}', 'sha256=abc', '[{"key":"k1"}]', '["1"]', 'dispatched', 10)`,
				`INSERT INTO mapper_deliveries (id, event_id, app_id, owner_ids, original, meta_signature, status, attempts, next_attempt_at, created_at, lease_token)
VALUES ('dlv_1', 'evt_1', 'app_1', '["1"]', TRUE, '', 'pending', 1, 10, 11, 'tok')`,
				`INSERT INTO mapper_attempts (delivery_id, number, started_at, duration_us, status_code, error, outcome, response_body)
VALUES ('dlv_1', 1, 12, 1500, 503, 'HTTP 503', 'pending', 'busy')`,
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			history := func() []mapper.Attempt {
				t.Helper()
				ds, err := s.FindDeliveries(ctx, mapper.DeliveryQuery{ID: "dlv_1", Attempts: true})
				if err != nil || len(ds.Items) != 1 {
					t.Fatalf("delivery: %+v %v", ds, err)
				}
				return ds.Items[0].History
			}
			if h := history(); len(h) != 1 || h[0].Number != 1 || h[0].ResponseBody != "busy" {
				t.Fatalf("history stored before: %+v", h)
			}
			d := mapper.Delivery{ID: "dlv_1", EventID: "evt_1", Status: mapper.DeliveryPending, Attempts: 2, NextAttemptAt: at.Add(time.Minute),
				LastStatusCode: 500, LastError: "HTTP 500", LeaseToken: "tok"}
			second := mapper.Attempt{DeliveryID: "dlv_1", Number: 2, StartedAt: at, Duration: 2 * time.Millisecond, StatusCode: 500,
				Error: "HTTP 500", Outcome: mapper.DeliveryPending, ResponseBody: "oops"}
			if err := s.RecordAttempt(ctx, &d, &second); err != nil {
				t.Fatal(err)
			}
			var inTable int
			if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mapper_attempts WHERE delivery_id = 'dlv_1'").Scan(&inTable); err != nil || inTable != 1 {
				t.Fatalf("attempts in the table: %d %v", inTable, err)
			}
			// The third: the second moves to the table.
			if _, err := s.db.ExecContext(ctx, "UPDATE mapper_deliveries SET lease_token = 'tok2' WHERE id = 'dlv_1'"); err != nil {
				t.Fatal(err)
			}
			done := at.Add(2 * time.Minute)
			d.Status, d.Attempts, d.LastStatusCode, d.LastError, d.CompletedAt, d.LeaseToken = mapper.DeliveryDelivered, 3, 200, "", &done, "tok2"
			third := mapper.Attempt{DeliveryID: "dlv_1", Number: 3, StartedAt: done, Duration: time.Millisecond, StatusCode: 200,
				Outcome: mapper.DeliveryDelivered, ResponseBody: "ok"}
			if err := s.RecordAttempt(ctx, &d, &third); err != nil {
				t.Fatal(err)
			}
			want := []mapper.Attempt{
				{DeliveryID: "dlv_1", Number: 1, StartedAt: fromUS(12), Duration: 1500 * time.Microsecond, StatusCode: 503, Error: "HTTP 503",
					Outcome: mapper.DeliveryPending, ResponseBody: "busy"},
				second, third,
			}
			if h := history(); !reflect.DeepEqual(h, want) {
				t.Fatalf("history:\n got %+v\nwant %+v", h, want)
			}
			if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mapper_attempts WHERE delivery_id = 'dlv_1'").Scan(&inTable); err != nil || inTable != 2 {
				t.Fatalf("attempts in the table after the third: %d %v", inTable, err)
			}

			// Down: the held attempt is in the table again.
			if _, err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			var numbers []int
			rows, err := s.db.QueryContext(ctx, "SELECT number FROM mapper_attempts WHERE delivery_id = 'dlv_1' AND started_at > 0 ORDER BY number")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var n int
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				numbers = append(numbers, n)
			}
			if err := rows.Err(); err != nil || !slices.Equal(numbers, []int{1, 2, 3}) {
				t.Fatalf("attempts after rollback: %v %v", numbers, err)
			}
			if _, err := s.db.ExecContext(ctx, "SELECT attempt_number FROM mapper_deliveries"); err == nil {
				t.Error("attempt_number is still there after the rollback")
			}
		})
	}
}

// Migration 12 drops PostgreSQL's foreign key from deliveries to events,
// the last one to events (SQLite keeps it: dropping it rebuilds the
// table), and its rollback puts it back, cascade and all.
func TestDeliveryEventUncheckedMigration(t *testing.T) {
	ctx := context.Background()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := migratedUpTo(t, open, "20261130000011")
			keys := func() []string {
				t.Helper()
				q := `SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'f' AND confrelid = 'mapper_events'::regclass ORDER BY 1`
				if !s.pg {
					q = `SELECT t.name || ' ' || f."table" || ' ' || f.on_delete FROM sqlite_schema t, pragma_foreign_key_list(t.name) f
WHERE t.type = 'table' AND f."table" = 'mapper_events' ORDER BY 1`
				}
				var got []string
				if err := s.db.NewRaw(q).Scan(ctx, &got); err != nil {
					t.Fatal(err)
				}
				return got
			}
			both := []string{"mapper_deliveries FOREIGN KEY (event_id) REFERENCES mapper_events(id) ON DELETE CASCADE"}
			if !s.pg {
				both = []string{"mapper_deliveries mapper_events CASCADE"}
			}
			if got := keys(); !slices.Equal(got, both) {
				t.Fatalf("before migration 12, foreign keys to events: %q, want %q", got, both)
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := keys(), map[bool][]string{true: nil, false: both}[s.pg]; !slices.Equal(got, want) {
				t.Errorf("foreign keys to events: %q, want %q", got, want)
			}
			if s.pg {
				// The rollback checks every delivery's event.
				orphan := `INSERT INTO mapper_deliveries (id, event_id, app_id, owner_ids, original, status, next_attempt_at, created_at)
VALUES ('d', 'gone', 'a', '[]', FALSE, 'pending', 1, 1)`
				if _, err := s.db.ExecContext(ctx, orphan); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Rollback(ctx); err == nil {
					t.Fatal("rolled back with a delivery whose event is gone")
				}
				if got := keys(); got != nil {
					t.Errorf("after a failed rollback, foreign keys to events: %q", got)
				}
				if _, err := s.db.ExecContext(ctx, `DELETE FROM mapper_deliveries WHERE id = 'd'`); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if got := keys(); !slices.Equal(got, both) {
				t.Errorf("after rollback, foreign keys to events: %q, want %q", got, both)
			}
		})
	}
}
