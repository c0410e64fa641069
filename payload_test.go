package mapper_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/testing/mappertest"
)

// Examples from meta-webhooks.md and Meta's documentation, as sent on the wire.
var examplePayloads = map[string]string{
	"comments":                            `{"object":"instagram","entry":[{"id":"17841405309211844","time":1758712345,"changes":[{"field":"comments","value":{"id":"17919697626119712","text":"Love this! \ud83d\ude0d \u00dcn\u00efc\u00f6d\u00e9 \/ @friend","parent_id":"17865799348089039","from":{"id":"6453120148059171","username":"some_customer"},"media":{"id":"18172143295349192","media_product_type":"FEED"}}}]}]}`,
	"comment_id (Facebook Login example)": `{"object":"instagram","entry":[{"id":"17841405309211844","time":1520622968,"changes":[{"field":"comments","value":{"comment_id":"17865799348089039","text":"This is an example.","media":{"id":"123123123"}}}]}]}`,
	"messaging":                           `{"object":"instagram","entry":[{"id":"17841405309211844","time":1758712345678,"messaging":[{"sender":{"id":"1236422025128657"},"recipient":{"id":"17841405309211844"},"timestamp":1758712345012,"message":{"mid":"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx","text":"Hi, is this still available?"}}]}]}`,
	"mention":                             `{"object":"instagram","entry":[{"id":"17841405309211844","time":1520622968,"changes":[{"field":"mentions","value":{"media_id":"17918195224117851","comment_id":"17894227972186120"}}]}]}`,
	"flat Instagram Login example":        `{"object":"instagram","entry":[{"id":"17841405309211844","time":1520622968,"field":"comments","value":{"id":"17865799348089039","text":"flat","media":{"id":"123"}}}]}`,
	"dashboard test for messages":         `{"object":"instagram","entry":[{"id":"0","time":1700000000,"changes":[{"field":"messages","value":{"sender":{"id":"12334"},"recipient":{"id":"23245"},"timestamp":"1527459824","message":{"mid":"random_mid","text":"random_text"}}}]}]}`,
	"story_insights":                      `{"object":"instagram","entry":[{"id":"17841405309211844","time":1520622968,"changes":[{"field":"story_insights","value":{"media_id":"18060121678040891","exits":1,"replies":0,"reach":3,"taps_forward":1,"taps_back":0,"impressions":3}}]}]}`,
	"reaction and read":                   `{"object":"instagram","entry":[{"id":"17841405309211844","time":1569262486134,"messaging":[{"sender":{"id":"1"},"recipient":{"id":"17841405309211844"},"timestamp":1569262485349,"reaction":{"mid":"m1","action":"react","reaction":"love","emoji":"\u2764"}},{"sender":{"id":"1"},"recipient":{"id":"17841405309211844"},"timestamp":1569262485350,"read":{"mid":"m1"}}]}]}`,
	"numeric ids and unknown fields":      `{"object":"instagram","extra":{"x":[1,2]},"entry":[{"id":17841405309211844,"time":1520622968,"unknown":true,"changes":[{"field":"comments","value":{"id":17919697626119712,"media":{"id":18172143295349192},"new_field":"kept"}}]}]}`,
	"two accounts batched":                `{"object":"instagram","entry":[{"id":"1","time":1520622968,"changes":[{"field":"comments","value":{"id":"10","media":{"id":"100"}}}]},{"id":"2","time":1520622968,"changes":[{"field":"live_comments","value":{"id":"20","media":{"id":"200","media_product_type":"LIVE"}}}]}]}`,
}

func TestParsePayload(t *testing.T) {
	tests := []struct {
		name     string
		wantKeys []string
		check    func(t *testing.T, p *mapper.Payload)
	}{
		{"comments", []string{"17841405309211844/comments/17919697626119712"}, func(t *testing.T, p *mapper.Payload) {
			e := p.Entries[0]
			if e.Time != time.Unix(1758712345, 0).UTC() {
				t.Errorf("time %v", e.Time)
			}
			it := e.Changes[0]
			if it.MediaID != "18172143295349192" || it.ObjectID != "17919697626119712" || it.Field != "comments" || it.Kind != mapper.KindChange {
				t.Errorf("item %+v", it)
			}
			if !strings.Contains(string(it.Raw), `\ud83d\ude0d`) {
				t.Errorf("raw item lost Meta's escaping: %s", it.Raw)
			}
		}},
		{"comment_id (Facebook Login example)", []string{"17841405309211844/comments/17865799348089039"}, nil},
		{"messaging", []string{"17841405309211844/message/aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx"}, func(t *testing.T, p *mapper.Payload) {
			if got := p.Entries[0].Time; got != time.UnixMilli(1758712345678).UTC() {
				t.Errorf("milliseconds read as %v", got)
			}
			if it := p.Entries[0].Messaging[0]; it.Kind != mapper.KindMessaging || it.Field != "message" || it.MediaID != "" {
				t.Errorf("item %+v", it)
			}
		}},
		{"mention", []string{"17841405309211844/mentions/17918195224117851/17894227972186120"}, func(t *testing.T, p *mapper.Payload) {
			if it := p.Entries[0].Changes[0]; it.MediaID != "17918195224117851" {
				t.Errorf("item %+v", it)
			}
		}},
		{"flat Instagram Login example", []string{"17841405309211844/comments/17865799348089039"}, func(t *testing.T, p *mapper.Payload) {
			if it := p.Entries[0].Changes[0]; !it.Flat || it.MediaID != "123" {
				t.Errorf("item %+v", it)
			}
		}},
		{"dashboard test for messages", []string{"0/message/random_mid"}, nil},
		{"story_insights", nil, func(t *testing.T, p *mapper.Payload) {
			if k := p.Entries[0].Changes[0].Key; !strings.HasPrefix(k, "17841405309211844/payload/") {
				t.Errorf("story_insights has no natural key, want a payload key: %s", k)
			}
		}},
		{"reaction and read", []string{"17841405309211844/reaction/m1/react/1/1569262485349", "17841405309211844/read/m1"}, nil},
		{"numeric ids and unknown fields", []string{"17841405309211844/comments/17919697626119712"}, func(t *testing.T, p *mapper.Payload) {
			if p.Entries[0].ID != "17841405309211844" || p.Entries[0].Changes[0].MediaID != "18172143295349192" {
				t.Errorf("entry %+v", p.Entries[0])
			}
			if _, ok := p.Entries[0].Raw["unknown"]; !ok {
				t.Error("unknown entry member dropped")
			}
		}},
		{"two accounts batched", []string{"1/comments/10", "2/live_comments/20"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := mapper.ParsePayload([]byte(examplePayloads[tt.name]))
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range p.Entries {
				for _, it := range e.Items() {
					keys = append(keys, it.Key)
				}
			}
			if tt.wantKeys != nil && strings.Join(keys, " ") != strings.Join(tt.wantKeys, " ") {
				t.Errorf("keys %q, want %q", keys, tt.wantKeys)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestParsePayloadErrors(t *testing.T) {
	for _, body := range []string{``, `null`, `[]`, `{`, `{"object":1,"entry":[]}`, `{"object":"instagram","entry":[{"messaging":[1]}]}`} {
		_, err := mapper.ParsePayload([]byte(body))
		if !errors.Is(err, mapper.ErrMalformedPayload) {
			t.Errorf("%q: error %v, want ErrMalformedPayload", body, err)
		}
	}
}

func TestEscapeJSONMatchesMeta(t *testing.T) {
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
