package bunstore_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

// benchIntake posts signed comment webhooks to the handler in parallel
// (RunParallel: GOMAXPROCS goroutines, times -cpu), each answered only
// once its event is committed. Group commit shows as throughput that
// grows with the parallelism.
func benchIntake(b *testing.B, s *bunstore.Store) {
	m, err := mapper.New(s, mapper.WithMetaSecrets(secret), mapper.WithVerifyToken("v"),
		mapper.WithOwnerPolicy(mapper.OwnerFromEntry), mapper.WithRateLimit(0, 0, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	h := m.Handler()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := mappertest.NewWebhook().Comment("17841400000000001", "18000000000000001", "c"+strconv.FormatInt(i, 10), "Love it! 😍").Bytes()
			req := httptest.NewRequest(http.MethodPost, "/webhook/", bytes.NewReader(body))
			req.Header.Set(workerauth.HeaderMetaSignature, mappertest.Sign(secret, body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Errorf("%d %s", rec.Code, rec.Body)
				return
			}
		}
	})
}

func BenchmarkIntakeSQLite(b *testing.B) { benchIntake(b, newSQLite(b)) }

func BenchmarkIntakePostgres(b *testing.B) { benchIntake(b, newPostgres(b)) }
