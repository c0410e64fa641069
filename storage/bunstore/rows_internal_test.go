package bunstore

import (
	"encoding/json"
	"slices"
	"testing"
)

// jsonStrings writes what encoding/json writes, byte for byte for plain
// IDs and readable back as the same list for anything else.
func TestJSONStrings(t *testing.T) {
	for _, ss := range [][]string{
		nil, {}, {""}, {"17841400000000001"}, {"17841400000000001", "17841400000000002"}, {"comments", "messages"},
		{`a"b`}, {`back\slash`}, {"<script>&"}, {"tab\there"}, {"Größe 😍"}, {"\x7f"}, {"ok", "new\nline"},
	} {
		got := jsonStrings(ss)
		want, _ := json.Marshal(orEmpty(ss))
		if got != string(want) {
			t.Errorf("%q: %s, want %s", ss, got, want)
		}
		var back []string
		if err := json.Unmarshal([]byte(got), &back); err != nil || !slices.Equal(back, orEmpty(ss)) {
			t.Errorf("%q: read back as %q, %v", ss, back, err)
		}
	}
}
