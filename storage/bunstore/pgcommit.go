package bunstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/chatico/mapper"
)

// pgxConn runs fn on a pgx connection of the pool, for pipelined batches
// (database/sql has none).
func (s *Store) pgxConn(ctx context.Context, fn func(c *pgx.Conn) error) error {
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return translate(err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("bunstore: group commit needs the pgx driver")
		}
		c := sc.Conn()
		useBinaryArrays(c.TypeMap())
		return fn(c)
	})
}

// pipelinedTx is a transaction whose BEGIN is sent with its first
// statements and whose COMMIT with its last, in their batches, rather than
// each in a round trip of its own (as pgx.Tx sends them): a batch of new
// events then costs one round trip, or two when it claims its keys first
// (see writePG), instead of three or four, and one of routes alone one
// instead of three.
type pipelinedTx struct {
	c     *pgx.Conn
	begun bool // BEGIN was sent
	done  bool // COMMIT succeeded
}

// run sends b in one round trip, after BEGIN if the transaction has not
// begun and before COMMIT if commit is set; read reads b's own results, in
// order, every one of them.
func (t *pipelinedTx) run(ctx context.Context, b *pgx.Batch, commit bool, read func(pgx.BatchResults) error) error {
	qs := b.QueuedQueries
	begin := !t.begun
	if begin {
		qs = append([]*pgx.QueuedQuery{{SQL: "BEGIN"}}, qs...)
	}
	if commit {
		qs = append(qs, &pgx.QueuedQuery{SQL: "COMMIT"})
	}
	br := t.c.SendBatch(ctx, &pgx.Batch{QueuedQueries: qs})
	t.begun = true
	err := func() error {
		if begin {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := read(br); err != nil {
			return err
		}
		if commit {
			// PostgreSQL answers COMMIT in a failed transaction by
			// rolling it back, without an error.
			tag, err := br.Exec()
			if err == nil && tag.String() != "COMMIT" {
				err = pgx.ErrTxCommitRollback
			}
			return err
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	t.done = commit && err == nil
	return err
}

// begin sends BEGIN in a round trip of its own, for a statement that
// cannot go in a batch.
func (t *pipelinedTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	t.begun = true
	_, err := t.c.Exec(ctx, "BEGIN")
	return err
}

// rollback ends a transaction that began and did not commit. After a
// failed statement the server skips the rest of its batch, COMMIT too, and
// the transaction waits for this; should it fail, the connection is not
// reused (pgx's stdlib drops one left in a transaction).
func (t *pipelinedTx) rollback(ctx context.Context) {
	if t.begun && !t.done {
		_, _ = t.c.Exec(ctx, "ROLLBACK")
	}
}

// commitPG writes a batch on PostgreSQL, events and routes alike, in one
// transaction (writePG). Should it fail, the events are written again
// alone, and each route on its own, so that a route's failure is not the
// events' nor another route's; a failure of the events fails every event
// but those refused on their own (a conflict): its webhook gets 503, and
// Meta retries. Any other write (none is sent here today: PostgreSQL's
// other writes go through write, which runs each in a transaction of its
// own) is handed to write too.
func (s *Store) commitPG(batch []commitReq, errs []error) {
	var (
		evs              []*mapper.Event
		payloads         []stored
		routes           []*routeReq
		evIndex, rtIndex []int // each one's place in batch
	)
	for i, r := range batch {
		switch {
		case errs[i] != nil:
		case r.route != nil:
			routes, rtIndex = append(routes, r.route), append(rtIndex, i)
		case r.ev != nil:
			evs, payloads, evIndex = append(evs, r.ev), append(payloads, r.payload), append(evIndex, i)
		default:
			errs[i] = s.write(r)
		}
	}
	ctx := context.Background()
	refused := make([]error, len(evs))
	mode := claimFirst
	if s.recent.fresh(evs) {
		mode = optimistic
	}
	held, err := s.writePG(ctx, evs, payloads, refused, routes, mode)
	if errors.Is(err, errTakenKey) {
		held, err = s.writePG(ctx, evs, payloads, refused, routes, claimFirst)
	}
	if errors.Is(err, errTakenID) {
		held, err = s.writePG(ctx, evs, payloads, refused, routes, checkIDs)
	}
	routed := err == nil
	if err != nil && len(evs) > 0 && len(routes) > 0 {
		clear(refused)
		_, err = s.writePG(ctx, evs, payloads, refused, nil, checkIDs)
	}
	if err == nil {
		s.recent.add(evs, refused)
	}
	for j, i := range evIndex {
		if errs[i] = refused[j]; errs[i] == nil {
			errs[i] = err
		}
	}
	for j, i := range rtIndex {
		r := routes[j]
		switch {
		case !routed:
			errs[i] = s.recordRoutePG(batch[i].ctx, r)
		case !held[j]:
			errs[i] = s.leaseError(ctx, s.db, "mapper_events", r.eventID)
		}
	}
}

// pgWrite is how writePG writes a batch's events.
type pgWrite int

const (
	// optimistic claims the events' keys in the same round trip as the
	// rest, their items marked fresh; a key stored already fails the
	// transaction with errTakenKey, for the caller to write the batch
	// again with claimFirst.
	optimistic pgWrite = iota
	// claimFirst claims the keys in a round trip of their own, after
	// BEGIN, and marks each event's items from what it claimed.
	claimFirst
	// checkIDs is claimFirst after finding the events whose ID is stored
	// already, in a round trip of its own (they are refused, with
	// ErrConflict in errs, and write nothing).
	checkIDs
)

// writePG writes events and routes on PostgreSQL in one transaction
// (pipelinedTx), three statements for the events whatever their number
// and one for the routes (routeEventsSQL): with optimistic in one round
// trip, with claimFirst in two, the routes and events pipelined with the
// claim's or after it. Rows go as one array per column (unnest): a
// statement per event cost PostgreSQL its parse-free but per-call work
// (bind, execute, the executor's start and end) a thousand times a
// second.
//
// Unless with checkIDs, an event whose ID is taken fails the transaction
// with errTakenID, for the caller to write the batch again with checkIDs:
// a new event's ID is taken only by a caller's mistake or a write retried
// after its commit was lost, and the lookup cost every batch a round
// trip. With optimistic, a key claimed already fails it too
// (errTakenKey), for the caller to write the batch again with claimFirst:
// the claim's answer decides how each event's items are marked, and the
// events are written with them, so waiting for it cost every batch a
// round trip (1.7 of the writer's 5 ms flat out); the caller sends a
// batch optimistic only when none of its keys was seen recently
// (recentKeys). Nothing else of the events can fail for
// one event alone (accounts insert with ON CONFLICT DO NOTHING), so no
// savepoints are needed. A route that finds its lease lost writes
// nothing and is not reported in held; any other failure fails the whole
// transaction.
func (s *Store) writePG(ctx context.Context, evs []*mapper.Event, payloads []stored, errs []error, routes []*routeReq, mode pgWrite) (held []bool, err error) {
	held = make([]bool, len(routes))
	err = s.pgxConn(ctx, func(c *pgx.Conn) error {
		tx := &pipelinedTx{c: c}
		defer tx.rollback(ctx)
		writes := &pgx.Batch{}
		if len(evs) > 0 {
			if mode == checkIDs {
				if err := refuseTakenIDs(ctx, tx, evs, errs); err != nil {
					return err
				}
			}
			if mode == optimistic {
				if keys := batchKeys(evs, errs); len(keys) > 0 {
					writes.Queue(insertKeysSQL, columnArrays(keys)...)
				}
				for i, ev := range evs {
					if errs[i] == nil {
						ev.MarkDuplicates(func(string) bool { return true })
					}
				}
			} else if err := claimKeysPG(ctx, tx, evs, errs); err != nil {
				return err
			}
		}
		claims := writes.Len()
		if len(routes) > 0 {
			writes.Queue(routePlanSQL)
			writes.Queue(routeEventsSQL, routeEventsArgs(routes)...)
		}
		queueEventsPG(writes, evs, payloads, errs)
		if writes.Len() == 0 {
			return nil // every event was refused
		}
		err := tx.run(ctx, writes, true, func(br pgx.BatchResults) error {
			if claims > 0 {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			skip := claims
			if len(routes) > 0 {
				if _, err := br.Exec(); err != nil {
					return err
				}
				rows, err := br.Query()
				if err != nil {
					return err
				}
				var n int64
				if _, err := pgx.ForEachRow(rows, []any{&n}, func() error {
					held[n-1] = true
					return nil
				}); err != nil {
					return err
				}
				skip += 2
			}
			for range writes.Len() - skip {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			return nil
		})
		switch {
		case mode != checkIDs && takenID(err):
			return errTakenID
		case mode == optimistic && takenKey(err):
			return errTakenKey
		}
		return translate(err)
	})
	return held, err
}

// errTakenID says that writePG, not checking the events' IDs, found one
// stored already.
var errTakenID = errors.New("bunstore: an event's ID is taken")

// errTakenKey says that writePG, optimistic, found a key claimed already.
var errTakenKey = errors.New("bunstore: a deduplication key is taken")

// takenKey reports whether err is PostgreSQL refusing a deduplication key
// claimed already (the table's one unique constraint is its primary key).
func takenKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.TableName == "mapper_dedup_keys"
}

// takenID reports whether err is PostgreSQL refusing an event whose ID is
// stored already.
func takenID(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "mapper_events_pkey"
}

// queueEventsPG queues the inserts of the events not refused in errs, and
// their accounts, with a NOTIFY when one waits to be claimed.
func queueEventsPG(writes *pgx.Batch, evs []*mapper.Event, payloads []stored, errs []error) {
	var rows, accounts [][]any
	notify := false
	for i, ev := range evs {
		if errs[i] != nil {
			continue
		}
		r := toEventRow(ev, payloads[i])
		rows = append(rows, r.args())
		for _, a := range ev.AccountIDs {
			accounts = append(accounts, []any{a, r.ReceivedAt, ev.ID})
		}
		notify = notify || ev.Status == mapper.EventPending && ev.LeaseToken == ""
	}
	if len(rows) == 0 {
		return
	}
	writes.Queue(insertEventsPG, columnArrays(rows)...)
	if len(accounts) > 0 {
		writes.Queue(`INSERT INTO mapper_event_accounts (account_id, received_at, event_id)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) ON CONFLICT DO NOTHING`, columnArrays(accounts)...)
	}
	if notify {
		writes.Queue("SELECT pg_notify('mapper_work', '')")
	}
}

// insertEventsPG inserts events from one array per column, in the order
// of eventColumns.
var insertEventsPG = func() string {
	var b strings.Builder
	b.WriteString("INSERT INTO mapper_events (" + columnNames(eventColumns) + ") SELECT * FROM unnest(")
	writeParams(&b, 0, eventColumns, "[]")
	b.WriteString(")")
	return b.String()
}()

// writeParams writes a parameter for each of cols, numbered from after
// the last one written (last), typed as its column (suffix "[]": an array
// of them), and returns the last number it wrote.
func writeParams(b *strings.Builder, last int, cols []column, suffix string) int {
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		last++
		fmt.Fprintf(b, "$%d::%s%s", last, c.pgType, suffix)
	}
	return last
}

// columnArrays turns rows of values, each row's in one column order,
// into one array per column, typed as pgx encodes PostgreSQL arrays (nil
// pointers are NULLs), for statements that unnest them.
func columnArrays(rows [][]any) []any {
	cols := make([]any, len(rows[0]))
	for j, v := range rows[0] {
		switch v.(type) {
		case string:
			cols[j] = column1[string](rows, j)
		case []byte:
			cols[j] = column1[[]byte](rows, j)
		case bool:
			cols[j] = column1[bool](rows, j)
		case int:
			cols[j] = column1[int](rows, j)
		case int16:
			cols[j] = column1[int16](rows, j)
		case int64:
			cols[j] = column1[int64](rows, j)
		case *int:
			cols[j] = column1[*int](rows, j)
		case *int64:
			cols[j] = column1[*int64](rows, j)
		default:
			panic(fmt.Sprintf("bunstore: no array for a column of %T", v)) // the rows' args are fixed: cannot happen
		}
	}
	return cols
}

func column1[T any](rows [][]any, j int) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = r[j].(T)
	}
	return out
}

const takenIDsSQL = "SELECT id FROM mapper_events WHERE id = ANY($1)"

// refuseTakenIDs sets ErrConflict for the events of the batch whose ID is
// stored already.
//
// Its statement is planned at each run (pgx's unnamed statement), not
// prepared once per connection as the others are: prepared, PostgreSQL
// settles on a generic plan after five runs, and on a table still empty,
// as a new database's is when the first webhooks come, that plan reads
// the whole table (the size of an array parameter is unknown, and ten
// pages cost less to read than to look up). The connection keeps it until
// the table's first ANALYZE (autovacuum's comes a minute or more later):
// one flat-out run spent 2.6 ms a batch there, a third of the database's
// time. Planned at each run, its planning was 8 % of the database's CPU
// flat out (docs/performance.md, round thirteen), which is why writePG
// runs it only once a batch has met a taken ID.
func refuseTakenIDs(ctx context.Context, tx *pipelinedTx, evs []*mapper.Event, errs []error) error {
	ids := make([]string, 0, len(evs))
	for i, ev := range evs {
		if errs[i] == nil {
			ids = append(ids, ev.ID)
		}
	}
	// A batch runs in the connection's mode, prepared: the lookup goes
	// alone, after a BEGIN of its own (the path is rare).
	if err := tx.begin(ctx); err != nil {
		return translate(err)
	}
	rows, err := tx.c.Query(ctx, takenIDsSQL, pgx.QueryExecModeExec, ids)
	if err != nil {
		return translate(err)
	}
	taken, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return translate(err)
	}
	for _, id := range taken {
		for i, ev := range evs {
			if ev.ID == id && errs[i] == nil {
				errs[i] = fmt.Errorf("event %s exists: %w", id, mapper.ErrConflict)
			}
		}
	}
	return nil
}

