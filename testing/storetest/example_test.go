package storetest_test

import (
	"testing"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/storage/memstore"
	"github.com/chatico/mapper/testing/storetest"
)

// A Store's test runs the suite with a fresh store for every case.
func ExampleRun() {
	_ = func(t *testing.T) { // in your store's _test.go: func TestConformance(t *testing.T)
		storetest.Run(t, func(t *testing.T) mapper.Store { return memstore.New() })
	}
}
