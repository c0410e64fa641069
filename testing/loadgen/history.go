package main

// History at scale (-history N): does a week of history cost anything?
// The run measures the reference server on a database as good as empty,
// fills it with N delivered one-comment events, and measures again:
//
//   - the metrics endpoints' latency (GET /metrics, GET /monitoring/metrics);
//   - flat-out ingest, as a ratio of the empty database's: three runs
//     of each, alternating between the history and a copy of the
//     database made before the fill, and the medians compared (one run
//     of each moved the ratio between 0.77 and 1.32 on one build);
//   - the bytes each event takes, by table and index;
//   - ack p99 at a fixed rate while the server prunes -prune of the
//     events (kept older than the retention), against the same rate with
//     pruning off.
//
// The history is cloned in SQL from events the server itself stored
// (a hundred one-comment webhooks, sent and delivered first), so its rows
// are the server's own shape; only IDs, keys and times are rewritten.
// Columns are copied by name, so the fill follows the schema as it
// changes: only the columns named in cloneRules are rewritten.

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver

	"github.com/chatico/mapper/testing/mappertest"
)

// templates is how many one-comment events the server stores for the
// history to be cloned from.
const templates = 100

// HistoryReport is what a -history run measured.
type HistoryReport struct {
	Machine   string    `json:"machine"`
	Store     string    `json:"store"`
	StartedAt time.Time `json:"started_at"`
	Events    int64     `json:"history_events"`
	Pruned    int64     `json:"pruned_events"`
	// FillTime is how long the SQL fill took.
	FillTime time.Duration `json:"fill_ns"`
	// PayloadBytes is the mean size of the templates' payloads.
	PayloadBytes  float64 `json:"payload_bytes"`
	BytesPerEvent float64 `json:"bytes_per_event"`
	// Tables is bytes per event by table or index.
	Tables []TableSize `json:"tables"`
	// Metrics are the endpoints' latencies (median and max of five) on
	// the empty database and with the history.
	MetricsEmpty   map[string][2]time.Duration `json:"metrics_empty_ns"`
	MetricsHistory map[string][2]time.Duration `json:"metrics_history_ns"`
	// LogsEmpty and LogsHistory are the log pages' latencies (logReads),
	// likewise, by name.
	LogsEmpty   map[string][2]time.Duration `json:"logs_empty_ns"`
	LogsHistory map[string][2]time.Duration `json:"logs_history_ns"`
	// IngestEmpty and IngestHistory are the median runs of ingestRuns
	// each; IngestEmptyRates and IngestHistoryRates every run's rate, in
	// the order run.
	IngestEmpty        Result    `json:"ingest_empty"`
	IngestHistory      Result    `json:"ingest_history"`
	IngestRatio        float64   `json:"ingest_ratio"`
	IngestEmptyRates   []float64 `json:"ingest_empty_rates"`
	IngestHistoryRates []float64 `json:"ingest_history_rates"`
	// Steady and Pruning are the fixed-rate runs of median ack p99 without
	// and with pruning, of up to pruneRuns pairs (fewer when pruning ended
	// sooner), SteadyP99s and PruningP99s every run's; PruneTime how long
	// the pruning took in the runs with it (0: not over when they ended).
	Steady      Result        `json:"steady"`
	Pruning     Result        `json:"pruning"`
	SteadyP99s  []float64     `json:"steady_ack_p99s_ns"`
	PruningP99s []float64     `json:"pruning_ack_p99s_ns"`
	PruneRatio  float64       `json:"prune_ack_p99_ratio"`
	PruneTime   time.Duration `json:"prune_ns"`
	PruneRate   int           `json:"prune_rate"`
	// PrunedInRun is how many events the server pruned in the runs with
	// pruning (from their start until they stopped, or pruning ended),
	// and PruneEventsPerSecond their rate.
	PrunedInRun          int64   `json:"pruned_in_run"`
	PruneEventsPerSecond float64 `json:"prune_events_per_second"`
}

// TableSize is one table's or index's share.
type TableSize struct {
	Name     string  `json:"name"`
	PerEvent float64 `json:"bytes_per_event"`
}

