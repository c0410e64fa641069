package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzScan: on any valid JSON, the scanner splits objects and arrays
// exactly as json.Unmarshal does into map[string]json.RawMessage and
// []json.RawMessage, and pick agrees with the map.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, ` { "a" : 1 , "b":[1,{"c":"}"}], "a":"x\"y" } `, `{"\u0069d":"1","id":2}`, `[1, "2", [3], {"4":5}, null, true, -1.5e3]`,
		`{"k":"\u00e4\ud83d\ude0d","l":{"m":[]}}`, `{"a":"\\"}`, `"str"`, `12`, `{"x":"\xff"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(b, &want)
		got, ok := objectMembers(b)
		if (wantErr == nil) != ok {
			t.Fatalf("object %q: ok %v, Unmarshal %v", b, ok, wantErr)
		}
		if ok {
			if len(got) != len(want) {
				t.Fatalf("object %q: %d members, want %d", b, len(got), len(want))
			}
			names := make([]string, 0, len(want))
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Fatalf("object %q, member %q: %q, want %q", b, k, got[k], v)
				}
				names = append(names, k)
			}
			out := make([]json.RawMessage, len(names))
			pick(b, names, out)
			for i, k := range names {
				if !bytes.Equal(out[i], want[k]) {
					t.Fatalf("pick %q of %q: %q, want %q", k, b, out[i], want[k])
				}
			}
		}
		var wantElems []json.RawMessage
		wantErr = json.Unmarshal(b, &wantElems)
		elems, ok := arrayElements(b)
		if (wantErr == nil) != ok || len(elems) != len(wantElems) {
			t.Fatalf("array %q: %d elements, ok %v; want %d, %v", b, len(elems), ok, len(wantElems), wantErr)
		}
		for i := range elems {
			if !bytes.Equal(elems[i], wantElems[i]) {
				t.Fatalf("array %q, element %d: %q, want %q", b, i, elems[i], wantElems[i])
			}
		}
		var s string
		if json.Unmarshal(b, &s) == nil {
			if u := unquote(bytes.TrimSpace(b)); u != s {
				t.Fatalf("string %q: %q, want %q", b, u, s)
			}
		}
	})
}

// BenchmarkParseBatch parses one batch of 50,000 one-comment entries (7.8
// MB). Allocated bytes per op are the figure to watch: parsing must stay a
// small multiple of the body's size (about 7 times, from 27 with
// json.Unmarshal at every level).
func BenchmarkParseBatch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"object":"instagram","entry":[`)
	for i := range 50000 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"id":"178414000000%05d","time":1764331200,"changes":[{"field":"comments","value":{"id":"179000000%05d","text":"hi","media":{"id":"18000000000000001"}}}]}`, i, i)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse(body)
		if err != nil || p.Count() != 50000 {
			b.Fatal(err)
		}
	}
}
