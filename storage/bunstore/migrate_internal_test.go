package bunstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/containertest"
)

// Field routing's migration carries every app and route over: apps keep
// their accounts and take every field, as before.
func TestFieldRoutingMigrationKeepsRoutes(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(t *testing.T) (*Store, error){
		"sqlite":   func(t *testing.T) (*Store, error) { return OpenSQLite(ctx, filepath.Join(t.TempDir(), "m.db")) },
		"postgres": func(t *testing.T) (*Store, error) { return OpenPostgres(ctx, containertest.PostgresURL(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			s, err := open(t)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m, err := s.migratorUpTo("20261128000003")
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO mapper_worker_apps (id, name, url, secret, enabled, created_at, updated_at) VALUES ('app_1', 'one', 'http://x', 's', TRUE, 1, 1), ('app_2', 'two', 'http://y', 's', TRUE, 2, 2)`,
				`INSERT INTO mapper_app_accounts (account_id, app_id) VALUES ('1', 'app_1'), ('2', 'app_1'), ('3', 'app_2')`,
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			apps, err := s.ListApps(ctx)
			if err != nil || len(apps) != 2 || apps[0].ID != "app_1" || len(apps[0].Fields) != 0 {
				t.Fatalf("apps after migration: %+v %v", apps, err)
			}
			page, err := s.ListRoutes(ctx, mapper.RouteQuery{AppID: "app_1"})
			if err != nil || len(page.Items) != 2 || page.Items[0].AccountID != "1" || page.Items[1].AccountID != "2" || page.Items[0].Fields != nil {
				t.Fatalf("routes of app_1 after migration: %+v %v", page, err)
			}
			page, err = s.ListRoutes(ctx, mapper.RouteQuery{Accounts: []string{"1", "3"}})
			if err != nil || len(page.Items) != 2 || page.Items[0].AppID != "app_1" || page.Items[1].AppID != "app_2" {
				t.Fatalf("routes by account after migration: %+v %v", page, err)
			}
			// And back: the down migration keeps one app per account.
			if _, err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.db.NewRaw(`SELECT COUNT(*) FROM mapper_app_accounts`).Scan(ctx, &n); err != nil || n != 3 {
				t.Errorf("after rollback: %d routes, %v", n, err)
			}
		})
	}
}
