package bunstore

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chatico/mapper"
)

// arraySamples are values of each slice type columnArrays makes, with the
// array type it is sent as: empty, NULLs first, last and only, extremes,
// multi-byte text.
func arraySamples() []struct {
	oid uint32
	v   any
} {
	one, minus := int64(1), int64(-7)
	small, big := 3, math.MaxInt32
	text, short, yes := "t", int16(-2), true
	return []struct {
		oid uint32
		v   any
	}{
		{pgtype.TextArrayOID, []string{"a", "", "comment ✓ «ünïcode»", strings.Repeat("x", 5000)}},
		{pgtype.TextArrayOID, []string{}},
		{pgtype.TextArrayOID, []*string{&text, nil}},
		{pgtype.ByteaArrayOID, [][]byte{{1, 2, 3}, nil, {}, bytes.Repeat([]byte{0xff}, 300)}},
		{pgtype.ByteaArrayOID, [][]byte{nil}},
		{pgtype.ByteaArrayOID, [][]byte{}},
		{pgtype.Int8ArrayOID, []int64{0, -1, math.MaxInt64, math.MinInt64}},
		{pgtype.Int8ArrayOID, []*int64{nil, &one, &minus, nil}},
		{pgtype.Int8ArrayOID, []*int64{&one}},
		{pgtype.Int4ArrayOID, []int{0, -5, math.MaxInt32, math.MinInt32}},
		{pgtype.Int4ArrayOID, []*int{&small, nil, &big}},
		{pgtype.Int2ArrayOID, []int16{0, math.MaxInt16, math.MinInt16}},
		{pgtype.Int2ArrayOID, []*int16{nil, &short}},
		{pgtype.BoolArrayOID, []bool{true, false, true}},
		{pgtype.BoolArrayOID, []bool{}},
		{pgtype.BoolArrayOID, []*bool{&yes, nil}},
	}
}