func runHistory(o options) error {
	if o.history < templates || o.prune < 0 || o.prune > o.history {
		return fmt.Errorf("-history must be at least %d, and -prune from 0 to -history", templates)
	}
	tmp, bin, err := serverBinary(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.keep != "" && o.databaseURL == "" {
		// Before the directory goes, after the server and every
		// connection have closed the database (deferred later, run
		// earlier).
		defer func() {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Rename(filepath.Join(tmp, "mapper.db"+suffix), filepath.Join(o.keep, "mapper.db"+suffix)); err != nil &&
					!errors.Is(err, fs.ErrNotExist) {
					fmt.Fprintln(os.Stderr, "loadgen: keeping the database:", err)
				}
			}
		}()
	}
	rep := HistoryReport{Machine: machine(), Store: o.store(), StartedAt: time.Now().UTC(), Events: o.history, Pruned: o.prune, PruneRate: o.pruneRate}
	workers := newWorkers()
	defer workers.close()
	dbPath := filepath.Join(tmp, "mapper.db")

	// The empty database: templates, then the first measurements.
	url, srv, err := startServer(o, bin, tmp)
	if err != nil {
		return err
	}
	if err := registerApps(url, workers, o.appLimit); err != nil {
		stopServer(srv)
		return err
	}
	if rep.PayloadBytes, err = sendTemplates(url, workers); err != nil {
		stopServer(srv)
		return err
	}
	stopServer(srv)
	// Every measurement is made on a server just started.
	if url, srv, err = startServer(o, bin, tmp); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "empty database…")
	rep.MetricsEmpty = timeMetrics(url)
	rep.LogsEmpty = timeReads(url, logReads(time.Now()), 0)
	stopServer(srv)
	// The empty database's ingest runs take turns with the history's, on
	// a copy made now.
	empty, emptyDir, err := emptyCopy(o, tmp)
	if err != nil {
		return err
	}

	db, err := openHistoryDB(o, dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintf(os.Stderr, "filling %d events of history…\n", o.history)
	start := time.Now()
	if err := fill(db, o.store(), o.history, o.prune, time.Now()); err != nil {
		return err
	}
	rep.FillTime = time.Since(start)
	if rep.BytesPerEvent, rep.Tables, err = sizes(db, o.store()); err != nil {
		return err
	}

	// The history kept (RETENTION=0): metrics, ingest, a fixed rate.
	fixed := o
	fixed.rate = o.pruneRate
	o.retention, empty.retention = "0", "0"
	if url, srv, err = startServer(o, bin, tmp); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "with the history…")
	rep.MetricsHistory = timeMetrics(url)
	rep.LogsHistory = timeReads(url, logReads(time.Now()), 0)
	stopServer(srv)
	var emptyRuns, historyRuns []Result
	for i := range ingestRuns {
		for _, r := range []struct {
			name string
			o    options
			dir  string
			runs *[]Result
		}{{"empty", empty, emptyDir, &emptyRuns}, {"with the history", o, tmp, &historyRuns}} {
			fmt.Fprintf(os.Stderr, "flat-out ingest %d of %d, %s…\n", i+1, ingestRuns, r.name)
			if url, srv, err = startServer(r.o, bin, r.dir); err != nil {
				return err
			}
			*r.runs = append(*r.runs, measure(r.o, url, workers))
			stopServer(srv)
		}
	}
	rate := func(r Result) float64 { return r.PerSecond }
	rep.IngestEmpty, rep.IngestEmptyRates = medianBy(emptyRuns, rate)
	rep.IngestHistory, rep.IngestHistoryRates = medianBy(historyRuns, rate)
	if rep.IngestEmpty.PerSecond > 0 {
		rep.IngestRatio = rep.IngestHistory.PerSecond / rep.IngestEmpty.PerSecond
	}

	// A fixed rate on a server just started, with the history kept and
	// then with the default retention, which prunes the old part at
	// start: each run after the same restart, at the same log level, so
	// that only the pruning differs.
	// The server logs how many events it pruned when pruning ends, or
	// when it stops.
	type fixedRunResult struct {
		res              Result
		watch            *lineWatch // the server's "pruned old events" lines
		started, stopped time.Time
	}
	fixedRun := func(retention string) (fixedRunResult, error) {
		f := fixed
		f.retention = retention
		watch := &lineWatch{match: "pruned old events", out: os.Stderr}
		f.serverLog, f.logLevel = watch, "info"
		url, srv, err := startServer(f, bin, tmp)
		if err != nil {
			return fixedRunResult{}, err
		}
		started := time.Now()
		res := measure(f, url, workers)
		stopServer(srv)
		return fixedRunResult{res, watch, started, time.Now()}, nil
	}
	// Pairs of runs, without and with pruning, until pruning is over or
	// there were pruneRuns pairs: the p99s compared are the medians.
	var steadyRuns, pruningRuns []Result
	var pruneTime time.Duration
	for i := range pruneRuns {
		fmt.Fprintf(os.Stderr, "fixed rate %d of %d, no pruning…\n", i+1, pruneRuns)
		steady, err := fixedRun("0")
		if err != nil {
			return err
		}
		steadyRuns = append(steadyRuns, steady.res)
		fmt.Fprintf(os.Stderr, "fixed rate %d of %d, while pruning…\n", i+1, pruneRuns)
		pruning, err := fixedRun("")
		if err != nil {
			return err
		}
		pruningRuns = append(pruningRuns, pruning.res)
		// Pruning over within the run logged every event left, before
		// the server stopped; otherwise the count came at the stop.
		rep.PrunedInRun += pruning.watch.events()
		over := rep.PrunedInRun >= rep.Pruned && pruning.watch.seen().Before(pruning.stopped)
		if over {
			pruneTime += pruning.watch.seen().Sub(pruning.started)
			rep.PruneTime = pruneTime
			break
		}
		pruneTime += pruning.stopped.Sub(pruning.started)
	}
	if pruneTime > 0 {
		rep.PruneEventsPerSecond = float64(rep.PrunedInRun) / pruneTime.Seconds()
	}
	p99 := func(r Result) float64 { return float64(r.AckP99) }
	rep.Steady, rep.SteadyP99s = medianBy(steadyRuns, p99)
	rep.Pruning, rep.PruningP99s = medianBy(pruningRuns, p99)
	if rep.Steady.AckP99 > 0 {
		rep.PruneRatio = float64(rep.Pruning.AckP99) / float64(rep.Steady.AckP99)
	}
	printHistory(os.Stdout, rep)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(o.jsonPath, b, 0o644)
	}
	return nil
}

