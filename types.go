package mapper

import (
	"slices"
	"time"
)

// WorkerApp is an internal application that acts on the webhooks of one or
// more Instagram professional accounts: all their webhooks, or only those
// of some subscription fields. Which accounts it serves are its routes
// ([Route]); an (account, field) pair is served by at most one app, which
// the Store enforces (see [WorkerApp.Clash]).
type WorkerApp struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// URL receives the deliveries (POST). It must be http or https.
	URL string `json:"url"`
	// AccountIDs, when set on create or update, make the app's routes
	// exactly these accounts (the Instagram professional account IDs, the
	// entry.id of Meta's webhooks); nil on update keeps the routes. Stores
	// return apps without them: routes are read with [Store.ListRoutes].
	AccountIDs []string `json:"account_ids"`
	// Fields are the webhook subscription fields ("comments", "messages",
	// ...; see the package documentation) that the app's routes take when
	// they name none; empty takes them all. Another app may take the other
	// fields of the same accounts.
	Fields []string `json:"fields"`
	// Secret signs every delivery to this app (X-Mapper-Signature-256). It is
	// write-only in the admin API: responses never include it.
	Secret  string `json:"-"`
	Enabled bool   `json:"enabled"`
	// Timeout caps one delivery attempt to this app; 0 uses the Mapper's
	// delivery timeout.
	Timeout time.Duration `json:"-"`
	// MaxConcurrency caps the attempts in flight to this app at once, per
	// Mapper; 0 uses the Mapper's default (8, see [WithConcurrency]).
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// Ordered delivers to this app one at a time, in the order the events
	// were received: a delivery waits while an older one to the same app
	// is pending (retrying included).
	Ordered   bool      `json:"ordered"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Route sends an account's webhooks to a worker app: all of them, or those
// of some subscription fields.
type Route struct {
	AccountID string `json:"account_id"`
	AppID     string `json:"app_id"`
	// Fields narrows the route to these fields; empty takes the app's
	// Fields (and those empty, every field).
	Fields []string `json:"fields"`
}

// fields is what route r of app a serves; empty is every field.
func (a *WorkerApp) fields(r Route) []string {
	if len(r.Fields) > 0 {
		return r.Fields
	}
	return a.Fields
}

// Clash reports whether route r of app a and route o of app b would both
// serve a field of one account, and which (field "" standing for every
// field). Stores call it, with the apps the routes belong to, to refuse a
// route that would take another app's webhooks.
func (a *WorkerApp) Clash(r Route, b *WorkerApp, o Route) (field string, ok bool) {
	if r.AccountID != o.AccountID || a.ID == b.ID {
		return "", false
	}
	fa, fb := a.fields(r), b.fields(o)
	switch {
	case len(fa) == 0 && len(fb) == 0:
		return "", true
	case len(fa) == 0:
		return fb[0], true
	case len(fb) == 0:
		return fa[0], true
	}
	for _, f := range fa {
		if slices.Contains(fb, f) {
			return f, true
		}
	}
	return "", false
}

// EventStatus is where an event stands in the processing flow.
type EventStatus string

// The life of an event: it is stored as pending, routing turns it into
// dispatched (deliveries exist) or unroutable, and the outcome of its
// deliveries settles it as delivered or dead. A payload every item of which
// was seen before is stored as duplicate and never routed; one with an
// empty entry array is stored as ignored (every entry is at least one item).
const (
	EventPending    EventStatus = "pending"
	EventDispatched EventStatus = "dispatched"
	EventDelivered  EventStatus = "delivered"
	EventUnroutable EventStatus = "unroutable"
	EventDead       EventStatus = "dead"
	EventDuplicate  EventStatus = "duplicate"
	EventIgnored    EventStatus = "ignored"
)

// Terminal reports whether no more work is planned for an event in this status.
func (s EventStatus) Terminal() bool {
	switch s {
	case EventPending, EventDispatched:
		return false
	}
	return true
}

// validEventStatus reports whether s is one of the known statuses.
func validEventStatus(s EventStatus) bool {
	switch s {
	case EventPending, EventDispatched, EventDelivered, EventUnroutable, EventDead, EventDuplicate, EventIgnored:
		return true
	}
	return false
}

// Event is one webhook POST from Meta, kept for audit with its raw bytes.
type Event struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	// Object is the payload's "object" field ("instagram").
	Object string `json:"object"`
	// Payload holds the request body exactly as Meta sent it: the bytes the
	// signature covers.
	Payload []byte `json:"-"`
	// Signature is Meta's X-Hub-Signature-256 header, forwarded with the
	// original bytes when one worker app receives the whole payload.
	Signature string `json:"-"`
	// Items has one element per entry[].changes[] or entry[].messaging[] item,
	// in payload order, with its deduplication key. The Store sets Duplicate
	// on items whose key an earlier event already claimed.
	Items []EventItem `json:"items"`
	// AccountIDs are the distinct entry IDs of the payload.
	AccountIDs []string    `json:"account_ids"`
	Status     EventStatus `json:"status"`
	// Owners are the media owners routing found, and Unroutable those of them
	// (or "media:<id>" for a media whose owner could not be known) that no
	// enabled worker app serves.
	Owners     []string `json:"owners,omitempty"`
	Unroutable []string `json:"unroutable,omitempty"`
	// RouteAttempts counts routing tries; LastError says why the last one
	// did not finish (for example, the Graph API was throttled).
	RouteAttempts int        `json:"route_attempts"`
	LastError     string     `json:"last_error,omitempty"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	RoutedAt      *time.Time `json:"routed_at,omitempty"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`
	// LeaseToken is set by a claim and must accompany the claimer's writes.
	LeaseToken string `json:"-"`
	// TraceContext is the intake's span context as the propagator wrote it
	// (the traceparent's value when that is all, else a JSON object of
	// traceparent, tracestate, ...), so that routing and delivery continue
	// the same trace after a restart or on another replica.
	TraceContext string `json:"-"`
}

