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
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/ids"
	"github.com/chatico/mapper/internal/storekit"
)

// Store is an in-memory mapper.Store.
type Store struct {
	mu         sync.Mutex
	apps       map[string]*mapper.WorkerApp
	routes     map[string]map[string]mapper.Route // account → app ID → route
	events     map[string]*mapper.Event
	keys       map[string]string // deduplication key → event ID
	deliveries map[string]*mapper.Delivery
	byEvent    map[string][]string
	attempts   map[string][]mapper.Attempt
}

var _ mapper.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{
		apps:       map[string]*mapper.WorkerApp{},
		routes:     map[string]map[string]mapper.Route{},
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
	stored := copyApp(app)
	stored.AccountIDs = nil
	put, err := storekit.AccountRoutes(app.AccountIDs, nil)
	if err != nil {
		return err
	}
	if err := s.checkRoutes(stored, put); err != nil {
		return err
	}
	now := time.Now().UTC()
	if app.CreatedAt.IsZero() {
		app.CreatedAt = now
	}
	if app.UpdatedAt.IsZero() {
		app.UpdatedAt = app.CreatedAt
	}
	stored.CreatedAt, stored.UpdatedAt = app.CreatedAt, app.UpdatedAt
	s.apps[app.ID] = stored
	s.putRoutes(app.ID, put)
	return nil
}

// checkRoutes returns every clash of app's routes put (and, with the
// app's fields, of its other routes) with other apps' routes; the caller
// holds mu.
func (s *Store) checkRoutes(app *mapper.WorkerApp, put []mapper.Route) error {
	var errs []error
	for _, r := range put {
		r.AppID = app.ID
		for id, o := range s.routes[r.AccountID] {
			if field, clash := app.Clash(r, s.apps[id], o); clash {
				errs = append(errs, &mapper.RouteConflictError{AccountID: r.AccountID, Field: field, AppID: id})
			}
		}
	}
	return errors.Join(errs...)
}

// putRoutes stores routes of an app; the caller holds mu.
func (s *Store) putRoutes(appID string, put []mapper.Route) {
	for _, r := range put {
		r.AppID, r.Fields = appID, slices.Clone(r.Fields)
		if s.routes[r.AccountID] == nil {
			s.routes[r.AccountID] = map[string]mapper.Route{}
		}
		s.routes[r.AccountID][appID] = r
	}
}

// dropRoutes removes routes of an app; the caller holds mu.
func (s *Store) dropRoutes(appID string, accounts []string) {
	for _, a := range accounts {
		delete(s.routes[a], appID)
		if len(s.routes[a]) == 0 {
			delete(s.routes, a)
		}
	}
}

// routesOf returns an app's routes by account; the caller holds mu.
func (s *Store) routesOf(appID string) map[string]mapper.Route {
	out := map[string]mapper.Route{}
	for acc, byApp := range s.routes {
		if r, ok := byApp[appID]; ok {
			out[acc] = r
		}
	}
	return out
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
	stored := copyApp(app)
	stored.AccountIDs = nil
	current := s.routesOf(app.ID)
	keep := slices.Collect(maps.Keys(current))
	if app.AccountIDs != nil {
		keep = app.AccountIDs
	}
	put, err := storekit.AccountRoutes(keep, current)
	if err != nil {
		return err
	}
	if err := s.checkRoutes(stored, put); err != nil {
		return err
	}
	app.CreatedAt, app.UpdatedAt = old.CreatedAt, time.Now().UTC()
	stored.CreatedAt, stored.UpdatedAt = app.CreatedAt, app.UpdatedAt
	s.apps[app.ID] = stored
	s.dropRoutes(app.ID, slices.Collect(maps.Keys(current)))
	s.putRoutes(app.ID, put)
	return nil
}

// DeleteApp implements mapper.Store.
func (s *Store) DeleteApp(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[id]; !ok {
		return fmt.Errorf("worker app %q: %w", id, mapper.ErrNotFound)
	}
	s.dropRoutes(id, slices.Collect(maps.Keys(s.routesOf(id))))
	delete(s.apps, id)
	return nil
}

// SetRoutes implements mapper.Store.
func (s *Store) SetRoutes(_ context.Context, appID string, put []mapper.Route, remove []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	app, ok := s.apps[appID]
	if !ok {
		return fmt.Errorf("worker app %q: %w", appID, mapper.ErrNotFound)
	}
	if err := s.checkRoutes(app, put); err != nil {
		return err
	}
	s.dropRoutes(appID, remove)
	s.putRoutes(appID, put)
	return nil
}

