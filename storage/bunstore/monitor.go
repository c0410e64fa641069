package bunstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

// Ping reports whether the database takes writes, for the health check.
func (s *Store) Ping(ctx context.Context) error {
	return translate(s.db.PingContext(ctx))
}

// percentileSample is how many of the most recent delivered events the
// processing percentiles are taken from: enough for a p95, and a cost that
// does not grow with the rate or the history.
const percentileSample = 1000

// Stats reads the live part of the store, for the Mapper's metrics. Every
// query walks an index range that holds only live rows (pending, dispatched
// and dead ones) or a bounded sample, so its cost does not grow with the
// history kept: totals by outcome are the Mapper's counters, not counts of
// the log.
func (s *Store) Stats(ctx context.Context, since time.Time) (mapper.Stats, error) {
	st := mapper.Stats{
		EventsByStatus:     map[mapper.EventStatus]int64{mapper.EventPending: 0, mapper.EventDispatched: 0, mapper.EventDead: 0},
		DeliveriesByStatus: map[mapper.DeliveryStatus]int64{mapper.DeliveryPending: 0, mapper.DeliveryDead: 0},
	}
	var counts []struct {
		Status string `bun:"status"`
		N      int64  `bun:"n"`
	}
	if err := s.read.NewRaw(statsEventsSQL).Scan(ctx, &counts); err != nil {
		return st, translate(err)
	}
	for _, c := range counts {
		st.EventsByStatus[mapper.EventStatus(c.Status)] = c.N
	}
	counts = counts[:0]
	if err := s.read.NewRaw(statsDeliveriesSQL).Scan(ctx, &counts); err != nil {
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
	if err := s.read.NewRaw(statsOldestSQL).Scan(ctx, &oldest); err != nil {
		return st, translate(err)
	}
	now := time.Now()
	for _, v := range []*int64{oldest.E, oldest.D} {
		if v != nil {
			st.OldestPending = max(st.OldestPending, now.Sub(fromUS(*v)))
		}
	}

	var times []int64
	if err := s.read.NewRaw(s.statsRecentSQL(), us(since), percentileSample).Scan(ctx, &times); err != nil {
		return st, translate(err)
	}
	if len(times) > 0 {
		slices.Sort(times)
		st.ProcessingP50 = usDuration(times[(len(times)-1)*50/100])
		st.ProcessingP95 = usDuration(times[(len(times)-1)*95/100])
	}
	return st, nil
}

// The live rows by status: ranges of the status indexes.
const (
	statsEventsSQL     = `SELECT status, COUNT(*) AS n FROM mapper_events WHERE status IN ('pending', 'dispatched', 'dead') GROUP BY status`
	statsDeliveriesSQL = `SELECT status, COUNT(*) AS n FROM mapper_deliveries WHERE status IN ('pending', 'dead') GROUP BY status`
)

// The oldest pending event and delivery: the first entries of the status
// indexes' pending ranges.
const statsOldestSQL = `SELECT
(SELECT MIN(received_at) FROM mapper_events WHERE status = 'pending') AS e,
(SELECT MIN(created_at) FROM mapper_deliveries WHERE status = 'pending') AS d`

// statsRecentSQL reads the processing times of the most recent delivered
// events since a time, newest first down the index of completion times.
// SQLite's planner, without statistics, would take the status index and
// sort every delivered event.
func (s *Store) statsRecentSQL() string {
	return `SELECT completed_at - received_at FROM mapper_events` + s.indexedBy("mapper_events_completed") + `
WHERE completed_at >= ? AND status = 'delivered' ORDER BY completed_at DESC LIMIT ?`
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
