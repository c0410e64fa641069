package bunstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/chatico/mapper"
)

// Rows mirror the tables; times are Unix microseconds.

type appRow struct {
	bun.BaseModel  `bun:"table:mapper_worker_apps,alias:a"`
	ID             string `bun:"id,pk"`
	Name           string `bun:"name"`
	URL            string `bun:"url"`
	Secret         string `bun:"secret"`
	Enabled        bool   `bun:"enabled"`
	TimeoutUS      int64  `bun:"timeout_us"`
	MaxConcurrency int    `bun:"max_concurrency"`
	Ordered        bool   `bun:"ordered"`
	Fields         string `bun:"fields"`
	CreatedAt      int64  `bun:"created_at"`
	UpdatedAt      int64  `bun:"updated_at"`
}

type routeRow struct {
	bun.BaseModel `bun:"table:mapper_app_accounts,alias:aa"`
	AccountID     string `bun:"account_id,pk"`
	AppID         string `bun:"app_id,pk"`
	Fields        string `bun:"fields"`
}

func toRouteRow(appID string, r *mapper.Route) routeRow {
	return routeRow{AccountID: r.AccountID, AppID: appID, Fields: jsonStrings(r.Fields)}
}

func (r *routeRow) route() mapper.Route {
	out := mapper.Route{AccountID: r.AccountID, AppID: r.AppID}
	_ = json.Unmarshal([]byte(r.Fields), &out.Fields)
	if len(out.Fields) == 0 {
		out.Fields = nil
	}
	return out
}

type eventRow struct {
	bun.BaseModel `bun:"table:mapper_events,alias:e"`
	ID            string `bun:"id,pk"`
	ReceivedAt    int64  `bun:"received_at"`
	Object        string `bun:"object"`
	Payload       []byte `bun:"payload"` // as stored: see PayloadCodec
	PayloadCodec  int16  `bun:"payload_codec"`
	Signature     string `bun:"signature"`
	Items         string `bun:"items"`
	AccountIDs    string `bun:"account_ids"`
	Status        string `bun:"status"`
	Owners        string `bun:"owners"`
	Unroutable    string `bun:"unroutable"`
	RouteAttempts int    `bun:"route_attempts"`
	LastError     string `bun:"last_error"`
	NextAttemptAt int64  `bun:"next_attempt_at"`
	RoutedAt      *int64 `bun:"routed_at"`
	CompletedAt   *int64 `bun:"completed_at"`
	LeaseToken    string `bun:"lease_token"`
	TraceContext  string `bun:"trace_context"`
}

type eventAccountRow struct {
	bun.BaseModel `bun:"table:mapper_event_accounts,alias:ea"`
	AccountID     string `bun:"account_id,pk"`
	ReceivedAt    int64  `bun:"received_at,pk"`
	EventID       string `bun:"event_id,pk"`
}

type deliveryRow struct {
	bun.BaseModel  `bun:"table:mapper_deliveries,alias:d"`
	ID             string `bun:"id,pk"`
	EventID        string `bun:"event_id"`
	AppID          string `bun:"app_id"`
	OwnerIDs       string `bun:"owner_ids"`
	Body           []byte `bun:"body"` // as stored: see BodyCodec
	BodyCodec      int16  `bun:"body_codec"`
	Original       bool   `bun:"original"`
	MetaSignature  string `bun:"meta_signature"`
	Ordered        bool   `bun:"ordered"`
	Status         string `bun:"status"`
	Attempts       int    `bun:"attempts"`
	AttemptBase    int    `bun:"attempt_base"`
	CycleStart     int64  `bun:"cycle_start"`
	NextAttemptAt  int64  `bun:"next_attempt_at"`
	LastStatusCode int    `bun:"last_status_code"`
	LastError      string `bun:"last_error"`
	CreatedAt      int64  `bun:"created_at"`
	CompletedAt    *int64 `bun:"completed_at"`
	LeaseToken     string `bun:"lease_token"`
	TraceContext   string `bun:"trace_context"`
	// The last attempt, held in the row (AttemptNumber nil: none is); the
	// attempts table has the ones before it.
	AttemptNumber       *int   `bun:"attempt_number"`
	AttemptStartedAt    int64  `bun:"attempt_started_at"`
	AttemptDurationUS   int64  `bun:"attempt_duration_us"`
	AttemptStatusCode   int    `bun:"attempt_status_code"`
	AttemptError        string `bun:"attempt_error"`
	AttemptOutcome      string `bun:"attempt_outcome"`
	AttemptResponseBody string `bun:"attempt_response_body"`
}

// hold puts a in the row as its last attempt.
func (d *deliveryRow) hold(a *mapper.Attempt) {
	n := a.Number
	d.AttemptNumber, d.AttemptStartedAt, d.AttemptDurationUS = &n, us(a.StartedAt), a.Duration.Microseconds()
	d.AttemptStatusCode, d.AttemptError, d.AttemptOutcome, d.AttemptResponseBody = a.StatusCode, a.Error, string(a.Outcome), a.ResponseBody
}

