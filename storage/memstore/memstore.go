// Package memstore is a mapper.Store in memory: for tests, examples and
// trying the Mapper out. It is complete and safe for concurrent use, and it
// passes the same conformance suite as the database stores, but everything
// it holds is lost when the process ends, so a production deployment that
// answers Meta with 200 needs a durable store (storage/bunstore).
//
// Records are copied in and out, so a caller cannot change stored state by
// holding on to a returned value. Payload bytes are the exception: they are
// shared, and must not be modified by anyone.
package memstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
)

// Store is an in-memory mapper.Store.
type Store struct {
	mu         sync.Mutex
	apps       map[string]*mapper.WorkerApp
	accountApp map[string][]string // account → the apps serving some field of it
	events     map[string]*mapper.Event
	keys       map[string]string // deduplication key → event ID
	deliveries map[string]*mapper.Delivery
	byEvent    map[string][]string
	attempts   map[string][]mapper.Attempt
}

var (
	_ mapper.Store         = (*Store)(nil)
	_ mapper.RouteRecorder = (*Store)(nil)
)

// New returns an empty Store.
func New() *Store {
	return &Store{
		apps:       map[string]*mapper.WorkerApp{},
		accountApp: map[string][]string{},
		events:     map[string]*mapper.Event{},
		keys:       map[string]string{},
		deliveries: map[string]*mapper.Delivery{},
		byEvent:    map[string][]string{},
		attempts:   map[string][]mapper.Attempt{},
	}
}

func copyApp(a *mapper.WorkerApp) *mapper.WorkerApp {
	c := *a
	c.AccountIDs = slices.Clone(a.AccountIDs)
	c.Fields = slices.Clone(a.Fields)
	return &c
}

func copyEvent(e *mapper.Event) *mapper.Event {
	c := *e
	c.Items = slices.Clone(e.Items)
	c.AccountIDs = slices.Clone(e.AccountIDs)
	c.Owners = slices.Clone(e.Owners)
	c.Unroutable = slices.Clone(e.Unroutable)
	c.RoutedAt = clonePtr(e.RoutedAt)
	c.CompletedAt = clonePtr(e.CompletedAt)
	return &c
}

func copyDelivery(d *mapper.Delivery) *mapper.Delivery {
	c := *d
	c.OwnerIDs = slices.Clone(d.OwnerIDs)
	c.CompletedAt = clonePtr(d.CompletedAt)
	return &c
}

func clonePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// CreateApp implements mapper.Store.
func (s *Store) CreateApp(_ context.Context, app *mapper.WorkerApp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if app.ID == "" {
		app.ID = newID("app_")
	}
	if _, ok := s.apps[app.ID]; ok {
		return fmt.Errorf("worker app %s exists: %w", app.ID, mapper.ErrConflict)
	}
	if err := s.checkAccounts(app); err != nil {
		return err
	}
	now := time.Now().UTC()
	if app.CreatedAt.IsZero() {
		app.CreatedAt = now
	}
	if app.UpdatedAt.IsZero() {
		app.UpdatedAt = app.CreatedAt
	}
	s.apps[app.ID] = copyApp(app)
	s.link(app)
	return nil
}

func (s *Store) link(app *mapper.WorkerApp) {
	for _, a := range app.AccountIDs {
		s.accountApp[a] = append(s.accountApp[a], app.ID)
	}
}

func (s *Store) unlink(app *mapper.WorkerApp) {
	for _, a := range app.AccountIDs {
		s.accountApp[a] = slices.DeleteFunc(s.accountApp[a], func(id string) bool { return id == app.ID })
		if len(s.accountApp[a]) == 0 {
			delete(s.accountApp, a)
		}
	}
}

