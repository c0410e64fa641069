// Package dictzstd writes Zstandard frames for small inputs against a
// raw-content dictionary: a webhook's payload, a few hundred bytes,
// against the shapes of Instagram's fields.
//
// A general encoder (klauspost/compress/zstd, which reads these frames
// back) keeps a 256 KB match table and restores it from the dictionary's
// before every frame: for a 400-byte input most of the table, out of the
// cache, was 13 % of the reference server's CPU at 500 webhooks a
// second. This encoder looks the dictionary up in a table built once and
// only read, and the input in a small one of its own, so that a frame
// costs in proportion to its input.
//
// It writes what RFC 8878 calls a frame with one compressed block: the
// literals coded with Huffman (klauspost/compress/huff0, the library's
// own coder) and the sequences with the predefined FSE distributions,
// which for a few dozen sequences cost no table description. Its frames
// are ordinary Zstandard frames that name the dictionary by its ID, so
// any decoder given the dictionary reads them.
package dictzstd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/huff0"
)

// MaxInput is the largest input Encode takes: beyond it a general
// encoder's fixed cost is spread over enough bytes not to matter, and
// this one's single block and predefined tables would cost bytes.
const MaxInput = 4 << 10

const (
	minMatch = 4 // shorter matches do not pay for their sequence in JSON
	// Positions are looked up by a hash of their next five bytes, and
	// the dictionary's also by one of eight: the longer finds the field
	// whose name a position continues, which the shorter, with only the
	// last position for "id":" and the like, misses. Measured on the
	// corpus with the store's dictionary: 4 bytes alone stored 7 % more
	// than the general encoder, 5 and 8 1 % less.
	shortHash = 5
	longHash  = 8
	hashLog   = 12
)

// Encoder writes frames that refer to one dictionary. It is safe for
// concurrent use.
type Encoder struct {
	id   uint8
	dict []byte
	// short and long hold, for each hash, the last position in the
	// dictionary whose bytes it hashes, plus one (0: none). Built once,
	// only read: the dictionary's last occurrences are nearest to the
	// input and so the cheapest offsets.
	short, long [1 << hashLog]uint16
	state       sync.Pool
}

// state is one frame's working memory, reused through a pool.
type state struct {
	buf  []byte               // the dictionary, kept, then the input: positions are shared
	last [1 << hashLog]uint16 // per short hash, the input's last position plus one
	lits []byte
	seqs []sequence
	huff huff0.Scratch
	bw   bitWriter
}

type sequence struct {
	lit, match, offset uint32
}

// ErrDictionary says a dictionary cannot be used by this encoder.
var ErrDictionary = errors.New("dictzstd: dictionary unusable")

// NewEncoder returns an encoder for the raw-content dictionary dict,
// named id (1 to 255) in each frame.
func NewEncoder(id uint32, dict []byte) (*Encoder, error) {
	if id == 0 || id > 255 {
		return nil, fmt.Errorf("%w: its ID is %d, not from 1 to 255", ErrDictionary, id)
	}
	if len(dict) < 8 || len(dict) >= 1<<16-MaxInput {
		return nil, fmt.Errorf("%w: it is %d bytes long, not from 8 to %d", ErrDictionary, len(dict), 1<<16-MaxInput-1)
	}
	// A copy, that a caller's later edit cannot part from the tables.
	padded := append(bytes.Clone(dict), make([]byte, 8)...)
	e := &Encoder{id: uint8(id), dict: padded[:len(dict)]}
	for p := 0; p+minMatch <= len(dict); p++ {
		v := binary.LittleEndian.Uint64(padded[p:])
		e.short[hash(v, shortHash)] = uint16(p + 1)
		e.long[hash(v, longHash)] = uint16(p + 1)
	}
	e.state.New = func() any {
		return &state{
			buf:  append(make([]byte, 0, len(dict)+MaxInput+8), e.dict...),
			huff: huff0.Scratch{Reuse: huff0.ReusePolicyNone}, // each frame stands alone
		}
	}
	return e, nil
}

