package main

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestSpread: a change's ratio is the geometric mean of its pairs' (so a
// pair twice as fast and one half as fast cancel out), with their range;
// a pair whose run measured nothing (no webhook acknowledged) is left out
// rather than counted as infinitely better or worse.
func TestSpread(t *testing.T) {
	pair := func(before, after float64) ComparePair {
		return ComparePair{Before: Result{PerSecond: before}, After: Result{PerSecond: after}}
	}
	perSecond := func(r Result) float64 { return r.PerSecond }
	for _, c := range []struct {
		name  string
		pairs []ComparePair
		want  Spread
	}{
		{"cancel out", []ComparePair{pair(100, 200), pair(200, 100)}, Spread{Mean: 1, Min: 0.5, Max: 2}},
		{"all better", []ComparePair{pair(100, 110), pair(100, 121)}, Spread{Mean: math.Sqrt(1.1 * 1.21), Min: 1.1, Max: 1.21}},
		{"one empty run", []ComparePair{pair(0, 100), pair(100, 90)}, Spread{Mean: 0.9, Min: 0.9, Max: 0.9}},
		{"nothing measured", []ComparePair{pair(0, 0)}, Spread{}},
	} {
		got := spread(c.pairs, perSecond)
		if math.Abs(got.Mean-c.want.Mean) > 1e-9 || got.Min != c.want.Min || got.Max != c.want.Max {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestDriveEachSlices: driven in slices, each server gets the webhooks
// due in its turns, the first server first, and its own result.
func TestDriveEachSlices(t *testing.T) {
	var mu sync.Mutex
	got := [2]int{}
	var order []int // the server of each webhook, as they came
	var urls []string
	for i := range 2 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			mu.Lock()
			got[i]++
			order = append(order, i)
			mu.Unlock()
		}))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	res := driveEach(options{duration: 600 * time.Millisecond, conns: 4, rate: 100}, urls, 100*time.Millisecond, nil)
	for i, r := range res {
		if r.Requests == 0 || int(r.Requests) != got[i] || r.PerSecond <= 0 {
			t.Errorf("server %d: result of %d requests at %.0f/s, and it got %d", i, r.Requests, r.PerSecond, got[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Six turns of 100 ms: the servers take turns, in runs of webhooks (a
	// request due at a turn's end may still reach its server in the next).
	turns := 0
	for i := range order {
		if i == 0 || order[i] != order[i-1] {
			turns++
		}
	}
	if len(order) == 0 || order[0] != 0 || turns < 4 {
		t.Errorf("webhooks came to servers %v: want the first server's turn first, and at least four turns", order)
	}
}
