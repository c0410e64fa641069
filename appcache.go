package mapper

import (
	"context"
	"errors"
	"sync"
	"time"
)

// appCache keeps worker apps, and which app serves which account, for a
// short time, so that routing and delivering an event cost no app lookup
// in the store under load. The admin routes clear it on every change they
// make; a change made through another replica is seen within the TTL.
type appCache struct {
	ttl       time.Duration
	now       func() time.Time
	mu        sync.Mutex
	gen       uint64
	byID      map[string]cachedApp
	byAccount map[string]cachedAccount
}

type cachedApp struct {
	app *WorkerApp // nil: not found
	at  time.Time
}

type cachedAccount struct {
	appIDs []string // none: no enabled app
	at     time.Time
}

func newAppCache(ttl time.Duration, now func() time.Time) *appCache {
	return &appCache{ttl: ttl, now: now, byID: map[string]cachedApp{}, byAccount: map[string]cachedAccount{}}
}

// invalidate forgets everything, and stops fetches already under way from
// storing what they read.
func (c *appCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byID)
	clear(c.byAccount)
}

func copyApp(a *WorkerApp) *WorkerApp {
	if a == nil {
		return nil
	}
	c := *a
	c.AccountIDs = append([]string(nil), a.AccountIDs...)
	c.Fields = append([]string(nil), a.Fields...)
	return &c
}

// getApp is Store.GetApp through the cache.
func (m *Mapper) getApp(ctx context.Context, id string) (*WorkerApp, error) {
	c := m.appCache
	if c.ttl <= 0 {
		return m.store.GetApp(ctx, id)
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.byID[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		if e.app == nil {
			return nil, ErrNotFound
		}
		return copyApp(e.app), nil
	}
	app, err := m.store.GetApp(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.byID[id] = cachedApp{app: copyApp(app), at: now}
	}
	c.mu.Unlock()
	return app, err
}

// appsForAccounts is Store.AppsForAccounts through the cache.
func (m *Mapper) appsForAccounts(ctx context.Context, accounts []string) (map[string][]*WorkerApp, error) {
	c := m.appCache
	if c.ttl <= 0 {
		return m.store.AppsForAccounts(ctx, accounts)
	}
	now := c.now()
	out := make(map[string][]*WorkerApp, len(accounts))
	var missing []string
	c.mu.Lock()
	gen := c.gen
	for _, acc := range accounts {
		e, ok := c.byAccount[acc]
		if !ok || now.Sub(e.at) >= c.ttl {
			missing = append(missing, acc)
			continue
		}
		var apps []*WorkerApp
		for _, id := range e.appIDs {
			a, ok := c.byID[id]
			if !ok || a.app == nil || now.Sub(a.at) >= c.ttl {
				apps = nil
				missing = append(missing, acc)
				break
			}
			apps = append(apps, copyApp(a.app))
		}
		if len(apps) > 0 {
			out[acc] = apps
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	found, err := m.store.AppsForAccounts(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, acc := range missing {
		apps := found[acc]
		if len(apps) > 0 {
			out[acc] = apps
		}
		if c.gen != gen {
			continue
		}
		e := cachedAccount{at: now}
		for _, app := range apps {
			e.appIDs = append(e.appIDs, app.ID)
			c.byID[app.ID] = cachedApp{app: copyApp(app), at: now}
		}
		c.byAccount[acc] = e
	}
	return out, nil
}
