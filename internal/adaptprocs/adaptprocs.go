// Package adaptprocs sets a process's GOMAXPROCS by its load: one thread
// while it uses little CPU, the runtime's default (the CPUs, or the
// container's CPU limit) once it uses most of one.
//
// At a moderate rate a server spends much of its CPU on waking
// goroutines: each request hands work from goroutine to goroutine, and
// with an idle core at hand the runtime wakes a thread for each, which
// then looks for more work to run, finds none and sleeps again. On two
// cores at 500 webhooks a second, one thread took 14–17 % off the CPU a
// webhook of the Mapper's reference server (docs/performance.md, rounds
// seventeen and eighteen) for the same answer times; but fixed at one,
// a server gets no more than one core when it needs more, which cost
// 18 % of the webhooks a second flat out there. Run switches between
// the two by the CPU the process used over the last hundredths of a second.
package adaptprocs

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// The thresholds, in cores the process used over a tick. One thread is
// left once two ticks in a row used up at least up of a core: with the
// thread near its limit, work queues behind it, so the ticks are short
// (a burst from idle queued behind one thread for 0.25 s with ticks of
// 100 ms, doubling its ack p99). The default comes back down to one only
// after downTicks ticks (2 s) in a row under down, well under up even
// with the cost of the extra threads counted (it is about a sixth of
// the CPU), so that a steady load does not flip it back and forth.
const (
	tick      = 25 * time.Millisecond
	up        = 0.7
	upTicks   = 2
	down      = 0.5
	downTicks = 80
)

// Option configures Run.
type Option func(*adapter)

// WithLogger logs each change of GOMAXPROCS, at debug level.
func WithLogger(l *slog.Logger) Option {
	return func(a *adapter) { a.log = l }
}

// adapter is Run's state: low while GOMAXPROCS is one, and how many
// ticks in a row have been past the threshold that would switch it.
type adapter struct {
	tick    time.Duration
	cpu     func() (time.Duration, error)
	setLow  func()
	setHigh func() int
	log     *slog.Logger
	low     bool
	past    int
}

// Run adapts GOMAXPROCS until ctx ends, then gives it back to the
// runtime's default; it returns ctx's error. Where the default is one
// thread already, it only waits for ctx. The process must not set
// GOMAXPROCS itself meanwhile; one that wants it fixed should not call
// Run.
func Run(ctx context.Context, opts ...Option) error {
	return newAdapter(opts...).run(ctx)
}

func newAdapter(opts ...Option) *adapter {
	a := &adapter{
		tick:    tick,
		cpu:     processCPU,
		setLow:  func() { runtime.GOMAXPROCS(1) },
		setHigh: setDefault,
		log:     slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// setDefault gives GOMAXPROCS back to the runtime, which then follows
// the container's CPU limit again, and returns its value.
func setDefault() int {
	runtime.SetDefaultGOMAXPROCS()
	return runtime.GOMAXPROCS(0)
}

func (a *adapter) run(ctx context.Context) error {
	if a.setHigh() < 2 {
		<-ctx.Done()
		return ctx.Err()
	}
	defer a.setHigh()
	last, err := a.cpu()
	if err != nil {
		// Without the process's CPU time there is nothing to go by: the
		// runtime's default stands.
		a.log.Warn("gomaxprocs not adapted", slog.String("error", err.Error()))
		<-ctx.Done()
		return ctx.Err()
	}
	// It starts low: a server starts idle, and a busy one comes up within
	// two ticks.
	a.setLow()
	a.low = true
	t := time.NewTicker(a.tick)
	defer t.Stop()
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := time.Now()
		used, err := a.cpu()
		if err != nil {
			continue
		}
		cores := (used - last).Seconds() / now.Sub(lastAt).Seconds()
		last, lastAt = used, now
		if !a.step(cores) {
			continue
		}
		procs := 1
		if a.low {
			a.setLow()
		} else {
			procs = a.setHigh()
		}
		a.log.Debug("gomaxprocs", slog.Int("procs", procs), slog.String("cores_used", fmt.Sprintf("%.2f", cores)))
	}
}

// step takes the cores the process used over a tick and reports whether
// GOMAXPROCS is to change (a.low says to what).
func (a *adapter) step(cores float64) bool {
	need, n := cores < down, downTicks
	if a.low {
		need, n = cores >= up, upTicks
	}
	if !need {
		a.past = 0
		return false
	}
	a.past++
	if a.past < n {
		return false
	}
	a.past = 0
	a.low = !a.low
	return true
}
