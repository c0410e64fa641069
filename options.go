package mapper

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper/forwarder/httpforwarder"
)

// Option configures a [Mapper]. Options are applied in order over the
// defaults, then the result is validated by [New].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// OwnerPolicy says which account an item is routed by.
type OwnerPolicy string

const (
	// OwnerFromEntry routes every item by its entry's account (entry.id):
	// the subscribed app user Meta sent it for. A comment on its media,
	// a mention of it on someone else's media, a message to it: each is
	// that account's event. No Graph API call is made to route. The
	// default.
	OwnerFromEntry OwnerPolicy = "entry"
	// OwnerFromMedia routes an item that names a media by the media's
	// owner, looked up through the cache, a singleflight group and the
	// [OwnerResolver] (the original service's behaviour); items without a
	// media route by entry.id. When the owner cannot be seen (Meta shows
	// it only to the media's creator, and a mention's media is almost
	// always someone else's) the item routes by entry.id, and the event's
	// last_error says so. For a token that sees every tenant's media, in
	// a setup where a comment's media owner is not the subscriber.
	OwnerFromMedia OwnerPolicy = "media_owner"
)

// RetryPolicy bounds how a failed delivery (or routing step) is retried:
// exponential backoff from MinBackoff, doubling to MaxBackoff, with full
// jitter (a random delay up to the doubled ceiling, never below
// MinBackoff), for at most MaxAttempts attempts and, for deliveries, no
// later than MaxAge after the delivery was created (or replayed). A
// Retry-After from the app is honoured up to MaxBackoff.
type RetryPolicy struct {
	MaxAttempts int
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	// MaxAge 0 means no age limit.
	MaxAge time.Duration
}

// DefaultRetryPolicy retries for about a day and a half (20 attempts) and
// at most three days, longer than Meta itself keeps retrying an
// unanswered webhook.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 20, MinBackoff: time.Second, MaxBackoff: 2 * time.Hour, MaxAge: 72 * time.Hour}

type config struct {
	logger       *slog.Logger
	secrets      [][]byte
	verifyToken  string
	adminToken   string
	resolver     OwnerResolver
	cache        Cache
	forwarder    Forwarder
	policy       OwnerPolicy
	enrich       []string
	enrichBudget time.Duration
	maxBody      int64
	bodyBudget   int64
	// bodyTimeout bounds reading a body once its headers are in: a client
	// whose Content-Length promises more than it sends is answered 408
	// then, rather than holding a connection and a share of the bytes in
	// flight. 15 seconds; tests shorten it.
	bodyTimeout time.Duration
	// handoffWait bounds a webhook's wait for a place in a full handoff.
	handoffWait     time.Duration
	rateLimit       float64
	rateBurst       int
	clientKey       func(*http.Request) string
	sync            bool
	concurrency     int
	retry           RetryPolicy
	lease           time.Duration
	pollInterval    time.Duration
	deliveryTimeout time.Duration
	dialPolicy      httpforwarder.DialPolicy
	retention       time.Duration
	parkInterval    time.Duration
	breaker         BreakerPolicy
	appConcurrency  int
	appCacheTTL     time.Duration
	tracerProvider  trace.TracerProvider
	meterProvider   metric.MeterProvider
	propagator      propagation.TextMapPropagator
	positiveTTL     time.Duration
	negativeTTL     time.Duration
	now             func() time.Time
}

func defaultConfig() config {
	return config{
		logger:          slog.New(slog.DiscardHandler),
		policy:          OwnerFromEntry,
		enrichBudget:    500 * time.Millisecond,
		maxBody:         4 << 20,
		bodyBudget:      8 << 20,
		bodyTimeout:     15 * time.Second,
		handoffWait:     defaultHandoffWait,
		rateLimit:       200,
		rateBurst:       400,
		clientKey:       remoteIP,
		concurrency:     128,
		retry:           DefaultRetryPolicy,
		pollInterval:    5 * time.Second,
		deliveryTimeout: 15 * time.Second,
		retention:       7 * 24 * time.Hour,
		parkInterval:    30 * time.Second,
		breaker:         BreakerPolicy{}.withDefaults(),
		appConcurrency:  8,
		appCacheTTL:     time.Second,
		propagator:      propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		positiveTTL:     24 * time.Hour,
		negativeTTL:     5 * time.Minute,
		now:             time.Now,
	}
}

func (c *config) validate() error {
	return errors.Join(append(append(c.validateIntake(), c.validateDelivery()...), c.validateRouting()...)...)
}

