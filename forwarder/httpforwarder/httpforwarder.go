// Package httpforwarder delivers webhooks to worker apps over HTTP: one
// POST per attempt, signed with the app's secret, with a bounded time for
// the connection and for the whole exchange, never following redirects,
// and classifying the outcome so the caller knows whether to retry.
//
// An attempt is delivered when the app answers 2xx. Network errors,
// timeouts, 408, 425, 429 and 5xx are retryable, and the app's Retry-After
// (seconds or an HTTP date) is reported. Every other answer, redirects
// included, is permanent: a worker app that moved must be updated, not
// followed, so that deliveries never leave for an address nobody registered.
//
// The package does not import the mapper root package; the Mapper adapts
// it to its Forwarder interface.
package httpforwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chatico/mapper/workerauth"
)

// Forwarder sends deliveries. It is safe for concurrent use.
type Forwarder struct {
	// rt makes the requests itself, without an http.Client: a Forwarder
	// follows no redirect and has no client timeout or cookie jar, so a
	// client's work, a copy of the headers for redirects among it (1 % of
	// a loaded server's CPU), would buy nothing.
	rt             http.RoundTripper
	timeout        time.Duration
	connectTimeout time.Duration
	userAgent      string
	maxResponse    int64
	now            func() time.Time
	policy         DialPolicy
}

// Option configures a Forwarder.
type Option func(*Forwarder)

// WithTimeout caps a whole attempt: connecting, sending, and reading the
// answer. Default 15 seconds.
func WithTimeout(d time.Duration) Option { return func(f *Forwarder) { f.timeout = d } }

// WithConnectTimeout caps establishing the connection (TCP and TLS).
// Default 5 seconds.
func WithConnectTimeout(d time.Duration) Option {
	return func(f *Forwarder) { f.connectTimeout = d }
}

// WithUserAgent sets the User-Agent header. Default "mapper/1".
func WithUserAgent(ua string) Option { return func(f *Forwarder) { f.userAgent = ua } }

// WithTransport sets the transport, for example one with client
// certificates. Its dial and TLS timeouts then are the caller's.
func WithTransport(rt http.RoundTripper) Option {
	return func(f *Forwarder) { f.rt = rt }
}

// WithClock sets the clock of the signature timestamp; tests use it.
func WithClock(now func() time.Time) Option { return func(f *Forwarder) { f.now = now } }

