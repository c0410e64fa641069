package mapper

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Errors of Meta's signature check; intake says which in its 401.
var (
	errSignatureMissing   = errors.New("signature header missing")
	errSignatureMalformed = errors.New("signature header malformed")
	errSignatureMismatch  = errors.New("signature does not match")
)

const sigPrefix = "sha256="

// verifyMeta checks an X-Hub-Signature-256 header against body with each
// candidate secret and returns the index of the secret that matched. Every
// candidate is tried, so the time taken does not depend on which matched.
func verifyMeta(header string, body []byte, secrets [][]byte) (int, error) {
	if header == "" {
		return -1, errSignatureMissing
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
		return -1, errSignatureMismatch
	}
	return matched, nil
}

// decodeSig parses "sha256=<64 hex digits>"; hex of either case is accepted.
func decodeSig(header string) ([]byte, error) {
	if len(header) != len(sigPrefix)+2*sha256.Size || !strings.EqualFold(header[:len(sigPrefix)], sigPrefix) {
		return nil, errSignatureMalformed
	}
	b, err := hex.DecodeString(header[len(sigPrefix):])
	if err != nil {
		return nil, errSignatureMalformed
	}
	return b, nil
}
