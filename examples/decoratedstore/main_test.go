package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/testing/storetest"
)

func open(t *testing.T, log *slog.Logger, slow time.Duration) *Store {
	t.Helper()
	inner, err := bunstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	if _, err := inner.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &Store{Store: inner, Log: log, Slow: slow}
}

// The decorator keeps the Store contract.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) mapper.Store {
		return open(t, slog.New(slog.DiscardHandler), time.Hour)
	})
}

// Every call over the threshold is logged with its name.
func TestLogsSlowCalls(t *testing.T) {
	var buf bytes.Buffer
	s := open(t, slog.New(slog.NewTextHandler(&buf, nil)), -1)
	if _, err := s.ClaimEvents(context.Background(), time.Now(), 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "slow store call") || !strings.Contains(buf.String(), "call=ClaimEvents") {
		t.Errorf("log: %s", buf.String())
	}
}
