package bunstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"
)

// binaryArrays is the codec of an array type on the writer's connections,
// wrapping the one pgx registers: it writes the one-dimensional arrays of
// columnArrays (a typed slice per column) in PostgreSQL's binary format
// straight from the slice, and leaves every other value, and all decoding,
// to pgx's own. pgx's codec encodes any slice through a generic array
// interface, boxing each element into an interface on the way: flat out
// on PostgreSQL, 4 % of the server's CPU and 9 % of the objects it
// allocated; this takes a fifth of the time, allocating nothing
// (BenchmarkColumnArrays; docs/performance.md, round sixteen).
type binaryArrays struct {
	pgtype.Codec
	elem   uint32 // the element type's OID
	encode func(value any, elem uint32) pgtype.EncodePlan
}

// PlanEncode plans the binary encoding of the slices binaryArrays knows
// for its type, and asks pgx's codec for anything else.
func (c binaryArrays) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		if p := c.encode(value, c.elem); p != nil {
			return p
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// binaryArrayTypes are the array types columnArrays makes, by OID: the
// element's OID, and the plans for the Go slices it encodes itself.
var binaryArrayTypes = map[uint32]binaryArrays{
	pgtype.TextArrayOID: {elem: pgtype.TextOID, encode: slicesOf(putBytes[string])},
	pgtype.ByteaArrayOID: {elem: pgtype.ByteaOID, encode: func(v any, elem uint32) pgtype.EncodePlan {
		if _, ok := v.([][]byte); ok {
			return arrayPlan[[]byte]{elem: elem, put: putBytes[[]byte], null: func(b []byte) bool { return b == nil }}
		}
		return nil
	}},
	pgtype.Int8ArrayOID: {elem: pgtype.Int8OID, encode: slicesOf(putInt8)},
	pgtype.Int4ArrayOID: {elem: pgtype.Int4OID, encode: slicesOf(putInt4)},
	pgtype.Int2ArrayOID: {elem: pgtype.Int2OID, encode: slicesOf(putInt2)},
	pgtype.BoolArrayOID: {elem: pgtype.BoolOID, encode: slicesOf(putBool)},
}

// slicesOf plans []T, each element by put, and []*T, nil ones as NULLs.
func slicesOf[T any](put func([]byte, T) ([]byte, error)) func(any, uint32) pgtype.EncodePlan {
	return func(v any, elem uint32) pgtype.EncodePlan {
		switch v.(type) {
		case []T:
			return arrayPlan[T]{elem: elem, put: put}
		case []*T:
			return arrayPlan[*T]{elem: elem, null: func(p *T) bool { return p == nil },
				put: func(buf []byte, p *T) ([]byte, error) { return put(buf, *p) }}
		}
		return nil
	}
}

// useBinaryArrays registers binaryArrays for the array types of
// binaryArrayTypes in m, a connection's type map, once.
func useBinaryArrays(m *pgtype.Map) {
	if t, ok := m.TypeForOID(pgtype.TextArrayOID); ok {
		if _, done := t.Codec.(binaryArrays); done {
			return
		}
	}
	for oid, c := range binaryArrayTypes {
		t, ok := m.TypeForOID(oid)
		if !ok {
			continue
		}
		c.Codec = t.Codec
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: oid, Codec: c})
	}
}

// arrayPlan writes a []T as a one-dimensional array of elem, each element
// by put, those null reports as NULL.
type arrayPlan[T any] struct {
	elem uint32
	put  func(buf []byte, v T) ([]byte, error)
	null func(T) bool // nil: none is NULL
}

// isArrayPlan marks arrayPlan for the tests.
func (arrayPlan[T]) isArrayPlan() {}

func (p arrayPlan[T]) Encode(value any, buf []byte) ([]byte, error) {
	vs := value.([]T)
	if len(vs) > math.MaxInt32 {
		return nil, fmt.Errorf("bunstore: an array of %d elements", len(vs))
	}
	hasNull := p.null != nil && slices.ContainsFunc(vs, p.null)
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	if hasNull {
		buf = binary.BigEndian.AppendUint32(buf, 1)
	} else {
		buf = binary.BigEndian.AppendUint32(buf, 0)
	}
	buf = binary.BigEndian.AppendUint32(buf, p.elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(vs)))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	for _, v := range vs {
		if hasNull && p.null(v) {
			buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32) // length -1: NULL
			continue
		}
		var err error
		if buf, err = p.put(buf, v); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// putBytes puts a text or a bytea: its length, then its bytes.
func putBytes[B string | []byte](buf []byte, b B) ([]byte, error) {
	if len(b) > math.MaxInt32 {
		return nil, fmt.Errorf("bunstore: a value of %d bytes", len(b))
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
	return append(buf, b...), nil
}

func putInt8(buf []byte, v int64) ([]byte, error) {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(v)), nil
}

func putInt4(buf []byte, v int) ([]byte, error) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return nil, fmt.Errorf("bunstore: %d is out of range for integer", v)
	}
	buf = binary.BigEndian.AppendUint32(buf, 4)
	return binary.BigEndian.AppendUint32(buf, uint32(int32(v))), nil
}

func putInt2(buf []byte, v int16) ([]byte, error) {
	buf = binary.BigEndian.AppendUint32(buf, 2)
	return binary.BigEndian.AppendUint16(buf, uint16(v)), nil
}

func putBool(buf []byte, v bool) ([]byte, error) {
	buf = binary.BigEndian.AppendUint32(buf, 1)
	if v {
		return append(buf, 1), nil
	}
	return append(buf, 0), nil
}
