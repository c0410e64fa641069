package mapper_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/forwarder/httpforwarder"
	"github.com/chatico/mapper/internal/payload"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/mappertest"
	"github.com/chatico/mapper/workerauth"
)

func fuzzSeeds(f *testing.F) {
	files, err := filepath.Glob("testdata/payloads/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed payloads: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(mappertest.NewWebhook().Comment("1", "10", "100", "äöå / 😍 <b>%@").Message("2", "9", "mid.1", "\u2028\x00").Bytes())
	f.Add(mappertest.NewWebhook().Comment("1", "10", "100", "a").Comment("2", "20", "200", "b").Mention("1", "30", "").Bytes())
	f.Add([]byte(`{"object":"instagram","entry":[{"id":"1","changes":[{"field":"comments","value":"not an object"}],"messaging":[{}]}]}`))
	f.Add([]byte(`{"object":"instagram","entry":[]}`))
	f.Add([]byte(`{"object":"instagram","entry":[{"id":"1","time":1e20}]}`))
}

// recordingForwarder delivers in process, so the fuzzer can run routing
// and splitting at full speed and look at what each app would receive.
type recordingForwarder struct {
	mu   sync.Mutex
	got  map[string][][]byte // app ID → bodies
	orig map[string]bool
}

func (f *recordingForwarder) Forward(_ context.Context, r *mapper.ForwardRequest) httpforwarder.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got[r.App.ID] = append(f.got[r.App.ID], r.Delivery.Body)
	f.orig[r.Delivery.ID] = r.Delivery.Original
	return httpforwarder.Result{StatusCode: 200}
}

// FuzzIntake drives the whole webhook handler in sync mode with every
// input signed correctly: it must answer 200 or 400 (never 5xx, never a
// panic), 400 only for a body that is not a JSON object with an "object"
// string and an "entry" array or that has an ID with a control character,
// and what each app receives must parse and hold only entries of its own
// accounts. Each input gets a fresh memstore.
func FuzzIntake(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzIntake(t, newFuzzStore(t, memstore.New()), body)
	})
}

// FuzzIntakeSQLite is FuzzIntake through the real SQLite store, shared by
// every input as a server's database is: what the parser lets through
// must never make the database fail.
func FuzzIntakeSQLite(f *testing.F) {
	fuzzSeeds(f)
	store, err := bunstore.OpenSQLite(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	if _, err := store.Migrate(context.Background()); err != nil {
		f.Fatal(err)
	}
	newFuzzStore(f, store)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzIntake(t, store, body) })
}

// fuzzAccounts are the accounts of the fuzzers' apps, by app ID.
var fuzzAccounts = map[string]string{"app_1": "1", "app_2": "2", "app_big": "17841405309211844"}

func newFuzzStore(tb testing.TB, store mapper.Store) mapper.Store {
	for id, acc := range fuzzAccounts {
		if err := store.CreateApp(context.Background(), &mapper.WorkerApp{ID: id, Name: id, URL: "http://127.0.0.1:1", AccountIDs: []string{acc}, Secret: "0123456789abcdef", Enabled: true}); err != nil {
			tb.Fatal(err)
		}
	}
	return store
}

func fuzzIntake(t *testing.T, store mapper.Store, body []byte) {
	fw := &recordingForwarder{got: map[string][][]byte{}, orig: map[string]bool{}}
	m, err := mapper.New(store, mapper.WithMetaSecrets(metaSecret), mapper.WithVerifyToken(verifyToken),
		mapper.WithOwnerPolicy(mapper.OwnerFromEntry), mapper.WithForwarder(fw), mapper.WithSyncDelivery(true), mapper.WithRateLimit(0, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/webhook/", bytes.NewReader(body))
	req.Header.Set(workerauth.HeaderMetaSignature, mappertest.Sign(metaSecret, body))
	m.Handler().ServeHTTP(rec, req)
	switch rec.Code {
	case 200:
	case 400:
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("400 with %q", ct)
		}
		if _, err := payload.Parse(body); err == nil && strings.Contains(rec.Body.String(), "malformed-payload") {
			t.Fatalf("a body with an object and an entry array was refused: %s", rec.Body)
		}
		return
	default:
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	for appID, bodies := range fw.got {
		for _, b := range bodies {
			p, err := payload.Parse(b)
			if err != nil {
				t.Fatalf("app %s got an unparseable body: %v\n%s", appID, err, b)
			}
			for _, e := range p.Entries {
				if e.ID != fuzzAccounts[appID] {
					t.Fatalf("app %s got an entry of account %q:\n%s", appID, e.ID, b)
				}
			}
		}
	}
	if rec.Code == 200 && !strings.Contains(rec.Body.String(), `"event_id"`) {
		t.Fatalf("200 without an event: %s", rec.Body)
	}
}
