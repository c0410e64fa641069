package mapper

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrMalformedPayload is wrapped by [ParsePayload] errors: the body is not
// the JSON shape of a Meta webhook.
var ErrMalformedPayload = errors.New("mapper: malformed payload")

// Payload is a parsed webhook body. Parsing keeps each item's raw bytes, so
// that a payload can be split per account without re-encoding what Meta
// sent (and its escaping).
type Payload struct {
	Object  string
	Entries []Entry
}

// Entry is one element of the payload's "entry" array.
type Entry struct {
	// ID is the Instagram professional account the entry is for.
	ID string
	// Time is when Meta sent the notification; Meta sends seconds or
	// milliseconds, and both are read. Zero when absent.
	Time time.Time
	// Changes and Messaging are the entry's items. An entry in the flat
	// form of one documentation example (field and value directly in the
	// entry, no changes wrapper) yields one change with Flat set.
	Changes   []Item
	Messaging []Item
	// Raw holds every member of the entry object, unknown ones included.
	Raw map[string]json.RawMessage
	// raw is the entry's JSON exactly as received.
	raw json.RawMessage
}

// ItemKind tells a field change from a messaging event.
type ItemKind uint8

const (
	// KindChange is an element of entry[].changes[].
	KindChange ItemKind = iota + 1
	// KindMessaging is an element of entry[].messaging[].
	KindMessaging
)

// Item is one change or messaging event.
type Item struct {
	Kind ItemKind
	// Field is the change's field ("comments", "mentions", ...) or, for
	// messaging, the event's kind ("message", "reaction", "read",
	// "postback", "referral", "message_edit", ...; "" when unknown).
	Field string
	// ObjectID is the comment ID or message ID when the item has one.
	ObjectID string
	// MediaID is the media the item is about, when the payload names it.
	MediaID string
	// Key identifies the item across Meta's retries.
	Key string
	// Flat marks a change read from an entry without a changes wrapper.
	Flat bool
	// Raw is the item's JSON exactly as received.
	Raw json.RawMessage
}

// Items returns the entry's changes followed by its messaging events.
func (e *Entry) Items() []Item {
	if len(e.Messaging) == 0 {
		return e.Changes
	}
	if len(e.Changes) == 0 {
		return e.Messaging
	}
	out := make([]Item, 0, len(e.Changes)+len(e.Messaging))
	return append(append(out, e.Changes...), e.Messaging...)
}

// flexString accepts a JSON string or number, since IDs are documented as
// strings but dashboards and old samples send numbers.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or a number, got %s", truncate(b, 20))
	}
	*f = flexString(n.String())
	return nil
}

type idObject struct {
	ID flexString `json:"id"`
}

type changeValue struct {
	ID        flexString `json:"id"`
	CommentID flexString `json:"comment_id"`
	MediaID   flexString `json:"media_id"`
	Media     *idObject  `json:"media"`
	// The dashboard's test for "messages" sends a changes-style body with
	// a message inside; read its mid if any.
	Message *struct {
		MID flexString `json:"mid"`
	} `json:"message"`
}

type messagingItem struct {
	Sender    *idObject       `json:"sender"`
	Timestamp json.Number     `json:"timestamp"`
	Message   *messagingEvent `json:"message"`
	Reaction  *messagingEvent `json:"reaction"`
	Read      *messagingEvent `json:"read"`
	Postback  *messagingEvent `json:"postback"`
	Edit      *messagingEvent `json:"message_edit"`
	Referral  json.RawMessage `json:"referral"`
	Optin     json.RawMessage `json:"optin"`
	Handover  json.RawMessage `json:"pass_thread_control"`
}

type messagingEvent struct {
	MID       flexString  `json:"mid"`
	Action    string      `json:"action"`
	IsDeleted bool        `json:"is_deleted"`
	NumEdit   json.Number `json:"num_edit"`
}

