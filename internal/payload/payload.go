// Package payload reads Meta's webhook bodies for the Mapper: which account
// each item belongs to, which subscription field it comes under, and the key
// that recognises it when Meta sends it again. It keeps every item's bytes
// as Meta sent them, so that a body can be split per worker app without
// re-encoding (and losing Meta's escaping).
//
// Parsing is lenient on purpose. Once a body is a JSON object with an
// "object" string and an "entry" array, nothing inside it fails the
// webhook: Meta changes payloads without notice, and a 400 makes Meta
// retry for a day and a half and then disable the subscription. A member
// of an unexpected type is read as well as it can be (IDs as strings or
// numbers), and what the parser does not know is passed through as an
// item of its own rather than dropped.
package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ErrMalformed is wrapped by [Parse] errors: the body is not the JSON shape
// of a Meta webhook.
var ErrMalformed = errors.New("malformed payload")

// Payload is a parsed webhook body.
type Payload struct {
	Object  string
	Entries []Entry
}

// Entry is one element of the payload's "entry" array.
type Entry struct {
	// ID is the Instagram professional account the entry is for: the
	// subscribed app user. "" when the entry names none.
	ID string
	// Time is when Meta sent the notification (seconds or milliseconds
	// on the wire). Zero when absent or unreadable.
	Time time.Time
	// Items are the entry's items in a fixed order: changes, messaging,
	// standby, then any other array member by name. An entry that has
	// none of these is one whole-entry item, so that every entry is
	// delivered somewhere.
	Items []Item
	// members holds every member of the entry object; nil when the entry
	// is not an object.
	members map[string]json.RawMessage
	// raw is the entry's JSON exactly as received.
	raw json.RawMessage
}

// Kind says where in the entry an item was found.
type Kind string

const (
	// KindChange is an element of entry[].changes[] (or the flat form,
	// where the entry itself holds field and value).
	KindChange Kind = "change"
	// KindMessaging is an element of entry[].messaging[].
	KindMessaging Kind = "messaging"
	// KindStandby is an element of entry[].standby[]: a messaging event
	// for a conversation another app owns (Meta's handover protocol).
	KindStandby Kind = "standby"
	// KindEntry is a member, or a whole entry, the parser does not know,
	// passed through as it is.
	KindEntry Kind = "entry"
)

// Known arrays, in the order their items are listed.
const (
	memberChanges   = "changes"
	memberMessaging = "messaging"
	memberStandby   = "standby"
)

// Item is one change, messaging event, standby event or passed-through
// member.
type Item struct {
	Kind Kind
	// Field is the webhook subscription field the item comes under, as
	// Meta names it in the app dashboard: "comments", "mentions",
	// "messages", "message_reactions", "standby", ... For a change, its
	// "field" as sent; for a messaging event, the field of its kind; for
	// a passed-through member, the member's name. "" when unknown.
	Field string
	// Event is a messaging or standby event's kind ("message",
	// "reaction", "read", "postback", ...); "" for other items.
	Event string
	// ObjectID is the comment ID or message ID when the item has one.
	ObjectID string
	// MediaID is the media the item is about, when the payload names it.
	MediaID string
	// Key identifies the item across Meta's retries: the account, the
	// item's kind and its natural ID where it has one, else a hash of
	// its bytes.
	Key string
	// Member is the entry member the item was found in ("changes",
	// "messaging", "standby" or an unknown member's name); "" for an item
	// that is the whole entry (the flat form, or an entry without arrays).
	Member string
	// Whole marks an item that is a whole member (an unknown one, whatever
	// its type) rather than one element of an array.
	Whole bool
	// Raw is the item's JSON exactly as received.
	Raw json.RawMessage
}

