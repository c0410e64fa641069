package mapper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper/internal/ids"
	"github.com/chatico/mapper/internal/payload"
)

// notFoundMark is cached for a media whose owner cannot be known; owner IDs
// are digits, so it cannot collide with one.
const notFoundMark = "-"

// routeEvent routes a claimed event: it finds the account of every new
// item (under the owner policy) and the worker app serving that account
// and the item's field, and plans one delivery per app, leased to the
// caller, to be attempted at once. It sets ev's new state; with store true
// the caller stores it and the deliveries (RouteEvent, with the first
// attempts when they were made at once),
// otherwise the outcome is stored already (the event was given up, or put
// back for a later try).
func (m *Mapper) routeEvent(ctx context.Context, ev *Event, parsed *payload.Payload) (ds []Delivery, store bool, err error) {
	now := m.cfg.now()
	ev.RouteAttempts++
	// An event handed over by this process's intake comes with its payload
	// parsed; one claimed from the store is parsed again.
	p := parsed
	if p == nil || p.Count() != len(ev.Items) {
		p, err = parseStored(ev)
	}
	if err != nil {
		// The payload passed this parser at intake, so the stored copy is
		// damaged; retrying cannot help.
		ev.Status, ev.LastError, ev.CompletedAt = EventDead, "stored payload unusable: "+err.Error(), &now
		return nil, false, m.store.RouteEvent(ctx, ev, nil, nil)
	}
	existing, again, err := m.earlierRoute(ctx, ev)
	if err != nil {
		return nil, false, m.retryRouting(ctx, ev, err)
	}
	plan, err := m.planItems(ctx, ev, p, again)
	if err != nil {
		return nil, false, m.retryRouting(ctx, ev, err)
	}
	apps := map[string][]*WorkerApp{}
	if distinct := plan.distinctAccounts(); len(distinct) > 0 {
		if apps, err = m.appsForAccounts(ctx, distinct); err != nil {
			return nil, false, m.retryRouting(ctx, ev, fmt.Errorf("looking up worker apps: %w", err))
		}
	}
	m.enrich(ctx, p, ev)
	groups := m.groupByApp(plan, apps)
	deliveries := make([]Delivery, 0, len(groups))
	for _, g := range groups {
		deliveries = append(deliveries, m.newDelivery(ev, p, g, now))
	}

	ev.Owners, ev.Unroutable, ev.LastError, ev.RoutedAt = plan.owners(ev.Owners), plan.unroutable, strings.Join(plan.notes, "; "), &now
	all := append(slices.Clone(existing), deliveries...)
	ev.Status = settle(ev, all)
	switch {
	case len(all) == 0:
		ev.Status = EventUnroutable
		m.counters.unroutable.Add(1)
	case len(deliveries) > 0:
		m.counters.routed.Add(1)
	}
	if ev.Status.Terminal() {
		ev.CompletedAt = &now
	}
	if len(plan.unroutable) > 0 {
		m.cfg.logger.InfoContext(ctx, "event has unroutable items", slog.String("event_id", ev.ID), slog.Any("unroutable", plan.unroutable))
	}
	return deliveries, true, nil
}

// parseStored parses a stored event's payload, which must hold the items
// intake found in it.
func parseStored(ev *Event) (*payload.Payload, error) {
	p, err := payload.Parse(ev.Payload)
	if err == nil && p.Count() != len(ev.Items) {
		err = fmt.Errorf("stored event has %d items, its payload %d", len(ev.Items), p.Count())
	}
	return p, err
}

// earlierRoute reads what an event routed before (a replay) already has:
// its deliveries, and the marks of the items that were unroutable then,
// the only ones routed again. Both are nil for a first routing.
func (m *Mapper) earlierRoute(ctx context.Context, ev *Event) ([]Delivery, map[string]bool, error) {
	if ev.RoutedAt == nil {
		return nil, nil, nil
	}
	existing, err := m.eventDeliveries(ctx, ev.ID, false)
	if err != nil {
		return nil, nil, fmt.Errorf("reading earlier deliveries: %w", err)
	}
	again := make(map[string]bool, len(ev.Unroutable))
	for _, u := range ev.Unroutable {
		again[u] = true
	}
	return existing, again, nil
}

// eventDeliveries reads every delivery of an event, oldest first, with
// their attempts if asked.
func (m *Mapper) eventDeliveries(ctx context.Context, eventID string, attempts bool) ([]Delivery, error) {
	var out []Delivery
	q := DeliveryQuery{EventID: eventID, Limit: ids.MaxPageLimit, Attempts: attempts}
	for {
		page, err := m.store.FindDeliveries(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			slices.Reverse(out)
			return out, nil
		}
		q.Cursor = page.NextCursor
	}
}

// routePlan is where each item of an event goes, by position.
type routePlan struct {
	accounts []string // the account an item routes by; "" when not routed
	fields   []string
	// unroutable and notes are what the event records: items no app
	// serves, and fallbacks the owner policy took.
	unroutable, notes []string
}

