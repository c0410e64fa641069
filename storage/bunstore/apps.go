package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
)

// CreateApp implements mapper.Store.
func (s *Store) CreateApp(ctx context.Context, app *mapper.WorkerApp) error {
	if app.ID == "" {
		app.ID = ids.New("app_", time.Now())
	}
	now := time.Now().UTC()
	if app.CreatedAt.IsZero() {
		app.CreatedAt = now
	}
	if app.UpdatedAt.IsZero() {
		app.UpdatedAt = app.CreatedAt
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockApps(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(toAppRow(app)).Exec(ctx); err != nil {
			err = translate(err)
			if errors.Is(err, mapper.ErrConflict) {
				return fmt.Errorf("worker app %s exists: %w", app.ID, err)
			}
			return err
		}
		return insertAccounts(ctx, tx, app)
	})
}

// appsLockKey is the PostgreSQL advisory lock that serialises app writes:
// whether two apps overlap on an (account, field) pair is a rule no
// unique index can hold, so it is checked and written under this lock.
// SQLite has one writer already.
const appsLockKey = 0x6d61707065720001

func (s *Store) lockApps(ctx context.Context, tx bun.Tx) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(appsLockKey))
	return translate(err)
}

// insertAccounts writes app's routes after checking, in the caller's
// transaction, that no other app serves one of its (account, field)
// pairs.
func insertAccounts(ctx context.Context, tx bun.Tx, app *mapper.WorkerApp) error {
	if len(app.AccountIDs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(app.AccountIDs))
	rows := make([]accountRow, len(app.AccountIDs))
	for i, a := range app.AccountIDs {
		if seen[a] {
			return fmt.Errorf("account %s is listed twice: %w", a, mapper.ErrConflict)
		}
		seen[a] = true
		rows[i] = accountRow{AccountID: a, AppID: app.ID}
	}
	others, err := servingApps(ctx, tx, app.AccountIDs, func(q *bun.SelectQuery) {
		q.Where("aa.app_id <> ?", app.ID).OrderExpr("aa.account_id, a.id")
	})
	if err != nil {
		return err
	}
	for _, o := range others {
		other := o.appRow.app([]string{o.AccountID})
		if acc, field, clash := app.Clash(other); clash {
			return &mapper.RouteConflictError{AccountID: acc, Field: field, AppID: other.ID}
		}
	}
	_, err = tx.NewInsert().Model(&rows).Exec(ctx)
	return translate(err)
}

// GetApp implements mapper.Store.
func (s *Store) GetApp(ctx context.Context, id string) (*mapper.WorkerApp, error) {
	var r appRow
	if err := s.read.NewSelect().Model(&r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("worker app %q: %w", id, translate(err))
	}
	accounts, err := s.accountsOf(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return r.app(accounts[id]), nil
}

func (s *Store) accountsOf(ctx context.Context, appIDs []string) (map[string][]string, error) {
	var rows []accountRow
	if err := s.read.NewSelect().Model(&rows).Where("app_id IN (?)", bun.In(appIDs)).Order("account_id").Scan(ctx); err != nil {
		return nil, translate(err)
	}
	out := map[string][]string{}
	for _, r := range rows {
		out[r.AppID] = append(out[r.AppID], r.AccountID)
	}
	return out, nil
}

// ListApps implements mapper.Store.
func (s *Store) ListApps(ctx context.Context) ([]mapper.WorkerApp, error) {
	var rows []appRow
	if err := s.read.NewSelect().Model(&rows).Order("created_at", "id").Scan(ctx); err != nil {
		return nil, translate(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	accounts, err := s.accountsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]mapper.WorkerApp, len(rows))
	for i := range rows {
		out[i] = *rows[i].app(accounts[rows[i].ID])
	}
	return out, nil
}

// UpdateApp implements mapper.Store.
func (s *Store) UpdateApp(ctx context.Context, app *mapper.WorkerApp) error {
	app.UpdatedAt = time.Now().UTC()
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockApps(ctx, tx); err != nil {
			return err
		}
		var old appRow
		if err := tx.NewSelect().Model(&old).Where("id = ?", app.ID).Scan(ctx); err != nil {
			return fmt.Errorf("worker app %q: %w", app.ID, translate(err))
		}
		app.CreatedAt = fromUS(old.CreatedAt)
		if _, err := tx.NewUpdate().Model(toAppRow(app)).WherePK().Exec(ctx); err != nil {
			return translate(err)
		}
		if _, err := tx.NewDelete().Model((*accountRow)(nil)).Where("app_id = ?", app.ID).Exec(ctx); err != nil {
			return translate(err)
		}
		return insertAccounts(ctx, tx, app)
	})
}

// DeleteApp implements mapper.Store.
func (s *Store) DeleteApp(ctx context.Context, id string) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Model((*accountRow)(nil)).Where("app_id = ?", id).Exec(ctx); err != nil {
			return translate(err)
		}
		res, err := tx.NewDelete().Model((*appRow)(nil)).Where("id = ?", id).Exec(ctx)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("worker app %q: %w", id, mapper.ErrNotFound)
		}
		return nil
	})
}

// AppsForAccounts implements mapper.Store.
func (s *Store) AppsForAccounts(ctx context.Context, accountIDs []string) (map[string][]*mapper.WorkerApp, error) {
	out := map[string][]*mapper.WorkerApp{}
	if len(accountIDs) == 0 {
		return out, nil
	}
	rows, err := servingApps(ctx, s.read, accountIDs, func(q *bun.SelectQuery) { q.Where("a.enabled = ?", true) })
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	accounts := map[string][]string{}
	if len(ids) > 0 {
		if accounts, err = s.accountsOf(ctx, ids); err != nil {
			return nil, err
		}
	}
	apps := map[string]*mapper.WorkerApp{}
	for _, r := range rows {
		app := apps[r.ID]
		if app == nil {
			app = r.appRow.app(accounts[r.ID])
			apps[r.ID] = app
		}
		out[r.AccountID] = append(out[r.AccountID], app)
	}
	return out, nil
}

// servingRow is an app serving one of the accounts asked about.
type servingRow struct {
	AccountID string `bun:"account_id"`
	appRow
}

// servingApps reads, for each of the accounts, the apps serving some
// field of it, narrowed by filter.
func servingApps(ctx context.Context, db bun.IDB, accounts []string, filter func(*bun.SelectQuery)) ([]servingRow, error) {
	var rows []servingRow
	q := db.NewSelect().
		ColumnExpr("aa.account_id, a.*").
		TableExpr("mapper_app_accounts AS aa").
		Join("JOIN mapper_worker_apps AS a ON a.id = aa.app_id").
		Where("aa.account_id IN (?)", bun.In(accounts))
	filter(q)
	if err := q.Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, translate(err)
	}
	return rows, nil
}
