package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
)

// The statements every webhook runs: storing it, routing it, recording its
// attempts. bun writes a new SQL text for every call, with the values
// inlined, so the database parses each one anew; on SQLite that parse was
// about a sixth of the single writer's time. These are written once, with
// placeholders, and prepared once: on SQLite by the committer (between
// batches, when the only write connection is free), on PostgreSQL by pgx,
// whose connections cache the statements they run.

// hotStmt is one such statement, with ? placeholders.
type hotStmt struct {
	sqlite, pg string
	id         int // its place in hotStmts
}

var hotStmts []*hotStmt

func hot(q string) *hotStmt {
	st := &hotStmt{sqlite: q, pg: dollarPlaceholders(q), id: len(hotStmts)}
	hotStmts = append(hotStmts, st)
	return st
}

// dollarPlaceholders numbers the ? of q as PostgreSQL's $1, $2…; none of
// the hot statements has a ? inside a literal.
func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The statements that write one row by its key take the status they
// expect as an argument, never as a literal: a literal status proves a
// partial index's predicate (the due indexes', the status indexes'), and
// PostgreSQL's plan for a prepared statement, made once, took such an
// index whenever statistics said it was small, which they do only just
// after a vacuum. Until the next, the index holds an entry for every
// event or delivery that was pending since (dead once it is not), and
// each write by key scanned all of them (see TestPostgresWritesByKey).
var (
	claimKeySQL = hot(`INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at) VALUES (?, ?, ?)
ON CONFLICT (dedup_key) DO NOTHING`)
	insertEventSQL        = hot(insertSQL("mapper_events", eventColumns))
	insertEventAccountSQL = hot(`INSERT INTO mapper_event_accounts (account_id, received_at, event_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`)
	routeEventSQL         = hot(`UPDATE mapper_events SET status = ?, owners = ?, unroutable = ?, route_attempts = ?, last_error = ?,
routed_at = ?, completed_at = ?, next_attempt_at = ?, lease_token = '' WHERE id = ? AND lease_token = ? AND status = ?`)
	insertDeliverySQL = hot(insertSQL("mapper_deliveries", deliveryColumns))
	// recordDeliverySQL gives a claim back unattempted; recordAttemptSQL
	// records an attempt, which the row holds from then on, after
	// moveAttemptSQL has moved the one it held before to the attempts
	// table (both only while the lease holds).
	recordDeliverySQL = hot(`UPDATE mapper_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status_code = ?, last_error = ?,
completed_at = ?, lease_token = '' WHERE id = ? AND lease_token = ? AND status = ?`)
	recordAttemptSQL = hot(`UPDATE mapper_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status_code = ?, last_error = ?,
completed_at = ?, lease_token = '', ` + setColumns(heldColumns) + ` WHERE id = ? AND lease_token = ? AND status = ?`)
	moveAttemptSQL = hot(`INSERT INTO mapper_attempts (` + columnNames(attemptColumns) + `)
SELECT id, ` + columnNames(heldColumns) + ` FROM mapper_deliveries
WHERE id = ? AND lease_token = ? AND status = ? AND attempt_number IS NOT NULL`)
	eventStateSQL     = hot(`SELECT status, unroutable FROM mapper_events WHERE id = ?`)
	deliveryStatesSQL = hot(`SELECT status, completed_at FROM mapper_deliveries WHERE event_id = ?`)
	settleEventSQL    = hot(`UPDATE mapper_events SET status = ?, completed_at = ? WHERE id = ? AND status = ?`)
	// The committer's savepoints: one is open at a time, so one name does.
	savepointSQL         = hot(`SAVEPOINT w`)
	releaseSavepointSQL  = hot(`RELEASE SAVEPOINT w`)
	rollbackSavepointSQL = hot(`ROLLBACK TO SAVEPOINT w`)
)

// column is a column written by the hot inserts, with its PostgreSQL type
// (which recordRouteSQL must spell out).
type column struct{ name, pgType string }

