package mapper

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/internal/ids"
	"github.com/chatico/mapper/internal/payload"
)

// attempt makes one delivery attempt for a leased delivery, whose app slot
// the caller holds, and records it.
func (m *Mapper) attempt(ctx context.Context, d *Delivery) {
	t := m.try(ctx, d)
	defer t.span.End()
	if t.cut {
		// The delivery goes back due now for a restart or another
		// replica, rather than waiting out its lease.
		m.releaseDelivery(ctx, d)
		return
	}
	if !t.ok {
		return
	}
	// The attempt happened: record it even if the caller is shutting down.
	if err := m.store.RecordAttempt(context.WithoutCancel(t.ctx), d, &t.a); err != nil {
		m.notRecorded(t, d, err)
		return
	}
	m.recorded(t, d)
}

// tried is an attempt made and not yet recorded.
type tried struct {
	ctx  context.Context // carries the attempt's span
	span trace.Span
	a    Attempt
	ok   bool // false: no attempt was made, and the lease runs out
	// cut: a hard stop ([Mapper.Stop]) came before the app answered. The
	// attempt is not counted, against the app or in d, which is as it was.
	cut bool
}

// try makes one delivery attempt for a leased delivery, whose app slot the
// caller holds, and sets d's new state; the caller records it and ends the
// span.
func (m *Mapper) try(ctx context.Context, d *Delivery) tried {
	log := m.cfg.logger
	start := m.cfg.now()
	n := d.Attempts + 1
	ctx, span := m.startSpan(m.resume(ctx, d.TraceContext), "deliver", trace.SpanKindClient,
		attrDeliveryID.String(d.ID), attrEventID.String(d.EventID), attrAppID.String(d.AppID), attrAttempt.Int(n), attrHTTPMethod.String(http.MethodPost))
	if ctx.Err() != nil {
		m.releaseApp(d.AppID, false, false)
		return tried{ctx: ctx, span: span, cut: true}
	}
	var res httpforwarder.Result
	counted := false // whether the outcome tells of the app's health
	app, err := m.getApp(ctx, d.AppID)
	switch {
	case errors.Is(err, ErrNotFound):
		res = httpforwarder.Result{Err: errors.New("worker app was deleted")}
	case err != nil:
		// Without the app nothing can be sent or recorded reliably; the
		// lease runs out and the delivery is claimed again.
		m.releaseApp(d.AppID, false, false)
		log.ErrorContext(ctx, "delivery postponed: store unavailable", slog.String("delivery_id", d.ID), slog.String("error", err.Error()))
		return tried{ctx: ctx, span: span}
	case !app.Enabled:
		res = httpforwarder.Result{Err: errors.New("worker app is disabled")}
	default:
		m.apps.setLimit(app)
		// The app's own timeout; without a heartbeat, within half the
		// lease, so the attempt ends well before another claimer could
		// take the delivery.
		timeout := cmpDuration(app.Timeout, m.cfg.deliveryTimeout)
		if !m.renewing() {
			timeout = min(timeout, m.cfg.lease/2)
		}
		if span.IsRecording() {
			if u, err := url.Parse(app.URL); err == nil {
				span.SetAttributes(attrServerAddress.String(u.Hostname()))
			}
		}
		h := forwardHeader(d, n)
		m.mediaHeader(ctx, d, h)
		m.injectHeader(ctx, h) // the worker app continues the trace
		fctx, cancel := context.WithTimeout(ctx, timeout)
		res = m.cfg.forwarder.Forward(fctx, &ForwardRequest{App: app, Delivery: d, Attempt: n, Header: h})
		cancel()
		if ctx.Err() != nil && res.StatusCode == 0 {
			m.releaseApp(d.AppID, false, false)
			return tried{ctx: ctx, span: span, cut: true}
		}
		counted = res.Err == nil || res.Retryable
	}
	m.releaseApp(d.AppID, counted, res.Err != nil)
	now := m.cfg.now()
	if res.Duration == 0 {
		res.Duration = now.Sub(start)
	}
	d.Attempts, d.LastStatusCode, d.LastError = n, res.StatusCode, ""
	if res.Err != nil {
		d.LastError = res.Err.Error()
	}
	p := m.cfg.retry
	next := now.Add(m.backoff(n-d.AttemptBase, res.RetryAfter))
	cycleStart := d.CycleStart
	if cycleStart.IsZero() {
		cycleStart = d.CreatedAt
	}
	if res.StatusCode != 0 {
		span.SetAttributes(attrHTTPStatus.Int(res.StatusCode))
	}
	switch {
	case res.Err == nil:
		d.Status, d.CompletedAt = DeliveryDelivered, &now
		c := m.appCounter(d.AppID)
		c.delivered.Add(1)
		if received, ok := ids.Time(d.EventID); ok {
			m.tel.e2eLatency.Record(ctx, max(now.Sub(received), 0).Seconds(), c.attrs)
		}
	case res.Retryable && n-d.AttemptBase < p.MaxAttempts && (p.MaxAge == 0 || next.Sub(cycleStart) <= p.MaxAge):
		d.Status, d.NextAttemptAt = DeliveryPending, next
		m.appCounter(d.AppID).retrying.Add(1)
	default:
		d.Status, d.CompletedAt = DeliveryDead, &now
		m.appCounter(d.AppID).dead.Add(1)
	}
	span.SetAttributes(attrAttemptOutcome.String(string(d.Status)))
	if res.Err != nil {
		span.SetStatus(codes.Error, d.LastError)
	}
	return tried{ctx: ctx, span: span, ok: true, a: Attempt{DeliveryID: d.ID, Number: n, StartedAt: start, Duration: res.Duration,
		StatusCode: res.StatusCode, Error: d.LastError, Outcome: d.Status, ResponseBody: answerStart(res.ResponseBody)}}
}

