package bunstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

// TestCheckpointsBesideTheWriter: the writer leaves checkpoints to a
// connection of its own (its own threshold is only a backstop, far above
// what this test writes), and the pages a few hundred commits put in the
// WAL are copied back into the database file soon after, without the
// writer or anyone else asking.
func TestCheckpointsBesideTheWriter(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["sqlite"])
	var backstop int
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&backstop); err != nil {
		t.Fatal(err)
	}
	if backstop != walBackstop {
		t.Fatalf("the writer checkpoints at %d pages, want the backstop %d", backstop, walBackstop)
	}
	writeBlobs(t, s, 0, 300)
	waitCheckpointed(t, s)
}

// TestCheckpointWaitsForTheWAL: a commit's pages wait in the WAL until
// the WAL holds enough to be worth a checkpoint, or until the longest wait
// has passed; and a WAL index that cannot be read makes every poll a
// checkpoint.
func TestCheckpointWaitsForTheWAL(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, pace pacing) *Store {
		return migrated(t, func(t *testing.T) (*Store, error) {
			s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "m.db"), pace)
			if err == nil {
				// Start from an empty WAL: the migrations' pages, which
				// nudged nobody, would otherwise count.
				_, err = s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
			}
			return s, err
		})
	}

	t.Run("frames", func(t *testing.T) {
		s := open(t, pacing{frames: 200, poll: 5 * time.Millisecond, longest: time.Hour})
		writeBlobs(t, s, 0, 3)
		time.Sleep(100 * time.Millisecond) // twenty polls
		if frames, copied := walState(t, s); frames == 0 || frames >= 200 || copied != 0 {
			t.Fatalf("after three commits the WAL holds %d frames, %d copied back: want a few, none copied", frames, copied)
		}
		// Commits up to 200 frames, and no more: the write after a
		// checkpoint would start the WAL again, out of this test's sight.
		for i := 3; ; i++ {
			if i == 1000 {
				t.Fatal("a thousand commits of 3 KB did not make 200 frames")
			}
			writeBlobs(t, s, i, 1)
			if frames, _ := walState(t, s); frames >= 200 {
				break
			}
		}
		waitCheckpointed(t, s)
	})

	t.Run("longest", func(t *testing.T) {
		s := open(t, pacing{frames: 1 << 30, poll: 5 * time.Millisecond, longest: 50 * time.Millisecond})
		writeBlobs(t, s, 0, 3)
		waitCheckpointed(t, s)
	})

	t.Run("unreadable", func(t *testing.T) {
		for _, shm := range []string{filepath.Join(t.TempDir(), "absent-shm"), writeFile(t, "garbage-shm", make([]byte, 200))} {
			if n, ok := (&checkpointer{shm: shm}).pending(); ok {
				t.Errorf("%s: pending = %d, ok; want not ok", filepath.Base(shm), n)
			}
		}
	})
}

// writeBlobs commits n events of 3 KB, one a commit, numbered from first.
func writeBlobs(t *testing.T, s *Store, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := s.inTx(context.Background(), func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
VALUES (?, ?, 'instagram', randomblob(3000), '', '[]', '["1"]', 'delivered', 1, 2)`, fmt.Sprintf("evt_%06d", i), i)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// walState reads the WAL index (the -shm file): the header's mxFrame, the
// last frame written, at offset 16, and the checkpoint's nBackfill, the
// last frame copied back, at offset 96; both native-endian.
func walState(t *testing.T, s *Store) (frames, copied uint32) {
	t.Helper()
	var path string
	if err := s.db.QueryRowContext(context.Background(), "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path); err != nil {
		t.Fatal(err)
	}
	shm, err := os.ReadFile(path + "-shm")
	if err != nil {
		t.Fatal(err)
	}
	return binary.NativeEndian.Uint32(shm[16:]), binary.NativeEndian.Uint32(shm[96:])
}

// waitCheckpointed waits until the WAL's frames are all copied back.
func waitCheckpointed(t *testing.T, s *Store) {
	t.Helper()
	var frames, copied uint32
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if frames, copied = walState(t, s); frames > 0 && copied == frames {
			return
		}
	}
	t.Fatalf("the WAL's %d frames were not checkpointed (%d copied)", frames, copied)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
