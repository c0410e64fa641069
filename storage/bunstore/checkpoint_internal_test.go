package bunstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
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
	var path string
	if err := s.db.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path); err != nil {
		t.Fatal(err)
	}
	var backstop int
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&backstop); err != nil {
		t.Fatal(err)
	}
	if backstop != walBackstop {
		t.Fatalf("the writer checkpoints at %d pages, want the backstop %d", backstop, walBackstop)
	}
	for i := range 300 {
		if err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO mapper_events (id, received_at, object, payload, signature, items, account_ids, status, next_attempt_at, completed_at)
VALUES (?, ?, 'instagram', randomblob(3000), '', '[]', '["1"]', 'delivered', 1, 2)`, fmt.Sprintf("evt_%06d", i), i)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The WAL index (the -shm file): the header's mxFrame, the last frame
	// written, at offset 16, and the checkpoint's nBackfill, the last
	// frame copied back, at offset 96; both native-endian.
	var frames, copied uint32
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		shm, err := os.ReadFile(path + "-shm")
		if err != nil {
			t.Fatal(err)
		}
		frames, copied = binary.NativeEndian.Uint32(shm[16:]), binary.NativeEndian.Uint32(shm[96:])
		if frames > 0 && copied == frames {
			return
		}
	}
	t.Fatalf("the WAL's %d frames were not checkpointed (%d copied)", frames, copied)
}
