package mapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/chatico/mapper/cache/ristrettocache"
	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/workerauth"
)

// OwnerResolver finds the Instagram account that owns a media, for the
// OwnerFromMedia policy and media enrichment.
//
// Errors are classified by what they say of themselves: errors.Is(err,
// ErrMediaNotFound), or an error with a MediaNotFound() bool method
// returning true, is permanent for the media (cached for the negative
// TTL; its items route by their entry's account). An error with a
// RetryAfter() time.Duration method returning a positive delay parks the
// event until then. An error with a NeedsConfiguration() bool method
// returning true (a rejected token) parks it for the park interval
// ([WithParkInterval]) at a time, for as long as it lasts. Parked events
// are never given up. Any other error is retried with backoff up to the
// retry policy's attempts. graphresolver's errors follow these rules.
//
// A resolver with a Health() error method is reported by GET
// /monitoring/health: "degraded" while it returns an error. One with a
// UsagePercent() map[string]int method (Graph API budgets used, by name)
// is exported as the mapper.graph.usage gauge. Media enrichment
// ([WithMediaEnrichment]) uses a DescribeMedia(ctx, mediaID) (ownerID,
// username string, err error) method when the resolver has one: what the
// Graph API shows of a media, the owner's ID when the token's account
// created it, else the owner's username; without it, enrichment reports
// owners only. graphresolver.Resolver has all three.
type OwnerResolver interface {
	ResolveOwner(ctx context.Context, mediaID string) (ownerID string, err error)
}

// Cache maps strings to strings with a TTL. Get reports a miss with
// ok == false and a nil error; an error means the cache could not answer,
// and the Mapper then asks the resolver: a cache never fails a webhook.
type Cache interface {
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	Set(ctx context.Context, key, value string, ttl time.Duration) error
}

// Forwarder makes one attempt to deliver d to app. attempt counts from 1.
// It must sign the request with app.Secret (workerauth.Sign, in the
// headers workerauth names), send the headers of [ForwardRequest.Header],
// and classify the outcome in an httpforwarder.Result (the default
// forwarder's result): the app's status code, the duration, Err nil
// exactly when the app accepted the delivery, whether another attempt may
// succeed, the delay the app asked for, and the start of its answer (the
// Mapper keeps 4 KiB of it, whatever a Forwarder returns).
type Forwarder interface {
	Forward(ctx context.Context, req *ForwardRequest) httpforwarder.Result
}

// ForwardRequest is what a Forwarder sends.
type ForwardRequest struct {
	App      *WorkerApp
	Delivery *Delivery
	Attempt  int
	// Header holds the headers the Mapper asks to send: event and
	// delivery IDs, attempt, owners, envelope kind and, for original
	// bytes, Meta's signature.
	Header http.Header
}

// Mapper receives Meta's webhooks, stores them, and routes and delivers
// them to worker apps. Create it with [New], mount [Mapper.Handler], and run
// [Mapper.Run] for the background delivery loop.
type Mapper struct {
	cfg     config
	store   Store
	limiter *clientLimiter
	flight  singleflight.Group
	// raw is the Store as given, for its optional methods; store wraps it
	// to track the leases the heartbeat extends.
	raw      Store
	extender leaseExtender // nil: leases are long and never extended
	leases   leases
	// bodies bounds the bytes of webhook bodies being taken in at once.
	bodies   *semaphore.Weighted
	wake     chan struct{}
	running  atomic.Bool
	backlog  atomic.Bool
	due      schedule
	counters counters
	apps     *apps
	appCache *appCache
	// handoff queues events this process stored leased to itself;
	// handoffRoom holds a token per place taken, reserved before each
	// write.
	handoff     chan handed
	handoffRoom chan struct{}
	// waiting holds claimed deliveries waiting for their app's slot.
	waiting *waitingRoom
	// outboxDirty says the outbox may hold claimable work this Mapper has
	// not claimed: set by every wake but a handoff's, by timers and polls.
	// Under load most wakes are handoffs, and skipping the claim queries
	// they would run for nothing spares the store a write per webhook.
	outboxDirty atomic.Bool
	tel         telemetry
	closers     []func() error
	handler     http.Handler
	webhook     http.Handler
	admin       http.Handler
	inflight    sync.WaitGroup // sync-mode deliveries running in handlers
	life        lifecycle
}

