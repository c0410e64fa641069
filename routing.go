package mapper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// notFoundMark is cached for a media whose owner cannot be known; owner IDs
// are digits, so it cannot collide with one.
const notFoundMark = "-"

// routeEvent routes a claimed event: it finds the owner of every new item
// and the worker app of every owner, and plans one delivery per app, leased
// to the caller, to be attempted at once. It sets ev's new state; with
// store true the caller stores it and the deliveries (RouteEvent or
// RecordRoute), otherwise the outcome is stored already (the event was
// given up, or put back for a later try).
func (m *Mapper) routeEvent(ctx context.Context, ev *Event) (ds []Delivery, store bool, err error) {
	now := m.cfg.now()
	ev.RouteAttempts++
	p, err := ParsePayload(ev.Payload)
	if err == nil && countItems(p) != len(ev.Items) {
		err = fmt.Errorf("stored event has %d items, its payload %d", len(ev.Items), countItems(p))
	}
	if err != nil {
		// The payload passed this parser at intake, so the stored copy is
		// damaged; retrying cannot help.
		ev.Status, ev.LastError, ev.CompletedAt = EventDead, "stored payload unusable: "+err.Error(), &now
		return nil, false, m.store.RouteEvent(ctx, ev, nil)
	}

	// A replayed event already has deliveries: the owners they cover are
	// not routed again.
	var existing []Delivery
	covered := map[string]bool{}
	if ev.RoutedAt != nil {
		if existing, err = m.store.ListDeliveries(ctx, ev.ID); err != nil {
			return nil, false, m.retryRouting(ctx, ev, fmt.Errorf("reading earlier deliveries: %w", err))
		}
		for _, d := range existing {
			for _, o := range d.OwnerIDs {
				covered[o] = true
			}
		}
	}

	// Owner of each item (by position); "" for items not routed.
	owners := make([]string, len(ev.Items))
	var unroutable []string
	k := 0
	for i := range p.Entries {
		e := &p.Entries[i]
		for _, it := range e.Items() {
			if ev.Items[k].Duplicate {
				k++
				continue
			}
			owner, err := m.ownerOf(ctx, e, &it)
			switch {
			case errors.Is(err, ErrMediaNotFound):
				unroutable = appendNew(unroutable, "media:"+it.MediaID)
			case err != nil:
				return nil, false, m.retryRouting(ctx, ev, err)
			case owner == "":
				unroutable = appendNew(unroutable, fmt.Sprintf("entry:%d", i))
			case covered[owner]:
			default:
				owners[k] = owner
			}
			k++
		}
	}
	var distinct []string
	for _, o := range owners {
		if o != "" {
			distinct = appendNew(distinct, o)
		}
	}
	allOwners := slices.Clone(distinct)
	for o := range covered {
		allOwners = appendNew(allOwners, o)
	}
	apps := map[string]*WorkerApp{}
	if len(distinct) > 0 {
		apps, err = m.appsForAccounts(ctx, distinct)
		if err != nil {
			return nil, false, m.retryRouting(ctx, ev, fmt.Errorf("looking up worker apps: %w", err))
		}
	}

	type group struct {
		app    *WorkerApp
		owners []string
		items  []bool
		n      int
	}
	var groups []*group
	byApp := map[string]*group{}
	for k, o := range owners {
		if o == "" {
			continue
		}
		app, ok := apps[o]
		if !ok {
			unroutable = appendNew(unroutable, o)
			continue
		}
		g := byApp[app.ID]
		if g == nil {
			m.apps.setLimit(app) // before its first attempt is counted against it
			g = &group{app: app, items: make([]bool, len(owners))}
			byApp[app.ID] = g
			groups = append(groups, g)
		}
		g.owners = appendNew(g.owners, o)
		g.items[k] = true
		g.n++
	}

	deliveries := make([]Delivery, 0, len(groups))
	for _, g := range groups {
		d := Delivery{
			ID:            NewID("dlv_", now),
			EventID:       ev.ID,
			AppID:         g.app.ID,
			OwnerIDs:      g.owners,
			Status:        DeliveryPending,
			NextAttemptAt: now.Add(m.cfg.lease),
			CreatedAt:     now,
			CycleStart:    now,
			Ordered:       g.app.Ordered,
			LeaseToken:    newToken(),
			TraceContext:  ev.TraceContext,
		}
		if g.n == len(ev.Items) && !hasEmptyEntry(p) {
			// The whole payload is this app's: send Meta's bytes and
			// signature unchanged, so the app can check Meta's signature.
			// (An entry without items would still name its account, so
			// such a payload is rebuilt without it.)
			d.Body, d.Original, d.MetaSignature = ev.Payload, true, ev.Signature
		} else {
			d.Body = envelope(p, g.items)
		}
		deliveries = append(deliveries, d)
	}

	ev.Owners, ev.Unroutable, ev.LastError, ev.RoutedAt = allOwners, unroutable, "", &now
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
	if len(unroutable) > 0 {
		m.cfg.logger.InfoContext(ctx, "event has unroutable owners", slog.String("event_id", ev.ID), slog.Any("unroutable", unroutable))
	}
	return deliveries, true, nil
}

