package bunstore_test

import (
	"context"
	"strings"
	"testing"
)

// TestQueryPlans fills PostgreSQL with 300,000 events (a few hundred of
// them pending), then shows the plans of the hot queries and checks that
// none reads the events table sequentially or sorts: the claim reads the partial
// index of pending rows, the log reads its (received_at, id) indexes. Run
// with -v to see the plans.
func TestQueryPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a database; skipped with -short")
	}
	s := newPostgres(t)
	ctx := context.Background()
	db := s.DB()
	const fill = `
INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
SELECT 'evt_' || lpad(g::text, 10, '0'),
       1764331200000000 + g * 1000,
       'instagram', '\x7b7d'::bytea, '', '[]', '["' || (g % 500) || '"]',
       CASE WHEN g % 1000 = 0 THEN 'pending' WHEN g % 97 = 0 THEN 'dead' ELSE 'delivered' END,
       1764331200000000 + g * 1000,
       CASE WHEN g % 1000 = 0 THEN NULL ELSE 1764331200000000 + g * 1000 + 5000 END
FROM generate_series(1, 300000) AS g`
	if _, err := db.ExecContext(ctx, fill); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO mapper_event_accounts (account_id, received_at, event_id)
SELECT (g % 500)::text, 1764331200000000 + g * 1000, 'evt_' || lpad(g::text, 10, '0') FROM generate_series(1, 300000) AS g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{
		"claim": `SELECT id FROM mapper_events WHERE status = 'pending' AND next_attempt_at <= 1764631200000000
ORDER BY next_attempt_at, id LIMIT 16 FOR UPDATE SKIP LOCKED`,
		"log, first page": `SELECT id, received_at, status FROM mapper_events AS e ORDER BY received_at DESC, id DESC LIMIT 51`,
		"log, next page": `SELECT id, received_at, status FROM mapper_events AS e
WHERE (received_at, id) < (1764431200000000, 'evt_0000100000')
ORDER BY received_at DESC, id DESC LIMIT 51`,
		"log by status":  `SELECT id FROM mapper_events AS e WHERE status = 'dead' AND status <> 'delivered' ORDER BY received_at DESC, id DESC LIMIT 51`,
		"log, delivered": `SELECT id FROM mapper_events AS e WHERE status = 'delivered' ORDER BY received_at DESC, id DESC LIMIT 51`,
		"log by account": `SELECT e.id FROM mapper_events AS e JOIN mapper_event_accounts AS ea ON ea.event_id = e.id
WHERE ea.account_id = '42' AND (ea.received_at, ea.event_id) < (1764431200000000, 'evt_0000100000')
ORDER BY ea.received_at DESC, ea.event_id DESC LIMIT 51`,
		"metrics, live events": `SELECT status, COUNT(*) AS n FROM mapper_events WHERE status IN ('pending', 'dispatched', 'dead') AND status <> 'delivered' GROUP BY status`,
		"metrics, oldest":      `SELECT MIN(received_at) FROM mapper_events WHERE status = 'pending' AND status <> 'delivered'`,
		"metrics, recent": `SELECT completed_at - received_at FROM mapper_events
WHERE completed_at >= 1764331300000000 AND status = 'delivered' ORDER BY completed_at DESC LIMIT 1000`,
		"prune": `SELECT id FROM mapper_events WHERE completed_at < 1764331300000000
AND status IN ('delivered', 'dead', 'unroutable', 'duplicate', 'ignored') ORDER BY completed_at LIMIT 64`,
	}
	for name, q := range queries {
		rows, err := db.QueryContext(ctx, "EXPLAIN "+q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		t.Logf("%s:\n%s", name, text)
		if strings.Contains(text, "Seq Scan on mapper_events") || strings.Contains(text, "Sort") {
			t.Errorf("%s reads mapper_events sequentially:\n%s", name, text)
		}
	}
}