// claimKeysPG claims the events' deduplication keys in one statement, in
// the batch's order: of two events of this batch with one key, the first
// claims it and the second sees it taken (ON CONFLICT DO NOTHING skips a
// row that conflicts with one the same statement inserted). Each event's
// items are then marked.
func claimKeysPG(ctx context.Context, tx *pipelinedTx, evs []*mapper.Event, errs []error) error {
	keys := batchKeys(evs, errs)
	fresh := map[[2]string]bool{}
	if len(keys) > 0 {
		claim := &pgx.Batch{}
		claim.Queue(`INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at)
SELECT k, e, c FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS t(k, e, c, n) ORDER BY n
ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, event_id`, columnArrays(keys)...)
		err := tx.run(ctx, claim, false, func(br pgx.BatchResults) error {
			rows, err := br.Query()
			if err != nil {
				return err
			}
			var k, e string
			_, err = pgx.ForEachRow(rows, []any{&k, &e}, func() error {
				fresh[[2]string{e, k}] = true
				return nil
			})
			return err
		})
		if err != nil {
			return translate(err)
		}
	}
	for i, ev := range evs {
		if errs[i] == nil {
			ev.MarkDuplicates(func(k string) bool { return fresh[[2]string{ev.ID, k}] })
		}
	}
	return nil
}

