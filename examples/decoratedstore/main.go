// Command decoratedstore runs the Mapper on a Store decorator that logs
// slow and failing store calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
)

// Store logs the calls of the Store it decorates that take longer than
// Slow, or fail (a lost lease is the Mapper's business, not a failure).
type Store struct {
	*bunstore.Store
	Log  *slog.Logger
	Slow time.Duration
}

// The decorator keeps the optional parts the Mapper looks for.
var (
	_ mapper.Store = (*Store)(nil)
	_ interface {
		Ping(ctx context.Context) error
		Stats(ctx context.Context, since time.Time) (mapper.Stats, error)
		ListenForWork(ctx context.Context, wake func()) error
		ExtendLeases(ctx context.Context, tokens []string, until time.Time) error
	} = (*Store)(nil)
)

func (s *Store) observe(ctx context.Context, call string, start time.Time, err error) {
	d := time.Since(start)
	switch {
	case err != nil && !errors.Is(err, mapper.ErrLeaseLost) && !errors.Is(err, mapper.ErrNotFound) && !errors.Is(err, mapper.ErrConflict):
		s.Log.ErrorContext(ctx, "store call failed", slog.String("call", call), slog.Duration("took", d), slog.String("error", err.Error()))
	case d > s.Slow:
		s.Log.WarnContext(ctx, "slow store call", slog.String("call", call), slog.Duration("took", d))
	}
}

// CreateEvent is the write Meta waits for.
func (s *Store) CreateEvent(ctx context.Context, ev *mapper.Event) (err error) {
	defer func(t time.Time) { s.observe(ctx, "CreateEvent", t, err) }(time.Now())
	return s.Store.CreateEvent(ctx, ev)
}

// ClaimEvents is the routing loop's claim.
func (s *Store) ClaimEvents(ctx context.Context, now time.Time, limit int, lease time.Duration) (evs []mapper.Event, err error) {
	defer func(t time.Time) { s.observe(ctx, "ClaimEvents", t, err) }(time.Now())
	return s.Store.ClaimEvents(ctx, now, limit, lease)
}

// ClaimDeliveries is the delivery loop's claim.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration, skipApps []string) (ds []mapper.Delivery, err error) {
	defer func(t time.Time) { s.observe(ctx, "ClaimDeliveries", t, err) }(time.Now())
	return s.Store.ClaimDeliveries(ctx, now, limit, lease, skipApps)
}

// RouteEvent stores a route, with its first attempts when it has them.
func (s *Store) RouteEvent(ctx context.Context, ev *mapper.Event, ds []mapper.Delivery, as []mapper.Attempt) (err error) {
	defer func(t time.Time) { s.observe(ctx, "RouteEvent", t, err) }(time.Now())
	return s.Store.RouteEvent(ctx, ev, ds, as)
}

// RecordAttempt stores an attempt, or a claim given back.
func (s *Store) RecordAttempt(ctx context.Context, d *mapper.Delivery, a *mapper.Attempt) (err error) {
	defer func(t time.Time) { s.observe(ctx, "RecordAttempt", t, err) }(time.Now())
	return s.Store.RecordAttempt(ctx, d, a)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "decoratedstore:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	inner, err := bunstore.OpenSQLite(ctx, "decoratedstore.db")
	if err != nil {
		return err
	}
	defer inner.Close()
	if _, err := inner.Migrate(ctx); err != nil {
		return err
	}
	store := &Store{Store: inner, Log: logger, Slow: 50 * time.Millisecond}
	m, err := mapper.New(store,
		mapper.WithMetaSecrets(os.Getenv("INSTAGRAM_APP_SECRET")),
		mapper.WithVerifyToken(os.Getenv("WEBHOOK_VERIFY_TOKEN")),
		mapper.WithAdminToken(os.Getenv("ADMIN_TOKEN")),
		mapper.WithLogger(logger),
	)
	if err != nil {
		return err
	}
	defer m.Close()
	go func() { _ = m.Run(ctx) }()
	srv := &http.Server{Addr: ":8100", Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = m.Stop(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
