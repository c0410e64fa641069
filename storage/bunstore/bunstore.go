// Package bunstore is a mapper.Store on bun, for PostgreSQL 15+ (pgdialect,
// through pgx) and SQLite (sqlitedialect, through the pure-Go
// modernc.org/sqlite driver, so CGO_ENABLED=0 builds work).
//
// Open a store with [OpenPostgres] or [OpenSQLite], or wrap a *bun.DB of
// your own with [New]; then call [Store.Migrate] (the reference server
// does it at start-up). The schema is a set of migrations embedded in the
// package (SQL, and one in Go whose way down expands compressed payloads)
// and run with bun's migrate package, recorded in the table
// mapper_migrations; [Store.Rollback] and [Store.MigrationStatus] serve
// operators. Every table is prefixed mapper_.
//
// # Durability and the outbox
//
// CreateEvent writes the event, its per-item deduplication keys and its
// accounts in one transaction; the keys' primary key is what lets only one
// of two concurrent copies of a change through. Work is claimed with one
// UPDATE … WHERE id IN (SELECT … ORDER BY next_attempt_at LIMIT n) …
// RETURNING statement that sets a new lease token and hides the rows
// until the lease ends: on PostgreSQL the inner SELECT takes FOR UPDATE
// SKIP LOCKED, so replicas claiming at once never get the same row; SQLite
// has a single writer, which serialises claims by itself. Every later
// write of a claimed row checks the lease token, so a holder whose lease
// ran out (a crashed or paused replica) cannot overwrite the work of the
// one that took over: it gets mapper.ErrLeaseLost.
//
// On PostgreSQL, CreateEvent also sends NOTIFY mapper_work in its
// transaction, and [Store.ListenForWork] LISTENs on a dedicated
// connection, so replicas wake each other when the event commits.
//
// SQLite runs in WAL mode with synchronous=FULL, foreign keys on, and a
// single connection, so a webhook answered 200 is on disk.
//
// On both databases, writes that arrive together share one transaction and
// one commit, made by one writer. At a moderate rate (writes 0.1 to 5 ms
// apart), where each would come alone, a webhook's event waits up to 15 ms
// from its arrival for the ones the rate says are coming; an idle store,
// or one whose writer is busy, commits it at once. A route (the deliveries
// of an event, with the attempts made while routing), written after the
// worker app has the webhook, may wait up to 5 ms for a write someone
// waits for (a webhook's; on SQLite also a claim), to share its commit,
// and so may an attempt on SQLite. So with mapper.WithSyncDelivery an idle store
// answers up to 5 ms later.
//
// # Indexes
//
// Times are Unix microseconds in BIGINT columns, the same in both
// dialects. The claim queries read partial indexes over pending rows only
// (mapper_events_due, mapper_deliveries_due), so their cost does not grow
// with the number of finished events; the log reads the time indexes
// (received_at, created_at) backwards, newest first, with the status or
// the account in front when filtered, and pages with a keyset cursor
// (time, ID) rather than OFFSET. The unfiltered time indexes hold the
// time alone: the few rows of one instant are sorted by ID among
// themselves. TestPostgresQueryPlans and the SQLite plan tests fail on a
// scan of a history table or any other sort.
//
// # Storage
//
// Payloads, and the bodies of deliveries that carry only part of one,
// are stored compressed: Zstandard with a preset dictionary of Instagram's
// webhook shapes, which stores a one-comment webhook of about 340 bytes in
// about 130. Each row names its codec (rows stored before are read as they
// are), and a codec's dictionary never changes. Compression runs in the
// caller of CreateEvent, not in the single writer.
//
// A delivery's row holds its last attempt (the attempt_* columns); the
// attempts table holds only the ones before it, moved there when the next
// is recorded. A delivery that succeeds at once writes no attempt row.
package bunstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chatico/mapper"
)

//go:embed migrations
var migrationFiles embed.FS

// Store is a mapper.Store on a bun database. It is safe for concurrent use.
type Store struct {
	db *bun.DB
	// read serves the reads that need no transaction: on SQLite a pool of
	// its own (WAL lets readers run beside the writer), so that they do
	// not queue behind commits; elsewhere db itself.
	read     *bun.DB
	pg       bool
	ownsDB   bool
	claimSQL string     // the FOR UPDATE SKIP LOCKED suffix on PostgreSQL
	commits  *committer // events and routes; on SQLite every write (see commit.go)
	// checkpoints copies SQLite's WAL into the database file beside the
	// writer (see checkpoint.go); nil for a database the caller opened.
	checkpoints *checkpointer
	hot         prepared // see hot.go
	// cautious counts the batches still to be committed with savepoints
	// (see commitShared); the SQLite committer's alone.
	cautious int
	// recent is the keys the PostgreSQL committer saw last (commitPG).
	recent *recentKeys
}

