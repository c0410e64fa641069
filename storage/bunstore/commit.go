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
// moment in one transaction, each inside a savepoint, so that one write's
// failure (a conflict, a lost lease) undoes only that write. Under load
// batches grow by themselves; alone, a write is committed at once, with no
// added wait.
//
// On PostgreSQL event inserts go through it (several committers run at
// once), and so do RecordRoute's writes, through a committer of their own:
// each is one statement on a row leased to its caller, so a batch locks
// nothing another write waits for, and many commits become one. The rest
// of the outbox's writes lock rows others contend for (settling an event,
// claims), and batching them could hold those locks across unrelated work. On SQLite, whose single writer
// serialises everything anyway, every write of the outbox goes through it.

// maxBatch bounds one transaction.
const maxBatch = 256

type commitReq struct {
	ctx   context.Context
	ev    *mapper.Event // an event insert (PostgreSQL pipelines these)
	route *routeReq     // a RecordRoute (PostgreSQL pipelines these too)
	fn    func(ctx context.Context, tx bun.Tx) error
	pend  bool // an event insert that makes new work: NOTIFY
	done  chan error
}

type committer struct {
	s       *Store
	reqs    chan commitReq
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

func newCommitter(s *Store, workers int) *committer {
	c := &committer{s: s, reqs: make(chan commitReq, maxBatch), stop: make(chan struct{})}
	for range workers {
		c.wg.Go(c.loop)
	}
	return c
}

// errClosed is returned for events submitted after Close.
var errClosed = errors.New("bunstore: store closed")

func (c *committer) submitEvent(ctx context.Context, ev *mapper.Event) error {
	// Other replicas need waking only for work they may claim: an event
	// stored leased (handed to this process's loop) is not.
	return c.send(commitReq{ctx: ctx, ev: ev, fn: func(ctx context.Context, tx bun.Tx) error { return c.s.createEvent(ctx, tx, ev) },
		pend: ev.Status == mapper.EventPending && ev.LeaseToken == ""})
}

// submit runs fn in a shared transaction and returns its outcome once the
// transaction is committed (or fn's own error, its writes undone).
func (c *committer) submit(ctx context.Context, fn func(context.Context, bun.Tx) error, pend bool) error {
	return c.send(commitReq{ctx: ctx, fn: fn, pend: pend})
}

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
	if live > 0 && c.s.pg && batch[0].route != nil {
		// The routes committer's batches hold only routes.
		c.s.commitRoutesPG(batch, errs)
	} else if live > 0 && c.s.pg {
		// The events committer on PostgreSQL: pipelined.
		evs := make([]*mapper.Event, len(batch))
		for i, r := range batch {
			evs[i] = r.ev
		}
		if err := c.s.commitEventsPG(context.Background(), evs, errs); err != nil {
			for i := range errs {
				if errs[i] == nil || !errors.Is(errs[i], mapper.ErrConflict) {
					errs[i] = err
				}
			}
		}
	} else if live > 0 {
		c.s.prepare(context.Background())
		// The transaction belongs to no single caller: one caller leaving
		// must not roll back the others' events.
		err := c.s.db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
			notify := false
			for i, r := range batch {
				if errs[i] != nil {
					continue
				}
				if _, err := c.s.exec(ctx, tx, savepointSQL); err != nil {
					return translate(err)
				}
				if err := r.fn(ctx, tx); err != nil {
					errs[i] = err
					if _, err := c.s.exec(ctx, tx, rollbackSavepointSQL); err != nil {
						return translate(err)
					}
					if _, err := c.s.exec(ctx, tx, releaseSavepointSQL); err != nil {
						return translate(err)
					}
					continue
				}
				if _, err := c.s.exec(ctx, tx, releaseSavepointSQL); err != nil {
					return translate(err)
				}
				notify = notify || r.pend
			}
			if c.s.pg && notify {
				// Delivered to listeners when the transaction commits.
				if _, err := tx.ExecContext(ctx, "SELECT pg_notify('mapper_work', '')"); err != nil {
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
	for i, r := range batch {
		r.done <- errs[i]
	}
}
