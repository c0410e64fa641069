// Package console is mapper's web console: pages where an operator sees
// what arrived, where it went and why a delivery failed, manages worker apps
// and their accounts, replays dead deliveries, and watches webhooks arrive.
//
// A Console is an http.Handler. It is a client of the admin API, which it
// calls in process through the handler it is given (usually
// Mapper.AdminHandler), so that it shows exactly what the API says and the
// API's validation is the only validation:
//
//	c, err := console.New(m.AdminHandler(), adminToken, console.WithSecretKey(key))
//	if err != nil { … }
//	go c.Run(ctx)               // samples the metrics for the overview's charts
//	mux.Handle("/console/", c)
//
// Operators sign in with the admin token; the console then keeps a session
// cookie (HttpOnly, SameSite=Strict, Secure under TLS) signed with the secret
// key, so that rotating the key, or the admin token, signs everyone out. A
// wrong token is refused after a delay, one guess at a time.
//
// Pages are rendered on the server with html/template, so whatever Meta's
// payloads hold (comments are written by strangers) is shown as text. Every
// page sends a Content-Security-Policy that allows only the console's own
// script and style sheet; state-changing requests are POSTs checked by
// net/http's CrossOriginProtection. Read-only pages work without JavaScript;
// the live tail (Server-Sent Events) needs it.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed templates static
var assets embed.FS

// Console is the web console; see the package documentation.
type Console struct {
	api      http.Handler
	token    string
	key      []byte
	base     string
	ttl      time.Duration
	delay    time.Duration
	logger   *slog.Logger
	now      func() time.Time
	pages    map[string]*template.Template
	handler  http.Handler
	guessing sync.Mutex // one wrong sign-in at a time
	series   series
	tailPoll time.Duration
	stopping chan struct{} // closed when Run returns: live tails end
	stopOnce sync.Once
	lastUse  atomic.Int64 // when a signed-in page was last served, Unix ns
}

// Option configures a Console.
type Option func(*Console)

// WithSecretKey sets the key that signs session cookies (at least 16
// bytes; the reference server reads SECRET_KEY). Every replica serving the
// console must share it. Changing it ends every session.
func WithSecretKey(key []byte) Option {
	return func(c *Console) { c.key = append([]byte(nil), key...) }
}

// WithBasePath sets the path the console is mounted at, "/console/" by
// default; it must begin and end with a slash. The console answers only
// below it and writes its links and cookie path from it.
func WithBasePath(path string) Option {
	return func(c *Console) { c.base = path }
}

// WithSessionTTL sets how long a sign-in lasts, 12 hours by default.
func WithSessionTTL(d time.Duration) Option {
	return func(c *Console) { c.ttl = d }
}

// WithLogger sets where sign-ins, refused sign-ins and API failures are
// logged; slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *Console) { c.logger = l }
}

// signInDelay is how long a wrong token waits before it is refused. Wrong
// guesses wait one after another, so that guessing gets one try a second
// whatever the number of clients.
const signInDelay = time.Second

