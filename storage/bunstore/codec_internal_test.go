package bunstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/dictzstd"
	"github.com/chatico/mapper/internal/fakes"
)

// Rows compressed with a dictionary are read with that dictionary for
// their whole life: an edit to it would make them unreadable.
func TestDictionaryIsFrozen(t *testing.T) {
	sum := sha256.Sum256(instagram1)
	if got := hex.EncodeToString(sum[:]); got != "29dcaf9899e911f6951106cc72127ee528420c08f071f8755b50a72c22c28aed" {
		t.Fatalf("zdict/instagram-1.dict changed (sha256 %s): add a new codec with a new dictionary instead", got)
	}
}

// corpus is the repository's payloads, by file.
func corpus(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../../testdata/payloads/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	payloads := make(map[string][]byte, len(files))
	for _, f := range files {
		p, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		payloads[f] = p
	}
	return payloads
}

// Every payload of the test corpus comes back byte for byte, and the
// webhooks Meta sends most are stored in well under half their size.
func TestPackRoundTrip(t *testing.T) {
	var raw, packed int
	for f, p := range corpus(t) {
		st := pack(p)
		got, err := unpack(st.data, st.codec)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("%s: %v, %d bytes back of %d", f, err, len(got), len(p))
		}
		raw, packed = raw+len(p), packed+len(st.data)
	}
	comment := fakes.NewWebhook().Comment("17841400000000001", "18000000000000001", "17901234567890123", "Love this! 😍 Größe M? @friend").Bytes()
	if st := pack(comment); st.codec != codecZstdIG1 || len(st.data)*2 > len(comment) {
		t.Errorf("a comment of %d bytes stored as %d (codec %d)", len(comment), len(st.data), st.codec)
	}
	t.Logf("corpus: %d bytes stored as %d", raw, packed)
	// Above dictzstd.MaxInput the general encoder writes the frame.
	large := bytes.Repeat(comment, 4*dictzstd.MaxInput/len(comment))
	if st := pack(large); st.codec != codecZstdIG1 || len(st.data)*4 > len(large) {
		t.Errorf("%d bytes stored as %d (codec %d)", len(large), len(st.data), st.codec)
	} else if got, err := unpack(st.data, st.codec); err != nil || !bytes.Equal(got, large) {
		t.Errorf("%d bytes: %v, %d back", len(large), err, len(got))
	}
	noise := make([]byte, 64)
	_, _ = rand.Read(noise)
	for _, small := range [][]byte{nil, {}, []byte("{}"), noise} {
		if st := pack(small); st.codec != codecRaw || !bytes.Equal(st.data, small) {
			t.Errorf("%q: stored as %q (codec %d), want as it is", small, st.data, st.codec)
		}
	}
}

// Whatever is stored comes back as it was, with the store's dictionary:
// internal/dictzstd's fuzzing uses one of its own.
func FuzzPack(f *testing.F) {
	for _, p := range corpus(f) {
		f.Add(p)
	}
	f.Add(instagram1)
	f.Fuzz(func(t *testing.T, p []byte) {
		st := pack(p)
		got, err := unpack(st.data, st.codec)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("%d bytes stored with codec %d: %v, %d back", len(p), st.codec, err, len(got))
		}
	})
}

func TestUnpackRefusesWhatItCannotRead(t *testing.T) {
	if _, err := unpack([]byte("not a frame at all"), codecZstdIG1); !errors.Is(err, errCorrupt) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := unpack([]byte("{}"), 9); !errors.Is(err, errCorrupt) {
		t.Errorf("unknown codec: %v", err)
	}
}

