package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/rediscache"
	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/internal/payload"
	"github.com/chatico/mapper/resolver/graphresolver"
)

// config is the server's configuration, read from the environment.
type config struct {
	AppID       string
	Secrets     []string
	VerifyToken string
	AccessToken string
	AdminToken  string
	// SecretKey signs the console's session cookies (SECRET_KEY).
	SecretKey    string
	Port         string
	AdminAddr    string
	DatabaseURL  string
	SQLitePath   string
	RedisURL     string
	GraphURL     string
	GraphVersion string
	Policy       mapper.OwnerPolicy
	EnrichFields []string
	// Deprecated lists settings of earlier versions in use, logged at start.
	Deprecated      []string
	MaxBody         int64
	BodyBudget      int64 // bytes of bodies taken in at once
	RateRPS         float64
	RateBurst       int
	DeliveryTimeout time.Duration
	Retry           mapper.RetryPolicy
	Concurrency     int
	Sync            bool
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	ClientIPHeader  string
	MigrateOnStart  bool
	Retention       time.Duration
	CacheTTL        time.Duration
	NegativeTTL     time.Duration
	ParkInterval    time.Duration
	// BreakerMaxCooldown caps the wait between probes of an open circuit.
	BreakerMaxCooldown time.Duration
	// DialPolicy narrows the addresses worker apps may be reached at.
	DialPolicy     httpforwarder.DialPolicy
	AppConcurrency int
	// GCPercent is Go's GOGC for the server (-1: off); see gc.go.
	GCPercent int
	// MaxProcs is GOMAXPROCS (0: unset, adapted to the load between one
	// and the runtime's own choice; see internal/adaptprocs). The runtime
	// reads it from the process environment; the server applies it too,
	// so that the .env file's value counts.
	MaxProcs int
}

// loadConfig reads the variables. Every problem is reported, each naming
// its variable, in one error.
func loadConfig(getenv func(string) string) (*config, error) {
	c := &config{
		AppID:          getenv("INSTAGRAM_APP_ID"),
		VerifyToken:    getenv("WEBHOOK_VERIFY_TOKEN"),
		AccessToken:    getenv("INSTAGRAM_ACCESS_TOKEN"),
		AdminToken:     cmpOr(getenv("ADMIN_TOKEN"), getenv("SECRET_KEY")),
		SecretKey:      getenv("SECRET_KEY"),
		Port:           cmpOr(getenv("PORT"), "8100"),
		AdminAddr:      getenv("ADMIN_ADDR"),
		DatabaseURL:    databaseURL(getenv("DATABASE_URL")),
		SQLitePath:     cmpOr(getenv("SQLITE_PATH"), defaultSQLitePath),
		RedisURL:       getenv("REDIS__URL"),
		GraphURL:       cmpOr(getenv("GRAPH_API_URL"), graphresolver.DefaultBaseURL),
		GraphVersion:   cmpOr(getenv("GRAPH_API_VERSION"), graphresolver.DefaultVersion),
		ClientIPHeader: getenv("CLIENT_IP_HEADER"),
	}
	env := &envReader{getenv: getenv}
	var missing []string
	for _, name := range []string{"INSTAGRAM_APP_SECRET", "WEBHOOK_SECRET"} {
		for _, s := range strings.Split(getenv(name), ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Secrets = append(c.Secrets, s)
			}
		}
	}
	if len(c.Secrets) == 0 {
		missing = append(missing, "INSTAGRAM_APP_SECRET (or WEBHOOK_SECRET)")
	}
	if c.VerifyToken == "" {
		missing = append(missing, "WEBHOOK_VERIFY_TOKEN")
	}
	missing = append(missing, c.readRouting(env)...)
	if len(missing) > 0 {
		env.errs = append([]error{fmt.Errorf("missing required configuration: %s", strings.Join(missing, ", "))}, env.errs...)
	}
	if p, err := strconv.Atoi(c.Port); err != nil || p < 0 || p > 65535 {
		env.fail(fmt.Errorf("PORT %q is not a port number", c.Port))
	}
	c.readLimits(env)
	if c.SecretKey != "" && len(c.SecretKey) < 16 {
		env.fail(errors.New("SECRET_KEY must be at least 16 characters: it signs the console's session cookies"))
	}
	if err := c.LogLevel.UnmarshalText([]byte(cmpOr(getenv("LOG_LEVEL"), "info"))); err != nil {
		env.fail(fmt.Errorf("LOG_LEVEL %q must be debug, info, warn or error", getenv("LOG_LEVEL")))
	}
	return c, errors.Join(env.errs...)
}