// retryRouting puts an event back for a later try, or gives up on it once
// the retry policy's attempts are spent. Events are parked, never given
// up, while the resolver says when to come back (throttling) or that it
// needs a new configuration (a rejected token): in both cases the cause is
// known and passes, and the event's LastError says what it waits for.
func (m *Mapper) retryRouting(ctx context.Context, ev *Event, cause error) error {
	now := m.cfg.now()
	m.counters.routeRetries.Add(1)
	ev.LastError = cause.Error()
	asked := retryAfter(cause)
	parked := asked > 0 || needsConfiguration(cause)
	if needsConfiguration(cause) {
		asked = max(asked, m.cfg.parkInterval)
	}
	if !parked && ev.RouteAttempts >= m.cfg.retry.MaxAttempts {
		ev.Status, ev.CompletedAt = EventDead, &now
		m.cfg.logger.ErrorContext(ctx, "routing given up", slog.String("event_id", ev.ID), slog.Int("attempts", ev.RouteAttempts), slog.String("error", ev.LastError))
		return m.store.RouteEvent(ctx, ev, nil)
	}
	ev.NextAttemptAt = now.Add(m.backoff(ev.RouteAttempts, asked))
	if parked {
		// Exactly when the resolver said: its own backoff already grows.
		ev.NextAttemptAt = now.Add(asked)
	}
	m.cfg.logger.WarnContext(ctx, "routing postponed", slog.String("event_id", ev.ID), slog.Time("next_attempt_at", ev.NextAttemptAt), slog.String("error", ev.LastError))
	if err := m.store.RetryEvent(ctx, ev); err != nil {
		return err
	}
	m.scheduleAt(ev.NextAttemptAt)
	return nil
}

// ownerOf returns the account an item is routed to, under the policy.
func (m *Mapper) ownerOf(ctx context.Context, e *Entry, it *Item) (string, error) {
	lookup := false
	switch m.cfg.policy {
	case OwnerLookupAll:
		lookup = it.MediaID != ""
	case OwnerLookupMentions:
		lookup = it.MediaID != "" && it.Field == "mentions"
	}
	if !lookup {
		return e.ID, nil
	}
	return m.resolveOwner(ctx, it.MediaID)
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
	var rl *RetryLaterError
	if errors.As(err, &rl) {
		return rl.After
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

func hasEmptyEntry(p *Payload) bool {
	for i := range p.Entries {
		if len(p.Entries[i].Changes)+len(p.Entries[i].Messaging) == 0 {
			return true
		}
	}
	return false
}

func countItems(p *Payload) int {
	n := 0
	for i := range p.Entries {
		n += len(p.Entries[i].Changes) + len(p.Entries[i].Messaging)
	}
	return n
}

// envelope builds a payload holding only the selected items (by position),
// keeping each item's bytes as Meta sent them and every other member of the
// entries that hold them. No other account's entry or item gets in.
func envelope(p *Payload, selected []bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":`)
	obj, _ := json.Marshal(p.Object)
	b.Write(obj)
	b.WriteString(`,"entry":[`)
	k, first := 0, true
	for i := range p.Entries {
		e := &p.Entries[i]
		nc, nm := len(e.Changes), len(e.Messaging)
		changes := pick(e.Changes, selected[k:k+nc])
		messaging := pick(e.Messaging, selected[k+nc:k+nc+nm])
		k += nc + nm
		if len(changes) == 0 && len(messaging) == 0 {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		if len(changes) == nc && len(messaging) == nm {
			b.Write(e.raw)
			continue
		}
		members := make(map[string]json.RawMessage, len(e.Raw))
		for name, v := range e.Raw {
			members[name] = v
		}
		if nc > 0 {
			members["changes"] = rawArray(changes)
		}
		if nm > 0 {
			members["messaging"] = rawArray(messaging)
		}
		writeObject(&b, members)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func pick(items []Item, sel []bool) []json.RawMessage {
	var out []json.RawMessage
	for j := range items {
		if sel[j] {
			out = append(out, items[j].Raw)
		}
	}
	return out
}

func rawArray(items []json.RawMessage) json.RawMessage {
	if len(items) == 0 {
		return json.RawMessage("[]")
	}
	n := 2 + len(items) - 1
	for _, it := range items {
		n += len(it)
	}
	out := make(json.RawMessage, 0, n)
	out = append(out, '[')
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, ']')
}

// writeObject writes members in sorted order, values as they are, so that
// the items keep Meta's escaping.
func writeObject(b *bytes.Buffer, members map[string]json.RawMessage) {
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	slices.Sort(names)
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(n)
		b.Write(key)
		b.WriteByte(':')
		b.Write(members[n])
	}
	b.WriteByte('}')
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
