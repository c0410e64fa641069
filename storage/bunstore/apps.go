package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
	"github.com/chatico/mapper/internal/storekit"
)

// CreateApp implements mapper.Store.
func (s *Store) CreateApp(ctx context.Context, app *mapper.WorkerApp) error {
	if err := appNUL(app); err != nil {
		return err
	}
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
	put, err := storekit.AccountRoutes(app.AccountIDs, nil)
	if err != nil {
		return err
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
		return s.putRoutes(ctx, tx, app, put)
	})
}

// appsLockKey is the PostgreSQL advisory lock that serialises app and
// route writes: whether two apps overlap on an (account, field) pair is a
// rule no unique index can hold, so it is checked and written under locks.
// Writing an app takes it exclusively. Writing a few routes takes it shared,
// and a lock of each account's own (accountLock), so that onboardings of
// different accounts run side by side; a large batch takes it exclusively
// rather than thousands of locks, which PostgreSQL's lock table bounds.
// SQLite has one writer already.
const appsLockKey = 0x6d61707065720001

// fewRoutes is the most routes a write locks one by one.
const fewRoutes = 64

func (s *Store) lockApps(ctx context.Context, tx bun.Tx) error {
	if !s.pg {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(appsLockKey))
	return translate(err)
}

// lockRoutes locks what a write of routes to these accounts needs.
func (s *Store) lockRoutes(ctx context.Context, tx bun.Tx, accounts []string) error {
	if !s.pg {
		return nil
	}
	if len(accounts) > fewRoutes {
		return s.lockApps(ctx, tx)
	}
	keys := make([]int64, 0, len(accounts)+1)
	for _, a := range accounts {
		keys = append(keys, accountLock(a))
	}
	// In one order, so that two writers never wait for each other.
	slices.Sort(keys)
	keys = slices.Compact(keys)
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock_shared(?), pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k",
		int64(appsLockKey), pgdialect.Array(keys))
	return translate(err)
}

// accountLock is the advisory lock of one account's routes: a hash, so
// two accounts may share one, which only makes them wait for each other.
func accountLock(account string) int64 {
	h := fnv.New64a()
	h.Write([]byte(account))
	return int64(h.Sum64()&^(1<<63)) | 1<<62 // away from appsLockKey
}

// chunk bounds the accounts of one statement, well under both databases'
// limits on parameters.
const chunk = 1000

// putRoutes writes routes of app after checking, in the caller's
// transaction, that they clash with no other app's.
func (s *Store) putRoutes(ctx context.Context, tx bun.Tx, app *mapper.WorkerApp, put []mapper.Route) error {
	if len(put) == 0 {
		return nil
	}
	mine := make(map[string]mapper.Route, len(put))
	for _, r := range put {
		mine[r.AccountID] = r
	}
	if err := clashes(ctx, tx, app, mine); err != nil {
		return err
	}
	for part := range slices.Chunk(put, chunk) {
		rows := make([]routeRow, len(part))
		for i := range part {
			rows[i] = toRouteRow(app.ID, &part[i])
		}
		if _, err := tx.NewInsert().Model(&rows).On("CONFLICT (account_id, app_id) DO UPDATE").Set("fields = EXCLUDED.fields").Exec(ctx); err != nil {
			return translate(err)
		}
	}
	return nil
}

// otherRoute is another app's route to an account asked about, with the app.
type otherRoute struct {
	AccountID   string `bun:"account_id"`
	RouteFields string `bun:"route_fields"`
	appRow
}

// clashes returns every clash between app's routes in mine (by account)
// and other apps' routes to the same accounts, joined.
func clashes(ctx context.Context, db bun.IDB, app *mapper.WorkerApp, mine map[string]mapper.Route) error {
	accounts := make([]string, 0, len(mine))
	for a := range mine {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	var errs []error
	for part := range slices.Chunk(accounts, chunk) {
		var others []otherRoute
		err := db.NewSelect().ColumnExpr("aa.account_id, aa.fields AS route_fields, a.*").
			TableExpr("mapper_app_accounts AS aa").Join("JOIN mapper_worker_apps AS a ON a.id = aa.app_id").
			Where("aa.account_id IN (?) AND aa.app_id <> ?", bun.In(part), app.ID).OrderExpr("aa.account_id, aa.app_id").Scan(ctx, &others)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return translate(err)
		}
		for _, o := range others {
			other := o.appRow.app()
			route := (&routeRow{AccountID: o.AccountID, AppID: o.ID, Fields: o.RouteFields}).route()
			if field, clash := app.Clash(mine[o.AccountID], other, route); clash {
				errs = append(errs, &mapper.RouteConflictError{AccountID: o.AccountID, Field: field, AppID: other.ID})
			}
		}
	}
	return errors.Join(errs...)
}

// ListApps implements mapper.Store.
func (s *Store) ListApps(ctx context.Context) ([]mapper.WorkerApp, error) {
	var rows []appRow
	if err := s.read.NewSelect().Model(&rows).Order("created_at", "id").Scan(ctx); err != nil {
		return nil, translate(err)
	}
	out := make([]mapper.WorkerApp, len(rows))
	for i := range rows {
		out[i] = *rows[i].app()
	}
	return out, nil
}

// UpdateApp implements mapper.Store.
func (s *Store) UpdateApp(ctx context.Context, app *mapper.WorkerApp) error {
	if err := appNUL(app); err != nil {
		return err
	}
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
		if app.AccountIDs == nil {
			// The routes stay; those sharing an account with another app
			// must not clash under the app's new fields.
			shared, err := sharedRoutes(ctx, tx, app.ID)
			if err != nil {
				return err
			}
			return clashes(ctx, tx, app, shared)
		}
		current, err := appRoutes(ctx, tx, app.ID, app.AccountIDs)
		if err != nil {
			return err
		}
		put, err := storekit.AccountRoutes(app.AccountIDs, current)
		if err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*routeRow)(nil)).Where("app_id = ?", app.ID).Exec(ctx); err != nil {
			return translate(err)
		}
		return s.putRoutes(ctx, tx, app, put)
	})
}