// checkAccounts returns ErrConflict when app would serve an (account,
// field) pair another app serves, or lists an account twice.
func (s *Store) checkAccounts(app *mapper.WorkerApp) error {
	seen := map[string]bool{}
	for _, a := range app.AccountIDs {
		if seen[a] {
			return fmt.Errorf("account %s is listed twice: %w", a, mapper.ErrConflict)
		}
		seen[a] = true
		for _, id := range s.accountApp[a] {
			if id == app.ID {
				continue
			}
			if acc, field, clash := app.Clash(s.apps[id]); clash {
				return &mapper.RouteConflictError{AccountID: acc, Field: field, AppID: id}
			}
		}
	}
	return nil
}

// GetApp implements mapper.Store.
func (s *Store) GetApp(_ context.Context, id string) (*mapper.WorkerApp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return nil, fmt.Errorf("worker app %q: %w", id, mapper.ErrNotFound)
	}
	return copyApp(a), nil
}

// ListApps implements mapper.Store.
func (s *Store) ListApps(context.Context) ([]mapper.WorkerApp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]mapper.WorkerApp, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, *copyApp(a))
	}
	slices.SortFunc(out, func(a, b mapper.WorkerApp) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// UpdateApp implements mapper.Store.
func (s *Store) UpdateApp(_ context.Context, app *mapper.WorkerApp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.apps[app.ID]
	if !ok {
		return fmt.Errorf("worker app %q: %w", app.ID, mapper.ErrNotFound)
	}
	if err := s.checkAccounts(app); err != nil {
		return err
	}
	s.unlink(old)
	app.CreatedAt = old.CreatedAt
	app.UpdatedAt = time.Now().UTC()
	s.apps[app.ID] = copyApp(app)
	s.link(app)
	return nil
}

// DeleteApp implements mapper.Store.
func (s *Store) DeleteApp(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		return fmt.Errorf("worker app %q: %w", id, mapper.ErrNotFound)
	}
	s.unlink(a)
	delete(s.apps, id)
	return nil
}

// AppsForAccounts implements mapper.Store.
func (s *Store) AppsForAccounts(_ context.Context, accountIDs []string) (map[string][]*mapper.WorkerApp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]*mapper.WorkerApp, len(accountIDs))
	for _, acc := range accountIDs {
		for _, id := range s.accountApp[acc] {
			if s.apps[id].Enabled {
				out[acc] = append(out[acc], copyApp(s.apps[id]))
			}
		}
	}
	return out, nil
}

// CreateEvent implements mapper.Store.
func (s *Store) CreateEvent(_ context.Context, ev *mapper.Event) error {
	if ev.ID == "" {
		return fmt.Errorf("event ID must be set by the caller: %w", mapper.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.events[ev.ID]; ok {
		return fmt.Errorf("event %s exists: %w", ev.ID, mapper.ErrConflict)
	}
	ev.MarkDuplicates(func(k string) bool { _, taken := s.keys[k]; return !taken })
	for _, it := range ev.Items {
		if !it.Duplicate {
			s.keys[it.Key] = ev.ID
		}
	}
	s.events[ev.ID] = copyEvent(ev)
	return nil
}

// GetEvent implements mapper.Store.
func (s *Store) GetEvent(_ context.Context, id string) (*mapper.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok {
		return nil, fmt.Errorf("event %q: %w", id, mapper.ErrNotFound)
	}
	return copyEvent(e), nil
}

// ListEvents implements mapper.Store.
func (s *Store) ListEvents(_ context.Context, q mapper.EventQuery) (mapper.EventPage, error) {
	limit := ids.PageLimit(q.Limit)
	after, err := decodeAfter(q.Cursor)
	if err != nil {
		return mapper.EventPage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*mapper.Event
	for _, e := range s.events {
		if s.matches(e, &q) && (after == nil || after.follows(e.ReceivedAt, e.ID)) {
			match = append(match, e)
		}
	}
	slices.SortFunc(match, func(a, b *mapper.Event) int {
		return cmp.Or(b.ReceivedAt.Compare(a.ReceivedAt), strings.Compare(b.ID, a.ID))
	})
	var page mapper.EventPage
	for i, e := range match {
		if i == limit {
			last := match[i-1]
			page.NextCursor = encodeCursor(cursor{last.ReceivedAt, last.ID})
			break
		}
		page.Events = append(page.Events, *copyEvent(e))
	}
	return page, nil
}

func (s *Store) matches(e *mapper.Event, q *mapper.EventQuery) bool {
	switch {
	case q.Status != "" && e.Status != q.Status,
		q.Account != "" && !slices.Contains(e.AccountIDs, q.Account),
		!q.Since.IsZero() && e.ReceivedAt.Before(q.Since),
		!q.Until.IsZero() && !e.ReceivedAt.Before(q.Until):
		return false
	}
	if q.AppID != "" {
		for _, id := range s.byEvent[e.ID] {
			if s.deliveries[id].AppID == q.AppID {
				return true
			}
		}
		return false
	}
	return true
}

type cursor struct {
	at time.Time
	id string
}

// follows reports whether a record at (at, id) comes after the cursor in
// newest-first order.
func (c *cursor) follows(at time.Time, id string) bool {
	if !at.Equal(c.at) {
		return at.Before(c.at)
	}
	return id < c.id
}

func encodeCursor(c cursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.at.UnixNano(), 10) + "|" + c.id))
}

