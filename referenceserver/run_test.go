package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
		"comment on @shop's post":           "shop (original bytes, delivered)",
		"comment on @studio's post":         "studio (original bytes, delivered)",
		"one POST for both accounts":        "shop (split, delivered), studio (split, delivered)",
		"Meta retries the first webhook":    "duplicate",
		"forged (wrong signature)":          "401",
		"account with no worker app":        "unroutable (no app for 17841400000000003)",
		"@shop mentioned on @studio's post": "studio (original bytes, delivered)",
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
	if !strings.Contains(text, "shop 2, studio 3; Graph API lookups: 1") {
		t.Errorf("summary line wrong:\n%s", text)
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
		{"nothing set", map[string]string{}, []string{"missing required configuration: INSTAGRAM_APP_SECRET (or WEBHOOK_SECRET), WEBHOOK_VERIFY_TOKEN, INSTAGRAM_ACCESS_TOKEN"}},
		{"entry policy needs no token", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "OWNER_POLICY": "entry", "PORT": "x"}, []string{`PORT "x"`}},
		{"bad values", map[string]string{"WEBHOOK_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "OWNER_POLICY": "guess", "DELIVERY_TIMEOUT": "soon", "MAX_BODY_BYTES": "10", "LOG_LEVEL": "loud", "SYNC_DELIVERY": "maybe"},
			[]string{"OWNER_POLICY", "DELIVERY_TIMEOUT", "MAX_BODY_BYTES", "LOG_LEVEL", "SYNC_DELIVERY"}},
		{"database not supported yet", map[string]string{"INSTAGRAM_APP_SECRET": "s", "WEBHOOK_VERIFY_TOKEN": "v", "INSTAGRAM_ACCESS_TOKEN": "t", "DATABASE_URL": "postgres://x"}, []string{"DATABASE_URL"}},
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

// TestServerFromEnvFile starts the real server from a .env file, checks a
// webhook goes through, and shuts it down gracefully.
func TestServerFromEnvFile(t *testing.T) {
	worker := mappertest.NewWorkerApp("worker-secret-0123456789")
	t.Cleanup(worker.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	envPath := filepath.Join(dir, ".env")
	content := "INSTAGRAM_APP_SECRET=from-file\nWEBHOOK_VERIFY_TOKEN=vt\nOWNER_POLICY=entry\nADMIN_TOKEN=adm\nPORT=" + strconv.Itoa(port) + "\n"
	if err := os.WriteFile(envPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{wrote: make(chan struct{}, 1)}
	go func() {
		done <- run(ctx, []string{"-env-file", envPath}, env(map[string]string{"LOG_LEVEL": "debug"}), io.Discard, logs)
	}()
	logs.waitFor(t, `"msg":"listening"`)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	req, _ := http.NewRequest(http.MethodPost, base+"/worker-apps/", strings.NewReader(`{"name":"w","url":"`+worker.URL()+`","account_ids":["1"],"secret":"`+worker.Secret()+`"}`))
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("register: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.DefaultClient.Do(mappertest.NewWebhook().Comment("1", "2", "3", "x").Request(base+"/webhook/", "from-file"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if _, err := worker.WaitFor(wctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no orderly stop in the logs:\n%s", logs.String())
	}
}
