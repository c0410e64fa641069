package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/console"
	"github.com/chatico/mapper/otelx"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/storage/bunstore"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("referenceserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "run a self-contained demonstration: fake Graph API, three fake worker apps, sample webhooks")
	envFile := fs.String("env-file", ".env", "file of KEY=VALUE lines read when present; the environment wins over it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env, err := withDotenv(getenv, *envFile)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		switch fs.Arg(0) {
		case "migrate":
			return runMigrate(ctx, fs.Args()[1:], env, stdout)
		case "healthcheck":
			return runHealthcheck(ctx, env, stdout)
		}
		return fmt.Errorf("unknown command %q (the commands are migrate up|down|status, and healthcheck)", fs.Arg(0))
	}
	if *demo {
		return runDemo(ctx, env, stdout, stderr)
	}
	return runServer(ctx, getenv, env, *envFile, stderr)
}

// runServer runs the reference server until ctx ends. getenv is the
// process environment and env the same with the .env file read, which
// SIGHUP reads again.
func runServer(ctx context.Context, getenv, env func(string) string, envFile string, stderr io.Writer) error {
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	limit, err := softMemoryLimit(getenv, env, "/sys/fs/cgroup")
	if err != nil {
		return err
	}
	memLimit := setGC(cfg.GCPercent, limit)
	exportOTELVars(env)
	tel, err := otelx.Setup(ctx, "mapper", version())
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx) // flush the last spans
	}()
	logger := slog.New(otelx.LogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))
	maxProcs, stopProcs := setProcs(ctx, cfg.MaxProcs, logger)
	defer stopProcs()
	store, where, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if cfg.MigrateOnStart {
		applied, err := store.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			logger.Info("migrated", slog.Any("applied", applied))
		}
	}
	p, err := cfg.build(logger, tel.TracerProvider)
	if err != nil {
		return err
	}
	defer p.Close()
	opts := append(p.opts, mapper.WithTelemetry(tel.TracerProvider, tel.MeterProvider, tel.Propagator))
	m, err := mapper.New(store, opts...)
	if err != nil {
		return err
	}
	defer m.Close()
	ln, err := net.Listen("tcp", ":"+cfg.Port)
	if err != nil {
		return fmt.Errorf("PORT %s: %w", cfg.Port, err)
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("store", where), slog.String("owner_policy", string(cfg.Policy)), slog.String("cache", cacheWhere(cfg)),
		slog.Int("app_secrets", len(cfg.Secrets)), slog.Bool("admin_api", cfg.AdminToken != ""), slog.Bool("sync_delivery", cfg.Sync),
		slog.Bool("redis_cache", cfg.RedisURL != ""), slog.Bool("traces_exported", tel.TracesExported), slog.Int("gogc", cfg.GCPercent), slog.Int("gomaxprocs", maxProcs), slog.Bool("gomaxprocs_adaptive", cfg.MaxProcs == 0), slog.Int64("memory_limit", memLimit),
		slog.String("version", version()))
	for _, d := range cfg.Deprecated {
		logger.Warn("deprecated setting: "+d, slog.String("owner_policy", string(cfg.Policy)))
	}
	if addr := env("PPROF_ADDR"); addr != "" {
		// Profiling, for performance work: on its own listener, never on
		// the public port.
		pl, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("PPROF_ADDR: %w", err)
		}
		defer pl.Close()
		go func() { _ = http.Serve(pl, pprofMux()) }()
		logger.Info("profiling", slog.String("addr", pl.Addr().String()))
	}
	if p.resolver != nil {
		stop := reloadOnHangup(ctx, getenv, envFile, p.resolver, logger)
		defer stop()
	}
	cons, err := newConsole(m, cfg.AdminToken, cfg.SecretKey, logger)
	if err != nil {
		ln.Close()
		return err
	}
	if cons != nil {
		go func() { _ = cons.Run(ctx) }()
	}
	if cfg.AdminAddr == "" {
		return serve(ctx, m, []listener{{ln, withTelemetry(m, m.Handler(), cons, tel, logger)}}, cfg.ShutdownTimeout, logger)
	}
	// Admin routes only on their own listener: the public port serves
	// Meta's routes and health, and 404 for the rest.
	al, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("ADMIN_ADDR %s: %w", cfg.AdminAddr, err)
	}
	logger.Info("admin listening", slog.String("addr", al.Addr().String()))
	trace := tel.TracerProvider.Tracer("github.com/chatico/mapper/referenceserver")
	return serve(ctx, m, []listener{
		{ln, accessLog(m.WebhookHandler(), trace, tel.Propagator, logger)},
		{al, withTelemetry(m, m.AdminHandler(), cons, tel, logger)},
	}, cfg.ShutdownTimeout, logger)
}

// withTelemetry adds Prometheus' /metrics (behind the admin token), the
// console (when there is one) and the access log to one of the Mapper's
// handlers.
func withTelemetry(m *mapper.Mapper, h http.Handler, cons *console.Console, tel *otelx.Telemetry, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Protect(tel.MetricsHandler))
	if cons != nil {
		mux.Handle("/console/", cons)
		mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	}
	mux.Handle("/", h)
	return accessLog(mux, tel.TracerProvider.Tracer("github.com/chatico/mapper/referenceserver"), tel.Propagator, logger)
}

// newConsole builds the web console over the Mapper's admin API, or nil
// when no admin token is set (no admin API, nothing to show). Without
// SECRET_KEY sessions are signed with a key made at start: they end when the
// server restarts and hold on one replica only.
func newConsole(m *mapper.Mapper, token, secretKey string, logger *slog.Logger) (*console.Console, error) {
	if token == "" {
		return nil, nil
	}
	key := []byte(secretKey)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		logger.Warn("SECRET_KEY is not set: console sign-ins end when the server restarts and hold on this replica only")
	}
	return console.New(m.AdminHandler(), token, console.WithSecretKey(key), console.WithLogger(logger))
}