// batchKeys are the rows of the deduplication keys of the events not
// refused in errs, in the batch's order.
func batchKeys(evs []*mapper.Event, errs []error) [][]any {
	var keys [][]any
	for i, ev := range evs {
		if errs[i] != nil {
			continue
		}
		for _, k := range distinctKeys(ev) {
			keys = append(keys, []any{k, ev.ID, us(ev.ReceivedAt)})
		}
	}
	return keys
}

// insertKeysSQL claims keys that an optimistic batch expects fresh: one
// taken fails the statement.
const insertKeysSQL = `INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])`

// recentKeys remembers the deduplication keys the writer saw last (claimed
// or found taken), for commitPG to send a batch that holds one of them, a
// retry most likely, the careful way (claimFirst) instead of failing it
// first (optimistic). Meta retries a webhook it saw no 200 for, and again
// with backoff; the load generator retries one webhook in twenty. It
// keeps a 64-bit hash of each key, not the key: two keys with one hash
// only send a batch the careful way, and hashes are 8 bytes the garbage
// collector need not scan: 9 MB less peak RSS than the keys themselves,
// for the same collector CPU (docs/performance.md, round fifteen). Only
// the writer's goroutine uses it.
type recentKeys struct {
	seed  maphash.Seed
	seen  map[uint64]struct{}
	ring  []uint64 // the hashes in seen, the oldest at next once full
	next  int
	batch map[uint64]int // fresh's: the event (index) of each key's hash
}

