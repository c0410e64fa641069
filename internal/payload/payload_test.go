package payload_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper/internal/payload"
)

const acc = "17841405309211844"

func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "payloads", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is one item as the parser must read it. A key ending in "*" is a
// prefix: the rest is a hash of the item's bytes.
type want struct {
	account, kind, field, event, key string
}

// Every shape of testdata/payloads: Meta's documented payloads for each
// Instagram field, under Facebook Login and Instagram Login, the
// dashboard's test, and payloads whose member types drifted.
var shapes = map[string][]want{
	"comments_instagram_login":    {{acc, "change", "comments", "", acc + "/comments/17919697626119712"}},
	"comments_facebook_login":     {{acc, "change", "comments", "", acc + "/comments/17865799348089039"}},
	"comments_flat":               {{acc, "change", "comments", "", acc + "/comments/17865799348089039"}},
	"live_comments":               {{acc, "change", "live_comments", "", acc + "/live_comments/17865799348089040"}},
	"mentions_caption":            {{acc, "change", "mentions", "", acc + "/mentions/17918195224117851/"}},
	"mentions_comment":            {{acc, "change", "mentions", "", acc + "/mentions/17918195224117851/17894227972186120"}},
	"story_insights":              {{acc, "change", "story_insights", "", acc + "/change/*"}},
	"messages":                    {{acc, "messaging", "messages", "message", acc + "/message/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx"}},
	"message_echoes":              {{acc, "messaging", "message_echoes", "message", acc + "/message/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQy"}},
	"message_reactions":           {{acc, "messaging", "message_reactions", "reaction", acc + "/reaction/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx/react/1236422025128657/1569262485349"}},
	"messaging_seen":              {{acc, "messaging", "messaging_seen", "read", acc + "/read/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx"}},
	"messaging_postbacks":         {{acc, "messaging", "messaging_postbacks", "postback", acc + "/postback/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQz"}},
	"messaging_referral":          {{acc, "messaging", "messaging_referral", "referral", acc + "/messaging/*"}},
	"message_edit":                {{acc, "messaging", "message_edit", "message_edit", acc + "/message_edit/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx/1"}},
	"messaging_optins":            {{acc, "messaging", "messaging_optins", "optin", acc + "/messaging/*"}},
	"messaging_handovers_pass":    {{acc, "messaging", "messaging_handovers", "pass_thread_control", acc + "/messaging/*"}},
	"messaging_handovers_take":    {{acc, "messaging", "messaging_handovers", "take_thread_control", acc + "/messaging/*"}},
	"messaging_handovers_request": {{acc, "messaging", "messaging_handovers", "request_thread_control", acc + "/messaging/*"}},
	"standby":                     {{acc, "standby", "standby", "message", acc + "/standby/message/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQ0"}},
	"standby_read":                {{acc, "standby", "standby", "read", acc + "/standby/read/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQ0"}},
	"dashboard_test_messages":     {{"0", "change", "messages", "", "0/message/random_mid"}},
	"numeric_ids":                 {{acc, "change", "comments", "", acc + "/comments/17919697626119712"}},
	"drift_message_string":        {{acc, "change", "messages", "", acc + "/change/*"}},
	"drift_value_types": {
		{acc, "change", "comments", "", acc + "/change/*"},
		{acc, "change", "", "", acc + "/change/*"}, // a numeric field names none
		{acc, "change", "", "", acc + "/change/*"}, // a string where a change should be
		{acc, "messaging", "messages", "message", acc + "/messaging/*"},
		{acc, "messaging", "", "", acc + "/messaging/*"},
	},
	"drift_unknown_members": {
		{acc, "entry", "", "", acc + "/entry/changes/*"},
		{acc, "entry", "reels_v2", "", acc + "/entry/reels_v2/*"},
	},
	"drift_entries": {
		{"", "entry", "", "", "/entry/0/*"},
		{"", "change", "comments", "", "/comments/1"},
		{"", "messaging", "messages", "message", "/message/m"},
		{acc, "entry", "", "", acc + "/entry/*"},
	},
}

