package graphresolver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/testing/mappertest"
)

const token = "EAAG-secret-token"

// clock is a manual clock for the resolver's throttle and pacing state.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T, opts ...graphresolver.Option) (*graphresolver.Resolver, *mappertest.GraphAPI, *clock) {
	t.Helper()
	g := mappertest.NewGraphAPI(token)
	t.Cleanup(g.Close)
	c := &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	r, err := graphresolver.New(token, append([]graphresolver.Option{graphresolver.WithBaseURL(g.URL()), graphresolver.WithVersion("v26.0"), graphresolver.WithClock(c.now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, g, c
}

func asError(t *testing.T, err error) *graphresolver.Error {
	t.Helper()
	var ge *graphresolver.Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %T %v", err, err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("token in error: %v", err)
	}
	return ge
}

func TestClassification(t *testing.T) {
	tests := []struct {
		name                               string
		script                             *mappertest.GraphError
		media                              string
		wantNotFound, wantTemp, wantConfig bool
		wantCode                           int
	}{
		{name: "not visible (100/33)", media: "999", wantNotFound: true, wantCode: 100},
		{name: "app throttled (4)", script: &mappertest.GraphError{HTTPStatus: 400, Code: 4, Message: "Application request limit reached"}, wantTemp: true, wantCode: 4},
		{name: "BUC throttled (80002)", script: &mappertest.GraphError{HTTPStatus: 400, Code: 80002, Message: "too many calls"}, wantTemp: true, wantCode: 80002},
		{name: "custom limit on 429 (613)", script: &mappertest.GraphError{HTTPStatus: 429, Code: 613, Message: "Calls to this api have exceeded the rate limit"}, wantTemp: true, wantCode: 613},
		{name: "temporary (2) on 500", script: &mappertest.GraphError{HTTPStatus: 500, Code: 2, Message: "Service temporarily unavailable"}, wantTemp: true, wantCode: 2},
		{name: "expired token (190/463)", script: &mappertest.GraphError{HTTPStatus: 400, Code: 190, Subcode: 463, Message: "Session has expired"}, wantConfig: true, wantCode: 190},
		{name: "permission (10)", script: &mappertest.GraphError{HTTPStatus: 403, Code: 10, Message: "Application does not have permission"}, wantNotFound: true, wantCode: 10},
		{name: "permission (200)", script: &mappertest.GraphError{HTTPStatus: 403, Code: 200, Message: "Permissions error"}, wantNotFound: true, wantCode: 200},
		{name: "bad gateway without envelope", script: &mappertest.GraphError{HTTPStatus: 502}, wantTemp: true},
		{name: "not a Graph ID", media: "../me", wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, g, _ := setup(t)
			media := tt.media
			if media == "" {
				media = "100"
			}
			if tt.script != nil {
				g.SetError(media, *tt.script)
			}
			_, err := r.ResolveOwner(context.Background(), media)
			ge := asError(t, err)
			if ge.MediaNotFound() != tt.wantNotFound || ge.Temporary() != tt.wantTemp || ge.NeedsConfiguration() != tt.wantConfig || ge.Code != tt.wantCode {
				t.Errorf("%v: notFound %v temporary %v config %v code %d", err, ge.MediaNotFound(), ge.Temporary(), ge.NeedsConfiguration(), ge.Code)
			}
			if media == "../me" && g.Calls() != 0 {
				t.Error("an invalid ID was sent")
			}
		})
	}
}

func TestOwner(t *testing.T) {
	r, g, _ := setup(t)
	g.SetOwner("100", "17841400000000001")
	owner, err := r.ResolveOwner(context.Background(), "100")
	if err != nil || owner != "17841400000000001" {
		t.Fatalf("%q %v", owner, err)
	}
	if r.Health() != nil {
		t.Errorf("health %v", r.Health())
	}
}

// After a throttling answer no call leaves until the announced time, and
// then calls flow again.
func TestThrottleHonoursRegainTime(t *testing.T) {
	r, g, c := setup(t)
	g.SetOwner("100", "1")
	g.SetError("100", mappertest.GraphError{HTTPStatus: 400, Code: 80002, Message: "too many calls", Times: 1,
		Header: http.Header{"X-Business-Use-Case-Usage": {`{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":7}]}`}}})
	_, err := r.ResolveOwner(context.Background(), "100")
	if ge := asError(t, err); !ge.Temporary() || ge.RetryAfter() != 7*time.Minute {
		t.Fatalf("throttle answer: %v after %v", err, ge.RetryAfter())
	}
	for _, step := range []time.Duration{time.Minute, 5 * time.Minute} {
		c.advance(step)
		_, err := r.ResolveOwner(context.Background(), "100")
		ge := asError(t, err)
		if !errors.Is(err, graphresolver.ErrThrottled) || ge.RetryAfter() <= 0 {
			t.Errorf("while throttled: %v", err)
		}
	}
	if n := g.Calls(); n != 1 {
		t.Errorf("%d calls while throttled, want only the first", n)
	}
	if r.Health() == nil {
		t.Error("health does not report the throttle")
	}
	c.advance(time.Minute + time.Second)
	if owner, err := r.ResolveOwner(context.Background(), "100"); err != nil || owner != "1" {
		t.Fatalf("after the regain time: %q %v", owner, err)
	}
}

// Without an announced time the wait doubles from the floor.
func TestThrottleBackoffDoubles(t *testing.T) {
	r, g, c := setup(t, graphresolver.WithThrottleBackoff(time.Minute, 10*time.Minute))
	g.SetError("100", mappertest.GraphError{HTTPStatus: 400, Code: 4, Message: "Application request limit reached"})
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute} {
		_, err := r.ResolveOwner(context.Background(), "100")
		if got := asError(t, err).RetryAfter(); got != want {
			t.Errorf("wait %v, want %v", got, want)
		}
		c.advance(want)
	}
}

