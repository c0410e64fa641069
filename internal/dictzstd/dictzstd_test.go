package dictzstd

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The dictionary here is made for the tests, of JSON field shapes: what
// the encoder is for, without depending on the store's dictionary.
var testDict = []byte(strings.Repeat(`{"object":"instagram","entry":[{"id":"17841400000000000","time":1700000000,"changes":[{"field":"comments","value":{"from":{"id":"","username":""},"media":{"id":"","media_product_type":"FEED"},"id":"","parent_id":"","text":""}}]}]}`, 3) +
	`"messaging":[{"sender":{"id":""},"recipient":{"id":""},"timestamp":,"message":{"mid":"","text":""}}]`)

func newPair(t testing.TB) (*Encoder, *zstd.Decoder, *zstd.Encoder) {
	t.Helper()
	e, err := NewEncoder(7, testDict)
	if err != nil {
		t.Fatal(err)
	}
	d, err := zstd.NewReader(nil, zstd.WithDecoderDictRaw(7, testDict), zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	g, err := zstd.NewWriter(nil, zstd.WithEncoderDictRaw(7, testDict), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	return e, d, g
}

// roundTrip encodes src, checks that the general decoder gives it back,
// and returns the frame's length.
func roundTrip(t testing.TB, e *Encoder, d *zstd.Decoder, src []byte) int {
	t.Helper()
	prefix := []byte("kept")
	frame, ok := e.Encode(prefix, src)
	if !ok {
		t.Fatalf("%d bytes refused", len(src))
	}
	if !bytes.Equal(frame[:4], prefix) {
		t.Fatalf("the bytes before the frame changed: %q", frame[:4])
	}
	got, err := d.DecodeAll(frame[4:], nil)
	if err != nil {
		t.Fatalf("%d bytes: decoding: %v\nframe %x", len(src), err, frame[4:])
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("%d bytes came back as %d different ones\nsrc %q\ngot %q", len(src), len(got), src, got)
	}
	return len(frame) - 4
}

// Every payload of the repository's corpus comes back byte for byte, in
// about as few bytes as the general encoder's frames.
func TestCorpus(t *testing.T) {
	e, d, g := newPair(t)
	files, err := filepath.Glob("../../testdata/payloads/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	var raw, ours, general int
	for _, f := range files {
		p, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > MaxInput {
			continue
		}
		raw += len(p)
		ours += roundTrip(t, e, d, p)
		general += len(g.EncodeAll(p, nil))
	}
	t.Logf("corpus: %d bytes, %d in these frames, %d in the general encoder's", raw, ours, general)
	if ours > general*11/10 {
		t.Errorf("%d bytes against the general encoder's %d: more than a tenth more", ours, general)
	}
}

// Inputs that exercise each part of a frame: raw and RLE literals, no
// match at all, one long match, sizes at each header's boundaries,
// literals Huffman cannot shrink, and many sequences.
func TestShapes(t *testing.T) {
	e, d, _ := newPair(t)
	r := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	digits := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = '0' + byte(r.IntN(10))
		}
		return b
	}
	json := func(n int) []byte { // field shapes with fresh IDs between
		var b []byte
		for len(b) < n {
			b = append(b, `{"id":"`...)
			b = append(b, digits(17)...)
			b = append(b, `","text":"`...)
			b = append(b, noise(r.IntN(20))...)
			b = append(b, `"},`...)
		}
		return b[:n]
	}
	// Pieces of the dictionary, each after a byte it does not hold: the
	// matches take the pieces, and the literals are that byte alone.
	var oneLiteral []byte
	for _, piece := range strings.Fields(`"object" instagram "entry":[ "changes "field": comments "value": "from":{ username "media": media_pro duct_type "FEED"} parent_id "text":" messaging "sender" recipient timestamp "message`) {
		oneLiteral = append(append(oneLiteral, '#'), piece...)
	}
	cases := map[string][]byte{
		"literals of one byte":  oneLiteral,
		"one byte":              {'x'},
		"four bytes":            []byte("abcd"),
		"the dictionary itself": testDict,
		"one byte repeated":     bytes.Repeat([]byte{'a'}, 3000),
		"a byte pair repeated":  bytes.Repeat([]byte("ab"), 700),
		"noise":                 noise(MaxInput),
		"digits":                digits(2000),
		"largest":               json(MaxInput),
	}
	for _, n := range []int{15, 16, 17, 31, 32, 33, 127, 128, 255, 256, 257, 1023, 1024, 1025, 2047, 2048, 2049, 4095} {
		cases[fmt.Sprintf("json %d", n)] = json(n)
		cases[fmt.Sprintf("noise %d", n)] = noise(n)
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) { roundTrip(t, e, d, src) })
	}
}

// What it does not take, it says so and leaves dst as it was.
func TestRefuses(t *testing.T) {
	e, _, _ := newPair(t)
	for _, src := range [][]byte{nil, {}, make([]byte, MaxInput+1)} {
		if out, ok := e.Encode([]byte("dst"), src); ok || string(out) != "dst" {
			t.Errorf("%d bytes: ok %v, dst %q", len(src), ok, out)
		}
	}
	for _, c := range []struct {
		id   uint32
		dict []byte
	}{{0, testDict}, {256, testDict}, {1, []byte("abc")}, {1, make([]byte, 1<<16)}} {
		if _, err := NewEncoder(c.id, c.dict); !errors.Is(err, ErrDictionary) {
			t.Errorf("ID %d, %d bytes: %v", c.id, len(c.dict), err)
		}
	}
}

// Any input up to MaxInput round-trips.
func FuzzRoundTrip(f *testing.F) {
	e, d, _ := newPair(f)
	f.Add([]byte(`{"object":"instagram","entry":[{"id":"1784","time":1}]}`))
	f.Add(bytes.Repeat([]byte("0123456789"), 50))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) == 0 || len(src) > MaxInput {
			return
		}
		roundTrip(t, e, d, src)
	})
}

// BenchmarkEncode compares this encoder with the general one on a
// comment, each with its tables in the cache (hot) and after 16 MB of
// other work has pushed them out (cold), as between a loaded server's
// frames; cold reports the frame's time alone as frame-ns.
func BenchmarkEncode(b *testing.B) {
	e, _, g := newPair(b)
	src, err := os.ReadFile("../../testdata/payloads/comments_instagram_login.json")
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, len(src))
	encoders := []struct {
		name   string
		encode func()
	}{
		{"dictzstd", func() { dst, _ = e.Encode(dst[:0], src) }},
		{"general", func() { dst = g.EncodeAll(src, dst[:0]) }},
	}
	other := make([]byte, 16<<20)
	for _, enc := range encoders {
		b.Run(enc.name+"/hot", func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				enc.encode()
			}
		})
		b.Run(enc.name+"/cold", func(b *testing.B) {
			var spent time.Duration
			for b.Loop() {
				for i := 0; i < len(other); i += 64 {
					other[i]++
				}
				start := time.Now()
				enc.encode()
				spent += time.Since(start)
			}
			b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "frame-ns")
		})
	}
}
