package bunstore

import (
	"context"
	"errors"
	"sync"

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
//   - SQLite (commitShared): every write, each in a savepoint of one
//     shared transaction, so that one write's failure (a conflict, a lost
//     lease) undoes only that write. Its single writer serialises
//     everything anyway, so every write of the outbox goes through it.
//   - PostgreSQL events (commitEvents, several committers at once):
//     pipelined, a few round trips per batch (commitEventsPG).
//   - PostgreSQL routes (RouteEvent; commitRoutesPG, a committer of their own):
//     each one statement on a row leased to its caller, so a batch locks
//     nothing another write waits for, and many commits become one. The
//     rest of PostgreSQL's outbox writes lock rows others contend for
//     (settling an event, claims), and batching them could hold those
//     locks across unrelated work.

// maxBatch bounds one transaction.
const maxBatch = 256

// commitReq is one write: fn (SQLite), ev (PostgreSQL events) or route
// (PostgreSQL routes), as the committer's run function expects.
type commitReq struct {
	ctx   context.Context
	fn    func(ctx context.Context, tx bun.Tx) error
	ev    *mapper.Event
	route *routeReq
	done  chan error
}

type committer struct {
	// run writes a batch, setting errs[i] for each write that failed; it
	// skips those whose errs[i] is set already (their callers left).
	run     func(batch []commitReq, errs []error)
	reqs    chan commitReq
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

func newCommitter(workers int, run func(batch []commitReq, errs []error)) *committer {
	c := &committer{run: run, reqs: make(chan commitReq, maxBatch), stop: make(chan struct{})}
	for range workers {
		c.wg.Go(c.loop)
	}
	return c
}

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("bunstore: store closed")

// send hands req over and returns its outcome once its batch is written.
func (c *committer) send(req commitReq) error {
	ctx := req.ctx
	req.done = make(chan error, 1)
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
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		c.commit(batch)
	}
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

// commitShared runs a batch of writes in one transaction, each in a
// savepoint (SQLite).
func (s *Store) commitShared(batch []commitReq, errs []error) {
	s.prepare(context.Background())
	// The transaction belongs to no single caller: one caller leaving
	// must not roll back the others' writes.
	err := s.db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
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
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
}

// commitEvents writes a batch of events on PostgreSQL: a failure of the
// batch fails every event but those refused on their own (a conflict).
func (s *Store) commitEvents(batch []commitReq, errs []error) {
	evs := make([]*mapper.Event, len(batch))
	for i, r := range batch {
		evs[i] = r.ev
	}
	if err := s.commitEventsPG(context.Background(), evs, errs); err != nil {
		for i := range errs {
			if errs[i] == nil || !errors.Is(errs[i], mapper.ErrConflict) {
				errs[i] = err
			}
		}
	}
}
