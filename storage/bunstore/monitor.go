package bunstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

// Ping reports whether the database takes writes, for the health check.
func (s *Store) Ping(ctx context.Context) error {
	return translate(s.db.PingContext(ctx))
}

// Stats aggregates the log, for the Mapper's metrics.
func (s *Store) Stats(ctx context.Context, since time.Time) (mapper.Stats, error) {
	st := mapper.Stats{EventsByStatus: map[mapper.EventStatus]int64{}, DeliveriesByStatus: map[mapper.DeliveryStatus]int64{}}
	var counts []struct {
		Status string `bun:"status"`
		N      int64  `bun:"n"`
	}
	if err := s.read.NewSelect().Table("mapper_events").ColumnExpr("status, COUNT(*) AS n").Group("status").Scan(ctx, &counts); err != nil {
		return st, translate(err)
	}
	for _, c := range counts {
		st.EventsByStatus[mapper.EventStatus(c.Status)] = c.N
	}
	counts = counts[:0]
	if err := s.read.NewSelect().Table("mapper_deliveries").ColumnExpr("status, COUNT(*) AS n").Group("status").Scan(ctx, &counts); err != nil {
		return st, translate(err)
	}
	for _, c := range counts {
		st.DeliveriesByStatus[mapper.DeliveryStatus(c.Status)] = c.N
	}
	st.QueueDepth = st.EventsByStatus[mapper.EventPending] + st.DeliveriesByStatus[mapper.DeliveryPending]

	var oldest struct {
		E *int64 `bun:"e"`
		D *int64 `bun:"d"`
	}
	if err := s.read.NewRaw(`SELECT
(SELECT MIN(received_at) FROM mapper_events WHERE status = 'pending') AS e,
(SELECT MIN(created_at) FROM mapper_deliveries WHERE status = 'pending') AS d`).Scan(ctx, &oldest); err != nil {
		return st, translate(err)
	}
	now := time.Now()
	for _, v := range []*int64{oldest.E, oldest.D} {
		if v != nil {
			st.OldestPending = max(st.OldestPending, now.Sub(fromUS(*v)))
		}
	}

	// Percentiles by rank, which both dialects can do.
	n, err := s.read.NewSelect().Table("mapper_events").Where("status = 'delivered' AND completed_at >= ?", us(since)).Count(ctx)
	if err != nil {
		return st, translate(err)
	}
	if n > 0 {
		for _, p := range []struct {
			pct int64
			dst *time.Duration
		}{{50, &st.ProcessingP50}, {95, &st.ProcessingP95}} {
			var v int64
			if err := s.read.NewSelect().Table("mapper_events").ColumnExpr("completed_at - received_at").
				Where("status = 'delivered' AND completed_at >= ?", us(since)).
				OrderExpr("completed_at - received_at").Limit(1).Offset((n-1)*p.pct/100).Scan(ctx, &v); err != nil {
				return st, translate(err)
			}
			*p.dst = usDuration(v)
		}
	}
	return st, nil
}

// Prune implements mapper.Store.
func (s *Store) Prune(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch < 1 {
		batch = 1000
	}
	cut := us(before)
	var total int64
	for {
		var ids []string
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			ids = ids[:0]
			if err := tx.NewSelect().Table("mapper_events").Column("id").
				Where("completed_at < ? AND status IN (?)", cut, bun.In([]string{"delivered", "dead", "unroutable", "duplicate", "ignored"})).
				Limit(int64(batch)).Scan(ctx, &ids); err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			// Children first, so that no foreign-key setting is needed.
			deliveries := tx.NewSelect().Table("mapper_deliveries").Column("id").Where("event_id IN (?)", bun.In(ids))
			for _, q := range []*bun.DeleteQuery{
				tx.NewDelete().Table("mapper_attempts").Where("delivery_id IN (?)", deliveries),
				tx.NewDelete().Table("mapper_deliveries").Where("event_id IN (?)", bun.In(ids)),
				tx.NewDelete().Table("mapper_event_accounts").Where("event_id IN (?)", bun.In(ids)),
				tx.NewDelete().Table("mapper_events").Where("id IN (?)", bun.In(ids)),
			} {
				if _, err := q.Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, translate(err)
		}
		total += int64(len(ids))
		if len(ids) < batch {
			break
		}
	}
	for {
		res, err := s.db.NewDelete().Table("mapper_dedup_keys").
			Where("dedup_key IN (?)", s.db.NewSelect().Table("mapper_dedup_keys").Column("dedup_key").Where("created_at < ?", cut).Limit(int64(batch))).
			Exec(ctx)
		if err != nil {
			return total, translate(err)
		}
		if n, _ := res.RowsAffected(); n < int64(batch) {
			return total, nil
		}
	}
}

// ListenForWork wakes the Mapper when another replica stored work. On PostgreSQL it LISTENs
// on a connection of its own; on SQLite, one process owns the file and
// wakes itself, so it only waits for ctx.
func (s *Store) ListenForWork(ctx context.Context, wake func()) error {
	if !s.pg {
		<-ctx.Done()
		return nil
	}
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return translate(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("bunstore: LISTEN needs the pgx driver")
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN mapper_work"); err != nil {
			return err
		}
		wake() // anything stored while we were not listening
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// A connection that listened goes back to no pool.
				return errors.Join(err, driver.ErrBadConn)
			}
			wake()
		}
	})
	if ctx.Err() != nil {
		return nil
	}
	return translate(err)
}