// New returns a Forwarder.
func New(opts ...Option) *Forwarder {
	f := &Forwarder{
		timeout:        15 * time.Second,
		connectTimeout: 5 * time.Second,
		userAgent:      "mapper/1",
		maxResponse:    4 << 10,
		now:            time.Now,
	}
	for _, o := range opts {
		o(f)
	}
	if f.rt == nil {
		dialer := &net.Dialer{Timeout: f.connectTimeout, KeepAlive: 30 * time.Second, Control: f.policy.control}
		f.rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   f.connectTimeout,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	return f
}

// Request is one attempt to deliver.
type Request struct {
	URL string
	// Secret keys X-Mapper-Signature-256, computed over
	// "<timestamp>.<body>" with the timestamp in X-Mapper-Timestamp.
	Secret string
	Body   []byte
	// Header is added to the request (identifiers, trace context).
	Header http.Header
	// Timeout, when positive, replaces the Forwarder's timeout for this
	// attempt (a per-app override).
	Timeout time.Duration
}

// Result is the outcome of one attempt.
type Result struct {
	// StatusCode is the app's answer; 0 when none came.
	StatusCode int
	Duration   time.Duration
	// Err is set when the attempt did not succeed: a transport error, or
	// an error naming the status code.
	Err error
	// Retryable says whether another attempt may succeed (never for an
	// address the dial policy refuses).
	Retryable bool
	// RetryAfter is the delay the app asked for, 0 when it did not.
	RetryAfter time.Duration
	// ResponseBody holds the start of the app's answer (4 KiB at most,
	// the most the Mapper keeps), for the audit.
	ResponseBody []byte
}

// Delivered reports whether the app accepted the delivery.
func (r Result) Delivered() bool { return r.Err == nil && r.StatusCode >= 200 && r.StatusCode < 300 }

// ErrStatus is wrapped by Result.Err when the app answered, but not 2xx.
var ErrStatus = errors.New("httpforwarder: worker app answered with a non-2xx status")

// Forward makes one attempt. ctx bounds it in addition to the timeout.
func (f *Forwarder) Forward(ctx context.Context, r Request) Result {
	start := time.Now()
	timeout := f.timeout
	if r.Timeout > 0 {
		timeout = r.Timeout
	}
	// A deadline of ctx's that comes first (the Mapper sets one: the app's
	// timeout or sooner) bounds the attempt already, and a context with a
	// timer of its own would cost four allocations an attempt for nothing.
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{Err: fmt.Errorf("httpforwarder: invalid worker app URL %q", redact(r.URL)), Duration: time.Since(start)}
	}
	if addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		// A literal address is checked here too, for when a proxy is
		// what gets dialed.
		if err := f.policy.Check(addr); err != nil {
			return Result{Err: err, Duration: time.Since(start)}
		}
	}
	var body io.Reader = http.NoBody
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	// The URL parsed above is the request's: NewRequest would parse it a
	// second time (a URL parse was 2 % of a loaded server's CPU).
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", body)
	if err != nil {
		return Result{Err: fmt.Errorf("httpforwarder: %w", err), Duration: time.Since(start)}
	}
	req.URL, req.Host = u, strings.TrimSuffix(u.Host, ":")
	req.ContentLength = int64(len(r.Body))
	// One map made to size, and this package's four values in one array
	// under their canonical names: Header.Set makes a slice for each.
	h := make(http.Header, len(r.Header)+4)
	for k, vs := range r.Header {
		h[k] = vs
	}
	ts := f.now().Unix()
	own := []string{"application/json", f.userAgent, strconv.FormatInt(ts, 10), workerauth.Sign(r.Secret, ts, r.Body)}
	h["Content-Type"], h["User-Agent"] = own[0:1:1], own[1:2:2]
	h[workerauth.HeaderTimestamp], h[workerauth.HeaderSignature] = own[2:3:3], own[3:4:4]
	req.Header = h
	if u.User != nil && h.Get("Authorization") == "" {
		// As http.Client does: a URL's user info is Basic credentials.
		pw, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pw)
	}

	resp, err := f.rt.RoundTrip(req)
	if err == nil && resp == nil {
		err = errors.New("the transport returned neither an answer nor an error")
	}
	if err != nil {
		// Named with a redacted address: the URL may carry credentials.
		err = fmt.Errorf("httpforwarder: POST %s: %w", redact(r.URL), err)
		// A refused address stays refused: no retry storm.
		return Result{Err: err, Retryable: !errors.Is(err, ErrAddressRefused), Duration: time.Since(start)}
	}
	if resp.Body == nil { // a custom transport's
		resp.Body = http.NoBody
	}
	var answer []byte
	// An empty answer (most apps') has nothing to read or drain: its
	// connection is reusable as it is.
	if resp.ContentLength != 0 {
		answer, _ = io.ReadAll(io.LimitReader(resp.Body, f.maxResponse))
		// Drain a little more so the connection can be reused, but never
		// wait on an app that streams an endless answer.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	}
	resp.Body.Close()
	res := Result{StatusCode: resp.StatusCode, Duration: time.Since(start), ResponseBody: answer}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	res.Err = fmt.Errorf("%w: %d", ErrStatus, resp.StatusCode)
	res.Retryable = Retryable(resp.StatusCode)
	res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return res
}

// Retryable reports whether a status code is worth another attempt.
func Retryable(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	case code >= 500:
		return true
	}
	return false
}

// ParseRetryAfter reads a Retry-After value in seconds or as an HTTP date;
// 0 when absent, malformed or in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		if s > 1<<31 {
			s = 1 << 31
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact drops user info and the query from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