// recentKeysKept bounds recentKeys: 20 s of keys at 3,000 webhooks a
// second.
const recentKeysKept = 1 << 16

func newRecentKeys() *recentKeys {
	return &recentKeys{seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}, batch: map[uint64]int{}}
}

// fresh reports whether evs may be written optimistic: there are events,
// and none of their keys was seen recently or comes twice in the batch
// (the second would fail the optimistic claim; claimFirst marks it a
// duplicate).
func (r *recentKeys) fresh(evs []*mapper.Event) bool {
	if len(evs) == 0 {
		return false
	}
	defer clear(r.batch) // kept to spare a map a batch
	for i, ev := range evs {
		for _, it := range ev.Items {
			h := maphash.String(r.seed, it.Key)
			if _, ok := r.seen[h]; ok {
				return false
			}
			// A key repeated within one event is claimed once.
			if j, ok := r.batch[h]; ok && j != i {
				return false
			}
			r.batch[h] = i
		}
	}
	return true
}

// add remembers the keys of the events not refused in errs.
func (r *recentKeys) add(evs []*mapper.Event, errs []error) {
	for i, ev := range evs {
		if errs[i] != nil {
			continue
		}
		for _, it := range ev.Items {
			h := maphash.String(r.seed, it.Key)
			if _, ok := r.seen[h]; ok {
				continue
			}
			if len(r.ring) < recentKeysKept {
				r.ring = append(r.ring, h)
			} else {
				delete(r.seen, r.ring[r.next])
				r.ring[r.next] = h
				r.next = (r.next + 1) % recentKeysKept
			}
			r.seen[h] = struct{}{}
		}
	}
}

