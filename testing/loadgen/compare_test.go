package main

import (
	"math"
	"testing"
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
