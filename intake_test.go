package mapper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

func TestHandshake(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	tests := []struct {
		name       string
		query      url.Values
		wantStatus int
		wantBody   string
	}{
		{"ok", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1158201444"}}, 200, "1158201444"},
		{"opaque challenge echoed byte for byte", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"a b/ä\n"}}, 200, "a b/ä\n"},
		{"wrong token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"nope"}, "hub.challenge": {"1"}}, 403, ""},
		{"empty token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {""}, "hub.challenge": {"1"}}, 403, ""},
		{"wrong mode", url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1"}}, 403, ""},
		{"missing challenge", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/webhook/", "/webhook"} {
				resp, body := h.do(mustRequest(t, http.MethodGet, h.srv.URL+path+"?"+tt.query.Encode(), nil))
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("%s: status %d, want %d (%s)", path, resp.StatusCode, tt.wantStatus, body)
				}
				if tt.wantStatus == 200 {
					if string(body) != tt.wantBody {
						t.Errorf("body %q, want %q", body, tt.wantBody)
					}
					if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
						t.Errorf("Content-Type %q", ct)
					}
				} else {
					wantProblem(t, resp, body, "handshake-refused")
				}
			}
		})
	}
}

func mustRequest(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantProblem(t *testing.T, resp *http.Response, body []byte, kind string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if !strings.HasSuffix(p.Type, "#"+kind) || p.Status != resp.StatusCode || p.Title == "" {
		t.Errorf("problem %+v, want type …#%s and status %d", p, kind, resp.StatusCode)
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	body := mappertest.NewWebhook().Comment(accountA, "18000000000000001", "17900000000000001", "Ünïcödé / 😍").Bytes()
	other := mappertest.NewWebhook().Comment(accountA, "18000000000000001", "17900000000000002", "other").Bytes()
	upper := "sha256=" + strings.ToUpper(strings.TrimPrefix(mappertest.Sign(metaSecret, body), "sha256="))
	tests := []struct {
		name       string
		header     string
		wantStatus int
	}{
		{"right", mappertest.Sign(metaSecret, body), 200},
		{"rotated second secret", mappertest.Sign(igSecret, body), 200},
		{"uppercase hex", upper, 200},
		{"wrong secret", mappertest.Sign("not-the-secret", body), 401},
		{"signature of another body", mappertest.Sign(metaSecret, other), 401},
		{"missing", "", 401},
		{"sha1 prefix", "sha1=" + strings.TrimPrefix(mappertest.Sign(metaSecret, body), "sha256="), 401},
		{"truncated", mappertest.Sign(metaSecret, body)[:40], 401},
		{"not hex", "sha256=" + strings.Repeat("zz", 32), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := countEvents(t, h)
			req := mustRequest(t, http.MethodPost, h.srv.URL+"/webhook/", bytes.NewReader(body))
			if tt.header != "" {
				req.Header.Set(workerauth.HeaderMetaSignature, tt.header)
			}
			resp, raw := h.do(req)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, raw)
			}
			after := countEvents(t, h)
			if tt.wantStatus == 401 {
				wantProblem(t, resp, raw, "bad-signature")
				if after != before {
					t.Errorf("a refused webhook was stored: %d events, then %d", before, after)
				}
			}
		})
	}
	if got := h.metrics().Counters.Webhooks["bad_signature"]; got != 6 {
		t.Errorf("bad_signature counter %d, want 6", got)
	}
}

func countEvents(t *testing.T, h *harness) int {
	t.Helper()
	page, err := h.store.ListEvents(context.Background(), mapper.EventQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Items)
}