// readRouting reads the owner policy and media enrichment, and returns
// what they need that is missing.
func (c *config) readRouting(env *envReader) (missing []string) {
	switch policy := cmpOr(env.getenv("OWNER_POLICY"), "entry"); policy {
	case "entry", "media_owner":
		c.Policy = mapper.OwnerPolicy(policy)
	case "mentions", "all":
		// Earlier versions' names: "mentions" looked mentions up (and so
		// misrouted them), "all" is the media owner policy.
		c.Policy = map[string]mapper.OwnerPolicy{"mentions": mapper.OwnerFromEntry, "all": mapper.OwnerFromMedia}[policy]
		c.Deprecated = append(c.Deprecated, fmt.Sprintf("OWNER_POLICY=%s is read as %s", policy, c.Policy))
	default:
		env.fail(fmt.Errorf("OWNER_POLICY: %q is not a policy (want entry or media_owner)", policy))
	}
	for _, f := range strings.Split(env.getenv("ENRICH_MEDIA"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(payload.Fields, f) {
			env.fail(fmt.Errorf("ENRICH_MEDIA: %q is not an Instagram webhook field (want one of %s)", f, strings.Join(payload.Fields, ", ")))
		}
		c.EnrichFields = append(c.EnrichFields, f)
	}
	switch {
	case c.AccessToken != "":
	case c.Policy != mapper.OwnerFromEntry:
		missing = append(missing, "INSTAGRAM_ACCESS_TOKEN (needed by OWNER_POLICY="+string(c.Policy)+"; or set OWNER_POLICY=entry)")
	case len(c.EnrichFields) > 0:
		missing = append(missing, "INSTAGRAM_ACCESS_TOKEN (needed by ENRICH_MEDIA)")
	}
	return missing
}

// readLimits reads the numbers, durations and switches, with defaults.
func (c *config) readLimits(env *envReader) {
	c.MaxBody = env.num("MAX_BODY_BYTES", 4<<20, 1024)
	c.BodyBudget = env.num("BODY_BUDGET_BYTES", 8<<20, 1024)
	c.RateRPS = float64(env.num("RATE_LIMIT_RPS", 200, 0))
	c.RateBurst = int(env.num("RATE_LIMIT_BURST", 400, 1))
	c.DeliveryTimeout = env.dur("DELIVERY_TIMEOUT", 15*time.Second)
	c.Retry = mapper.RetryPolicy{
		MaxAttempts: int(env.num("MAX_ATTEMPTS", int64(mapper.DefaultRetryPolicy.MaxAttempts), 1)),
		MinBackoff:  env.dur("RETRY_MIN_BACKOFF", mapper.DefaultRetryPolicy.MinBackoff),
		MaxBackoff:  env.dur("RETRY_MAX_BACKOFF", mapper.DefaultRetryPolicy.MaxBackoff),
		MaxAge:      env.dur("RETRY_MAX_AGE", mapper.DefaultRetryPolicy.MaxAge),
	}
	c.AppConcurrency = int(env.num("APP_CONCURRENCY", 8, 1))
	c.Concurrency = int(env.num("CONCURRENCY", 128, 1))
	c.ShutdownTimeout = env.dur("SHUTDOWN_TIMEOUT", 30*time.Second)
	c.ParkInterval = env.dur("PARK_INTERVAL", 30*time.Second)
	c.BreakerMaxCooldown = env.dur("BREAKER_MAX_COOLDOWN", 30*time.Second)
	for _, l := range []struct {
		name string
		dst  *[]netip.Prefix
	}{{"WORKER_URL_ALLOW", &c.DialPolicy.Allow}, {"WORKER_URL_DENY", &c.DialPolicy.Deny}} {
		p, err := httpforwarder.ParsePrefixes(env.getenv(l.name))
		if err != nil {
			env.fail(fmt.Errorf("%s: %w", l.name, err))
		}
		*l.dst = p
	}
	c.CacheTTL = env.dur("OWNER_CACHE_TTL", 24*time.Hour)
	c.NegativeTTL = env.dur("OWNER_NEGATIVE_TTL", 5*time.Minute)
	c.Sync = env.boolean("SYNC_DELIVERY", false)
	c.MigrateOnStart = env.boolean("MIGRATE_ON_START", true)
	c.GCPercent = defaultGCPercent
	if v := strings.TrimSpace(env.getenv("GOGC")); strings.EqualFold(v, "off") {
		c.GCPercent = -1
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			env.fail(fmt.Errorf("GOGC %q must be a percentage (0 or more) or off", v))
		} else {
			c.GCPercent = n
		}
	}
	if v := strings.TrimSpace(env.getenv("GOMAXPROCS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			env.fail(fmt.Errorf("GOMAXPROCS %q must be a whole number of threads, 1 or more", v))
		} else {
			c.MaxProcs = n
		}
	}
	c.Retention = 7 * 24 * time.Hour
	if s := env.getenv("RETENTION"); s == "0" {
		c.Retention = 0
	} else {
		c.Retention = env.dur("RETENTION", c.Retention)
	}
}

// envReader reads typed variables, collecting one error per bad value.
type envReader struct {
	getenv func(string) string
	errs   []error
}

func (e *envReader) fail(err error) { e.errs = append(e.errs, err) }

// num reads a whole number of at least min.
func (e *envReader) num(name string, def, min int64) int64 {
	s := e.getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < min {
		e.fail(fmt.Errorf("%s %q must be a whole number of at least %d", name, s, min))
		return def
	}
	return n
}