// ListRoutes implements mapper.Store.
func (s *Store) ListRoutes(_ context.Context, q mapper.RouteQuery) (mapper.Page[mapper.Route], error) {
	limit := ids.PageLimit(q.Limit)
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []mapper.Route
	add := func(byApp map[string]mapper.Route) {
		for _, r := range byApp {
			if q.AppID != "" && r.AppID != q.AppID {
				continue
			}
			if app := s.apps[r.AppID]; q.Field != "" && !serves(app, r, q.Field) {
				continue
			}
			r.Fields = slices.Clone(r.Fields)
			all = append(all, r)
		}
	}
	if q.Accounts != nil {
		for _, a := range q.Accounts {
			add(s.routes[a])
		}
	} else {
		for _, byApp := range s.routes {
			add(byApp)
		}
	}
	slices.SortFunc(all, func(a, b mapper.Route) int {
		return cmp.Or(strings.Compare(a.AppID, b.AppID), strings.Compare(a.AccountID, b.AccountID))
	})
	all = slices.CompactFunc(all, func(a, b mapper.Route) bool { return a.AppID == b.AppID && a.AccountID == b.AccountID })
	if q.Cursor != "" {
		app, acc, err := storekit.DecodeRouteCursor(q.Cursor)
		if err != nil {
			return mapper.Page[mapper.Route]{}, err
		}
		i, _ := slices.BinarySearchFunc(all, [2]string{app, acc}, func(r mapper.Route, k [2]string) int {
			return cmp.Or(strings.Compare(r.AppID, k[0]), strings.Compare(r.AccountID, k[1]))
		})
		for i < len(all) && all[i].AppID == app && all[i].AccountID == acc {
			i++
		}
		all = all[i:]
	}
	var page mapper.Page[mapper.Route]
	if len(all) > limit {
		all = all[:limit]
		last := all[limit-1]
		page.NextCursor = storekit.EncodeRouteCursor(last.AppID, last.AccountID)
	}
	page.Items = all
	return page, nil
}

