package ristrettocache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/ristrettocache"
)

var _ mapper.Cache = (*ristrettocache.Cache)(nil)

func TestCache(t *testing.T) {
	c, err := ristrettocache.New(ristrettocache.WithMaxEntries(100))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, ok, err := c.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("empty cache: ok %v err %v", ok, err)
	}
	if err := c.Set(ctx, "k", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Get(ctx, "k"); !ok || v != "v" || err != nil {
		t.Fatalf("after Set: %q %v %v", v, ok, err)
	}
	if err := c.Set(ctx, "short", "v", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Expiry is checked against the clock: wait past the TTL.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := c.Get(ctx, "short"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry outlived its TTL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Set(ctx, "k", "v", 0); !errors.Is(err, ristrettocache.ErrTTL) {
		t.Errorf("zero TTL: %v", err)
	}
	if _, err := ristrettocache.New(ristrettocache.WithMaxEntries(0)); err == nil {
		t.Error("zero entries accepted")
	}
}