// decodeAfter reads an optional cursor: nil for the first page.
func decodeAfter(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	c, err := decodeCursor(s)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func decodeCursor(s string) (cursor, error) {
	bad := fmt.Errorf("cursor: not one this store issued: %w", mapper.ErrInvalidInput)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	ns, id, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return cursor{}, bad
	}
	return cursor{time.Unix(0, n), id}, nil
}

// ListAttempts implements mapper.Store.
func (s *Store) ListAttempts(_ context.Context, deliveryID string) ([]mapper.Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts[deliveryID]), nil
}

// ClaimEvents implements mapper.Store.
func (s *Store) ClaimEvents(_ context.Context, now time.Time, limit int, lease time.Duration) ([]mapper.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*mapper.Event
	for _, e := range s.events {
		if e.Status == mapper.EventPending && !e.NextAttemptAt.After(now) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *mapper.Event) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), strings.Compare(a.ID, b.ID))
	})
	out := make([]mapper.Event, 0, min(limit, len(due)))
	for _, e := range due[:min(limit, len(due))] {
		e.LeaseToken = newID("")
		e.NextAttemptAt = now.Add(lease)
		out = append(out, *copyEvent(e))
	}
	return out, nil
}

func (s *Store) leasedEvent(ev *mapper.Event) (*mapper.Event, error) {
	e, ok := s.events[ev.ID]
	if !ok {
		return nil, fmt.Errorf("event %q: %w", ev.ID, mapper.ErrNotFound)
	}
	if e.Status != mapper.EventPending || ev.LeaseToken == "" || e.LeaseToken != ev.LeaseToken {
		return nil, fmt.Errorf("event %s: %w", ev.ID, mapper.ErrLeaseLost)
	}
	return e, nil
}

// leasedDelivery returns the stored delivery d names when d holds its
// lease; the caller holds mu.
func (s *Store) leasedDelivery(d *mapper.Delivery) (*mapper.Delivery, error) {
	cur, ok := s.deliveries[d.ID]
	if !ok {
		return nil, fmt.Errorf("delivery %q: %w", d.ID, mapper.ErrNotFound)
	}
	if cur.Status != mapper.DeliveryPending || d.LeaseToken == "" || cur.LeaseToken != d.LeaseToken {
		return nil, fmt.Errorf("delivery %s: %w", d.ID, mapper.ErrLeaseLost)
	}
	return cur, nil
}

// RouteEvent implements mapper.Store.
func (s *Store) RouteEvent(_ context.Context, ev *mapper.Event, deliveries []mapper.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.route(ev, deliveries)
}