// Above 80 % of a budget the resolver spaces calls out before Meta has to.
func TestSlowsDownAbove80Percent(t *testing.T) {
	r, g, c := setup(t)
	g.SetOwner("1", "a")
	g.SetOwner("2", "a")
	g.SetUsage(http.Header{"X-App-Usage": {`{"call_count":91,"total_time":12,"total_cputime":9}`}})
	if _, err := r.ResolveOwner(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	if u := r.Usage(); u.AppCallCount != 91 || u.Max() != 91 {
		t.Errorf("usage %+v", u)
	}
	_, err := r.ResolveOwner(context.Background(), "2")
	if !errors.Is(err, graphresolver.ErrPaced) || asError(t, err).RetryAfter() != 5*time.Second {
		t.Fatalf("at 91 %%: %v", err)
	}
	c.advance(5 * time.Second)
	if _, err := r.ResolveOwner(context.Background(), "2"); err != nil {
		t.Fatalf("after the spacing: %v", err)
	}
	if n := g.Calls(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// A rejected token stops calls (but for a rare probe) until SetToken.
func TestRejectedTokenUntilReplaced(t *testing.T) {
	r, g, c := setup(t)
	g.SetOwner("100", "1")
	g.SetToken("the-new-token")
	for range 3 {
		_, err := r.ResolveOwner(context.Background(), "100")
		if !asError(t, err).NeedsConfiguration() {
			t.Fatalf("expired token: %v", err)
		}
	}
	if n := g.Calls(); n != 1 {
		t.Errorf("%d calls with a rejected token, want 1", n)
	}
	if h := r.Health(); h == nil || !strings.Contains(h.Error(), "190") || strings.Contains(h.Error(), token) {
		t.Errorf("health: %v", h)
	}
	c.advance(5 * time.Minute)
	_, _ = r.ResolveOwner(context.Background(), "100")
	if n := g.Calls(); n != 2 {
		t.Errorf("%d calls after the probe interval, want 2", n)
	}
	if err := r.SetToken("the-new-token"); err != nil {
		t.Fatal(err)
	}
	if owner, err := r.ResolveOwner(context.Background(), "100"); err != nil || owner != "1" {
		t.Fatalf("after SetToken: %q %v", owner, err)
	}
	if r.Health() != nil {
		t.Errorf("health after SetToken: %v", r.Health())
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	r, err := graphresolver.New(token, graphresolver.WithBaseURL("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ResolveOwner(context.Background(), "100")
	if ge := asError(t, err); !ge.Temporary() {
		t.Fatalf("network error %v not temporary", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, f := range map[string]func() error{
		"empty token": func() error { _, err := graphresolver.New(""); return err },
		"bad URL": func() error {
			_, err := graphresolver.New("t", graphresolver.WithBaseURL("graph.facebook.com"))
			return err
		},
		"bad version": func() error { _, err := graphresolver.New("t", graphresolver.WithVersion("25")); return err },
		"bad backoff": func() error {
			_, err := graphresolver.New("t", graphresolver.WithThrottleBackoff(time.Hour, time.Minute))
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// The Mapper classifies graphresolver's errors through their methods.
var (
	_ mapper.OwnerResolver                    = (*graphresolver.Resolver)(nil)
	_ interface{ MediaNotFound() bool }       = (*graphresolver.Error)(nil)
	_ interface{ RetryAfter() time.Duration } = (*graphresolver.Error)(nil)
	_ interface{ NeedsConfiguration() bool }  = (*graphresolver.Error)(nil)
	_ interface{ Health() error }             = (*graphresolver.Resolver)(nil)
)