// ParsePayload parses a webhook body. It reads every entry and every item,
// accepts IDs as strings or numbers and times in seconds or milliseconds,
// and ignores unknown fields. Errors wrap [ErrMalformedPayload] and say
// where the body is wrong.
func ParsePayload(body []byte) (*Payload, error) {
	var top struct {
		Object *string            `json:"object"`
		Entry  *[]json.RawMessage `json:"entry"`
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, malformed("the body is not a JSON object")
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, malformed("invalid JSON: %v", err)
	}
	if top.Object == nil {
		return nil, malformed(`"object" is missing`)
	}
	if top.Entry == nil {
		return nil, malformed(`"entry" is missing`)
	}
	p := &Payload{Object: *top.Object, Entries: make([]Entry, 0, len(*top.Entry))}
	var bodyHash string // computed once, only if an item lacks a natural key
	hash := func() string {
		if bodyHash == "" {
			sum := sha256.Sum256(body)
			bodyHash = hex.EncodeToString(sum[:16])
		}
		return bodyHash
	}
	for i, rawEntry := range *top.Entry {
		e, err := parseEntry(rawEntry, i, hash)
		if err != nil {
			return nil, err
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

func parseEntry(raw json.RawMessage, i int, hash func() string) (Entry, error) {
	e := Entry{raw: raw}
	if err := json.Unmarshal(raw, &e.Raw); err != nil || e.Raw == nil {
		return e, malformed("entry[%d] is not an object", i)
	}
	if id, ok := e.Raw["id"]; ok {
		var s flexString
		if err := json.Unmarshal(id, &s); err != nil {
			return e, malformed("entry[%d].id: %v", i, err)
		}
		e.ID = string(s)
	}
	if t, ok := e.Raw["time"]; ok && !bytes.Equal(t, []byte("null")) {
		var n json.Number
		if err := json.Unmarshal(t, &n); err != nil {
			return e, malformed("entry[%d].time is not a number", i)
		}
		e.Time = unixTime(n)
	}
	if rc, ok := e.Raw["changes"]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(rc, &items); err != nil {
			return e, malformed("entry[%d].changes is not an array", i)
		}
		e.Changes = make([]Item, 0, len(items))
		for j, it := range items {
			item, err := parseChange(it, e.ID, fmt.Sprintf("entry[%d].changes[%d]", i, j), hash)
			if err != nil {
				return e, err
			}
			e.Changes = append(e.Changes, item)
		}
	} else if _, ok := e.Raw["field"]; ok {
		// The flat form of one documentation example: the entry itself is
		// the change.
		item, err := parseChange(raw, e.ID, fmt.Sprintf("entry[%d]", i), hash)
		if err != nil {
			return e, err
		}
		item.Flat = true
		e.Changes = []Item{item}
	}
	if rm, ok := e.Raw["messaging"]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(rm, &items); err != nil {
			return e, malformed("entry[%d].messaging is not an array", i)
		}
		e.Messaging = make([]Item, 0, len(items))
		for j, it := range items {
			item, err := parseMessaging(it, e.ID, fmt.Sprintf("entry[%d].messaging[%d]", i, j), hash)
			if err != nil {
				return e, err
			}
			e.Messaging = append(e.Messaging, item)
		}
	}
	return e, nil
}

func parseChange(raw json.RawMessage, account, where string, hash func() string) (Item, error) {
	var c struct {
		Field *string         `json:"field"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return Item{}, malformed("%s: %v", where, err)
	}
	if c.Field == nil {
		return Item{}, malformed("%s has no field", where)
	}
	item := Item{Kind: KindChange, Field: *c.Field, Raw: raw}
	var v changeValue
	if len(c.Value) > 0 && c.Value[0] == '{' {
		if err := json.Unmarshal(c.Value, &v); err != nil {
			return Item{}, malformed("%s.value: %v", where, err)
		}
	}
	item.ObjectID = string(cmpOr(v.ID, v.CommentID))
	switch {
	case v.Media != nil && v.Media.ID != "":
		item.MediaID = string(v.Media.ID)
	case v.MediaID != "":
		item.MediaID = string(v.MediaID)
	}
	switch item.Field {
	case "comments", "live_comments":
		if item.ObjectID != "" {
			item.Key = account + "/" + item.Field + "/" + item.ObjectID
		}
	case "mentions":
		if item.MediaID != "" {
			item.Key = account + "/mentions/" + item.MediaID + "/" + string(v.CommentID)
		}
	case "messages":
		if v.Message != nil && v.Message.MID != "" {
			item.ObjectID = string(v.Message.MID)
			item.Key = account + "/message/" + item.ObjectID
		}
	}
	if item.Key == "" {
		item.Key = account + "/payload/" + hash() + "/" + where
	}
	return item, nil
}

func parseMessaging(raw json.RawMessage, account, where string, hash func() string) (Item, error) {
	var m messagingItem
	if err := json.Unmarshal(raw, &m); err != nil {
		return Item{}, malformed("%s: %v", where, err)
	}
	item := Item{Kind: KindMessaging, Raw: raw}
	switch {
	case m.Message != nil:
		item.Field, item.ObjectID = "message", string(m.Message.MID)
		if item.ObjectID != "" {
			item.Key = account + "/message/" + item.ObjectID
			if m.Message.IsDeleted {
				item.Key += "/deleted"
			}
		}
	case m.Reaction != nil:
		item.Field, item.ObjectID = "reaction", string(m.Reaction.MID)
		if item.ObjectID != "" {
			sender := ""
			if m.Sender != nil {
				sender = string(m.Sender.ID)
			}
			item.Key = account + "/reaction/" + item.ObjectID + "/" + m.Reaction.Action + "/" + sender + "/" + m.Timestamp.String()
		}
	case m.Read != nil:
		item.Field, item.ObjectID = "read", string(m.Read.MID)
		if item.ObjectID != "" {
			item.Key = account + "/read/" + item.ObjectID
		}
	case m.Postback != nil:
		item.Field, item.ObjectID = "postback", string(m.Postback.MID)
		if item.ObjectID != "" {
			item.Key = account + "/postback/" + item.ObjectID
		}
	case m.Edit != nil:
		item.Field, item.ObjectID = "message_edit", string(m.Edit.MID)
		if item.ObjectID != "" {
			item.Key = account + "/message_edit/" + item.ObjectID + "/" + m.Edit.NumEdit.String()
		}
	case m.Referral != nil:
		item.Field = "referral"
	case m.Optin != nil:
		item.Field = "optin"
	case m.Handover != nil:
		item.Field = "handover"
	}
	if item.Key == "" {
		item.Key = account + "/payload/" + hash() + "/" + where
	}
	return item, nil
}

// unixTime reads a Unix time in seconds or milliseconds: Meta uses both,
// and no real seconds value reaches 1e12 (year 33658).
func unixTime(n json.Number) time.Time {
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		if i >= 1e12 || i <= -1e12 {
			return time.UnixMilli(i).UTC()
		}
		return time.Unix(i, 0).UTC()
	}
	if f, err := strconv.ParseFloat(n.String(), 64); err == nil && f < 1e15 && f > -1e15 {
		if f >= 1e12 || f <= -1e12 {
			return time.UnixMilli(int64(f)).UTC()
		}
		return time.Unix(int64(f), 0).UTC()
	}
	return time.Time{}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedPayload, fmt.Sprintf(format, args...))
}

func cmpOr(a, b flexString) flexString {
	if a != "" {
		return a
	}
	return b
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