// hash hashes the first n bytes of v, eight read at a position.
func hash(v uint64, n int) uint32 {
	return uint32(((v << (64 - 8*n)) * 0xcf1bbcdcb7a56463) >> (64 - hashLog))
}

// Encode appends to dst a frame holding src, and reports whether it did:
// it does not take an empty input or one above MaxInput, for which the
// caller uses a general encoder.
func (e *Encoder) Encode(dst, src []byte) ([]byte, bool) {
	if len(src) == 0 || len(src) > MaxInput {
		return dst, false
	}
	st := e.state.Get().(*state)
	defer e.state.Put(st)
	st.parse(e, src)
	dst = e.header(dst, len(src))
	start := len(dst)
	dst = append(dst, 0, 0, 0) // the block's header, once its size is known
	dst = st.literals(dst)
	dst = st.sequences(dst)
	size, typ := len(dst)-start-3, 2 // a compressed block
	if size >= len(src) {
		dst, size, typ = append(dst[:start+3], src...), len(src), 0 // raw: the coding did not pay
	}
	h := uint32(1) | uint32(typ)<<1 | uint32(size)<<3 // last block
	dst[start], dst[start+1], dst[start+2] = byte(h), byte(h>>8), byte(h>>16)
	return dst, true
}

// header appends the frame header: what the general encoder writes for
// an input of this size with a 64 KB window and no checksum, so that
// the frames are alike whichever encoder wrote them.
func (e *Encoder) header(dst []byte, n int) []byte {
	dst = append(dst, 0x28, 0xb5, 0x2f, 0xfd)
	// Above a kilobyte the window is the input (a single segment), below
	// it the smallest window; the dictionary is reachable either way.
	single := n > 1024
	fhd := byte(1) // a dictionary ID in one byte
	if single {
		fhd |= 1 << 5
	}
	if n >= 256 {
		fhd |= 1 << 6 // the content size in two bytes, less 256
	}
	dst = append(dst, fhd)
	if !single {
		window := max(1024, 1<<bits.Len(uint(n)))
		dst = append(dst, byte(bits.Len(uint(window-1))-10)<<3)
	}
	dst = append(dst, e.id)
	if n >= 256 { // below, and not single, the size is left out
		dst = append(dst, byte(n-256), byte((n-256)>>8))
	}
	return dst
}

// parse splits src into literals and matches against the dictionary and
// src itself: greedy, taking the longest of the three candidates the
// hashes give, extended backwards over literals it would otherwise emit.
func (st *state) parse(e *Encoder, src []byte) {
	d := len(e.dict)
	// Eight zeros after the input, as after the dictionary in its
	// tables, let a hash read eight bytes at any position: the input's
	// last bytes then find the dictionary's (both end a JSON object).
	st.buf = append(append(st.buf[:d], src...), 0, 0, 0, 0, 0, 0, 0, 0)
	st.lits, st.seqs = st.lits[:0], st.seqs[:0]
	clear(st.last[:])
	end := len(st.buf) - 8
	buf, hist := st.buf, st.buf[:end]
	lit := d // where the pending literals start
	for s := d; s+minMatch <= end; {
		v := binary.LittleEndian.Uint64(buf[s:])
		h := hash(v, shortHash)
		best, length := 0, 0
		if c := int(st.last[h]); c > 0 {
			best, length = longer(hist, d+c-1, s, best, length)
		}
		if c := int(e.short[h]); c > 0 {
			best, length = longer(hist, c-1, s, best, length)
		}
		if c := int(e.long[hash(v, longHash)]); c > 0 {
			best, length = longer(hist, c-1, s, best, length)
		}
		st.last[h] = uint16(s - d + 1)
		if length == 0 {
			s++
			continue
		}
		for best > 0 && s > lit && buf[best-1] == buf[s-1] {
			best, s, length = best-1, s-1, length+1
		}
		st.lits = append(st.lits, buf[lit:s]...)
		st.seqs = append(st.seqs, sequence{lit: uint32(s - lit), match: uint32(length), offset: uint32(s - best)})
		for p := s + 1; p < s+length && p+minMatch <= end; p++ {
			st.last[hash(binary.LittleEndian.Uint64(buf[p:]), shortHash)] = uint16(p - d + 1)
		}
		s += length
		lit = s
	}
	st.lits = append(st.lits, buf[lit:end]...)
}

