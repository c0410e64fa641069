// Package graphresolver finds who owns an Instagram media through Meta's
// Graph API: GET /{version}/{media-id}?fields=owner.
//
// The answer's owner field is present only when the token's own account
// created the media; otherwise Meta returns the username, or error 100/33
// when the token cannot see the media at all. Both mean "not an owner this
// token can name", reported as an *Error whose MediaNotFound method is true.
// Throttling codes (4, 17, 32, 613, 80002 and the temporary 1, 2, 341),
// 5xx answers and network failures are temporary: Temporary is true, and
// RetryAfter carries Meta's estimated_time_to_regain_access when its usage
// header gives one. Token and permission errors (190, 102, 10, 200–299)
// are neither: they last until the configuration changes.
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
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is Facebook Login's host; Instagram Login apps use
// https://graph.instagram.com.
const DefaultBaseURL = "https://graph.facebook.com"

// DefaultVersion is the Graph API version pinned by default; unpinned
// calls would use whatever version the Meta app was created with.
const DefaultVersion = "v25.0"

// Resolver looks up media owners. It is safe for concurrent use.
type Resolver struct {
	base    *url.URL
	version string
	token   string
	client  *http.Client
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

// New returns a Resolver that calls the Graph API with token.
func New(token string, opts ...Option) (*Resolver, error) {
	if token == "" {
		return nil, errors.New("graphresolver: empty access token")
	}
	base, _ := url.Parse(DefaultBaseURL)
	r := &Resolver{base: base, version: DefaultVersion, token: token, client: &http.Client{Timeout: 10 * time.Second}}
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
	kindPermanent kind = iota // token, permission, bad request
	kindNotFound
	kindTemporary
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

// RetryAfter is the delay Meta announced, 0 when it did not.
func (e *Error) RetryAfter() time.Duration { return e.After }

// ErrNotOwned is wrapped when Meta answered without an owner: the media
// exists but the token's account did not create it.
var ErrNotOwned = errors.New("media is not owned by the token's account")

// ErrInvalidMediaID is wrapped for an ID that is not a Graph object ID;
// it is never sent.
var ErrInvalidMediaID = errors.New("not a Graph API object ID")

// ResolveOwner returns the ID of the account that owns the media.
func (r *Resolver) ResolveOwner(ctx context.Context, mediaID string) (string, error) {
	if !validID(mediaID) {
		return "", &Error{MediaID: mediaID, kind: kindNotFound, err: ErrInvalidMediaID}
	}
	u := *r.base
	u.Path = u.Path + "/" + r.version + "/" + mediaID
	u.RawQuery = url.Values{"fields": {"owner"}, "access_token": {r.token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", &Error{MediaID: mediaID, kind: kindPermanent, err: errors.New("cannot build request")}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error would print the URL with the token; keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", &Error{MediaID: mediaID, kind: kindTemporary, err: fmt.Errorf("GET %s/%s/%s: %w", redactedBase(r.base), r.version, mediaID, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", &Error{MediaID: mediaID, HTTPStatus: resp.StatusCode, kind: kindTemporary, err: fmt.Errorf("reading answer: %w", err)}
	}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Owner *struct {
				ID string `json:"id"`
			} `json:"owner"`
		}
		if err := json.Unmarshal(body, &ok); err != nil {
			return "", &Error{MediaID: mediaID, HTTPStatus: 200, kind: kindTemporary, err: fmt.Errorf("undecodable answer: %w", err)}
		}
		if ok.Owner == nil || ok.Owner.ID == "" {
			return "", &Error{MediaID: mediaID, HTTPStatus: 200, kind: kindNotFound, err: ErrNotOwned}
		}
		return ok.Owner.ID, nil
	}
	return "", classify(mediaID, resp, body)
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
	e.After = regainAccess(resp.Header.Get("X-Business-Use-Case-Usage"))
	switch {
	case e.Code == 100 && (e.Subcode == 33 || resp.StatusCode == http.StatusNotFound):
		e.kind = kindNotFound
	case e.Code == 4, e.Code == 17, e.Code == 32, e.Code == 613, e.Code == 80002,
		e.Code == 1, e.Code == 2, e.Code == 341:
		e.kind = kindTemporary
	case e.Code == 190, e.Code == 102, e.Code == 10, e.Code >= 200 && e.Code <= 299, e.Code == 3:
		e.kind = kindPermanent
	case resp.StatusCode == http.StatusNotFound:
		e.kind = kindNotFound
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		e.kind = kindTemporary
	default:
		e.kind = kindPermanent
	}
	return e
}

// regainAccess reads the largest estimated_time_to_regain_access (minutes)
// of an X-Business-Use-Case-Usage header.
func regainAccess(h string) time.Duration {
	if h == "" {
		return 0
	}
	var usage map[string][]struct {
		Regain json.Number `json:"estimated_time_to_regain_access"`
	}
	if json.Unmarshal([]byte(h), &usage) != nil {
		return 0
	}
	var most int64
	for _, list := range usage {
		for _, u := range list {
			if m, err := strconv.ParseInt(u.Regain.String(), 10, 64); err == nil && m > most {
				most = m
			}
		}
	}
	return time.Duration(most) * time.Minute
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