// measure drives url as drive does, after a warm-up of two seconds at the
// same load that is not counted: every measured run starts on a server
// that has just been started, and its first second is not what it does.
func measure(o options, url string, w *workers) Result {
	warm := o
	warm.duration = 2 * time.Second
	drive(warm, url, w)
	return drive(o, url, w)
}

// ingestRuns is how many flat-out runs -history makes on each database.
const ingestRuns = 3

// pruneRuns is how many pairs of fixed-rate runs, without and with
// pruning, -history makes at most.
const pruneRuns = 3

// medianBy is the run of median key (of an even number, the lower middle
// one), with every run's key in the order run.
func medianBy(runs []Result, key func(Result) float64) (Result, []float64) {
	if len(runs) == 0 {
		return Result{}, nil
	}
	keys := make([]float64, len(runs))
	for i, r := range runs {
		keys[i] = key(r)
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b Result) int { return cmp.Compare(key(a), key(b)) })
	return sorted[(len(sorted)-1)/2], keys
}

// rates prints runs' rates: "(1690, 1749, 1802/s)".
func rates(rs []float64) string {
	return strings.TrimSuffix(list(rs, func(r float64) string { return fmt.Sprintf("%.0f", r) }), ")") + "/s)"
}

// list prints values in parentheses, each as f has it.
func list(vs []float64, f func(float64) string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = f(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// emptyCopy copies the database as it stands (the templates alone) for
// the empty database's ingest runs: SQLite's file into a directory of its
// own, which it returns, or PostgreSQL's database into "<name>_empty",
// whose options it returns.
func emptyCopy(o options, tmp string) (options, string, error) {
	if o.databaseURL == "" {
		dir := filepath.Join(tmp, "empty")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return o, "", err
		}
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(filepath.Join(tmp, "mapper.db"+suffix))
			if errors.Is(err, fs.ErrNotExist) && suffix != "" {
				continue
			}
			if err != nil {
				return o, "", err
			}
			if err := os.WriteFile(filepath.Join(dir, "mapper.db"+suffix), b, 0o644); err != nil {
				return o, "", err
			}
		}
		return o, dir, nil
	}
	name, err := databaseName(o.databaseURL)
	if err != nil {
		return o, "", err
	}
	copyName := name + "_empty"
	if o.databaseURL, err = besideDatabase(o.databaseURL, copyName,
		`DROP DATABASE IF EXISTS "`+copyName+`"`, `CREATE DATABASE "`+copyName+`" TEMPLATE "`+name+`"`); err != nil {
		return o, "", fmt.Errorf("copying the empty database: %w", err)
	}
	return o, tmp, nil
}

