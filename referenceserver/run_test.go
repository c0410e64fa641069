package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper/testing/mappertest"
)

// syncBuffer is written by run and read by the test; it signals each write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if out := b.String(); strings.Contains(out, s) {
			return out
		}
		select {
		case <-b.wrote:
		case <-deadline:
			t.Fatalf("output never contained %q:\n%s", s, b.String())
		}
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{wrote: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-demo", "-env-file", "/nonexistent"}, env(map[string]string{"PORT": "0"}), out, io.Discard)
	}()
	text := out.waitFor(t, "Ctrl-C stops it")
	want := map[string]string{
		"comment on @shop's post":              "shop (original bytes, delivered)",
		"comment on @studio's post":            "studio (original bytes, delivered)",
		"one POST for both accounts":           "shop (split, delivered), studio-inbox (split, delivered)",
		"Meta retries the first webhook":       "duplicate",
		"forged (wrong signature)":             "401",
		"account with no worker app":           "unroutable (no app for 17841400000000003)",
		"@shop mentioned on @studio's post":    "shop (original bytes, delivered)",
		"DM to @studio on the standby channel": "studio-inbox (original bytes, delivered)",
		"a field's type changed by Meta":       "studio (original bytes, delivered)",
	}
	for _, line := range strings.Split(text, "\n") {
		for name, w := range want {
			if strings.HasPrefix(line, name+" ") {
				if !strings.Contains(line, w) {
					t.Errorf("%q: line %q lacks %q", name, line, w)
				}
				delete(want, name)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("cases missing from the table: %v\n%s", want, text)
	}
	if !strings.Contains(text, "shop 3, studio 2, studio-inbox 2; Graph API lookups: 1") || !strings.Contains(text, "X-Mapper-Media: 18000000000000002=username:studio") {
		t.Errorf("summary line wrong:\n%s", text)
	}
	// The console it names takes the token it prints.
	m := regexp.MustCompile(`The console: (http://\S+/console/) \(sign in with the admin token (\S+)\)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no console line:\n%s", text)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(m[1]+"sign-in", url.Values{"token": {m[2]}})
	if err != nil || resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("signing in to the demo's console: %v %v", err, resp)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		// No Graph API token: the default routes without one.
		{"nothing set", map[string]string{}, []string{"missing required configuration: INSTAGRAM_APP_SECRET (or WEBHOOK_SECRET), WEBHOOK_VERIFY_TOKEN"}},
		{"media_owner needs a token", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "OWNER_POLICY": "all"}, []string{"INSTAGRAM_ACCESS_TOKEN (needed by OWNER_POLICY=media_owner"}},
		{"enrichment needs a token", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "ENRICH_MEDIA": "mentions"}, []string{"INSTAGRAM_ACCESS_TOKEN (needed by ENRICH_MEDIA)"}},
		{"enrichment of an unknown field", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "INSTAGRAM_ACCESS_TOKEN": "t", "ENRICH_MEDIA": "mentions,mention"}, []string{`ENRICH_MEDIA: "mention" is not`}},
		{"entry policy needs no token", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "OWNER_POLICY": "entry", "PORT": "x"}, []string{`PORT "x"`}},
		{"bad values", map[string]string{"WEBHOOK_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "OWNER_POLICY": "guess", "DELIVERY_TIMEOUT": "soon", "MAX_BODY_BYTES": "10", "LOG_LEVEL": "loud", "SYNC_DELIVERY": "maybe"},
			[]string{"OWNER_POLICY", "DELIVERY_TIMEOUT", "MAX_BODY_BYTES", "LOG_LEVEL", "SYNC_DELIVERY"}},
		{"unreachable database", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "INSTAGRAM_ACCESS_TOKEN": "t", "DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=2"}, []string{"DATABASE_URL"}},
		// A password that is a word of the message must not mask it.
		{"password found in the message", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "DATABASE_URL": "postgres://u:p@127.0.0.1:1/x?connect_timeout=2"}, []string{"dial tcp 127.0.0.1:1", "user=u database=x"}},
		{"unparseable database URL", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "DATABASE_URL": "postgres://u:hunter2@[bad/x"}, []string{"DATABASE_URL", "cannot parse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), []string{"-env-file", "/nonexistent"}, env(tt.env), io.Discard, io.Discard)
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("password in the error: %v", err)
			}
			if tt.name == "nothing set" && strings.Contains(err.Error(), "ACCESS_TOKEN") {
				t.Errorf("the default policy asks for a Graph API token: %v", err)
			}
		})
	}
}

func TestDotenv(t *testing.T) {
	vals, err := parseDotenv(strings.NewReader("# comment\nA=1\nexport B = \"two words\\n\"\nC='lit $x'\nD=plain # note\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words\n", "C": "lit $x", "D": "plain"}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("%s = %q, want %q", k, vals[k], v)
		}
	}
	for _, bad := range []string{"NOEQUALS", "A=\"open", "B='open"} {
		if _, err := parseDotenv(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// startServer runs the server with the given .env content until the
// returned stop function is called, and returns its base URL.
func startServer(t *testing.T, dotenv string, extra map[string]string) (string, func()) {
	t.Helper()
	return startServerWith(t, filepath.Join(t.TempDir(), ".env"), dotenv, extra)
}

// startServerAt is startServer with the .env file at a path the test can
// rewrite.
func startServerAt(t *testing.T, envPath, dotenv string) (string, func()) {
	t.Helper()
	return startServerWith(t, envPath, dotenv, nil)
}

func startServerWith(t *testing.T, envPath, dotenv string, extra map[string]string) (string, func()) {
	t.Helper()
	return startServerLogs(t, envPath, dotenv, extra, &syncBuffer{wrote: make(chan struct{}, 1)})
}

func startServerLogs(t *testing.T, envPath, dotenv string, extra map[string]string, logs *syncBuffer) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dotenv += "PORT=" + strconv.Itoa(port) + "\n"
	if err := os.WriteFile(envPath, []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-env-file", envPath}, env(extra), io.Discard, logs) }()
	started := make(chan struct{})
	go func() { logs.waitFor(t, `"msg":"listening"`); close(started) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the server stopped at start: %v\n%s", err, logs.String())
	}
	return "http://127.0.0.1:" + strconv.Itoa(port), func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if !strings.Contains(logs.String(), `"msg":"stopped"`) {
			t.Errorf("no orderly stop in the logs:\n%s", logs.String())
		}
	}
}

func adminDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServerFromEnvFile starts the real server from a .env file, checks a
// webhook goes through, and shuts it down gracefully.
func TestServerFromEnvFile(t *testing.T) {
	worker := mappertest.NewWorkerApp("worker-secret-0123456789")
	t.Cleanup(worker.Close)
	db := filepath.Join(t.TempDir(), "data", "mapper.db")
	logs := &syncBuffer{wrote: make(chan struct{}, 1)}
	base, stop := startServerLogs(t, filepath.Join(t.TempDir(), ".env"), "INSTAGRAM_APP_SECRET=from-file\nWEBHOOK_VERIFY_TOKEN=verify-token-in-a-query\nOWNER_POLICY=entry\nADMIN_TOKEN=adm\nSQLITE_PATH="+db+"\n", map[string]string{"LOG_LEVEL": "debug"}, logs)
	if code, body := adminDo(t, http.MethodPost, base+"/worker-apps/", "adm", `{"name":"w","url":"`+worker.URL()+`","account_ids":["1"],"secret":"`+worker.Secret()+`"}`); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment("1", "2", "3", "x").Request(base+"/webhook/", "from-file"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if _, err := worker.WaitFor(wctx, 1); err != nil {
		t.Fatal(err)
	}
	// Meta's handshake carries the verify token in the query string.
	if resp, err := http.Get(base + "/webhook/?hub.mode=subscribe&hub.verify_token=verify-token-in-a-query&hub.challenge=42"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("handshake: %v %v", err, resp)
	}
	// Prometheus' /metrics is behind the admin token, and shows the same
	// count as the JSON metrics.
	if code, _ := adminDo(t, http.MethodGet, base+"/metrics", "wrong", ""); code != 401 {
		t.Errorf("/metrics without the token: %d", code)
	}
	code, prom := adminDo(t, http.MethodGet, base+"/metrics", "adm", "")
	if code != 200 || !strings.Contains(prom, `mapper_webhooks_received_total{mapper_outcome="accepted"`) {
		t.Errorf("/metrics: %d %.500s", code, prom)
	}
	stop()
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the SQLite file was not created: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) || !strings.Contains(out, `"trace_id":"`) {
		t.Errorf("no access log line with a trace ID:\n%.2000s", out)
	}
	if strings.Contains(out, "verify-token-in-a-query") {
		t.Error("the verify token reached the logs")
	}
	// GOMAXPROCS unset: it follows the load, and the server gives the
	// runtime's default back when it stops.
	procs := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	if procs != def {
		t.Errorf("GOMAXPROCS %d after the server stopped, want the default %d", procs, def)
	}
	if want := fmt.Sprintf(`"gomaxprocs":%d,"gomaxprocs_adaptive":true`, def); !strings.Contains(out, want) {
		t.Errorf("no %s in the logs:\n%.2000s", want, out)
	}
}

// TestRestartKeepsData: with nothing configured but the secrets, the server
// creates its SQLite file and migrates; after a restart its apps, events
// and deduplication keys are still there, and work left pending is
// delivered.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // the default SQLITE_PATH is relative to the working directory
	conf := "INSTAGRAM_APP_SECRET=s3cret\nWEBHOOK_VERIFY_TOKEN=vt\nOWNER_POLICY=entry\nADMIN_TOKEN=adm\nRETRY_MIN_BACKOFF=10ms\nRETRY_MAX_BACKOFF=20ms\n"
	// The worker app is down during the first run.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	workerAddr := ln.Addr().String()
	ln.Close()
	base, stop := startServer(t, conf, nil)
	if code, body := adminDo(t, http.MethodPost, base+"/worker-apps/", "adm", `{"name":"w","url":"http://`+workerAddr+`","account_ids":["1"],"secret":"0123456789abcdef"}`); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	hook := mappertest.NewWebhook().Comment("1", "2", "3", "kept").Bytes()
	resp, err := http.DefaultClient.Do(mappertest.SignedRequest(base+"/webhook/", "s3cret", hook))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	stop()
	if _, err := os.Stat(filepath.Join(dir, "mapper-data", "mapper.db")); err != nil {
		t.Fatalf("no SQLite file at the default path: %v", err)
	}

	// The worker comes up; the server restarts on the same file.
	worker := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(worker.Close)
	base, stop = startServer(t, conf, nil)
	defer stop()
	code, body := adminDo(t, http.MethodGet, base+"/worker-apps/", "adm", "")
	if code != 200 || !strings.Contains(body, workerAddr) {
		t.Fatalf("apps after restart: %d %s", code, body)
	}
	var app struct {
		WorkerApps []struct{ ID string } `json:"worker_apps"`
	}
	_ = json.Unmarshal([]byte(body), &app)
	if code, body := adminDo(t, http.MethodPut, base+"/worker-apps/"+app.WorkerApps[0].ID, "adm", `{"name":"w","url":"`+worker.URL()+`","account_ids":["1"]}`); code != 200 {
		t.Fatalf("repoint app: %d %s", code, body)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	got, err := worker.WaitFor(wctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0].Body, hook) {
		t.Errorf("delivered %s", got[0].Body)
	}
	// Meta's retry of the same webhook is still recognised.
	resp, err = http.DefaultClient.Do(mappertest.SignedRequest(base+"/webhook/", "s3cret", hook))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"duplicate"`) {
		t.Errorf("retry after restart: %s", b)
	}
}

func TestMigrateCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "m.db")
	e := env(map[string]string{"SQLITE_PATH": db})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "applied 20261128000001_initial"},
		{[]string{"migrate", "up"}, "up to date"},
		{[]string{"migrate", "status"}, "20261128000001_initial applied"},
		{[]string{"migrate", "down"}, "rolled back 20261128000001_initial"},
		{[]string{"migrate", "down"}, "nothing to roll back"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"-env-file", "/nonexistent"}, tc.args...), e, &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: %q lacks %q", tc.args, out.String(), tc.want)
		}
	}
	for _, bad := range [][]string{{"migrate"}, {"migrate", "sideways"}, {"serve"}} {
		if err := run(context.Background(), append([]string{"-env-file", "/nonexistent"}, bad...), e, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestAdminAddr: with ADMIN_ADDR the admin routes and /metrics answer
// only there; the public port serves Meta's routes and health, and 404
// for everything else, even with the admin token.
func TestAdminAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	base, stop := startServer(t, "INSTAGRAM_APP_SECRET=s3cret\nWEBHOOK_VERIFY_TOKEN=vt\nADMIN_TOKEN=adm\nSQLITE_PATH="+filepath.Join(dir, "m.db")+"\nADMIN_ADDR="+adminAddr+"\n", nil)
	defer stop()
	admin := "http://" + adminAddr
	for _, tc := range []struct {
		url  string
		want int
	}{
		{base + "/worker-apps/", http.StatusNotFound},
		{base + "/monitoring/metrics", http.StatusNotFound},
		{base + "/monitoring/webhook-logs", http.StatusNotFound},
		{base + "/metrics", http.StatusNotFound},
		{base + "/monitoring/health", http.StatusOK},
		{base + "/webhook/?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=42", http.StatusOK},
		{admin + "/worker-apps/", http.StatusOK},
		{admin + "/monitoring/metrics", http.StatusOK},
		{admin + "/metrics", http.StatusOK},
		{admin + "/monitoring/health", http.StatusOK},
		{admin + "/webhook/?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=42", http.StatusNotFound},
	} {
		if code, body := adminDo(t, http.MethodGet, tc.url, "adm", ""); code != tc.want {
			t.Errorf("GET %s: %d, want %d: %s", tc.url, code, tc.want, body)
		}
	}
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment("17841400000000001", "1", "2", "x").Request(base+"/webhook/", "s3cret"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook on the public port: %v %v", err, resp)
	}
	resp.Body.Close()
}
