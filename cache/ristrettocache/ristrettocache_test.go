package ristrettocache_test

import (
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/ristrettocache"
	"github.com/chatico/mapper/testing/cachetest"
)

var _ mapper.Cache = (*ristrettocache.Cache)(nil)

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) mapper.Cache {
		c, err := ristrettocache.New(ristrettocache.WithMaxEntries(1000))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}

func TestOptions(t *testing.T) {
	if _, err := ristrettocache.New(ristrettocache.WithMaxEntries(0)); err == nil {
		t.Error("zero entries accepted")
	}
}
