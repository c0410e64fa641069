// Package graphresolver finds who owns an Instagram media through Meta's
// Graph API: GET /{version}/{media-id}?fields=owner,username.
//
// The answer's owner field is present only when the token's own account
// created the media; otherwise Meta returns the username, or error 100/33
// when the token cannot see the media at all. Both mean "not an owner this
// token can name", reported as an *Error whose MediaNotFound method is true.
// Throttling codes (4, 17, 32, 613, 80002 and the temporary 1, 2, 341),
// 5xx answers and network failures are temporary: Temporary is true, and
// RetryAfter says when to try again. Token errors (190 and its subcodes,
// 102) last until the token is replaced: NeedsConfiguration is true.
// Permission errors (10, 200–299, 3) are permanent for the media, like
// not found.
//
// # Keeping within Meta's limits
//
// Meta asks callers to stop when throttled, since calls made while
// throttled extend the penalty. The Resolver therefore keeps state:
//
//   - Throttled (a throttling code, or a usage header at 100 %): no call
//     leaves until Meta's estimated_time_to_regain_access (from
//     X-Business-Use-Case-Usage, in minutes) has passed, or, when Meta does
//     not say, for a backoff that doubles from WithThrottleBackoff's floor
//     (1 minute) to its ceiling (1 hour). Lookups in that time fail at once
//     with RetryAfter set to the time left.
//   - Slowing down before Meta has to: X-App-Usage and
//     X-Business-Use-Case-Usage are read on every answer, and above 80 % of
//     any budget calls are spaced out (1 s apart from 80 %, 5 s from 90 %,
//     30 s from 95 %); a lookup that comes too soon fails at once with
//     RetryAfter.
//   - Token rejected: lookups fail at once with the same error, without a
//     call, except one probe every 5 minutes (the token may have been
//     re-authorised); SetToken clears it. Health reports it.
//
// The access token goes in the query string, as Meta documents; it never
// appears in an error or a log line of this package.
//
// The package does not import the mapper root package; its errors satisfy
// the root's classification through their methods.
package graphresolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBaseURL is Facebook Login's host; Instagram Login apps use
// https://graph.instagram.com.
const DefaultBaseURL = "https://graph.facebook.com"

// DefaultVersion is the Graph API version pinned by default; unpinned
// calls would use whatever version the Meta app was created with.
const DefaultVersion = "v25.0"

// Resolver looks up media owners. It is safe for concurrent use.
type Resolver struct {
	base        *url.URL
	version     string
	client      *http.Client
	now         func() time.Time
	minThrottle time.Duration
	maxThrottle time.Duration
	probeEvery  time.Duration

	tracer trace.Tracer

	mu           sync.Mutex
	token        string
	blockedUntil time.Time // throttled: no call before this
	streak       int       // throttles in a row, for the backoff
	nextCall     time.Time // pacing above 80 % usage
	authErr      *Error    // the token was rejected
	probeAt      time.Time // next call allowed while authErr is set
	permErr      *Error    // the last permission error, until a success
	usage        Usage
}

// Usage is what Meta's usage headers said last, in percent of each
// budget (0–100).
type Usage struct {
	AppCallCount    int `json:"app_call_count"`
	AppTotalTime    int `json:"app_total_time"`
	AppTotalCPUTime int `json:"app_total_cputime"`
	// BUC is the highest figure of X-Business-Use-Case-Usage, over every
	// business object and type it lists.
	BUC int `json:"buc"`
	// RegainAccess is the largest estimated_time_to_regain_access.
	RegainAccess time.Duration `json:"regain_access_ns"`
	At           time.Time     `json:"at"`
}

// Max is the highest percentage of any budget.
func (u Usage) Max() int {
	return max(u.AppCallCount, u.AppTotalTime, u.AppTotalCPUTime, u.BUC)
}

// Option configures a Resolver.
type Option func(*Resolver) error

// WithBaseURL sets the Graph API host (for example a fake in tests).
func WithBaseURL(raw string) Option {
	return func(r *Resolver) error {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("graphresolver: base URL %q is not an http(s) URL", raw)
		}
		r.base = u
		return nil
	}
}

