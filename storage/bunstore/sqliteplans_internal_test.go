package bunstore

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
)

// TestSQLiteClaimPlans: on SQLite the claims walk the partial due indexes
// and sort nothing. Without statistics its planner chose the status index
// for "status = 'pending'" and sorted every pending row in a temporary
// B-tree, so each claim's cost grew with the backlog: half the CPU of a
// flat-out run went there, and deliveries lagged by seconds.
func TestSQLiteClaimPlans(t *testing.T) {
	s := migrated(t, dialects["sqlite"])
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
		// An ordered delivery's check of older pending events reads each
		// one's accounts and looks each up in the routes by key, never
		// every account of the app.
		if tc.index == "mapper_deliveries_due" && !strings.Contains(text, "SEARCH aa USING COVERING INDEX sqlite_autoindex_mapper_app_accounts_1 (account_id=? AND app_id=?)") {
			t.Errorf("%s claim does not look routes up by key:\n%s", name, text)
		}
	}
}

// TestSQLiteStatsPlans: the metrics' queries read ranges of indexes that
// hold only live rows, or a bounded sample from the newest end of one, and
// pruning reads the oldest end of the completion index, so their cost does
// not grow with the history kept (#19). A full scan, or a sort
// of every delivered event, would take seconds with millions kept.
func TestSQLiteStatsPlans(t *testing.T) {
	s := migrated(t, dialects["sqlite"])
	for name, tc := range map[string]struct {
		sql   string
		args  []any
		index []string
	}{
		"events by status":     {s.statsEventsSQL(), nil, []string{"mapper_events_status_log"}},
		"deliveries by status": {s.statsDeliveriesSQL(), nil, []string{"mapper_deliveries_status"}},
		"oldest pending":       {s.statsOldestSQL(), nil, []string{"mapper_events_status_log", "mapper_deliveries_status"}},
		"recent processing":    {s.statsRecentSQL(), []any{1, percentileSample}, []string{"mapper_events_completed"}},
		"prune":                {s.pruneSelectSQL(), []any{0, 1, "delivered", 64}, []string{"mapper_events_completed"}},
		"prune's event accounts": {deleteEventAccounts(s.db, [][]any{{"1", 10, "evt_1"}, {"2", 11, "evt_2"}}).String(), nil,
			[]string{"PRIMARY KEY"}}, // SEARCH … USING PRIMARY KEY (…)
	} {
		text := explain(t, s, tc.sql, tc.args...)
		for _, ix := range tc.index {
			if !strings.Contains(text, "INDEX "+ix+" ") && !strings.Contains(text, "USING "+ix+" ") {
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

// TestSQLitePruneGivesSpaceBack: a new SQLite file is in incremental
// auto-vacuum mode, and pruning leaves at most a tenth of it free, giving
// the rest back to the file system.
func TestSQLitePruneGivesSpaceBack(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["sqlite"])
	// 1,000 ended events of 8 KB each, a week old: a few thousand pages,
	// in fewer batches than small events would take (each rests at least
	// pruneMinRest).
	if _, err := s.db.ExecContext(ctx, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000)
INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
SELECT 'evt_' || n, n, 'instagram', randomblob(8000), '', '[]', '["1"]', 'delivered', n, n + 1 FROM g`); err != nil {
		t.Fatal(err)
	}
	pages := func() (mode, count, free int64) {
		t.Helper()
		if err := s.db.QueryRowContext(ctx, "SELECT * FROM pragma_auto_vacuum(), pragma_page_count(), pragma_freelist_count()").Scan(&mode, &count, &free); err != nil {
			t.Fatal(err)
		}
		return mode, count, free
	}
	mode, before, _ := pages()
	if mode != 2 {
		t.Fatalf("auto_vacuum %d, want 2 (incremental)", mode)
	}
	n, err := s.Prune(ctx, time.Now(), 1000)
	if err != nil || n != 1000 {
		t.Fatalf("pruned %d, %v; want 1000", n, err)
	}
	_, after, free := pages()
	if after > before/4 || free > after/10+1 {
		t.Errorf("pages %d → %d with %d free: the space was not given back", before, after, free)
	}
}

// TestSQLiteLogPlans: the listings read a page's worth of an index, with
// no sort, whatever the filter, now that delivered rows are in no status
// index: a listing of delivered ones walks the time index, one of any
// other status the partial status index.
var rightPart = regexp.MustCompile(`USE TEMP B-TREE FOR (LAST TERM|RIGHT PART) OF ORDER BY`)

func TestSQLiteLogPlans(t *testing.T) {
	s := migrated(t, dialects["sqlite"])
	cursor := encodeCursor(1764331200000000, "evt_x")
	for name, tc := range map[string]struct {
		events     *mapper.EventQuery
		deliveries *mapper.DeliveryQuery
		index      string
		sortsFew   bool // sorts what the index found: an event's few deliveries
	}{
		"events":                 {events: &mapper.EventQuery{}, index: "mapper_events_log"},
		"events, next page":      {events: &mapper.EventQuery{Cursor: cursor}, index: "mapper_events_log"},
		"delivered events":       {events: &mapper.EventQuery{Status: mapper.EventDelivered}, index: "mapper_events_log"},
		"dead events":            {events: &mapper.EventQuery{Status: mapper.EventDead, Cursor: cursor}, index: "mapper_events_status_log"},
		"events of an account":   {events: &mapper.EventQuery{Account: "1"}, index: "PRIMARY KEY"},
		"deliveries":             {deliveries: &mapper.DeliveryQuery{}, index: "mapper_deliveries_log"},
		"delivered deliveries":   {deliveries: &mapper.DeliveryQuery{Status: mapper.DeliveryDelivered}, index: "mapper_deliveries_log"},
		"dead deliveries":        {deliveries: &mapper.DeliveryQuery{Status: mapper.DeliveryDead, Cursor: cursor}, index: "mapper_deliveries_status"},
		"deliveries of an app":   {deliveries: &mapper.DeliveryQuery{AppID: "app_1"}, index: "mapper_deliveries_app"},
		"deliveries of an event": {deliveries: &mapper.DeliveryQuery{EventID: "evt_1"}, index: "mapper_deliveries_event", sortsFew: true},
	} {
		var sql string
		if tc.events != nil {
			sel, err := s.listEventsQuery(*tc.events, &[]eventRow{}, 50)
			if err != nil {
				t.Fatal(err)
			}
			sql = sel.String()
		} else {
			sel, err := s.findDeliveriesQuery(*tc.deliveries, &[]deliveryRow{}, 50)
			if err != nil {
				t.Fatal(err)
			}
			sql = sel.String()
		}
		text := explain(t, s, sql) + "\n"
		if !strings.Contains(text, "INDEX "+tc.index+" ") && !strings.Contains(text, "INDEX "+tc.index+"\n") && !strings.Contains(text, "USING "+tc.index+" ") {
			t.Errorf("%s does not walk %s:\n%s", name, tc.index, text)
		}
		// The time indexes hold no IDs: the rows of one instant are
		// sorted by ID among themselves ("last term", "right part" in
		// SQLite before 3.42), nothing more.
		sorts := strings.Contains(rightPart.ReplaceAllString(text, ""), "TEMP B-TREE")
		if (sorts && !tc.sortsFew) || strings.Contains(text, "SCAN e\n") || strings.Contains(text, "SCAN d\n") {
			t.Errorf("%s sorts or scans:\n%s", name, text)
		}
	}
}

// TestPruneBatchAdapts: SQLite's batches of pruning move toward the size
// that holds the writer for pruneHold, at most twofold a batch, within
// pruneLeast and the most asked for.
func TestPruneBatchAdapts(t *testing.T) {
	for _, tc := range []struct {
		size, most int
		took       time.Duration
		want       int
	}{
		{8, 64, pruneHold, 8},
		{8, 64, 4 * pruneHold, 4},     // halves at most
		{8, 64, pruneHold / 10, 16},   // doubles at most
		{8, 64, 3 * pruneHold / 2, 5}, // in between: in proportion
		{8, 12, pruneHold / 10, 12},   // never past the most
		{4, 64, 10 * pruneHold, 4},    // never below pruneLeast
		{1, 1, 10 * pruneHold, 1},     // unless the most asked for is less
		{8, 64, 0, 16},                // too quick to time
	} {
		if got := nextBatch(tc.size, tc.most, tc.took); got != tc.want {
			t.Errorf("nextBatch(%d, %d, %v) = %d, want %d", tc.size, tc.most, tc.took, got, tc.want)
		}
	}
}