// databaseName is the name of dsn's database.
func databaseName(dsn string) (string, error) {
	u, err := neturl.Parse(dsn)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(u.Path, "/"), nil
}

// besideDatabase runs qs, which make or drop the database name, on the
// server of dsn, from its "postgres" database (PostgreSQL drops or copies
// no database a connection is in), and returns dsn for name.
func besideDatabase(dsn, name string, qs ...string) (string, error) {
	u, err := neturl.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.Path = "/postgres"
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return "", err
	}
	defer db.Close()
	for _, q := range qs {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			return "", err
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

// sendTemplates sends the one-comment webhooks the history is cloned from,
// with comment texts of everyday length, and waits until each is
// delivered. It returns their mean size.
func sendTemplates(url string, w *workers) (float64, error) {
	rnd := rand.New(rand.NewPCG(7, 7))
	total := 0
	for i := range templates {
		acc := accountA
		if i%2 == 1 {
			acc = accountB
		}
		text := "Love this! 😍 Größe M? @friend" + strings.Repeat(" so good", rnd.IntN(5))
		body := mappertest.NewWebhook().Comment(acc, "18000000000000001", fmt.Sprintf("1790%013d", rnd.Int64N(1e13)), text).Bytes()
		total += len(body)
		id, _, err := post(http.DefaultClient, url, body)
		if err != nil {
			return 0, fmt.Errorf("template webhook: %w", err)
		}
		if w.wait(id, 10*time.Second).IsZero() {
			return 0, fmt.Errorf("template webhook %s was not delivered", id)
		}
	}
	// The worker's 200 comes before the store records it: wait for that.
	time.Sleep(500 * time.Millisecond)
	return float64(total) / templates, nil
}

// timeMetrics times each metrics endpoint five times: median and max.
func timeMetrics(url string) map[string][2]time.Duration {
	// /metrics caches the store's figures for 5 s: ask after it.
	return timeReads(url, []read{{"/metrics", "/metrics"}, {"/monitoring/metrics", "/monitoring/metrics"}}, 5100*time.Millisecond)
}

// read is a GET that -history times, by name.
type read struct{ name, path string }

// logReads are the log pages -history times: the newest, by status, by
// account, one from the middle of the week, and deliveries.
func logReads(now time.Time) []read {
	return []read{
		{"newest events", "/monitoring/webhook-logs?limit=50"},
		{"delivered events", "/monitoring/webhook-logs?status=delivered&limit=50"},
		{"events of an account", "/monitoring/webhook-logs?account=" + accountA + "&limit=50"},
		{"events mid-week", "/monitoring/webhook-logs?until=" + now.Add(-84*time.Hour).UTC().Format(time.RFC3339) + "&limit=50"},
		{"newest deliveries", "/deliveries/?limit=50"},
		{"delivered deliveries", "/deliveries/?status=delivered&limit=50"},
	}
}

// timeReads is the median and max of five GETs of each path, pause
// apart, by name; -1 for a call that failed.
func timeReads(url string, reads []read, pause time.Duration) map[string][2]time.Duration {
	out := map[string][2]time.Duration{}
	for _, r := range reads {
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			resp, _, err := adminCall(http.DefaultClient, http.MethodGet, url+r.path, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				ds = append(ds, -1)
				continue
			}
			ds = append(ds, time.Since(start))
			time.Sleep(pause)
		}
		slices.Sort(ds)
		out[r.name] = [2]time.Duration{ds[2], ds[4]}
	}
	return out
}

func openHistoryDB(o options, path string) (*sql.DB, error) {
	if o.databaseURL != "" {
		return sql.Open("pgx", o.databaseURL)
	}
	// A page cache of 256 MiB: with SQLite's 2 MiB, ten million events
	// took 46 minutes, each insert reading index pages back.
	return sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-262144)")
}

// cloneRule rewrites one column of a cloned row; n is the clone's number,
// t the template row, and "shift" the microseconds that move the
// template's times to the clone's.
type cloneRule map[string]string

