// Package rediscache is a mapper.Cache in Redis (go-redis v9), for
// replicas that should share owner lookups: one replica's Graph API call
// serves them all.
//
// Every operation has a short timeout of its own (100 ms by default), so
// a slow or unreachable Redis costs routing little: the Mapper treats a
// cache error as a miss and asks the resolver, and never fails a webhook
// because of its cache.
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is a string cache in Redis. It is safe for concurrent use.
type Cache struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	owned   bool
}

// Option configures a Cache.
type Option func(*Cache)

// WithPrefix prefixes every key, so that several applications can share
// one Redis database. Default "".
func WithPrefix(p string) Option { return func(c *Cache) { c.prefix = p } }

// WithTimeout bounds each operation. Default 100 ms.
func WithTimeout(d time.Duration) Option { return func(c *Cache) { c.timeout = d } }

// New wraps a client the caller owns (Close leaves it open).
func New(client redis.UniversalClient, opts ...Option) *Cache {
	c := &Cache{client: client, timeout: 100 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Open connects to a redis:// or rediss:// URL. It does not wait for the
// server: a Redis that is down at start is only a cache miss.
func Open(url string, opts ...Option) (*Cache, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("rediscache: %w", errors.New(redactURLError(err.Error())))
	}
	o.DialTimeout = 500 * time.Millisecond
	o.ReadTimeout = 250 * time.Millisecond
	o.WriteTimeout = 250 * time.Millisecond
	o.MaxRetries = 1
	c := New(redis.NewClient(o), opts...)
	c.owned = true
	return c, nil
}

// Get returns the value of key and whether it was found.
func (c *Cache) Get(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, err := c.client.Get(ctx, c.prefix+key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("rediscache: get: %w", err)
	}
	return v, true, nil
}

// ErrTTL is returned by Set for a TTL below one millisecond, the
// resolution of Redis expiries.
var ErrTTL = errors.New("rediscache: TTL must be at least 1ms")

// Set stores value under key for ttl.
func (c *Cache) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return ErrTTL
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.client.Set(ctx, c.prefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("rediscache: set: %w", err)
	}
	return nil
}

// Ping checks that Redis answers.
func (c *Cache) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.client.Ping(ctx).Err()
}

// Close closes the client when Open created it.
func (c *Cache) Close() error {
	if c.owned {
		return c.client.Close()
	}
	return nil
}

// redactURLError drops what looks like a password from a URL parse error.
func redactURLError(s string) string {
	const n = 200
	if len(s) > n {
		s = s[:n]
	}
	return "invalid Redis URL (" + firstWord(s) + ")"
}

func firstWord(s string) string {
	for i, r := range s {
		if r == ':' {
			return s[:i]
		}
	}
	return s
}
