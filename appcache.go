package mapper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chatico/mapper/internal/ids"
)

// appCache keeps the worker apps, and the routes of the accounts routing
// asked about, for a short time, so that routing and delivering an event
// cost no store read under load, however many routes there are: apps are
// few and read whole; routes are read per account, by key. The admin routes
// clear it on every change they make; a change made through another replica
// or straight through the Store is seen within the TTL (one second by
// default).
type appCache struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	gen    uint64
	apps   map[string]*WorkerApp // nil: not read yet
	appsAt time.Time
	routes map[string]cachedRoutes
	swept  int // len(routes) after the last sweep of stale entries
}

type cachedRoutes struct {
	routes []Route // none: no app serves the account
	at     time.Time
}

func newAppCache(ttl time.Duration, now func() time.Time) *appCache {
	return &appCache{ttl: ttl, now: now, routes: map[string]cachedRoutes{}}
}

// invalidate forgets everything, and stops fetches already under way from
// storing what they read.
func (c *appCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.apps = nil
	clear(c.routes)
	c.swept = 0
}

// forgetAccounts forgets the routes of some accounts, after a change of
// them: apps and other accounts stay cached.
func (c *appCache) forgetAccounts(accounts []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, a := range accounts {
		delete(c.routes, a)
	}
}

func copyApp(a *WorkerApp) *WorkerApp {
	c := *a
	c.AccountIDs = slices.Clone(a.AccountIDs)
	c.Fields = slices.Clone(a.Fields)
	return &c
}

// allApps returns every app by ID, from the cache while it is fresh. The
// map is shared: callers copy what they hand out.
func (m *Mapper) allApps(ctx context.Context) (map[string]*WorkerApp, error) {
	c := m.appCache
	now := c.now()
	c.mu.Lock()
	apps, at, gen := c.apps, c.appsAt, c.gen
	c.mu.Unlock()
	if apps != nil && now.Sub(at) < c.ttl {
		return apps, nil
	}
	list, err := m.store.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	apps = make(map[string]*WorkerApp, len(list))
	for i := range list {
		apps[list[i].ID] = &list[i]
	}
	c.mu.Lock()
	if c.gen == gen && c.ttl > 0 {
		c.apps, c.appsAt = apps, now
	}
	c.mu.Unlock()
	return apps, nil
}

// getApp returns one app, through the cache.
func (m *Mapper) getApp(ctx context.Context, id string) (*WorkerApp, error) {
	apps, err := m.allApps(ctx)
	if err != nil {
		return nil, err
	}
	app, ok := apps[id]
	if !ok {
		return nil, fmt.Errorf("worker app %q: %w", id, ErrNotFound)
	}
	return copyApp(app), nil
}

// appsForAccounts maps each account to the enabled apps serving some
// field of it, each app's Fields being those its route serves; accounts
// no enabled app serves are absent.
func (m *Mapper) appsForAccounts(ctx context.Context, accounts []string) (map[string][]*WorkerApp, error) {
	apps, err := m.allApps(ctx)
	if err != nil {
		return nil, err
	}
	routes, err := m.routesOf(ctx, accounts)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]*WorkerApp, len(routes))
	for acc, rs := range routes {
		for _, r := range rs {
			app, ok := apps[r.AppID]
			if !ok || !app.Enabled {
				continue
			}
			a := copyApp(app)
			a.Fields = slices.Clone(app.fields(r))
			out[acc] = append(out[acc], a)
		}
	}
	return out, nil
}

// routesOf returns the routes of each account, through the cache.
func (m *Mapper) routesOf(ctx context.Context, accounts []string) (map[string][]Route, error) {
	c := m.appCache
	now := c.now()
	out := make(map[string][]Route, len(accounts))
	var missing []string
	c.mu.Lock()
	gen := c.gen
	for _, acc := range accounts {
		if e, ok := c.routes[acc]; ok && now.Sub(e.at) < c.ttl {
			out[acc] = e.routes
			continue
		}
		missing = append(missing, acc)
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	found, err := m.readRoutes(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, acc := range missing {
		out[acc] = found[acc]
		if c.gen == gen && c.ttl > 0 {
			c.routes[acc] = cachedRoutes{routes: found[acc], at: now}
		}
	}
	c.sweep(now)
	return out, nil
}

// sweep drops stale routes once the cache has doubled since the last
// sweep, so that it holds about the accounts seen within a TTL; the caller
// holds mu.
func (c *appCache) sweep(now time.Time) {
	if len(c.routes) < 1024 || len(c.routes) < 2*c.swept {
		return
	}
	for acc, e := range c.routes {
		if now.Sub(e.at) >= c.ttl {
			delete(c.routes, acc)
		}
	}
	c.swept = len(c.routes)
}

// readRoutes reads the routes of the accounts from the store, a page of
// accounts at a time.
func (m *Mapper) readRoutes(ctx context.Context, accounts []string) (map[string][]Route, error) {
	out := make(map[string][]Route, len(accounts))
	for chunk := range slices.Chunk(accounts, ids.MaxPageLimit) {
		q := RouteQuery{Accounts: chunk, Limit: ids.MaxPageLimit}
		for {
			page, err := m.store.ListRoutes(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, r := range page.Items {
				out[r.AccountID] = append(out[r.AccountID], r)
			}
			if page.NextCursor == "" {
				break
			}
			if q.Cursor == page.NextCursor {
				return nil, errors.New("store: ListRoutes repeated its cursor")
			}
			q.Cursor = page.NextCursor
		}
	}
	return out, nil
}
