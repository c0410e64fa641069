package bunstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
)

// CreateEvent implements mapper.Store. Concurrent calls are committed
// together (see commit.go); each event still succeeds or fails alone.
func (s *Store) CreateEvent(ctx context.Context, ev *mapper.Event) error {
	if ev.ID == "" {
		return fmt.Errorf("event ID must be set by the caller: %w", mapper.ErrInvalidInput)
	}
	if err := eventNUL(ev); err != nil {
		return err
	}
	return s.commits.send(s.createReq(ctx, ev))
}

// createReq is the committer's write of a new event.
func (s *Store) createReq(ctx context.Context, ev *mapper.Event) commitReq {
	// Compressed here, in the caller's goroutine: the writer is one.
	payload := pack(ev.Payload)
	return commitReq{ctx: ctx, ev: ev, payload: payload, fn: func(ctx context.Context, tx bun.Tx) error {
		return s.createEvent(ctx, tx, ev, payload)
	}}
}

// eventNUL checks the text of an event that goes into columns of its own.
func eventNUL(ev *mapper.Event) error {
	errs := []error{noNUL("event", ev.ID, ev.Object, ev.Signature), noNUL("account", ev.AccountIDs...)}
	for _, it := range ev.Items {
		errs = append(errs, noNUL("item key", it.Key))
	}
	return errors.Join(errs...)
}

// distinctKeys lists an event's deduplication keys, each once.
func distinctKeys(ev *mapper.Event) []string {
	var distinct []string
	seen := map[string]bool{}
	for _, it := range ev.Items {
		if !seen[it.Key] {
			seen[it.Key] = true
			distinct = append(distinct, it.Key)
		}
	}
	return distinct
}

// createEvent writes one event in tx: its keys, the event, its accounts
// (PostgreSQL writes batches of events in writePG instead).
func (s *Store) createEvent(ctx context.Context, tx bun.Tx, ev *mapper.Event, payload stored) error {
	// Claim the keys first: the primary key decides, under concurrency,
	// which event owns each change.
	created := us(ev.ReceivedAt)
	fresh, err := s.claimKeys(ctx, tx, distinctKeys(ev), ev.ID, created)
	if err != nil {
		return err
	}
	ev.MarkDuplicates(func(k string) bool { return fresh[k] })
	if err := s.insertEvent(ctx, tx, toEventRow(ev, payload)); err != nil {
		return translate(err)
	}
	if len(ev.AccountIDs) > fewRows {
		rows := make([][]any, len(ev.AccountIDs))
		for i, a := range ev.AccountIDs {
			rows[i] = []any{a, created, ev.ID}
		}
		_, err := s.insertMany(ctx, tx, "INSERT INTO mapper_event_accounts (account_id, received_at, event_id) VALUES %s ON CONFLICT DO NOTHING", rows, nil)
		return err
	}
	for _, a := range ev.AccountIDs {
		if _, err := s.exec(ctx, tx, insertEventAccountSQL, a, created, ev.ID); err != nil {
			return translate(err)
		}
	}
	return nil
}

// fewRows is the most rows written one prepared statement each. A webhook
// mostly has one item; a batch of thousands written a row at a time costs
// SQLite a statement journal each, whose upkeep grows with the
// transaction: 8 batches of 26,000 items took a minute, mostly there.
const fewRows = 16

// claimKeys claims deduplication keys for an event and returns those it
// got (the others an earlier event holds).
func (s *Store) claimKeys(ctx context.Context, tx bun.Tx, keys []string, eventID string, created int64) (map[string]bool, error) {
	fresh := make(map[string]bool, len(keys))
	if len(keys) > fewRows {
		rows := make([][]any, len(keys))
		for i, k := range keys {
			rows[i] = []any{k, eventID, created}
		}
		_, err := s.insertMany(ctx, tx, "INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at) VALUES %s ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key",
			rows, func(k string) { fresh[k] = true })
		return fresh, err
	}
	// Executed, not queried for the key it returns: a row skipped on the
	// conflict is not counted as changed, and through database/sql an
	// Exec cost a third of the QueryRow (no rows to open, scan and close),
	// which had made the claim dearer than inserting the event itself.
	for _, k := range keys {
		res, err := s.exec(ctx, tx, claimKeySQL, k, eventID, created)
		if err != nil {
			return nil, translate(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, translate(err)
		}
		if n > 0 { // none: an earlier event holds the key
			fresh[k] = true
		}
	}
	return fresh, nil
}

// insertMany runs an insert of many rows in statements of up to 200 rows
// (q has %s where the VALUES rows go, with ? placeholders), passing each
// returned string to got when the statement returns one column.
func (s *Store) insertMany(ctx context.Context, tx bun.Tx, q string, rows [][]any, got func(string)) (int, error) {
	n := 0
	for part := range slices.Chunk(rows, 200) {
		var b strings.Builder
		args := make([]any, 0, len(part)*len(part[0]))
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(r)), ", ") + ")")
			args = append(args, r...)
		}
		text := fmt.Sprintf(q, b.String())
		if s.pg {
			text = dollarPlaceholders(text)
		}
		if got == nil {
			if _, err := tx.Tx.ExecContext(ctx, text, args...); err != nil {
				return n, translate(err)
			}
			n += len(part)
			continue
		}
		res, err := tx.Tx.QueryContext(ctx, text, args...)
		if err != nil {
			return n, translate(err)
		}
		for res.Next() {
			var v string
			if err := res.Scan(&v); err != nil {
				res.Close()
				return n, translate(err)
			}
			got(v)
			n++
		}
		if err := res.Close(); err != nil {
			return n, translate(err)
		}
		if err := res.Err(); err != nil {
			return n, translate(err)
		}
	}
	return n, nil
}