// cloneRules are the columns rewritten per table; every other column is
// copied from the template. Times move by shift; IDs and keys get the
// clone's number, at the length of the server's own.
func cloneRules(pad func(string, int) string) map[string]cloneRule {
	shifted := func(cols ...string) cloneRule {
		r := cloneRule{}
		for _, c := range cols {
			r[c] = "t." + c + " + x.shift"
		}
		return r
	}
	with := func(r cloneRule, kv ...string) cloneRule {
		for i := 0; i < len(kv); i += 2 {
			r[kv[i]] = kv[i+1]
		}
		return r
	}
	evt := "'evt_' || " + pad("g.n", 26)
	// A clone's key is its template's with the last 11 characters made
	// the clone's number: unique, of the same length, and named the same
	// in the event's items, by which pruning finds it.
	key := func(col string) string {
		return "substr(" + col + ", 1, length(" + col + ") - 11) || '#' || " + pad("g.n", 10)
	}
	return map[string]cloneRule{
		"mapper_events": with(shifted("received_at", "next_attempt_at", "routed_at", "completed_at"), "id", evt,
			"items", "replace(t.items, t.tkey, "+key("t.tkey")+")"),
		"mapper_event_accounts": with(shifted("received_at"), "event_id", evt),
		"mapper_dedup_keys":     with(shifted("created_at"), "event_id", evt, "dedup_key", key("t.dedup_key")),
		"mapper_deliveries": with(shifted("created_at", "next_attempt_at", "completed_at", "cycle_start", "attempt_started_at"), "event_id", evt,
			"id", "'dlv_' || "+pad("g.n", 24)+" || t.j"),
		"mapper_attempts": with(shifted("started_at"), "delivery_id", "'dlv_' || "+pad("g.n", 24)+" || t.j"),
	}
}

// templateQueries select each table's template rows with k (which
// template event) and, for deliveries and attempts, j (which delivery of
// it, two digits); an event's with its one key (tkey).
var templateQueries = map[string]string{
	"mapper_events": `SELECT e.*, x.k, dk.dedup_key AS tkey FROM mapper_events AS e JOIN hist_x AS x ON x.event_id = e.id
JOIN mapper_dedup_keys AS dk ON dk.event_id = e.id`,
	"mapper_event_accounts": `SELECT ea.*, x.k FROM mapper_event_accounts AS ea JOIN hist_x AS x ON x.event_id = ea.event_id`,
	"mapper_dedup_keys":     `SELECT dk.*, x.k FROM mapper_dedup_keys AS dk JOIN hist_x AS x ON x.event_id = dk.event_id`,
	"mapper_deliveries":     `SELECT d.*, x.k, hd.j FROM mapper_deliveries AS d JOIN hist_x AS x ON x.event_id = d.event_id JOIN hist_d AS hd ON hd.id = d.id`,
	"mapper_attempts":       `SELECT a.*, hd.k, hd.j FROM mapper_attempts AS a JOIN hist_d AS hd ON hd.id = a.delivery_id`,
}