// RecordRoute implements mapper.RouteRecorder.
func (s *Store) RecordRoute(_ context.Context, ev *mapper.Event, deliveries []mapper.Delivery, attempts []mapper.Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range attempts {
		if !slices.ContainsFunc(deliveries, func(d mapper.Delivery) bool { return d.ID == a.DeliveryID }) {
			return fmt.Errorf("attempt of delivery %q, which is not in the route: %w", a.DeliveryID, mapper.ErrConflict)
		}
	}
	if err := s.route(ev, deliveries); err != nil {
		return err
	}
	for i := range deliveries {
		s.deliveries[deliveries[i].ID].LeaseToken = ""
	}
	for _, a := range attempts {
		s.attempts[a.DeliveryID] = append(s.attempts[a.DeliveryID], a)
	}
	return nil
}

// route stores a route; the caller holds mu.
func (s *Store) route(ev *mapper.Event, deliveries []mapper.Delivery) error {
	e, err := s.leasedEvent(ev)
	if err != nil {
		return err
	}
	for i := range deliveries {
		if _, ok := s.deliveries[deliveries[i].ID]; ok || deliveries[i].ID == "" {
			return fmt.Errorf("delivery ID %q is empty or exists: %w", deliveries[i].ID, mapper.ErrConflict)
		}
	}
	upd := copyEvent(ev)
	upd.LeaseToken = ""
	upd.Items, upd.Payload, upd.Signature = e.Items, e.Payload, e.Signature
	s.events[ev.ID] = upd
	for i := range deliveries {
		d := copyDelivery(&deliveries[i])
		s.deliveries[d.ID] = d
		s.byEvent[ev.ID] = append(s.byEvent[ev.ID], d.ID)
	}
	return nil
}

// ClaimDeliveries implements mapper.Store.
func (s *Store) ClaimDeliveries(_ context.Context, now time.Time, limit int, lease time.Duration, skipApps []string) ([]mapper.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*mapper.Delivery
	for _, d := range s.deliveries {
		if d.Status == mapper.DeliveryPending && !d.NextAttemptAt.After(now) && !slices.Contains(skipApps, d.AppID) && !s.blockedByOlder(d) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b *mapper.Delivery) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), strings.Compare(a.ID, b.ID))
	})
	out := make([]mapper.Delivery, 0, min(limit, len(due)))
	for _, d := range due[:min(limit, len(due))] {
		d.LeaseToken = newID("")
		d.NextAttemptAt = now.Add(lease)
		c := *copyDelivery(d)
		if c.Original {
			c.Body = s.events[c.EventID].Payload
		}
		out = append(out, c)
	}
	return out, nil
}

// blockedByOlder reports whether an ordered delivery must wait: a
// delivery of an older event to the same app is pending, or an older event
// of one of the app's accounts is not routed yet.
func (s *Store) blockedByOlder(d *mapper.Delivery) bool {
	if !d.Ordered {
		return false
	}
	for _, o := range s.deliveries {
		if o.AppID == d.AppID && o.Status == mapper.DeliveryPending && o.EventID < d.EventID {
			return true
		}
	}
	app, ok := s.apps[d.AppID]
	if !ok {
		return false
	}
	for _, e := range s.events {
		if e.Status == mapper.EventPending && e.ID < d.EventID {
			for _, acc := range e.AccountIDs {
				if slices.Contains(app.AccountIDs, acc) {
					return true
				}
			}
		}
	}
	return false
}

// ReleaseDelivery implements mapper.Store.
func (s *Store) ReleaseDelivery(_ context.Context, d *mapper.Delivery, next time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.leasedDelivery(d)
	if err != nil {
		return err
	}
	cur.NextAttemptAt, cur.LeaseToken = next, ""
	return nil
}

