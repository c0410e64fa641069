package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chatico/mapper/workerauth"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	const secret = "worker-secret-0123456789"
	h := newHandler(secret, slog.New(slog.DiscardHandler))
	body := []byte(`{"object":"instagram","entry":[{"id":"17841400000000001","standby":[{"message":{"mid":"m1"}}]}]}`)
	post := func(b []byte, key, id string) int {
		req := httptest.NewRequest(http.MethodPost, "/instagram", bytes.NewReader(b))
		ts := time.Now().Unix()
		req.Header.Set(workerauth.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(workerauth.HeaderSignature, workerauth.Sign(key, ts, b))
		req.Header.Set(workerauth.HeaderDeliveryID, id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, _ = io.Copy(io.Discard, rec.Body)
		return rec.Code
	}
	for name, tc := range map[string]struct {
		body    []byte
		key, id string
		want    int
	}{
		"signed":        {body, secret, "dlv_1", 200},
		"forged":        {body, "guessed-secret-0000", "dlv_2", 401},
		"not a webhook": {[]byte(`[1]`), secret, "dlv_3", 422},
	} {
		if got := post(tc.body, tc.key, tc.id); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
	if !h.handled("dlv_1") {
		t.Error("a handled delivery is not recognised when it comes again")
	}
	if h.handled("dlv_2") || h.handled("dlv_3") {
		t.Error("a refused request was recorded as handled")
	}
}
