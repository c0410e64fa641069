package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

// TestCommitterLingers: writes arriving a millisecond apart (a moderate
// rate, where each came alone) share commits; writes far apart are each
// committed at once, alone; a committer without linger never waits.
func TestCommitterLingers(t *testing.T) {
	t.Parallel()
	write := commitReq{ctx: context.Background()}
	if sizes := batchSizes(t, storeLinger, write, time.Millisecond, 60); slices.Max(sizes) < 2 {
		t.Errorf("writes a millisecond apart were each committed alone: %v", sizes)
	}
	// A fifth of a millisecond apart is 2,500 webhooks a second (each
	// webhook's event, then its route); at 1,000, commits alone cost a
	// third more CPU a webhook than shared.
	if sizes := batchSizes(t, storeLinger, write, 200*time.Microsecond, 100); len(sizes) > 50 {
		t.Errorf("100 writes a fifth of a millisecond apart took %d commits: %v", len(sizes), sizes)
	}
	if sizes := batchSizes(t, storeLinger, write, 20*time.Millisecond, 10); slices.Max(sizes) != 1 {
		t.Errorf("writes 20 ms apart were held for others: %v", sizes)
	}
	if sizes := batchSizes(t, lingering{}, write, time.Millisecond, 60); len(sizes) < 40 {
		t.Errorf("without linger, 60 writes a millisecond apart took only %d commits: %v", len(sizes), sizes)
	}
}

// batchSizes sends n copies of write, gap apart and each from a goroutine
// of its own, to a committer that writes nothing, and returns the sizes
// of the batches it committed.
func batchSizes(t *testing.T, linger lingering, write commitReq, gap time.Duration, n int) []int {
	t.Helper()
	var mu sync.Mutex
	var sizes []int
	c := newCommitter(linger, func(batch []commitReq, errs []error) {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
	})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := c.send(write); err != nil {
				t.Error(err)
			}
		})
		pause(gap)
	}
	wg.Wait()
	c.close()
	return sizes // every worker stopped with close
}