// maxResponseBody is how much of a worker app's answer an attempt keeps,
// whatever the Forwarder returned: enough to see why it failed, never
// enough to fill the store.
const maxResponseBody = 4 << 10

// answerStart is the start of an app's answer as stored: at most
// maxResponseBody bytes, valid UTF-8 (a rune cut in two, or bytes that are
// not text, become U+FFFD).
func answerStart(b []byte) string {
	if len(b) > maxResponseBody {
		b = b[:maxResponseBody]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for len(s) > maxResponseBody {
		// A replacement char is longer than the byte it stands for.
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func (m *Mapper) notRecorded(t tried, d *Delivery, err error) {
	m.cfg.logger.ErrorContext(t.ctx, "delivery attempt not recorded", slog.String("delivery_id", d.ID), slog.Int("attempt", t.a.Number), slog.String("error", err.Error()))
}

// recorded logs a recorded attempt and wakes the loop for what it left
// to do.
func (m *Mapper) recorded(t tried, d *Delivery) {
	lvl := slog.LevelDebug
	if d.Status != DeliveryDelivered {
		lvl = slog.LevelWarn
	}
	// LogAttrs: attributes passed as ...any are boxed even when the level
	// is off, and this runs for every attempt.
	m.cfg.logger.LogAttrs(t.ctx, lvl, "delivery attempt", slog.String("delivery_id", d.ID), slog.String("event_id", d.EventID),
		slog.String("app_id", d.AppID), slog.Int("attempt", t.a.Number), slog.Int("status_code", t.a.StatusCode),
		slog.String("outcome", string(d.Status)), slog.String("error", d.LastError), slog.Duration("duration", t.a.Duration))
	if d.Status == DeliveryPending {
		m.scheduleAt(d.NextAttemptAt)
	}
	if d.Ordered {
		// The next delivery to this app may now be claimed.
		m.notify()
	}
}

// learnLimit reads an app's concurrency limit from its record when this
// process has not seen the app yet (after a start, the first claim of its
// deliveries), so that not even the first burst exceeds it.
func (m *Mapper) learnLimit(ctx context.Context, appID string) {
	if m.apps.known(appID) {
		return
	}
	if app, err := m.getApp(ctx, appID); err == nil {
		m.apps.setLimit(app)
	}
}

// releaseApp returns an app slot and wakes the loop when deliveries may be
// waiting for it, in the outbox or in the waiting room.
func (m *Mapper) releaseApp(appID string, counted, failed bool) {
	switch {
	case m.apps.release(appID, m.cfg.now(), counted, failed):
		m.notify()
	case m.waiting.has(appID):
		m.wakeLoop() // no claim needed: the next one is here
	}
}

func cmpDuration(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

// backoff is the delay before retry n (counting from 1): exponential from
// MinBackoff to MaxBackoff with full jitter, never less than what the
// remote side asked for (capped at MaxBackoff).
func (m *Mapper) backoff(n int, asked time.Duration) time.Duration {
	p := m.cfg.retry
	ceil := p.MinBackoff
	for i := 1; i < n && ceil < p.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, p.MaxBackoff)
	d := p.MinBackoff
	if ceil > p.MinBackoff {
		d += rand.N(ceil - p.MinBackoff)
	}
	return max(d, min(asked, p.MaxBackoff))
}

// processEvent routes a claimed event and attempts its deliveries; p is
// its payload when intake parsed it in this process, else nil.
func (m *Mapper) processEvent(ctx context.Context, ev *Event, p *payload.Payload) []Delivery {
	ctx, span := m.startSpan(m.resume(ctx, ev.TraceContext), "route event", trace.SpanKindInternal, attrEventID.String(ev.ID))
	leaseEnd, replayed := ev.NextAttemptAt, ev.RoutedAt != nil
	release := m.holdBody(ctx, len(ev.Payload))
	ds, store, err := m.routeEvent(ctx, ev, p)
	release()
	// Deliveries whose app has a free slot (and a closed circuit) are
	// attempted now.
	now := m.cfg.now()
	acquired, waiting := 0, 0
	if store {
		acquired, waiting = m.takeSlots(ds, now)
	}
	// When every delivery can be attempted now, the route is written after
	// the attempts, with their outcomes, in one write. The event's lease
	// must outlast the attempts (half the lease at most) and the write,
	// with room to spare.
	together := store && !replayed && acquired > 0 && waiting == 0 && (m.renewing() || leaseEnd.Sub(now) >= 3*m.cfg.lease/4)
	if store && !together {
		// Written even when a hard stop came meanwhile: the route is sound,
		// and its deliveries then go back due now.
		if err = m.store.RouteEvent(context.WithoutCancel(ctx), ev, ds, nil); err != nil {
			m.giveSlots(ds, now)
		}
	}
	span.SetAttributes(attrRouteOutcome.String(string(ev.Status)), attrOwnerCount.Int(len(ev.Owners)),
		attrUnroutable.Int(len(ev.Unroutable)), attrDeliveryCount.Int(len(ds)))
	if err == nil && ev.LastError != "" {
		span.SetAttributes(attribute.String("mapper.route.waiting", "true"))
	}
	endSpan(span, err)
	if err != nil {
		m.cfg.logger.ErrorContext(ctx, "routing not stored", slog.String("event_id", ev.ID), slog.String("error", err.Error()))
		return nil
	}
	if together {
		m.deliverRouted(ctx, ev, ds)
		return ds
	}
	if waiting > 0 {
		m.notify()
	}
	// Different apps of one event are attempted side by side, so a slow
	// app does not hold up the others.
	var wg sync.WaitGroup
	for i := range ds {
		if d := &ds[i]; d.LeaseToken != "" {
			wg.Go(func() { m.attempt(ctx, d) })
		}
	}
	wg.Wait()
	return ds
}

// takeSlots takes an app slot for each delivery that can be attempted now;
// the others (and every ordered one, which waits its turn) are made
// unleased and due, for the loop to claim when their app can take them.
func (m *Mapper) takeSlots(ds []Delivery, now time.Time) (acquired, waiting int) {
	for i := range ds {
		if !ds[i].Ordered && m.apps.acquire(ds[i].AppID, now) {
			acquired++
			continue
		}
		ds[i].LeaseToken, ds[i].NextAttemptAt = "", now
		waiting++
	}
	return acquired, waiting
}

// giveSlots returns the slots takeSlots took.
func (m *Mapper) giveSlots(ds []Delivery, now time.Time) {
	for i := range ds {
		if ds[i].LeaseToken != "" {
			m.apps.release(ds[i].AppID, now, false, false)
		}
	}
}

// deliverRouted attempts the deliveries of a routed event, whose slots
// the caller holds, side by side, then records the route and the attempts
// in one write.
func (m *Mapper) deliverRouted(ctx context.Context, ev *Event, ds []Delivery) {
	ts := make([]tried, len(ds))
	if len(ds) == 1 {
		// Most events go to one app: tried in this goroutine, which
		// would only wait, rather than in one started for it (a start, a
		// wake-up and a Wait less a webhook; measured flat out and at
		// 500/s, within the drift, see docs/performance.md round six).
		ts[0] = m.try(ctx, &ds[0])
	} else {
		var wg sync.WaitGroup
		for i := range ds {
			wg.Go(func() { ts[i] = m.try(ctx, &ds[i]) })
		}
		wg.Wait()
	}
	now := m.cfg.now()
	attempts := make([]Attempt, 0, len(ds))
	for i := range ds {
		d := &ds[i]
		d.LeaseToken = "" // stored unleased: the attempt is over
		if ts[i].cut {
			// Cut short by a hard stop: stored unattempted and due now.
			d.NextAttemptAt = now
			continue
		}
		if !ts[i].ok {
			// Not attempted (the store failed): due again after a pause.
			d.NextAttemptAt = now.Add(m.cfg.retry.MinBackoff)
			continue
		}
		attempts = append(attempts, ts[i].a)
	}
	ev.Settle(ds)
	err := m.store.RouteEvent(context.WithoutCancel(ctx), ev, ds, attempts)
	for i := range ds {
		switch {
		case err != nil && ts[i].ok:
			m.notRecorded(ts[i], &ds[i], err)
		case err == nil && ts[i].ok:
			m.recorded(ts[i], &ds[i])
		case err == nil:
			m.scheduleAt(ds[i].NextAttemptAt)
		}
		ts[i].span.End()
	}
}

// releaseDelivery gives a delivery back to the outbox, due now, and wakes
// the loop, which claims it when its app can take it.
func (m *Mapper) releaseDelivery(ctx context.Context, d *Delivery) {
	d.NextAttemptAt = m.cfg.now()
	if err := m.store.RecordAttempt(context.WithoutCancel(ctx), d, nil); err != nil {
		m.cfg.logger.WarnContext(ctx, "delivery not released; it is retried when its lease ends", slog.String("delivery_id", d.ID), slog.String("error", err.Error()))
		return
	}
	m.notify()
}

// deliverNow is the sync mode: route and attempt before answering.
func (m *Mapper) deliverNow(ctx context.Context, ev *Event, p *payload.Payload) (string, []deliveryOutcome) {
	// The handler's context ends when Meta hangs up; the attempt, once
	// begun, is finished and recorded anyway.
	ds := m.processEvent(context.WithoutCancel(ctx), ev, p)
	out := make([]deliveryOutcome, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryOutcome{DeliveryID: d.ID, AppID: d.AppID, Status: d.Status, StatusCode: d.LastStatusCode, Error: d.LastError})
	}
	status := string(ev.Status)
	if ev.Status == EventDispatched {
		status = string(settle(ev, ds))
	}
	return status, out
}

// Run processes routing and delivery work until ctx ends (or [Mapper.Stop]
// is called), then waits for the work in flight and returns nil. Webhooks taken by the handler wake it
// at once; retries wake it when they fall due; a slow poll picks up work of
// other replicas and of expired leases. Run at most once at a time per
// Mapper; several Mappers may share one Store.
func (m *Mapper) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("mapper: Run is already running")
	}
	defer m.running.Store(false)
	log := m.cfg.logger
	// Stop ends the loop as ctx does, and may also end the work in flight,
	// which otherwise outlives ctx so that a graceful stop lets it finish.
	ctx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// The heartbeat keeps this Mapper's leases while any of its work is
	// in flight, through a graceful stop too; it ends before Run returns.
	beat, stopBeat := context.WithCancel(work)
	var beating sync.WaitGroup
	beating.Go(func() { m.heartbeat(beat) })
	defer beating.Wait()
	defer stopBeat()
	done := m.life.start(stopLoop, cancelWork)
	defer close(done)
	var side sync.WaitGroup
	defer side.Wait()
	sideCtx, stopSide := context.WithCancel(ctx)
	defer stopSide()
	if n, ok := m.raw.(workNotifier); ok {
		side.Go(func() { m.listen(sideCtx, n) })
	}
	if m.cfg.retention > 0 {
		side.Go(func() { m.pruneLoop(sideCtx) })
	}
	slots := make(chan struct{}, m.cfg.concurrency)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	m.outboxDirty.Store(true)
	errDelay := time.Duration(0)
	// The poll keeps its own time: wakes for handed-over webhooks come
	// all the time under load and must not push it back, or the work of
	// other replicas and of expired leases would never be claimed.
	nextPoll := time.Now().Add(m.cfg.pollInterval)
	for {
		select {
		case <-ctx.Done():
		case <-m.wake:
		case <-timer.C:
			m.outboxDirty.Store(true) // a due time came, or the poll
		}
		if now := time.Now(); !now.Before(nextPoll) {
			m.outboxDirty.Store(true)
			nextPoll = now.Add(m.cfg.pollInterval)
		}
		if ctx.Err() != nil {
			// No handoff from now on; what is queued or waits for a slot
			// goes back at once, for a restart or another replica; what is
			// in flight finishes (or, on a hard stop, is cut and given back).
			m.running.Store(false)
			m.returnHandoff(ctx)
			m.returnWaiting(ctx)
			wg.Wait()
			m.inflight.Wait()
			m.returnHandoff(ctx)
			m.returnWaiting(ctx)
			return nil
		}
		err := m.dispatch(ctx, work, slots, &wg)
		wait := time.Until(nextPoll)
		if err != nil && ctx.Err() != nil {
			continue // stopping: a claim cut short is no failure
		}
		if err != nil {
			errDelay = min(max(2*errDelay, 100*time.Millisecond), 10*time.Second)
			wait = errDelay
			log.ErrorContext(ctx, "claiming work failed", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		} else {
			errDelay = 0
		}
		// Times that have come were served by this dispatch; the nearest
		// one ahead sets the wake-up.
		if due, ok := m.due.next(m.cfg.now()); ok {
			wait = min(wait, max(due.Sub(m.cfg.now()), 0))
		}
		timer.Reset(wait)
	}
}

// dispatch claims as much due work as there are free slots and starts it.
// Work runs on the detached context, so that shutdown lets it finish.
func (m *Mapper) dispatch(ctx, work context.Context, slots chan struct{}, wg *sync.WaitGroup) error {
	for ctx.Err() == nil {
		free := cap(slots) - len(slots)
		if free == 0 {
			m.backlog.Store(true)
			return nil
		}
		// Fresh webhooks are handed over in memory; when the outbox may
		// hold work too (retries, another replica's, a dead process's),
		// they get half the room, so that under a sustained load stored
		// work is not starved by new arrivals.
		share := free
		if m.outboxDirty.Load() {
			share = (free + 1) / 2
		}
		handed := m.takeHandoff(share)
		for _, h := range handed {
			slots <- struct{}{}
			wg.Go(func() {
				defer m.release(slots)
				m.processEvent(work, h.ev, h.p)
			})
		}
		free -= len(handed)
		// Deliveries that waited for their app's slot, before any claim.
		free -= m.startWaiting(work, free, func(d *Delivery) {
			slots <- struct{}{}
			wg.Go(func() {
				defer m.release(slots)
				m.attempt(work, d)
			})
		})
		// The outbox is read only when it may hold something: not for the
		// wakes of handed-over events.
		claim := m.outboxDirty.Swap(false)
		// Read the clock after taking the flag: work stored due at t sets
		// it after t, so a claim that consumed its signal sees it due.
		now := m.cfg.now()
		var evs []Event
		if free > 0 && claim {
			// The outbox: events of other replicas, retries, expired
			// leases.
			var err error
			if evs, err = m.store.ClaimEvents(ctx, now, free, m.cfg.lease); err != nil {
				return err
			}
		}
		for i := range evs {
			slots <- struct{}{}
			wg.Go(func() {
				defer m.release(slots)
				m.processEvent(work, &evs[i], nil)
			})
		}
		free -= len(evs)
		var ds []Delivery
		if free > 0 && claim {
			var err error
			ds, err = m.store.ClaimDeliveries(ctx, now, free, m.cfg.lease, append(m.apps.skip(now), m.waiting.apps()...))
			if err != nil {
				return err
			}
			waited := false
			for i := range ds {
				d := &ds[i]
				m.learnLimit(ctx, d.AppID)
				if !m.apps.acquire(d.AppID, now) {
					// Several of one app's deliveries in one claim: the
					// rest wait for the app's slots (or, the room full,
					// go back).
					if m.waiting.add(d, now) {
						waited = true
					} else {
						m.releaseDelivery(work, d)
					}
					continue
				}
				slots <- struct{}{}
				wg.Go(func() {
					defer m.release(slots)
					m.attempt(work, d)
				})
			}
			if waited {
				// A slot may have freed between a failed acquire and the
				// add, its release seeing nothing waiting.
				m.wakeLoop()
			}
			free -= len(ds)
		}
		if free > 0 && len(handed) == 0 {
			// Less due work than room for it: nothing is waiting.
			m.backlog.Store(false)
			return nil
		}
		if claim && free == 0 {
			// The room ran out before the outbox did (or before it was
			// read): claim again next pass. Claims that got less than their
			// room found it drained; to claim again because more webhooks
			// were handed over meanwhile made a chain under a steady load,
			// each claim holding the loop up for a commit while the next
			// webhooks came, and each pass with one claimed again.
			m.outboxDirty.Store(true)
		}
	}
	return nil
}

// release frees a slot and, when work was left unclaimed for want of one,
// wakes the loop to claim it.
func (m *Mapper) release(slots chan struct{}) {
	<-slots
	if m.backlog.Load() {
		m.notify()
	}
}

// listen keeps a store's ListenForWork subscription open, so that work stored by
// other replicas wakes this loop at once; while it is down, the poll
// covers.
func (m *Mapper) listen(ctx context.Context, n workNotifier) {
	delay := time.Second
	for ctx.Err() == nil {
		err := n.ListenForWork(ctx, m.notify)
		if ctx.Err() != nil {
			return
		}
		m.cfg.logger.WarnContext(ctx, "listening for work stopped; relying on the poll until it is back",
			slog.Any("error", err), slog.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// pruneLoop deletes what the retention no longer keeps, once an hour.
func (m *Mapper) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := m.store.Prune(ctx, m.cfg.now().Add(-m.cfg.retention), 1000)
		switch {
		case err != nil && ctx.Err() == nil:
			m.cfg.logger.ErrorContext(ctx, "pruning failed", slog.String("error", err.Error()))
		case n > 0:
			m.cfg.logger.InfoContext(ctx, "pruned old events", slog.Int64("events", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lifecycle lets Stop reach the Run in progress.
type lifecycle struct {
	mu         sync.Mutex
	stopLoop   context.CancelFunc
	cancelWork context.CancelFunc
	done       chan struct{}
}

// start records a Run's cancel functions; the Run closes done when it has
// returned everything it held.
func (l *lifecycle) start(stopLoop, cancelWork context.CancelFunc) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLoop, l.cancelWork, l.done = stopLoop, cancelWork, make(chan struct{})
	return l.done
}

// Stop stops [Mapper.Run] in the manner of a graceful stop that may turn
// hard: Run claims nothing more at once, and Stop waits for the work in
// flight until ctx ends. Then it cancels what is still in flight: an
// attempt cut short is not counted against its app, and every delivery
// and event the Mapper holds goes back to the store due now, so that a
// restart or another replica takes it at once instead of waiting for its
// lease to run out. Stop returns when Run has returned, with nil when the
// work finished in time, else ctx's error. Without a Run in progress it
// returns nil at once.
func (m *Mapper) Stop(ctx context.Context) error {
	m.life.mu.Lock()
	stopLoop, cancelWork, done := m.life.stopLoop, m.life.cancelWork, m.life.done
	m.life.mu.Unlock()
	if done == nil {
		return nil
	}
	stopLoop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	m.cfg.logger.Warn("stop: cancelling the work in flight and giving it back")
	cancelWork()
	<-done
	return ctx.Err()
}
