package bunstore

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPipelinedTx: a transaction whose BEGIN and COMMIT ride in its
// batches commits what its batches wrote, and a statement that fails in
// the last batch, COMMIT's own, leaves nothing written and the connection
// out of the transaction, ready for the next.
func TestPipelinedTx(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	err := s.pgxConn(ctx, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "CREATE TEMPORARY TABLE pipelined (v int PRIMARY KEY)"); err != nil {
			return err
		}
		insert := func(vs ...int) *pgx.Batch {
			b := &pgx.Batch{}
			for _, v := range vs {
				b.Queue("INSERT INTO pipelined VALUES ($1)", v)
			}
			return b
		}
		execAll := func(n int) func(pgx.BatchResults) error {
			return func(br pgx.BatchResults) error {
				for range n {
					if _, err := br.Exec(); err != nil {
						return err
					}
				}
				return nil
			}
		}
		// Two batches, the second committing.
		tx := &pipelinedTx{c: c}
		if err := tx.run(ctx, insert(1, 2), false, execAll(2)); err != nil {
			return err
		}
		if err := tx.run(ctx, insert(3), true, execAll(1)); err != nil {
			return err
		}
		tx.rollback(ctx) // after the commit: nothing to do
		// A failure in the committing batch: 4 is not kept.
		tx = &pipelinedTx{c: c}
		err := tx.run(ctx, insert(4, 1), true, execAll(2))
		tx.rollback(ctx)
		if err == nil {
			t.Error("a batch inserting a taken key committed")
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("after the failed batch and its rollback the connection is in state %q, not idle", st)
		}
		// A failure in an earlier batch: its BEGIN was sent; 5 is not kept.
		tx = &pipelinedTx{c: c}
		if err := tx.run(ctx, insert(5), false, execAll(1)); err != nil {
			return err
		}
		err = tx.run(ctx, insert(2), true, execAll(1))
		tx.rollback(ctx)
		if err == nil {
			t.Error("a batch inserting a taken key committed")
		}
		rows, err := c.Query(ctx, "SELECT v FROM pipelined ORDER BY v")
		if err != nil {
			return err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		if !slices.Equal(got, []int{1, 2, 3}) {
			t.Errorf("rows %v, want [1 2 3]", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