func TestShapes(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "payloads", "*.json"))
	if err != nil || len(files) != len(shapes) {
		t.Fatalf("%d payload files, %d shapes: every file needs its expectations (%v)", len(files), len(shapes), err)
	}
	for name, wants := range shapes {
		t.Run(name, func(t *testing.T) {
			p, err := payload.Parse(readPayload(t, name))
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, e := range p.Entries {
				for _, it := range e.Items {
					got = append(got, want{e.ID, string(it.Kind), it.Field, it.Event, it.Key})
					if !json.Valid(it.Raw) {
						t.Errorf("item raw is not JSON: %s", it.Raw)
					}
				}
			}
			if len(got) != len(wants) || p.Count() != len(wants) {
				t.Fatalf("items %+v, want %+v", got, wants)
			}
			for i, w := range wants {
				g := got[i]
				keyOK := g.key == w.key
				if prefix, ok := strings.CutSuffix(w.key, "*"); ok {
					keyOK = strings.HasPrefix(g.key, prefix) && len(g.key) == len(prefix)+32
				}
				if g.account != w.account || g.kind != w.kind || g.field != w.field || g.event != w.event || !keyOK {
					t.Errorf("item %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestDetails(t *testing.T) {
	t.Parallel()
	p, err := payload.Parse(readPayload(t, "comments_instagram_login"))
	if err != nil {
		t.Fatal(err)
	}
	e := p.Entries[0]
	if e.Time != time.Unix(1758712345, 0).UTC() {
		t.Errorf("time %v", e.Time)
	}
	it := e.Items[0]
	if it.MediaID != "18172143295349192" || it.ObjectID != "17919697626119712" {
		t.Errorf("item %+v", it)
	}
	if !strings.Contains(string(it.Raw), `\ud83d\ude0d`) {
		t.Errorf("raw item lost Meta's escaping: %s", it.Raw)
	}
	if p, _ := payload.Parse(readPayload(t, "messages")); p.Entries[0].Time != time.UnixMilli(1758712345678).UTC() {
		t.Errorf("milliseconds read as %v", p.Entries[0].Time)
	}
	if p, _ := payload.Parse(readPayload(t, "drift_message_string")); p.Entries[0].Time != time.Unix(1700000000, 0).UTC() {
		t.Errorf("a time as a numeric string read as %v", p.Entries[0].Time)
	}
	if p, _ := payload.Parse(readPayload(t, "mentions_comment")); p.Entries[0].Items[0].MediaID != "17918195224117851" {
		t.Errorf("mention media %+v", p.Entries[0].Items[0])
	}
	p, _ = payload.Parse(readPayload(t, "numeric_ids"))
	if p.Entries[0].Items[0].MediaID != "18172143295349192" || !strings.Contains(string(p.Envelope([]bool{true})), `"unknown":true`) {
		t.Errorf("entry %+v", p.Entries[0])
	}
}

// The same item sent again, alone or in another batch, has the same key:
// keys of items without an ID come from the item's own bytes.
func TestKeysFollowContent(t *testing.T) {
	t.Parallel()
	a := `{"field":"story_insights","value":{"media_id":"1","reach":3}}`
	b := `{"field":"story_insights","value":{"media_id":"2","reach":3}}`
	one, _ := payload.Parse([]byte(`{"object":"instagram","entry":[{"id":"7","changes":[` + a + `]}]}`))
	two, _ := payload.Parse([]byte(`{"object":"instagram","entry":[{"id":"7","time":1,"changes":[` + b + `,` + a + `]}]}`))
	if one.Entries[0].Items[0].Key != two.Entries[0].Items[1].Key || two.Entries[0].Items[0].Key == two.Entries[0].Items[1].Key {
		t.Errorf("keys %q, %+v", one.Entries[0].Items[0].Key, two.Entries[0].Items)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		``:                                   "not a JSON object",
		`null`:                               "not a JSON object",
		`[]`:                                 "not a JSON object",
		`{`:                                  "invalid JSON",
		`{"entry":[]}`:                       `"object" is missing`,
		`{"object":1,"entry":[]}`:            `"object" is not a string`,
		`{"object":null,"entry":[]}`:         `"object" is not a string`,
		`{"object":"instagram"}`:             `"entry" is missing`,
		`{"object":"instagram","entry":{}}`:  `"entry" is not an array`,
		`{"object":"instagram","entry":"x"}`: `"entry" is not an array`,
	} {
		_, err := payload.Parse([]byte(body))
		if !errors.Is(err, payload.ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want ErrMalformed saying %q", body, err, want)
		}
	}
}

// Envelope keeps only the selected items, with Meta's bytes, and drops
// entries and passed-through members that were not selected.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	body := `{"object":"instagram","entry":[{"id":"1","time":5,"changes":[{"field":"comments","value":{"id":"c1"}},{"field":"mentions","value":{"media_id":"m\u00e4"}}],"messaging":[{"message":{"mid":"x"}}],"reels_v2":[1]},{"id":"2","changes":[{"field":"comments","value":{"id":"c2"}}]}]}`
	p, err := payload.Parse([]byte(body))
	if err != nil || p.Count() != 5 {
		t.Fatalf("%v %d", err, p.Count())
	}
	for _, tc := range []struct {
		sel  []bool
		want string
	}{
		{[]bool{true, false, false, false, false}, `{"object":"instagram","entry":[{"changes":[{"field":"comments","value":{"id":"c1"}}],"id":"1","messaging":[],"time":5}]}`},
		{[]bool{false, true, true, true, false}, `{"object":"instagram","entry":[{"changes":[{"field":"mentions","value":{"media_id":"m\u00e4"}}],"id":"1","messaging":[{"message":{"mid":"x"}}],"reels_v2":[1],"time":5}]}`},
		{[]bool{false, false, false, false, true}, `{"object":"instagram","entry":[{"id":"2","changes":[{"field":"comments","value":{"id":"c2"}}]}]}`},
	} {
		if got := string(p.Envelope(tc.sel)); got != tc.want {
			t.Errorf("Envelope(%v)\n got %s\nwant %s", tc.sel, got, tc.want)
		}
	}
}

// FuzzParse: no input panics the parser; a body it accepts is valid JSON,
// and every item has a key and raw bytes that are valid JSON; an
// envelope of all its items parses back to as many items.
func FuzzParse(f *testing.F) {
	for name := range shapes {
		f.Add(readPayload(f, name))
	}
	f.Add([]byte(`{"object":"instagram","entry":[{"id":"1","changes":[{"field":"comments","value":"not an object"}],"messaging":[{}]}]}`))
	f.Add([]byte(`{"object":"instagram","entry":[]}`))
	f.Add([]byte(`{"object":"instagram","entry":[{"id":"1","time":1e20}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := payload.Parse(body)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		sel := make([]bool, p.Count())
		for i := range sel {
			sel[i] = i%2 == 0
		}
		for _, e := range p.Entries {
			for _, it := range e.Items {
				if it.Key == "" || !json.Valid(it.Raw) {
					t.Fatalf("item %+v", it)
				}
			}
		}
		env := p.Envelope(sel)
		if !json.Valid(env) {
			t.Fatalf("envelope is not JSON: %s", env)
		}
		if _, err := payload.Parse(env); err != nil {
			t.Fatalf("envelope does not parse: %v\n%s", err, env)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	body := readPayload(b, "comments_instagram_login")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := payload.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}
