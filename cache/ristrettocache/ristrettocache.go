// Package ristrettocache is the Mapper's default owner cache: in process,
// bounded by the number of entries, with a TTL per entry, on
// github.com/dgraph-io/ristretto/v2.
//
// A Set is visible to the next Get (the write buffer is flushed before Set
// returns), which costs little because the Mapper writes only on a cache
// miss, and makes the cache behave like the others to its callers.
package ristrettocache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache is a string-to-string cache with TTLs. It is safe for concurrent use.
type Cache struct {
	c *ristretto.Cache[string, string]
}

// Option configures a Cache.
type Option func(*settings)

type settings struct{ maxEntries int64 }

// WithMaxEntries bounds the cache. Default 100,000 entries (a few MB).
func WithMaxEntries(n int64) Option { return func(s *settings) { s.maxEntries = n } }

// New returns a Cache. Close it to release its goroutines.
func New(opts ...Option) (*Cache, error) {
	s := settings{maxEntries: 100_000}
	for _, o := range opts {
		o(&s)
	}
	if s.maxEntries < 1 {
		return nil, fmt.Errorf("ristrettocache: max entries %d must be positive", s.maxEntries)
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, string]{
		// Ristretto's advice: ten counters per entry it should hold.
		NumCounters: 10 * s.maxEntries,
		MaxCost:     s.maxEntries,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("ristrettocache: %w", err)
	}
	return &Cache{c: c}, nil
}

// Get returns the value of key and whether it was found.
func (c *Cache) Get(_ context.Context, key string) (string, bool, error) {
	v, ok := c.c.Get(key)
	return v, ok, nil
}

// ErrTTL is returned by Set for a TTL that is not positive.
var ErrTTL = errors.New("ristrettocache: TTL must be positive")

// Set stores value under key for ttl. The cache may decline to keep a new
// key when it is full of keys used more often; that is not an error.
func (c *Cache) Set(_ context.Context, key, value string, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrTTL
	}
	c.c.SetWithTTL(key, value, 1, ttl)
	c.c.Wait()
	return nil
}

// Close stops the cache's background goroutines.
func (c *Cache) Close() error {
	c.c.Close()
	return nil
}
