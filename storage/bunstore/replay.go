package bunstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
)

// FindDeliveries implements mapper.Store. Bodies are not read.
func (s *Store) FindDeliveries(ctx context.Context, q mapper.DeliveryQuery) (mapper.Page[mapper.Delivery], error) {
	if err := noNUL("filter", q.ID, q.AppID, q.EventID); err != nil {
		return mapper.Page[mapper.Delivery]{}, err
	}
	limit := ids.PageLimit(q.Limit)
	var rows []deliveryRow
	sel, err := s.findDeliveriesQuery(q, &rows, limit)
	if err != nil {
		return mapper.Page[mapper.Delivery]{}, err
	}
	if err := sel.Scan(ctx); err != nil {
		return mapper.Page[mapper.Delivery]{}, translate(err)
	}
	var page mapper.Page[mapper.Delivery]
	page.Items, page.NextCursor = pageOf(rows, limit, (*deliveryRow).listed, func(r *deliveryRow) (int64, string) { return r.CreatedAt, r.ID })
	if err := s.fromEvents(ctx, page.Items, false); err != nil {
		return mapper.Page[mapper.Delivery]{}, err
	}
	if q.Attempts && len(page.Items) > 0 {
		ids := make([]string, len(page.Items))
		for i := range page.Items {
			ids[i] = page.Items[i].ID
		}
		as, err := s.attemptsOf(ctx, ids)
		if err != nil {
			return mapper.Page[mapper.Delivery]{}, err
		}
		for i := range page.Items {
			h := as[page.Items[i].ID]
			if a, ok := rows[i].held(); ok {
				// Last, unless a replica of an earlier version recorded
				// one to the table after it.
				h = append(h, a)
				slices.SortStableFunc(h, func(a, b mapper.Attempt) int { return cmp.Compare(a.Number, b.Number) })
			}
			page.Items[i].History = h
		}
	}
	return page, nil
}

// findDeliveriesQuery is FindDeliveries' query, newest first.
func (s *Store) findDeliveriesQuery(q mapper.DeliveryQuery, rows *[]deliveryRow, limit int) (*bun.SelectQuery, error) {
	sel := s.read.NewSelect().Model(rows).ExcludeColumn("body").OrderExpr("d.created_at DESC, d.id DESC").Limit(int64(limit + 1))
	if !q.Attempts {
		// Nor the held attempt's answer (4 KiB at most), unless asked for.
		sel.ExcludeColumn("attempt_response_body")
	}
	s.deliveryFilter(sel, q)
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		sel.Where("(d.created_at, d.id) < (?, ?)", at, id)
	}
	return sel, nil
}

func (s *Store) deliveryFilter(sel *bun.SelectQuery, q mapper.DeliveryQuery) {
	if q.ID != "" {
		sel.Where("d.id = ?", q.ID)
	}
	switch q.Status {
	case "":
	case mapper.DeliveryDelivered:
		sel.Where("d.status = ?", string(q.Status)) // the time index serves, as for events
		if q.ID == "" && q.AppID == "" && q.EventID == "" {
			sel.ModelTableExpr("mapper_deliveries AS d" + s.indexedBy("mapper_deliveries_log"))
		}
	default:
		sel.Where("d.status = ?"+s.undelivered("d.status"), string(q.Status))
	}
	if q.AppID != "" {
		sel.Where("d.app_id = ?", q.AppID)
	}
	if q.EventID != "" {
		sel.Where("d.event_id = ?", q.EventID)
	}
	if !q.Since.IsZero() {
		sel.Where("d.created_at >= ?", us(q.Since))
	}
	if !q.Until.IsZero() {
		sel.Where("d.created_at < ?", us(q.Until))
	}
}

// Reopen implements mapper.Store. The event's status is compared and set
// in one update, which PostgreSQL serialises with any other write of the
// row, and each delivery's likewise; a miss rolls everything back.
func (s *Store) Reopen(ctx context.Context, was mapper.EventStatus, ev *mapper.Event, deliveries []mapper.Delivery) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Table("mapper_events").
			Set("status = ?", string(ev.Status)).Set("next_attempt_at = ?", us(ev.NextAttemptAt)).Set("last_error = ?", ev.LastError).
			Set("completed_at = ?", usPtr(ev.CompletedAt)).Set("lease_token = ''").
			Where("id = ? AND status = ?", ev.ID, string(was)).Exec(ctx)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return s.reopenMiss(ctx, tx, ev.ID, was)
		}
		for i := range deliveries {
			d := &deliveries[i]
			res, err := tx.NewUpdate().Table("mapper_deliveries").
				Set("status = ?", string(d.Status)).Set("next_attempt_at = ?", us(d.NextAttemptAt)).
				Set("attempt_base = ?", d.AttemptBase).Set("cycle_start = ?", us(d.CycleStart)).
				Set("completed_at = ?", usPtr(d.CompletedAt)).Set("lease_token = ''").
				Where("id = ? AND event_id = ? AND status = 'dead'", d.ID, ev.ID).Exec(ctx)
			if err != nil {
				return translate(err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("delivery %s of event %s is not dead: %w", d.ID, ev.ID, mapper.ErrConflict)
			}
		}
		return nil
	})
}

// reopenMiss says why Reopen's update of an event matched nothing.
func (s *Store) reopenMiss(ctx context.Context, tx bun.Tx, id string, was mapper.EventStatus) error {
	var status string
	err := tx.NewSelect().Table("mapper_events").Column("status").Where("id = ?", id).Scan(ctx, &status)
	if err != nil {
		return fmt.Errorf("event %q: %w", id, translate(err))
	}
	return fmt.Errorf("event %s is %s now, not %s: %w", id, status, was, mapper.ErrConflict)
}