// fill clones the delivered template events into n events received over
// the week before now, oldest first, of which the first prune are eight
// days old, beyond the default retention.
func fill(db *sql.DB, store string, n, prune int64, now time.Time) error {
	ctx := context.Background()
	// One connection throughout: the template tables are TEMP, which a
	// connection sees only in its own session.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	pad := func(expr string, w int) string { return fmt.Sprintf("printf('%%0%dd', %s)", w, expr) }
	series := func(from, to int64) string {
		return fmt.Sprintf("(WITH RECURSIVE s(n) AS (SELECT %d UNION ALL SELECT n + 1 FROM s WHERE n < %d) SELECT n FROM s)", from, to-1)
	}
	if store == "postgres" {
		pad = func(expr string, w int) string { return fmt.Sprintf("lpad((%s)::text, %d, '0')", expr, w) }
		// bigint: the times are products past 2³¹.
		series = func(from, to int64) string {
			return fmt.Sprintf("(SELECT generate_series(%d::bigint, %d) AS n)", from, to-1)
		}
	}
	setup := []string{
		`CREATE TEMP TABLE hist_x AS SELECT id AS event_id, received_at, ROW_NUMBER() OVER (ORDER BY id) - 1 AS k
FROM mapper_events WHERE id IN (SELECT id FROM mapper_events AS e WHERE status = 'delivered'
AND (SELECT COUNT(*) FROM mapper_dedup_keys AS dk WHERE dk.event_id = e.id) = 1 ORDER BY id LIMIT ` + fmt.Sprint(templates) + `)`,
		`CREATE TEMP TABLE hist_d AS SELECT d.id, x.k, ROW_NUMBER() OVER (PARTITION BY d.event_id ORDER BY d.id) + 9 AS j
FROM mapper_deliveries AS d JOIN hist_x AS x ON x.event_id = d.event_id`,
	}
	for _, q := range setup {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("history templates: %w", err)
		}
	}
	var k int64
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM hist_x").Scan(&k); err != nil || k < templates {
		return fmt.Errorf("history templates: %d delivered events, want %d (%v)", k, templates, err)
	}
	// Times: the kept events spread evenly over the last week, the pruned
	// ones over the day before the retention's edge.
	const hour, day = int64(time.Hour / time.Microsecond), int64(24 * time.Hour / time.Microsecond)
	week := now.UnixMicro() - 7*day
	at := fmt.Sprintf("CASE WHEN g.n < %d THEN %d + g.n * %d ELSE %d + (g.n - %d) * %d END",
		prune, week-day-hour, day/max(prune, 1), week+hour, prune, (7*day-2*hour)/max(n-prune, 1))
	rules := cloneRules(pad)
	tables := []string{"mapper_events", "mapper_event_accounts", "mapper_dedup_keys", "mapper_deliveries", "mapper_attempts"}
	inserts := make([]func(series string) string, len(tables))
	for i, t := range tables {
		cols, err := columns(ctx, conn, t)
		if err != nil {
			return err
		}
		inserts[i] = cloneSQL(t, cols, rules[t], k, at)
	}
	const chunk = 200_000
	for from := int64(0); from < n; from += chunk {
		to := min(from+chunk, n)
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i, insert := range inserts {
			if _, err := tx.ExecContext(ctx, insert(series(from, to))); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("history %s: %w", tables[i], err)
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "\r  %d / %d", to, n)
	}
	fmt.Fprintln(os.Stderr)
	for _, q := range []string{"DROP TABLE hist_x", "DROP TABLE hist_d"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	// The fill's writes are flushed before anything is measured: a week
	// of history accumulates over a week, not in one burst whose
	// checkpoints would still be running under the measured load (on
	// PostgreSQL they ran through every run after a fill of 10 M).
	if store == "postgres" {
		if _, err := conn.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "CHECKPOINT")
		return err
	}
	_, err = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// cloneSQL makes a table's INSERT for a chunk of the series: each number
// joined with its template event (x) and that event's rows in the table
// (t). Columns are copied from the template but those rule rewrites, where
// x.shift becomes what moves the template's times to the clone's receipt
// time, at.
func cloneSQL(table string, cols []string, rule cloneRule, k int64, at string) func(series string) string {
	shift := "((" + at + ") - x.received_at)"
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "t." + c
		if r, ok := rule[c]; ok {
			sel[i] = strings.ReplaceAll(r, "x.shift", shift)
		}
	}
	head := fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM ", table, strings.Join(cols, ", "), strings.Join(sel, ", "))
	tail := fmt.Sprintf(" AS g\nJOIN hist_x AS x ON x.k = g.n %% %d\nJOIN (%s) AS t ON t.k = x.k", k, templateQueries[table])
	return func(series string) string { return head + series + tail }
}

// columns lists a table's columns.
func columns(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+table+" LIMIT 0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return rows.Columns()
}

// sizes measures the database's bytes per event, in all and by table and
// index (dbstat on SQLite, relation sizes on PostgreSQL).
func sizes(db *sql.DB, store string) (float64, []TableSize, error) {
	ctx := context.Background()
	var events int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mapper_events").Scan(&events); err != nil {
		return 0, nil, err
	}
	q := `SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC`
	total := `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`
	if store == "postgres" {
		q = `SELECT relname, pg_relation_size(c.oid) FROM pg_class AS c JOIN pg_namespace AS ns ON ns.oid = c.relnamespace
WHERE ns.nspname = current_schema() AND c.relkind IN ('r', 'i', 't') ORDER BY 2 DESC`
		total = `SELECT pg_database_size(current_database())`
	}
	var all int64
	if err := db.QueryRowContext(ctx, total).Scan(&all); err != nil {
		return 0, nil, err
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	var out []TableSize
	for rows.Next() {
		var name string
		var size int64
		if err := rows.Scan(&name, &size); err != nil {
			return 0, nil, err
		}
		if per := float64(size) / float64(events); per >= 1 {
			out = append(out, TableSize{name, per})
		}
	}
	return float64(all) / float64(events), out, rows.Err()
}

