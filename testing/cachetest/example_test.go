package cachetest_test

import (
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/cache/ristrettocache"
	"github.com/chatico/mapper/testing/cachetest"
)

// A Cache's test runs the suite with a fresh cache for every case.
func ExampleRun() {
	_ = func(t *testing.T) { // in your cache's _test.go: func TestConformance(t *testing.T)
		cachetest.Run(t, func(t *testing.T) mapper.Cache {
			c, err := ristrettocache.New()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		})
	}
}