// planItems finds the account of every new item under the owner policy.
// An error means routing must wait (the resolver is throttled or failing).
func (m *Mapper) planItems(ctx context.Context, ev *Event, p *payload.Payload, again map[string]bool) (*routePlan, error) {
	plan := &routePlan{accounts: make([]string, len(ev.Items)), fields: make([]string, len(ev.Items))}
	k := 0
	for i := range p.Entries {
		e := &p.Entries[i]
		for j := range e.Items {
			it := &e.Items[j]
			plan.fields[k] = it.Field
			if !ev.Items[k].Duplicate {
				account, note, err := m.accountOf(ctx, e, it)
				switch {
				case err != nil:
					return nil, err
				case account == "":
					plan.unroutable = appendNew(plan.unroutable, fmt.Sprintf("entry:%d", i))
				case again != nil && !again[account] && !again[routeMark(account, it.Field)]:
					// Delivered (or dead, and replayed as such) the first time.
				default:
					plan.accounts[k] = account
					if note != "" {
						plan.notes = appendNew(plan.notes, note)
					}
				}
			}
			k++
		}
	}
	return plan, nil
}

func (p *routePlan) distinctAccounts() []string {
	var out []string
	for _, a := range p.accounts {
		if a != "" {
			out = appendNew(out, a)
		}
	}
	return out
}

// owners are the accounts routing found, added to those of an earlier
// route.
func (p *routePlan) owners(earlier []string) []string {
	out := slices.Clone(earlier)
	for _, a := range p.distinctAccounts() {
		out = appendNew(out, a)
	}
	return out
}

// appGroup is what one app gets of an event.
type appGroup struct {
	app    *WorkerApp
	owners []string
	items  []bool // by position
	n      int
}

// groupByApp assigns each routed item to the app serving its account and
// field, in the order the apps first appear; an item no app serves is
// added to the plan's unroutable marks.
func (m *Mapper) groupByApp(plan *routePlan, apps map[string][]*WorkerApp) []*appGroup {
	var groups []*appGroup
	byApp := map[string]*appGroup{}
	for k, acc := range plan.accounts {
		if acc == "" {
			continue
		}
		app := pickApp(apps[acc], plan.fields[k])
		switch {
		case app == nil && len(apps[acc]) == 0:
			plan.unroutable = appendNew(plan.unroutable, acc)
			continue
		case app == nil:
			plan.unroutable = appendNew(plan.unroutable, routeMark(acc, plan.fields[k]))
			continue
		}
		g := byApp[app.ID]
		if g == nil {
			m.apps.setLimit(app) // before its first attempt is counted against it
			g = &appGroup{app: app, items: make([]bool, len(plan.accounts))}
			byApp[app.ID] = g
			groups = append(groups, g)
		}
		g.owners = appendNew(g.owners, acc)
		g.items[k] = true
		g.n++
	}
	return groups
}

// newDelivery plans an app's delivery of an event, leased to the caller.
func (m *Mapper) newDelivery(ev *Event, p *payload.Payload, g *appGroup, now time.Time) Delivery {
	d := Delivery{
		ID:            ids.New("dlv_", now),
		EventID:       ev.ID,
		AppID:         g.app.ID,
		OwnerIDs:      g.owners,
		Status:        DeliveryPending,
		NextAttemptAt: now.Add(m.cfg.lease),
		CreatedAt:     now,
		CycleStart:    now,
		Ordered:       g.app.Ordered,
		LeaseToken:    ids.Token(),
		TraceContext:  ev.TraceContext,
	}
	if g.n == len(ev.Items) {
		// The whole payload is this app's: send Meta's bytes and
		// signature unchanged, so the app can check Meta's signature.
		d.Body, d.Original, d.MetaSignature = ev.Payload, true, ev.Signature
	} else {
		d.Body = p.Envelope(g.items)
	}
	return d
}

// routeMark names an (account, field) pair that no app serves, while some
// app serves other fields of the account, in an event's Unroutable.
func routeMark(account, field string) string {
	return account + "/" + cmp.Or(field, "-")
}

// pickApp chooses, among the apps serving an account, the one that takes
// field: the one subscribed to it by name, else the one taking every
// field. Stores refuse apps that would overlap, so there is one at most.
func pickApp(apps []*WorkerApp, field string) *WorkerApp {
	var every *WorkerApp
	for _, a := range apps {
		switch {
		case len(a.Fields) == 0:
			every = a
		case slices.Contains(a.Fields, field):
			return a
		}
	}
	return every
}

