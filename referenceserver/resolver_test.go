package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatico/mapper/testing/containertest"
	"github.com/chatico/mapper/testing/mappertest"
)

func TestMain(m *testing.M) { os.Exit(containertest.Main(m)) }

// Under OWNER_POLICY=media_owner the token expires: events wait; the
// operator puts a new token in .env and sends SIGHUP; the events flow,
// and lookups are shared through Redis.
func TestTokenReloadAndRedisCache(t *testing.T) {
	redisURL := containertest.RedisURL(t)
	graph := mappertest.NewGraphAPI("new-token")
	t.Cleanup(graph.Close)
	graph.SetOwner("18000000000000002", "17841400000000002")
	worker := mappertest.NewWorkerApp("0123456789abcdef")
	t.Cleanup(worker.Close)
	dir := t.TempDir()
	envPath := filepath.Join(dir, ".env")
	conf := func(token string) string {
		return "INSTAGRAM_APP_SECRET=s3cret\nWEBHOOK_VERIFY_TOKEN=vt\nADMIN_TOKEN=adm\nPARK_INTERVAL=50ms\nOWNER_POLICY=media_owner\n" +
			"GRAPH_API_URL=" + graph.URL() + "\nREDIS__URL=" + redisURL + "\nSQLITE_PATH=" + filepath.Join(dir, "m.db") + "\n" +
			"INSTAGRAM_ACCESS_TOKEN=" + token + "\n"
	}
	base, stop := startServerAt(t, envPath, conf("old-token"))
	defer stop()
	if code, body := adminDo(t, http.MethodPost, base+"/worker-apps/", "adm", `{"name":"studio","url":"`+worker.URL()+`","account_ids":["17841400000000002"],"secret":"`+worker.Secret()+`"}`); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment("17841400000000001", "18000000000000002", "179", "on studio's media").Request(base+"/webhook/", "s3cret"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
	// Health turns degraded once the old token is rejected; why (Meta's
	// code 190) only the admin sees.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := adminDo(t, http.MethodGet, base+"/monitoring/health", "adm", "")
		if strings.Contains(body, "degraded") && strings.Contains(body, "190") {
			if _, public := adminDo(t, http.MethodGet, base+"/monitoring/health", "", ""); !strings.Contains(public, "degraded") || strings.Contains(public, "190") {
				t.Errorf("public health: %s", public)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never degraded: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(worker.Received()); n != 0 {
		t.Fatalf("delivered with a rejected token: %d", n)
	}
	if err := os.WriteFile(envPath, []byte(conf("new-token")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := worker.WaitFor(wctx, 1); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if v, err := rc.Get(context.Background(), "mapper:mapper:owner:18000000000000002").Result(); err != nil || v != "17841400000000002" {
		t.Errorf("owner in Redis: %q %v", v, err)
	}
}