// held is the attempt the row holds, if any.
func (d *deliveryRow) held() (mapper.Attempt, bool) {
	if d.AttemptNumber == nil {
		return mapper.Attempt{}, false
	}
	r := attemptRow{DeliveryID: d.ID, Number: *d.AttemptNumber, StartedAt: d.AttemptStartedAt, DurationUS: d.AttemptDurationUS,
		StatusCode: d.AttemptStatusCode, Error: d.AttemptError, Outcome: d.AttemptOutcome, ResponseBody: d.AttemptResponseBody}
	return r.attempt(), true
}

// heldArgs are the held attempt's values in the order of heldColumns.
func (d *deliveryRow) heldArgs() []any {
	return []any{d.AttemptNumber, d.AttemptStartedAt, d.AttemptDurationUS, d.AttemptStatusCode, d.AttemptError, d.AttemptOutcome,
		d.AttemptResponseBody}
}

type attemptRow struct {
	bun.BaseModel `bun:"table:mapper_attempts,alias:at"`
	DeliveryID    string `bun:"delivery_id,pk"`
	Number        int    `bun:"number,pk"`
	StartedAt     int64  `bun:"started_at"`
	DurationUS    int64  `bun:"duration_us"`
	StatusCode    int    `bun:"status_code"`
	Error         string `bun:"error"`
	Outcome       string `bun:"outcome"`
	ResponseBody  string `bun:"response_body"`
}

// attempt converts a row of the attempts table, or the attempt a
// delivery's row holds.
func (r *attemptRow) attempt() mapper.Attempt {
	return mapper.Attempt{DeliveryID: r.DeliveryID, Number: r.Number, StartedAt: fromUS(r.StartedAt), Duration: usDuration(r.DurationUS),
		StatusCode: r.StatusCode, Error: r.Error, Outcome: mapper.DeliveryStatus(r.Outcome), ResponseBody: r.ResponseBody}
}

// args are the row's values in the order of insertEventSQL.
func (r *eventRow) args() []any {
	return []any{r.ID, r.ReceivedAt, r.Object, r.Payload, r.Signature, r.Items, r.AccountIDs, r.Status, r.Owners, r.Unroutable,
		r.RouteAttempts, r.LastError, r.NextAttemptAt, r.RoutedAt, r.CompletedAt, r.LeaseToken, r.TraceContext, r.PayloadCodec}
}

// args are the row's values in the order of deliveryColumns.
func (d *deliveryRow) args() []any {
	return append([]any{d.ID, d.EventID, d.AppID, d.OwnerIDs, d.Body, d.Original, d.MetaSignature, d.Ordered, d.Status, d.Attempts,
		d.AttemptBase, d.CycleStart, d.NextAttemptAt, d.LastStatusCode, d.LastError, d.CreatedAt, d.CompletedAt, d.LeaseToken, d.TraceContext,
		d.BodyCodec}, d.heldArgs()...)
}

// routeArgs are routeEventSQL's values for a routed event.
func routeArgs(ev *mapper.Event) []any {
	return []any{string(ev.Status), jsonStrings(ev.Owners), jsonStrings(ev.Unroutable), ev.RouteAttempts, ev.LastError,
		usPtr(ev.RoutedAt), usPtr(ev.CompletedAt), us(ev.NextAttemptAt), ev.ID, ev.LeaseToken, string(mapper.EventPending)}
}

func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

func usPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.UnixMicro()
	return &v
}

func fromUSPtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromUS(*v)
	return &t
}

// jsonStrings is a list of strings as a JSON array, without
// encoding/json's reflection for the usual lists of plain IDs (they are
// written for every event and route); nil is [].
func jsonStrings(ss []string) string {
	n := 2
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return jsonText(orEmpty(ss))
			}
		}
		n += len(s) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	return string(append(b, ']'))
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func toAppRow(a *mapper.WorkerApp) *appRow {
	return &appRow{ID: a.ID, Name: a.Name, URL: a.URL, Secret: a.Secret, Enabled: a.Enabled, TimeoutUS: a.Timeout.Microseconds(),
		MaxConcurrency: a.MaxConcurrency, Ordered: a.Ordered, Fields: jsonStrings(a.Fields), CreatedAt: us(a.CreatedAt), UpdatedAt: us(a.UpdatedAt)}
}

func (r *appRow) app() *mapper.WorkerApp {
	a := &mapper.WorkerApp{ID: r.ID, Name: r.Name, URL: r.URL, Secret: r.Secret, Enabled: r.Enabled,
		Timeout: usDuration(r.TimeoutUS), MaxConcurrency: r.MaxConcurrency, Ordered: r.Ordered,
		CreatedAt: fromUS(r.CreatedAt), UpdatedAt: fromUS(r.UpdatedAt)}
	_ = json.Unmarshal([]byte(r.Fields), &a.Fields)
	return a
}