// pause waits d. time.Sleep takes about a millisecond at least, so a
// shorter pause spins.
func pause(d time.Duration) {
	if d >= time.Millisecond {
		time.Sleep(d)
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// TestCommitterLingerCountsFromArrival: a batch lingers for more writes
// until its lingering.wait after its first write arrived, not after the
// committer took it: a write that waited for the last commit has lingered
// already.
func TestCommitterLingerCountsFromArrival(t *testing.T) {
	t.Parallel()
	gather := func(first time.Time) int {
		c := &committer{reqs: make(chan commitReq, 1), stop: make(chan struct{}), linger: storeLinger, gap: time.Millisecond}
		later := time.AfterFunc(storeLinger.wait/2, func() { c.reqs <- commitReq{at: time.Now()} })
		defer later.Stop()
		return len(c.gather([]commitReq{{at: first}}))
	}
	if n := gather(time.Now()); n != 2 {
		t.Errorf("a write just arrived was committed without the one %v later: a batch of %d", storeLinger.wait/2, n)
	}
	if n := gather(time.Now().Add(-storeLinger.wait)); n != 1 {
		t.Errorf("a write that had waited %v already lingered for more: a batch of %d", storeLinger.wait, n)
	}
}

// TestCommitterDefers: a batch of deferrable writes (routes) alone waits
// up to maxDefer after its first arrived for a write that someone waits
// for, and shares its commit; a batch with an awaited write is committed
// at once when the store is not lingering.
func TestCommitterDefers(t *testing.T) {
	t.Parallel()
	gather := func(first commitReq, next commitReq) int {
		c := &committer{reqs: make(chan commitReq, 1), stop: make(chan struct{}), linger: storeLinger}
		later := time.AfterFunc(maxDefer/2, func() { next.at = time.Now(); c.reqs <- next })
		defer later.Stop()
		return len(c.gather([]commitReq{first}))
	}
	route := commitReq{deferrable: true, at: time.Now()}
	if n := gather(route, commitReq{}); n != 2 {
		t.Errorf("a route was committed without the webhook %v later: a batch of %d", maxDefer/2, n)
	}
	if n := gather(commitReq{deferrable: true, at: time.Now().Add(-maxDefer)}, commitReq{}); n != 1 {
		t.Errorf("a route that had waited %v already waited for more: a batch of %d", maxDefer, n)
	}
	if n := gather(commitReq{at: time.Now()}, commitReq{}); n != 1 {
		t.Errorf("a webhook's write, not lingering, waited for another: a batch of %d", n)
	}
	if n := gather(commitReq{at: time.Now()}, route); n != 1 {
		t.Errorf("a webhook's write waited for a route: a batch of %d", n)
	}
	full := make([]commitReq, deferBatch)
	for i := range full {
		full[i] = commitReq{deferrable: true, at: time.Now()}
	}
	c := &committer{reqs: make(chan commitReq, 1), stop: make(chan struct{}), linger: storeLinger}
	later := time.AfterFunc(maxDefer/2, func() { c.reqs <- commitReq{at: time.Now()} })
	defer later.Stop()
	if n := len(c.gather(full)); n != deferBatch {
		t.Errorf("%d routes waited for more: a batch of %d", deferBatch, n)
	}
}

// TestSharedCommitUndoesOnlyTheFailedWrite: in a batch of SQLite writes,
// one that fails after it wrote (here a constraint its second statement
// breaks) leaves nothing, and the others are committed: run whole, the
// batch is rolled back and run again with savepoints, and the batches
// after it go straight to savepoints; a write failing alone needs
// neither.
func TestSharedCommitUndoesOnlyTheFailedWrite(t *testing.T) {
	t.Parallel()
	s := migrated(t, dialects["sqlite"]) // nothing else writes to it
	ctx := context.Background()
	insert := func(tx bun.Tx, key string) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO mapper_dedup_keys (dedup_key, event_id, created_at) VALUES (?, 'e', 0)", key)
		return err
	}
	var runs map[string]int
	write := func(key string, fail bool) commitReq {
		return commitReq{ctx: ctx, fn: func(ctx context.Context, tx bun.Tx) error {
			runs[key]++
			if err := insert(tx, key); err != nil || !fail {
				return err
			}
			return insert(tx, key) // the same key again: a failure after a write
		}}
	}
	keys := func() []string {
		var got []string
		if err := s.db.NewRaw("SELECT dedup_key FROM mapper_dedup_keys ORDER BY dedup_key").Scan(ctx, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	commit := func(batch ...commitReq) []error {
		runs = map[string]int{}
		errs := make([]error, len(batch))
		s.commitShared(batch, errs)
		return errs
	}

	errs := commit(write("a", false), write("b", true), write("c", false))
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if got := keys(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("keys %v, want [a c]", got)
	}
	if runs["a"] != 2 || runs["c"] != 1 || s.cautious != cautiousBatches {
		t.Errorf("runs %v, cautious %d: the batch was not run whole first", runs, s.cautious)
	}

	errs = commit(write("d", true), write("e", false))
	if errs[0] == nil || errs[1] != nil || !slices.Equal(keys(), []string{"a", "c", "e"}) || runs["e"] != 1 {
		t.Errorf("after a failure: errors %v, keys %v, runs %v", errs, keys(), runs)
	}
	if s.cautious != cautiousBatches-1 {
		t.Errorf("cautious %d after a batch with savepoints", s.cautious)
	}

	s.cautious = 0
	errs = commit(write("f", true))
	if errs[0] == nil || runs["f"] != 1 || s.cautious != 0 || slices.Contains(keys(), "f") {
		t.Errorf("a write failing alone: error %v, runs %v, cautious %d, keys %v", errs[0], runs, s.cautious, keys())
	}
	errs = commit(write("g", false), write("h", false))
	if errs[0] != nil || errs[1] != nil || runs["g"] != 1 || !slices.Equal(keys(), []string{"a", "c", "e", "g", "h"}) {
		t.Errorf("a batch without failure: errors %v, runs %v, keys %v", errs, runs, keys())
	}
}

// TestSharedCommitMakesStatementsOnce: the writes of one of SQLite's
// transactions share one statement per hot statement, made for that
// transaction, and a batch run again with savepoints makes them anew for
// its own.
func TestSharedCommitMakesStatementsOnce(t *testing.T) {
	t.Parallel()
	s := migrated(t, dialects["sqlite"])
	ctx := context.Background()
	s.prepare(ctx)
	if s.hot.stmts.Load() == nil {
		t.Fatal("the hot statements were not prepared")
	}
	type use struct {
		tx *sql.Tx
		st *sql.Stmt
	}
	var uses []use
	write := func(key string, fail bool) commitReq {
		return commitReq{ctx: ctx, fn: func(ctx context.Context, tx bun.Tx) error {
			uses = append(uses, use{tx.Tx, s.stmt(ctx, tx, claimKeySQL)})
			if _, err := s.exec(ctx, tx, claimKeySQL, key, "e", 0); err != nil || !fail {
				return err
			}
			return errors.New("refused")
		}}
	}
	errs := make([]error, 3)
	s.commitShared([]commitReq{write("a", false), write("b", true), write("c", false)}, errs)
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	// Run whole: a and b (which fails); again with savepoints: a, b, c.
	if len(uses) != 5 {
		t.Fatalf("%d writes run, want 5", len(uses))
	}
	whole, saved := uses[:2], uses[2:]
	for _, run := range [][]use{whole, saved} {
		for _, u := range run {
			if u.st == nil || u.tx != run[0].tx || u.st != run[0].st {
				t.Fatalf("one transaction's writes did not share its statement: %+v", run)
			}
		}
	}
	if whole[0].tx == saved[0].tx || whole[0].st == saved[0].st {
		t.Errorf("the savepoints' run used the whole run's transaction or statement")
	}
	var got []string
	if err := s.db.NewRaw("SELECT dedup_key FROM mapper_dedup_keys ORDER BY dedup_key").Scan(ctx, &got); err != nil || !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("keys %v (%v), want [a c]", got, err)
	}
}