// longer returns the match at c for position s if it is longer than the
// one given (of at least minMatch bytes), else the one given.
func longer(buf []byte, c, s, best, length int) (int, int) {
	if c >= s || binary.LittleEndian.Uint32(buf[c:]) != binary.LittleEndian.Uint32(buf[s:]) {
		return best, length
	}
	n := minMatch
	for s+n < len(buf) && buf[c+n] == buf[s+n] {
		n++
	}
	if n > length {
		return c, n
	}
	return best, length
}

// literals appends the literals section: Huffman-coded when that is
// smaller, else as they are (or one byte repeated).
func (st *state) literals(dst []byte) []byte {
	lits := st.lits
	if len(lits) > 16 {
		single := len(lits) < 1024 // one stream, sizes in 10 bits
		var out []byte
		var err error
		if single {
			out, _, err = huff0.Compress1X(lits, &st.huff)
		} else {
			out, _, err = huff0.Compress4X(lits, &st.huff)
		}
		switch {
		case err == nil && len(out)+4 < len(lits):
			if single {
				h := uint32(2) | uint32(len(lits))<<4 | uint32(len(out))<<14
				dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
			} else { // four streams, sizes in 14 bits
				h := uint32(2) | 2<<2 | uint32(len(lits))<<4 | uint32(len(out))<<18
				dst = append(dst, byte(h), byte(h>>8), byte(h>>16), byte(h>>24))
			}
			return append(dst, out...)
		case errors.Is(err, huff0.ErrUseRLE):
			return append(literalsHeader(dst, 1, len(lits)), lits[0])
		}
	}
	return append(literalsHeader(dst, 0, len(lits)), lits...)
}

// literalsHeader appends the header of raw (typ 0) or RLE (typ 1)
// literals.
func literalsHeader(dst []byte, typ, n int) []byte {
	switch {
	case n < 32:
		return append(dst, byte(typ|n<<3))
	case n < 4096:
		h := typ | 1<<2 | n<<4
		return append(dst, byte(h), byte(h>>8))
	default:
		h := typ | 3<<2 | n<<4
		return append(dst, byte(h), byte(h>>8), byte(h>>16))
	}
}

// sequences appends the sequences section, coded backwards with the
// predefined distributions as RFC 8878 (3.1.1.3.2) lays it out.
func (st *state) sequences(dst []byte) []byte {
	n := len(st.seqs)
	if n < 128 {
		dst = append(dst, byte(n))
	} else { // below 0x7F00: MaxInput allows at most a thousand
		dst = append(dst, byte(n>>8)+0x80, byte(n))
	}
	if n == 0 {
		return dst
	}
	dst = append(dst, 0) // all three predefined
	bw := &st.bw
	bw.reset(dst)
	last := st.seqs[n-1]
	llc, mlc, ofc := litCode(last.lit), matchCode(last.match), offsetCode(last.offset)
	ml, of, ll := predefined.ml.init(mlc), predefined.of.init(ofc), predefined.ll.init(llc)
	bw.extras(last, llc, mlc, ofc)
	for i := n - 2; i >= 0; i-- {
		s := st.seqs[i]
		llc, mlc, ofc := litCode(s.lit), matchCode(s.match), offsetCode(s.offset)
		predefined.of.encode(bw, &of, ofc)
		predefined.ml.encode(bw, &ml, mlc)
		predefined.ll.encode(bw, &ll, llc)
		bw.flush()
		bw.extras(s, llc, mlc, ofc)
	}
	bw.add(ml-uint32(1)<<predefined.ml.log, predefined.ml.log)
	bw.add(of-uint32(1)<<predefined.of.log, predefined.of.log)
	bw.add(ll-uint32(1)<<predefined.ll.log, predefined.ll.log)
	return bw.close()
}