// New returns a Mapper over store. See the With… options for the defaults;
// WithMetaSecrets and WithVerifyToken are required, and so is WithResolver
// unless the owner policy is OwnerFromEntry.
func New(store Store, opts ...Option) (*Mapper, error) {
	if store == nil {
		return nil, errors.New("mapper: nil Store")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Mapper{cfg: cfg, raw: store, wake: make(chan struct{}, 1), apps: newApps(cfg.breaker, cfg.appConcurrency),
		appCache: newAppCache(cfg.appCacheTTL, cfg.now), handoff: make(chan handed, handoffSize),
		handoffRoom: make(chan struct{}, handoffSize),
		waiting:     newWaitingRoom(waitingFactor * cfg.concurrency), bodies: semaphore.NewWeighted(cfg.bodyBudget)}
	m.extender, _ = store.(leaseExtender)
	if err := m.setLease(); err != nil {
		return nil, err
	}
	m.store = &trackedStore{Store: store, leases: &m.leases, now: cfg.now}
	m.apps.onOpen = func(appID string, until time.Time) {
		m.cfg.logger.Warn("worker app circuit opened: no attempts until the probe", slog.String("app_id", appID), slog.Time("probe_at", until))
		m.scheduleAt(until)
	}
	if cfg.cache == nil && (cfg.policy != OwnerFromEntry || len(cfg.enrich) > 0) {
		c, err := ristrettocache.New()
		if err != nil {
			return nil, err
		}
		m.cfg.cache = c
		m.closers = append(m.closers, c.Close)
	}
	if cfg.forwarder == nil {
		m.cfg.forwarder = httpForwarder{httpforwarder.New(httpforwarder.WithTimeout(cfg.deliveryTimeout), httpforwarder.WithDialPolicy(cfg.dialPolicy))}
	}
	if cfg.rateLimit > 0 {
		m.limiter = newClientLimiter(cfg.rateLimit, cfg.rateBurst, cfg.now)
	}
	if err := m.setupTelemetry(); err != nil {
		return nil, fmt.Errorf("mapper: telemetry: %w", err)
	}
	m.closers = append(m.closers, func() error { return m.tel.reg.Unregister() })
	m.handler = m.routes(surfaceWebhook | surfaceAdmin)
	m.webhook = m.routes(surfaceWebhook)
	m.admin = m.routes(surfaceAdmin)
	return m, nil
}

// Handler returns the HTTP handler of every route: [Mapper.WebhookHandler]'s
// and [Mapper.AdminHandler]'s. See the package documentation for the routes.
func (m *Mapper) Handler() http.Handler { return m.handler }

// WebhookHandler returns the handler of the routes that face Meta: GET and
// POST /webhook/ (open: a POST must carry Meta's signature), and GET
// /monitoring/health for load balancers. Every other path is a 404. Mount
// it on the public listener, at the root or under a prefix with
// http.StripPrefix.
func (m *Mapper) WebhookHandler() http.Handler { return m.webhook }

// AdminHandler returns the handler of the routes that face operators,
// behind the admin token ([WithAdminToken]): worker apps, deliveries,
// events and replays, monitoring (metrics, webhook logs), and GET
// /monitoring/health (open). Mount it on a private listener or under a
// prefix (http.StripPrefix); the Location of a created app keeps the
// prefix.
func (m *Mapper) AdminHandler() http.Handler { return m.admin }

// Close releases what New created (the default cache). It does not close
// the Store, which belongs to the caller.
func (m *Mapper) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.closers = nil
	return errors.Join(errs...)
}

// notify wakes the background loop without blocking, for work in the
// outbox: the loop's next pass runs its claim queries.
func (m *Mapper) notify() {
	m.outboxDirty.Store(true)
	m.wakeLoop()
}

// wakeLoop wakes the loop for handed-over work only: no claim query is
// needed for it.
func (m *Mapper) wakeLoop() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// scheduleAt records that work falls due at t, so the loop wakes for it
// rather than waiting for the safety-net poll.
func (m *Mapper) scheduleAt(t time.Time) {
	if m.due.add(t) {
		m.notify()
	}
}

// httpForwarder adapts the httpforwarder engine to Forwarder.
type httpForwarder struct{ f *httpforwarder.Forwarder }

func (h httpForwarder) Forward(ctx context.Context, r *ForwardRequest) httpforwarder.Result {
	return h.f.Forward(ctx, httpforwarder.Request{
		URL:     r.App.URL,
		Secret:  r.App.Secret,
		Body:    r.Delivery.Body,
		Header:  r.Header,
		Timeout: r.App.Timeout,
	})
}

// forwardHeader is the header set the Mapper asks a Forwarder to send.
// The names are canonical already, and the values share one array: a
// Set per header, each a slice of its own, was a tenth of a delivery's
// allocations.
func forwardHeader(d *Delivery, attempt int) http.Header {
	// Eight fit a map's first group: these six, the media (split
	// deliveries) and the traceparent.
	h := make(http.Header, 8)
	v := make([]string, 0, 6)
	add := func(k, s string) {
		v = append(v, s)
		h[k] = v[len(v)-1 : len(v) : len(v)]
	}
	add(workerauth.HeaderEventID, d.EventID)
	add(workerauth.HeaderDeliveryID, d.ID)
	add(workerauth.HeaderAttempt, strconv.Itoa(attempt))
	add(workerauth.HeaderOwnerIDs, strings.Join(d.OwnerIDs, ","))
	if d.Original {
		add(workerauth.HeaderEnvelope, "original")
		if d.MetaSignature != "" {
			add(workerauth.HeaderMetaSignature, d.MetaSignature)
		}
	} else {
		add(workerauth.HeaderEnvelope, "split")
	}
	return h
}
