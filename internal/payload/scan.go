package payload

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A webhook is checked once to be valid JSON (json.Valid); after that, its
// objects and arrays are split by the scanner below into sub-slices of the
// body, without copying and without the decoder's per-call state. A batch
// of 50,000 entries cost 27 times its size to parse with json.Unmarshal at
// every level; the body is kept anyway (it is stored and forwarded), so
// items that point into it cost nothing more.

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i], which
// must be valid JSON.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // a number, true, false or null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// objectMembers splits a valid JSON object into its members, each a
// sub-slice of raw; a repeated name keeps its last value, as
// json.Unmarshal does. ok is false when raw is not an object.
func objectMembers(raw []byte) (members map[string]json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	members = map[string]json.RawMessage{}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		end := skipString(raw, i)
		name := unquote(raw[i:end])
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // past ':'
		vend := skipValue(raw, i)
		members[name] = json.RawMessage(raw[i:vend:vend])
		i = skipSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return members, true
}

// arrayElements splits a valid JSON array into its elements, each a
// sub-slice of raw. ok is false when raw is not an array.
func arrayElements(raw []byte) (elems []json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		end := skipValue(raw, i)
		elems = append(elems, json.RawMessage(raw[i:end:end]))
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, true
}

// unquote reads a JSON string literal; one without escapes is its bytes.
func unquote(q []byte) string {
	if len(q) < 2 {
		return ""
	}
	inner := q[1 : len(q)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		// Escapes to resolve, or bytes that are not UTF-8, which the
		// decoder replaces as it would for any string.
		var s string
		_ = json.Unmarshal(q, &s)
		return s
	}
	return string(inner)
}

// pick finds the members names of a valid JSON object in one pass, without
// a map: out[i] is the value of names[i] (the last, when repeated), nil
// when absent or when raw is not an object.
func pick(raw []byte, names []string, out []json.RawMessage) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		end := skipString(raw, i)
		key := raw[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			key = []byte(unquote(raw[i:end]))
		}
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // past ':'
		vend := skipValue(raw, i)
		for k, name := range names {
			if string(key) == name {
				out[k] = json.RawMessage(raw[i:vend:vend])
			}
		}
		i = skipSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
}
