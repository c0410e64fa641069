package bunstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func usDuration(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// ClaimEvents implements mapper.Store.
func (s *Store) ClaimEvents(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mapper.Event, error) {
	if limit < 1 {
		return nil, nil
	}
	var rows []eventRow
	err := s.claim(ctx, func(ctx context.Context, db bun.IDB) error {
		rows = rows[:0]
		// Each row's token is the claim's followed by its ID: every piece of
		// work has its own lease, which the holder extends or ends alone.
		return db.NewRaw(s.claimEventsSQL(), newToken(), us(now.Add(lease)), us(now), limit).Scan(ctx, &rows)
	})
	if err != nil {
		return nil, err
	}
	out := make([]mapper.Event, len(rows))
	for i := range rows {
		// A payload that cannot be read goes on empty: routing parks its
		// event as dead ("stored payload unusable") rather than one
		// damaged row stopping every claim that takes it.
		out[i], _ = rows[i].event()
	}
	slices.SortFunc(out, func(a, b mapper.Event) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	return out, nil
}

// indexedBy names the index a claim must walk on SQLite: its planner,
// without statistics, prefers the status index for "status = 'pending'"
// and then sorts every pending row, so a claim cost grew with the backlog
// (half the CPU of a flat-out run, and a delivery lag of seconds). The
// partial due index holds only pending rows, in claim order, and the
// claim reads just the rows it takes. PostgreSQL plans from statistics.
func (s *Store) indexedBy(index string) string {
	if s.pg {
		return ""
	}
	return " INDEXED BY " + index
}

// undelivered is the term the partial status indexes are defined by
// (status <> 'delivered'), for a query on another status. SQLite's planner
// uses a partial index only when the query names its term. PostgreSQL's
// proves it from the status asked for, and given it as well counts it as a
// second, independent filter: it then expects a hundredth of the rows, and
// sorts every dead event for a page of them rather than read the page in
// index order.
func (s *Store) undelivered(col string) string {
	if s.pg {
		return ""
	}
	return " AND " + col + " <> 'delivered'"
}

// claimEventsSQL leases due events: token, lease end, now, limit.
func (s *Store) claimEventsSQL() string {
	return `UPDATE mapper_events SET lease_token = ? || id, next_attempt_at = ?
WHERE id IN (SELECT id FROM mapper_events` + s.indexedBy("mapper_events_due") + ` WHERE status = 'pending' AND next_attempt_at <= ?
ORDER BY next_attempt_at, id LIMIT ?` + s.claimSQL + `)
RETURNING *`
}

// accountsOf joins the accounts of event alias e as alias a, one row
// each, in column value: read from the event's row, the few pending
// events' lists, rather than an index by event on mapper_event_accounts
// that every event would pay for.
func (s *Store) accountsOf(e, a string) string {
	if s.pg {
		return " CROSS JOIN LATERAL json_array_elements_text(" + e + ".account_ids::json) AS " + a + "(value)"
	}
	// CROSS JOIN keeps this order: each event's few accounts, then the
	// routing table by key. Left to choose, SQLite walked every account
	// of the app (100,000 of them, #17) for each pending event.
	return " CROSS JOIN json_each(" + e + ".account_ids) AS " + a
}

// claimDeliveriesSQL leases due deliveries: token, lease end, now, the
// apps skipped (when skip is set), limit.
func (s *Store) claimDeliveriesSQL(skip string) string {
	return `UPDATE mapper_deliveries SET lease_token = ? || id, next_attempt_at = ?
WHERE id IN (SELECT id FROM mapper_deliveries AS d` + s.indexedBy("mapper_deliveries_due") + ` WHERE status = 'pending' AND next_attempt_at <= ?` + skip + `
AND (NOT ordered OR (
	NOT EXISTS (SELECT 1 FROM mapper_deliveries AS o
		WHERE o.app_id = d.app_id AND o.status = 'pending' AND o.event_id < d.event_id)
	AND NOT EXISTS (SELECT 1 FROM mapper_events AS e` + s.accountsOf("e", "ea") + `
		CROSS JOIN mapper_app_accounts AS aa
		WHERE aa.account_id = ea.value AND aa.app_id = d.app_id AND e.status = 'pending'` + s.undelivered("e.status") + ` AND e.id < d.event_id)))
ORDER BY next_attempt_at, id LIMIT ?` + s.claimSQL + `)
RETURNING *`
}

// claim runs a claim statement: on PostgreSQL on its own (SKIP LOCKED
// wants short transactions), on SQLite in the committer's shared
// transaction, so that a claim costs no commit of its own.
func (s *Store) claim(ctx context.Context, fn func(context.Context, bun.IDB) error) error {
	run := func(ctx context.Context, db bun.IDB) error {
		if err := fn(ctx, db); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return translate(err)
		}
		return nil
	}
	if s.pg {
		return run(ctx, s.db)
	}
	return s.commits.send(commitReq{ctx: ctx, fn: func(ctx context.Context, tx bun.Tx) error { return run(ctx, tx) }})
}

// updateLeased runs an update of a pending row held under lease token,
// clearing the lease, and tells "no row matched" apart: ErrNotFound or
// ErrLeaseLost.
func (s *Store) updateLeased(ctx context.Context, db bun.IDB, q *bun.UpdateQuery, table, id, token string) error {
	res, err := q.Set("lease_token = ''").Where("id = ? AND status = 'pending' AND lease_token = ?", id, token).Exec(ctx)
	return s.matched(ctx, db, res, err, table, id)
}

// leaseError tells a lost lease from a missing row after an update that
// matched nothing.
func (s *Store) leaseError(ctx context.Context, db bun.IDB, table, id string) error {
	n, err := db.NewSelect().Table(table).Where("id = ?", id).Count(ctx)
	switch {
	case err != nil:
		return translate(err)
	case n == 0:
		return fmt.Errorf("%s %q: %w", strings.TrimPrefix(table, "mapper_"), id, mapper.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", strings.TrimPrefix(table, "mapper_"), id, mapper.ErrLeaseLost)
}

// RouteEvent implements mapper.Store: on SQLite in one write of the
// committer's shared transaction, on PostgreSQL in one statement with the
// other routes of the committer's batch, pipelined with its events in one
// transaction.
func (s *Store) RouteEvent(ctx context.Context, ev *mapper.Event, deliveries []mapper.Delivery, attempts []mapper.Attempt) error {
	req, err := s.routeReq(ctx, ev, deliveries, attempts)
	if err != nil {
		return err
	}
	return s.commits.send(req)
}

// routeReq is the committer's write of a route, deferrable (see maxDefer).
func (s *Store) routeReq(ctx context.Context, ev *mapper.Event, deliveries []mapper.Delivery, attempts []mapper.Attempt) (commitReq, error) {
	if ev.LeaseToken == "" {
		return commitReq{}, fmt.Errorf("event %s: %w", ev.ID, mapper.ErrLeaseLost)
	}
	// The rows, bodies compressed, are made here, not in the single writer;
	// each holds its delivery's attempt, if it was made.
	rows := make([]*deliveryRow, len(deliveries))
	for i := range deliveries {
		rows[i] = toDeliveryRow(&deliveries[i])
	}
	for i := range attempts {
		a := &attempts[i]
		j := slices.IndexFunc(deliveries, func(d mapper.Delivery) bool { return d.ID == a.DeliveryID })
		switch {
		case j < 0:
			return commitReq{}, fmt.Errorf("attempt of delivery %q, which is not in the route: %w", a.DeliveryID, mapper.ErrConflict)
		case rows[j].AttemptNumber != nil:
			return commitReq{}, fmt.Errorf("two attempts of delivery %q in one route: %w", a.DeliveryID, mapper.ErrConflict)
		}
		rows[j].hold(a)
	}
	req := commitReq{ctx: ctx, deferrable: true}
	if s.pg {
		req.route = newRouteReq(ev, rows)
	} else {
		req.fn = func(ctx context.Context, tx bun.Tx) error { return s.route(ctx, tx, ev, rows) }
	}
	return req, nil
}

// route stores a routed event and its deliveries, leased as given.
func (s *Store) route(ctx context.Context, tx bun.Tx, ev *mapper.Event, deliveries []*deliveryRow) error {
	res, err := s.exec(ctx, tx, routeEventSQL, routeArgs(ev)...)
	if err := s.matched(ctx, tx, res, err, "mapper_events", ev.ID); err != nil {
		return err
	}
	for _, d := range deliveries {
		if _, err := s.exec(ctx, tx, insertDeliverySQL, d.args()...); err != nil {
			return translate(err)
		}
	}
	return nil
}

// matched checks that an update of a leased row found it: ErrNotFound or
// ErrLeaseLost when it did not.
func (s *Store) matched(ctx context.Context, db bun.IDB, res sql.Result, err error, table, id string) error {
	if err != nil {
		return translate(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return s.leaseError(ctx, db, table, id)
	}
	return nil
}

// ClaimDeliveries implements mapper.Store.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration, skipApps []string) ([]mapper.Delivery, error) {
	if limit < 1 {
		return nil, nil
	}
	skip := ""
	args := []any{newToken(), us(now.Add(lease)), us(now)}
	if len(skipApps) > 0 {
		skip = " AND app_id NOT IN (?)"
		args = append(args, bun.In(skipApps))
	}
	args = append(args, limit)
	var rows []deliveryRow
	// An ordered delivery waits while a delivery of an older event to its
	// app is pending, or an older event of one of its app's accounts is
	// not routed yet (event IDs follow the receive order).
	err := s.claim(ctx, func(ctx context.Context, db bun.IDB) error {
		rows = rows[:0]
		return db.NewRaw(s.claimDeliveriesSQL(skip), args...).Scan(ctx, &rows)
	})
	if err != nil {
		return nil, err
	}
	out := make([]mapper.Delivery, len(rows))
	for i := range rows {
		var err error
		if out[i], err = rows[i].delivery(); err != nil {
			return nil, err
		}
	}
	if err := s.fromEvents(ctx, out, true); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b mapper.Delivery) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// kept is what a delivery keeps in its event's row.
type kept struct {
	ID           string `bun:"id"`
	Payload      []byte `bun:"payload"`
	PayloadCodec int16  `bun:"payload_codec"`
	Signature    string `bun:"signature"`
	TraceContext string `bun:"trace_context"`
}

// fromEvents completes deliveries with what they keep in their event's
// row (see toDeliveryRow): the trace context, Meta's signature for an
// original delivery, and with bodies its body. Rows stored before
// 2026-11-30 carry their own copies, which win.
func (s *Store) fromEvents(ctx context.Context, ds []mapper.Delivery, bodies bool) error {
	if len(ds) == 0 {
		return nil
	}
	events := make([]string, 0, len(ds))
	for i := range ds {
		events = append(events, ds[i].EventID)
	}
	cols := []string{"id", "signature", "trace_context"}
	if bodies {
		cols = append(cols, "payload", "payload_codec")
	}
	var es []kept
	if err := s.read.NewSelect().Table("mapper_events").Column(cols...).Where("id IN (?)", bun.In(events)).Scan(ctx, &es); err != nil {
		return translate(err)
	}
	byID := make(map[string]*kept, len(es))
	for i := range es {
		byID[es[i].ID] = &es[i]
	}
	for i := range ds {
		d := &ds[i]
		e := byID[d.EventID]
		if e == nil {
			continue
		}
		d.TraceContext = cmp.Or(d.TraceContext, e.TraceContext)
		if d.Original {
			d.MetaSignature = cmp.Or(d.MetaSignature, e.Signature)
			if bodies {
				body, err := unpack(e.Payload, e.PayloadCodec)
				if err != nil {
					return fmt.Errorf("event %s of delivery %s: %w", e.ID, d.ID, err)
				}
				d.Body = body
			}
		}
	}
	return nil
}

// RecordAttempt implements mapper.Store.
func (s *Store) RecordAttempt(ctx context.Context, d *mapper.Delivery, a *mapper.Attempt) error {
	if d.LeaseToken == "" {
		return fmt.Errorf("delivery %s: %w", d.ID, mapper.ErrLeaseLost)
	}
	terminal := d.Status.Terminal()
	return s.write(commitReq{ctx: ctx, deferrable: true, fn: func(ctx context.Context, tx bun.Tx) error {
		if terminal && s.pg {
			// Serialise the last deliveries of one event finishing at
			// once, so that one of them sees the others ended and
			// settles the event.
			if _, err := tx.ExecContext(ctx, "SELECT 1 FROM mapper_events WHERE id = ? FOR UPDATE", d.EventID); err != nil {
				return translate(err)
			}
		}
		args := []any{string(d.Status), d.Attempts, us(d.NextAttemptAt), d.LastStatusCode, d.LastError, usPtr(d.CompletedAt)}
		record := recordDeliverySQL
		if a != nil {
			// The attempt the row held goes to the table; a takes its place.
			if _, err := s.exec(ctx, tx, moveAttemptSQL, d.ID, d.LeaseToken, string(mapper.DeliveryPending)); err != nil {
				return translate(err)
			}
			var r deliveryRow
			r.hold(a)
			args, record = append(args, r.heldArgs()...), recordAttemptSQL
		}
		res, err := s.exec(ctx, tx, record, append(args, d.ID, d.LeaseToken, string(mapper.DeliveryPending))...)
		if err := s.matched(ctx, tx, res, err, "mapper_deliveries", d.ID); err != nil {
			return err
		}
		if !terminal {
			return nil
		}
		return s.settle(ctx, tx, d.EventID)
	}})
}

// settle reads an event and the state of its deliveries and stores what
// mapper.Event.Settle makes of them.
func (s *Store) settle(ctx context.Context, tx bun.Tx, eventID string) error {
	ev := mapper.Event{ID: eventID}
	var status, unroutable string
	if err := s.queryRow(ctx, tx, eventStateSQL, eventID).Scan(&status, &unroutable); err != nil {
		return translate(err)
	}
	ev.Status = mapper.EventStatus(status)
	if ev.Status != mapper.EventDispatched {
		return nil
	}
	if err := json.Unmarshal([]byte(unroutable), &ev.Unroutable); err != nil {
		return fmt.Errorf("event %s: unroutable column: %w", eventID, err)
	}
	rows, err := s.query(ctx, tx, deliveryStatesSQL, eventID)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	var ds []mapper.Delivery
	for rows.Next() {
		var st string
		var done *int64
		if err := rows.Scan(&st, &done); err != nil {
			return translate(err)
		}
		ds = append(ds, mapper.Delivery{Status: mapper.DeliveryStatus(st), CompletedAt: fromUSPtr(done)})
	}
	if err := rows.Err(); err != nil {
		return translate(err)
	}
	if !ev.Settle(ds) {
		return nil
	}
	_, err = s.exec(ctx, tx, settleEventSQL, string(ev.Status), usPtr(ev.CompletedAt), eventID, string(mapper.EventDispatched))
	return translate(err)
}

// ExtendLeases moves the end of the leases with these tokens to until,
// for work still pending under them; the Mapper's heartbeat calls it for
// the work it holds. A token no longer held is skipped. Partial indexes
// on lease_token make it cost the work leased, not the log.
func (s *Store) ExtendLeases(ctx context.Context, tokens []string, until time.Time) error {
	if err := noNUL("lease", tokens...); err != nil {
		return err
	}
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		for part := range slices.Chunk(tokens, 500) {
			for _, table := range []string{"mapper_events", "mapper_deliveries"} {
				if _, err := tx.NewUpdate().Table(table).Set("next_attempt_at = ?", us(until)).
					Where("lease_token IN (?) AND status = 'pending'", bun.In(part)).Exec(ctx); err != nil {
					return translate(err)
				}
			}
		}
		return nil
	})
}
