package mapper_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
)

// sickStore is a memstore whose Ping fails (naming a host, as a driver
// would) or hangs past any deadline, ignoring its context as a stuck
// driver may.
type sickStore struct {
	*memstore.Store
	mode atomic.Int32 // 0 fine, 1 failing, 2 hanging
}

func (s *sickStore) Ping(ctx context.Context) error {
	switch s.mode.Load() {
	case 1:
		return errors.New("dial tcp db.internal.example:5432: connection refused (user=mapper)")
	case 2:
		time.Sleep(5 * time.Second)
	}
	return nil
}

// sickCache is an owner cache whose Ping fails.
type sickCache struct{}

func (sickCache) Get(context.Context, string) (string, bool, error)        { return "", false, nil }
func (sickCache) Set(context.Context, string, string, time.Duration) error { return nil }
func (sickCache) Ping(context.Context) error {
	return errors.New("redis at cache.internal.example:6379: i/o timeout")
}

func TestHealthTellsStrangersNothing(t *testing.T) {
	t.Parallel()
	store := &sickStore{Store: memstore.New()}
	m, err := mapper.New(store, mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"), mapper.WithAdminToken(adminToken),
		mapper.WithCache(sickCache{}, time.Hour, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler()
	get := func(path, token string) (int, string, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String(), time.Since(start)
	}
	var v struct {
		Status  string                     `json:"status"`
		Checks  map[string]string          `json:"checks"`
		Details map[string]json.RawMessage `json:"details"`
	}

	// The cache failing: degraded, still 200.
	code, body, _ := get("/monitoring/health", "")
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Status != "degraded" || v.Checks["cache"] != "degraded" || v.Checks["store"] != "ok" {
		t.Errorf("cache down: %d %s", code, body)
	}
	// The store failing: down, 503, and nothing of why without the token.
	store.mode.Store(1)
	code, body, _ = get("/monitoring/health", "")
	if code != 503 || !strings.Contains(body, `"status":"down"`) || strings.Contains(body, "internal.example") || strings.Contains(body, "details") {
		t.Errorf("public health with the store down: %d %s", code, body)
	}
	code, body, _ = get("/monitoring/health", adminToken)
	if code != 503 || !strings.Contains(body, "db.internal.example") || !strings.Contains(body, "latency_ms") {
		t.Errorf("admin health with the store down: %d %s", code, body)
	}
	if code, body, _ := get("/monitoring/ready", ""); code != 503 || strings.Contains(body, "internal.example") {
		t.Errorf("ready with the store down: %d %s", code, body)
	}
	if code, _, _ := get("/monitoring/live", ""); code != 200 {
		t.Errorf("live: %d", code)
	}
	// The store hanging: the answers still come within a second.
	store.mode.Store(2)
	for _, path := range []string{"/monitoring/health", "/monitoring/ready"} {
		code, body, took := get(path, "")
		if code != 503 || took > time.Second {
			t.Errorf("%s with the store hanging: %d after %v: %s", path, code, took, body)
		}
	}
	store.mode.Store(0)
	if code, body, _ := get("/monitoring/ready", ""); code != 200 {
		t.Errorf("ready: %d %s", code, body)
	}
}