// dur reads a positive duration.
func (e *envReader) dur(name string, def time.Duration) time.Duration {
	s := e.getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		e.fail(fmt.Errorf("%s %q must be a positive duration such as 15s or 2h", name, s))
		return def
	}
	return d
}

// boolean reads true/false, 1/0 or yes/no.
func (e *envReader) boolean(name string, def bool) bool {
	switch s := strings.ToLower(e.getenv(name)); s {
	case "":
		return def
	case "0", "false", "no":
		return false
	case "1", "true", "yes":
		return true
	default:
		e.fail(fmt.Errorf("%s %q must be true or false", name, s))
		return def
	}
}

// parts are what the configuration builds besides the store.
type parts struct {
	opts     []mapper.Option
	resolver *graphresolver.Resolver // nil without an access token
	closers  []func() error
}

func (p *parts) Close() {
	for _, c := range p.closers {
		_ = c()
	}
}

// build turns the configuration into Mapper options and the parts behind
// them: the Graph API resolver, and the Redis cache when REDIS__URL is set.
func (c *config) build(logger *slog.Logger, tp trace.TracerProvider) (*parts, error) {
	opts := []mapper.Option{
		mapper.WithLogger(logger),
		mapper.WithMetaSecrets(c.Secrets...),
		mapper.WithVerifyToken(c.VerifyToken),
		mapper.WithAdminToken(c.AdminToken),
		mapper.WithOwnerPolicy(c.Policy),
		mapper.WithMaxBodyBytes(c.MaxBody, c.BodyBudget),
		mapper.WithDeliveryTimeout(c.DeliveryTimeout),
		mapper.WithRetryPolicy(c.Retry),
		mapper.WithConcurrency(c.Concurrency, c.AppConcurrency),
		mapper.WithSyncDelivery(c.Sync),
		mapper.WithRetention(c.Retention),
		mapper.WithCache(nil, c.CacheTTL, c.NegativeTTL),
		mapper.WithParkInterval(c.ParkInterval),
		mapper.WithDialPolicy(c.DialPolicy),
		mapper.WithBreaker(mapper.BreakerPolicy{Cooldown: min(10*time.Second, c.BreakerMaxCooldown), MaxCooldown: c.BreakerMaxCooldown}),
	}
	p := &parts{}
	var clientKey func(*http.Request) string
	if c.ClientIPHeader != "" {
		h := c.ClientIPHeader
		clientKey = func(r *http.Request) string {
			// The last address is the one the trusted proxy added.
			v := r.Header.Get(h)
			if i := strings.LastIndexByte(v, ','); i >= 0 {
				v = v[i+1:]
			}
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
			return r.RemoteAddr
		}
	}
	opts = append(opts, mapper.WithRateLimit(c.RateRPS, c.RateBurst, clientKey))
	if c.AccessToken != "" {
		res, err := graphresolver.New(c.AccessToken, graphresolver.WithBaseURL(c.GraphURL), graphresolver.WithVersion(c.GraphVersion),
			graphresolver.WithTracerProvider(tp))
		if err != nil {
			return nil, fmt.Errorf("GRAPH_API_URL/GRAPH_API_VERSION: %w", err)
		}
		opts = append(opts, mapper.WithResolver(res))
		p.resolver = res
	}
	if len(c.EnrichFields) > 0 {
		opts = append(opts, mapper.WithMediaEnrichment(500*time.Millisecond, c.EnrichFields...))
	}
	if c.RedisURL != "" {
		rc, err := rediscache.Open(c.RedisURL, rediscache.WithPrefix("mapper:"))
		if err != nil {
			return nil, fmt.Errorf("REDIS__URL: %w", err)
		}
		opts = append(opts, mapper.WithCache(rc, 0, 0))
		p.closers = append(p.closers, rc.Close)
	}
	p.opts = opts
	return p, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// databaseURL accepts DATABASE_URL as the original service's .env wrote
// it, in SQLAlchemy's form: postgresql+asyncpg://, postgresql+psycopg://
// (or any other driver) name the same database as postgres://, and
// asyncpg's ssl= parameter is libpq's sslmode=.
func databaseURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.HasPrefix(scheme, "postgresql+") {
		return raw
	}
	u, err := url.Parse("postgres://" + rest)
	if err != nil {
		return raw // reported when the store is opened
	}
	q := u.Query()
	if ssl := q.Get("ssl"); ssl != "" && q.Get("sslmode") == "" {
		q.Del("ssl")
		switch ssl {
		case "true", "require":
			q.Set("sslmode", "require")
		case "false", "disable":
			q.Set("sslmode", "disable")
		default:
			q.Set("sslmode", ssl)
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// storeConfig reads only what opening the store needs, for the migrate
// command, which must work before the rest is configured.
func storeConfig(getenv func(string) string) *config {
	return &config{DatabaseURL: databaseURL(getenv("DATABASE_URL")), SQLitePath: cmpOr(getenv("SQLITE_PATH"), defaultSQLitePath)}
}

// defaultSQLitePath is relative to the working directory.
const defaultSQLitePath = "mapper-data/mapper.db"
