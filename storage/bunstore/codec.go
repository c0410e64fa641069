package bunstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"

	"github.com/chatico/mapper/internal/dictzstd"
	"github.com/klauspost/compress/zstd"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Payloads are stored compressed (#19): a one-comment webhook is about 340
// bytes of JSON, most of it the same field names in every webhook, and
// the payload was two fifths of an event's bytes. Zstandard with a preset
// dictionary of Instagram's webhook shapes makes it about 130 bytes, for
// about 3 µs of CPU to compress (done before the event reaches the
// writer; internal/dictzstd, #15) and 2 µs to expand.
//
// A codec names how a payload or body column is stored. A codec's meaning
// never changes once released: rows keep theirs for their whole life, so
// a new dictionary is a new codec, and the reader keeps every old one.
const (
	// codecRaw is the bytes as given: rows stored before compression, and
	// payloads compression does not make smaller.
	codecRaw int16 = 0
	// codecZstdIG1 is a Zstandard frame compressed with zdict/instagram-1.dict.
	codecZstdIG1 int16 = 1
)

// instagram1 is codecZstdIG1's dictionary: a raw-content dictionary, the
// shapes of Instagram's webhook fields, most frequent last (nearest to
// the data, so the cheapest to refer to). Never edit it: rows stored
// with it could no longer be read. TestDictionaryIsFrozen holds it.
//
//go:embed zdict/instagram-1.dict
var instagram1 []byte

// dictID is the dictionary's ID in each frame's header.
const dictID = 1

var (
	// smallEncoder writes the frames of payloads up to dictzstd.MaxInput, nearly
	// all of them: the general encoder restores a 256 KB table for each
	// frame, which in a loaded server cost several times the coding. Both
	// write the same codec: frames any Zstandard decoder with the
	// dictionary reads.
	smallEncoder = sync.OnceValue(func() *dictzstd.Encoder {
		e, err := dictzstd.NewEncoder(dictID, instagram1)
		if err != nil {
			panic(fmt.Sprintf("bunstore: dictzstd encoder: %v", err)) // a fixed dictionary: cannot happen
		}
		return e
	})
	encoder = sync.OnceValue(func() *zstd.Encoder {
		// A 64 KB window instead of the default 8 MB: the same frames for
		// webhooks, and 2 MB of encoders and decoders in all instead of 10.
		e, err := zstd.NewWriter(nil, zstd.WithEncoderDictRaw(dictID, instagram1), zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<16), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(fmt.Sprintf("bunstore: zstd encoder: %v", err)) // fixed options: cannot happen
		}
		return e
	})
	decoder = sync.OnceValue(func() *zstd.Decoder {
		// A payload is at most a webhook body; the limit is a guard
		// against a corrupt frame that claims gigabytes.
		d, err := zstd.NewReader(nil, zstd.WithDecoderDictRaw(dictID, instagram1), zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(maxPayload))
		if err != nil {
			panic(fmt.Sprintf("bunstore: zstd decoder: %v", err))
		}
		return d
	})
)

// maxPayload bounds what a stored frame may expand to: far above any
// webhook Meta sends (a batch of a thousand items is a few hundred KB).
const maxPayload = 64 << 20

// stored is a payload or body as written to its column.
type stored struct {
	data  []byte
	codec int16
}

// pack compresses p for storage, unless that would not make it smaller
// (empty, tiny or already compressed bodies stay as they are).
func pack(p []byte) stored {
	if len(p) < 32 {
		return stored{data: p, codec: codecRaw}
	}
	z, ok := smallEncoder().Encode(make([]byte, 0, len(p)/2), p)
	if !ok {
		z = encoder().EncodeAll(p, z)
	}
	if len(z) >= len(p) {
		return stored{data: p, codec: codecRaw}
	}
	return stored{data: z, codec: codecZstdIG1}
}

// errCorrupt says a stored payload could not be expanded: the database
// holds bytes this store did not write, or a codec of a later version.
var errCorrupt = errors.New("stored payload cannot be read")

// unpack returns the payload a column holds.
func unpack(data []byte, codec int16) ([]byte, error) {
	switch codec {
	case codecRaw:
		return data, nil
	case codecZstdIG1:
		if len(data) == 0 { // a listing that did not select it
			return nil, nil
		}
		p, err := decoder().DecodeAll(data, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		return p, nil
	default:
		return nil, fmt.Errorf("%w: codec %d is unknown to this version", errCorrupt, codec)
	}
}

// compressedPayloads is the migration that adds the codec columns. Its
// way down is Go, not SQL: before the columns go, it expands every
// compressed payload and body in place, so that the version before it
// reads them.
func compressedPayloads() migrate.Migration {
	return migrate.Migration{
		Name:    "20261130000008",
		Comment: "compressed_payloads",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return execAll(ctx, tx,
					"ALTER TABLE mapper_events ADD COLUMN payload_codec SMALLINT NOT NULL DEFAULT 0",
					"ALTER TABLE mapper_deliveries ADD COLUMN body_codec SMALLINT NOT NULL DEFAULT 0")
			})
		},
		Down: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if err := expandAll(ctx, tx, "mapper_events", "payload", "payload_codec"); err != nil {
					return err
				}
				if err := expandAll(ctx, tx, "mapper_deliveries", "body", "body_codec"); err != nil {
					return err
				}
				return execAll(ctx, tx, "ALTER TABLE mapper_deliveries DROP COLUMN body_codec", "ALTER TABLE mapper_events DROP COLUMN payload_codec")
			})
		},
	}
}

func execAll(ctx context.Context, tx bun.Tx, qs ...string) error {
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// expandAll rewrites a table's compressed column as it came, a few
// hundred rows at a time in the order of their IDs.
func expandAll(ctx context.Context, tx bun.Tx, table, col, codecCol string) error {
	type row struct {
		ID    string `bun:"id"`
		Data  []byte `bun:"data"`
		Codec int16  `bun:"codec"`
	}
	after := ""
	for {
		var rows []row
		err := tx.NewRaw("SELECT id, "+col+" AS data, "+codecCol+" AS codec FROM "+table+
			" WHERE id > ? AND "+codecCol+" <> 0 ORDER BY id LIMIT 500", after).Scan(ctx, &rows)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for _, r := range rows {
			p, err := unpack(r.Data, r.Codec)
			if err != nil {
				return fmt.Errorf("%s %s: %w", table, r.ID, err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET "+col+" = ?, "+codecCol+" = 0 WHERE id = ?", p, r.ID); err != nil {
				return err
			}
		}
		after = rows[len(rows)-1].ID
	}
}