// GetEvent implements mapper.Store.
func (s *Store) GetEvent(ctx context.Context, id string) (*mapper.Event, error) {
	if err := noNUL("event", id); err != nil {
		return nil, err
	}
	var r eventRow
	if err := s.read.NewSelect().Model(&r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("event %q: %w", id, translate(err))
	}
	e, err := r.event()
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// ListEvents implements mapper.Store. The payload is not read.
func (s *Store) ListEvents(ctx context.Context, q mapper.EventQuery) (mapper.Page[mapper.Event], error) {
	if err := noNUL("filter", q.Account, q.AppID); err != nil {
		return mapper.Page[mapper.Event]{}, err
	}
	limit := ids.PageLimit(q.Limit)
	var rows []eventRow
	sel, err := s.listEventsQuery(q, &rows, limit)
	if err != nil {
		return mapper.Page[mapper.Event]{}, err
	}
	if err := sel.Scan(ctx); err != nil {
		return mapper.Page[mapper.Event]{}, translate(err)
	}
	var page mapper.Page[mapper.Event]
	page.Items, page.NextCursor = pageOf(rows, limit, (*eventRow).listed, func(r *eventRow) (int64, string) { return r.ReceivedAt, r.ID })
	return page, nil
}

// listEventsQuery is ListEvents' query, newest first, without payloads.
func (s *Store) listEventsQuery(q mapper.EventQuery, rows *[]eventRow, limit int) (*bun.SelectQuery, error) {
	// The keyset columns: the event's own, or, filtered by account, the
	// same values in mapper_event_accounts, whose primary key
	// (account_id, received_at, event_id) then serves both the filter and
	// the order.
	at, id := "e.received_at", "e.id"
	sel := s.read.NewSelect().Model(rows).ExcludeColumn("payload")
	if q.Account != "" {
		at, id = "ea.received_at", "ea.event_id"
		sel.Join("JOIN mapper_event_accounts AS ea ON ea.event_id = e.id").Where("ea.account_id = ?", q.Account)
	}
	sel.OrderExpr(at + " DESC, " + id + " DESC").Limit(int64(limit + 1))
	switch q.Status {
	case "":
	case mapper.EventDelivered:
		// Not in the status index: the time index, where nearly every
		// row is delivered, serves. SQLite's planner, left to choose,
		// sorts every row rather than walk an index it must sort the
		// ties of (see migration 11).
		sel.Where("e.status = ?", string(q.Status))
		if q.Account == "" {
			sel.ModelTableExpr("mapper_events AS e" + s.indexedBy("mapper_events_log"))
		}
	default:
		sel.Where("e.status = ?"+s.undelivered("e.status"), string(q.Status))
	}
	if q.AppID != "" {
		sel.Where("EXISTS (SELECT 1 FROM mapper_deliveries AS d WHERE d.event_id = e.id AND d.app_id = ?)", q.AppID)
	}
	if !q.Since.IsZero() {
		sel.Where(at+" >= ?", us(q.Since))
	}
	if !q.Until.IsZero() {
		sel.Where(at+" < ?", us(q.Until))
	}
	if q.Cursor != "" {
		cat, cid, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		// A row value comparison, which PostgreSQL turns into an index
		// condition (an OR of the two cases it only filters with).
		sel.Where("("+at+", "+id+") < (?, ?)", cat, cid)
	}
	return sel, nil
}

// pageOf turns the limit+1 rows of a keyset query into a page and the
// cursor of the next one ("" when this one is the last).
func pageOf[R, T any](rows []R, limit int, conv func(*R) T, key func(*R) (int64, string)) ([]T, string) {
	out := make([]T, 0, min(len(rows), limit))
	for i := range rows {
		if i == limit {
			return out, encodeCursor(key(&rows[i-1]))
		}
		out = append(out, conv(&rows[i]))
	}
	return out, ""
}

func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "|" + id))
}

func decodeCursor(s string) (int64, string, error) {
	bad := fmt.Errorf("cursor: not one this store issued: %w", mapper.ErrInvalidInput)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", bad
	}
	ns, id, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", bad
	}
	return n, id, nil
}

// attemptsOf reads the attempts of deliveries, oldest first.
func (s *Store) attemptsOf(ctx context.Context, deliveryIDs []string) (map[string][]mapper.Attempt, error) {
	var rows []attemptRow
	if err := s.read.NewSelect().Model(&rows).Where("delivery_id IN (?)", bun.In(deliveryIDs)).Order("delivery_id", "number").Scan(ctx); err != nil {
		return nil, translate(err)
	}
	out := make(map[string][]mapper.Attempt, len(deliveryIDs))
	for _, r := range rows {
		out[r.DeliveryID] = append(out[r.DeliveryID], r.attempt())
	}
	return out, nil
}

// insertEvent binds the values as parameters: inlined, the payload would
// be a hex literal of twice its size for the database to parse.
func (s *Store) insertEvent(ctx context.Context, tx bun.Tx, r *eventRow) error {
	_, err := s.exec(ctx, tx, insertEventSQL, r.args()...)
	return err
}