// openStore opens PostgreSQL when DATABASE_URL is set, else the SQLite
// file (creating its directory). where describes it for the logs, without
// credentials.
func openStore(ctx context.Context, cfg *config) (*bunstore.Store, string, error) {
	if cfg.DatabaseURL != "" {
		s, err := bunstore.OpenPostgres(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("DATABASE_URL: %w", err)
		}
		return s, "postgres " + redactURL(cfg.DatabaseURL), nil
	}
	if dir := filepath.Dir(cfg.SQLitePath); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", fmt.Errorf("SQLITE_PATH: %w", err)
		}
	}
	s, err := bunstore.OpenSQLite(ctx, cfg.SQLitePath)
	if err != nil {
		return nil, "", fmt.Errorf("SQLITE_PATH: %w", err)
	}
	return s, "sqlite:" + cfg.SQLitePath, nil
}

// runHealthcheck is "referenceserver healthcheck", for a container's
// HEALTHCHECK (the image has no shell and no curl): it asks the server on
// this machine's PORT for GET /monitoring/health and fails unless it
// answers 200.
func runHealthcheck(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	port := cmpOr(getenv("PORT"), "8100")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/monitoring/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s %s", resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	return nil
}

// cacheWhere describes the owner cache for the logs.
func cacheWhere(cfg *config) string {
	if cfg.RedisURL == "" {
		return "in-process"
	}
	return "redis " + redactURL(cfg.RedisURL)
}

// redactURL is a database or cache URL without its password and query,
// for the logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// runMigrate is "referenceserver migrate up|down|status".
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: referenceserver migrate up|down|status")
	}
	store, where, err := openStore(ctx, storeConfig(getenv))
	if err != nil {
		return err
	}
	defer store.Close()
	switch args[0] {
	case "up":
		applied, err := store.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintf(stdout, "%s: up to date\n", where)
		}
		for _, n := range applied {
			fmt.Fprintf(stdout, "%s: applied %s\n", where, n)
		}
	case "down":
		undone, err := store.Rollback(ctx)
		if err != nil {
			return err
		}
		if len(undone) == 0 {
			fmt.Fprintf(stdout, "%s: nothing to roll back\n", where)
		}
		for _, n := range undone {
			fmt.Fprintf(stdout, "%s: rolled back %s\n", where, n)
		}
	case "status":
		states, err := store.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		for _, st := range states {
			state := "pending"
			if st.Applied {
				state = "applied " + st.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s: %s %s\n", where, st.Name, state)
		}
	default:
		return fmt.Errorf("unknown migrate command %q (want up, down or status)", args[0])
	}
	return nil
}

// reloadOnHangup re-reads the configuration on SIGHUP and applies what can
// change without a restart: a new INSTAGRAM_ACCESS_TOKEN (after a rejected
// or refreshed token; events parked for it flow again).
func reloadOnHangup(ctx context.Context, getenv func(string) string, envFile string, res *graphresolver.Resolver, logger *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			env, err := withDotenv(getenv, envFile)
			if err != nil {
				logger.Error("reload: configuration unreadable; keeping the current one", slog.String("error", err.Error()))
				continue
			}
			token := env("INSTAGRAM_ACCESS_TOKEN")
			if token == "" {
				logger.Error("reload: INSTAGRAM_ACCESS_TOKEN is empty; keeping the current token")
				continue
			}
			_ = res.SetToken(token)
			logger.Info("reload: access token applied")
		}
	}()
	return func() { signal.Stop(hup); cancel(); <-done }
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// exportOTELVars puts the OTEL_* values of the .env file into the process
// environment, where the OpenTelemetry SDK and its exporters read them.
func exportOTELVars(getenv func(string) string) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_INSECURE",
		"OTEL_EXPORTER_OTLP_CERTIFICATE"} {
		if v := getenv(k); v != "" && os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
}

// withDotenv layers a .env file under the environment. A missing file is
// not an error; a malformed one is.
func withDotenv(getenv func(string) string, path string) (func(string) string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals, err := parseDotenv(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return vals[k]
	}, nil
}

// serve runs the HTTP server and the delivery loop until ctx ends, then
// shuts down in order: stop taking requests and let the handlers finish,
// then let the loop finish the deliveries in flight.
// listener is one address the server answers on, with its handler.
type listener struct {
	ln      net.Listener
	handler http.Handler
}

func serve(ctx context.Context, m *mapper.Mapper, lns []listener, timeout time.Duration, logger *slog.Logger) error {
	srvs := make([]*http.Server, len(lns))
	for i, l := range lns {
		srvs[i] = &http.Server{
			Handler:           l.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	loopDone := make(chan error, 1)
	go func() { loopDone <- m.Run(loopCtx) }()
	srvDone := make(chan error, len(srvs))
	for i, srv := range srvs {
		go func() { srvDone <- srv.Serve(lns[i].ln) }()
	}

	var failed error
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		failed = fmt.Errorf("HTTP server: %w", err)
		logger.Error("a listener failed; shutting down", slog.String("error", err.Error()))
	}
	logger.Info("shutting down: no new webhooks; finishing in-flight work", slog.Duration("timeout", timeout))
	shCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, srv := range srvs {
		if err := srv.Shutdown(shCtx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	// What is still in flight when the timeout ends is cancelled and given
	// back to the store due now, for the next start or another replica.
	if m.Stop(shCtx) != nil {
		logger.Warn("shutdown timeout reached with deliveries in flight; they were given back to the store, due now")
	}
	stopLoop()
	<-loopDone
	if err := errors.Join(append([]error{failed}, errs...)...); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}
