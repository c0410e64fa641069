package bunstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/testing/containertest"
	"github.com/chatico/mapper/testing/storetest"
)

func TestMain(m *testing.M) { os.Exit(containertest.Main(m)) }

func migrated(t testing.TB, s *bunstore.Store, err error) *bunstore.Store {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func newSQLite(t testing.TB) *bunstore.Store {
	s, err := bunstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "mapper.db"))
	return migrated(t, s, err)
}

func newPostgres(t testing.TB) *bunstore.Store {
	s, err := bunstore.OpenPostgres(context.Background(), containertest.PostgresURL(t))
	return migrated(t, s, err)
}

func TestConformanceSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) mapper.Store { return newSQLite(t) })
}

func TestConformancePostgres(t *testing.T) {
	containertest.PostgresURL(t) // skips here, once, when there is no PostgreSQL
	storetest.Run(t, func(t *testing.T) mapper.Store { return newPostgres(t) })
}
