package bunstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
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
	if err := s.read.NewRaw(s.statsEventsSQL()).Scan(ctx, &counts); err != nil {
		return st, translate(err)
	}
	for _, c := range counts {
		st.EventsByStatus[mapper.EventStatus(c.Status)] = c.N
	}
	counts = counts[:0]
	if err := s.read.NewRaw(s.statsDeliveriesSQL()).Scan(ctx, &counts); err != nil {
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
	if err := s.read.NewRaw(s.statsOldestSQL()).Scan(ctx, &oldest); err != nil {
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

// statsEventsSQL and statsDeliveriesSQL count the live rows by status:
// ranges of the status indexes, which hold no delivered row.
func (s *Store) statsEventsSQL() string {
	return `SELECT status, COUNT(*) AS n FROM mapper_events
WHERE status IN ('pending', 'dispatched', 'dead')` + s.undelivered("status") + ` GROUP BY status`
}

func (s *Store) statsDeliveriesSQL() string {
	return `SELECT status, COUNT(*) AS n FROM mapper_deliveries
WHERE status IN ('pending', 'dead')` + s.undelivered("status") + ` GROUP BY status`
}

// statsOldestSQL reads the oldest pending event and delivery: the first
// entries of the status indexes' pending ranges.
func (s *Store) statsOldestSQL() string {
	return `SELECT
(SELECT MIN(received_at) FROM mapper_events WHERE status = 'pending'` + s.undelivered("status") + `) AS e,
(SELECT MIN(created_at) FROM mapper_deliveries WHERE status = 'pending'` + s.undelivered("status") + `) AS d`
}

// statsRecentSQL reads the processing times of the most recent delivered
// events since a time, newest first down the index of completion times.
// SQLite's planner, without statistics, would take the status index and
// sort every delivered event.
func (s *Store) statsRecentSQL() string {
	return `SELECT completed_at - received_at FROM mapper_events` + s.indexedBy("mapper_events_completed") + `
WHERE completed_at >= ? AND status = 'delivered' ORDER BY completed_at DESC LIMIT ?`
}

// Pruning runs beside intake, which must not notice it. On SQLite each
// batch joins the committer's shared transaction like any write (see
// commit.go), rather than holding the only write connection for a batch
// of its own, and the webhooks whose commit carries a batch wait for it.
// A batch of 16 events held the writer about 3 ms in a history of a
// million events; how long depends on the history and on how much of it
// is cached, so the size adapts to hold the writer for about pruneHold.
// Smaller batches do not help: at a millisecond the p99 moved as much, as
// nearly every commit then carried a batch, and pruning, each batch's
// statements costing as much as its rows, fell below 400 events/s. Nor do
// larger ones: allowed to grow to 64 events where 16 took less, pruning
// ran twice as fast, and the p99 moved 1.48 × instead of 1.2 ×, pruning's
// share of the machine, not its batches' waits, being what intake feels
// then. So batches shrink from pruneMost but never grow past it. On
// PostgreSQL a batch locks only its own rows, and round trips cost more
// than rows: pruneBatchPG events. Each batch is followed by a pause of
// pruneRest times its duration, so pruning takes at most a fifth of the
// writer.
const (
	pruneHold = 3 * time.Millisecond
	// pruneMost is the size SQLite's batches start at and the largest
	// they grow back to.
	pruneMost    = 16
	pruneLeast   = 4
	pruneBatchPG = 128
	pruneRest    = 4
	// pruneMinRest lets other writes in between even when a batch was
	// quick.
	pruneMinRest = 5 * time.Millisecond
)

// nextBatch is the size of SQLite's next batch of pruning after one of
// size events took took: the size that would have taken pruneHold, moving
// at most twofold a batch, from pruneLeast (or most, if smaller) to most.
// The floor keeps a slow disk, or the race detector, from pruning one
// event per rest: each batch's statements cost as much as its rows.
func nextBatch(size, most int, took time.Duration) int {
	want := size * 2
	if took > 0 {
		want = int(int64(size) * int64(pruneHold) / int64(took))
	}
	return max(min(pruneLeast, most), min(want, size*2, most), size/2)
}

// ended are the statuses of events that are done with.
var ended = []string{"delivered", "dead", "unroutable", "duplicate", "ignored"}

// Prune implements mapper.Store: it deletes in batches of at most batch
// events, smaller as they need to be (see pruneHold), paced against the
// writer.
// On SQLite it then gives back to the file system the free pages beyond a
// tenth of the file, a few at a time (see reclaim).
func (s *Store) Prune(ctx context.Context, before time.Time, batch int) (int64, error) {
	most := pruneMost
	if s.pg {
		most = pruneBatchPG
	}
	if batch >= 1 {
		most = min(most, batch)
	}
	size := most
	cut := us(before)
	// from is where the last batch ended in the completion index. On
	// PostgreSQL a deleted row's index entry stays until a vacuum, so each
	// batch's search from the start of the index stepped over every entry
	// pruned so far: hundreds of thousands, a day into a week's history.
	var from int64
	var total int64
	for {
		var rows []struct {
			ID        string `bun:"id"`
			Items     string `bun:"items"`
			Completed int64  `bun:"completed_at"`
			Received  int64  `bun:"received_at"`
			Accounts  string `bun:"account_ids"`
		}
		var took time.Duration
		err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			// The writer's time, not the wait for it: on SQLite the batch
			// waits its turn in the committer.
			start := time.Now()
			defer func() { took = time.Since(start) }()
			rows = rows[:0]
			if err := tx.NewRaw(s.pruneSelectSQL(), from, cut, bun.In(ended), size).Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if len(rows) == 0 {
				return nil
			}
			ids := make([]string, len(rows))
			var keys []string
			var accounts [][]any // the event accounts' primary keys
			for i, r := range rows {
				ids[i] = r.ID
				var items []struct{ Key string }
				_ = json.Unmarshal([]byte(r.Items), &items)
				for _, it := range items {
					keys = append(keys, it.Key)
				}
				var accs []string
				_ = json.Unmarshal([]byte(r.Accounts), &accs)
				for _, a := range accs {
					accounts = append(accounts, []any{a, r.Received, r.ID})
				}
			}
			// Children first, so that no foreign-key setting is needed. A
			// key goes with the event that owns it: a duplicate's items
			// name keys that another event owns.
			deliveries := tx.NewSelect().Table("mapper_deliveries").Column("id").Where("event_id IN (?)", bun.In(ids))
			qs := []*bun.DeleteQuery{
				tx.NewDelete().Table("mapper_attempts").Where("delivery_id IN (?)", deliveries),
				tx.NewDelete().Table("mapper_deliveries").Where("event_id IN (?)", bun.In(ids)),
			}
			if len(accounts) > 0 {
				qs = append(qs, deleteEventAccounts(tx, accounts))
			}
			if len(keys) > 0 {
				qs = append(qs, tx.NewDelete().Table("mapper_dedup_keys").Where("dedup_key IN (?) AND event_id IN (?)", bun.In(keys), bun.In(ids)))
			}
			qs = append(qs, tx.NewDelete().Table("mapper_events").Where("id IN (?)", bun.In(ids)))
			for _, q := range qs {
				if _, err := q.Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, translate(err)
		}
		total += int64(len(rows))
		if len(rows) > 0 {
			from = rows[len(rows)-1].Completed
		}
		if len(rows) < size {
			break
		}
		if !s.pg {
			size = nextBatch(size, most, took)
		}
		if err := rest(ctx, took); err != nil {
			return total, err
		}
	}
	if !s.pg {
		return total, s.reclaim(ctx)
	}
	return total, nil
}

// pruneSelectSQL picks a batch of ended events completed before a time:
// the oldest end of the completion index. SQLite's planner, without
// statistics, took the status index and read every delivered event kept,
// newest first, for each batch: pruning a day of a week's history read
// the week thousands of times, holding the writer all along.
func (s *Store) pruneSelectSQL() string {
	return `SELECT id, items, completed_at, received_at, account_ids FROM mapper_events` + s.indexedBy("mapper_events_completed") + `
WHERE completed_at >= ? AND completed_at < ? AND status IN (?) ORDER BY completed_at LIMIT ?`
}

// deleteEventAccounts deletes event accounts by their primary keys
// (account, received_at, event): there is no index by event.
func deleteEventAccounts(db bun.IDB, keys [][]any) *bun.DeleteQuery {
	return db.NewDelete().Table("mapper_event_accounts").Where("(account_id, received_at, event_id) IN (VALUES ?)", bun.In(keys))
}

// rest pauses after a batch that took took, so that pruning leaves the
// writer to intake most of the time.
func rest(ctx context.Context, took time.Duration) error {
	t := time.NewTimer(max(pruneRest*took, pruneMinRest))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SQLite files made by this version are in incremental auto-vacuum mode
// (see OpenSQLite): pages freed by pruning stay in the file, for new rows
// to reuse, until reclaim gives them back. It keeps a tenth of the file
// free, what the next hours' writes would take again, and gives back the
// rest in steps of reclaimStep pages, paced like pruning. In a file made
// before (auto_vacuum none), free pages are reused but never given back;
// a VACUUM, with the server stopped, converts it.
const reclaimStep = 256

func (s *Store) reclaim(ctx context.Context) error {
	for {
		var mode, pages, free int64
		err := s.read.QueryRowContext(ctx, "SELECT * FROM pragma_auto_vacuum(), pragma_page_count(), pragma_freelist_count()").Scan(&mode, &pages, &free)
		if err != nil {
			return translate(err)
		}
		if mode != 2 || free <= pages/10 {
			return nil
		}
		step := min(free-pages/10, reclaimStep)
		var took time.Duration
		if err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			start := time.Now()
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", step))
			took = time.Since(start)
			return err
		}); err != nil {
			return translate(err)
		}
		if err := rest(ctx, took); err != nil {
			return err
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