// validateIntake checks what taking a webhook needs.
func (c *config) validateIntake() []error {
	var errs []error
	if len(c.secrets) == 0 {
		errs = append(errs, errors.New("mapper: no app secret: WithMetaSecrets is required (the Mapper never accepts unsigned webhooks)"))
	}
	for i, s := range c.secrets {
		if len(s) == 0 {
			errs = append(errs, fmt.Errorf("mapper: app secret %d is empty", i))
		}
	}
	if c.verifyToken == "" {
		errs = append(errs, errors.New("mapper: no verify token: WithVerifyToken is required for Meta's handshake"))
	}
	if c.maxBody < 1024 {
		errs = append(errs, fmt.Errorf("mapper: body limit %d bytes is below 1 KiB", c.maxBody))
	}
	if c.bodyBudget < c.maxBody {
		errs = append(errs, fmt.Errorf("mapper: %d bytes of bodies in flight cannot hold one body of the limit, %d bytes", c.bodyBudget, c.maxBody))
	}
	if c.rateLimit > 0 && c.rateBurst < 1 {
		errs = append(errs, errors.New("mapper: rate limit burst must be at least 1"))
	}
	if c.concurrency < 1 {
		errs = append(errs, errors.New("mapper: concurrency must be at least 1"))
	}
	return errs
}

// validateDelivery checks the retry, lease and breaker settings.
func (c *config) validateDelivery() []error {
	var errs []error
	if c.retry.MaxAttempts < 1 || c.retry.MinBackoff <= 0 || c.retry.MaxBackoff < c.retry.MinBackoff {
		errs = append(errs, fmt.Errorf("mapper: retry policy %+v: want MaxAttempts ≥ 1 and 0 < MinBackoff ≤ MaxBackoff", c.retry))
	}
	if c.deliveryTimeout <= 0 {
		errs = append(errs, errors.New("mapper: delivery timeout must be positive"))
	}
	// Meta retries for 36 hours; forgetting an event's deduplication keys
	// sooner would deliver a late retry twice.
	if c.retention != 0 && c.retention < 48*time.Hour {
		errs = append(errs, fmt.Errorf("mapper: retention %s is shorter than Meta's 36-hour retry window (use at least 48h, or 0 to keep everything)", c.retention))
	}
	if b := c.breaker; b.ConsecutiveFailures < 1 || b.FailureRate <= 0 || b.FailureRate > 1 || b.Window < 1 || b.MinSamples < 1 || b.MinSamples > b.Window || b.Cooldown <= 0 || b.MaxCooldown < b.Cooldown {
		errs = append(errs, fmt.Errorf("mapper: breaker policy %+v: want ConsecutiveFailures ≥ 1, 0 < FailureRate ≤ 1, 1 ≤ MinSamples ≤ Window, 0 < Cooldown ≤ MaxCooldown", b))
	}
	if c.appConcurrency < 1 {
		errs = append(errs, errors.New("mapper: per-app concurrency must be at least 1"))
	}
	if c.retry.MaxAge < 0 {
		errs = append(errs, errors.New("mapper: retry MaxAge must not be negative"))
	}
	if c.parkInterval <= 0 {
		errs = append(errs, errors.New("mapper: park interval must be positive"))
	}
	if c.pollInterval <= 0 {
		errs = append(errs, errors.New("mapper: poll interval must be positive"))
	}
	return errs
}