// MarkDuplicates is for Store implementations of CreateEvent. Given
// whether the event claimed each item's key (an earlier event holds the
// others), it sets every item's Duplicate flag, a repeat of a key within
// the event counting as a duplicate too; when no item is new, the event
// becomes EventDuplicate, completed at ReceivedAt and not leased.
func (e *Event) MarkDuplicates(claimed func(key string) bool) {
	seen := make(map[string]bool, len(e.Items))
	fresh := 0
	for i := range e.Items {
		k := e.Items[i].Key
		e.Items[i].Duplicate = seen[k] || !claimed(k)
		seen[k] = true
		if !e.Items[i].Duplicate {
			fresh++
		}
	}
	if len(e.Items) > 0 && fresh == 0 {
		t := e.ReceivedAt
		e.Status, e.CompletedAt, e.LeaseToken = EventDuplicate, &t, ""
	}
}

// Settle ends a dispatched event whose deliveries have all ended: dead if
// one of them is dead, else unroutable if some of its items are, else
// delivered, completed when its last delivery was. Stores call it from
// RecordAttempt with every delivery of the event (Status and CompletedAt
// are read) and store Status and CompletedAt when it reports true.
func (e *Event) Settle(deliveries []Delivery) bool {
	if e.Status != EventDispatched {
		return false
	}
	s := settle(e, deliveries)
	if s == EventDispatched {
		return false
	}
	var at time.Time
	for _, d := range deliveries {
		if d.CompletedAt != nil && d.CompletedAt.After(at) {
			at = *d.CompletedAt
		}
	}
	if at.IsZero() {
		at = time.Now().UTC()
	}
	e.Status, e.CompletedAt = s, &at
	return true
}

// settle is the status deliveries imply for an event routed to them:
// dispatched while one is open.
func settle(ev *Event, ds []Delivery) EventStatus {
	dead := false
	for _, d := range ds {
		if !d.Status.Terminal() {
			return EventDispatched
		}
		dead = dead || d.Status == DeliveryDead
	}
	switch {
	case dead:
		return EventDead
	case len(ev.Unroutable) > 0:
		return EventUnroutable
	}
	return EventDelivered
}

// EventItem is one change or messaging item of a payload.
type EventItem struct {
	// Key identifies the item across Meta's retries, for example
	// "17841405309211844/comments/17919697626119712".
	Key string `json:"key"`
	// Field is the webhook subscription field the item comes under
	// ("comments", "messages", "standby", ...), which field routing
	// matches; "" when the item names none.
	Field string `json:"field,omitempty"`
	// Kind says where the item was found: "change", "messaging",
	// "standby", or "entry" for a member (or whole entry) the Mapper does
	// not know, passed through as it is.
	Kind      string `json:"kind,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// A delivery is pending until an attempt succeeds (delivered) or the retry
// policy gives up (dead). Between attempts it stays pending with a
// NextAttemptAt in the future.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryDead      DeliveryStatus = "dead"
)

// Terminal reports whether no more attempts are planned.
func (s DeliveryStatus) Terminal() bool { return s == DeliveryDelivered || s == DeliveryDead }

// Delivery is the part of one event that goes to one worker app.
type Delivery struct {
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	AppID   string `json:"app_id"`
	// OwnerIDs are the accounts whose items this delivery carries.
	OwnerIDs []string `json:"owner_ids"`
	// Body is what the app receives: the original payload when Original is
	// true, else an envelope holding only this app's entries.
	Body     []byte `json:"-"`
	Original bool   `json:"original"`
	// MetaSignature is Meta's signature header, forwarded only with the
	// original bytes it covers.
	MetaSignature string `json:"-"`
	// Ordered is copied from the app when the delivery is created.
	Ordered  bool           `json:"ordered,omitempty"`
	Status   DeliveryStatus `json:"status"`
	Attempts int            `json:"attempts"`
	// AttemptBase and CycleStart are where the current retry cycle began:
	// 0 and CreatedAt at first, the attempt count and the time of a
	// replay after one. The retry policy's attempt and age limits count
	// from them.
	AttemptBase    int        `json:"attempt_base,omitempty"`
	CycleStart     time.Time  `json:"cycle_start"`
	NextAttemptAt  time.Time  `json:"next_attempt_at"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
	LeaseToken     string     `json:"-"`
	// TraceContext is copied from the event.
	TraceContext string `json:"-"`
	// History holds the delivery's attempts, oldest first, when a listing
	// asked for them ([DeliveryQuery].Attempts).
	History []Attempt `json:"attempts_history,omitempty"`
}

// Attempt records one try of a delivery.
type Attempt struct {
	DeliveryID string        `json:"delivery_id"`
	Number     int           `json:"number"`
	StartedAt  time.Time     `json:"started_at"`
	Duration   time.Duration `json:"duration_ns"`
	StatusCode int           `json:"status_code,omitempty"`
	Error      string        `json:"error,omitempty"`
	// Outcome is the delivery's status after this attempt.
	Outcome DeliveryStatus `json:"outcome"`
	// ResponseBody is the start of the app's answer (4 KiB at most).
	ResponseBody string `json:"response_body,omitempty"`
}
