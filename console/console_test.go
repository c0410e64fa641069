package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
)

const (
	adminToken = "console-test-admin-token"
	metaSecret = "console-test-meta-secret"
	appSecret  = "console-test-app-secret-0123"
	account    = "17841400000000001"
	xss        = `<img src=x onerror=alert(1)>`
)

// env is a Mapper on memstore with its admin API and the console on one
// real HTTP server, and a browser-like client (cookies, no redirects
// followed) signed in or not.
type env struct {
	t      *testing.T
	m      *mapper.Mapper
	c      *Console
	srv    *httptest.Server
	worker *mappertest.WorkerApp
	client *http.Client
}

func newEnv(t *testing.T, opts ...Option) *env {
	t.Helper()
	m, err := mapper.New(memstore.New(), mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken("v"), mapper.WithAdminToken(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	c, err := New(m.AdminHandler(), adminToken, append([]Option{WithSecretKey([]byte("console-test-secret-key")),
		WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.delay = 50 * time.Millisecond
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	mux.Handle("/", m.Handler())
	srv := httptest.NewServer(mux)
	worker := mappertest.NewWorkerApp(appSecret)
	jar, _ := cookiejar.New(nil)
	e := &env{t: t, m: m, c: c, srv: srv, worker: worker,
		client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(func() { srv.Close(); worker.Close(); cancel(); <-done; m.Close() })
	return e
}

// do sends a request as a browser on the console's own pages would: a POST
// carries the console's Origin.
func (e *env) do(method, path string, form url.Values) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", e.srv.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *env) signIn() {
	e.t.Helper()
	resp, body := e.do("POST", "/console/sign-in", url.Values{"token": {adminToken}})
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
}

// app registers a worker app for account through the admin API.
func (e *env) app() string {
	e.t.Helper()
	resp, body := e.do("POST", "/console/apps", url.Values{"name": {"shop"}, "url": {e.worker.URL()}, "secret": {appSecret},
		"account_ids": {account}, "enabled": {"on"}})
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	return strings.TrimPrefix(strings.Split(resp.Header.Get("Location"), "?")[0], "/console/apps/")
}

// webhook sends a signed comment and returns its event's ID.
func (e *env) webhook(commentID, text string) string {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(mappertest.NewWebhook().Comment(account, "18000000000000001", commentID, text).Request(e.srv.URL+"/webhook/", metaSecret))
	if err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("webhook: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var out struct {
		EventID string `json:"event_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.EventID == "" {
		e.t.Fatalf("webhook answer: %v %+v", err, out)
	}
	return out.EventID
}

func TestNewRefusesBadSettings(t *testing.T) {
	h := http.NotFoundHandler()
	key := WithSecretKey([]byte("0123456789abcdef"))
	for name, tc := range map[string]struct {
		api   http.Handler
		token string
		opts  []Option
		want  string
	}{
		"no key":         {h, "t", nil, "secret key"},
		"short key":      {h, "t", []Option{WithSecretKey([]byte("short"))}, "secret key"},
		"no token":       {h, "", []Option{key}, "admin token"},
		"no API":         {nil, "t", []Option{key}, "handler"},
		"base path":      {h, "t", []Option{key, WithBasePath("console")}, "base path"},
		"negative TTL":   {h, "t", []Option{key, WithSessionTTL(-time.Second)}, "TTL"},
		"base with {id}": {h, "t", []Option{key, WithBasePath("/{x}/")}, "base path"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.api, tc.token, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.do("GET", "/console/events?status=dead", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/sign-in?next=%2Fconsole%2Fevents%3Fstatus%3Ddead" {
		t.Fatalf("signed out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/console/tail/stream"} {
		if resp, _ := e.do("GET", path, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s signed out: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := e.do("POST", "/console/dead/replay-all", url.Values{}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a POST signed out: %d", resp.StatusCode)
	}

	// A wrong token waits, and wrong guesses wait one after another.
	start := time.Now()
	errs := make(chan int, 3)
	for range 3 {
		go func() {
			resp, _ := e.do("POST", "/console/sign-in", url.Values{"token": {"guess"}})
			errs <- resp.StatusCode
		}()
	}
	for range 3 {
		if code := <-errs; code != http.StatusUnauthorized {
			t.Errorf("wrong token: %d", code)
		}
	}
	if took := time.Since(start); took < 3*e.c.delay {
		t.Errorf("3 wrong guesses took %v, want at least 3 × %v", took, e.c.delay)
	}
	if len(e.client.Jar.Cookies(mustURL(e.srv.URL+"/console/"))) != 0 {
		t.Error("a wrong token got a cookie")
	}

	// The right one: a cookie with every protection, and back where the
	// operator was going (inside the console only).
	resp, _ = e.do("POST", "/console/sign-in", url.Values{"token": {adminToken}, "next": {"/console/events?status=dead"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/events?status=dead" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" || ck.MaxAge != 12*3600 || ck.Secure {
		t.Errorf("cookie %+v", ck)
	}
	if resp, body := e.do("GET", "/console/events?status=dead", nil); resp.StatusCode != 200 || !strings.Contains(body, "<h1>Events</h1>") {
		t.Errorf("signed in: %d", resp.StatusCode)
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/elsewhere", "/console/\\evil"} {
		resp, _ := e.do("POST", "/console/sign-in", url.Values{"token": {adminToken}, "next": {next}})
		if loc := resp.Header.Get("Location"); loc != "/console/" {
			t.Errorf("next %q redirected to %q", next, loc)
		}
	}
	// Behind a TLS-terminating proxy the cookie is Secure.
	req, _ := http.NewRequest("POST", e.srv.URL+"/console/sign-in", strings.NewReader("token="+adminToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.Cookies()[0].Secure {
		t.Error("no Secure cookie behind TLS")
	}

	// Signing out ends it.
	e.do("POST", "/console/sign-out", url.Values{})
	if resp, _ := e.do("GET", "/console/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", resp.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

// TestSessions: a cookie is worth something only unexpired, unaltered, and
// signed with the current key for the current admin token.
func TestSessions(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	valid := e.client.Jar.Cookies(mustURL(e.srv.URL + "/console/"))[0].Value
	check := func(name, value string, c *Console, want bool) {
		t.Helper()
		r := httptest.NewRequest("GET", "/console/", nil)
		r.AddCookie(&http.Cookie{Name: cookieName, Value: value})
		if got := c.validSession(r); got != want {
			t.Errorf("%s: valid %v, want %v", name, got, want)
		}
	}
	check("as issued", valid, e.c, true)
	exp, mac, _ := strings.Cut(valid, ".")
	later, _ := time.Parse(time.RFC3339, "2100-01-01T00:00:00Z")
	check("expiry moved", "4102444800."+mac, e.c, false)
	check("MAC altered", exp+"."+strings.ToUpper(mac), e.c, false)
	check("no MAC", exp, e.c, false)
	check("empty", "", e.c, false)

	expired, _ := New(e.m.AdminHandler(), adminToken, WithSecretKey([]byte("console-test-secret-key")))
	expired.now = func() time.Time { return later }
	check("expired", valid, expired, false)
	rotated, _ := New(e.m.AdminHandler(), adminToken, WithSecretKey([]byte("another-secret-key-0")))
	check("key rotated", valid, rotated, false)
	newToken, _ := New(e.m.AdminHandler(), "a-new-admin-token", WithSecretKey([]byte("console-test-secret-key")))
	check("admin token rotated", valid, newToken, false)
}

// TestCrossOriginPostsRefused: a form on another site cannot make a
// signed-in operator's browser change anything.
func TestCrossOriginPostsRefused(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	id := e.app()
	for name, h := range map[string]http.Header{
		"cross-site fetch": {"Sec-Fetch-Site": {"cross-site"}},
		"foreign Origin":   {"Origin": {"https://evil.example"}},
	} {
		req, _ := http.NewRequest("POST", e.srv.URL+"/console/apps/"+id+"/delete", nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	if resp, body := e.do("GET", "/console/apps/"+id, nil); resp.StatusCode != 200 || !strings.Contains(body, "shop") {
		t.Errorf("the app is gone after refused POSTs: %d", resp.StatusCode)
	}
}

// TestPagesAreSafe: every page carries a strict CSP and shows strangers'
// text as text.
func TestPagesAreSafe(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	e.app()
	id := e.webhook("17900000000000001", xss)
	if _, err := e.worker.WaitFor(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/console/", "/console/sign-in", "/console/apps", "/console/apps/new", "/console/events",
		"/console/events/" + id, "/console/dead", "/console/tail", "/console/nowhere"} {
		resp, body := e.do("GET", path, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
		// No inline script or style: the CSP would block them anyway.
		if regexp.MustCompile(`<script>|<script [^s]|style=|onerror=|onclick=`).MatchString(body) && !strings.Contains(body, "&lt;img") {
			t.Errorf("%s: inline script or style", path)
		}
		if strings.Contains(body, xss) {
			t.Errorf("%s: the comment is raw HTML", path)
		}
	}
	_, body := e.do("GET", "/console/events/"+id, nil)
	if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the payload does not show the comment as text:\n%s", body)
	}
}

// TestAppForm: the API's validation shows by the field, and a valid form
// creates, edits, disables and deletes.
func TestAppForm(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	resp, body := e.do("POST", "/console/apps", url.Values{"name": {"shop"}, "url": {"ftp://x"}, "secret": {"short"}, "account_ids": {"12 abc"},
		"fields": {"comments", "likes"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid app: %d", resp.StatusCode)
	}
	for _, f := range []string{"url", "secret", "account_ids", "fields"} {
		if !strings.Contains(body, `data-field="`+f+`"`) {
			t.Errorf("no error shown by %s", f)
		}
	}
	if !strings.Contains(body, `value="shop"`) || !strings.Contains(body, `value="comments" checked`) {
		t.Error("the form lost what was typed")
	}
	id := e.app()
	resp, body = e.do("GET", "/console/apps/"+id+"?done=created", nil)
	if !strings.Contains(body, "The worker app was created.") || !strings.Contains(body, account) {
		t.Errorf("app page: %d", resp.StatusCode)
	}
	// Edit: a bad timeout is shown by its field and nothing changes.
	resp, body = e.do("POST", "/console/apps/"+id, url.Values{"name": {"shop2"}, "url": {e.worker.URL()}, "timeout_ms": {"5"}, "enabled": {"on"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-field="timeout_ms"`) {
		t.Errorf("bad edit: %d", resp.StatusCode)
	}
	resp, _ = e.do("POST", "/console/apps/"+id, url.Values{"name": {"shop2"}, "url": {e.worker.URL()}, "fields": {"comments"}, "enabled": {"on"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d", resp.StatusCode)
	}
	_, body = e.do("GET", "/console/apps", nil)
	if !strings.Contains(body, "shop2") || !strings.Contains(body, "comments") {
		t.Error("the edit did not show")
	}
	// Routes: add one, see it, remove it; the app's first account stays
	// through the edit.
	e.do("POST", "/console/apps/"+id+"/accounts", url.Values{"account_id": {"17841400000000002"}, "fields": {"comments"}})
	_, body = e.do("GET", "/console/apps/"+id, nil)
	if !strings.Contains(body, "17841400000000002") || !strings.Contains(body, account) {
		t.Error("the added account is not listed, or the first was lost")
	}
	if resp, body := e.do("POST", "/console/apps/"+id+"/accounts", url.Values{"account_id": {"17841400000000003"}, "fields": {""}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("an account with the app's fields: %d %s", resp.StatusCode, body)
	}
	e.do("POST", "/console/apps/"+id+"/accounts/remove", url.Values{"account_id": {"17841400000000002"}})
	if _, body = e.do("GET", "/console/apps/"+id, nil); strings.Contains(body, "17841400000000002") {
		t.Error("the removed account is still listed")
	}
	resp, body = e.do("POST", "/console/apps/"+id+"/accounts", url.Values{"account_id": {"not-a-number"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "numeric") {
		t.Errorf("bad account: %d", resp.StatusCode)
	}
	// Disable, then delete.
	e.do("POST", "/console/apps/"+id+"/enabled", url.Values{"enabled": {"false"}})
	if _, body = e.do("GET", "/console/apps", nil); !strings.Contains(body, "(disabled)") {
		t.Error("disable did not show")
	}
	if resp, _ := e.do("POST", "/console/apps/"+id+"/delete", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if resp, _ := e.do("GET", "/console/apps/"+id, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleted app: %d", resp.StatusCode)
	}
}

// TestDeadLetters: a delivery the app refuses for good is listed, and a
// replay, selected or in bulk, delivers it.
func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	appID := e.app()
	e.worker.Respond(func(*http.Request) int { return http.StatusGone })
	first, second := e.webhook("17900000000000001", "one"), e.webhook("17900000000000002", "two")
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, body = e.do("GET", "/console/dead", nil); strings.Count(body, `name="id"`) == 2 {
			break
		}
	}
	if strings.Count(body, `name="id"`) != 2 || !strings.Contains(body, first) || !strings.Contains(body, second) {
		t.Fatalf("dead letters:\n%s", body)
	}
	e.worker.Respond(nil)
	ids := regexp.MustCompile(`name="id" value="([^"]+)"`).FindAllStringSubmatch(body, -1)
	resp, _ := e.do("POST", "/console/dead/replay", url.Values{"id": {ids[0][1]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/dead?replayed=1" {
		t.Fatalf("replay selected: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := e.do("POST", "/console/dead/replay", url.Values{}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("nothing selected: %d", resp.StatusCode)
	}
	resp, _ = e.do("POST", "/console/dead/replay-all", url.Values{"app_id": {appID}, "since": {"2000-01-01T00:00"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/dead?replayed=1" {
		t.Fatalf("replay all: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := e.do("POST", "/console/dead/replay-all", url.Values{"since": {"yesterday"}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "since") {
		t.Errorf("bad time: %d", resp.StatusCode)
	}
	if _, err := e.worker.WaitFor(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, body = e.do("GET", "/console/events/"+first, nil); strings.Contains(body, `status-delivered">delivered</span></h1>`) {
			break
		}
	}
	if !strings.Contains(body, `status-delivered">delivered</span></h1>`) || strings.Count(body, "<tr><td>") < 2 {
		t.Errorf("after the replay the event is not delivered with two attempts:\n%s", body)
	}
	_, body = e.do("GET", "/console/events?status=delivered&app_id="+appID, nil)
	if !strings.Contains(body, first) || !strings.Contains(body, second) {
		t.Error("the events list filtered by status and app misses them")
	}
	if resp, body := e.do("GET", "/console/events?since=tomorrow", nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "since") {
		t.Errorf("a bad filter: %d", resp.StatusCode)
	}
}

// TestTailStream: a new stream starts with recent events, then sends each
// new one once; it ends when Run's context does.
func TestTailStream(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	e.app()
	before := e.webhook("17900000000000001", "before")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- e.c.Run(ctx) }()
	req, _ := http.NewRequest("GET", e.srv.URL+"/console/tail/stream", nil)
	resp, err := e.client.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	events := make(chan tailEvent, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev tailEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					events <- ev
				}
			}
		}
		close(events)
	}()
	next := func() tailEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event on the stream")
		}
		return tailEvent{}
	}
	if ev := next(); ev.ID != before || ev.URL != "/console/events/"+before || len(ev.Accounts) != 1 || ev.Fields[0] != "comments" {
		t.Errorf("backlog: %+v", ev)
	}
	after := e.webhook("17900000000000002", "after")
	if ev := next(); ev.ID != after {
		t.Errorf("live: %+v, want %s", ev, after)
	}
	cancel()
	<-runDone
	select {
	case ev, ok := <-events:
		if ok {
			t.Errorf("an event sent twice or late: %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Error("the stream did not end with Run")
	}
}

// TestOverview: health, the queue and the dead count, and charts once
// there are two samples.
func TestOverview(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	_, body := e.do("GET", "/console/", nil)
	for _, want := range []string{`id="health-status">ok<`, `id="queue-depth">0<`, "Collecting"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	now := time.Now()
	e.c.series.samples = []sample{{at: now.Add(-30 * time.Minute)}, {at: now.Add(-15 * time.Minute), webhooks: 900, delivered: 900, queue: 3}}
	_, body = e.do("GET", "/console/", nil)
	if n := strings.Count(body, "<polyline"); n != 3 {
		t.Errorf("%d charts drawn, want 3", n)
	}
	if !strings.Contains(body, "1/s") {
		t.Error("900 webhooks in 15 minutes are not 1/s")
	}
}

func TestCharts(t *testing.T) {
	now := time.Now()
	got := charts([]sample{
		{at: now.Add(-40 * time.Minute)},
		{at: now.Add(-30 * time.Minute), webhooks: 1200, queue: 10},
		{at: now.Add(-29 * time.Minute), webhooks: 10, queue: 0}, // a restart: counters fell
		{at: now, webhooks: 1750, queue: 5},
	}, now)
	if got[0].Max != "2/s" || got[0].Latest != "1/s" {
		t.Errorf("webhooks: %+v", got[0])
	}
	if got[0].Points != "150.0,0.0 155.0,60.0 300.0,30.0" {
		t.Errorf("points %q", got[0].Points)
	}
	if got[2].Max != "10" || got[2].Latest != "5" {
		t.Errorf("queue: %+v", got[2])
	}
	var s series
	for i := range 300 {
		s.add(sample{at: now.Add(time.Duration(i) * 15 * time.Second)})
	}
	if n := len(s.snapshot()); n != 241 {
		t.Errorf("%d samples kept, want an hour's 241", n)
	}
}

// TestPagesAndCircuit: listings page by cursor, keeping their filters, and
// a circuit can be closed from the app's page.
func TestPagesAndCircuit(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	id := e.app()
	for i := range 60 {
		e.webhook(fmt.Sprintf("179000000000%05d", i), "hello")
	}
	_, body := e.do("GET", "/console/events?account="+account, nil)
	if n := strings.Count(body, `<tr><td>`); n != 50 {
		t.Errorf("first page: %d rows, want 50", n)
	}
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("no next page link")
	}
	link := html.UnescapeString(next[1])
	if !strings.Contains(link, "account="+account) || !strings.Contains(link, "cursor=") {
		t.Errorf("next page link %q loses the filter", link)
	}
	_, body = e.do("GET", link, nil)
	if n := strings.Count(body, `<tr><td>`); n != 10 || strings.Contains(body, `rel="next"`) {
		t.Errorf("second page: %d rows, want the last 10 and no further link", n)
	}
	if resp, body := e.do("GET", "/console/events?cursor=forged", nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `class="error"`) {
		t.Errorf("a forged cursor: %d", resp.StatusCode)
	}

	resp, _ := e.do("POST", "/console/apps/"+id+"/circuit-reset", url.Values{})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps/"+id+"?done=reset" {
		t.Errorf("circuit reset: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := e.do("POST", "/console/apps/app_nope/circuit-reset", url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("reset of no app: %d", resp.StatusCode)
	}
}

// countingAPI counts the requests to the admin API, by path.
type countingAPI struct {
	http.Handler
	mu    sync.Mutex
	calls map[string]int
}

func (a *countingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.calls[r.URL.Path]++
	a.mu.Unlock()
	a.Handler.ServeHTTP(w, r)
}

func (a *countingAPI) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[path]
}

// TestRunSamplesOnlyInUse: a console nobody opens never asks for the
// metrics (the store's figures are counts); once an operator signs in, Run
// samples them.
func TestRunSamplesOnlyInUse(t *testing.T) {
	e := newEnv(t)
	api := &countingAPI{Handler: e.m.AdminHandler(), calls: map[string]int{}}
	c, err := New(api, adminToken, WithSecretKey([]byte("console-test-secret-key")), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(50 * time.Millisecond) // Run's first tick is at once
	if n := api.count("/monitoring/metrics"); n != 0 {
		t.Errorf("an unused console read the metrics %d times", n)
	}
	cancel()
	<-done

	srv := httptest.NewServer(c)
	defer srv.Close()
	e.srv = srv
	e.signIn()
	if resp, _ := e.do("GET", "/console/apps", nil); resp.StatusCode != 200 {
		t.Fatalf("apps: %d", resp.StatusCode)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- c.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); api.count("/monitoring/metrics") == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if api.count("/monitoring/metrics") == 0 {
		t.Error("a console in use did not sample the metrics")
	}
	cancel()
	<-done
	c.lastUse.Store(time.Now().Add(-2 * window).UnixNano())
	if c.inUse() {
		t.Error("a console last used two hours ago is in use")
	}
}
