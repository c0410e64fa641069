package mapper

import (
	"context"
	"time"
)

// Store keeps worker apps and their routes, the event log and the delivery
// outbox. It is the one required collaborator of [New]; docs/stores.md says
// how to write one. Embedding services also call it directly to manage
// worker apps and routes from their own code (a Mapper sees such changes
// within its cache TTL, [WithWorkerAppCacheTTL]).
//
// A Store only persists: the rules (which event a key duplicates, when an
// event is settled, which fields a route serves, what a replay changes) are
// the Mapper's, handed to the store as values or as methods it calls
// ([Event.MarkDuplicates], [Event.Settle], [WorkerApp.Clash]).
//
// Every implementation must pass testing/storetest. Methods return
// [ErrNotFound], [ErrConflict], [ErrLeaseLost] and [ErrInvalidInput]
// (wrapped or not) where their docs say so; any other error is treated as
// the store being unavailable.
//
// A Store may also have these methods, which the Mapper uses when present
// (a decorator must forward them):
//
//	// Ping reports whether the store can take writes, for the health
//	// check (which otherwise lists the apps).
//	Ping(ctx context.Context) error
//	// Stats reads the live part of the store for the metrics (see
//	// [Stats]), in time that does not grow with the history kept;
//	// percentiles cover events completed since the given time.
//	Stats(ctx context.Context, since time.Time) (Stats, error)
//	// ListenForWork calls wake whenever another replica stored work that
//	// may be due (PostgreSQL's LISTEN/NOTIFY), until ctx ends; it returns
//	// when ctx ends or listening cannot go on, and the Mapper then polls
//	// and tries again later.
//	ListenForWork(ctx context.Context, wake func()) error
//	// ExtendLeases moves the end of the leases with these tokens to
//	// until, for work still pending under them (skipping tokens no longer
//	// held). With it the Mapper claims work for short leases (10 s) and
//	// extends those of its work in flight, so that a process that dies
//	// lets its work go within seconds; without it leases last 2 minutes.
//	ExtendLeases(ctx context.Context, tokens []string, until time.Time) error
type Store interface {
	// Worker apps and routes.

	// CreateApp stores app, assigning ID, CreatedAt and UpdatedAt when they
	// are empty, with a route for each of its AccountIDs (taking the app's
	// Fields). It returns ErrConflict when the ID exists or a route would
	// clash with another app's ([WorkerApp.Clash]); the check and the write
	// are one atomic step.
	CreateApp(ctx context.Context, app *WorkerApp) error
	// ListApps returns every app ordered by CreatedAt, then ID, without
	// AccountIDs (routes are read with ListRoutes).
	ListApps(ctx context.Context) ([]WorkerApp, error)
	// UpdateApp replaces the stored app with the same ID (ErrNotFound when
	// absent) and sets UpdatedAt, keeping CreatedAt. AccountIDs nil keeps
	// the app's routes; non-nil makes them exactly those accounts (a kept
	// account keeps its route's Fields). ErrConflict as for CreateApp,
	// also when new app Fields make a kept route clash.
	UpdateApp(ctx context.Context, app *WorkerApp) error
	// DeleteApp removes an app and its routes; pending deliveries to it
	// stay in the outbox and die at their next attempt. ErrNotFound when
	// absent.
	DeleteApp(ctx context.Context, id string) error
	// SetRoutes adds or replaces the app's routes in put (keyed by
	// AccountID; AppID is ignored) and removes its routes to the accounts
	// in remove (absent ones are skipped), in one atomic step. ErrNotFound
	// when the app does not exist; when routes clash with other apps'
	// ([WorkerApp.Clash]) it stores nothing and returns every clash, each
	// a [*RouteConflictError], joined with errors.Join.
	SetRoutes(ctx context.Context, appID string, put []Route, remove []string) error
	// ListRoutes returns routes ordered by AppID, then AccountID, one page
	// at a time.
	ListRoutes(ctx context.Context, q RouteQuery) (Page[Route], error)

	// The event log.

	// CreateEvent stores ev and its pending routing work in one atomic step.
	// It claims every item's Key for ev (a key an earlier event claimed
	// stays that event's; of two concurrent copies of one payload only one
	// gets each key), calls ev.MarkDuplicates with the outcome and stores
	// ev as it leaves it. The caller sets ID, ReceivedAt, Status and
	// NextAttemptAt.
	CreateEvent(ctx context.Context, ev *Event) error
	// GetEvent returns an event with its payload; ErrNotFound when absent.
	GetEvent(ctx context.Context, id string) (*Event, error)
	// ListEvents returns events newest first, filtered, one page at a time.
	ListEvents(ctx context.Context, q EventQuery) (Page[Event], error)
	// FindDeliveries lists deliveries newest first, filtered, one page at a
	// time, without their Body (with their History when q.Attempts).
	FindDeliveries(ctx context.Context, q DeliveryQuery) (Page[Delivery], error)

	// The outbox hands due work to the background loop with a lease, so that
	// several replicas can share one store and a crashed holder's work is
	// picked up again when its lease runs out.

	// ClaimEvents leases up to limit pending events whose NextAttemptAt is
	// not after now, oldest first: each gets a new LeaseToken and is hidden
	// from other claims until now+lease.
	ClaimEvents(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Event, error)
	// RouteEvent stores a claimed event's new state (every field routing
	// sets: Status, Owners, Unroutable, RouteAttempts, LastError,
	// NextAttemptAt, RoutedAt, CompletedAt), inserts its new deliveries
	// and appends attempts of them (at most one each), in one atomic step,
	// and releases the event's lease. The caller sets everything: the
	// deliveries' IDs, status and NextAttemptAt, the event's Status (it
	// settles it, knowing every delivery). A delivery with a LeaseToken is
	// leased to the caller until its NextAttemptAt; one without is
	// claimable from its NextAttemptAt on. An event put back pending with
	// no deliveries (routing must wait) is claimable again from its
	// NextAttemptAt. ErrLeaseLost when the event's lease is no longer
	// ev.LeaseToken; ErrConflict for an attempt of a delivery not in
	// deliveries, or a second attempt of one; nothing is stored then.
	RouteEvent(ctx context.Context, ev *Event, deliveries []Delivery, attempts []Attempt) error
	// ClaimDeliveries leases up to limit pending deliveries that are due, as
	// ClaimEvents does, leaving out deliveries to the apps in skipApps (an
	// open circuit, a full concurrency limit) and any Ordered delivery
	// while a delivery of an older event (by event ID) to its app is
	// pending or an older event of one of its app's routed accounts is
	// pending routing. Original deliveries come with the event's payload
	// as Body.
	ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration, skipApps []string) ([]Delivery, error)
	// RecordAttempt stores d's Status, Attempts, NextAttemptAt,
	// LastStatusCode, LastError and CompletedAt, appends a to its history
	// unless a is nil (a claim given back unattempted), and releases the
	// lease. When d ended, it calls Settle on d's event with every delivery
	// of the event and stores the event's Status and CompletedAt if that
	// settled it, in the same atomic step. ErrLeaseLost when d.LeaseToken
	// no longer holds the lease; nothing is stored then.
	RecordAttempt(ctx context.Context, d *Delivery, a *Attempt) error
	// Reopen stores a replay the Mapper decided: ev's Status, NextAttemptAt,
	// LastError and CompletedAt, and each delivery's Status, NextAttemptAt,
	// AttemptBase, CycleStart and CompletedAt, releasing any lease, in one
	// atomic step. ErrConflict, with nothing stored, when the event's
	// stored status is no longer was or one of the deliveries is no longer
	// dead (another replay or a settle came first).
	Reopen(ctx context.Context, was EventStatus, ev *Event, deliveries []Delivery) error

	// Retention.

	// Prune deletes events that ended (delivered, dead, unroutable,
	// duplicate, ignored) before the given time, with their deliveries and
	// attempts and the deduplication keys they own: a key stays as long as
	// its event, so that a retry of a change still in flight is a
	// duplicate however old. It works in
	// batches of at most batch events, so that it never holds a long lock,
	// and returns how many events it deleted.
	Prune(ctx context.Context, before time.Time, batch int) (int64, error)
}

