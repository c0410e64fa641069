// Package containertest gives tests a real PostgreSQL and a real Redis,
// through testcontainers-go.
//
// One container of each kind is started per test binary, on first use, and
// every test gets its own fresh database (PostgreSQL) or logical database
// number (Redis), so tests stay independent and can run in parallel. Call
// [Main] from TestMain so the containers are removed when the tests end:
//
//	func TestMain(m *testing.M) { os.Exit(containertest.Main(m)) }
//
// Environment:
//
//   - MAPPER_TEST_POSTGRES_IMAGE, MAPPER_TEST_REDIS_IMAGE: the images
//     (default postgres:15 and redis:7, the official ones). Without a
//     registry, build local look-alikes with images/build.sh.
//   - MAPPER_TEST_DATABASE_URL: use this PostgreSQL server instead of a
//     container (each test still gets a database of its own, so the role
//     needs CREATEDB). MAPPER_TEST_REDIS_URL likewise for Redis.
//   - MAPPER_TEST_REQUIRE_CONTAINERS=1: a test that cannot get its
//     container fails instead of being skipped. CI sets it.
//   - testcontainers' own variables, e.g. TESTCONTAINERS_RYUK_DISABLED and
//     TESTCONTAINERS_HOST_OVERRIDE (see images/README.md).
package containertest

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for creating databases
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

var (
	pgOnce  sync.Once
	pgURL   string
	pgErr   error
	pgCtr   testcontainers.Container
	rdOnce  sync.Once
	rdURL   string
	rdErr   error
	rdCtr   testcontainers.Container
	rdNext  atomic.Int32
	dbCount atomic.Int64
)

// Main runs the tests, then stops the containers they started, and returns
// the exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	for _, c := range []testcontainers.Container{pgCtr, rdCtr} {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
	}
	return code
}

func unavailable(tb testing.TB, what string, err error) {
	tb.Helper()
	if os.Getenv("MAPPER_TEST_REQUIRE_CONTAINERS") == "1" {
		tb.Fatalf("containertest: %s is required (MAPPER_TEST_REQUIRE_CONTAINERS=1) but unavailable: %v", what, err)
	}
	tb.Skipf("containertest: no %s (%v); skipping. Start Docker, or set MAPPER_TEST_DATABASE_URL; set MAPPER_TEST_REQUIRE_CONTAINERS=1 to fail instead", what, oneLine(err))
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// PostgresURL returns the URL of a new, empty PostgreSQL database for this
// test; it is dropped when the test ends.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	pgOnce.Do(func() {
		if u := os.Getenv("MAPPER_TEST_DATABASE_URL"); u != "" {
			pgURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		image := cmpOr(os.Getenv("MAPPER_TEST_POSTGRES_IMAGE"), "postgres:15")
		ctr, err := tcpostgres.Run(ctx, image,
			tcpostgres.WithDatabase("mapper"), tcpostgres.WithUsername("mapper"), tcpostgres.WithPassword("mapper"),
			tcpostgres.BasicWaitStrategies())
		if ctr != nil {
			pgCtr = ctr
		}
		if err != nil {
			pgErr = fmt.Errorf("starting %s: %w", image, err)
			return
		}
		pgURL, pgErr = ctr.ConnectionString(ctx, "sslmode=disable")
	})
	if pgErr != nil {
		unavailable(tb, "PostgreSQL", pgErr)
	}
	admin, err := sql.Open("pgx", pgURL)
	if err != nil {
		tb.Fatalf("containertest: %v", err)
	}
	defer admin.Close()
	name := fmt.Sprintf("mapper_test_%d_%d", os.Getpid(), dbCount.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		unavailable(tb, "PostgreSQL", fmt.Errorf("creating a test database: %w", err))
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", pgURL)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("containertest: dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(pgURL)
	if err != nil {
		tb.Fatalf("containertest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// RedisURL returns the URL of a Redis logical database of this test's own
// (redis://host:port/N); it is flushed when the test ends.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	rdOnce.Do(func() {
		if u := os.Getenv("MAPPER_TEST_REDIS_URL"); u != "" {
			rdURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		image := cmpOr(os.Getenv("MAPPER_TEST_REDIS_IMAGE"), "redis:7")
		ctr, err := tcredis.Run(ctx, image)
		if ctr != nil {
			rdCtr = ctr
		}
		if err != nil {
			rdErr = fmt.Errorf("starting %s: %w", image, err)
			return
		}
		rdURL, rdErr = ctr.ConnectionString(ctx)
	})
	if rdErr != nil {
		unavailable(tb, "Redis", rdErr)
	}
	// Redis has 16 logical databases by default; 0 is left to humans.
	n := rdNext.Add(1)%15 + 1
	u, err := url.Parse(rdURL)
	if err != nil {
		tb.Fatalf("containertest: %v", err)
	}
	u.Path = "/" + strconv.Itoa(int(n))
	if err := flushRedis(u.Host, int(n)); err != nil {
		unavailable(tb, "Redis", err)
	}
	tb.Cleanup(func() { _ = flushRedis(u.Host, int(n)) })
	return u.String()
}

// flushRedis empties one logical database, speaking RESP directly so that
// this package needs no Redis client.
func flushRedis(addr string, db int) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	n := strconv.Itoa(db)
	if _, err := fmt.Fprintf(c, "*2\r\n$6\r\nSELECT\r\n$%d\r\n%s\r\n*1\r\n$7\r\nFLUSHDB\r\n", len(n), n); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for range 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("redis answered %q", strings.TrimSpace(line))
		}
	}
	return nil
}

// PostgresContainer returns the shared PostgreSQL container, started if
// needed, for tests that stop and start the server; nil with
// MAPPER_TEST_DATABASE_URL.
func PostgresContainer(tb testing.TB) testcontainers.Container {
	tb.Helper()
	PostgresURL(tb)
	return pgCtr
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// RedisContainer returns the shared Redis container, started if needed,
// for tests that stop and start it; nil with MAPPER_TEST_REDIS_URL.
func RedisContainer(tb testing.TB) testcontainers.Container {
	tb.Helper()
	RedisURL(tb)
	return rdCtr
}
