// Package ids makes the Mapper's identifiers: ULIDs that sort by creation
// time (keyset pages and ordered delivery rely on it), lease tokens, and
// the page sizes the stores serve.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// crockford is the base32 alphabet of ULIDs: no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// lastID is the last ID made in this process; within one millisecond the
// next one increments its random part, so IDs made here are strictly
// increasing (events' IDs follow their receive order).
var lastID struct {
	sync.Mutex
	ms       uint64
	hi       uint16
	lo       uint64
	hasValue bool
}

// New returns prefix + a 26-character ULID: 48 bits of milliseconds then
// 80 random bits, so IDs sort by creation time, as keyset pagination and
// ordered delivery want. IDs made by one process are strictly increasing.
func New(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	lastID.Lock()
	if lastID.hasValue && ms <= lastID.ms {
		// Same (or an earlier) millisecond: one more than the last.
		ms = lastID.ms
		lastID.lo++
		if lastID.lo == 0 {
			lastID.hi++
		}
	} else {
		var r [10]byte
		_, _ = rand.Read(r[:])
		lastID.hi = binary.BigEndian.Uint16(r[:2]) & 0x7fff // room to count up
		lastID.lo = binary.BigEndian.Uint64(r[2:])
	}
	lastID.ms, lastID.hasValue = ms, true
	binary.BigEndian.PutUint64(b[:8], ms<<16|uint64(lastID.hi))
	binary.BigEndian.PutUint64(b[8:], lastID.lo)
	lastID.Unlock()
	var out [26]byte
	// 128 bits as 26 base32 digits, the first holding the top 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return prefix + string(out[:])
}

// Token returns a random lease token.
func Token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Time reads the creation time (to the millisecond) of an ID New made.
func Time(id string) (time.Time, bool) {
	i := len(id) - 26
	if i < 0 {
		return time.Time{}, false
	}
	var ms uint64
	for _, c := range id[i : i+10] {
		d := strings.IndexRune(crockford, c)
		if d < 0 {
			return time.Time{}, false
		}
		ms = ms<<5 | uint64(d)
	}
	return time.UnixMilli(int64(ms)), true
}

// Page sizes of the stores' listings.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// PageLimit is the page size a store serves for a requested limit: the
// default for 0 or less, at most MaxPageLimit.
func PageLimit(n int) int {
	if n <= 0 {
		return DefaultPageLimit
	}
	return min(n, MaxPageLimit)
}
