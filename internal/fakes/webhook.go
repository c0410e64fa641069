package fakes

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Webhook builds an Instagram webhook body the way Meta sends it: compact
// JSON, non-ASCII escaped as lowercase \u sequences (emoji as surrogate
// pairs) and "/" as "\/". Items for one account go into one entry; entries
// keep the order of their first item.
type Webhook struct {
	object  string
	time    time.Time
	entries []*entry
}

type entry struct {
	id        string
	changes   [][]byte
	messaging [][]byte
	standby   [][]byte
}

// NewWebhook returns an empty builder for object "instagram", sent now.
func NewWebhook() *Webhook { return &Webhook{object: "instagram", time: time.Now()} }

// Object sets the payload's object field.
func (w *Webhook) Object(o string) *Webhook { w.object = o; return w }

// Time sets the entries' time (written in seconds).
func (w *Webhook) Time(t time.Time) *Webhook { w.time = t; return w }

func (w *Webhook) entry(account string) *entry {
	for _, e := range w.entries {
		if e.id == account {
			return e
		}
	}
	e := &entry{id: account}
	w.entries = append(w.entries, e)
	return e
}

// Comment adds a "comments" change on mediaID, owned by account.
func (w *Webhook) Comment(account, mediaID, commentID, text string) *Webhook {
	return w.comment("comments", account, mediaID, commentID, text)
}

// LiveComment adds a "live_comments" change.
func (w *Webhook) LiveComment(account, mediaID, commentID, text string) *Webhook {
	return w.comment("live_comments", account, mediaID, commentID, text)
}

func (w *Webhook) comment(field, account, mediaID, commentID, text string) *Webhook {
	var b bytes.Buffer
	b.WriteString(`{"field":`)
	writeString(&b, field)
	b.WriteString(`,"value":{"id":`)
	writeString(&b, commentID)
	b.WriteString(`,"text":`)
	writeString(&b, text)
	b.WriteString(`,"from":{"id":"6453120148059171","username":"some_customer"},"media":{"id":`)
	writeString(&b, mediaID)
	b.WriteString(`,"media_product_type":"FEED"}}}`)
	e := w.entry(account)
	e.changes = append(e.changes, b.Bytes())
	return w
}

// Mention adds a "mentions" change: account was mentioned in a comment
// (commentID non-empty) or a caption on someone else's mediaID.
func (w *Webhook) Mention(account, mediaID, commentID string) *Webhook {
	var b bytes.Buffer
	b.WriteString(`{"field":"mentions","value":{"media_id":`)
	writeString(&b, mediaID)
	if commentID != "" {
		b.WriteString(`,"comment_id":`)
		writeString(&b, commentID)
	}
	b.WriteString(`}}`)
	e := w.entry(account)
	e.changes = append(e.changes, b.Bytes())
	return w
}

// Message adds a messaging item: senderID wrote text to account.
func (w *Webhook) Message(account, senderID, mid, text string) *Webhook {
	e := w.entry(account)
	e.messaging = append(e.messaging, w.messagingItem(account, senderID, "message", mid, text))
	return w
}

// Reaction adds a messaging item: senderID reacted with a heart to the
// message mid.
func (w *Webhook) Reaction(account, senderID, mid string) *Webhook {
	e := w.entry(account)
	e.messaging = append(e.messaging, w.messagingItem(account, senderID, "reaction", mid, ""))
	return w
}

// Standby adds a message on the standby channel: senderID wrote text to
// account in a conversation another app owns (Meta's handover protocol).
func (w *Webhook) Standby(account, senderID, mid, text string) *Webhook {
	e := w.entry(account)
	e.standby = append(e.standby, w.messagingItem(account, senderID, "message", mid, text))
	return w
}

func (w *Webhook) messagingItem(account, senderID, event, mid, text string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"sender":{"id":`)
	writeString(&b, senderID)
	b.WriteString(`},"recipient":{"id":`)
	writeString(&b, account)
	b.WriteString(`},"timestamp":`)
	b.WriteString(strconv.FormatInt(w.time.UnixMilli(), 10))
	b.WriteString(`,"` + event + `":{"mid":`)
	writeString(&b, mid)
	if event == "reaction" {
		b.WriteString(`,"action":"react","reaction":"love","emoji":"\u2764"`)
	} else {
		b.WriteString(`,"text":`)
		writeString(&b, text)
	}
	b.WriteString(`}}`)
	return b.Bytes()
}

// Bytes returns the body.
func (w *Webhook) Bytes() []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":`)
	writeString(&b, w.object)
	b.WriteString(`,"entry":[`)
	for i, e := range w.entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":`)
		writeString(&b, e.id)
		b.WriteString(`,"time":`)
		if len(e.messaging)+len(e.standby) > 0 {
			b.WriteString(strconv.FormatInt(w.time.UnixMilli(), 10))
		} else {
			b.WriteString(strconv.FormatInt(w.time.Unix(), 10))
		}
		for _, part := range []struct {
			name  string
			items [][]byte
		}{{"changes", e.changes}, {"messaging", e.messaging}, {"standby", e.standby}} {
			if len(part.items) == 0 {
				continue
			}
			b.WriteString(`,"` + part.name + `":[`)
			b.Write(bytes.Join(part.items, []byte(",")))
			b.WriteByte(']')
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// Request returns a POST of the body to url, signed with secret as Meta
// signs it (an empty secret sends no signature).
func (w *Webhook) Request(url, secret string) *http.Request {
	return SignedRequest(url, secret, w.Bytes())
}

// SignedRequest returns a POST of body to url with X-Hub-Signature-256
// computed with secret; an empty secret sends no signature.
func SignedRequest(url, secret string, body []byte) *http.Request {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic("mappertest: " + err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	if secret != "" {
		req.Header.Set("X-Hub-Signature-256", Sign(secret, body))
	}
	return req
}

// Sign returns Meta's X-Hub-Signature-256 value of body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// EscapeJSON returns s as a JSON string literal escaped as Meta escapes:
// every non-ASCII character as \uXXXX in lowercase hex (surrogate pairs
// beyond the BMP), "/" as "\/", controls as \u00XX.
func EscapeJSON(s string) string {
	var b bytes.Buffer
	writeString(&b, s)
	return b.String()
}

func writeString(b *bytes.Buffer, s string) {
	const hexdigits = "0123456789abcdef"
	u := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hexdigits[r>>12&15])
		b.WriteByte(hexdigits[r>>8&15])
		b.WriteByte(hexdigits[r>>4&15])
		b.WriteByte(hexdigits[r&15])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '/':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			u(r)
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			u(0xD800 + (r >> 10))
			u(0xDC00 + (r & 0x3FF))
		default:
			u(r)
		}
	}
	b.WriteByte('"')
}

// drain reads and closes a body; the fakes use it.
func drain(r io.ReadCloser) []byte {
	b, _ := io.ReadAll(r)
	r.Close()
	return b
}
