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
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "plans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		sql   string
		args  []any
		index string
	}{
		"events":               {s.claimEventsSQL(), []any{"t", 2, 1, 10}, "mapper_events_due"},
		"deliveries":           {s.claimDeliveriesSQL(""), []any{"t", 2, 1, 10}, "mapper_deliveries_due"},
		"deliveries, skipping": {s.claimDeliveriesSQL(" AND app_id NOT IN (?)"), []any{"t", 2, 1, "app_x", 10}, "mapper_deliveries_due"},
	} {
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.sql, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notUsed int
			var detail string
			if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "INDEX "+tc.index+" ") || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s claim does not walk %s alone:\n%s", name, tc.index, text)
		}
	}
}