// validateRouting checks the owner policy and enrichment.
func (c *config) validateRouting() []error {
	var errs []error
	if c.policy != OwnerFromEntry && c.policy != OwnerFromMedia {
		errs = append(errs, fmt.Errorf("mapper: unknown owner policy %q (want OwnerFromEntry or OwnerFromMedia)", c.policy))
	} else if c.policy == OwnerFromMedia && c.resolver == nil {
		errs = append(errs, fmt.Errorf("mapper: owner policy %q looks media up, but no OwnerResolver is set: pass WithResolver, or WithOwnerPolicy(OwnerFromEntry)", c.policy))
	}
	if len(c.enrich) > 0 && c.resolver == nil {
		errs = append(errs, errors.New("mapper: media enrichment looks media up, but no OwnerResolver is set: pass WithResolver"))
	}
	if c.enrichBudget < 0 {
		errs = append(errs, errors.New("mapper: enrichment budget must not be negative"))
	}
	return errs
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithMetaSecrets sets the secrets Meta's X-Hub-Signature-256 may be keyed
// with; a request is accepted when any one matches. Give the Meta app
// secret and, for Instagram Login apps, the Instagram app secret; during a
// rotation, the old and the new. Required.
func WithMetaSecrets(secrets ...string) Option {
	return optionFunc(func(c *config) {
		for _, s := range secrets {
			c.secrets = append(c.secrets, []byte(s))
		}
	})
}

// WithVerifyToken sets the token Meta's GET handshake must carry
// (the dashboard's "Verify Token"). Required.
func WithVerifyToken(token string) Option {
	return optionFunc(func(c *config) { c.verifyToken = token })
}

// WithAdminToken sets the bearer token of the admin and monitoring routes.
// Without one those routes answer 403: they are never open.
func WithAdminToken(token string) Option {
	return optionFunc(func(c *config) { c.adminToken = token })
}

// WithResolver sets the OwnerResolver, for example a
// graphresolver.Resolver. Required unless the policy is OwnerFromEntry.
func WithResolver(r OwnerResolver) Option {
	return optionFunc(func(c *config) { c.resolver = r })
}

// WithCache sets the cache in front of the resolver and how long a found
// owner (positive) and a "media not found or not visible" answer
// (negative) are kept. A nil cache keeps the default, an in-process
// ristretto cache of 100,000 entries; a zero TTL keeps its default (24
// hours, 5 minutes), a negative one caches nothing of that kind.
func WithCache(cache Cache, positive, negative time.Duration) Option {
	return optionFunc(func(c *config) {
		if cache != nil {
			c.cache = cache
		}
		if positive != 0 {
			c.positiveTTL = max(positive, 0)
		}
		if negative != 0 {
			c.negativeTTL = max(negative, 0)
		}
	})
}

// WithForwarder sets the Forwarder. The default is the HTTP forwarder of
// forwarder/httpforwarder with the delivery timeout.
func WithForwarder(f Forwarder) Option {
	return optionFunc(func(c *config) { c.forwarder = f })
}

// WithOwnerPolicy sets which account items are routed by. Default
// OwnerFromEntry.
func WithOwnerPolicy(p OwnerPolicy) Option {
	return optionFunc(func(c *config) { c.policy = p })
}

// WithMediaEnrichment looks up the media of the items of these fields
// (default: "mentions") and tells the worker app what Meta says of it in
// the X-Mapper-Media header: the owner's ID when the token may see it,
// else the owner's username. Lookups go through the cache, a singleflight
// group and the resolver (which must be set). Routing waits at most budget
// for one (0 reads the cache only); a throttled, failing or slow Graph API
// delivers without, the header says "unknown", and the lookup goes on in
// the background to fill the cache for the next attempt. Enrichment never
// changes where an item is routed. 500 ms is a sane budget.
func WithMediaEnrichment(budget time.Duration, fields ...string) Option {
	return optionFunc(func(c *config) {
		if len(fields) == 0 {
			fields = []string{"mentions"}
		}
		c.enrich, c.enrichBudget = fields, budget
	})
}

// WithMaxBodyBytes caps one webhook body (perRequest, enforced while
// reading; default 4 MiB: Meta's payloads can be several megabytes, and a
// cut body would fail its signature and be retried by Meta for a day and a
// half) and the bodies being read, parsed and stored at once (inFlight,
// counted by Content-Length, or perRequest when a body does not say; and
// the payloads being routed, which routing parses again; default 8 MiB:
// a batch of many small items costs about ten times its size while it is
// taken in or routed). Beyond inFlight a webhook is answered 503 with
// Retry-After rather than growing memory, and Meta retries: 32 batches of
// 4 MiB (26,545 items each) sent at once kept the reference server under
// 220 MB. Ordinary webhooks of a few KiB never come near it. 0 keeps a
// default.
// A body must also arrive within 15 seconds of its headers, or it is
// answered 408.
func WithMaxBodyBytes(perRequest, inFlight int64) Option {
	return optionFunc(func(c *config) {
		if perRequest != 0 {
			c.maxBody = perRequest
		}
		if inFlight != 0 {
			c.bodyBudget = inFlight
		}
	})
}

// WithRateLimit sets the inbound limit per client: rps requests a second
// on average, bursts of burst. Default 200/s, burst 400; rps ≤ 0 disables
// it. clientKey tells clients apart: nil keeps the default, the remote IP;
// behind a trusted proxy, read its forwarding header.
func WithRateLimit(rps float64, burst int, clientKey func(*http.Request) string) Option {
	return optionFunc(func(c *config) {
		c.rateLimit, c.rateBurst = rps, burst
		if clientKey != nil {
			c.clientKey = clientKey
		}
	})
}

// WithSyncDelivery makes the webhook handler route and forward before it
// answers, and answer with the outcome, as the original design did. Work
// that fails stays in the outbox for the background loop to retry.
func WithSyncDelivery(on bool) Option {
	return optionFunc(func(c *config) { c.sync = on })
}

// WithConcurrency caps the events and deliveries Run processes at once
// (default 128), and the attempts in flight to one worker app at once, per
// Mapper, unless the app's MaxConcurrency says otherwise (default 8: one
// slow app holds no more than a sixteenth of the default slots). 0 keeps a
// default. Most of the work in flight waits on a worker app or a commit, so
// the total is cheap to raise; at 32, a flat-out run on two cores left the
// loop behind its intake (delivery lag p99 0.45 s on SQLite, 0.59 s on
// PostgreSQL, against 14 ms and 17 ms at 128), and PostgreSQL's route
// commits came in smaller batches.
func WithConcurrency(total, perApp int) Option {
	return optionFunc(func(c *config) {
		if total != 0 {
			c.concurrency = total
		}
		if perApp != 0 {
			c.appConcurrency = perApp
		}
	})
}

// WithRetryPolicy sets the retry policy. Default DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option {
	return optionFunc(func(c *config) { c.retry = p })
}

