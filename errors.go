package mapper

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a Store returns; callers branch on them with errors.Is.
var (
	// ErrNotFound: no record has the given ID.
	ErrNotFound = errors.New("mapper: not found")
	// ErrConflict: the write clashes with a stored record (a duplicate ID, or
	// an account and field already served by another worker app, reported
	// as a *RouteConflictError).
	ErrConflict = errors.New("mapper: conflict")
	// ErrLeaseLost: the caller's lease on a piece of work expired and
	// another claimer may hold it; the caller must drop the work.
	ErrLeaseLost = errors.New("mapper: lease lost")
	// ErrInvalidInput: the call cannot be served as asked, such as a
	// cursor the store did not issue. The admin API answers 400 with the
	// error's text.
	ErrInvalidInput = errors.New("mapper: invalid input")
)

// Errors an OwnerResolver returns.
var (
	// ErrMediaNotFound: the media does not exist or is not visible to the
	// resolver's credentials. It is permanent for this media; the Mapper
	// caches it for the negative TTL, and routes the item by its entry's
	// account.
	ErrMediaNotFound = errors.New("mapper: media not found or not visible")
)

// RouteConflictError is the ErrConflict of a route that would serve an
// (account, field) pair another app serves. Stores return it (one per
// clash, joined) so that the admin API can name the pair and the app that
// holds it.
type RouteConflictError struct {
	AccountID string
	// Field is the field both would serve; "" when both take every field.
	Field string
	// AppID is the app that serves the pair now.
	AppID string
}

func (e *RouteConflictError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("account %s is already served by worker app %s", e.AccountID, e.AppID)
	}
	return fmt.Sprintf("field %s of account %s is already served by worker app %s", e.Field, e.AccountID, e.AppID)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *RouteConflictError) Is(target error) bool { return target == ErrConflict }

// fieldError reports bad input to the admin API, naming the field at
// fault; it wraps ErrInvalidInput.
type fieldError struct {
	field  string
	reason string
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.field, e.reason)
}

func (e *fieldError) Unwrap() error { return ErrInvalidInput }

// gather collects every error of type E in err's tree, in order.
func gather[E error](err error) []E {
	var out []E
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case E:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// fieldIssues gathers the fieldErrors in err's tree.
func fieldIssues(err error) []fieldIssue {
	var out []fieldIssue
	for _, e := range gather[*fieldError](err) {
		out = append(out, fieldIssue{e.field, e.reason})
	}
	return out
}

// routeConflicts gathers the RouteConflictErrors in err's tree.
func routeConflicts(err error) []routeConflict {
	var out []routeConflict
	for _, e := range gather[*RouteConflictError](err) {
		out = append(out, routeConflict{AccountID: e.AccountID, Field: e.Field, AppID: e.AppID})
	}
	return out
}

// conflictDetail says what clashed in a sentence: the first few clashes,
// and how many more the conflicts member lists.
func conflictDetail(cs []routeConflict) string {
	const shown = 3
	parts := make([]string, 0, shown)
	for _, c := range cs[:min(len(cs), shown)] {
		parts = append(parts, (&RouteConflictError{AccountID: c.AccountID, Field: c.Field, AppID: c.AppID}).Error())
	}
	s := strings.Join(parts, "; ")
	if len(cs) > shown {
		s += fmt.Sprintf("; and %d more (see conflicts)", len(cs)-shown)
	}
	return s + "; nothing was changed"
}