// lineWatch passes the server's warnings and errors through, and notes
// when a line with match first appeared. Writes come in chunks of lines
// from the child's pipe.
type lineWatch struct {
	match string
	out   io.Writer
	mu    sync.Mutex
	rest  []byte
	at    time.Time
	last  []byte // the last line with match
}

func (l *lineWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rest = append(l.rest, p...)
	for {
		i := bytes.IndexByte(l.rest, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := l.rest[:i+1]
		l.rest = l.rest[i+1:]
		switch {
		case bytes.Contains(line, []byte(l.match)):
			if l.at.IsZero() {
				l.at = time.Now()
			}
			l.last = append(l.last[:0], line...)
			_, _ = l.out.Write(line)
		case bytes.Contains(line, []byte(`"level":"WARN"`)), bytes.Contains(line, []byte(`"level":"ERROR"`)):
			_, _ = l.out.Write(line)
		}
	}
}

// events is the "events" attribute of the last line with match (the
// server's JSON log), 0 when there was none.
func (l *lineWatch) events() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var line struct{ Events int64 }
	_ = json.Unmarshal(l.last, &line)
	return line.Events
}

func (l *lineWatch) seen() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at
}

func printHistory(w io.Writer, r HistoryReport) {
	fmt.Fprintf(w, "machine: %s\nstore: %s; %d events of history (%d beyond the retention); filled in %s\n\n",
		r.Machine, r.Store, r.Events, r.Pruned, r.FillTime.Round(time.Second))
	fmt.Fprintf(w, "bytes per event: %.0f (one-comment events, payload %.0f bytes)\n", r.BytesPerEvent, r.PayloadBytes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "  %s\t%.0f\n", t.Name, t.PerEvent)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, p := range []string{"/metrics", "/monitoring/metrics"} {
		fmt.Fprintf(w, "%s: empty %s (max %s), with history %s (max %s)\n", p,
			ms(r.MetricsEmpty[p][0]), ms(r.MetricsEmpty[p][1]), ms(r.MetricsHistory[p][0]), ms(r.MetricsHistory[p][1]))
	}
	for _, l := range logReads(time.Time{}) {
		p := l.name
		fmt.Fprintf(w, "%s: empty %s (max %s), with history %s (max %s)\n", p,
			ms(r.LogsEmpty[p][0]), ms(r.LogsEmpty[p][1]), ms(r.LogsHistory[p][0]), ms(r.LogsHistory[p][1]))
	}
	fmt.Fprintf(w, "flat-out ingest, medians of %d runs: empty %.0f/s %s, with history %.0f/s %s: %.2f ×\n", len(r.IngestEmptyRates),
		r.IngestEmpty.PerSecond, rates(r.IngestEmptyRates), r.IngestHistory.PerSecond, rates(r.IngestHistoryRates), r.IngestRatio)
	p99s := func(ns []float64) string { return list(ns, func(n float64) string { return ms(time.Duration(n)) }) }
	prune := "not over when the run ended"
	if r.PruneTime > 0 {
		prune = "took " + r.PruneTime.Round(time.Second).String()
	}
	fmt.Fprintf(w, "%d webhooks/s, medians of %d pairs of runs: ack p99 %s %s without pruning, %s %s while pruning %d events (%s): %.2f ×\n",
		r.PruneRate, len(r.PruningP99s), ms(r.Steady.AckP99), p99s(r.SteadyP99s), ms(r.Pruning.AckP99), p99s(r.PruningP99s), r.Pruned, prune, r.PruneRatio)
	fmt.Fprintf(w, "pruned %d events in the run: %.0f/s\n", r.PrunedInRun, r.PruneEventsPerSecond)
	for _, res := range []Result{r.IngestEmpty, r.IngestHistory, r.Steady, r.Pruning} {
		if res.Undelivered > 0 || sumErrors(res.Errors) > 0 {
			fmt.Fprintf(w, "errors: %v, undelivered %d\n", res.Errors, res.Undelivered)
		}
	}
}
