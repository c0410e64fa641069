package fakes

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// GraphAPI is a fake of Meta's Graph API for media lookups:
// GET /{version}/{media-id}?fields=owner[,username]&access_token=…. It
// answers in Meta's documented shapes: {"id","owner":{"id"}} for a media
// given an owner with SetOwner (the token's own media), {"id","username"}
// for one given only a username with SetUsername (someone else's media:
// Meta shows the owner only to the media's creator), and error 100/33 for
// a media the token cannot see. A wrong token answers 190.
type GraphAPI struct {
	srv *server
	// Token is the access token the fake accepts; change it with SetToken.
	Token string

	mu       sync.Mutex
	owners   map[string]string
	names    map[string]string
	errs     map[string]GraphError
	calls    map[string]int
	total    int
	latency  time.Duration
	usage    http.Header
	after    int
	throttle *GraphError
}

// GraphError is a scripted error answer.
type GraphError struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Message    string
	// Header is added to the answer, e.g. X-Business-Use-Case-Usage.
	Header http.Header
	// Times limits the error to the next Times calls for the media
	// (0: every call), after which the media answers normally.
	Times int
}

// NewGraphAPI starts a fake that accepts token. Close it when done.
func NewGraphAPI(token string) *GraphAPI {
	g := &GraphAPI{Token: token, owners: map[string]string{}, names: map[string]string{}, errs: map[string]GraphError{}, calls: map[string]int{}}
	g.srv = newServer(http.HandlerFunc(g.serve))
	return g
}

// URL is the fake's base URL, for graphresolver.WithBaseURL.
func (g *GraphAPI) URL() string { return g.srv.URL }

// Close shuts the fake down.
func (g *GraphAPI) Close() { g.srv.Close() }

// SetOwner makes mediaID owned by ownerID.
func (g *GraphAPI) SetOwner(mediaID, ownerID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.owners[mediaID] = ownerID
}

// SetUsername makes mediaID someone else's media, posted by username: the
// answer holds the username and no owner.
func (g *GraphAPI) SetUsername(mediaID, username string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.names[mediaID] = username
}

// SetError makes calls for mediaID fail with e.
func (g *GraphAPI) SetError(mediaID string, e GraphError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errs[mediaID] = e
}

// SetLatency delays every answer by d.
func (g *GraphAPI) SetLatency(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.latency = d
}

// SetToken changes the token the fake accepts (the old one then gets 190).
func (g *GraphAPI) SetToken(token string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Token = token
}

// SetUsage adds usage headers to every answer, e.g.
// {"X-App-Usage": {`{"call_count":85,"total_time":10,"total_cputime":10}`}}.
func (g *GraphAPI) SetUsage(h http.Header) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.usage = h
}

// ThrottleAfter makes every call after the first n answer e (for any
// media), until Recover.
func (g *GraphAPI) ThrottleAfter(n int, e GraphError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.after, g.throttle = g.total+n, &e
}

// Recover ends ThrottleAfter and every scripted error.
func (g *GraphAPI) Recover() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.throttle = nil
	g.errs = map[string]GraphError{}
}

// Calls is the number of lookups received, in all.
func (g *GraphAPI) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// CallsFor is the number of lookups of one media.
func (g *GraphAPI) CallsFor(mediaID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[mediaID]
}

func (g *GraphAPI) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) != 2 || !strings.HasPrefix(parts[0], "v") {
		writeGraphError(w, GraphError{HTTPStatus: 400, Code: 100, Message: "Unknown path components"})
		return
	}
	media := parts[1]
	g.mu.Lock()
	g.total++
	g.calls[media]++
	latency := g.latency
	e, hasErr := g.errs[media]
	if hasErr && e.Times > 0 {
		e.Times--
		if e.Times == 0 {
			delete(g.errs, media)
		} else {
			g.errs[media] = e
		}
	}
	owner, owned := g.owners[media]
	username, named := g.names[media]
	if g.throttle != nil && g.total > g.after {
		e, hasErr = *g.throttle, true
	}
	token := g.Token
	for k, vs := range g.usage {
		w.Header()[k] = vs
	}
	g.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case r.URL.Query().Get("access_token") != token:
		writeGraphError(w, GraphError{HTTPStatus: 400, Code: 190, Subcode: 463, Message: "Error validating access token: Session has expired"})
	case hasErr:
		writeGraphError(w, e)
	case r.URL.Query().Get("fields") != "owner" && r.URL.Query().Get("fields") != "owner,username":
		writeGraphError(w, GraphError{HTTPStatus: 400, Code: 100, Message: "the fake answers fields=owner or fields=owner,username only"})
	case named && !owned:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": media, "username": username})
	case !owned:
		writeGraphError(w, GraphError{HTTPStatus: 400, Code: 100, Subcode: 33,
			Message: "Unsupported get request. Object with ID '" + media + "' does not exist, cannot be loaded due to missing permissions, or does not support this operation"})
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": media, "owner": map[string]string{"id": owner}})
	}
}

func writeGraphError(w http.ResponseWriter, e GraphError) {
	for k, vs := range e.Header {
		w.Header()[k] = vs
	}
	body := map[string]any{"message": e.Message, "type": "OAuthException", "code": e.Code, "fbtrace_id": "AfakeTraceId"}
	if e.Subcode != 0 {
		body["error_subcode"] = e.Subcode
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.HTTPStatus)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}
