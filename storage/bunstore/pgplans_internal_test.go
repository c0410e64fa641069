package bunstore

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

// TestPostgresQueryPlans fills PostgreSQL with 300,000 events and their
// deliveries (a few hundred pending, one in 97 dead, the rest delivered),
// then checks the plans of the store's own hot queries, as it sends them:
// none reads an events or deliveries table sequentially or sorts what it
// found, so none costs more as history grows. The claims read the partial
// due indexes, the listings a page of an index, the metrics the live rows
// or the newest end of the completion index. Run with -v to see the plans.
//
// The listing of dead events once sorted every dead event: the store sent
// the partial index's own term (status <> 'delivered') beside the status,
// and PostgreSQL, counting it as a second filter, expected a hundredth of
// the rows it found.
func TestPostgresQueryPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a database; skipped with -short")
	}
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	const status = `CASE WHEN g % 1000 = 0 THEN 'pending' WHEN g % 97 = 0 THEN 'dead' ELSE 'delivered' END`
	for _, fill := range []string{`
INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
SELECT 'evt_' || lpad(g::text, 10, '0'), 1764331200000000 + g * 1000,
       'instagram', '\x7b7d'::bytea, '', '[]', '["' || (g % 500) || '"]', ` + status + `,
       1764331200000000 + g * 1000,
       CASE WHEN g % 1000 = 0 THEN NULL ELSE 1764331200000000 + g * 1000 + 5000 END
FROM generate_series(1, 300000) AS g`, `
INSERT INTO mapper_event_accounts (account_id, received_at, event_id)
SELECT (g % 500)::text, 1764331200000000 + g * 1000, 'evt_' || lpad(g::text, 10, '0') FROM generate_series(1, 300000) AS g`, `
INSERT INTO mapper_deliveries (id, event_id, app_id, owner_ids, original, status, next_attempt_at, created_at, completed_at)
SELECT 'dlv_' || lpad(g::text, 10, '0'), 'evt_' || lpad(g::text, 10, '0'), 'app_' || (g % 5), '[]', TRUE, ` + status + `,
       1764331200000000 + g * 1000, 1764331200000000 + g * 1000,
       CASE WHEN g % 1000 = 0 THEN NULL ELSE 1764331200000000 + g * 1000 + 5000 END
FROM generate_series(1, 300000) AS g`, `
INSERT INTO mapper_worker_apps (id, name, url, secret, enabled, created_at, updated_at)
SELECT 'app_' || g, 'app ' || g, 'http://app', 's', TRUE, 0, 0 FROM generate_series(0, 4) AS g`, `
INSERT INTO mapper_app_accounts (account_id, app_id)
SELECT g::text, 'app_' || (g % 5) FROM generate_series(0, 99999) AS g`, "ANALYZE"} {
		if _, err := s.db.ExecContext(ctx, fill); err != nil {
			t.Fatal(err)
		}
	}

	const now, since = 1764631200000000, 1764331300000000
	cursor := encodeCursor(1764431200000000, "evt_0000100000")
	type query struct {
		sql  string
		args []any
	}
	queries := map[string]query{
		"claim events":        {s.claimEventsSQL(), []any{"t", now + 1, now, 16}},
		"claim deliveries":    {s.claimDeliveriesSQL(""), []any{"t", now + 1, now, 16}},
		"metrics, events":     {s.statsEventsSQL(), nil},
		"metrics, deliveries": {s.statsDeliveriesSQL(), nil},
		"metrics, oldest":     {s.statsOldestSQL(), nil},
		"metrics, recent":     {s.statsRecentSQL(), []any{since, percentileSample}},
		"prune":               {s.pruneSelectSQL(), []any{0, since, bun.In(ended), 128}},
		"prune, event accounts": {deleteEventAccounts(s.db, [][]any{{"42", 1764331200042000, "evt_0000000042"},
			{"43", 1764331200043000, "evt_0000000043"}}).String(), nil},
	}
	listing := func(name string, sel *bun.SelectQuery, err error) {
		if err != nil {
			t.Fatal(err)
		}
		queries[name] = query{sel.String(), nil}
	}
	for name, q := range map[string]mapper.EventQuery{
		"log":                  {},
		"log, next page":       {Cursor: cursor},
		"log, dead":            {Status: mapper.EventDead},
		"log, dead, next page": {Status: mapper.EventDead, Cursor: cursor},
		"log, delivered":       {Status: mapper.EventDelivered},
		"log of an account":    {Account: "42", Cursor: cursor},
	} {
		sel, err := s.listEventsQuery(q, &[]eventRow{}, 50)
		listing(name, sel, err)
	}
	for name, q := range map[string]mapper.DeliveryQuery{
		"deliveries":            {},
		"deliveries, dead":      {Status: mapper.DeliveryDead, Cursor: cursor},
		"deliveries, delivered": {Status: mapper.DeliveryDelivered},
		"deliveries of an app":  {AppID: "app_1", Cursor: cursor},
	} {
		sel, err := s.findDeliveriesQuery(q, &[]deliveryRow{}, 50)
		listing(name, sel, err)
	}

	// The tables that grow with history, and the routes (100,000
	// accounts here; an ordered delivery's claim looks its events'
	// accounts up by key).
	history := regexp.MustCompile(`Seq Scan on mapper_(events|deliveries|event_accounts|attempts|dedup_keys|app_accounts) `)
	// An incremental sort sorts the rows of one instant, which the time
	// indexes (without IDs) give in order of time, by ID: not a sort of
	// the history.
	sorts, valuesSorts := regexp.MustCompile(`(?m)^\s*(->  )?Sort  \(`), regexp.MustCompile(`Sort Key: "\*VALUES\*"`)
	for name, q := range queries {
		text := explainPG(ctx, t, s.db, name, "EXPLAIN "+q.sql, q.args...)
		t.Logf("%s:\n%s", name, text)
		// A sort of the statement's own VALUES list (to drop repeats) is
		// not one of stored rows.
		if history.MatchString(text) || len(sorts.FindAllString(text, -1)) > len(valuesSorts.FindAllString(text, -1)) {
			t.Errorf("%s reads a table sequentially or sorts:\n%s", name, text)
		}
	}
}

