//go:build !unix

package adaptprocs

import (
	"errors"
	"time"
)

// processCPU is not read here: Run leaves the runtime's default.
func processCPU() (time.Duration, error) {
	return 0, errors.ErrUnsupported
}
