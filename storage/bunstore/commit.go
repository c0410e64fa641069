package bunstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

// Group commit. A webhook is answered only once its event is committed,
// and a commit costs an fsync (a few milliseconds on most disks), so one
// transaction per webhook caps intake at a few hundred per second. Instead,
// writes are handed to a committer, which runs every write waiting at that
// moment as one batch. Under load batches grow by themselves; alone, a
// write is committed at once, with no added wait. How a batch is written
// is the committer's run function:
//
//   - SQLite (commitShared): every write in one shared transaction, in
//     which one write's failure (a conflict, a lost lease) undoes only
//     that write. Its single writer serialises everything anyway, so
//     every write of the outbox goes through it.
//   - PostgreSQL (commitPG): events and routes. The events take one
//     statement per table and one round trip per batch (two when one of
//     its keys may be taken); a route writes a row leased to its caller,
//     so a batch locks nothing another write waits for, and the batch's
//     routes, one statement, ride along with the events' last round trip.
//     The rest of PostgreSQL's outbox writes lock rows others contend for
//     (settling an event, claims), and batching them could hold those
//     locks across unrelated work.

// maxBatch bounds one transaction.
const maxBatch = 256

// commitReq is one write: fn (SQLite), ev (PostgreSQL events) or route
// (PostgreSQL routes), as the committer's run function expects.
type commitReq struct {
	ctx context.Context
	fn  func(ctx context.Context, tx bun.Tx) error
	ev  *mapper.Event
	// payload is ev's as it is stored (see pack), made before the writer.
	payload stored
	route   *routeReq
	// deferrable says that nobody outside waits for the write: it records
	// what was done already (a route with its attempts, an attempt), so it
	// may wait for a write that someone does wait for (see gather).
	deferrable bool
	done       chan error
	at         time.Time // when it was handed over
}

type committer struct {
	// run writes a batch, setting errs[i] for each write that failed; it
	// skips those whose errs[i] is set already (their callers left).
	run     func(batch []commitReq, errs []error)
	reqs    chan commitReq
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	// linger, when set, lets a small batch wait for the writes that the
	// recent arrival rate says are coming (see gather).
	linger lingering
	last   time.Time
	gap    time.Duration // moving average of the time between writes
	busy   float64       // moving average of the share of time spent committing
	began  time.Time     // when the last commit began
}

// Lingering. A commit costs about the same whatever its size (on SQLite an
// fsync and a WAL frame for every page touched, which a batch's writes
// share; on PostgreSQL round trips and a WAL flush), so at a moderate
// rate, where each write arrives alone, one commit per write cost twice
// the CPU per webhook of a flat-out run (on PostgreSQL three times). When
// writes come between the committer's lingering.minGap and maxLingerGap
// apart (from 200 a second to 10,000), a batch smaller than its
// lingering.batch waits for the ones expected within its lingering.wait
// of its first write's arrival (a write that came while the last commit
// ran has waited for it already).
//
// At 500/s, waiting up to 10 ms instead of 5 took a webhook's CPU from
// 0.54 to 0.47 ms on SQLite, and from 0.80 to 0.69 ms with the database's
// on PostgreSQL: a commit costs about the same for a batch of five as for
// a batch of two (on SQLite a WAL frame, two writes, for every page the
// batch touched, and the tables' and indexes' rightmost pages are the
// same pages), and the answers came 3–4 ms later at the 99th percentile.
// Up to 15 ms, for up to 24 writes: on SQLite, where an fsync costs the
// CPU it does on a virtual disk (0.6 ms of the writer's, an eighth of the
// server's CPU at 500/s), that took another 8–13 % of a webhook's CPU at
// 500/s and 18 % at 200/s, for 5–6 ms more at the 99th percentile. With
// writes closer than half a millisecond, at 1,000 webhooks a second
// (2,000 writes, each webhook's event and then its route), SQLite had
// stopped lingering, and a webhook cost more CPU than at 500/s; lingering
// there took 30 % off. PostgreSQL kept 10 ms and half a millisecond while
// four writers committed at once (15 ms did not lower its CPU then, and
// its p99 grew: docs/performance.md, round eight); with one writer,
// SQLite's lingering took 7–10 % off a webhook's CPU with the database's
// at 500/s, 9 % at 200/s, 31–35 % at 1,000/s and 15 % at 2,000/s (round
// thirteen), the 99th percentile of the answers at 12–20 ms.
//
// An idle store (writes far apart) commits at once, and so does a busy
// one (writes closer than minGap, or the writer committing more than half
// the time): its batches grow by themselves, and there its callers, whose
// next writes the batch would wait for, wait on it; a flat-out run lost a
// third of its throughput to lingering.
const maxLingerGap = 5 * time.Millisecond