type routeReq struct {
	eventID string
	// ev and deliveries are its values (routeArgs, deliveryRow.args), made
	// in the caller's goroutine as SQLite's rows are, not in the writer.
	ev         []any
	deliveries [][]any
}

// newRouteReq is RouteEvent's write on PostgreSQL: the event's update and
// its deliveries' inserts (each holding the attempt made while routing).
func newRouteReq(ev *mapper.Event, deliveries []*deliveryRow) *routeReq {
	r := &routeReq{eventID: ev.ID, ev: routeArgs(ev), deliveries: make([][]any, len(deliveries))}
	for i, d := range deliveries {
		r.deliveries[i] = d.args()
	}
	return r
}

// recordRoutePG is RouteEvent on PostgreSQL in one statement, so one
// round trip and no explicit transaction, instead of four round trips
// (BEGIN, the update, the inserts, COMMIT): the event's update is a CTE,
// and the deliveries' insert reads it, so that with the lease lost
// nothing is written. The committer writes routes in batches
// (routeEventsSQL); this is its way for one route alone, when a batch
// failed.
func (s *Store) recordRoutePG(ctx context.Context, r *routeReq) error {
	args := slices.Clone(r.ev)
	for _, d := range r.deliveries {
		args = append(args, d...)
	}
	var n int
	if err := s.db.DB.QueryRowContext(ctx, recordRouteSQL(len(r.deliveries)), args...).Scan(&n); err != nil {
		return translate(err)
	}
	if n == 0 {
		return s.leaseError(ctx, s.db, "mapper_events", r.eventID)
	}
	return nil
}

// routeEventsSQL writes a batch of routes in one statement: the events'
// update, joined by ID to one array per value (unnest, numbered from 1),
// as a CTE, and the deliveries' insert (each row carrying its route's
// number) for the routes whose update found its lease; it returns their
// numbers. A statement per route cost PostgreSQL its per-statement work
// (bind, the executor's start and end, which open both tables' indexes)
// for each webhook: routes went 30 % faster as one statement, 14 at a
// time (docs/performance.md, round fourteen).
//
// Its join needs routePlanSQL run first in the same transaction: see there.
var routeEventsSQL = func() string {
	var b strings.Builder
	b.WriteString("WITH r AS (SELECT * FROM unnest(")
	p := writeParams(&b, 0, slices.Concat(routeSetColumns, []column{{"id", "text"}, {"lease_token", "text"}}), "[]")
	b.WriteString(") WITH ORDINALITY AS r(" + columnNames(routeSetColumns) + ", id, lease_token, n)),\nev AS (UPDATE mapper_events e SET ")
	for _, c := range routeSetColumns {
		b.WriteString(c.name + " = r." + c.name + ", ")
	}
	p++
	fmt.Fprintf(&b, "lease_token = ''\nFROM r WHERE e.id = r.id AND e.lease_token = r.lease_token AND e.status = $%d RETURNING r.n),\n", p)
	b.WriteString("d AS (INSERT INTO mapper_deliveries (" + columnNames(deliveryColumns) + ") SELECT ")
	for i, c := range deliveryColumns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("d." + c.name)
	}
	b.WriteString(" FROM unnest(")
	writeParams(&b, p, routeDeliveryColumns, "[]")
	b.WriteString(") AS d(" + columnNames(routeDeliveryColumns) + ") WHERE d.route IN (SELECT n FROM ev))\nSELECT n FROM ev")
	return b.String()
}()

