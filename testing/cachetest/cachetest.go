// Package cachetest is the conformance suite every mapper.Cache must pass:
//
//	func TestConformance(t *testing.T) {
//		cachetest.Run(t, func(t *testing.T) mapper.Cache { return newEmptyCache(t) })
//	}
//
// It checks what the Mapper relies on: a miss is ("", false, nil), a value
// is read back right after Set, a later Set replaces it, entries expire
// after their TTL, a TTL that is not positive is refused, keys of any bytes
// are kept apart, and concurrent use is safe.
package cachetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatico/mapper"
)

// Run runs every check against caches made by newCache, a new empty one per
// subtest.
func Run(t *testing.T, newCache func(t *testing.T) mapper.Cache) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, mapper.Cache)
	}{
		{"miss", miss},
		{"read_your_write", readYourWrite},
		{"overwrite", overwrite},
		{"expiry", expiry},
		{"bad_ttl", badTTL},
		{"keys_apart", keysApart},
		{"concurrent", concurrent},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newCache(t)) })
	}
}

var ctx = context.Background()

func get(t *testing.T, c mapper.Cache, key string) (string, bool) {
	t.Helper()
	v, ok, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

func set(t *testing.T, c mapper.Cache, key, value string, ttl time.Duration) {
	t.Helper()
	if err := c.Set(ctx, key, value, ttl); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func miss(t *testing.T, c mapper.Cache) {
	if v, ok := get(t, c, "absent"); ok || v != "" {
		t.Errorf("a miss returned (%q, %v)", v, ok)
	}
}

func readYourWrite(t *testing.T, c mapper.Cache) {
	set(t, c, "mapper:owner:1", "17841400000000001", time.Hour)
	if v, ok := get(t, c, "mapper:owner:1"); !ok || v != "17841400000000001" {
		t.Errorf("after Set: (%q, %v)", v, ok)
	}
	set(t, c, "empty", "", time.Hour)
	if v, ok := get(t, c, "empty"); !ok || v != "" {
		t.Errorf("an empty value: (%q, %v), want (\"\", true)", v, ok)
	}
}

func overwrite(t *testing.T, c mapper.Cache) {
	set(t, c, "k", "one", time.Hour)
	set(t, c, "k", "two", time.Hour)
	if v, _ := get(t, c, "k"); v != "two" {
		t.Errorf("after a second Set: %q", v)
	}
}

func expiry(t *testing.T, c mapper.Cache) {
	set(t, c, "short", "v", 50*time.Millisecond)
	set(t, c, "long", "v", time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := get(t, c, "short"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an entry outlived its 50ms TTL by 5s")
		}
		time.Sleep(10 * time.Millisecond) // waiting on the cache's clock, not on other code
	}
	if _, ok := get(t, c, "long"); !ok {
		t.Error("an entry expired with the other's TTL")
	}
}

func badTTL(t *testing.T, c mapper.Cache) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := c.Set(ctx, "k", "v", ttl); err == nil {
			t.Errorf("Set with TTL %v succeeded", ttl)
		}
	}
	if _, ok := get(t, c, "k"); ok {
		t.Error("a refused Set was stored")
	}
}

func keysApart(t *testing.T, c mapper.Cache) {
	keys := []string{"a", "A", "a ", "a:b", "ä", "😍", "k\x00z", "k\nz"}
	for i, k := range keys {
		set(t, c, k, fmt.Sprint(i), time.Hour)
	}
	for i, k := range keys {
		if v, ok := get(t, c, k); !ok || v != fmt.Sprint(i) {
			t.Errorf("key %q: (%q, %v), want %d", k, v, ok, i)
		}
	}
}

func concurrent(t *testing.T, c mapper.Cache) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := fmt.Sprintf("k%d", i%10)
				if err := c.Set(ctx, k, fmt.Sprint(g), time.Hour); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := c.Get(ctx, k); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range 10 {
		if _, ok := get(t, c, fmt.Sprintf("k%d", i)); !ok {
			t.Errorf("k%d lost", i)
		}
	}
}