// The Store has every optional part the Mapper looks for.
var _ interface {
	mapper.Store
	Ping(ctx context.Context) error
	Stats(ctx context.Context, since time.Time) (mapper.Stats, error)
	ListenForWork(ctx context.Context, wake func()) error
	ExtendLeases(ctx context.Context, tokens []string, until time.Time) error
} = (*Store)(nil)

// New wraps db, whose dialect must be PostgreSQL or SQLite. The caller
// keeps ownership of db: Close does not close it.
func New(db *bun.DB) (*Store, error) {
	s := &Store{db: db, read: db}
	switch db.Dialect().Name() {
	case dialect.PG:
		s.pg = true
		s.claimSQL = " FOR UPDATE SKIP LOCKED"
		s.recent = newRecentKeys()
	case dialect.SQLite:
	default:
		return nil, fmt.Errorf("bunstore: dialect %s is not supported (PostgreSQL or SQLite)", db.Dialect().Name())
	}
	write := s.commitShared
	if s.pg {
		write = s.commitPG
	}
	s.commits = newCommitter(storeLinger, write)
	return s, nil
}

// OpenPostgres connects to PostgreSQL with a pgx connection string
// ("postgres://user:pass@host:5432/db?sslmode=disable").
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("bunstore: %w", err)
	}
	sqldb.SetMaxOpenConns(20)
	sqldb.SetMaxIdleConns(10)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		// pgx names the user, database and address, never the password:
		// a connection string it cannot parse comes back with it masked.
		return nil, fmt.Errorf("bunstore: connecting to PostgreSQL: %w", err)
	}
	s, _ := New(db)
	s.ownsDB = true
	return s, nil
}

// OpenSQLite opens (creating it when absent) the SQLite database file at
// path. A file it creates is in incremental auto-vacuum mode, so that the
// space pruning frees can be given back (see Store.Prune). The store
// writes on one connection, reads on up to four others, and copies the
// write-ahead log back into the file on one more, beside the writer
// (SQLite's default would have the writer do it, in the middle of a
// commit); a store from New over a database the caller opened keeps
// SQLite's default.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	return openSQLite(ctx, path, defaultPacing)
}

// openSQLite is OpenSQLite with its checkpoints paced by pace.
func openSQLite(ctx context.Context, path string, pace pacing) (*Store, error) {
	if path == "" {
		return nil, errors.New("bunstore: empty SQLite path")
	}
	dsn := "file:" + path + "?_pragma=auto_vacuum(INCREMENTAL)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=mmap_size(67108864)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(" + strconv.Itoa(walBackstop) + ")&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("bunstore: %w", err)
	}
	// One connection: SQLite has one writer, and a second connection would
	// only wait on the lock or fail with SQLITE_BUSY.
	sqldb.SetMaxOpenConns(1)
	sqldb.SetConnMaxIdleTime(0)
	sqldb.SetConnMaxLifetime(0)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("bunstore: opening SQLite %s: %w", path, err)
	}
	// Readers: several connections, read only, opened after the writer so
	// that the file and its WAL mode exist.
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=mmap_size(67108864)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bunstore: %w", err)
	}
	rdb.SetMaxOpenConns(4)
	cdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		db.Close()
		rdb.Close()
		return nil, fmt.Errorf("bunstore: %w", err)
	}
	cdb.SetMaxOpenConns(1)
	s, _ := New(db)
	s.read = bun.NewDB(rdb, sqlitedialect.New())
	s.checkpoints = newCheckpointer(cdb, path+"-shm", pace)
	s.ownsDB = true
	return s, nil
}

// inTx runs fn in a transaction: its own on PostgreSQL, a shared one of
// the committer on SQLite (see commit.go).
func (s *Store) inTx(ctx context.Context, fn func(context.Context, bun.Tx) error) error {
	return s.write(commitReq{ctx: ctx, fn: fn})
}

// write runs req's fn as inTx does; a deferrable one (a write that
// records what was done already) may, on SQLite, wait for a write someone
// waits for, and share its commit (see maxDefer).
func (s *Store) write(req commitReq) error {
	if s.pg {
		return s.db.RunInTx(req.ctx, nil, req.fn)
	}
	return s.commits.send(req)
}

// DB returns the underlying bun database.
func (s *Store) DB() *bun.DB { return s.db }

// Close stops the committer and closes the database when the Store
// opened it.
func (s *Store) Close() error {
	s.commits.close()
	errs := []error{s.checkpoints.close()}
	if p := s.hot.stmts.Load(); p != nil {
		errs = append(errs, closeStmts(*p))
	}
	if !s.ownsDB {
		return errors.Join(errs...)
	}
	if s.read != s.db {
		errs = append(errs, s.read.Close())
	}
	return errors.Join(append(errs, s.db.Close())...)
}