// New returns a console for the admin API served by api, which it calls
// with token as its bearer token. The token is also what operators sign in
// with. A secret key (WithSecretKey) is required.
func New(api http.Handler, token string, opts ...Option) (*Console, error) {
	c := &Console{api: api, token: token, base: "/console/", ttl: 12 * time.Hour, delay: signInDelay,
		logger: slog.Default(), now: time.Now, tailPoll: 500 * time.Millisecond, stopping: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	var errs []error
	if api == nil {
		errs = append(errs, errors.New("console: no admin API handler"))
	}
	if token == "" {
		errs = append(errs, errors.New("console: the admin token is empty; without one there is no admin API to show"))
	}
	if len(c.key) < 16 {
		errs = append(errs, errors.New("console: the secret key must be at least 16 bytes (WithSecretKey)"))
	}
	if !strings.HasPrefix(c.base, "/") || !strings.HasSuffix(c.base, "/") || strings.ContainsAny(c.base, "{}?#") {
		errs = append(errs, fmt.Errorf("console: base path %q must begin and end with a slash", c.base))
	}
	if c.ttl <= 0 {
		errs = append(errs, fmt.Errorf("console: session TTL %v is not positive", c.ttl))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	pages, err := parsePages(c.base)
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves the console's pages below its base path.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.handler.ServeHTTP(w, r)
}

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	b := c.base
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET "+b+"static/", http.StripPrefix(b+"static/", cacheFor(http.FileServerFS(static))))
	mux.HandleFunc("GET "+b+"sign-in", c.handleSignInPage)
	mux.HandleFunc("POST "+b+"sign-in", c.handleSignIn)
	for _, p := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"POST " + b + "sign-out", c.handleSignOut},
		{"GET " + b + "{$}", c.handleOverview},
		{"GET " + b + "apps", c.handleApps},
		{"GET " + b + "apps/new", c.handleNewApp},
		{"POST " + b + "apps", c.handleCreateApp},
		{"GET " + b + "apps/{id}", c.handleApp},
		{"POST " + b + "apps/{id}", c.handleUpdateApp},
		{"POST " + b + "apps/{id}/enabled", c.handleEnableApp},
		{"POST " + b + "apps/{id}/delete", c.handleDeleteApp},
		{"POST " + b + "apps/{id}/circuit-reset", c.handleResetCircuit},
		{"POST " + b + "apps/{id}/accounts", c.handleAddRoute},
		{"POST " + b + "apps/{id}/accounts/remove", c.handleRemoveRoute},
		{"GET " + b + "events", c.handleEvents},
		{"GET " + b + "events/{id}", c.handleEvent},
		{"POST " + b + "events/{id}/replay", c.handleReplayEvent},
		{"POST " + b + "deliveries/{id}/replay", c.handleReplayDelivery},
		{"GET " + b + "dead", c.handleDead},
		{"POST " + b + "dead/replay", c.handleReplaySelected},
		{"POST " + b + "dead/replay-all", c.handleReplayAll},
		{"GET " + b + "tail", c.handleTail},
		{"GET " + b + "tail/stream", c.handleTailStream},
	} {
		mux.Handle(p.pattern, c.requireSession(p.h))
	}
	mux.HandleFunc(b, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
	return http.NewCrossOriginProtection().Handler(mux)
}

// cacheFor lets browsers keep the console's own script and style sheet for
// a while: they change only with the binary.
func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// Sessions.

const cookieName = "mapper_console"

// sign returns the MAC of a session that ends at exp. The admin token's
// digest is part of it, so that a new token ends every session too.
func (c *Console) sign(exp string) string {
	tok := sha256.Sum256([]byte(c.token))
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte("mapper-console-session\x00" + exp + "\x00" + hex.EncodeToString(tok[:])))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// validSession reports whether r carries an unexpired session cookie this
// console signed.
func (c *Console) validSession(r *http.Request) bool {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return false
	}
	exp, mac, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !c.now().Before(time.Unix(unix, 0)) {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(c.sign(exp)))
}

func (c *Console) requireSession(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.validSession(r) {
			c.used()
			w.Header().Set("Cache-Control", "no-store")
			h(w, r)
			return
		}
		if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/stream") {
			http.Redirect(w, r, c.base+"sign-in?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		c.fail(w, r, http.StatusUnauthorized, "Your session has ended: sign in again.")
	})
}

func (c *Console) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "sign-in", signInPage{Next: c.safeNext(r.URL.Query().Get("next"))})
}

type signInPage struct {
	Next  string
	Wrong bool
}

func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	given, next := r.PostFormValue("token"), c.safeNext(r.PostFormValue("next"))
	// Digests of equal length, so that the comparison takes the same time
	// whatever the guess's length.
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(c.token))
	if given == "" || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		c.refuse(r.Context())
		c.logger.Warn("console: sign-in refused", slog.String("remote", r.RemoteAddr))
		c.render(w, r, http.StatusUnauthorized, "sign-in", signInPage{Next: next, Wrong: true})
		return
	}
	exp := strconv.FormatInt(c.now().Add(c.ttl).Unix(), 10)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: exp + "." + c.sign(exp), Path: c.base,
		MaxAge: int(c.ttl / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
	c.logger.Info("console: signed in", slog.String("remote", r.RemoteAddr))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// refuse waits out the delay for a wrong token, one guess after another.
func (c *Console) refuse(ctx context.Context) {
	c.guessing.Lock()
	defer c.guessing.Unlock()
	t := time.NewTimer(c.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: c.base, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure(r)})
	http.Redirect(w, r, c.base+"sign-in", http.StatusSeeOther)
}

// secure reports whether the browser reached us over TLS, directly or
// through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// safeNext keeps a post-sign-in redirect inside the console.
func (c *Console) safeNext(next string) string {
	if !strings.HasPrefix(next, c.base) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return c.base
	}
	return next
}
