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
	// an account already served by another worker app).
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