// appRoutes reads an app's routes to the given accounts.
func appRoutes(ctx context.Context, db bun.IDB, appID string, accounts []string) (map[string]mapper.Route, error) {
	out := make(map[string]mapper.Route, len(accounts))
	for part := range slices.Chunk(accounts, chunk) {
		var rows []routeRow
		if err := db.NewSelect().Model(&rows).Where("app_id = ? AND account_id IN (?)", appID, bun.In(part)).Scan(ctx); err != nil {
			return nil, translate(err)
		}
		for i := range rows {
			out[rows[i].AccountID] = rows[i].route()
		}
	}
	return out, nil
}

// sharedRoutes reads the routes of an app to accounts another app routes
// too.
func sharedRoutes(ctx context.Context, db bun.IDB, appID string) (map[string]mapper.Route, error) {
	var rows []routeRow
	err := db.NewSelect().Model(&rows).Where("aa.app_id = ?", appID).
		Where("EXISTS (SELECT 1 FROM mapper_app_accounts AS o WHERE o.account_id = aa.account_id AND o.app_id <> aa.app_id)").Scan(ctx)
	if err != nil {
		return nil, translate(err)
	}
	out := make(map[string]mapper.Route, len(rows))
	for i := range rows {
		out[rows[i].AccountID] = rows[i].route()
	}
	return out, nil
}

// DeleteApp implements mapper.Store.
func (s *Store) DeleteApp(ctx context.Context, id string) error {
	if err := noNUL("worker app", id); err != nil {
		return err
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockApps(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*routeRow)(nil)).Where("app_id = ?", id).Exec(ctx); err != nil {
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

// SetRoutes implements mapper.Store.
func (s *Store) SetRoutes(ctx context.Context, appID string, put []mapper.Route, remove []string) error {
	if err := errors.Join(noNUL("worker app", appID), routesNUL(put, remove)); err != nil {
		return err
	}
	accounts := slices.Clone(remove)
	for _, r := range put {
		accounts = append(accounts, r.AccountID)
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockRoutes(ctx, tx, accounts); err != nil {
			return err
		}
		var r appRow
		if err := tx.NewSelect().Model(&r).Where("id = ?", appID).Scan(ctx); err != nil {
			return fmt.Errorf("worker app %q: %w", appID, translate(err))
		}
		for part := range slices.Chunk(remove, chunk) {
			if _, err := tx.NewDelete().Model((*routeRow)(nil)).Where("app_id = ? AND account_id IN (?)", appID, bun.In(part)).Exec(ctx); err != nil {
				return translate(err)
			}
		}
		return s.putRoutes(ctx, tx, r.app(), put)
	})
}

// ListRoutes implements mapper.Store. The primary key (account_id, app_id)
// serves lookups by account; the index (app_id, account_id) an app's pages.
func (s *Store) ListRoutes(ctx context.Context, q mapper.RouteQuery) (mapper.Page[mapper.Route], error) {
	limit := ids.PageLimit(q.Limit)
	if err := errors.Join(noNUL("worker app", q.AppID, q.Field), noNUL("account", q.Accounts...)); err != nil {
		return mapper.Page[mapper.Route]{}, err
	}
	if len(q.Accounts) > ids.MaxPageLimit {
		return mapper.Page[mapper.Route]{}, fmt.Errorf("%d accounts asked about, %d at most: %w", len(q.Accounts), ids.MaxPageLimit, mapper.ErrInvalidInput)
	}
	var rows []routeRow
	sel := s.read.NewSelect().Model(&rows).OrderExpr("aa.app_id, aa.account_id").Limit(int64(limit + 1))
	if q.AppID != "" {
		sel.Where("aa.app_id = ?", q.AppID)
	}
	if q.Accounts != nil {
		if len(q.Accounts) == 0 {
			return mapper.Page[mapper.Route]{}, nil
		}
		sel.Where("aa.account_id IN (?)", bun.In(q.Accounts))
	}
	if q.Field != "" {
		// A route takes the field when it names it, or names none and its
		// app takes every field or names it. Field names are plain words,
		// so a quoted one is found in the JSON text as it is.
		contains := "instr(%s, ?) > 0"
		if s.pg {
			contains = "strpos(%s, ?) > 0"
		}
		quoted := `"` + q.Field + `"`
		sel.Where("(aa.fields <> '[]' AND "+fmt.Sprintf(contains, "aa.fields")+") OR (aa.fields = '[]' AND EXISTS (SELECT 1 FROM mapper_worker_apps AS a WHERE a.id = aa.app_id AND (a.fields = '[]' OR "+fmt.Sprintf(contains, "a.fields")+")))",
			quoted, quoted)
	}
	if q.Cursor != "" {
		app, account, err := storekit.DecodeRouteCursor(q.Cursor)
		if err != nil {
			return mapper.Page[mapper.Route]{}, err
		}
		sel.Where("(aa.app_id, aa.account_id) > (?, ?)", app, account)
	}
	if err := sel.Scan(ctx); err != nil {
		return mapper.Page[mapper.Route]{}, translate(err)
	}
	var page mapper.Page[mapper.Route]
	for i := range rows {
		if i == limit {
			page.NextCursor = storekit.EncodeRouteCursor(rows[i-1].AppID, rows[i-1].AccountID)
			break
		}
		page.Items = append(page.Items, rows[i].route())
	}
	return page, nil
}