// TestPostgresWritesByKey checks that the hot writes of one row by its
// key, as PostgreSQL plans them once and caches (a generic plan, which
// pgx's prepared statements get after five runs), find the row by its
// primary key.
//
// They named the status they expect ('pending') as a literal: PostgreSQL
// could then use the partial due index, whose predicate is that status,
// and did, whenever statistics said it was small. They are only after a
// vacuum: between vacuums it holds an entry for every event taken in
// since, dead once routed, and a route scanned all of them (800 buffers
// a route, five times the cost, with a week of history, whose table
// autovacuum visits less often).
func TestPostgresWritesByKey(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	// Delivered history, analyzed when nothing was pending: the partial
	// indexes look empty, as after a vacuum.
	for _, fill := range []string{`
INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
SELECT 'evt_' || lpad(g::text, 10, '0'), g, 'instagram', '\x7b7d'::bytea, '', '[]', '["1"]', 'delivered', g, g
FROM generate_series(1, 50000) AS g`, `
INSERT INTO mapper_deliveries (id, event_id, app_id, owner_ids, original, status, next_attempt_at, created_at, completed_at)
SELECT 'dlv_' || lpad(g::text, 10, '0'), 'evt_' || lpad(g::text, 10, '0'), 'app_1', '[]', TRUE, 'delivered', g, g, g
FROM generate_series(1, 50000) AS g`, "VACUUM ANALYZE mapper_events", "VACUUM ANALYZE mapper_deliveries"} {
		if _, err := s.db.ExecContext(ctx, fill); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	placeholder, indexScan := regexp.MustCompile(`\$\d+`), regexp.MustCompile(`Scan using (\w+)`)
	for name, w := range map[string]struct{ sql, index string }{
		"route":                  {routeEventSQL.pg, "mapper_events_pkey"},
		"route with a delivery":  {recordRouteSQL(1), "mapper_events_pkey"},
		"route with deliveries":  {recordRouteSQL(2), "mapper_events_pkey"},
		"settle an event":        {settleEventSQL.pg, "mapper_events_pkey"},
		"record a delivery":      {recordDeliverySQL.pg, "mapper_deliveries_pkey"},
		"record an attempt":      {recordAttemptSQL.pg, "mapper_deliveries_pkey"},
		"move the held attempt":  {moveAttemptSQL.pg, "mapper_deliveries_pkey"},
		"an event's state":       {eventStateSQL.pg, "mapper_events_pkey"},
		"its deliveries' states": {deliveryStatesSQL.pg, "mapper_deliveries_event"},
	} {
		if _, err := conn.ExecContext(ctx, "PREPARE w AS "+w.sql); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		params := len(placeholder.FindAllString(w.sql, -1))
		text := explainPG(ctx, t, conn, name, "EXPLAIN EXECUTE w("+strings.TrimSuffix(strings.Repeat("NULL, ", params), ", ")+")")
		if _, err := conn.ExecContext(ctx, "DEALLOCATE w"); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s:\n%s", name, text)
		// The first scan is the row's: an insert's foreign key check is
		// not in the plan.
		scans := indexScan.FindAllStringSubmatch(text, -1)
		if len(scans) == 0 || scans[0][1] != w.index {
			t.Errorf("%s does not find its row by %s:\n%s", name, w.index, text)
		}
	}
}

// explainPG runs a PostgreSQL EXPLAIN and returns its plan's text.
func explainPG(ctx context.Context, t *testing.T, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, name, q string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return strings.Join(plan, "\n")
}

// TestTakenIDsNotPrepared: the lookup of taken event IDs, run once per
// batch from a new database's first webhook on, is planned at each run,
// not prepared: a prepared one settles on a generic plan after five runs,
// which on the table still empty reads it whole, and keeps it as the
// table grows (see refuseTakenIDs).
func TestTakenIDsNotPrepared(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	err := s.pgxConn(ctx, func(c *pgx.Conn) error {
		tx := &pipelinedTx{c: c}
		defer tx.rollback(ctx)
		ev := []*mapper.Event{{ID: "evt_1"}}
		for range 8 {
			if err := refuseTakenIDs(ctx, tx, ev, make([]error, 1)); err != nil {
				return err
			}
		}
		var prepared int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", takenIDsSQL).Scan(&prepared); err != nil {
			return err
		}
		if prepared != 0 {
			t.Errorf("the lookup of taken IDs is prepared on the connection (%d statements)", prepared)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPostgresRoutesByKey checks the plan of a batch of routes
// (routeEventsSQL) as PostgreSQL caches it for a prepared statement (a
// generic plan), after routePlanSQL as the committer runs it: it finds
// each event by its primary key and reads neither table whole, on a new
// database's empty tables, whose generic plan would otherwise read the
// events whole and keep doing so as they grow, and on a filled, analyzed
// one.
func TestPostgresRoutesByKey(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	placeholders := len(regexp.MustCompile(`\$\d+`).FindAllString(routeEventsSQL, -1))
	plan := func(name string) string {
		for _, q := range []string{"BEGIN", routePlanSQL, "SET LOCAL plan_cache_mode = force_generic_plan", "PREPARE routes AS " + routeEventsSQL} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		text := explainPG(ctx, t, conn, name, "EXPLAIN EXECUTE routes("+strings.TrimSuffix(strings.Repeat("NULL, ", placeholders), ", ")+")")
		for _, q := range []string{"ROLLBACK", "DEALLOCATE routes"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s:\n%s", name, text)
		return text
	}
	check := func(name string) {
		text := plan(name)
		if scan := regexp.MustCompile(`Scan using (\w+) on mapper_events`).FindStringSubmatch(text); scan == nil || scan[1] != "mapper_events_pkey" ||
			regexp.MustCompile(`Seq Scan on mapper_(events|deliveries)`).MatchString(text) {
			t.Errorf("%s: the routes do not find their events by mapper_events_pkey:\n%s", name, text)
		}
	}
	check("empty tables")
	for _, fill := range []string{`
INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, lease_token)
SELECT 'evt_' || lpad(g::text, 10, '0'), g, 'instagram', '\x7b7d'::bytea, '', '[]', '["1"]', 'pending', g, 't' || g
FROM generate_series(1, 50000) AS g`, "VACUUM ANALYZE mapper_events"} {
		if _, err := s.db.ExecContext(ctx, fill); err != nil {
			t.Fatal(err)
		}
	}
	check("filled tables")
}
