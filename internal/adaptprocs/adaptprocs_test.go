package adaptprocs

import (
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStep: up takes upTicks ticks in a row at or over up, down takes
// downTicks in a row under down, and a tick on the other side of the
// threshold starts the count again.
func TestStep(t *testing.T) {
	repeat := func(cores float64, n int) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = cores
		}
		return s
	}
	cat := func(parts ...[]float64) []float64 {
		var s []float64
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	tests := []struct {
		name    string
		low     bool
		ticks   []float64
		changes []int // the ticks (0-based) at which step reports a change
		lowEnd  bool
	}{
		{"one busy tick stays low", true, []float64{1.5}, nil, true},
		{"two busy ticks go up", true, []float64{0.7, 0.9}, []int{1}, false},
		{"a dip between busy ticks stays low", true, []float64{0.9, 0.69, 0.9}, nil, true},
		{"busy after a dip goes up", true, []float64{0.9, 0.2, 0.9, 0.9}, []int{3}, false},
		{"idle stays low", true, repeat(0, 50), nil, true},
		{"high under down for downTicks goes low", false, repeat(0.49, downTicks), []int{downTicks - 1}, true},
		{"high one tick short stays high", false, repeat(0.1, downTicks-1), nil, false},
		{"high between down and up stays high", false, repeat(0.6, 100), nil, false},
		{"a busy tick restarts the count down", false, cat(repeat(0.1, downTicks-1), []float64{0.5}, repeat(0.1, downTicks-1)), nil, false},
		{"down then up again", false, cat(repeat(0, downTicks), []float64{2, 2}), []int{downTicks - 1, downTicks + 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &adapter{low: tt.low}
			var changes []int
			for i, c := range tt.ticks {
				if a.step(c) {
					changes = append(changes, i)
				}
			}
			if !slices.Equal(changes, tt.changes) || a.low != tt.lowEnd {
				t.Errorf("changes at ticks %v, low %v; want %v, low %v", changes, a.low, tt.changes, tt.lowEnd)
			}
		})
	}
}

// fakeCPU is a process that uses rate cores: its CPU time grows by rate
// times the wall time between calls, so that run sees that rate whatever
// the ticks' timing.
type fakeCPU struct {
	mu   sync.Mutex
	rate float64
	used time.Duration
	at   time.Time
}

func (f *fakeCPU) set(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = rate
}

func (f *fakeCPU) cpu() (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if !f.at.IsZero() {
		f.used += time.Duration(f.rate * float64(now.Sub(f.at)))
	}
	f.at = now
	return f.used, nil
}

// TestRunFollowsLoad runs the loop on the real runtime, with the CPU time
// made up: GOMAXPROCS starts at one, goes to the default under load,
// holds there at a middling load, comes back to one when idle, and is
// the default again once ctx ends.
func TestRunFollowsLoad(t *testing.T) {
	def := defaultProcs(t)
	f := &fakeCPU{}
	a := newAdapter()
	a.tick, a.cpu = 5*time.Millisecond, f.cpu
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()

	waitProcs(t, 1, "at start")
	f.set(1)
	waitProcs(t, def, "under a load of one core")
	f.set(0.6)
	holdProcs(t, def, 30*a.tick, "at 0.6 cores")
	f.set(0.1)
	waitProcs(t, 1, "idle")
	f.set(1)
	waitProcs(t, def, "loaded again")
	f.set(0)
	waitProcs(t, 1, "idle again")

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v, want context.Canceled", err)
	}
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("GOMAXPROCS %d after run, want the default %d", got, def)
	}
}

// TestRunWithoutCPUTime: where the process's CPU time cannot be read,
// GOMAXPROCS stays the default.
func TestRunWithoutCPUTime(t *testing.T) {
	def := defaultProcs(t)
	a := newAdapter()
	a.tick = time.Millisecond
	a.cpu = func() (time.Duration, error) { return 0, errors.ErrUnsupported }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	for ctx.Err() == nil {
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Fatalf("GOMAXPROCS %d, want the default %d", got, def)
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run returned %v, want context.DeadlineExceeded", err)
	}
}

// TestRunOneCPU: where the default is one thread there is nothing to
// adapt, and run neither reads the CPU time nor sets GOMAXPROCS.
func TestRunOneCPU(t *testing.T) {
	var calls atomic.Int32
	a := newAdapter()
	a.tick = time.Millisecond
	a.cpu = func() (time.Duration, error) { calls.Add(1); return 0, nil }
	a.setLow = func() { calls.Add(1) }
	a.setHigh = func() int { return 1 }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := a.run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run returned %v, want context.DeadlineExceeded", err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls to read the CPU time or set GOMAXPROCS, want none", n)
	}
}

// TestProcessCPU: the process's CPU time advances while a thread is
// busy, and not faster than the machine's cores can run (a clock in the
// wrong unit would).
func TestProcessCPU(t *testing.T) {
	before, err := processCPU()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no process CPU time here:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	const burn = 50 * time.Millisecond
	start := time.Now()
	// A loaded machine only makes the loop take longer; a clock that
	// does not advance never ends it.
	x := 1.0
	var used time.Duration
	for used < burn {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("CPU time advanced by %v in 10 s of a busy loop", used)
		}
		for range 10000 {
			x = math.Sqrt(x + 1)
		}
		now, err := processCPU()
		if err != nil {
			t.Fatal(err)
		}
		used = now - before
	}
	wall := time.Since(start)
	if limit := wall*time.Duration(runtime.NumCPU()) + 10*time.Millisecond; used > limit {
		t.Errorf("CPU time advanced by %v in %v of wall time on %d CPUs (x=%v)", used, wall, runtime.NumCPU(), x)
	}
}

func defaultProcs(t *testing.T) int {
	t.Helper()
	def := setDefault()
	if def < 2 {
		t.Skipf("the default GOMAXPROCS is %d: nothing to adapt", def)
	}
	t.Cleanup(func() { setDefault() })
	return def
}

func waitProcs(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOMAXPROCS %d, want %d", when, runtime.GOMAXPROCS(0), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func holdProcs(t *testing.T, want int, d time.Duration, when string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Fatalf("%s: GOMAXPROCS %d, want %d", when, got, want)
		}
	}
}
