package httpforwarder_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"slices"
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

// TestForwardCredentials: a worker app URL's user info goes out as Basic
// credentials, and never into an error.
func TestForwardCredentials(t *testing.T) {
	t.Parallel()
	type auth struct {
		user, pass string
		ok         bool
	}
	seen := make(chan auth, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		seen <- auth{u, p, ok}
	}))
	t.Cleanup(srv.Close)
	f := httpforwarder.New()
	withCreds := strings.Replace(srv.URL, "http://", "http://hook:s%40cret@", 1)
	if res := f.Forward(context.Background(), httpforwarder.Request{URL: withCreds + "/x", Secret: "s", Body: []byte("{}")}); !res.Delivered() {
		t.Fatalf("%+v", res)
	}
	if got := <-seen; got != (auth{"hook", "s@cret", true}) {
		t.Errorf("the app saw %+v", got)
	}
	// An Authorization header of the caller's wins.
	res := f.Forward(context.Background(), httpforwarder.Request{URL: withCreds + "/x", Secret: "s", Body: []byte("{}"),
		Header: http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("other:pw"))}}})
	if !res.Delivered() {
		t.Fatalf("%+v", res)
	}
	if got := <-seen; got != (auth{"other", "pw", true}) {
		t.Errorf("the app saw %+v", got)
	}
	srv.Close()
	res = f.Forward(context.Background(), httpforwarder.Request{URL: withCreds + "/x", Secret: "s", Body: []byte("{}")})
	if res.Err == nil || !res.Retryable || !strings.Contains(res.Err.Error(), "httpforwarder: POST http://127.0.0.1") || strings.Contains(res.Err.Error(), "cret") {
		t.Errorf("app down: %+v", res)
	}

	// A transport that answers nothing, and no error, is an error.
	broken := httpforwarder.New(httpforwarder.WithTransport(roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })))
	if res := broken.Forward(context.Background(), httpforwarder.Request{URL: "http://127.0.0.1:1/x"}); res.Err == nil || !res.Retryable {
		t.Errorf("nil answer: %+v", res)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestForwardAnswers: an app's answer is kept up to 4 KiB and the rest
// drained, and the connection is reused after an empty answer, a short
// one and a long one alike.
func TestForwardAnswers(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(200)
		case "/short":
			_, _ = io.WriteString(w, "thanks")
		case "/long":
			w.WriteHeader(500)
			_, _ = io.WriteString(w, long)
		case "/chunked":
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
		}
	}))
	t.Cleanup(srv.Close)
	f := httpforwarder.New()
	var reused []bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) },
	})
	for _, tt := range []struct {
		path, want string
		status     int
	}{
		{"/empty", "", 200},
		{"/short", "thanks", 200},
		{"/empty", "", 200},
		{"/long", long[:4<<10], 500},
		{"/chunked", "part one, part two", 200},
		{"/empty", "", 200},
	} {
		res := f.Forward(ctx, httpforwarder.Request{URL: srv.URL + tt.path, Secret: "s", Body: []byte(`{}`)})
		if res.StatusCode != tt.status || string(res.ResponseBody) != tt.want {
			t.Errorf("%s: %d, %d bytes kept (%.20q), want %d and %d", tt.path, res.StatusCode, len(res.ResponseBody), res.ResponseBody, tt.status, len(tt.want))
		}
	}
	if len(reused) != 6 || slices.Contains(reused[1:], false) {
		t.Errorf("connections reused: %v, want one dialled and then reused", reused)
	}
}

// BenchmarkForward: one attempt to an app on loopback that answers 200
// with nothing, as most do; the allocations are the ones to watch.
func BenchmarkForward(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	f := httpforwarder.New()
	body := []byte(strings.Repeat(`{"object":"instagram"}`, 18))
	header := http.Header{"X-Mapper-Event-Id": {"evt_1"}, "X-Mapper-Delivery-Id": {"dlv_1"}, "X-Mapper-Attempt": {"1"},
		"X-Mapper-Owner-Ids": {"17841400000000001"}, "X-Mapper-Envelope": {"original"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	b.ReportAllocs()
	for b.Loop() {
		if res := f.Forward(context.Background(), httpforwarder.Request{URL: srv.URL, Secret: "app-secret", Body: body, Header: header}); !res.Delivered() {
			b.Fatal(res.Err)
		}
	}
}
