package httpforwarder_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/workerauth"
)

func TestForward(t *testing.T) {
	t.Parallel()
	// A request to /slow that the client gave up on may still be in its
	// handler when the next one comes: what they saw is shared.
	var (
		mu        sync.Mutex
		gotHeader http.Header
		gotBody   string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		mu.Lock()
		gotHeader, gotBody = r.Header.Clone(), b.String()
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(204)
		case "/busy":
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(429)
		case "/gone":
			w.WriteHeader(410)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect)
		case "/slow":
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	now := time.Unix(1_800_000_000, 0)
	f := httpforwarder.New(httpforwarder.WithTimeout(200*time.Millisecond), httpforwarder.WithClock(func() time.Time { return now }))
	req := func(path string) httpforwarder.Request {
		return httpforwarder.Request{URL: srv.URL + path, Secret: "app-secret-0123456789", Body: []byte(`{"a":1}`), Header: http.Header{"X-Mapper-Event-Id": {"evt_1"}}}
	}
	tests := []struct {
		path          string
		wantStatus    int
		wantDelivered bool
		wantRetry     bool
		wantAfter     time.Duration
	}{
		{"/ok", 204, true, false, 0},
		{"/busy", 429, false, true, 30 * time.Second},
		{"/gone", 410, false, false, 0},
		{"/moved", 307, false, false, 0},
		{"/slow", 0, false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := f.Forward(context.Background(), req(tt.path))
			if res.StatusCode != tt.wantStatus || res.Delivered() != tt.wantDelivered || res.Retryable != tt.wantRetry || res.RetryAfter != tt.wantAfter {
				t.Errorf("result %+v", res)
			}
			if tt.path == "/ok" {
				mu.Lock()
				gotHeader, gotBody := gotHeader, gotBody
				mu.Unlock()
				if gotBody != `{"a":1}` || gotHeader.Get("X-Mapper-Event-Id") != "evt_1" {
					t.Errorf("sent %q %v", gotBody, gotHeader)
				}
				v := workerauth.Verifier{Secrets: []string{"app-secret-0123456789"}, Window: time.Minute, Now: func() time.Time { return now }}
				err := v.Check(gotHeader.Get(workerauth.HeaderSignature), gotHeader.Get(workerauth.HeaderTimestamp), []byte(gotBody))
				if err != nil {
					t.Errorf("signature does not verify: %v", err)
				}
			}
		})
	}
	if res := f.Forward(context.Background(), httpforwarder.Request{URL: "ftp://user:pw@host/x"}); res.Err == nil || res.Retryable || strings.Contains(res.Err.Error(), "pw") {
		t.Errorf("bad URL: %+v", res)
	}

	// The sooner of the timeout and the caller's deadline ends an attempt
	// on an app that never answers.
	for name, c := range map[string]struct {
		f        *httpforwarder.Forwarder
		deadline time.Duration
	}{
		"the timeout, before the caller's deadline": {f, time.Hour},
		"the caller's deadline, before the timeout": {httpforwarder.New(httpforwarder.WithTimeout(time.Hour)), 200 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), c.deadline)
			defer cancel()
			done := make(chan httpforwarder.Result, 1)
			go func() { done <- c.f.Forward(ctx, req("/slow")) }()
			select {
			case res := <-done:
				if !errors.Is(res.Err, context.DeadlineExceeded) || !res.Retryable {
					t.Errorf("result %+v", res)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the attempt outlived the sooner of its timeout and its deadline by 10 s")
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Sat, 28 Nov 2026 12:01:00 GMT": time.Minute,
		"Sat, 28 Nov 2026 11:00:00 GMT": 0,
	} {
		if got := httpforwarder.ParseRetryAfter(in, now); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

// TestForwardURL checks that a request goes where its URL says: the URL
// parsed for the address checks is the request's own.
func TestForwardURL(t *testing.T) {
	t.Parallel()
	type got struct{ host, rawPath, path, query string }
	seen := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- got{r.Host, r.URL.EscapedPath(), r.URL.Path, r.URL.RawQuery}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	f := httpforwarder.New()
	for _, tt := range []struct {
		url  string
		want got
	}{
		{srv.URL + "/hooks/instagram?team=a%20b&x=1", got{host, "/hooks/instagram", "/hooks/instagram", "team=a%20b&x=1"}},
		{srv.URL + "/a%2Fb/c", got{host, "/a%2Fb/c", "/a/b/c", ""}},
		{srv.URL, got{host, "/", "/", ""}},
	} {
		res := f.Forward(context.Background(), httpforwarder.Request{URL: tt.url, Secret: "s", Body: []byte("{}")})
		if !res.Delivered() {
			t.Fatalf("%s: %+v", tt.url, res)
		}
		if g := <-seen; g != tt.want {
			t.Errorf("%s: the app saw %+v, want %+v", tt.url, g, tt.want)
		}
	}
}
