package dictzstd

import "math/bits"

// The baselines and extra bits of literal and match length codes, from
// RFC 8878 (3.1.1.3.2.1.1): code c stands for base[c] plus as many extra
// bits as extra[c] says.
var (
	litBase = [36]uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
		8192, 16384, 32768, 65536}
	litExtra = [36]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12,
		13, 14, 15, 16}
	matchBase = [53]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
		19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
		35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
		4099, 8195, 16387, 32771, 65539}
	matchExtra = [53]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11,
		12, 13, 14, 15, 16}
)

// litCode and matchCode find a length's code: the last whose baseline
// it reaches (lengths here are below MaxInput, so the search is short).
func litCode(n uint32) uint8 {
	if n < 16 {
		return uint8(n)
	}
	c := len(litBase) - 1
	for litBase[c] > n {
		c--
	}
	return uint8(c)
}

func matchCode(n uint32) uint8 {
	if n < 35 {
		return uint8(n - 3)
	}
	c := len(matchBase) - 1
	for matchBase[c] > n {
		c--
	}
	return uint8(c)
}

// offsetCode codes a match's distance as a new offset (never a repeated
// one): Offset_Value is the distance plus 3, and its code the position of
// its highest bit, the rest of it the extra bits.
func offsetCode(offset uint32) uint8 {
	return uint8(bits.Len32(offset+3) - 1)
}

// extras adds a sequence's extra bits: literal length, match length and
// offset, the order a decoder reads them in reverse.
func (b *bitWriter) extras(s sequence, llc, mlc, ofc uint8) {
	b.add(s.lit-litBase[llc], litExtra[llc])
	b.add(s.match-matchBase[mlc], matchExtra[mlc])
	b.flush()
	b.add(s.offset+3-uint32(1)<<ofc, ofc)
	b.flush()
}

// fseTable encodes symbols with one FSE distribution (RFC 8878, 4.1),
// built as the reference encoder builds it so that the decoder's table,
// spread from the same distribution, reads back what it writes.
type fseTable struct {
	log    uint8
	states []uint16 // the next state, by the transform's index
	// per symbol: deltaBits (the bits out, shifted by 16, less the
	// state's threshold) and deltaState (where its states start)
	deltaBits  []uint32
	deltaState []int32
}

// The predefined distributions of RFC 8878 (3.1.1.3.2.2): -1 is a
// symbol less likely than 1 in the table's size.
var predefined = struct{ ll, ml, of *fseTable }{
	ll: newFSETable(6, []int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
		-1, -1, -1, -1}),
	ml: newFSETable(6, []int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1,
		-1, -1, -1, -1, -1}),
	of: newFSETable(5, []int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}),
}

func newFSETable(log uint8, norm []int16) *fseTable {
	size := 1 << log
	symbols := make([]uint8, size)
	cumul := make([]int, len(norm)+1)
	high := size - 1
	for s, n := range norm {
		if n == -1 {
			cumul[s+1] = cumul[s] + 1
			symbols[high] = uint8(s)
			high--
		} else {
			cumul[s+1] = cumul[s] + int(n)
		}
	}
	// Spread the symbols over the table, skipping the low ones' slots.
	step, mask, pos := size>>1+size>>3+3, size-1, 0
	for s, n := range norm {
		for range max(n, 0) {
			symbols[pos] = uint8(s)
			pos = (pos + step) & mask
			for pos > high {
				pos = (pos + step) & mask
			}
		}
	}
	// Symbol s's states start at cumul[s]; the index encode computes
	// for it starts at its count (1 for the low ones), and deltaState
	// takes it there.
	t := &fseTable{log: log, states: make([]uint16, size),
		deltaBits: make([]uint32, len(norm)), deltaState: make([]int32, len(norm))}
	for s, n := range norm {
		switch {
		case n == -1 || n == 1:
			t.deltaBits[s] = uint32(log)<<16 - uint32(size)
			t.deltaState[s] = int32(cumul[s] - 1)
		case n > 1:
			out := uint32(log) - uint32(bits.Len32(uint32(n-1))-1)
			t.deltaBits[s] = out<<16 - uint32(n)<<out
			t.deltaState[s] = int32(cumul[s] - int(n))
		}
	}
	for u, s := range symbols { // cumul[s] becomes the next free state
		t.states[cumul[s]] = uint16(size + u)
		cumul[s]++
	}
	return t
}

// init returns the first state, for the last sequence's symbol: one of
// its states, reached without writing bits.
func (t *fseTable) init(sym uint8) uint32 {
	out := (t.deltaBits[sym] + 1<<15) >> 16
	v := out<<16 - t.deltaBits[sym]
	return uint32(t.states[int32(v>>out)+t.deltaState[sym]])
}

// encode writes the low bits of the state that lead a decoder to sym,
// and moves to sym's state.
func (t *fseTable) encode(b *bitWriter, state *uint32, sym uint8) {
	out := (*state + t.deltaBits[sym]) >> 16
	b.add(*state, uint8(out))
	*state = uint32(t.states[int32(*state>>out)+t.deltaState[sym]])
}

// bitWriter writes a backward bit stream: bits go in from the least
// significant end, and a closing 1 bit marks where a decoder, which
// reads from the end, starts.
type bitWriter struct {
	out  []byte
	bits uint64
	n    uint8
}

func (b *bitWriter) reset(dst []byte) { b.out, b.bits, b.n = dst, 0, 0 }

// add takes at most 32 bits; callers flush before 64 could be pending.
func (b *bitWriter) add(v uint32, n uint8) {
	b.bits |= uint64(v&(1<<n-1)) << b.n
	b.n += n
}

func (b *bitWriter) flush() {
	for b.n >= 8 {
		b.out = append(b.out, byte(b.bits))
		b.bits >>= 8
		b.n -= 8
	}
}

func (b *bitWriter) close() []byte {
	b.flush()
	b.add(1, 1)
	b.flush()
	if b.n > 0 {
		b.out = append(b.out, byte(b.bits))
	}
	out := b.out
	b.out = nil
	return out
}