// retryRouting puts an event back for a later try, or gives up on it once
// the retry policy's attempts are spent. Events are parked, never given
// up, while the resolver says when to come back (throttling) or that it
// needs a new configuration (a rejected token): in both cases the cause is
// known and passes, and the event's LastError says what it waits for.
func (m *Mapper) retryRouting(ctx context.Context, ev *Event, cause error) error {
	now := m.cfg.now()
	if ctx.Err() != nil {
		// A hard stop cut routing short: not a failed try. The event goes
		// back due now, for a restart or another replica.
		ev.RouteAttempts--
		ev.NextAttemptAt = now
		return m.store.RouteEvent(context.WithoutCancel(ctx), ev, nil, nil)
	}
	m.counters.routeRetries.Add(1)
	ev.LastError = cause.Error()
	asked := retryAfter(cause)
	parked := asked > 0 || needsConfiguration(cause)
	if needsConfiguration(cause) {
		asked = max(asked, m.cfg.parkInterval)
	}
	// A store that refuses the input will refuse it every time: the event
	// ends dead with the reason at once, for an operator to replay.
	permanent := errors.Is(cause, ErrInvalidInput)
	if !parked && (permanent || ev.RouteAttempts >= m.cfg.retry.MaxAttempts) {
		ev.Status, ev.CompletedAt = EventDead, &now
		m.cfg.logger.ErrorContext(ctx, "routing given up", slog.String("event_id", ev.ID), slog.Int("attempts", ev.RouteAttempts), slog.String("error", ev.LastError))
		return m.store.RouteEvent(ctx, ev, nil, nil)
	}
	ev.NextAttemptAt = now.Add(m.backoff(ev.RouteAttempts, asked))
	if parked {
		// Exactly when the resolver said: its own backoff already grows.
		ev.NextAttemptAt = now.Add(asked)
	}
	m.cfg.logger.WarnContext(ctx, "routing postponed", slog.String("event_id", ev.ID), slog.Time("next_attempt_at", ev.NextAttemptAt), slog.String("error", ev.LastError))
	if err := m.store.RouteEvent(ctx, ev, nil, nil); err != nil {
		return err
	}
	m.scheduleAt(ev.NextAttemptAt)
	return nil
}

// accountOf returns the account an item is routed by, under the policy,
// with a note when it fell back to the entry's account. An error means
// routing must wait (the resolver is throttled or failing).
func (m *Mapper) accountOf(ctx context.Context, e *payload.Entry, it *payload.Item) (account, note string, err error) {
	if m.cfg.policy != OwnerFromMedia || it.MediaID == "" || e.ID == "" {
		return e.ID, "", nil
	}
	owner, err := m.resolveOwner(ctx, it.MediaID)
	if errors.Is(err, ErrMediaNotFound) {
		// Meta shows the owner only to the media's creator: a mention is
		// on someone else's media. The subscriber is who Meta sent it for.
		return e.ID, "media " + it.MediaID + ": owner not visible to the token; routed by entry.id", nil
	}
	if err != nil {
		return "", "", err
	}
	return owner, "", nil
}

// resolveOwner goes cache → singleflight → resolver, so that a burst of
// comments on one new media costs one Graph API call.
func (m *Mapper) resolveOwner(ctx context.Context, mediaID string) (owner string, err error) {
	ctx, span := m.startSpan(ctx, "resolve owner", trace.SpanKindInternal, attrMediaID.String(mediaID))
	defer func() { endSpan(span, err) }()
	key := "mapper:owner:" + mediaID
	v, ok, err := m.cfg.cache.Get(ctx, key)
	switch {
	case err != nil:
		m.counters.cacheErrors.Add(1)
		m.cfg.logger.WarnContext(ctx, "owner cache unavailable; asking the resolver", slog.String("error", err.Error()))
	case ok:
		m.counters.cacheHits.Add(1)
		span.SetAttributes(attrCacheHit.Bool(true))
		if v == notFoundMark {
			return "", ErrMediaNotFound
		}
		return v, nil
	default:
		m.counters.cacheMisses.Add(1)
	}
	span.SetAttributes(attrCacheHit.Bool(false))
	res, err, _ := m.flight.Do(mediaID, func() (any, error) {
		// One caller's cancellation must not fail the others waiting on
		// the same call; the resolver's own timeout bounds it.
		cctx := context.WithoutCancel(ctx)
		m.counters.resolverCalls.Add(1)
		owner, err := m.cfg.resolver.ResolveOwner(cctx, mediaID)
		if err == nil && owner == "" {
			err = ErrMediaNotFound
		}
		if err != nil {
			if mediaNotFound(err) {
				m.counters.resolverNotFound.Add(1)
				m.cacheSet(cctx, key, notFoundMark, m.cfg.negativeTTL)
				return "", fmt.Errorf("%w: %v", ErrMediaNotFound, err)
			}
			m.counters.resolverRetryLater.Add(1)
			return "", err
		}
		m.cacheSet(cctx, key, owner, m.cfg.positiveTTL)
		return owner, nil
	})
	if err != nil {
		return "", err
	}
	return res.(string), nil
}

func (m *Mapper) cacheSet(ctx context.Context, key, value string, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	if err := m.cfg.cache.Set(ctx, key, value, ttl); err != nil {
		m.counters.cacheErrors.Add(1)
		m.cfg.logger.WarnContext(ctx, "owner cache write failed", slog.String("error", err.Error()))
	}
}

func needsConfiguration(err error) bool {
	var nc interface{ NeedsConfiguration() bool }
	return errors.As(err, &nc) && nc.NeedsConfiguration()
}

func mediaNotFound(err error) bool {
	if errors.Is(err, ErrMediaNotFound) {
		return true
	}
	var nf interface{ MediaNotFound() bool }
	return errors.As(err, &nf) && nf.MediaNotFound()
}

// retryAfter is the delay an error asks for, 0 when none.
func retryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
