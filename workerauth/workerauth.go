// Package workerauth is for worker apps written in Go: it checks that a
// request really comes from the Mapper, in one call, with the standard
// library only.
//
// Every delivery carries X-Mapper-Signature-256, "sha256=" followed by the
// hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the app's secret, and
// X-Mapper-Timestamp, the Unix time in seconds it was signed at. Verify
// checks both: the signature against each of the app's secrets (several
// during a rotation), in constant time, and the timestamp against a window
// around now (five minutes by default), so that a captured delivery cannot
// be replayed later.
//
//	http.HandleFunc("/instagram", func(w http.ResponseWriter, r *http.Request) {
//		body, err := workerauth.Verify(r, os.Getenv("MAPPER_SECRET"))
//		if err != nil {
//			http.Error(w, err.Error(), http.StatusUnauthorized)
//			return
//		}
//		// body is the webhook; X-Mapper-Delivery-Id identifies a repeat.
//	})
package workerauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery, declared here once for the Mapper, its HTTP
// forwarder and worker apps.
const (
	// HeaderSignature is "sha256=" + hex(HMAC-SHA256(app secret,
	// "<timestamp>.<body>")).
	HeaderSignature = "X-Mapper-Signature-256"
	// HeaderTimestamp is the Unix time (seconds) the signature covers.
	HeaderTimestamp = "X-Mapper-Timestamp"
	// HeaderEventID names the webhook the delivery comes from.
	HeaderEventID = "X-Mapper-Event-Id"
	// HeaderDeliveryID is the same on every attempt of one delivery: a
	// worker app spots a repeat by it.
	HeaderDeliveryID = "X-Mapper-Delivery-Id"
	// HeaderAttempt counts attempts from 1.
	HeaderAttempt = "X-Mapper-Attempt"
	// HeaderOwnerIDs lists the accounts whose items the body carries,
	// comma-separated.
	HeaderOwnerIDs = "X-Mapper-Owner-Ids"
	// HeaderEnvelope is "original" when the body is Meta's payload byte
	// for byte (and HeaderMetaSignature is forwarded), "split" when it
	// holds only the receiving app's entries and items.
	HeaderEnvelope = "X-Mapper-Envelope"
	// HeaderMedia says, with media enrichment on, what the Graph API
	// told of each media the body's enriched items name: comma-separated
	// "<media-id>=owner:<account-id>", "<media-id>=username:<name>",
	// "<media-id>=not_visible" or "<media-id>=unknown" (the lookup failed,
	// was throttled or took longer than its budget).
	HeaderMedia = "X-Mapper-Media"
	// HeaderMetaSignature is Meta's own X-Hub-Signature-256, on the
	// webhooks Meta sends and, with the original bytes, on deliveries.
	HeaderMetaSignature = "X-Hub-Signature-256"
)

// Errors of Verify; errors.Is tells them apart.
var (
	ErrMissing   = errors.New("workerauth: signature or timestamp header missing")
	ErrMalformed = errors.New("workerauth: signature header malformed")
	ErrMismatch  = errors.New("workerauth: signature does not match")
	ErrStale     = errors.New("workerauth: timestamp outside the allowed window")
	ErrTooLarge  = errors.New("workerauth: body over the limit")
	ErrNoSecret  = errors.New("workerauth: no secret to check against")
)

// Sign returns "sha256=<hex>" of HMAC-SHA256(secret, "<ts>.<body>").
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	var b [20]byte
	mac.Write(strconv.AppendInt(b[:0], ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	// Summed and spelled out in arrays of their own, to make one string.
	var sum [sha256.Size]byte
	var sig [len("sha256=") + 2*sha256.Size]byte
	copy(sig[:], "sha256=")
	hex.Encode(sig[len("sha256="):], mac.Sum(sum[:0]))
	return string(sig[:])
}

// Verifier checks deliveries with settings other than the defaults.
type Verifier struct {
	// Secrets the signature may be keyed with.
	Secrets []string
	// Window is how far the timestamp may be from now; 0 means 5 minutes.
	Window time.Duration
	// MaxBody caps the body read; 0 means 8 MiB.
	MaxBody int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify reads the request body, checks the signature and the timestamp,
// and returns the body. The request's Body is replaced by a reader of the
// same bytes, so a handler after it can read it again.
func Verify(r *http.Request, secrets ...string) ([]byte, error) {
	return Verifier{Secrets: secrets}.Verify(r)
}

// Verify is the package's Verify with v's settings.
func (v Verifier) Verify(r *http.Request) ([]byte, error) {
	limit := v.MaxBody
	if limit <= 0 {
		limit = 8 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("workerauth: reading the body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, ErrTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := v.Check(r.Header.Get(HeaderSignature), r.Header.Get(HeaderTimestamp), body); err != nil {
		return nil, err
	}
	return body, nil
}

// Check verifies header values against a body already read.
func (v Verifier) Check(signature, timestamp string, body []byte) error {
	if len(v.Secrets) == 0 {
		return ErrNoSecret
	}
	if signature == "" || timestamp == "" {
		return ErrMissing
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a Unix time", ErrMalformed, truncate(timestamp))
	}
	window := v.Window
	if window <= 0 {
		window = 5 * time.Minute
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if d := now().Sub(time.Unix(ts, 0)); d > window || d < -window {
		return ErrStale
	}
	want, ok := decode(signature)
	if !ok {
		return ErrMalformed
	}
	match := false
	for _, s := range v.Secrets {
		got, _ := decode(Sign(s, ts, body))
		if hmac.Equal(got, want) {
			match = true
		}
	}
	if !match {
		return ErrMismatch
	}
	return nil
}

func decode(sig string) ([]byte, bool) {
	const prefix = "sha256="
	if len(sig) != len(prefix)+2*sha256.Size || !strings.EqualFold(sig[:len(prefix)], prefix) {
		return nil, false
	}
	b, err := hex.DecodeString(sig[len(prefix):])
	return b, err == nil
}

func truncate(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// Middleware refuses, with 401, every request that does not verify, and
// passes the others on with their body intact.
func Middleware(next http.Handler, secrets ...string) http.Handler {
	v := Verifier{Secrets: secrets}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Verify(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