// TestBinaryArrays: the writer's arrays come out byte for byte as pgx
// encodes them, by binaryArrays' own plans (not pgx's), and other values
// of those types are still pgx's to encode.
func TestBinaryArrays(t *testing.T) {
	ours := pgtype.NewMap()
	useBinaryArrays(ours)
	useBinaryArrays(ours) // a second time changes nothing
	pgxs := pgtype.NewMap()
	for _, c := range arraySamples() {
		name := fmt.Sprintf("%T/%d", c.v, reflectLen(c.v))
		want, err := pgxs.Encode(c.oid, pgtype.BinaryFormatCode, c.v, nil)
		if err != nil {
			t.Fatalf("%s: pgx: %v", name, err)
		}
		got, err := ours.Encode(c.oid, pgtype.BinaryFormatCode, c.v, []byte("prefix"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("%s: encoded\n%x\nnot as pgx does\n%x", name, got, want)
		}
		if _, ok := ours.PlanEncode(c.oid, pgtype.BinaryFormatCode, c.v).(interface{ isArrayPlan() }); !ok {
			t.Errorf("%s: encoded by %T, not binaryArrays' plan", name, ours.PlanEncode(c.oid, pgtype.BinaryFormatCode, c.v))
		}
	}

	// An int too large for integer is refused, as pgx refuses it.
	if _, err := ours.Encode(pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, []int{math.MaxInt32 + 1}, nil); err == nil {
		t.Error("an int beyond integer's range was encoded")
	}
	// What binaryArrays does not know goes to pgx's codec: the text
	// format, an element type columnArrays does not make, pgx's own
	// array types.
	for _, c := range []struct {
		oid    uint32
		format int16
		v      any
	}{
		{pgtype.TextArrayOID, pgtype.TextFormatCode, []string{"a", "b"}},
		{pgtype.Int4ArrayOID, pgtype.BinaryFormatCode, []int32{1, 2}},
		{pgtype.Int4ArrayOID, pgtype.TextFormatCode, []int32{1, 2}},
		{pgtype.TextArrayOID, pgtype.BinaryFormatCode, pgtype.FlatArray[string]{"c"}},
		{pgtype.TextArrayOID, pgtype.TextFormatCode, pgtype.FlatArray[string]{"c"}},
	} {
		want, err := pgxs.Encode(c.oid, c.format, c.v, nil)
		if err != nil {
			t.Fatalf("%T in format %d: pgx: %v", c.v, c.format, err)
		}
		got, err := ours.Encode(c.oid, c.format, c.v, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%T in format %d: %q, %v; pgx's codec: %q", c.v, c.format, got, err, want)
		}
		if _, mine := ours.PlanEncode(c.oid, c.format, c.v).(interface{ isArrayPlan() }); mine {
			t.Errorf("%T in format %d: planned by binaryArrays", c.v, c.format)
		}
	}
	// Decoding is pgx's.
	var back []string
	if err := ours.Scan(pgtype.TextArrayOID, pgtype.BinaryFormatCode, mustEncode(t, pgxs, pgtype.TextArrayOID, []string{"x", "y"}), &back); err != nil || !slices.Equal(back, []string{"x", "y"}) {
		t.Errorf("decoding gave %q, %v", back, err)
	}
}

// TestBinaryArraysRoundTrip: PostgreSQL reads binaryArrays' arrays as the
// values they were, on a writer's connection.
func TestBinaryArraysRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, dialects["postgres"])
	err := s.pgxConn(ctx, func(c *pgx.Conn) error {
		for _, sample := range arraySamples() {
			typ, _ := c.TypeMap().TypeForOID(sample.oid)
			var text string
			// array_to_string would drop NULLs; the text form keeps them.
			if err := c.QueryRow(ctx, "SELECT $1::"+typ.Name+"::text", sample.v).Scan(&text); err != nil {
				return fmt.Errorf("%T: %w", sample.v, err)
			}
			var want string
			if err := c.QueryRow(ctx, "SELECT $1::"+typ.Name+"::text", pgtype.FlatArray[any](anys(sample.v))).Scan(&want); err != nil {
				return fmt.Errorf("%T through pgx's codec: %w", sample.v, err)
			}
			if text != want {
				t.Errorf("%T: PostgreSQL read %.80q, through pgx's codec %.80q", sample.v, text, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkColumnArrays encodes the arrays of a batch of 32 deliveries,
// through pgx's codecs (the baseline) and binaryArrays.
func BenchmarkColumnArrays(b *testing.B) {
	var rows [][]any
	for i := range 32 {
		r := toDeliveryRow(sampleDelivery(i))
		rows = append(rows, r.args())
	}
	cols := columnArrays(rows)
	oids := make([]uint32, len(deliveryColumns))
	pgxs := pgtype.NewMap()
	for i, c := range deliveryColumns {
		t, ok := pgxs.TypeForName("_" + map[string]string{"text": "text", "bigint": "int8", "integer": "int4", "smallint": "int2", "boolean": "bool", "bytea": "bytea"}[c.pgType])
		if !ok {
			b.Fatalf("no array type for %s", c.pgType)
		}
		oids[i] = t.OID
	}
	ours := pgtype.NewMap()
	useBinaryArrays(ours)
	for _, m := range []struct {
		name string
		m    *pgtype.Map
	}{{"pgx", pgxs}, {"binary", ours}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = buf[:0]
				for i, v := range cols {
					var err error
					if buf, err = m.m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func mustEncode(t *testing.T, m *pgtype.Map, oid uint32, v any) []byte {
	t.Helper()
	b, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleDelivery is a delivered delivery as the hand-off routes it, its
// attempt held in its row; odd ones are originals, whose body is NULL.
func sampleDelivery(i int) *mapper.Delivery {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	done := at.Add(time.Millisecond)
	d := &mapper.Delivery{ID: fmt.Sprintf("dlv_%026d", i), EventID: fmt.Sprintf("evt_%026d", i), AppID: "app_1",
		OwnerIDs: []string{"17841400000000001"}, Original: i%2 == 1, Status: mapper.DeliveryDelivered, Attempts: 1,
		CreatedAt: at, NextAttemptAt: at, CompletedAt: &done, LastStatusCode: 200,
		Body: []byte(`{"object":"instagram","entry":[{"id":"17841400000000001","time":1764763200,"changes":[{"field":"comments","value":{"id":"1789","text":"nice"}}]}]}`)}
	return d
}

// reflectLen is v's length, v a slice.
func reflectLen(v any) int { return reflect.ValueOf(v).Len() }

// anys are slice v's elements, nil pointers as nil, for pgx's own codec.
func anys(v any) []any {
	rv := reflect.ValueOf(v)
	out := make([]any, rv.Len())
	for i := range out {
		e := rv.Index(i)
		switch {
		case e.Kind() == reflect.Pointer && e.IsNil():
		case e.Kind() == reflect.Pointer:
			out[i] = e.Elem().Interface()
		default:
			out[i] = e.Interface()
		}
	}
	return out
}