// WithVersion pins the API version, "v25.0" by default.
func WithVersion(v string) Option {
	return func(r *Resolver) error {
		if len(v) < 2 || v[0] != 'v' || strings.ContainsAny(v, "/?#") {
			return fmt.Errorf("graphresolver: version %q is not of the form v25.0", v)
		}
		r.version = v
		return nil
	}
}

// WithHTTPClient sets the client; its timeout bounds every call. The
// default client times out after 10 seconds.
func WithHTTPClient(c *http.Client) Option {
	return func(r *Resolver) error {
		if c == nil {
			return errors.New("graphresolver: nil HTTP client")
		}
		r.client = c
		return nil
	}
}

// WithThrottleBackoff sets the backoff after a throttling answer that
// does not say how long to wait: from floor, doubling to ceiling.
// Defaults: 1 minute and 1 hour.
func WithThrottleBackoff(floor, ceiling time.Duration) Option {
	return func(r *Resolver) error {
		if floor <= 0 || ceiling < floor {
			return fmt.Errorf("graphresolver: throttle backoff %s..%s: want 0 < floor ≤ ceiling", floor, ceiling)
		}
		r.minThrottle, r.maxThrottle = floor, ceiling
		return nil
	}
}

// WithTokenProbe sets how often a rejected token is tried again. Default
// 5 minutes.
func WithTokenProbe(every time.Duration) Option {
	return func(r *Resolver) error {
		if every <= 0 {
			return errors.New("graphresolver: token probe interval must be positive")
		}
		r.probeEvery = every
		return nil
	}
}

// WithTracerProvider sets where the lookups' client spans go. The default
// is the global provider. Spans carry the method, host, path and status,
// never the query (it holds the token).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(r *Resolver) error {
		if tp == nil {
			return errors.New("graphresolver: nil tracer provider")
		}
		r.tracer = tp.Tracer("github.com/chatico/mapper/resolver/graphresolver")
		return nil
	}
}

// WithClock sets the clock; tests use it.
func WithClock(now func() time.Time) Option {
	return func(r *Resolver) error { r.now = now; return nil }
}