// serves reports whether route r of app takes field.
func serves(app *mapper.WorkerApp, r mapper.Route, field string) bool {
	probe := mapper.WorkerApp{ID: "\x00probe", Fields: []string{field}}
	_, clash := app.Clash(r, &probe, mapper.Route{AccountID: r.AccountID})
	return clash
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
func (s *Store) ListEvents(_ context.Context, q mapper.EventQuery) (mapper.Page[mapper.Event], error) {
	limit := ids.PageLimit(q.Limit)
	after, err := decodeAfter(q.Cursor)
	if err != nil {
		return mapper.Page[mapper.Event]{}, err
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
	var page mapper.Page[mapper.Event]
	for i, e := range match {
		if i == limit {
			last := match[i-1]
			page.NextCursor = encodeCursor(cursor{last.ReceivedAt, last.ID})
			break
		}
		page.Items = append(page.Items, *copyEvent(e))
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
func (s *Store) RouteEvent(_ context.Context, ev *mapper.Event, deliveries []mapper.Delivery, attempts []mapper.Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range attempts {
		if !slices.ContainsFunc(deliveries, func(d mapper.Delivery) bool { return d.ID == a.DeliveryID }) {
			return fmt.Errorf("attempt of delivery %q, which is not in the route: %w", a.DeliveryID, mapper.ErrConflict)
		}
		if slices.ContainsFunc(attempts[:i], func(b mapper.Attempt) bool { return b.DeliveryID == a.DeliveryID }) {
			return fmt.Errorf("two attempts of delivery %q in one route: %w", a.DeliveryID, mapper.ErrConflict)
		}
	}
	if err := s.route(ev, deliveries); err != nil {
		return err
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
	for _, e := range s.events {
		if e.Status == mapper.EventPending && e.ID < d.EventID {
			for _, acc := range e.AccountIDs {
				if _, ok := s.routes[acc][d.AppID]; ok {
					return true
				}
			}
		}
	}
	return false
}

// FindDeliveries implements mapper.Store.
func (s *Store) FindDeliveries(_ context.Context, q mapper.DeliveryQuery) (mapper.Page[mapper.Delivery], error) {
	limit := ids.PageLimit(q.Limit)
	after, err := decodeAfter(q.Cursor)
	if err != nil {
		return mapper.Page[mapper.Delivery]{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	match := s.matchDeliveries(q)
	var page mapper.Page[mapper.Delivery]
	for _, d := range match {
		if after != nil && !after.follows(d.CreatedAt, d.ID) {
			continue
		}
		if len(page.Items) == limit {
			last := page.Items[limit-1]
			page.NextCursor = encodeCursor(cursor{last.CreatedAt, last.ID})
			break
		}
		c := *copyDelivery(d)
		c.Body = nil
		if q.Attempts {
			c.History = slices.Clone(s.attempts[d.ID])
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// matchDeliveries returns the deliveries matching q, newest first.
func (s *Store) matchDeliveries(q mapper.DeliveryQuery) []*mapper.Delivery {
	var match []*mapper.Delivery
	for _, d := range s.deliveries {
		switch {
		case q.ID != "" && d.ID != q.ID,
			q.Status != "" && d.Status != q.Status,
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

// Reopen implements mapper.Store.
func (s *Store) Reopen(_ context.Context, was mapper.EventStatus, ev *mapper.Event, deliveries []mapper.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[ev.ID]
	if !ok {
		return fmt.Errorf("event %q: %w", ev.ID, mapper.ErrNotFound)
	}
	if e.Status != was {
		return fmt.Errorf("event %s is %s now, not %s: %w", ev.ID, e.Status, was, mapper.ErrConflict)
	}
	for i := range deliveries {
		d, ok := s.deliveries[deliveries[i].ID]
		if !ok || d.EventID != ev.ID || d.Status != mapper.DeliveryDead {
			return fmt.Errorf("delivery %s of event %s is not dead: %w", deliveries[i].ID, ev.ID, mapper.ErrConflict)
		}
	}
	for i := range deliveries {
		n, d := &deliveries[i], s.deliveries[deliveries[i].ID]
		d.Status, d.NextAttemptAt, d.AttemptBase, d.CycleStart = n.Status, n.NextAttemptAt, n.AttemptBase, n.CycleStart
		d.CompletedAt, d.LeaseToken = clonePtr(n.CompletedAt), ""
	}
	e.Status, e.NextAttemptAt, e.LastError, e.CompletedAt, e.LeaseToken = ev.Status, ev.NextAttemptAt, ev.LastError, clonePtr(ev.CompletedAt), ""
	return nil
}

// RecordAttempt implements mapper.Store.
func (s *Store) RecordAttempt(_ context.Context, d *mapper.Delivery, a *mapper.Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.leasedDelivery(d)
	if err != nil {
		return err
	}
	cur.Status, cur.Attempts, cur.NextAttemptAt = d.Status, d.Attempts, d.NextAttemptAt
	cur.LastStatusCode, cur.LastError, cur.CompletedAt = d.LastStatusCode, d.LastError, clonePtr(d.CompletedAt)
	cur.LeaseToken = ""
	if a != nil {
		s.attempts[d.ID] = append(s.attempts[d.ID], *a)
	}
	if e, ok := s.events[cur.EventID]; ok && cur.Status.Terminal() {
		all := make([]mapper.Delivery, 0, len(s.byEvent[e.ID]))
		for _, id := range s.byEvent[e.ID] {
			all = append(all, *s.deliveries[id])
		}
		e.Settle(all)
	}
	return nil
}

// ExtendLeases moves the end of the leases with these tokens to until, for
// work still pending under them.
func (s *Store) ExtendLeases(_ context.Context, tokens []string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := make(map[string]bool, len(tokens))
	for _, t := range tokens {
		if t != "" {
			held[t] = true
		}
	}
	for _, e := range s.events {
		if e.Status == mapper.EventPending && held[e.LeaseToken] {
			e.NextAttemptAt = until
		}
	}
	for _, d := range s.deliveries {
		if d.Status == mapper.DeliveryPending && held[d.LeaseToken] {
			d.NextAttemptAt = until
		}
	}
	return nil
}

// Ping reports that the store can take writes; it always can.
func (s *Store) Ping(context.Context) error { return nil }

// Stats reports the live part of the store, as bunstore's does: counts of
// pending, dispatched and dead rows, and percentiles of at most the 1,000
// most recent delivered events.
func (s *Store) Stats(_ context.Context, since time.Time) (mapper.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := mapper.Stats{
		EventsByStatus:     map[mapper.EventStatus]int64{mapper.EventPending: 0, mapper.EventDispatched: 0, mapper.EventDead: 0},
		DeliveriesByStatus: map[mapper.DeliveryStatus]int64{mapper.DeliveryPending: 0, mapper.DeliveryDead: 0},
	}
	now := time.Now()
	var oldest time.Time
	type done struct{ at, took time.Time }
	var recent []done
	for _, e := range s.events {
		if _, live := st.EventsByStatus[e.Status]; live {
			st.EventsByStatus[e.Status]++
		}
		if e.Status == mapper.EventPending {
			st.QueueDepth++
			if oldest.IsZero() || e.ReceivedAt.Before(oldest) {
				oldest = e.ReceivedAt
			}
		}
		if e.Status == mapper.EventDelivered && e.CompletedAt != nil && !e.CompletedAt.Before(since) {
			recent = append(recent, done{*e.CompletedAt, e.ReceivedAt})
		}
	}
	for _, d := range s.deliveries {
		if _, live := st.DeliveriesByStatus[d.Status]; live {
			st.DeliveriesByStatus[d.Status]++
		}
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
	slices.SortFunc(recent, func(a, b done) int { return b.at.Compare(a.at) })
	times := make([]time.Duration, 0, min(len(recent), 1000))
	for _, d := range recent[:min(len(recent), 1000)] {
		times = append(times, d.at.Sub(d.took))
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
		if _, ok := s.events[id]; !ok {
			delete(s.keys, k) // a key goes with the event that owns it
		}
	}
	return n, nil
}