// The columns of the hot inserts, in the order of their rows' args.
var (
	eventColumns = []column{{"id", "text"}, {"received_at", "bigint"}, {"object", "text"}, {"payload", "bytea"}, {"signature", "text"},
		{"items", "text"}, {"account_ids", "text"}, {"status", "text"}, {"owners", "text"}, {"unroutable", "text"},
		{"route_attempts", "integer"}, {"last_error", "text"}, {"next_attempt_at", "bigint"}, {"routed_at", "bigint"},
		{"completed_at", "bigint"}, {"lease_token", "text"}, {"trace_context", "text"}, {"payload_codec", "smallint"}}
	deliveryFields = []column{{"id", "text"}, {"event_id", "text"}, {"app_id", "text"}, {"owner_ids", "text"}, {"body", "bytea"},
		{"original", "boolean"}, {"meta_signature", "text"}, {"ordered", "boolean"}, {"status", "text"}, {"attempts", "integer"},
		{"attempt_base", "integer"}, {"cycle_start", "bigint"}, {"next_attempt_at", "bigint"}, {"last_status_code", "integer"},
		{"last_error", "text"}, {"created_at", "bigint"}, {"completed_at", "bigint"}, {"lease_token", "text"}, {"trace_context", "text"},
		{"body_codec", "smallint"}}
	deliveryColumns = append(deliveryFields, heldColumns...)
	// heldColumns are the last attempt's, in a delivery's row.
	heldColumns = []column{{"attempt_number", "integer"}, {"attempt_started_at", "bigint"}, {"attempt_duration_us", "bigint"},
		{"attempt_status_code", "integer"}, {"attempt_error", "text"}, {"attempt_outcome", "text"}, {"attempt_response_body", "text"}}
	attemptColumns = []column{{"delivery_id", "text"}, {"number", "integer"}, {"started_at", "bigint"}, {"duration_us", "bigint"},
		{"status_code", "integer"}, {"error", "text"}, {"outcome", "text"}, {"response_body", "text"}}
)

func columnNames(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// setColumns is "a = ?, b = ?" for an UPDATE.
func setColumns(cols []column) string {
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = c.name + " = ?"
	}
	return strings.Join(sets, ", ")
}

func insertSQL(table string, cols []column) string {
	return "INSERT INTO " + table + " (" + columnNames(cols) + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
}

// prepared holds the SQLite statements, by hotStmt.id, once prepared.
type prepared struct {
	stmts   atomic.Pointer[[]*sql.Stmt]
	lastTry time.Time // of the committer, which alone prepares
}

// prepare prepares every hot statement on SQLite, when not done yet. The
// committer calls it between batches, so that the write connection is
// free. Before the schema exists preparing fails; it is tried again at
// most once a second, and the statements run unprepared meanwhile.
func (s *Store) prepare(ctx context.Context) {
	if s.pg || s.hot.stmts.Load() != nil || time.Since(s.hot.lastTry) < time.Second {
		return
	}
	s.hot.lastTry = time.Now()
	stmts := make([]*sql.Stmt, len(hotStmts))
	for _, h := range hotStmts {
		st, err := s.db.DB.PrepareContext(ctx, h.sqlite)
		if err != nil {
			closeStmts(stmts)
			return
		}
		stmts[h.id] = st
	}
	s.hot.stmts.Store(&stmts)
}

func closeStmts(stmts []*sql.Stmt) error {
	var errs []error
	for _, st := range stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// stmt returns h prepared for tx, or nil to run h's text.
func (s *Store) stmt(ctx context.Context, tx bun.Tx, h *hotStmt) *sql.Stmt {
	p := s.hot.stmts.Load()
	if p == nil {
		return nil
	}
	if c, ok := ctx.Value(txStmtsKey{}).(*txStmts); ok && c.tx == tx.Tx {
		if st := c.stmts[h.id]; st != nil {
			return st
		}
		st := tx.Tx.StmtContext(ctx, (*p)[h.id])
		c.stmts[h.id] = st
		return st
	}
	return tx.Tx.StmtContext(ctx, (*p)[h.id])
}

// txStmts holds the hot statements made for one of the committer's
// transactions. Tx.StmtContext makes a new statement for the transaction
// at every call (a Stmt, its driver statement's handle, a place in the
// transaction's list: two or three allocations, and a lock): a batch runs
// the same five statements for each of its webhooks, so it makes each
// once. The transaction closes them when it ends.
type txStmts struct {
	tx    *sql.Tx
	stmts []*sql.Stmt
}

type txStmtsKey struct{}

// withTxStmts returns ctx carrying a cache of tx's hot statements, for
// the writes that run in it.
func withTxStmts(ctx context.Context, tx bun.Tx) context.Context {
	return context.WithValue(ctx, txStmtsKey{}, &txStmts{tx: tx.Tx, stmts: make([]*sql.Stmt, len(hotStmts))})
}

func (s *Store) text(h *hotStmt) string {
	if s.pg {
		return h.pg
	}
	return h.sqlite
}

// exec runs a hot statement in tx.
func (s *Store) exec(ctx context.Context, tx bun.Tx, h *hotStmt, args ...any) (sql.Result, error) {
	if st := s.stmt(ctx, tx, h); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.Tx.ExecContext(ctx, s.text(h), args...)
}

// query runs a hot statement that returns rows in tx.
func (s *Store) query(ctx context.Context, tx bun.Tx, h *hotStmt, args ...any) (*sql.Rows, error) {
	if st := s.stmt(ctx, tx, h); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.Tx.QueryContext(ctx, s.text(h), args...)
}

// queryRow runs a hot statement that returns at most one row in tx.
func (s *Store) queryRow(ctx context.Context, tx bun.Tx, h *hotStmt, args ...any) *sql.Row {
	if st := s.stmt(ctx, tx, h); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.Tx.QueryRowContext(ctx, s.text(h), args...)
}
