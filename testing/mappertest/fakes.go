package mappertest

import (
	"context"
	"net/http"
	"time"

	"github.com/chatico/mapper/internal/fakes"
)

// GraphAPI is a fake of Meta's Graph API for media lookups:
// GET /{version}/{media-id}?fields=owner[,username]&access_token=…. It
// answers in Meta's documented shapes: {"id","owner":{"id"}} for a media
// given an owner with SetOwner (the token's own media), {"id","username"}
// for one given only a username with SetUsername (someone else's media:
// Meta shows the owner only to the media's creator), and error 100/33 for
// a media the token cannot see. A wrong token answers 190.
type GraphAPI struct{ f *fakes.GraphAPI }

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

// NewGraphAPI starts a fake on loopback that accepts token. Close it when
// done.
func NewGraphAPI(token string) *GraphAPI { return &GraphAPI{fakes.NewGraphAPI(token)} }

// URL is the fake's base URL, for graphresolver.WithBaseURL.
func (g *GraphAPI) URL() string { return g.f.URL() }

// Close shuts the fake down.
func (g *GraphAPI) Close() { g.f.Close() }

// SetOwner makes mediaID owned by ownerID: the token's own media.
func (g *GraphAPI) SetOwner(mediaID, ownerID string) { g.f.SetOwner(mediaID, ownerID) }

// SetUsername makes mediaID someone else's media, posted by username: the
// answer holds the username and no owner.
func (g *GraphAPI) SetUsername(mediaID, username string) { g.f.SetUsername(mediaID, username) }

// SetError makes calls for mediaID fail with e.
func (g *GraphAPI) SetError(mediaID string, e GraphError) { g.f.SetError(mediaID, fakes.GraphError(e)) }

// SetLatency delays every answer by d.
func (g *GraphAPI) SetLatency(d time.Duration) { g.f.SetLatency(d) }

// SetToken changes the token the fake accepts (the old one then gets 190).
func (g *GraphAPI) SetToken(token string) { g.f.SetToken(token) }

// SetUsage adds usage headers to every answer, e.g.
// {"X-App-Usage": {`{"call_count":85,"total_time":10,"total_cputime":10}`}}.
func (g *GraphAPI) SetUsage(h http.Header) { g.f.SetUsage(h) }

// ThrottleAfter makes every call after the first n answer e (for any
// media), until Recover.
func (g *GraphAPI) ThrottleAfter(n int, e GraphError) { g.f.ThrottleAfter(n, fakes.GraphError(e)) }

// Recover ends ThrottleAfter and every scripted error.
func (g *GraphAPI) Recover() { g.f.Recover() }

// Calls is the number of lookups received, in all.
func (g *GraphAPI) Calls() int { return g.f.Calls() }

// CallsFor is the number of lookups of one media.
func (g *GraphAPI) CallsFor(mediaID string) int { return g.f.CallsFor(mediaID) }

// WorkerApp is a fake worker app on loopback: it records every delivery,
// checks the Mapper's X-Mapper-Signature-256 with its secret, and answers
// 200 unless told to fail.
type WorkerApp struct{ f *fakes.WorkerApp }

// Received is one request the fake worker app answered (a request that
// hung is not recorded).
type Received struct {
	Header http.Header
	Body   []byte
	// SignatureOK says whether X-Mapper-Signature-256 matched the body and
	// timestamp under the app's secret.
	SignatureOK bool
	// Status is what the fake answered.
	Status int
	At     time.Time
}

// NewWorkerApp starts a fake app whose deliveries are signed with secret.
// Close it when done.
func NewWorkerApp(secret string) *WorkerApp { return &WorkerApp{fakes.NewWorkerApp(secret)} }

// URL is where the app listens.
func (w *WorkerApp) URL() string { return w.f.URL() }

// Secret is the app's secret.
func (w *WorkerApp) Secret() string { return w.f.Secret() }

// Close shuts the app down, releasing any request held by a hang.
func (w *WorkerApp) Close() { w.f.Close() }

