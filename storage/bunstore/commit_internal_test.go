package bunstore

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestCommitterLingers: writes arriving a millisecond apart (a moderate
// rate, where each came alone) share commits; writes far apart are each
// committed at once, alone; a committer without linger never waits.
func TestCommitterLingers(t *testing.T) {
	t.Parallel()
	run := func(linger bool, gap time.Duration, n int) []int {
		var mu sync.Mutex
		var sizes []int
		c := newCommitter(1, linger, func(batch []commitReq, errs []error) {
			mu.Lock()
			sizes = append(sizes, len(batch))
			mu.Unlock()
		})
		defer c.close()
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if err := c.send(commitReq{ctx: context.Background()}); err != nil {
					t.Error(err)
				}
			})
			time.Sleep(gap)
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return sizes
	}
	most := func(sizes []int) int {
		m := 0
		for _, s := range sizes {
			m = max(m, s)
		}
		return m
	}
	if sizes := run(true, time.Millisecond, 60); most(sizes) < 2 {
		t.Errorf("writes a millisecond apart were each committed alone: %v", sizes)
	}
	if sizes := run(true, 20*time.Millisecond, 10); most(sizes) != 1 {
		t.Errorf("writes 20 ms apart were held for others: %v", sizes)
	}
	if sizes := run(false, time.Millisecond, 60); len(sizes) < 40 {
		t.Errorf("without linger, 60 writes a millisecond apart took only %d commits: %v", len(sizes), sizes)
	}
}

// TestCommitterLingerCountsFromArrival: a batch lingers for more writes
// until maxLinger after its first write arrived, not after the committer
// took it: a write that waited for the last commit has lingered already.
func TestCommitterLingerCountsFromArrival(t *testing.T) {
	t.Parallel()
	gather := func(first time.Time) int {
		c := &committer{reqs: make(chan commitReq, 1), stop: make(chan struct{}), linger: true, gap: time.Millisecond}
		later := time.AfterFunc(maxLinger/2, func() { c.reqs <- commitReq{at: time.Now()} })
		defer later.Stop()
		return len(c.gather([]commitReq{{at: first}}))
	}
	if n := gather(time.Now()); n != 2 {
		t.Errorf("a write just arrived was committed without the one %v later: a batch of %d", maxLinger/2, n)
	}
	if n := gather(time.Now().Add(-maxLinger)); n != 1 {
		t.Errorf("a write that had waited %v already lingered for more: a batch of %d", maxLinger, n)
	}
}