// WithLease sets how long claimed work stays hidden from other claimers.
// With a Store that extends leases (both bundled stores do), the Mapper
// extends those of its work in flight every third of a lease, so a
// process that dies lets its work go within one lease: default 10
// seconds, at least 3. Without one, a lease must outlast any attempt: at
// least twice the delivery timeout, default 2 minutes.
func WithLease(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lease = d })
}

// WithPollInterval sets the safety-net poll of Run. New webhooks wake the
// loop at once; the poll only picks up work from other replicas or expired
// leases. Default 5 seconds.
func WithPollInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.pollInterval = d })
}

// WithWorkerAppCacheTTL sets how long worker apps read from the store are reused
// by routing and delivery. The admin routes of this Mapper clear the cache
// on every change; changes made elsewhere (another replica, the store
// directly) are seen within the TTL. Default 1 second; 0 reads the store
// every time.
func WithWorkerAppCacheTTL(d time.Duration) Option {
	return optionFunc(func(c *config) { c.appCacheTTL = d })
}

// WithTelemetry sets where the Mapper's spans and metrics go, and how
// trace context is stored with an event and sent to worker apps. A nil
// argument keeps its default: the global providers (otel.GetTracerProvider,
// otel.GetMeterProvider), no-ops until the program installs some (otelx
// does), and W3C trace context with baggage.
func WithTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, propagator propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) {
		c.tracerProvider, c.meterProvider = tp, mp
		if propagator != nil {
			c.propagator = propagator
		}
	})
}

// WithBreaker sets the circuit breaker of every worker app; zero fields
// keep their defaults (see BreakerPolicy).
func WithBreaker(p BreakerPolicy) Option {
	return optionFunc(func(c *config) { c.breaker = p.withDefaults() })
}

// WithParkInterval sets how often an event parked by a resolver that
// needs configuration (a rejected token) is tried again. A resolver in
// that state answers without calling out, so the tries are cheap, and
// events flow again within this time of the token being replaced.
// Default 30 seconds.
func WithParkInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.parkInterval = d })
}

// WithRetention sets how long ended events (with their deliveries,
// attempts and deduplication keys) are kept; Run prunes older ones every
// hour. Default 7 days; 0 keeps everything. At least 48 hours, since Meta
// retries a webhook for up to 36.
func WithRetention(d time.Duration) Option {
	return optionFunc(func(c *config) { c.retention = d })
}

// WithDialPolicy sets which addresses worker apps may be reached at
// (allow and deny lists of prefixes; see httpforwarder.DialPolicy, whose
// zero value is the default). Link-local addresses (the cloud metadata
// services), unspecified, multicast and broadcast ones are always refused;
// loopback and private ranges are allowed unless the lists say otherwise.
// An app's URL is checked when it is created or updated (a 422 naming the
// address), and the default forwarder checks every address it dials, so
// that a name resolving elsewhere later is refused too; a refused
// attempt is final, never retried.
func WithDialPolicy(p httpforwarder.DialPolicy) Option {
	return optionFunc(func(c *config) { c.dialPolicy = p })
}

// WithDeliveryTimeout caps one delivery attempt, connection included.
// Default 15 seconds.
func WithDeliveryTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.deliveryTimeout = d })
}

// remoteIP is the default client key: the IP of the TCP peer.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