// Page is one page of a listing, newest or lowest first as the listing
// says.
type Page[T any] struct {
	Items []T `json:"items"`
	// NextCursor continues the listing; it is empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// EventQuery filters [Store.ListEvents]. Zero fields do not filter.
type EventQuery struct {
	Status  EventStatus
	Account string // events with an entry of this account
	AppID   string // events with a delivery to this app
	Since   time.Time
	Until   time.Time // exclusive
	// Limit caps the page; 0 or less serves 50, and a store serves 500 at most.
	Limit int
	// Cursor continues from the NextCursor of an earlier page.
	Cursor string
}

// DeliveryQuery filters [Store.FindDeliveries]. Zero fields do not filter.
type DeliveryQuery struct {
	ID      string // one delivery
	Status  DeliveryStatus
	AppID   string
	EventID string    // the deliveries of one event
	Since   time.Time // on CreatedAt
	Until   time.Time // exclusive
	Limit   int       // 0 or less serves 50, and a store serves 500 at most
	Cursor  string
	// Attempts fills each delivery's History.
	Attempts bool
}

// RouteQuery filters [Store.ListRoutes]. Zero fields do not filter.
type RouteQuery struct {
	AppID string
	// Accounts are the accounts asked about (at most 500).
	Accounts []string
	// Field keeps the routes that serve this field (a route serving every
	// field included).
	Field  string
	Limit  int // 0 or less serves 50, and a store serves 500 at most
	Cursor string
}

// Stats is a snapshot of the live part of the store, for GET
// /monitoring/metrics and the gauges of /metrics, from a Store's optional
// Stats method (see [Store]); without one its figures are zero. It reads
// only what is live, never the whole history, so its cost does not grow
// with the retention: how many webhooks were accepted, delivered or found
// unroutable over time are the Mapper's counters, not counts of the log.
// Every replica reads the same figures from a shared store.
type Stats struct {
	// EventsByStatus counts the pending, dispatched and dead events;
	// DeliveriesByStatus the pending and dead deliveries. Dead ones count
	// until they are replayed or pruned. Each map has every one of those
	// keys, and no other.
	EventsByStatus     map[EventStatus]int64    `json:"events_by_status"`
	DeliveriesByStatus map[DeliveryStatus]int64 `json:"deliveries_by_status"`
	// QueueDepth counts pending events plus pending deliveries.
	QueueDepth int64 `json:"queue_depth"`
	// OldestPending is the age of the oldest pending event or delivery.
	OldestPending time.Duration `json:"oldest_pending_ns"`
	// ProcessingP50 and ProcessingP95 are percentiles of received →
	// completed over the 1,000 most recent events delivered since the
	// time Stats is given (an hour ago, for the Mapper).
	ProcessingP50 time.Duration `json:"processing_p50_ns"`
	ProcessingP95 time.Duration `json:"processing_p95_ns"`
}

// pinger, statser and workNotifier are the optional parts of a Store.
type (
	pinger interface {
		Ping(ctx context.Context) error
	}
	statser interface {
		Stats(ctx context.Context, since time.Time) (Stats, error)
	}
	workNotifier interface {
		ListenForWork(ctx context.Context, wake func()) error
	}
)