// migrator reads the embedded migrations. They are one set for both
// dialects; the few words that differ are template fields.
func (s *Store) migrator() (*migrate.Migrator, error) { return s.migratorUpTo("") }

// migratorUpTo reads the migrations up to and including the one named
// last ("" for all), so that a test can build an older schema and
// migrate data on from it.
func (s *Store) migratorUpTo(last string) (*migrate.Migrator, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	all := migrate.NewMigrations()
	if err := all.Discover(sub); err != nil {
		return nil, fmt.Errorf("bunstore: migrations: %w", err)
	}
	all.Add(compressedPayloads())
	ms := all
	if last != "" {
		ms = migrate.NewMigrations()
		for _, m := range all.Sorted() {
			if m.Name <= last {
				ms.Add(m)
			}
		}
	}
	words := map[string]string{"Bytes": "BLOB", "SQLite": "yes"}
	if s.pg {
		words["Bytes"], words["SQLite"] = "BYTEA", ""
	}
	return migrate.NewMigrator(s.db, ms, migrate.WithTableName("mapper_migrations"),
		migrate.WithLocksTableName("mapper_migration_locks"), migrate.WithMarkAppliedOnSuccess(true),
		migrate.WithTemplateData(words)), nil
}

// Migrate brings the schema up to date. Concurrent calls from several
// replicas are safe: one applies, the others wait for its lock.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	m, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("bunstore: creating the migrations table: %w", err)
	}
	if err := s.lock(ctx, m); err != nil {
		return nil, err
	}
	defer m.Unlock(context.WithoutCancel(ctx)) //nolint:errcheck // a failed unlock surfaces at the next lock
	g, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("bunstore: migrating: %w", err)
	}
	return names(g), nil
}

// Rollback undoes the last group of applied migrations.
func (s *Store) Rollback(ctx context.Context) ([]string, error) {
	m, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, err
	}
	if err := s.lock(ctx, m); err != nil {
		return nil, err
	}
	defer m.Unlock(context.WithoutCancel(ctx)) //nolint:errcheck
	g, err := m.Rollback(ctx)
	if err != nil {
		return nil, fmt.Errorf("bunstore: rolling back: %w", err)
	}
	return names(g), nil
}

// MigrationStatus lists every known migration and whether it is applied.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	m, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, err
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("bunstore: %w", err)
	}
	out := make([]MigrationState, 0, len(ms))
	for _, mg := range ms {
		out = append(out, MigrationState{Name: mg.Name + "_" + mg.Comment, Applied: mg.IsApplied(), AppliedAt: mg.MigratedAt})
	}
	return out, nil
}

// MigrationState is one migration's status.
type MigrationState struct {
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// lock takes the migration lock, waiting while another process holds it.
func (s *Store) lock(ctx context.Context, m *migrate.Migrator) error {
	for {
		err := m.Lock(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bunstore: waiting for the migration lock: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func names(g *migrate.MigrationGroup) []string {
	if g == nil {
		return nil
	}
	var out []string
	for _, m := range g.Migrations {
		out = append(out, m.Name+"_"+m.Comment)
	}
	return out
}

// translate maps backend errors onto the root's errors, in one place.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %v", mapper.ErrNotFound, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "23503") {
		return fmt.Errorf("%w: %s", mapper.ErrConflict, pe.Message)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %v", mapper.ErrConflict, err)
		}
	}
	return fmt.Errorf("bunstore: %w", err)
}

// noNUL refuses values holding a NUL with ErrInvalidInput. bun writes
// values into the SQL text, where SQLite's tokenizer ends a literal at a
// NUL, and PostgreSQL's text cannot hold one: such a value would otherwise
// read as the database failing.
func noNUL(what string, values ...string) error {
	for _, v := range values {
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s %q holds a NUL: %w", what, v, mapper.ErrInvalidInput)
		}
	}
	return nil
}

// appNUL checks the text of an app.
func appNUL(app *mapper.WorkerApp) error {
	return errors.Join(noNUL("worker app", app.ID, app.Name, app.URL, app.Secret), noNUL("account", app.AccountIDs...), noNUL("field", app.Fields...))
}

// routesNUL checks the text of routes.
func routesNUL(routes []mapper.Route, accounts []string) error {
	errs := []error{noNUL("account", accounts...)}
	for _, r := range routes {
		errs = append(errs, noNUL("route", r.AccountID), noNUL("field", r.Fields...))
	}
	return errors.Join(errs...)
}
