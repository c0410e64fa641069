// Command staticresolver runs the Mapper with media owners from a table of
// your own, cached in Redis.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/rediscache"
	"github.com/chatico/mapper/storage/bunstore"
)

// Table is an OwnerResolver over a fixed map of media ID to owner account.
type Table map[string]string

// ResolveOwner implements mapper.OwnerResolver.
func (t Table) ResolveOwner(_ context.Context, mediaID string) (string, error) {
	if owner, ok := t[mediaID]; ok {
		return owner, nil
	}
	return "", fmt.Errorf("media %s is not in the table: %w", mediaID, mapper.ErrMediaNotFound)
}

// ReadTable reads "media_id,owner_account_id" lines.
func ReadTable(r io.Reader) (Table, error) {
	rd := csv.NewReader(r)
	rd.FieldsPerRecord = 2
	rd.Comment = '#'
	t := Table{}
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, err
		}
		media, owner := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		if media == "" || owner == "" {
			line, _ := rd.FieldPos(0)
			return nil, fmt.Errorf("line %d: want media_id,owner_account_id", line)
		}
		t[media] = owner
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "staticresolver:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := os.Open(os.Getenv("OWNERS"))
	if err != nil {
		return fmt.Errorf("OWNERS: %w", err)
	}
	table, err := ReadTable(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("OWNERS: %w", err)
	}
	opts := []mapper.Option{
		mapper.WithMetaSecrets(os.Getenv("INSTAGRAM_APP_SECRET")),
		mapper.WithVerifyToken(os.Getenv("WEBHOOK_VERIFY_TOKEN")),
		mapper.WithAdminToken(os.Getenv("ADMIN_TOKEN")),
		mapper.WithOwnerPolicy(mapper.OwnerFromMedia),
		mapper.WithResolver(table),
	}
	if u := os.Getenv("REDIS_URL"); u != "" {
		cache, err := rediscache.Open(u, rediscache.WithPrefix("example:"))
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		defer cache.Close()
		// A table answers at once; a day's positive TTL spares it anyway.
		opts = append(opts, mapper.WithCache(cache, 24*time.Hour, time.Minute))
	}
	store, err := bunstore.OpenSQLite(ctx, "staticresolver.db")
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	m, err := mapper.New(store, opts...)
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
