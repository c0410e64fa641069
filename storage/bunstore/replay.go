package bunstore

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
)

// FindDeliveries implements mapper.Store. Bodies are not read.
func (s *Store) FindDeliveries(ctx context.Context, q mapper.DeliveryQuery) (mapper.DeliveryPage, error) {
	limit := ids.PageLimit(q.Limit)
	var rows []deliveryRow
	sel := s.read.NewSelect().Model(&rows).ExcludeColumn("body").OrderExpr("d.created_at DESC, d.id DESC").Limit(int64(limit + 1))
	deliveryFilter(sel, q)
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return mapper.DeliveryPage{}, err
		}
		sel.Where("(d.created_at, d.id) < (?, ?)", at, id)
	}
	if err := sel.Scan(ctx); err != nil {
		return mapper.DeliveryPage{}, translate(err)
	}
	var page mapper.DeliveryPage
	page.Deliveries, page.NextCursor = pageOf(rows, limit, (*deliveryRow).delivery, func(r *deliveryRow) (int64, string) { return r.CreatedAt, r.ID })
	return page, nil
}

func deliveryFilter(sel *bun.SelectQuery, q mapper.DeliveryQuery) {
	if q.Status != "" {
		sel.Where("d.status = ?", string(q.Status))
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

// replay makes dead deliveries pending again, starting a new retry
// cycle, and reopens their ended events.
func (s *Store) replay(ctx context.Context, tx bun.Tx, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.NewUpdate().Table("mapper_deliveries").
		Set("status = 'pending'").Set("next_attempt_at = ?", us(now)).Set("completed_at = NULL").
		Set("lease_token = ''").Set("attempt_base = attempts").Set("cycle_start = ?", us(now)).
		Where("id IN (?) AND status = 'dead'", bun.In(ids)).Exec(ctx); err != nil {
		return translate(err)
	}
	_, err := tx.NewUpdate().Table("mapper_events").Set("status = 'dispatched'").Set("completed_at = NULL").
		Where("id IN (SELECT event_id FROM mapper_deliveries WHERE id IN (?))", bun.In(ids)).
		Where("status IN ('dead', 'unroutable', 'delivered')").Exec(ctx)
	return translate(err)
}

// ReplayDelivery implements mapper.Store.
func (s *Store) ReplayDelivery(ctx context.Context, id string, now time.Time) (*mapper.Delivery, error) {
	var out mapper.Delivery
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var r deliveryRow
		if err := tx.NewSelect().Model(&r).ExcludeColumn("body").Where("d.id = ?", id).Scan(ctx); err != nil {
			return fmt.Errorf("delivery %q: %w", id, translate(err))
		}
		if r.Status != string(mapper.DeliveryDead) {
			return fmt.Errorf("delivery %s is %s, not dead: %w", id, r.Status, mapper.ErrConflict)
		}
		if err := s.replay(ctx, tx, []string{id}, now); err != nil {
			return err
		}
		r.Status, r.NextAttemptAt, r.CompletedAt, r.AttemptBase, r.CycleStart = string(mapper.DeliveryPending), us(now), nil, r.Attempts, us(now)
		out = r.delivery()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplayEvent implements mapper.Store.
func (s *Store) ReplayEvent(ctx context.Context, id string, now time.Time) (*mapper.Event, error) {
	var out mapper.Event
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var r eventRow
		sel := tx.NewSelect().Model(&r).ExcludeColumn("payload").Where("e.id = ?", id)
		if s.pg {
			sel.For("UPDATE") // SQLite's single writer needs no lock
		}
		if err := sel.Scan(ctx); err != nil {
			return fmt.Errorf("event %q: %w", id, translate(err))
		}
		if r.Status != string(mapper.EventDead) && r.Status != string(mapper.EventUnroutable) {
			return fmt.Errorf("event %s is %s, neither dead nor unroutable: %w", id, r.Status, mapper.ErrConflict)
		}
		var dead []string
		if err := tx.NewSelect().Table("mapper_deliveries").Column("id").Where("event_id = ? AND status = 'dead'", id).Scan(ctx, &dead); err != nil {
			return translate(err)
		}
		if err := s.replay(ctx, tx, dead, now); err != nil {
			return err
		}
		r.Status, r.CompletedAt = string(mapper.EventDispatched), nil
		if r.Unroutable != "[]" || len(dead) == 0 {
			if _, err := tx.NewUpdate().Table("mapper_events").Set("status = 'pending'").Set("next_attempt_at = ?", us(now)).
				Set("completed_at = NULL").Set("lease_token = ''").Set("last_error = ''").Where("id = ?", id).Exec(ctx); err != nil {
				return translate(err)
			}
			r.Status, r.NextAttemptAt, r.LastError = string(mapper.EventPending), us(now), ""
		}
		out = r.event()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplayDead implements mapper.Store.
func (s *Store) ReplayDead(ctx context.Context, q mapper.DeliveryQuery, now time.Time, batch int) (int64, error) {
	if batch < 1 {
		batch = 500
	}
	q.Status = mapper.DeliveryDead
	var total int64
	for {
		var ids []string
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			ids = ids[:0]
			sel := tx.NewSelect().Model((*deliveryRow)(nil)).Column("d.id").Limit(int64(batch))
			deliveryFilter(sel, q)
			if err := sel.Scan(ctx, &ids); err != nil {
				return translate(err)
			}
			return s.replay(ctx, tx, ids, now)
		})
		if err != nil {
			return total, err
		}
		total += int64(len(ids))
		if len(ids) < batch {
			return total, nil
		}
	}
}
