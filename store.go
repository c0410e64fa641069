package mapper

import (
	"context"
	"time"
)

// Store keeps worker apps, the event log and the delivery outbox. It is the
// one required collaborator of [New]; docs/stores.md says how to write one.
//
// Every implementation must pass testing/storetest. Methods return
// [ErrNotFound], [ErrConflict], [ErrLeaseLost] and [ErrInvalidInput]
// (wrapped or not) where their docs say so; any other error is treated as
// the store being unavailable.
type Store interface {
	// Worker apps.

	// CreateApp stores app, assigning ID, CreatedAt and UpdatedAt when they
	// are empty. It returns ErrConflict when the ID exists or the app
	// would serve an (account, field) pair another app serves
	// ([WorkerApp.Clash]); the check and the write are one atomic step.
	CreateApp(ctx context.Context, app *WorkerApp) error
	// GetApp returns ErrNotFound for an unknown ID.
	GetApp(ctx context.Context, id string) (*WorkerApp, error)
	// ListApps returns every app ordered by CreatedAt, then ID.
	ListApps(ctx context.Context) ([]WorkerApp, error)
	// UpdateApp replaces the stored app with the same ID (ErrNotFound when
	// absent, ErrConflict as for CreateApp) and sets UpdatedAt.
	UpdateApp(ctx context.Context, app *WorkerApp) error
	// DeleteApp removes an app; pending deliveries to it stay in the outbox
	// and die at their next attempt. ErrNotFound when absent.
	DeleteApp(ctx context.Context, id string) error
	// AppsForAccounts maps each given account ID to the enabled apps that
	// serve some field of it (one app taking every field, or several
	// taking a field each); accounts with no enabled app are absent from
	// the result.
	AppsForAccounts(ctx context.Context, accountIDs []string) (map[string][]*WorkerApp, error)

	// The event log.

	// CreateEvent stores ev and its pending routing work in one atomic step.
	// For each item whose Key an earlier event already holds it sets
	// Duplicate; keys are claimed atomically, so of two concurrent copies of
	// one payload only one gets each key. When every item is a duplicate the
	// event is stored with status EventDuplicate and no work. The caller sets
	// ID, ReceivedAt, Status and NextAttemptAt.
	CreateEvent(ctx context.Context, ev *Event) error
	// GetEvent returns an event with its payload; ErrNotFound when absent.
	GetEvent(ctx context.Context, id string) (*Event, error)
	// ListEvents returns events newest first, filtered, one page at a time.
	ListEvents(ctx context.Context, q EventQuery) (EventPage, error)
	// ListAttempts returns the attempts of one delivery in order.
	ListAttempts(ctx context.Context, deliveryID string) ([]Attempt, error)

	// The outbox hands due work to the background loop with a lease, so that
	// several replicas can share one store and a crashed holder's work is
	// picked up again when its lease runs out.

	// ClaimEvents leases up to limit pending events whose NextAttemptAt is
	// not after now, oldest first: each gets a new LeaseToken and is hidden
	// from other claims until now+lease.
	ClaimEvents(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Event, error)
	// RouteEvent stores a claimed event's new state (every field routing
	// sets: Status, Owners, Unroutable, RouteAttempts, LastError,
	// NextAttemptAt, RoutedAt, CompletedAt) and its deliveries, in one
	// atomic step, and releases the event's lease. The caller sets the
	// deliveries' IDs, status and NextAttemptAt; a delivery with a
	// LeaseToken is leased to the caller until its NextAttemptAt, one
	// without is claimable from its NextAttemptAt on. An event put back
	// still pending, with no deliveries (routing must wait), is claimable
	// again from its NextAttemptAt. ErrLeaseLost when the event's lease is
	// no longer ev.LeaseToken; nothing is stored then.
	RouteEvent(ctx context.Context, ev *Event, deliveries []Delivery) error
	// ClaimDeliveries leases up to limit pending deliveries that are due, as
	// ClaimEvents does, leaving out deliveries to the apps in skipApps (an
	// open circuit, a full concurrency limit) and any Ordered delivery
	// while a delivery of an older event (by event ID) to its app is
	// pending or an older event of one of its app's accounts is pending
	// routing.
	// Original deliveries come with the event's payload as Body.
	ClaimDeliveries(ctx context.Context, now time.Time, limit int, lease time.Duration, skipApps []string) ([]Delivery, error)
	// ReleaseDelivery gives a claimed delivery back unattempted, due at
	// next; ErrLeaseLost as for RecordAttempt.
	ReleaseDelivery(ctx context.Context, d *Delivery, next time.Time) error
	// RecordAttempt appends a to the delivery's history and stores d's new
	// Status, Attempts, NextAttemptAt, LastStatusCode, LastError and
	// CompletedAt, releasing the lease. When the last open delivery of an
	// event ends, the event is settled: EventDead if any delivery is dead,
	// else EventUnroutable if it has unroutable owners, else EventDelivered.
	// ErrLeaseLost when d.LeaseToken no longer holds the lease.
	RecordAttempt(ctx context.Context, d *Delivery, a Attempt) error

	// Replays: dead deliveries, and events that were unroutable (once an app
	// exists for them) or whose routing gave up.

	// FindDeliveries lists deliveries, newest first, one page at a time,
	// without their Body.
	FindDeliveries(ctx context.Context, q DeliveryQuery) (DeliveryPage, error)
	// ReplayDelivery makes a dead delivery pending again, due at now,
	// starting a new retry cycle (AttemptBase, CycleStart), and reopens its
	// event. ErrNotFound when absent, ErrConflict when it is not dead.
	ReplayDelivery(ctx context.Context, id string, now time.Time) (*Delivery, error)
	// ReplayEvent replays an event: its dead deliveries as ReplayDelivery
	// does, and, when it has unroutable items or its routing gave up, it
	// is made pending again, due at now (routing then sends only what its
	// Unroutable lists). ErrConflict when the event is neither dead nor
	// unroutable.
	ReplayEvent(ctx context.Context, id string, now time.Time) (*Event, error)
	// ReplayDead replays, in batches of at most batch, every dead delivery
	// matching q (AppID, Since and Until on CreatedAt; Status and Cursor
	// are ignored), and returns how many it replayed.
	ReplayDead(ctx context.Context, q DeliveryQuery, now time.Time, batch int) (int64, error)

	// Health and aggregates.

	// Ping reports whether the store can take writes.
	Ping(ctx context.Context) error
	// Stats aggregates the log; processing-time percentiles cover events
	// completed since the given time.
	Stats(ctx context.Context, since time.Time) (Stats, error)

	// Retention.

	// Prune deletes events that ended (delivered, dead, unroutable,
	// duplicate, ignored) before the given time, with their deliveries and
	// attempts, and the deduplication keys claimed before it. It works in
	// batches of at most batch events, so that it never holds a long lock,
	// and returns how many events it deleted.
	Prune(ctx context.Context, before time.Time, batch int) (int64, error)
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

// EventPage is one page of events.
type EventPage struct {
	Events []Event `json:"events"`
	// NextCursor is empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// RouteRecorder is an optional part of an Outbox that stores a route
// together with the first attempt of each of its deliveries, in one write
// instead of one for the route and one per attempt. The Mapper uses it,
// when its Store implements it, for an event whose deliveries it can all
// attempt at once (none ordered, every app with a free slot and a closed
// circuit): it attempts them first and then records everything. Should
// the process stop in between, the event's lease runs out and the event is
// routed and delivered again, which is the at-least-once promise that a
// stop between an attempt and its RecordAttempt already implies.
type RouteRecorder interface {
	// RecordRoute stores what RouteEvent would for ev and deliveries,
	// then appends attempts (at most one per delivery, in any order), in
	// one atomic step. Deliveries are stored as given and not leased (their
	// LeaseToken is ignored): a pending one is claimable when its
	// NextAttemptAt comes. The event's Status and CompletedAt are stored as
	// given: the caller settles it, since it knows every delivery.
	// ErrLeaseLost when the event's lease is no longer ev.LeaseToken;
	// nothing is stored then.
	RecordRoute(ctx context.Context, ev *Event, deliveries []Delivery, attempts []Attempt) error
}

// WorkNotifier is implemented by stores that can tell a Mapper when
// another replica has stored new work (PostgreSQL's LISTEN/NOTIFY), so
// that replicas wake each other without polling.
type WorkNotifier interface {
	// ListenForWork calls wake whenever new work may be due, until ctx
	// ends. It returns only when ctx ends or listening cannot go on; the
	// Mapper then falls back to its poll and tries again later.
	ListenForWork(ctx context.Context, wake func()) error
}

// DeliveryQuery filters [Store.FindDeliveries]. Zero fields do not filter.
type DeliveryQuery struct {
	Status  DeliveryStatus
	AppID   string
	EventID string    // the deliveries of one event
	Since   time.Time // on CreatedAt
	Until   time.Time // exclusive
	Limit   int       // 0 or less serves 50, and a store serves 500 at most
	Cursor  string
}

// DeliveryPage is one page of deliveries.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// Stats is a snapshot of the store.
type Stats struct {
	EventsByStatus     map[EventStatus]int64    `json:"events_by_status"`
	DeliveriesByStatus map[DeliveryStatus]int64 `json:"deliveries_by_status"`
	// QueueDepth counts pending events plus pending deliveries.
	QueueDepth int64 `json:"queue_depth"`
	// OldestPending is the age of the oldest pending event or delivery.
	OldestPending time.Duration `json:"oldest_pending_ns"`
	// ProcessingP50 and ProcessingP95 are percentiles of received → completed.
	ProcessingP50 time.Duration `json:"processing_p50_ns"`
	ProcessingP95 time.Duration `json:"processing_p95_ns"`
}
