package bunstore

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Checkpoints. In WAL mode a commit appends the pages it changed to the
// WAL, and a checkpoint copies them back into the database file. SQLite's
// default is for the connection whose commit takes the WAL past 1,000
// pages to checkpoint there and then, before its commit returns: the
// copy, and the database file's fsync, fell to the committer, and every
// write queued behind that commit waited for them. Pruning, whose deletes
// are scattered over many pages, filled the WAL several times faster than
// intake and made it happen every few commits.
//
// A store that OpenSQLite opened checkpoints on a connection of its own
// instead, beside the writer (WAL lets the two run at once): after a
// commit, at most every checkpointEvery, PASSIVE (it waits for nobody).
// The writer keeps SQLite's own checkpoint for walBackstop pages, should
// this one fall behind.
const (
	checkpointEvery = 100 * time.Millisecond
	walBackstop     = 16384 // pages: 64 MiB of WAL
)

type checkpointer struct {
	db *sql.DB
	// ctx ends with close, which also interrupts a checkpoint under way.
	ctx  context.Context
	stop context.CancelFunc
	wake chan struct{}
	wg   sync.WaitGroup
}

func newCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, wake: make(chan struct{}, 1)}
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.wg.Go(c.loop)
	return c
}

// nudge says a commit happened. It never waits.
func (c *checkpointer) nudge() {
	if c == nil {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) loop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		// A failure (a full disk, an I/O error) leaves the pages in the
		// WAL, where they are safe, for the next try or the writer's
		// backstop; the writes, which meet the same cause, report it.
		_, _ = c.db.ExecContext(c.ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(checkpointEvery):
		}
	}
}

// close stops the loop and closes its connection.
func (c *checkpointer) close() error {
	if c == nil {
		return nil
	}
	c.stop()
	c.wg.Wait()
	return c.db.Close()
}
