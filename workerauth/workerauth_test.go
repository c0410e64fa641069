package workerauth_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chatico/mapper/workerauth"
)

func signed(body []byte, secret string, at time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	ts := at.Unix()
	r.Header.Set(workerauth.HeaderTimestamp, strconv.FormatInt(ts, 10))
	r.Header.Set(workerauth.HeaderSignature, workerauth.Sign(secret, ts, body))
	return r
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"object":"instagram","entry":[]}`)
	now := time.Now()
	tests := []struct {
		name string
		req  func() *http.Request
		want error
	}{
		{"valid", func() *http.Request { return signed(body, "s3cret", now) }, nil},
		{"valid with the old secret of a rotation", func() *http.Request { return signed(body, "old", now) }, nil},
		{"tampered body", func() *http.Request {
			r := signed(body, "s3cret", now)
			r.Body = io.NopCloser(bytes.NewReader(append([]byte{' '}, body...)))
			return r
		}, workerauth.ErrMismatch},
		{"wrong secret", func() *http.Request { return signed(body, "guess", now) }, workerauth.ErrMismatch},
		{"stale timestamp", func() *http.Request { return signed(body, "s3cret", now.Add(-6*time.Minute)) }, workerauth.ErrStale},
		{"future timestamp", func() *http.Request { return signed(body, "s3cret", now.Add(6*time.Minute)) }, workerauth.ErrStale},
		{"timestamp changed after signing", func() *http.Request {
			r := signed(body, "s3cret", now)
			r.Header.Set(workerauth.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return r
		}, workerauth.ErrMismatch},
		{"no signature", func() *http.Request {
			r := signed(body, "s3cret", now)
			r.Header.Del(workerauth.HeaderSignature)
			return r
		}, workerauth.ErrMissing},
		{"malformed signature", func() *http.Request {
			r := signed(body, "s3cret", now)
			r.Header.Set(workerauth.HeaderSignature, "sha256=xyz")
			return r
		}, workerauth.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			got, err := workerauth.Verify(r, "s3cret", "old")
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if err == nil {
				again, _ := io.ReadAll(r.Body)
				if !bytes.Equal(got, body) || !bytes.Equal(again, body) {
					t.Errorf("body %q, re-read %q", got, again)
				}
			}
		})
	}
	if _, err := workerauth.Verify(signed(body, "s", now)); !errors.Is(err, workerauth.ErrNoSecret) {
		t.Errorf("no secrets: %v", err)
	}
	big := bytes.Repeat([]byte("a"), 100)
	if _, err := (workerauth.Verifier{Secrets: []string{"s"}, MaxBody: 10}).Verify(signed(big, "s", now)); !errors.Is(err, workerauth.ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	h := workerauth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d bytes", len(b))
	}), "s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signed([]byte("hello"), "s3cret", time.Now()))
	if rec.Code != 200 || rec.Body.String() != "got 5 bytes" {
		t.Errorf("valid: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, signed([]byte("hello"), "forged", time.Now()))
	if rec.Code != 401 {
		t.Errorf("forged: %d", rec.Code)
	}
}

// A worker app checks the Mapper's signature before it trusts a delivery.
func ExampleVerify() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := workerauth.Verify(r, "the-app-secret")
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Printf("verified %s (delivery %s)\n", body, r.Header.Get("X-Mapper-Delivery-Id"))
	})
	// What the Mapper sends:
	body := []byte(`{"object":"instagram","entry":[]}`)
	req := signed(body, "the-app-secret", time.Now())
	req.Header.Set("X-Mapper-Delivery-Id", "dlv_01")
	handler.ServeHTTP(httptest.NewRecorder(), req)
	// And a forgery:
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, signed(body, "a-guess", time.Now()))
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// verified {"object":"instagram","entry":[]} (delivery dlv_01)
	// 401 workerauth: signature does not match
}