// toEventRow converts an event, with its payload as pack stored it.
func toEventRow(e *mapper.Event, payload stored) *eventRow {
	items := e.Items
	if items == nil {
		items = []mapper.EventItem{}
	}
	return &eventRow{
		ID: e.ID, ReceivedAt: us(e.ReceivedAt), Object: e.Object, Payload: payload.data, PayloadCodec: payload.codec, Signature: e.Signature,
		Items: jsonText(items), AccountIDs: jsonStrings(e.AccountIDs), Status: string(e.Status),
		Owners: jsonStrings(e.Owners), Unroutable: jsonStrings(e.Unroutable),
		RouteAttempts: e.RouteAttempts, LastError: e.LastError, NextAttemptAt: us(e.NextAttemptAt),
		RoutedAt: usPtr(e.RoutedAt), CompletedAt: usPtr(e.CompletedAt), LeaseToken: e.LeaseToken, TraceContext: e.TraceContext,
	}
}

// event converts the row, expanding its payload when it was read: a
// payload that cannot be is an error naming the event.
func (r *eventRow) event() (mapper.Event, error) {
	payload, err := unpack(r.Payload, r.PayloadCodec)
	if err != nil {
		err = fmt.Errorf("event %s: %w", r.ID, err)
	}
	e := mapper.Event{
		ID: r.ID, ReceivedAt: fromUS(r.ReceivedAt), Object: r.Object, Payload: payload, Signature: r.Signature,
		Status: mapper.EventStatus(r.Status), RouteAttempts: r.RouteAttempts, LastError: r.LastError,
		NextAttemptAt: fromUS(r.NextAttemptAt), RoutedAt: fromUSPtr(r.RoutedAt), CompletedAt: fromUSPtr(r.CompletedAt),
		LeaseToken: r.LeaseToken, TraceContext: r.TraceContext,
	}
	_ = json.Unmarshal([]byte(r.Items), &e.Items)
	_ = json.Unmarshal([]byte(r.AccountIDs), &e.AccountIDs)
	_ = json.Unmarshal([]byte(r.Owners), &e.Owners)
	_ = json.Unmarshal([]byte(r.Unroutable), &e.Unroutable)
	if len(e.Owners) == 0 {
		e.Owners = nil
	}
	if len(e.Unroutable) == 0 {
		e.Unroutable = nil
	}
	return e, err
}

// listed converts a row of a listing, which does not read payloads and
// so cannot fail.
func (r *eventRow) listed() mapper.Event {
	e, _ := r.event()
	return e
}

func toDeliveryRow(d *mapper.Delivery) *deliveryRow {
	r := &deliveryRow{
		ID: d.ID, EventID: d.EventID, AppID: d.AppID, OwnerIDs: jsonStrings(d.OwnerIDs), Original: d.Original,
		Ordered: d.Ordered, Status: string(d.Status), Attempts: d.Attempts,
		AttemptBase: d.AttemptBase, CycleStart: us(d.CycleStart), NextAttemptAt: us(d.NextAttemptAt),
		LastStatusCode: d.LastStatusCode, LastError: d.LastError, CreatedAt: us(d.CreatedAt),
		CompletedAt: usPtr(d.CompletedAt), LeaseToken: d.LeaseToken,
	}
	// A delivery's trace context is the event's, and an original
	// delivery's body and Meta's signature are the event's payload and
	// signature: they are stored once, with the event (see claimed).
	if !d.Original {
		r.MetaSignature = d.MetaSignature
		body := pack(d.Body)
		r.Body, r.BodyCodec = body.data, body.codec
		if r.Body == nil {
			r.Body = []byte{}
		}
	}
	return r
}

// delivery converts the row, expanding its body when it was read: a body
// that cannot be is an error naming the delivery.
func (r *deliveryRow) delivery() (mapper.Delivery, error) {
	body, err := unpack(r.Body, r.BodyCodec)
	if err != nil {
		err = fmt.Errorf("delivery %s: %w", r.ID, err)
	}
	d := mapper.Delivery{
		ID: r.ID, EventID: r.EventID, AppID: r.AppID, Body: body, Original: r.Original, MetaSignature: r.MetaSignature,
		Ordered: r.Ordered, Status: mapper.DeliveryStatus(r.Status), Attempts: r.Attempts,
		AttemptBase: r.AttemptBase, CycleStart: fromUS(r.CycleStart), NextAttemptAt: fromUS(r.NextAttemptAt),
		LastStatusCode: r.LastStatusCode, LastError: r.LastError, CreatedAt: fromUS(r.CreatedAt),
		CompletedAt: fromUSPtr(r.CompletedAt), LeaseToken: r.LeaseToken, TraceContext: r.TraceContext,
	}
	_ = json.Unmarshal([]byte(r.OwnerIDs), &d.OwnerIDs)
	return d, err
}

// listed converts a row of a listing, which does not read bodies and so
// cannot fail.
func (r *deliveryRow) listed() mapper.Delivery {
	d, _ := r.delivery()
	return d
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