// routeDeliveryColumns are routeEventsSQL's deliveries: each row's route
// number, then the delivery's columns.
var routeDeliveryColumns = slices.Concat([]column{{"route", "bigint"}}, deliveryColumns)

// routeSetColumns are the columns a route sets on its event, in the order
// of routeArgs.
var routeSetColumns = []column{{"status", "text"}, {"owners", "text"}, {"unroutable", "text"}, {"route_attempts", "integer"},
	{"last_error", "text"}, {"routed_at", "bigint"}, {"completed_at", "bigint"}, {"next_attempt_at", "bigint"}}

// routePlanSQL leaves PostgreSQL, for the rest of the transaction, no
// plan but a nested loop of index scans, for routeEventsSQL to find each
// event by its primary key. Prepared, that statement is planned once for
// its arrays of any length (a generic plan, cached after five runs), and
// on a table still empty, as a new database's is when its first webhooks
// come, the cheapest join to ten rows (the length PostgreSQL assumes) is
// to read the whole table and hash it; the connection would keep that
// plan until the table's first ANALYZE, a minute or more later, reading
// more of the table each batch (as the taken-ID lookup once did, see
// refuseTakenIDs). Planned at each run instead, as an unnamed statement,
// its planning cost 0.3 ms a batch, most of what one statement saves.
// The settings are the transaction's (set_config's is_local), and the
// statements after it there, inserts from arrays, scan no table.
const routePlanSQL = "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"

// routeEventsArgs are routeEventsSQL's arrays for routes.
func routeEventsArgs(routes []*routeReq) []any {
	evs := make([][]any, len(routes))
	var deliveries [][]any
	for i, r := range routes {
		evs[i] = r.ev[:len(r.ev)-1] // all but the status it expects
		for _, d := range r.deliveries {
			deliveries = append(deliveries, append([]any{int64(i + 1)}, d...))
		}
	}
	args := append(columnArrays(evs), string(mapper.EventPending))
	if len(deliveries) == 0 {
		// NULL arrays, which unnest to no rows: columnArrays types its
		// arrays by a first row's values.
		return append(args, make([]any, len(routeDeliveryColumns))...)
	}
	return append(args, columnArrays(deliveries)...)
}

var recordRouteSQLs sync.Map // deliveries → statement

// recordRouteSQL is the statement for n deliveries: the route's update
// (routeEventSQL) as a CTE, the insert reading it. The insert's
// parameters carry explicit types, which rows of VALUES do not infer.
func recordRouteSQL(n int) string {
	if q, ok := recordRouteSQLs.Load(n); ok {
		return q.(string)
	}
	p := strings.Count(routeEventSQL.sqlite, "?") // the event's parameters come first
	var b strings.Builder
	b.WriteString("WITH ev AS (" + routeEventSQL.pg + " RETURNING id)")
	if n > 0 {
		b.WriteString(", d AS (INSERT INTO mapper_deliveries (" + columnNames(deliveryColumns) + ") SELECT * FROM (VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			p = writeParams(&b, p, deliveryColumns, "")
			b.WriteByte(')')
		}
		b.WriteString(") AS v WHERE EXISTS (SELECT 1 FROM ev) RETURNING 1)")
	}
	b.WriteString(` SELECT count(*) FROM ev`)
	q := b.String()
	recordRouteSQLs.Store(n, q)
	return q
}
