package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chatico/mapper/testing/containertest"
	"github.com/chatico/mapper/testing/mappertest"
)

func TestDatabaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql+asyncpg://u:p@db:5432/mapper":           "postgres://u:p@db:5432/mapper",
		"postgresql+psycopg://u:p@db/mapper?sslmode=verify": "postgres://u:p@db/mapper?sslmode=verify",
		"postgresql+asyncpg://u:p@db/mapper?ssl=require":    "postgres://u:p@db/mapper?sslmode=require",
		"postgresql://u:p@db/mapper":                        "postgresql://u:p@db/mapper",
		"postgres://u:p@db/mapper?sslmode=disable":          "postgres://u:p@db/mapper?sslmode=disable",
		"": "",
	} {
		if got := databaseURL(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// The original service's .env, DATABASE_URL in SQLAlchemy's asyncpg form
// and all, starts the server on PostgreSQL; the start-up line names the
// database and the cache, never the password; healthcheck answers.
func TestOriginalEnvFile(t *testing.T) {
	pg, err := url.Parse(containertest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pg.Scheme = "postgresql+asyncpg"
	pg.RawQuery = "ssl=disable"
	original := strings.Join([]string{
		"# the original service's .env",
		"INSTAGRAM_APP_ID=1234567890",
		"INSTAGRAM_APP_SECRET=original-app-secret",
		"INSTAGRAM_ACCESS_TOKEN=EAAG-original-token",
		"WEBHOOK_VERIFY_TOKEN=original-verify-token",
		"WEBHOOK_SECRET=",
		"SECRET_KEY=original-secret-key",
		"DATABASE_URL=" + pg.String(),
		"REDIS__URL=",
		"",
	}, "\n")
	logs := &syncBuffer{wrote: make(chan struct{}, 1)}
	base, stop := startServerLogs(t, filepath.Join(t.TempDir(), ".env"), original, nil, logs)
	defer stop()
	password, _ := pg.User.Password()
	start := logs.String()
	if !strings.Contains(start, `"store":"postgres postgres://`) || !strings.Contains(start, `"cache":"in-process"`) || strings.Contains(start, ":"+password+"@") {
		t.Errorf("start-up line:\n%s", start)
	}
	resp, err := http.Get(base + "/webhook/?hub.mode=subscribe&hub.verify_token=original-verify-token&hub.challenge=42")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("handshake: %v %v", err, resp)
	}
	resp.Body.Close()
	if code, body := adminDo(t, http.MethodGet, base+"/worker-apps/", "original-secret-key", ""); code != 200 {
		t.Errorf("SECRET_KEY as the admin token: %d %s", code, body)
	}
	resp, err = http.DefaultClient.Do(mappertest.NewWebhook().Comment("17841400000000001", "1", "2", "x").Request(base+"/webhook/", "original-app-secret"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-env-file", "/nonexistent", "healthcheck"}, env(map[string]string{"PORT": port}), &out, io.Discard); err != nil || !strings.Contains(out.String(), `"status":"ok"`) {
		t.Errorf("healthcheck: %v %s", err, out.String())
	}
	if err := run(context.Background(), []string{"-env-file", "/nonexistent", "healthcheck"}, env(map[string]string{"PORT": "1"}), io.Discard, io.Discard); err == nil {
		t.Error("healthcheck passed with no server")
	}
}

// .env.example names every variable the README's table does, and, with
// its placeholders, starts the server.
func TestEnvExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := parseDotenv(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)`").FindAllSubmatch(readme, -1) {
		name := string(m[1])
		if _, ok := vals[name]; !ok && !strings.HasPrefix(name, "MAPPER_TEST_") {
			t.Errorf(".env.example lacks %s, which the README documents", name)
		}
	}
	// The compose file's database and cache are not here: SQLite, in-process.
	local := regexp.MustCompile(`(?m)^(DATABASE_URL|REDIS__URL)=.*$`).ReplaceAllString(string(raw), "$1=")
	base, stop := startServer(t, local, map[string]string{"SQLITE_PATH": filepath.Join(t.TempDir(), "m.db")})
	defer stop()
	if code, body := adminDo(t, http.MethodGet, base+"/worker-apps/", vals["ADMIN_TOKEN"], ""); code != 200 {
		t.Errorf("admin API with .env.example's token: %d %s", code, body)
	}
}