// FindDeliveries implements mapper.Store.
func (s *Store) FindDeliveries(_ context.Context, q mapper.DeliveryQuery) (mapper.DeliveryPage, error) {
	limit := ids.PageLimit(q.Limit)
	after, err := decodeAfter(q.Cursor)
	if err != nil {
		return mapper.DeliveryPage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	match := s.matchDeliveries(q)
	var page mapper.DeliveryPage
	for _, d := range match {
		if after != nil && !after.follows(d.CreatedAt, d.ID) {
			continue
		}
		if len(page.Deliveries) == limit {
			last := page.Deliveries[limit-1]
			page.NextCursor = encodeCursor(cursor{last.CreatedAt, last.ID})
			break
		}
		c := *copyDelivery(d)
		c.Body = nil
		page.Deliveries = append(page.Deliveries, c)
	}
	return page, nil
}

// matchDeliveries returns the deliveries matching q, newest first.
func (s *Store) matchDeliveries(q mapper.DeliveryQuery) []*mapper.Delivery {
	var match []*mapper.Delivery
	for _, d := range s.deliveries {
		switch {
		case q.Status != "" && d.Status != q.Status,
			q.AppID != "" && d.AppID != q.AppID,
			q.EventID != "" && d.EventID != q.EventID,
			!q.Since.IsZero() && d.CreatedAt.Before(q.Since),
			!q.Until.IsZero() && !d.CreatedAt.Before(q.Until):
			continue
		}
		match = append(match, d)
	}
	slices.SortFunc(match, func(a, b *mapper.Delivery) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	return match
}

// replay makes a dead delivery pending again and reopens its event.
func (s *Store) replay(d *mapper.Delivery, now time.Time) {
	d.Status, d.NextAttemptAt, d.CompletedAt, d.LeaseToken = mapper.DeliveryPending, now, nil, ""
	d.AttemptBase, d.CycleStart = d.Attempts, now
	if e, ok := s.events[d.EventID]; ok && e.Status.Terminal() {
		e.Status, e.CompletedAt = mapper.EventDispatched, nil
	}
}

// ReplayDelivery implements mapper.Store.
func (s *Store) ReplayDelivery(_ context.Context, id string, now time.Time) (*mapper.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deliveries[id]
	if !ok {
		return nil, fmt.Errorf("delivery %q: %w", id, mapper.ErrNotFound)
	}
	if d.Status != mapper.DeliveryDead {
		return nil, fmt.Errorf("delivery %s is %s, not dead: %w", id, d.Status, mapper.ErrConflict)
	}
	s.replay(d, now)
	return copyDelivery(d), nil
}

// ReplayEvent implements mapper.Store.
func (s *Store) ReplayEvent(_ context.Context, id string, now time.Time) (*mapper.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok {
		return nil, fmt.Errorf("event %q: %w", id, mapper.ErrNotFound)
	}
	if e.Status != mapper.EventDead && e.Status != mapper.EventUnroutable {
		return nil, fmt.Errorf("event %s is %s, neither dead nor unroutable: %w", id, e.Status, mapper.ErrConflict)
	}
	dead := 0
	for _, did := range s.byEvent[id] {
		if d := s.deliveries[did]; d.Status == mapper.DeliveryDead {
			s.replay(d, now)
			dead++
		}
	}
	// Routing again covers the owners that had no app, and an event whose
	// routing gave up (dead with no dead delivery).
	if len(e.Unroutable) > 0 || dead == 0 {
		e.Status, e.NextAttemptAt, e.CompletedAt, e.LeaseToken, e.LastError = mapper.EventPending, now, nil, "", ""
	}
	return copyEvent(e), nil
}

// ReplayDead implements mapper.Store.
func (s *Store) ReplayDead(_ context.Context, q mapper.DeliveryQuery, now time.Time, _ int) (int64, error) {
	q.Status = mapper.DeliveryDead
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, d := range s.matchDeliveries(q) {
		s.replay(d, now)
		n++
	}
	return n, nil
}

// RecordAttempt implements mapper.Store.
func (s *Store) RecordAttempt(_ context.Context, d *mapper.Delivery, a mapper.Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.leasedDelivery(d)
	if err != nil {
		return err
	}
	cur.Status, cur.Attempts, cur.NextAttemptAt = d.Status, d.Attempts, d.NextAttemptAt
	cur.LastStatusCode, cur.LastError, cur.CompletedAt = d.LastStatusCode, d.LastError, clonePtr(d.CompletedAt)
	cur.LeaseToken = ""
	s.attempts[d.ID] = append(s.attempts[d.ID], a)
	if cur.Status.Terminal() {
		s.settle(cur.EventID)
	}
	return nil
}

// settle closes an event whose deliveries have all ended.
// The event ends when its last delivery did.
func (s *Store) settle(eventID string) {
	var at time.Time
	e, ok := s.events[eventID]
	if !ok || e.Status != mapper.EventDispatched {
		return
	}
	dead := false
	for _, id := range s.byEvent[eventID] {
		d := s.deliveries[id]
		if !d.Status.Terminal() {
			return
		}
		dead = dead || d.Status == mapper.DeliveryDead
		if d.CompletedAt != nil && d.CompletedAt.After(at) {
			at = *d.CompletedAt
		}
	}
	if at.IsZero() {
		at = time.Now().UTC()
	}
	switch {
	case dead:
		e.Status = mapper.EventDead
	case len(e.Unroutable) > 0:
		e.Status = mapper.EventUnroutable
	default:
		e.Status = mapper.EventDelivered
	}
	e.CompletedAt = &at
}

// Ping implements mapper.Store.
func (s *Store) Ping(context.Context) error { return nil }

// Stats implements mapper.Store.
func (s *Store) Stats(_ context.Context, since time.Time) (mapper.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := mapper.Stats{
		EventsByStatus:     map[mapper.EventStatus]int64{},
		DeliveriesByStatus: map[mapper.DeliveryStatus]int64{},
	}
	now := time.Now()
	var oldest time.Time
	var times []time.Duration
	for _, e := range s.events {
		st.EventsByStatus[e.Status]++
		if e.Status == mapper.EventPending {
			st.QueueDepth++
			if oldest.IsZero() || e.ReceivedAt.Before(oldest) {
				oldest = e.ReceivedAt
			}
		}
		if e.Status == mapper.EventDelivered && e.CompletedAt != nil && !e.CompletedAt.Before(since) {
			times = append(times, e.CompletedAt.Sub(e.ReceivedAt))
		}
	}
	for _, d := range s.deliveries {
		st.DeliveriesByStatus[d.Status]++
		if d.Status == mapper.DeliveryPending {
			st.QueueDepth++
			if oldest.IsZero() || d.CreatedAt.Before(oldest) {
				oldest = d.CreatedAt
			}
		}
	}
	if !oldest.IsZero() {
		st.OldestPending = max(now.Sub(oldest), 0)
	}
	if len(times) > 0 {
		slices.Sort(times)
		st.ProcessingP50 = times[(len(times)-1)*50/100]
		st.ProcessingP95 = times[(len(times)-1)*95/100]
	}
	return st, nil
}

// Prune implements mapper.Store.
func (s *Store) Prune(_ context.Context, before time.Time, batch int) (int64, error) {
	if batch < 1 {
		batch = 1000
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, e := range s.events {
		if !e.Status.Terminal() || e.CompletedAt == nil || !e.CompletedAt.Before(before) {
			continue
		}
		for _, did := range s.byEvent[id] {
			delete(s.deliveries, did)
			delete(s.attempts, did)
		}
		delete(s.byEvent, id)
		delete(s.events, id)
		n++
	}
	for k, id := range s.keys {
		if e, ok := s.events[id]; !ok || e.ReceivedAt.Before(before) {
			delete(s.keys, k)
		}
	}
	return n, nil
}
