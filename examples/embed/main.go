// Command embed is a service that embeds the Mapper: Meta's routes on its
// public listener under a prefix, the admin API on a private listener.
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

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	store, err := bunstore.OpenSQLite(ctx, "embed.db")
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
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

	// The service's own routes, and Meta's under a prefix.
	public := http.NewServeMux()
	public.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") })
	public.Handle("/instagram/", http.StripPrefix("/instagram", m.WebhookHandler()))
	servers := []*http.Server{
		{Addr: ":8100", Handler: public, ReadHeaderTimeout: 10 * time.Second},
		// The admin API only on loopback: operators, not the internet.
		{Addr: "127.0.0.1:8101", Handler: m.AdminHandler(), ReadHeaderTimeout: 10 * time.Second},
	}

	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(context.WithoutCancel(ctx)) }()
	failed := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if err := s.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				failed <- err
			}
		}()
	}
	logger.Info("serving", slog.String("public", ":8100"), slog.String("admin", "127.0.0.1:8101"))

	var cause error
	select {
	case <-ctx.Done():
	case cause = <-failed:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	// Deliveries in flight get until the deadline; then they go back to
	// the store, due now, for the next start.
	if err := m.Stop(shutdown); err != nil {
		logger.Warn("stopped with work given back", slog.String("error", err.Error()))
	}
	<-runDone
	return cause
}
