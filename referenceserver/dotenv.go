package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseDotenv reads KEY=VALUE lines: blank lines and # comments are
// skipped, an optional "export " prefix is allowed, and a value may be
// quoted ("..." with Go escapes, or '...' taken literally). An unquoted
// value ends at " #".
func parseDotenv(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
			return nil, fmt.Errorf(".env line %d: want KEY=VALUE", n)
		}
		val = strings.TrimSpace(val)
		switch {
		case strings.HasPrefix(val, `"`):
			uq, err := strconv.Unquote(val)
			if err != nil {
				return nil, fmt.Errorf(".env line %d: bad double-quoted value for %s", n, key)
			}
			val = uq
		case strings.HasPrefix(val, "'"):
			if len(val) < 2 || !strings.HasSuffix(val, "'") {
				return nil, fmt.Errorf(".env line %d: unterminated single-quoted value for %s", n, key)
			}
			val = val[1 : len(val)-1]
		default:
			if i := strings.Index(val, " #"); i >= 0 {
				val = strings.TrimSpace(val[:i])
			}
		}
		out[key] = val
	}
	return out, sc.Err()
}