// lingering is how long a committer's small batches wait for more writes
// (at most wait from the first one's arrival), how small they must be to
// (smaller than batch), and how close the writes may come (minGap apart
// on average). The zero value never waits.
type lingering struct {
	wait   time.Duration
	batch  int
	minGap time.Duration
}

// on reports whether l ever waits.
func (l lingering) on() bool { return l.wait > 0 }

// storeLinger is how both stores' committers linger.
var storeLinger = lingering{wait: 15 * time.Millisecond, batch: 24, minGap: 100 * time.Microsecond}

// Deferring. Below a flat-out rate most commits carry one webhook's write
// or one route's, and a route (an event's deliveries, with the attempts
// already made) is written after the worker app has the webhook: nobody
// outside waits for it. So a batch of deferrable writes alone waits up
// to maxDefer from its first write's arrival for a write that is awaited
// (a webhook's; on SQLite's shared committer also a claim), or until it
// holds deferBatch writes, and shares its commit. At
// a moderate rate that halves the commits or better; the webhook's
// answer and its delivery wait no longer (but with mapper.WithSyncDelivery,
// whose answer waits for the route, up to maxDefer more on an idle
// store), the lease of a routed event is held a little longer, and a
// crash in that time redelivers those routes' webhooks (at least once, as
// before, in a window wider by as much). It is shorter than either
// store's lingering.wait: on an idle store with mapper.WithSyncDelivery,
// it is added to every answer.
const (
	maxDefer   = 5 * time.Millisecond
	deferBatch = 16
)

// newCommitter starts a writer committing batches with run, one at a
// time; linger lets small batches wait for more.
//
// One writer on PostgreSQL too. It had four, committing at once, and a
// loop gathering batches for them: flat out on loopback, a webhook cost
// 0.48 ms of CPU (server and database) with four, 0.41 with two and 0.32
// with one, for 25 % more webhooks a second, and answers came sooner
// (ack p99 35 ms against 46): one writer's batches are as large as what
// arrives while it commits, where four split it four ways and paid four
// times the statements, the round trips, the WAL flushes and the
// contention on the same index pages. Behind a millisecond's round trip
// (a proxy) it kept 93 % of four writers' flat-out rate for 27 % less
// CPU, and at 500/s used the least (0.74 ms against 0.80). A batch holds
// up to maxBatch writes, so even a slow commit does not bound intake
// below tens of thousands a second.
func newCommitter(linger lingering, run func(batch []commitReq, errs []error)) *committer {
	c := &committer{run: run, reqs: make(chan commitReq, maxBatch), stop: make(chan struct{}), linger: linger}
	c.wg.Go(c.loop)
	return c
}

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("bunstore: store closed")

// send hands req over and returns its outcome once its batch is written.
func (c *committer) send(req commitReq) error {
	ctx := req.ctx
	req.done = make(chan error, 1)
	if c.linger.on() || req.deferrable {
		req.at = time.Now()
	}
	select {
	case c.reqs <- req:
	case <-c.stop:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over, the outcome is awaited whatever ctx does: the
	// event may be committed, and the caller must know.
	return <-req.done
}

func (c *committer) close() {
	c.stopped.Do(func() { close(c.stop) })
	c.wg.Wait()
}

// loop gathers batches and commits each.
func (c *committer) loop() {
	batch := make([]commitReq, 0, maxBatch)
	for {
		select {
		case <-c.stop:
			c.drain()
			return
		case r := <-c.reqs:
			batch = append(batch[:0], r)
		}
		c.arrived()
		batch = c.gather(batch)
		start := time.Now()
		c.commit(batch)
		c.committed(start)
	}
}

// committed updates the writer's busy share with a commit that began at
// start and ended now.
func (c *committer) committed(start time.Time) {
	if !c.linger.on() {
		return
	}
	if !c.began.IsZero() {
		if period := time.Since(c.began); period > 0 {
			c.busy = (7*c.busy + time.Since(start).Seconds()/period.Seconds()) / 8
		}
	}
	c.began = start
}

// arrived updates the average time between writes with one that just
// came.
func (c *committer) arrived() {
	if !c.linger.on() {
		return
	}
	now := time.Now()
	if !c.last.IsZero() {
		c.gap = (7*c.gap + now.Sub(c.last)) / 8
	}
	c.last = now
}

// gather adds what is queued to batch and what may still come: lingering,
// what the arrival rate says comes within the committer's lingering.wait;
// deferring, a write someone waits for.
func (c *committer) gather(batch []commitReq) []commitReq {
	var timer *time.Timer
	var deadline time.Time
	for len(batch) < maxBatch {
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
			c.arrived()
			continue
		default:
		}
		until, ok := c.until(batch)
		if !ok || !until.After(time.Now()) {
			return batch
		}
		if !until.Equal(deadline) {
			deadline = until
			if timer == nil {
				timer = time.NewTimer(time.Until(until))
				defer timer.Stop()
			} else {
				timer.Reset(time.Until(until))
			}
		}
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
			c.arrived()
		case <-timer.C:
			return batch
		case <-c.stop:
			return batch
		}
	}
	return batch
}

