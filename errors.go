package mapper

import (
	"errors"
	"fmt"
	"time"
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
)

// Errors an OwnerResolver returns.
var (
	// ErrMediaNotFound: the media does not exist or is not visible to the
	// resolver's credentials. It is permanent for this media; the Mapper
	// caches it for the negative TTL and routes the item as unroutable.
	ErrMediaNotFound = errors.New("mapper: media not found or not visible")
)

// RouteConflictError is the ErrConflict of a worker app that would serve
// an (account, field) pair another app serves. Stores return it so that
// the admin API can name the pair and the app that holds it.
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

// RetryLaterError is returned by an OwnerResolver (or a Forwarder) when the
// answer may come later: throttling, a 5xx, a network failure. After, when
// positive, is the delay the remote side asked for.
type RetryLaterError struct {
	After time.Duration
	Err   error
}

func (e *RetryLaterError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
	}
	return fmt.Sprintf("retry later: %v", e.Err)
}

func (e *RetryLaterError) Unwrap() error { return e.Err }

// ValidationError reports bad input to an admin or library call, naming the
// field at fault.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("mapper: invalid %s: %s", e.Field, e.Reason)
}