// Parse reads a webhook body. Only a body that is not a JSON object, or
// lacks an "object" string or an "entry" array, is an error (wrapping
// [ErrMalformed] and saying what is wrong); anything inside the entries is
// read leniently.
func Parse(body []byte) (*Payload, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, malformed("the body is not a JSON object")
	}
	if !json.Valid(body) {
		// Decoded only to say where the JSON breaks.
		err := json.Unmarshal(body, &struct{}{})
		return nil, malformed("invalid JSON: %v", err)
	}
	top, _ := objectMembers(body)
	if len(top["object"]) == 0 {
		return nil, malformed(`"object" is missing`)
	}
	if top["object"][0] != '"' {
		return nil, malformed(`"object" is not a string`)
	}
	object := unquote(top["object"])
	if len(top["entry"]) == 0 {
		return nil, malformed(`"entry" is missing`)
	}
	entries, ok := arrayElements(top["entry"])
	if !ok {
		return nil, malformed(`"entry" is not an array`)
	}
	p := &Payload{Object: object, Entries: make([]Entry, len(entries))}
	for i, raw := range entries {
		p.Entries[i] = parseEntry(raw, i)
	}
	if err := p.checkIDs(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkIDs refuses IDs with control characters. Meta's IDs are digit
// strings; one holding a NUL or a newline is not Meta's, and it would end
// up in deduplication keys, routes and log lines.
func (p *Payload) checkIDs() error {
	for i, e := range p.Entries {
		if HasControl(e.ID) {
			return malformed("entry[%d].id %q holds a control character", i, e.ID)
		}
		for j, it := range e.Items {
			for _, f := range []struct{ name, v string }{{"id", it.ObjectID}, {"media id", it.MediaID}, {"field", it.Field}, {"key", it.Key}} {
				if HasControl(f.v) {
					return malformed("entry[%d], item %d: the %s %q holds a control character", i, j, f.name, f.v)
				}
			}
		}
	}
	return nil
}

// HasControl reports whether s holds a control character (C0, DEL or C1):
// no ID, filter or name the Mapper takes has one.
func HasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

func parseEntry(raw json.RawMessage, i int) Entry {
	e := Entry{raw: raw}
	var isObj bool
	if e.members, isObj = objectMembers(raw); !isObj {
		// Not an object: no account to route it to, but kept and
		// delivered nowhere only with a reason.
		e.members = nil
		e.Items = []Item{{Kind: KindEntry, Key: fmt.Sprintf("/entry/%d/%s", i, hashOf(raw)), Raw: raw}}
		return e
	}
	e.ID = flexString(e.members["id"])
	if t, ok := e.members["time"]; ok {
		e.Time = unixTime(t)
	}
	if _, hasChanges := e.members[memberChanges]; !hasChanges {
		if _, ok := e.members["field"]; ok {
			// The flat form of one documentation example: the entry
			// itself is the change.
			it := parseChange(raw, e.ID)
			e.Items = []Item{it}
			return e
		}
	}
	for _, name := range []string{memberChanges, memberMessaging, memberStandby} {
		if v, ok := e.members[name]; ok {
			e.Items = append(e.Items, parseArray(e.ID, name, v)...)
		}
	}
	e.Items = append(e.Items, unknownArrays(e.ID, e.members)...)
	if len(e.Items) == 0 {
		e.Items = []Item{{Kind: KindEntry, Key: e.ID + "/entry/" + hashOf(raw), Raw: raw}}
	}
	return e
}

// parseArray reads the items of a known array member.
func parseArray(account, name string, v json.RawMessage) []Item {
	elems, ok := arrayElements(v)
	if !ok {
		// A known member of another type: kept, under no field.
		it := passThrough(account, name, v)
		it.Field = ""
		return []Item{it}
	}
	items := make([]Item, 0, len(elems))
	for _, el := range elems {
		var it Item
		switch name {
		case memberChanges:
			it = parseChange(el, account)
		case memberMessaging:
			it = parseMessaging(el, account, KindMessaging)
		default:
			it = parseMessaging(el, account, KindStandby)
		}
		it.Member = name
		items = append(items, it)
	}
	return items
}

// unknownArrays passes through, whole and by name, every array member the
// parser does not know: something Meta added, which the account's app
// should still get.
func unknownArrays(account string, members map[string]json.RawMessage) []Item {
	var names []string
	for name, v := range members {
		if len(v) > 0 && v[0] == '[' && name != memberChanges && name != memberMessaging && name != memberStandby {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	items := make([]Item, len(names))
	for i, name := range names {
		items[i] = passThrough(account, name, members[name])
	}
	return items
}

func passThrough(account, member string, v json.RawMessage) Item {
	return Item{Kind: KindEntry, Field: member, Member: member, Whole: true, Raw: v,
		Key: account + "/entry/" + member + "/" + hashOf(v)}
}

// The members of a change, and of its value, that parseChange reads.
var (
	changeMembers = []string{"field", "value"}
	valueMembers  = []string{"id", "comment_id", "media", "media_id", "message"}
	idMember      = []string{"id"}
	eventMembers  = []string{"mid", "action", "is_deleted", "is_echo", "num_edit"}
)

// parseChange reads a change: its field, and from its value the members
// routing and deduplication read (id, comment_id, media or media_id, and
// message, which the dashboard's test for "messages" sends). Each is read
// raw, so no type Meta sends can fail it.
func parseChange(raw json.RawMessage, account string) Item {
	item := Item{Kind: KindChange, Raw: raw}
	var c [2]json.RawMessage
	pick(raw, changeMembers, c[:])
	if f := c[0]; len(f) > 0 && f[0] == '"' {
		item.Field = flexString(f)
	}
	var v [5]json.RawMessage // as valueMembers
	pick(c[1], valueMembers, v[:])
	commentID := flexString(v[1])
	item.ObjectID = cmp(flexString(v[0]), commentID)
	item.MediaID = cmp(idOf(v[2]), flexString(v[3]))
	switch item.Field {
	case "comments", "live_comments":
		if item.ObjectID != "" {
			item.Key = account + "/" + item.Field + "/" + item.ObjectID
		}
	case "mentions":
		if item.MediaID != "" {
			item.Key = account + "/mentions/" + item.MediaID + "/" + commentID
		}
	case "messages":
		if mid := midOf(v[4]); mid != "" {
			item.ObjectID = mid
			item.Key = account + "/message/" + mid
		}
	}
	if item.Key == "" {
		item.Key = account + "/change/" + hashOf(raw)
	}
	return item
}

// messagingEvent is what identifies one messaging event.
type messagingEvent struct {
	MID, Action, IsDeleted, IsEcho, NumEdit json.RawMessage
}

func readMessagingEvent(v json.RawMessage) messagingEvent {
	var m [5]json.RawMessage // as eventMembers
	pick(v, eventMembers, m[:])
	return messagingEvent{MID: m[0], Action: m[1], IsDeleted: m[2], IsEcho: m[3], NumEdit: m[4]}
}

// messagingEvents are the members that say a messaging item's kind, in
// the order they are looked for.
var messagingEvents = []string{"message", "reaction", "read", "postback", "message_edit", "referral", "optin",
	"pass_thread_control", "take_thread_control", "request_thread_control"}

// Fields are the webhook subscription fields of Instagram that Meta
// documents, for Facebook Login and Instagram Login together. An item's
// Field is one of them, or a name Meta added since (passed through).
var Fields = []string{
	"comments", "live_comments", "mentions", "story_insights",
	"messages", "message_echoes", "message_reactions", "message_edit",
	"messaging_seen", "messaging_postbacks", "messaging_referral", "messaging_optins",
	"messaging_handovers", "standby",
}

// FieldAliases are other spellings of a field that Meta's pages use; the
// value is the name in [Fields].
var FieldAliases = map[string]string{"messaging_handover": "messaging_handovers"}

// messagingFields maps a messaging event's kind to the subscription field
// Meta delivers it under.
var messagingFields = map[string]string{
	"message":                "messages",
	"reaction":               "message_reactions",
	"read":                   "messaging_seen",
	"postback":               "messaging_postbacks",
	"message_edit":           "message_edit",
	"referral":               "messaging_referral",
	"optin":                  "messaging_optins",
	"pass_thread_control":    "messaging_handovers",
	"take_thread_control":    "messaging_handovers",
	"request_thread_control": "messaging_handovers",
}

func parseMessaging(raw json.RawMessage, account string, kind Kind) Item {
	item := Item{Kind: kind, Raw: raw}
	members, _ := objectMembers(raw)
	var ev messagingEvent
	for _, name := range messagingEvents {
		if v, ok := members[name]; ok {
			item.Event = name
			ev = readMessagingEvent(v)
			break
		}
	}
	item.ObjectID = flexString(ev.MID)
	item.Field = messagingFields[item.Event]
	switch {
	case kind == KindStandby:
		// Meta delivers every standby event under one field, whatever
		// its kind.
		item.Field = "standby"
	case item.Event == "message" && string(ev.IsEcho) == "true":
		// What the account itself sent comes under its own field.
		item.Field = "message_echoes"
	}
	// Standby events keep their own key space: the same message may come
	// to this app as the thread's owner on another day.
	prefix := account + "/"
	if kind == KindStandby {
		prefix += "standby/"
	}
	if id := messagingKey(item.Event, &ev, members); item.ObjectID != "" && id != "" {
		item.Key = prefix + id
	} else {
		item.Key = prefix + string(kind) + "/" + hashOf(raw)
	}
	return item
}

// messagingKey is the natural key of a messaging event with a message ID,
// "" for kinds that have none: a reaction is one per sender, action and
// time; an edit, one per edit number; a deletion differs from the message.
func messagingKey(event string, ev *messagingEvent, members map[string]json.RawMessage) string {
	mid := flexString(ev.MID)
	switch event {
	case "message":
		if string(ev.IsDeleted) == "true" {
			return "message/" + mid + "/deleted"
		}
		return "message/" + mid
	case "reaction":
		return "reaction/" + mid + "/" + flexString(ev.Action) + "/" + idOf(members["sender"]) + "/" + flexString(members["timestamp"])
	case "read", "postback":
		return event + "/" + mid
	case "message_edit":
		return "message_edit/" + mid + "/" + flexString(ev.NumEdit)
	}
	return ""
}

// Envelope builds a payload holding only the selected items (by position
// across all entries), keeping each item's bytes as Meta sent them and
// every other member of the entries that hold them. No unselected item,
// and no entry without a selected item, gets in.
func (p *Payload) Envelope(selected []bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":`)
	obj, _ := json.Marshal(p.Object)
	b.Write(obj)
	b.WriteString(`,"entry":[`)
	k, first := 0, true
	for i := range p.Entries {
		e := &p.Entries[i]
		sel := selected[k : k+len(e.Items)]
		k += len(e.Items)
		n := 0
		for _, s := range sel {
			if s {
				n++
			}
		}
		if n == 0 {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		if n == len(e.Items) {
			b.Write(e.raw)
			continue
		}
		// Only entries of several items get here, and those are objects
		// whose items each sit in a member.
		members := make(map[string]json.RawMessage, len(e.members))
		for name, v := range e.members {
			members[name] = v
		}
		arrays := map[string][]json.RawMessage{}
		for j, it := range e.Items {
			switch {
			case it.Whole && !sel[j]:
				delete(members, it.Member)
			case it.Whole:
			case sel[j]:
				arrays[it.Member] = append(arrays[it.Member], it.Raw)
			default:
				if _, ok := arrays[it.Member]; !ok {
					arrays[it.Member] = nil
				}
			}
		}
		for name, items := range arrays {
			members[name] = rawArray(items)
		}
		writeObject(&b, members)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// Count returns the number of items in the payload.
func (p *Payload) Count() int {
	n := 0
	for i := range p.Entries {
		n += len(p.Entries[i].Items)
	}
	return n
}

func rawArray(items []json.RawMessage) json.RawMessage {
	if len(items) == 0 {
		return json.RawMessage("[]")
	}
	n := 2 + len(items) - 1
	for _, it := range items {
		n += len(it)
	}
	out := make(json.RawMessage, 0, n)
	out = append(out, '[')
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
	}
	return append(out, ']')
}

// writeObject writes members in sorted order, values as they are, so that
// the items keep Meta's escaping.
func writeObject(b *bytes.Buffer, members map[string]json.RawMessage) {
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	slices.Sort(names)
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(n)
		b.Write(key)
		b.WriteByte(':')
		b.Write(members[n])
	}
	b.WriteByte('}')
}

// flexString reads a JSON string or number as a string; anything else
// (null, an object, a bool) reads as "". IDs are documented as strings,
// but dashboards and old samples send numbers.
func flexString(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		return unquote(v)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		// A valid number's literal, as json.Number keeps it.
		return string(v)
	}
	return ""
}

// idOf reads {"id": …} tolerantly, or a bare ID.
func idOf(v json.RawMessage) string {
	if isObject(v) {
		var id [1]json.RawMessage
		pick(v, idMember, id[:])
		return flexString(id[0])
	}
	return flexString(v)
}

func midOf(v json.RawMessage) string {
	return flexString(readMessagingEvent(v).MID)
}

func isObject(v json.RawMessage) bool { return len(v) > 0 && v[0] == '{' }

// unixTime reads a Unix time in seconds or milliseconds, as a number or a
// numeric string: Meta uses all of them, and no real seconds value reaches
// 1e12 (year 33658). Zero when unreadable.
func unixTime(v json.RawMessage) time.Time {
	s := flexString(v)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i >= 1e12 || i <= -1e12 {
			return time.UnixMilli(i).UTC()
		}
		return time.Unix(i, 0).UTC()
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f < 1e15 && f > -1e15 {
		if f >= 1e12 || f <= -1e12 {
			return time.UnixMilli(int64(f)).UTC()
		}
		return time.Unix(int64(f), 0).UTC()
	}
	return time.Time{}
}

// hashOf names content that has no natural ID: the same bytes, sent again
// alone or in another batch, get the same key.
func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
