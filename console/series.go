package console

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatico/mapper"
)

// sampleEvery is how often Run samples the metrics for the charts; an hour
// of samples is kept.
const (
	sampleEvery = 15 * time.Second
	window      = time.Hour
)

// sample is one reading of the admin API's metrics.
type sample struct {
	at        time.Time
	webhooks  int64 // webhooks stored (accepted or duplicate), in-process total
	delivered int64 // attempts that delivered, in-process total
	queue     int64
	dead      int64
}

// series keeps the last hour of samples.
type series struct {
	mu      sync.Mutex
	samples []sample
}

func (s *series) add(x sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.samples); n > 0 && x.at.Sub(s.samples[n-1].at) < sampleEvery/3 {
		return // a page load just after a sample adds nothing
	}
	cut := 0
	for cut < len(s.samples) && x.at.Sub(s.samples[cut].at) > window {
		cut++
	}
	s.samples = append(s.samples[cut:], x)
}

func (s *series) snapshot() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// Run samples the metrics every 15 seconds until ctx ends, so that the
// overview's charts cover up to the last hour, while the console is in use:
// from an operator's first page until an hour after their last, so that a
// console nobody opens costs the store nothing, not even the few index
// reads a sample takes. Without Run the charts hold only the samples that loading the
// overview takes. When ctx ends, the live tails still open end too, so
// that a server's graceful shutdown does not wait for them. It returns
// ctx's error.
func (c *Console) Run(ctx context.Context) error {
	defer c.stopOnce.Do(func() { close(c.stopping) })
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		if c.inUse() {
			if _, err := c.sample(ctx); err != nil && ctx.Err() == nil {
				c.logger.Warn("console: sampling the metrics", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// used notes that an operator is using the console.
func (c *Console) used() { c.lastUse.Store(c.now().UnixNano()) }

// inUse reports whether an operator used the console within the charts'
// window.
func (c *Console) inUse() bool {
	last := c.lastUse.Load()
	return last != 0 && c.now().Sub(time.Unix(0, last)) < window
}

// sample reads the metrics and records them.
func (c *Console) sample(ctx context.Context) (*metrics, error) {
	var m metrics
	if err := c.call(ctx, "GET", "/monitoring/metrics", nil, nil, &m); err != nil {
		return nil, err
	}
	c.series.add(sample{at: c.now(), webhooks: m.Counters.Webhooks["accepted"] + m.Counters.Webhooks["duplicate"],
		delivered: m.Counters.Attempts["delivered"], queue: m.Store.QueueDepth, dead: m.Store.DeliveriesByStatus[mapper.DeliveryDead]})
	return &m, nil
}

// chart is one small time series drawn as an SVG polyline over the last
// hour: 0 ≤ x ≤ chartW (now at the right), 0 ≤ y ≤ chartH.
type chart struct {
	Title  string
	Points string // the polyline's points attribute
	Latest string
	Max    string
	Empty  bool
}

const (
	chartW = 300
	chartH = 60
)

// charts draws webhooks/s, deliveries/s and the queue depth from samples.
func charts(samples []sample, now time.Time) []chart {
	type point struct {
		at time.Time
		v  float64
	}
	var webhooks, delivered, queue []point
	for i, s := range samples {
		queue = append(queue, point{s.at, float64(s.queue)})
		if i == 0 {
			continue
		}
		p := samples[i-1]
		secs := s.at.Sub(p.at).Seconds()
		if secs <= 0 {
			continue
		}
		// A counter that went down belongs to a restarted process: the
		// interval is unknown, not negative.
		webhooks = append(webhooks, point{s.at, max(0, float64(s.webhooks-p.webhooks)/secs)})
		delivered = append(delivered, point{s.at, max(0, float64(s.delivered-p.delivered)/secs)})
	}
	draw := func(title string, pts []point, unit string) chart {
		ch := chart{Title: title, Empty: len(pts) < 2}
		if len(pts) == 0 {
			return ch
		}
		top := 0.0
		for _, p := range pts {
			top = max(top, p.v)
		}
		scale := top
		if scale == 0 {
			scale = 1
		}
		var b strings.Builder
		for _, p := range pts {
			x := chartW * (1 - now.Sub(p.at).Seconds()/window.Seconds())
			y := chartH - chartH*p.v/scale
			fmt.Fprintf(&b, "%.1f,%.1f ", max(0, x), y)
		}
		ch.Points = strings.TrimSpace(b.String())
		ch.Latest, ch.Max = number(pts[len(pts)-1].v)+unit, number(top)+unit
		return ch
	}
	return []chart{draw("Webhooks stored", webhooks, "/s"), draw("Deliveries", delivered, "/s"), draw("Queue depth", queue, "")}
}

// number writes a figure with the precision it deserves.
func number(v float64) string {
	switch {
	case v == float64(int64(v)):
		return strconv.FormatInt(int64(v), 10)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}
