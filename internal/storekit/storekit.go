// Package storekit holds what the module's own stores share beyond the
// rules mapper exports for every Store: how an app's AccountIDs become
// routes, and the cursor of a route listing.
package storekit

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/chatico/mapper"
)

// AccountRoutes makes the routes of an app's AccountIDs, keeping the
// fields of those it has already (old, by account). An account listed
// twice is a conflict.
func AccountRoutes(accounts []string, old map[string]mapper.Route) ([]mapper.Route, error) {
	out := make([]mapper.Route, 0, len(accounts))
	seen := make(map[string]bool, len(accounts))
	for _, a := range accounts {
		if seen[a] {
			return nil, fmt.Errorf("account %s is listed twice: %w", a, mapper.ErrConflict)
		}
		seen[a] = true
		out = append(out, mapper.Route{AccountID: a, Fields: old[a].Fields})
	}
	return out, nil
}

// EncodeRouteCursor is the cursor after the route of app to account.
func EncodeRouteCursor(app, account string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(app + "\x00" + account))
}

// DecodeRouteCursor reads a cursor of EncodeRouteCursor; any other is
// ErrInvalidInput.
func DecodeRouteCursor(c string) (app, account string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	app, account, ok := strings.Cut(string(b), "\x00")
	if err != nil || !ok || app == "" || account == "" {
		return "", "", fmt.Errorf("cursor %q was not issued by this store: %w", c, mapper.ErrInvalidInput)
	}
	return app, account, nil
}
