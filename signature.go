package mapper

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/workerauth"
)

// Header names on Meta's requests and on the Mapper's deliveries.
const (
	// HeaderMetaSignature carries Meta's HMAC-SHA256 of the raw body,
	// keyed with the app secret, as "sha256=<hex>".
	HeaderMetaSignature = "X-Hub-Signature-256"
	// HeaderSignature carries the Mapper's HMAC-SHA256, keyed with the
	// worker app's secret, over "<timestamp>.<body>", as "sha256=<hex>".
	HeaderSignature = "X-Mapper-Signature-256"
	// HeaderTimestamp is the Unix time (seconds) the signature covers.
	HeaderTimestamp  = "X-Mapper-Timestamp"
	HeaderEventID    = "X-Mapper-Event-Id"
	HeaderDeliveryID = "X-Mapper-Delivery-Id"
	HeaderAttempt    = "X-Mapper-Attempt"
	// HeaderOwnerIDs lists the accounts whose items the body carries,
	// comma-separated.
	HeaderOwnerIDs = "X-Mapper-Owner-Ids"
	// HeaderEnvelope is "original" when the body is Meta's payload byte for
	// byte (and HeaderMetaSignature is forwarded), "split" when it is an
	// envelope holding only the receiving app's entries.
	HeaderEnvelope = "X-Mapper-Envelope"
	// HeaderMedia says, with media enrichment on ([WithMediaEnrichment]),
	// what the Graph API told of each media the body's enriched items
	// name: comma-separated "<media-id>=owner:<account-id>",
	// "<media-id>=username:<name>", "<media-id>=not_visible" or
	// "<media-id>=unknown" (the lookup failed, was throttled or took
	// longer than the budget).
	HeaderMedia = "X-Mapper-Media"
)

// Errors of signature checks.
var (
	ErrSignatureMissing   = errors.New("mapper: signature header missing")
	ErrSignatureMalformed = errors.New("mapper: signature header malformed")
	ErrSignatureMismatch  = errors.New("mapper: signature does not match")
	ErrTimestampOutside   = errors.New("mapper: signature timestamp outside the allowed window")
)

const sigPrefix = "sha256="

// verifyMeta checks an X-Hub-Signature-256 header against body with each
// candidate secret and returns the index of the secret that matched. Every
// candidate is tried, so the time taken does not depend on which matched.
func verifyMeta(header string, body []byte, secrets [][]byte) (int, error) {
	if header == "" {
		return -1, ErrSignatureMissing
	}
	want, err := decodeSig(header)
	if err != nil {
		return -1, err
	}
	matched := -1
	var sum [sha256.Size]byte
	for i, s := range secrets {
		mac := hmac.New(sha256.New, s)
		mac.Write(body)
		if hmac.Equal(mac.Sum(sum[:0]), want) && matched < 0 {
			matched = i
		}
	}
	if matched < 0 {
		return -1, ErrSignatureMismatch
	}
	return matched, nil
}

// decodeSig parses "sha256=<64 hex digits>"; hex of either case is accepted.
func decodeSig(header string) ([]byte, error) {
	if len(header) != len(sigPrefix)+2*sha256.Size || !strings.EqualFold(header[:len(sigPrefix)], sigPrefix) {
		return nil, ErrSignatureMalformed
	}
	b, err := hex.DecodeString(header[len(sigPrefix):])
	if err != nil {
		return nil, ErrSignatureMalformed
	}
	return b, nil
}

// SignMeta returns the X-Hub-Signature-256 value Meta would send for body
// signed with secret. Tests and fakes use it.
func SignMeta(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return sigPrefix + hex.EncodeToString(mac.Sum(nil))
}

// SignDelivery returns the X-Mapper-Signature-256 value for a delivery body
// sent at the given Unix time, keyed with the worker app's secret.
func SignDelivery(secret string, timestamp int64, body []byte) string {
	return httpforwarder.Sign(secret, timestamp, body)
}

// VerifyDelivery checks a delivery's X-Mapper-Signature-256 and
// X-Mapper-Timestamp header values against body, for a worker app that
// knows one or more of its own secrets (several during a rotation). The
// timestamp must be within window of now (0 means five minutes), which
// defeats replays of old deliveries. Package workerauth does the same on
// an *http.Request, with the standard library only.
func VerifyDelivery(signature, timestamp string, body []byte, now time.Time, window time.Duration, secrets ...string) error {
	err := workerauth.Verifier{Secrets: secrets, Window: window, Now: func() time.Time { return now }}.Check(signature, timestamp, body)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, workerauth.ErrMissing):
		return ErrSignatureMissing
	case errors.Is(err, workerauth.ErrStale):
		return ErrTimestampOutside
	case errors.Is(err, workerauth.ErrMismatch), errors.Is(err, workerauth.ErrNoSecret):
		return ErrSignatureMismatch
	}
	return ErrSignatureMalformed
}
