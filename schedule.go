package mapper

import (
	"container/heap"
	"sync"
	"time"
)

// schedule holds the future times at which work this Mapper knows of falls
// due (retries, parked events, circuits to probe), so that the loop wakes
// for each rather than at the next poll. It keeps at most maxDue times,
// dropping the farthest: the poll still finds what it forgets.
type schedule struct {
	mu sync.Mutex
	h  dueHeap
}

const maxDue = 4096

type dueHeap []int64

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// add records t and reports whether it is now the earliest.
func (s *schedule) add(t time.Time) bool {
	n := t.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.h) >= maxDue {
		// Full: keep the nearest times. Finding the farthest is linear,
		// which is fine for a rare overflow.
		far := 0
		for i := range s.h {
			if s.h[i] > s.h[far] {
				far = i
			}
		}
		if n >= s.h[far] {
			return false
		}
		heap.Remove(&s.h, far)
	}
	heap.Push(&s.h, n)
	return s.h[0] == n
}

// next drops the times that have come and returns the nearest one left,
// or false.
func (s *schedule) next(now time.Time) (time.Time, bool) {
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 && s.h[0] <= n {
		heap.Pop(&s.h)
	}
	if len(s.h) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, s.h[0]), true
}
