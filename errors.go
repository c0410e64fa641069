package mapper

import (
	"errors"
	"fmt"
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
