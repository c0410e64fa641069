package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("referenceserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "run a self-contained demonstration: fake Graph API, two fake worker apps, sample webhooks")
	envFile := fs.String("env-file", ".env", "file of KEY=VALUE lines read when present; the environment wins over it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	env, err := withDotenv(getenv, *envFile)
	if err != nil {
		return err
	}
	if *demo {
		return runDemo(ctx, env, stdout, stderr)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	logger.Warn("events are kept in memory and lost on restart: this version has no durable store yet")
	if cfg.RedisURL != "" {
		logger.Warn("REDIS__URL is set but not used yet: owner lookups are cached in process")
	}
	if cfg.SQLitePath != "" {
		logger.Warn("SQLITE_PATH is set but not used yet: events are kept in memory")
	}
	opts, err := cfg.options(logger)
	if err != nil {
		return err
	}
	m, err := mapper.New(memstore.New(), opts...)
	if err != nil {
		return err
	}
	defer m.Close()
	ln, err := net.Listen("tcp", ":"+cfg.Port)
	if err != nil {
		return fmt.Errorf("PORT %s: %w", cfg.Port, err)
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("owner_policy", cfg.Policy.String()),
		slog.Int("app_secrets", len(cfg.Secrets)), slog.Bool("admin_api", cfg.AdminToken != ""), slog.Bool("sync_delivery", cfg.Sync))
	return serve(ctx, m, ln, cfg.ShutdownTimeout, logger)
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
func serve(ctx context.Context, m *mapper.Mapper, ln net.Listener, timeout time.Duration, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	loopDone := make(chan error, 1)
	go func() { loopDone <- m.Run(loopCtx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-srvDone:
		stopLoop()
		<-loopDone
		return fmt.Errorf("HTTP server: %w", err)
	}
	logger.Info("shutting down: no new webhooks; finishing in-flight work", slog.Duration("timeout", timeout))
	shCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(shCtx)
	stopLoop()
	select {
	case <-loopDone:
	case <-shCtx.Done():
		logger.Warn("shutdown timeout reached with deliveries in flight; they are retried when their leases expire")
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}