// New returns a Resolver that calls the Graph API with token.
func New(token string, opts ...Option) (*Resolver, error) {
	if token == "" {
		return nil, errors.New("graphresolver: empty access token")
	}
	base, _ := url.Parse(DefaultBaseURL)
	r := &Resolver{base: base, version: DefaultVersion, token: token, client: &http.Client{Timeout: 10 * time.Second},
		now: time.Now, minThrottle: time.Minute, maxThrottle: time.Hour, probeEvery: 5 * time.Minute,
		tracer: otel.GetTracerProvider().Tracer("github.com/chatico/mapper/resolver/graphresolver")}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Error is a failed lookup: Meta's error envelope when there was one, else
// the HTTP status or transport failure.
type Error struct {
	MediaID    string
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string
	Message    string
	FBTraceID  string
	// After is Meta's estimated time to regain access, when it said.
	After time.Duration
	kind  kind
	err   error
}

type kind uint8

const (
	kindPermanent kind = iota // a bad request
	kindNotFound              // not found, not visible, not owned, no permission
	kindTemporary             // throttled, 5xx, network
	kindConfig                // the token was rejected
)

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graphresolver: media %s: ", e.MediaID)
	switch {
	case e.Code != 0:
		fmt.Fprintf(&b, "Graph API error %d", e.Code)
		if e.Subcode != 0 {
			fmt.Fprintf(&b, "/%d", e.Subcode)
		}
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
		if e.FBTraceID != "" {
			fmt.Fprintf(&b, " (fbtrace_id %s)", e.FBTraceID)
		}
	case e.err != nil:
		b.WriteString(e.err.Error())
	default:
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.err }

// MediaNotFound reports that the media does not exist, is not visible to
// the token, or is not owned by the token's account.
func (e *Error) MediaNotFound() bool { return e.kind == kindNotFound }

// Temporary reports that the same call may succeed later.
func (e *Error) Temporary() bool { return e.kind == kindTemporary }

// NeedsConfiguration reports that no lookup can succeed until the token is
// replaced.
func (e *Error) NeedsConfiguration() bool { return e.kind == kindConfig }

// RetryAfter is how long to wait before trying again: Meta's estimate, the
// time left on the Resolver's own throttle or pacing, or 0.
func (e *Error) RetryAfter() time.Duration { return e.After }

// Errors wrapped when the Resolver answers without calling Meta.
var (
	// ErrThrottled: Meta throttled this app or token and the wait is not over.
	ErrThrottled = errors.New("throttled by the Graph API; not calling until the announced time")
	// ErrPaced: usage is above 80 % of a budget and the next call is spaced out.
	ErrPaced = errors.New("Graph API usage is high; spacing calls out")
)

// ErrNotOwned is wrapped when Meta answered without an owner: the media
// exists but the token's account did not create it.
var ErrNotOwned = errors.New("media is not owned by the token's account")

// ErrInvalidMediaID is wrapped for an ID that is not a Graph object ID;
// it is never sent.
var ErrInvalidMediaID = errors.New("not a Graph API object ID")

// ResolveOwner returns the ID of the account that owns the media. A
// media the token's account did not create has no visible owner: the
// error wraps ErrNotOwned and says MediaNotFound.
func (r *Resolver) ResolveOwner(ctx context.Context, mediaID string) (owner string, err error) {
	owner, _, err = r.DescribeMedia(ctx, mediaID)
	if err == nil && owner == "" {
		return "", &Error{MediaID: mediaID, HTTPStatus: 200, kind: kindNotFound, err: ErrNotOwned}
	}
	return owner, err
}

// DescribeMedia returns what Meta shows of a media: the owner's ID when
// the token's account created it, else the owner's username (one of the
// two is set when err is nil), for the Mapper's media enrichment.
func (r *Resolver) DescribeMedia(ctx context.Context, mediaID string) (owner, username string, err error) {
	if !validID(mediaID) {
		return "", "", &Error{MediaID: mediaID, kind: kindNotFound, err: ErrInvalidMediaID}
	}
	token, err := r.gate(mediaID)
	if err != nil {
		return "", "", err
	}
	u := *r.base
	u.Path = u.Path + "/" + r.version + "/" + mediaID
	ctx, span := r.tracer.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("http.request.method", http.MethodGet), attribute.String("server.address", u.Hostname()),
		attribute.String("url.path", u.Path), attribute.String("mapper.media.id", mediaID)))
	var status int
	defer func() {
		if status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		var ge *Error
		if errors.As(err, &ge) {
			if ge.Code != 0 {
				span.SetAttributes(attribute.Int("mapper.graph.error_code", ge.Code), attribute.Int("mapper.graph.error_subcode", ge.Subcode))
			}
			span.SetStatus(codes.Error, fmt.Sprintf("graph API error %d", ge.Code))
		}
		span.End()
	}()
	u.RawQuery = url.Values{"fields": {"owner,username"}, "access_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", "", &Error{MediaID: mediaID, kind: kindPermanent, err: errors.New("cannot build request")}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error would print the URL with the token; keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "", &Error{MediaID: mediaID, kind: kindTemporary, err: fmt.Errorf("GET %s/%s/%s: %w", redactedBase(r.base), r.version, mediaID, err)}
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	usage := readUsage(resp.Header, r.now())
	if err != nil {
		// A cut answer says nothing of usage.
		r.observe(token, &keepUsage, nil)
		return "", "", &Error{MediaID: mediaID, HTTPStatus: resp.StatusCode, kind: kindTemporary, err: fmt.Errorf("reading answer: %w", err)}
	}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Owner *struct {
				ID string `json:"id"`
			} `json:"owner"`
			Username string `json:"username"`
		}
		if err := json.Unmarshal(body, &ok); err != nil {
			r.observe(token, usage, nil)
			return "", "", &Error{MediaID: mediaID, HTTPStatus: 200, kind: kindTemporary, err: fmt.Errorf("undecodable answer: %w", err)}
		}
		r.observe(token, usage, nil)
		if ok.Owner != nil && ok.Owner.ID != "" {
			return ok.Owner.ID, "", nil
		}
		if ok.Username != "" {
			return "", ok.Username, nil
		}
		return "", "", &Error{MediaID: mediaID, HTTPStatus: 200, kind: kindNotFound, err: ErrNotOwned}
	}
	e := classify(mediaID, resp, body)
	r.observe(token, usage, e)
	return "", "", e
}

