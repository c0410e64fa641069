package mapper

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/chatico/mapper/internal/payload"
	"github.com/chatico/mapper/workerauth"
)

// mediaDescriber is the optional part of an [OwnerResolver] that media
// enrichment uses (see OwnerResolver).
type mediaDescriber interface {
	DescribeMedia(ctx context.Context, mediaID string) (ownerID, username string, err error)
}

// enrichLookupTimeout bounds a lookup that goes on after routing stopped
// waiting for it.
const enrichLookupTimeout = 30 * time.Second

// enrich warms the cache with what the Graph API says of the media of the
// event's enriched items, waiting for each lookup at most the budget, so
// that the first attempt's header has it. It never fails routing.
func (m *Mapper) enrich(ctx context.Context, p *payload.Payload, ev *Event) {
	media := enrichedMedia(p, m.cfg.enrich, ev.Items)
	if len(media) == 0 {
		return
	}
	deadline := time.NewTimer(m.cfg.enrichBudget)
	defer deadline.Stop()
	for _, id := range media {
		ch := m.flight.DoChan("media:"+id, func() (any, error) {
			// Outlives this routing pass on purpose: the answer fills the
			// cache for the next attempt.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), enrichLookupTimeout)
			defer cancel()
			return m.describeMedia(lctx, id), nil
		})
		select {
		case <-ch:
		case <-deadline.C:
			m.cfg.logger.InfoContext(ctx, "media enrichment took longer than its budget; delivering without it",
				slog.String("event_id", ev.ID), slog.String("media_id", id), slog.Duration("budget", m.cfg.enrichBudget))
			return
		case <-ctx.Done():
			return
		}
	}
}

// enrichedMedia lists the distinct media of the new items of the enriched
// fields, in payload order.
func enrichedMedia(p *payload.Payload, fields []string, items []EventItem) []string {
	if len(fields) == 0 {
		return nil
	}
	var media []string
	k := 0
	for i := range p.Entries {
		for _, it := range p.Entries[i].Items {
			if it.MediaID != "" && slices.Contains(fields, it.Field) && (items == nil || !items[k].Duplicate) {
				media = appendNew(media, it.MediaID)
			}
			k++
		}
	}
	return media
}

// describeMedia asks the resolver and caches the answer as the header
// states it; "" when the resolver could not say (not cached).
func (m *Mapper) describeMedia(ctx context.Context, mediaID string) string {
	key := "mapper:media:" + mediaID
	if v, ok, err := m.cfg.cache.Get(ctx, key); err == nil && ok {
		return v
	}
	var owner, username string
	var err error
	m.counters.resolverCalls.Add(1)
	if d, ok := m.cfg.resolver.(mediaDescriber); ok {
		owner, username, err = d.DescribeMedia(ctx, mediaID)
	} else {
		owner, err = m.cfg.resolver.ResolveOwner(ctx, mediaID)
	}
	var v string
	ttl := m.cfg.positiveTTL
	switch {
	case err == nil && owner != "":
		v = "owner:" + owner
	case err == nil && username != "":
		v = "username:" + username
	case err == nil || mediaNotFound(err):
		v, ttl = "not_visible", m.cfg.negativeTTL
	default:
		m.counters.resolverRetryLater.Add(1)
		m.cfg.logger.InfoContext(ctx, "media enrichment failed; delivering without it", slog.String("media_id", mediaID), slog.String("error", err.Error()))
		return ""
	}
	m.cacheSet(ctx, key, v, ttl)
	return v
}

// mediaHeader sets HeaderMedia from the cache (never the resolver: an
// attempt does not wait for the Graph API).
func (m *Mapper) mediaHeader(ctx context.Context, d *Delivery, h http.Header) {
	if len(m.cfg.enrich) == 0 {
		return
	}
	p, err := payload.Parse(d.Body)
	if err != nil {
		return
	}
	media := enrichedMedia(p, m.cfg.enrich, nil)
	if len(media) == 0 {
		return
	}
	parts := make([]string, len(media))
	for i, id := range media {
		v, ok, err := m.cfg.cache.Get(ctx, "mapper:media:"+id)
		if err != nil || !ok {
			v = "unknown"
		}
		parts[i] = id + "=" + v
	}
	h.Set(workerauth.HeaderMedia, strings.Join(parts, ","))
}