// chunked hides the length of a body, so the client sends it chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t, mapper.WithMaxBodyBytes(64<<10, 0))
	small := mappertest.NewWebhook().Comment(accountA, "1", "2", "hi").Bytes()
	// A signed, valid payload just over the limit: the signature is right,
	// so only the size can refuse it.
	big := mappertest.NewWebhook().Comment(accountA, "1", "3", strings.Repeat("ä", 64<<10/6+100)).Bytes()
	if len(big) <= 64<<10 {
		t.Fatalf("test body of %d bytes is not over the limit", len(big))
	}
	tests := []struct {
		name       string
		body       []byte
		hideLength bool
		wantStatus int
	}{
		{"small with length", small, false, 200},
		{"small chunked", small, true, 200},
		{"over the limit with Content-Length", big, false, 413},
		{"over the limit chunked", big, true, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd io.Reader = bytes.NewReader(tt.body)
			if tt.hideLength {
				rd = chunked{rd}
			}
			req := mustRequest(t, http.MethodPost, h.srv.URL+"/webhook/", rd)
			req.Header.Set(workerauth.HeaderMetaSignature, mappertest.Sign(metaSecret, tt.body))
			if tt.hideLength {
				req.ContentLength = -1 // unknown: sent chunked
			}
			resp, raw := h.do(req)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, raw)
			}
			if tt.wantStatus == 413 {
				wantProblem(t, resp, raw, "too-large")
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t, mapper.WithRateLimit(0.001, 2, nil))
	body := mappertest.NewWebhook().Comment(accountA, "1", "2", "hi").Bytes()
	for i, want := range []int{200, 200, 429, 429} {
		resp, _, raw := h.post(body, metaSecret)
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, want, raw)
		}
		if want == 429 {
			wantProblem(t, resp, raw, "rate-limited")
			if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("Retry-After %q", ra)
			}
		}
	}
	// Another client has its own bucket.
	h2 := newHarnessNoRun(t, mapper.WithRateLimit(0.001, 1, func(r *http.Request) string { return r.Header.Get("X-Client") }))
	for i, c := range []struct {
		client string
		want   int
	}{{"a", 200}, {"a", 429}, {"b", 200}} {
		req := mappertest.SignedRequest(h2.srv.URL+"/webhook/", metaSecret, body)
		req.Header.Set("X-Client", c.client)
		if resp, raw := h2.do(req); resp.StatusCode != c.want {
			t.Fatalf("request %d from %s: %d, want %d: %s", i, c.client, resp.StatusCode, c.want, raw)
		}
	}
}

func TestMalformedPayloads(t *testing.T) {
	t.Parallel()
	h := newHarnessNoRun(t)
	tests := []struct {
		name string
		body string
		kind string
	}{
		{"not JSON", `{"object":`, "malformed-payload"},
		{"array", `[{"object":"instagram"}]`, "malformed-payload"},
		{"string", `"instagram"`, "malformed-payload"},
		{"empty", ``, "malformed-payload"},
		{"no object", `{"entry":[]}`, "malformed-payload"},
		{"no entry", `{"object":"instagram"}`, "malformed-payload"},
		{"entry not an array", `{"object":"instagram","entry":{}}`, "malformed-payload"},
		{"trailing garbage", `{"object":"instagram","entry":[]} x`, "malformed-payload"},
		{"object not a string", `{"object":["instagram"],"entry":[]}`, "malformed-payload"},
		{"wrong object", `{"object":"page","entry":[]}`, "wrong-object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, raw := h.post([]byte(tt.body), metaSecret)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, raw)
			}
			wantProblem(t, resp, raw, tt.kind)
		})
	}
	if n := countEvents(t, h); n != 0 {
		t.Errorf("%d malformed payloads stored", n)
	}
}

// failingStore refuses every event, as a store that is down does.
type failingStore struct{ *watchedStore }

func (failingStore) CreateEvent(context.Context, *mapper.Event) error {
	return errors.New("connection refused")
}

func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	m, err := mapper.New(failingStore{newWatchedStore()}, mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken(verifyToken), mapper.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t}
	srv := newServer(t, m.Handler())
	resp, raw := h.do(mappertest.NewWebhook().Comment(accountA, "1", "2", "x").Request(srv+"/webhook/", metaSecret))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", resp.StatusCode, raw)
	}
	wantProblem(t, resp, raw, "store-unavailable")
	mt, err := mappertest.ReadMetrics(m.Handler(), adminToken)
	if err != nil {
		t.Fatal(err)
	}
	if got := mt.Counters.Webhooks["store_unavailable"]; got != 1 {
		t.Errorf("store_unavailable counter %d", got)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	s := newWatchedStore()
	tests := []struct {
		name string
		opts []mapper.Option
		want string
	}{
		{"no secret", []mapper.Option{mapper.WithVerifyToken("v"), mapper.WithOwnerPolicy(mapper.OwnerFromEntry)}, "WithMetaSecrets is required"},
		{"empty secret", []mapper.Option{mapper.WithMetaSecrets(""), mapper.WithVerifyToken("v"), mapper.WithOwnerPolicy(mapper.OwnerFromEntry)}, "app secret 0 is empty"},
		{"no verify token", []mapper.Option{mapper.WithMetaSecrets("s"), mapper.WithOwnerPolicy(mapper.OwnerFromEntry)}, "WithVerifyToken is required"},
		{"policy needs resolver", []mapper.Option{mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"), mapper.WithOwnerPolicy(mapper.OwnerFromMedia)}, "no OwnerResolver"},
		{"enrichment needs resolver", []mapper.Option{mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"), mapper.WithMediaEnrichment(500 * time.Millisecond)}, "no OwnerResolver"},
		{"lease too short", []mapper.Option{mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"), mapper.WithOwnerPolicy(mapper.OwnerFromEntry), mapper.WithLease(1e9)}, "lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mapper.New(s, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := mapper.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}