// FailNext makes the next requests answer the given status codes in turn
// (e.g. 500, 500, 500), then 200 again.
func (w *WorkerApp) FailNext(statuses ...int) { w.f.FailNext(statuses...) }

// Respond sets a function choosing the status of each request (after any
// FailNext script); nil restores 200. A status of 0 makes the request hang
// until the client gives up or the app is closed.
func (w *WorkerApp) Respond(f func(*http.Request) int) { w.f.Respond(f) }

// Received returns every request so far.
func (w *WorkerApp) Received() []Received { return received(w.f.Received()) }

// WaitFor waits until the app has received at least n requests, or ctx
// ends, and returns what it received.
func (w *WorkerApp) WaitFor(ctx context.Context, n int) ([]Received, error) {
	got, err := w.f.WaitFor(ctx, n)
	return received(got), err
}

func received(in []fakes.Received) []Received {
	out := make([]Received, len(in))
	for i, r := range in {
		out[i] = Received(r)
	}
	return out
}

// Webhook builds an Instagram webhook body the way Meta sends it: compact
// JSON, non-ASCII escaped as lowercase \u sequences (emoji as surrogate
// pairs) and "/" as "\/". Items for one account go into one entry; entries
// keep the order of their first item.
type Webhook struct{ b *fakes.Webhook }

// NewWebhook returns an empty builder for object "instagram", sent now.
func NewWebhook() *Webhook { return &Webhook{fakes.NewWebhook()} }

// Object sets the payload's object field.
func (w *Webhook) Object(o string) *Webhook { w.b.Object(o); return w }

// Time sets the entries' time (written in seconds, or milliseconds for
// messaging entries, as Meta does).
func (w *Webhook) Time(t time.Time) *Webhook { w.b.Time(t); return w }

// Comment adds a "comments" change on mediaID, owned by account.
func (w *Webhook) Comment(account, mediaID, commentID, text string) *Webhook {
	w.b.Comment(account, mediaID, commentID, text)
	return w
}

// LiveComment adds a "live_comments" change.
func (w *Webhook) LiveComment(account, mediaID, commentID, text string) *Webhook {
	w.b.LiveComment(account, mediaID, commentID, text)
	return w
}

// Mention adds a "mentions" change: account was mentioned in a comment
// (commentID non-empty) or a caption on someone else's mediaID.
func (w *Webhook) Mention(account, mediaID, commentID string) *Webhook {
	w.b.Mention(account, mediaID, commentID)
	return w
}

// Message adds a messaging item: senderID wrote text to account.
func (w *Webhook) Message(account, senderID, mid, text string) *Webhook {
	w.b.Message(account, senderID, mid, text)
	return w
}

// Reaction adds a messaging item: senderID reacted with a heart to the
// message mid.
func (w *Webhook) Reaction(account, senderID, mid string) *Webhook {
	w.b.Reaction(account, senderID, mid)
	return w
}

// Standby adds a message on the standby channel: senderID wrote text to
// account in a conversation another app owns (Meta's handover protocol).
func (w *Webhook) Standby(account, senderID, mid, text string) *Webhook {
	w.b.Standby(account, senderID, mid, text)
	return w
}

// Bytes returns the body.
func (w *Webhook) Bytes() []byte { return w.b.Bytes() }

// Request returns a POST of the body to url, signed with secret as Meta
// signs it (an empty secret sends no signature).
func (w *Webhook) Request(url, secret string) *http.Request { return w.b.Request(url, secret) }

// SignedRequest returns a POST of body to url signed with secret as Meta
// signs it (an empty secret sends no signature).
func SignedRequest(url, secret string, body []byte) *http.Request {
	return fakes.SignedRequest(url, secret, body)
}

// Sign returns Meta's X-Hub-Signature-256 value of body.
func Sign(secret string, body []byte) string { return fakes.Sign(secret, body) }

// EscapeJSON returns s as a JSON string escaped the way Meta escapes it.
func EscapeJSON(s string) string { return fakes.EscapeJSON(s) }