// Through the store: events' payloads and split deliveries' bodies are
// stored compressed and read back as they came, by every read path; an
// event stored before the codec column (codec 0) reads as before; the
// migration's way down expands every compressed row.
func TestCompressedPayloadsMigration(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	comment := fakes.NewWebhook().Time(at).Comment("17841400000000001", "18000000000000001", "17901234567890123", "Love this! 😍 Größe M? @friend").Bytes()
	split := fakes.NewWebhook().Time(at).Comment("17841400000000002", "18000000000000002", "17901234567890124", "Where can I buy it?").Bytes()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := migratedUpTo(t, open, "20261130000007")
			if _, err := s.db.ExecContext(ctx, `INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at)
VALUES ('evt_old', 10, 'instagram', ?, 'sha256=abc', '[]', '["1"]', 'pending', 99999999999999)`, comment); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if ev, err := s.GetEvent(ctx, "evt_old"); err != nil || !bytes.Equal(ev.Payload, comment) {
				t.Fatalf("event stored before: %v %q", err, ev.Payload)
			}

			ev := &mapper.Event{ID: "evt_new", ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
				Payload: comment, Signature: "sha256=def", AccountIDs: []string{"17841400000000001"}, Items: []mapper.EventItem{{Key: "k1"}}}
			if err := s.CreateEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
			var n, codec int
			if err := s.db.QueryRowContext(ctx, "SELECT length(payload), payload_codec FROM mapper_events WHERE id = 'evt_new'").Scan(&n, &codec); err != nil ||
				codec != int(codecZstdIG1) || n*2 > len(comment) {
				t.Fatalf("stored: %d bytes of %d, codec %d, %v", n, len(comment), codec, err)
			}
			if got, err := s.GetEvent(ctx, ev.ID); err != nil || !bytes.Equal(got.Payload, comment) {
				t.Fatalf("read back: %v %q", err, got.Payload)
			}
			claimed, err := s.ClaimEvents(ctx, at, 10, time.Minute)
			if err != nil || len(claimed) != 2 {
				t.Fatalf("claimed: %v %d", err, len(claimed))
			}
			for _, c := range claimed {
				if !bytes.Equal(c.Payload, comment) {
					t.Fatalf("claimed %s: %q", c.ID, c.Payload)
				}
			}
			// Routed with the original and a split delivery (a body of its own).
			c := &claimed[1]
			if c.ID != ev.ID {
				c = &claimed[0]
			}
			c.Status, c.Owners, c.RoutedAt, c.RouteAttempts = mapper.EventDispatched, []string{"17841400000000001"}, &at, 1
			ds := []mapper.Delivery{
				{ID: "dlv_orig", EventID: c.ID, AppID: "a", OwnerIDs: []string{"17841400000000001"}, Body: comment, Original: true,
					MetaSignature: c.Signature, Status: mapper.DeliveryPending, CreatedAt: at, CycleStart: at, NextAttemptAt: at},
				{ID: "dlv_split", EventID: c.ID, AppID: "b", OwnerIDs: []string{"17841400000000002"}, Body: split,
					Status: mapper.DeliveryPending, CreatedAt: at, CycleStart: at, NextAttemptAt: at},
			}
			if err := s.RouteEvent(ctx, c, ds, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.db.QueryRowContext(ctx, "SELECT body_codec FROM mapper_deliveries WHERE id = 'dlv_split'").Scan(&codec); err != nil || codec != int(codecZstdIG1) {
				t.Fatalf("split body codec %d, %v", codec, err)
			}
			got, err := s.ClaimDeliveries(ctx, at.Add(2*time.Minute), 10, time.Minute, nil)
			if err != nil || len(got) != 2 {
				t.Fatalf("deliveries claimed: %v %+v", err, got)
			}
			for _, d := range got {
				want := map[string][]byte{"dlv_orig": comment, "dlv_split": split}[d.ID]
				if !bytes.Equal(d.Body, want) {
					t.Errorf("%s: body %q, want %q", d.ID, d.Body, want)
				}
			}

			// Down: the compressed rows are expanded, the columns gone.
			if _, err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			for id, want := range map[string][]byte{"evt_new": comment, "evt_old": comment} {
				var p []byte
				if err := s.db.QueryRowContext(ctx, "SELECT payload FROM mapper_events WHERE id = ?", id).Scan(&p); err != nil || !bytes.Equal(p, want) {
					t.Errorf("after rollback, %s: %q %v", id, p, err)
				}
			}
			var body []byte
			if err := s.db.QueryRowContext(ctx, "SELECT body FROM mapper_deliveries WHERE id = 'dlv_split'").Scan(&body); err != nil || !bytes.Equal(body, split) {
				t.Errorf("after rollback, split body: %q %v", body, err)
			}
			if _, err := s.db.ExecContext(ctx, "SELECT payload_codec FROM mapper_events"); err == nil {
				t.Error("payload_codec is still there after the rollback")
			}
		})
	}
}

// A payload that cannot be expanded is an error naming its event when
// read alone; a claim hands the event on without it (routing then parks
// it as dead) rather than fail every event claimed with it.
func TestDamagedPayload(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, id := range []string{"evt_1", "evt_2"} {
		ev := &mapper.Event{ID: id, ReceivedAt: at, Object: "instagram", Status: mapper.EventPending, NextAttemptAt: at,
			Payload: fakes.NewWebhook().Comment("1", "2", id, "a comment long enough to be compressed").Bytes(), Items: []mapper.EventItem{{Key: id}}}
		if err := s.CreateEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE mapper_events SET payload = ? WHERE id = 'evt_1'", []byte("\x28\xb5\x2f\xfdgarbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(ctx, "evt_1"); !errors.Is(err, errCorrupt) {
		t.Errorf("GetEvent: %v, want errCorrupt", err)
	}
	evs, err := s.ClaimEvents(ctx, at, 10, time.Minute)
	if err != nil || len(evs) != 2 {
		t.Fatalf("claim: %v %d", err, len(evs))
	}
	for _, ev := range evs {
		if (ev.ID == "evt_1") != (ev.Payload == nil) {
			t.Errorf("%s: payload %q", ev.ID, ev.Payload)
		}
	}
}
