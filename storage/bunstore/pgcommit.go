package bunstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/chatico/mapper"
)

// commitEventsPG writes a batch of events on PostgreSQL in three round
// trips, whatever the batch size, instead of five per event: the events
// whose ID already exists are found first (they are refused, and write
// nothing); then every event's keys are claimed in one pipelined batch;
// then the events, their accounts and the NOTIFY go in a second one, and
// the transaction commits. Nothing of the second batch can fail for one
// event alone (IDs were checked, accounts insert with ON CONFLICT DO
// NOTHING), so no savepoints are needed; a failure fails the whole batch,
// and every caller gets the error (its webhook gets 503, and Meta retries).
func (s *Store) commitEventsPG(ctx context.Context, evs []*mapper.Event, errs []error) error {
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
		tx, err := sc.Conn().Begin(ctx)
		if err != nil {
			return translate(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op

		ids := make([]string, 0, len(evs))
		for i, ev := range evs {
			if errs[i] == nil {
				ids = append(ids, ev.ID)
			}
		}
		rows, err := tx.Query(ctx, "SELECT id FROM mapper_events WHERE id = ANY($1)", ids)
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

		// Keys, in order: of two events of this batch with one key, the
		// first claims it and the second sees it taken.
		keys := &pgx.Batch{}
		for i, ev := range evs {
			if errs[i] != nil {
				continue
			}
			keys.Queue(`INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at)
SELECT k, $2, $3 FROM unnest($1::text[]) AS k ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key`,
				distinctKeys(ev), ev.ID, us(ev.ReceivedAt))
		}
		br := tx.SendBatch(ctx, keys)
		for i, ev := range evs {
			if errs[i] != nil {
				continue
			}
			rows, err := br.Query()
			if err != nil {
				br.Close()
				return translate(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				br.Close()
				return translate(err)
			}
			fresh := make(map[string]bool, len(got))
			for _, k := range got {
				fresh[k] = true
			}
			markDuplicates(ev, fresh)
		}
		if err := br.Close(); err != nil {
			return translate(err)
		}

		writes := &pgx.Batch{}
		notify := false
		for i, ev := range evs {
			if errs[i] != nil {
				continue
			}
			r := toEventRow(ev)
			writes.Queue(insertEventSQL.pg, r.ID, r.ReceivedAt, r.Object, r.Payload, r.Signature, r.Items, r.AccountIDs,
				r.Status, r.Owners, r.Unroutable, r.RouteAttempts, r.LastError, r.NextAttemptAt, r.RoutedAt, r.CompletedAt, r.LeaseToken, r.TraceContext)
			if len(ev.AccountIDs) > 0 {
				writes.Queue(`INSERT INTO mapper_event_accounts (account_id, received_at, event_id)
SELECT a, $2, $3 FROM unnest($1::text[]) AS a ON CONFLICT DO NOTHING`, ev.AccountIDs, r.ReceivedAt, ev.ID)
			}
			notify = notify || ev.Status == mapper.EventPending && ev.LeaseToken == ""
		}
		if notify {
			writes.Queue("SELECT pg_notify('mapper_work', '')")
		}
		if err := tx.SendBatch(ctx, writes).Close(); err != nil {
			return translate(err)
		}
		return translate(tx.Commit(ctx))
	})
}
