package bunstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestSQLiteClaimPlans: on SQLite the claims walk the partial due indexes
// and sort nothing. Without statistics its planner chose the status index
// for "status = 'pending'" and sorted every pending row in a temporary
// B-tree, so each claim's cost grew with the backlog: half the CPU of a
// flat-out run went there, and deliveries lagged by seconds.
func TestSQLiteClaimPlans(t *testing.T) {
	s := migratedSQLite(t)
	for name, tc := range map[string]struct {
		sql   string
		args  []any
		index string
	}{
		"events":               {s.claimEventsSQL(), []any{"t", 2, 1, 10}, "mapper_events_due"},
		"deliveries":           {s.claimDeliveriesSQL(""), []any{"t", 2, 1, 10}, "mapper_deliveries_due"},
		"deliveries, skipping": {s.claimDeliveriesSQL(" AND app_id NOT IN (?)"), []any{"t", 2, 1, "app_x", 10}, "mapper_deliveries_due"},
	} {
		text := explain(t, s, tc.sql, tc.args...)
		if !strings.Contains(text, "INDEX "+tc.index+" ") || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s claim does not walk %s alone:\n%s", name, tc.index, text)
		}
	}
}

// TestSQLiteStatsPlans: the metrics' queries read ranges of indexes that
// hold only live rows, or a bounded sample from the newest end of one, so
// their cost does not grow with the history (#19). A full scan, or a sort
// of every delivered event, would take seconds with millions kept.
func TestSQLiteStatsPlans(t *testing.T) {
	s := migratedSQLite(t)
	for name, tc := range map[string]struct {
		sql   string
		args  []any
		index []string
	}{
		"events by status":     {statsEventsSQL, nil, []string{"mapper_events_status_log"}},
		"deliveries by status": {statsDeliveriesSQL, nil, []string{"mapper_deliveries_status"}},
		"oldest pending":       {statsOldestSQL, nil, []string{"mapper_events_status_log", "mapper_deliveries_status"}},
		"recent processing":    {s.statsRecentSQL(), []any{1, percentileSample}, []string{"mapper_events_completed"}},
	} {
		text := explain(t, s, tc.sql, tc.args...)
		for _, ix := range tc.index {
			if !strings.Contains(text, "INDEX "+ix+" ") {
				t.Errorf("%s does not use %s:\n%s", name, ix, text)
			}
		}
		if strings.Contains(text, "TEMP B-TREE") || strings.Contains(text, "SCAN mapper_") {
			t.Errorf("%s scans or sorts:\n%s", name, text)
		}
	}
}

// explain is SQLite's query plan of a statement, one step a line.
func explain(t *testing.T, s *Store, sql string, args ...any) string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "\n")
}

// migratedSQLite is a new, migrated SQLite store, closed when the test ends.
func migratedSQLite(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