// gate decides whether a call may leave now, and with which token.
func (r *Resolver) gate(mediaID string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.authErr != nil {
		if now.Before(r.probeAt) {
			e := *r.authErr
			e.MediaID = mediaID
			return "", &e
		}
		// One probe; the others keep failing fast until it answers.
		r.probeAt = now.Add(r.probeEvery)
	}
	if now.Before(r.blockedUntil) {
		return "", &Error{MediaID: mediaID, kind: kindTemporary, After: r.blockedUntil.Sub(now), err: ErrThrottled}
	}
	if now.Before(r.nextCall) {
		return "", &Error{MediaID: mediaID, kind: kindTemporary, After: r.nextCall.Sub(now), err: ErrPaced}
	}
	r.nextCall = now.Add(pace(r.usage.Max()))
	return r.token, nil
}

// keepUsage, passed to observe, leaves the last usage as it was.
var keepUsage Usage

// pace is the spacing of calls at a usage percentage. At 100 % and above
// the throttle's backoff applies instead.
func pace(pct int) time.Duration {
	switch {
	case pct >= 100:
		return 0
	case pct >= 95:
		return 30 * time.Second
	case pct >= 90:
		return 5 * time.Second
	case pct >= 80:
		return time.Second
	}
	return 0
}

// observe updates the state from one answer (e nil for a success or an
// answer without Meta's error).
// throttledBy reports whether an error is one of Meta's throttling codes
// (1 and 2 are Meta's own transient errors, not a limit).
func throttledBy(e *Error) bool {
	return e != nil && e.kind == kindTemporary && e.Code != 0 && e.Code != 1 && e.Code != 2
}

// block stops calls until Meta's announced time, else for a backoff that
// doubles with each throttled answer in a row; e learns how long.
func (r *Resolver) block(now time.Time, u *Usage, e *Error) {
	wait := min(r.minThrottle<<min(r.streak, 16), r.maxThrottle)
	if e != nil && e.After > 0 {
		wait = e.After
	} else if u.RegainAccess > 0 {
		wait = u.RegainAccess
	}
	r.streak++
	r.blockedUntil = maxTime(r.blockedUntil, now.Add(wait))
	if e != nil {
		e.After = r.blockedUntil.Sub(now)
	}
}

func (r *Resolver) observe(token string, u *Usage, e *Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	switch u {
	case nil:
		// Meta sends usage headers only once a token has made enough
		// calls: none means low usage.
		u = &Usage{At: now}
	case &keepUsage:
		u = &r.usage
	}
	r.usage = *u
	r.nextCall = maxTime(r.nextCall, now.Add(pace(u.Max())))
	switch {
	case throttledBy(e) || u.Max() >= 100:
		r.block(now, u, e)
	case e == nil:
		r.streak = 0
	}
	if token != r.token {
		return // the answer is about a token that was replaced meanwhile
	}
	switch {
	case e != nil && e.kind == kindConfig:
		r.authErr = e
		r.probeAt = now.Add(r.probeEvery)
	case e != nil && e.isPermission():
		r.permErr = e
	case e == nil:
		r.authErr, r.permErr = nil, nil
	}
}

// SetToken replaces the access token (after a refresh, or when a rejected
// token was replaced) and forgets that the old one was rejected.
func (r *Resolver) SetToken(token string) error {
	if token == "" {
		return errors.New("graphresolver: empty access token")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.token = token
	r.authErr, r.permErr = nil, nil
	r.probeAt = time.Time{}
	return nil
}

// Health reports what stops or slows lookups: a rejected token, a
// permission error, or throttling; nil when there is none.
func (r *Resolver) Health() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	switch {
	case r.authErr != nil:
		return fmt.Errorf("graph API token rejected (code %d/%d: %s); replace INSTAGRAM_ACCESS_TOKEN", r.authErr.Code, r.authErr.Subcode, r.authErr.Message)
	case r.permErr != nil:
		return fmt.Errorf("graph API permission error (code %d: %s)", r.permErr.Code, r.permErr.Message)
	case r.streak > 0:
		// Until a call succeeds, not only until the wait ends.
		return fmt.Errorf("graph API throttled (%d answers in a row); calling again in %s", r.streak, max(r.blockedUntil.Sub(now), 0).Round(time.Millisecond))
	}
	return nil
}

