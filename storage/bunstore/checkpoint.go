package bunstore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"os"
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
// instead, beside the writer (WAL lets the two run at once), PASSIVE (it
// waits for nobody): once a commit has put 1,000 pages in the WAL that
// are not copied back yet, SQLite's own threshold, or a second after a
// commit at the latest (defaultPacing). Each checkpoint costs two fsyncs and a
// copy of every page it finds, however often the commits since rewrote
// it, so at moderate rates one every 100 ms, as before, cost 4 to 5 % of
// the server's CPU (round eleven of docs/performance.md); pacing by the
// WAL's length keeps it as short as that when pruning or a burst fills
// it. The writer keeps SQLite's own checkpoint for walBackstop pages,
// should this one fall behind.
const walBackstop = 16384 // pages: 64 MiB of WAL

// pacing says when a checkpoint is due after a commit.
type pacing struct {
	frames  uint32        // pages in the WAL not yet copied back that make it due
	poll    time.Duration // how often the WAL's length is read meanwhile
	longest time.Duration // when it is due anyway
}

var defaultPacing = pacing{frames: 1000, poll: 100 * time.Millisecond, longest: time.Second}

type checkpointer struct {
	db *sql.DB
	// shm is the WAL index, whose header says how long the WAL is.
	shm  string
	pace pacing
	// ctx ends with close, which also interrupts a checkpoint under way.
	ctx  context.Context
	stop context.CancelFunc
	wake chan struct{}
	wg   sync.WaitGroup
}

func newCheckpointer(db *sql.DB, shm string, pace pacing) *checkpointer {
	c := &checkpointer{db: db, shm: shm, pace: pace, wake: make(chan struct{}, 1)}
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
		if !c.due() {
			return
		}
		// A failure (a full disk, an I/O error) leaves the pages in the
		// WAL, where they are safe, for the next try or the writer's
		// backstop; the writes, which meet the same cause, report it.
		// Commits made while it ran have nudged again.
		_, _ = c.db.ExecContext(c.ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// due waits, after a commit, until a checkpoint is due; false when the
// checkpointer closes first.
func (c *checkpointer) due() bool {
	deadline := time.Now().Add(c.pace.longest)
	tick := time.NewTicker(c.pace.poll)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return false
		case now := <-tick.C:
			if !now.Before(deadline) {
				return true
			}
			if n, ok := c.pending(); !ok || n >= c.pace.frames {
				return true
			}
		}
	}
}

// walIndexVersion is the first field of the WAL index's header in every
// SQLite since 3.7.0.
const walIndexVersion = 3007000

// pending reads how many pages the WAL holds that no checkpoint has copied
// back, from the WAL index's header (https://www.sqlite.org/walformat.html):
// mxFrame, the last frame committed, at offset 16, and nBackfill, the last
// frame copied back, at offset 96; both in the machine's byte order. It is
// read without SQLite's locks, so a commit may be under way: the count
// paces checkpoints and guards nothing. ok is false when the index cannot
// be read or is not in that format: the caller then checkpoints at each
// poll.
func (c *checkpointer) pending() (n uint32, ok bool) {
	// Opened at each poll, a few times a second at most while commits
	// wait, so that a file SQLite made anew is the one read.
	f, err := os.Open(c.shm)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var hdr [100]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil || binary.NativeEndian.Uint32(hdr[0:]) != walIndexVersion {
		return 0, false
	}
	last, copied := binary.NativeEndian.Uint32(hdr[16:]), binary.NativeEndian.Uint32(hdr[96:])
	if copied >= last { // copied back, or the WAL restarted between the two
		return 0, true
	}
	return last - copied, true
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