// until says how long batch, with nothing more queued, waits for more
// writes (ok false: it is committed now).
func (c *committer) until(batch []commitReq) (time.Time, bool) {
	first := -1 // the first write someone waits for
	for i := range batch {
		if !batch[i].deferrable {
			first = i
			break
		}
	}
	if first < 0 {
		if len(batch) >= deferBatch {
			return time.Time{}, false
		}
		return batch[0].at.Add(maxDefer), true
	}
	if !c.lingers(len(batch)) {
		return time.Time{}, false
	}
	// The wait counts from the first awaited write's arrival: one that
	// came while the last commit ran has waited for it already.
	return batch[first].at.Add(min(c.linger.wait, c.gap*time.Duration(c.linger.batch-len(batch)))), true
}

// lingers reports whether a batch of n, with nothing more queued, waits
// for more writes.
func (c *committer) lingers(n int) bool {
	return c.linger.on() && n < c.linger.batch && c.gap >= c.linger.minGap && c.gap <= maxLingerGap && c.busy <= 0.5
}

// drain answers what is still queued after Close.
func (c *committer) drain() {
	for {
		select {
		case r := <-c.reqs:
			r.done <- errClosed
		default:
			return
		}
	}
}

func (c *committer) commit(batch []commitReq) {
	errs := make([]error, len(batch))
	live := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err // the caller gave up before the write began
		} else {
			live++
		}
	}
	if live > 0 {
		c.run(batch, errs)
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// commitShared runs a batch of writes in one transaction (SQLite). A
// write that fails must leave nothing behind, while the others' stand;
// a savepoint around each write does that, but each costs two statements
// and a copy of every page the write first touches (the statement
// journal): about 5 % of the server's CPU flat out, for failures that
// are rare (a lease lost, a conflict). So a batch is first run whole,
// without savepoints; when one of its writes fails, the transaction is
// rolled back, before any write after it ran, and the batch is run again
// with savepoints (the writes before it, run again on the same state,
// come to the same results). Once that happened, the next cautiousBatches
// batches go straight to savepoints, so that a spell of failures costs
// little more than it did.
func (s *Store) commitShared(batch []commitReq, errs []error) {
	s.prepare(context.Background())
	defer s.checkpoints.nudge()
	if s.cautious > 0 {
		s.cautious--
	} else if s.commitWhole(batch, errs) {
		return
	} else {
		s.cautious = cautiousBatches
	}
	s.commitSavepoints(batch, errs)
}

// cautiousBatches is how many batches go to savepoints after a write
// failed in a batch run whole.
const cautiousBatches = 64

// commitWhole runs batch in one transaction without savepoints. It
// reports false when a write failed with others in the batch: the
// transaction is rolled back and none of the batch is written.
func (s *Store) commitWhole(batch []commitReq, errs []error) bool {
	live := 0
	for i := range batch {
		if errs[i] == nil {
			live++
		}
	}
	failed := -1
	err := s.db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		ctx = withTxStmts(ctx, tx)
		for i, r := range batch {
			if errs[i] != nil {
				continue
			}
			if err := r.fn(ctx, tx); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	switch {
	case failed >= 0 && live > 1:
		return false
	case failed >= 0:
		errs[failed] = err // a write alone: its transaction was its savepoint
	case err != nil:
		failAll(errs, err)
	}
	return true
}

// commitSavepoints runs batch in one transaction, each write in a
// savepoint, so that one write's failure undoes only that write.
func (s *Store) commitSavepoints(batch []commitReq, errs []error) {
	// The transaction belongs to no single caller: one caller leaving
	// must not roll back the others' writes.
	err := s.db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		ctx = withTxStmts(ctx, tx)
		for i, r := range batch {
			if errs[i] != nil {
				continue
			}
			if _, err := s.exec(ctx, tx, savepointSQL); err != nil {
				return translate(err)
			}
			if err := r.fn(ctx, tx); err != nil {
				errs[i] = err
				if _, err := s.exec(ctx, tx, rollbackSavepointSQL); err != nil {
					return translate(err)
				}
			}
			if _, err := s.exec(ctx, tx, releaseSavepointSQL); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		failAll(errs, err)
	}
}

// failAll gives err to every write of a batch not failed already.
func failAll(errs []error, err error) {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
}
