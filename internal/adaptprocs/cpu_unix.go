//go:build unix

package adaptprocs

import (
	"fmt"
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used, its threads' user and
// system time.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
