package mappertest_test

import (
	"encoding/json"
	"testing"

	"github.com/chatico/mapper/testing/mappertest"
)

func TestEscapeJSONMatchesMeta(t *testing.T) {
	t.Parallel()
	got := mappertest.EscapeJSON("äöå / 😍 \"q\"\n")
	want := `"\u00e4\u00f6\u00e5 \/ \ud83d\ude0d \"q\"\u000a"`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var back string
	if err := json.Unmarshal([]byte(got), &back); err != nil || back != "äöå / 😍 \"q\"\n" {
		t.Errorf("round trip %q %v", back, err)
	}
}