// UsagePercent reports the last usage by budget name, for the Mapper's
// mapper.graph.usage gauge.
func (r *Resolver) UsagePercent() map[string]int {
	u := r.Usage()
	return map[string]int{"app_call_count": u.AppCallCount, "app_total_time": u.AppTotalTime,
		"app_total_cputime": u.AppTotalCPUTime, "business_use_case": u.BUC}
}

// Usage returns what Meta's usage headers said last.
func (r *Resolver) Usage() Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usage
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (e *Error) isPermission() bool {
	return e.Code == 10 || e.Code == 3 || (e.Code >= 200 && e.Code <= 299)
}

func classify(mediaID string, resp *http.Response, body []byte) *Error {
	e := &Error{MediaID: mediaID, HTTPStatus: resp.StatusCode}
	var env struct {
		Error *struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      int    `json:"code"`
			Subcode   int    `json:"error_subcode"`
			FBTraceID string `json:"fbtrace_id"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code, e.Subcode, e.Type = env.Error.Code, env.Error.Subcode, env.Error.Type
		e.Message, e.FBTraceID = env.Error.Message, env.Error.FBTraceID
	}
	if u := readUsage(resp.Header, time.Time{}); u != nil {
		e.After = u.RegainAccess
	}
	switch {
	case e.Code == 100 && (e.Subcode == 33 || resp.StatusCode == http.StatusNotFound):
		e.kind = kindNotFound
	case e.Code == 4, e.Code == 17, e.Code == 32, e.Code == 613, e.Code == 80002, e.Code == 341, e.Code == 368:
		e.kind = kindTemporary
	case e.Code == 1, e.Code == 2:
		e.kind = kindTemporary
		e.After = 0
	case e.Code == 190, e.Code == 102:
		e.kind = kindConfig
	case e.isPermission():
		e.kind = kindNotFound
	case resp.StatusCode == http.StatusNotFound:
		e.kind = kindNotFound
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		e.kind = kindTemporary
	default:
		e.kind = kindPermanent
	}
	return e
}

// readUsage reads X-App-Usage and X-Business-Use-Case-Usage; nil when
// neither is there (Meta sends them only once a token has made enough calls).
func readUsage(h http.Header, at time.Time) *Usage {
	app, buc := h.Get("X-App-Usage"), h.Get("X-Business-Use-Case-Usage")
	if app == "" && buc == "" {
		return nil
	}
	u := &Usage{At: at}
	if app != "" {
		var a struct {
			CallCount    json.Number `json:"call_count"`
			TotalTime    json.Number `json:"total_time"`
			TotalCPUTime json.Number `json:"total_cputime"`
		}
		if json.Unmarshal([]byte(app), &a) == nil {
			u.AppCallCount, u.AppTotalTime, u.AppTotalCPUTime = pct(a.CallCount), pct(a.TotalTime), pct(a.TotalCPUTime)
		}
	}
	if buc != "" {
		var byObject map[string][]struct {
			CallCount    json.Number `json:"call_count"`
			TotalTime    json.Number `json:"total_time"`
			TotalCPUTime json.Number `json:"total_cputime"`
			Regain       json.Number `json:"estimated_time_to_regain_access"`
		}
		if json.Unmarshal([]byte(buc), &byObject) == nil {
			for _, list := range byObject {
				for _, b := range list {
					u.BUC = max(u.BUC, pct(b.CallCount), pct(b.TotalTime), pct(b.TotalCPUTime))
					if m := pct(b.Regain); m > 0 {
						u.RegainAccess = max(u.RegainAccess, time.Duration(m)*time.Minute)
					}
				}
			}
		}
	}
	return u
}

// pct reads a whole percentage, clamped to 0..1000 against nonsense.
func pct(n json.Number) int {
	f, err := n.Float64()
	if err != nil || f < 0 {
		return 0
	}
	return int(min(f, 1000))
}

// validID accepts the digits-only IDs of Graph objects (and an underscore,
// used by some composite IDs), which also keeps the path free of anything
// that could change the request.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func redactedBase(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}
