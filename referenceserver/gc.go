package main

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/chatico/mapper/internal/adaptprocs"
)

// The reference server collects garbage half as often as Go's default
// (GOGC=200 instead of 100): a webhook allocates about 30 KB that dies
// young, and the live heap is a few MB, so the collector's work is paid
// per webhook while the heap it spares is small. Measured in
// docs/performance.md (round nine): 6–12 % less CPU a webhook flat out,
// 2–3 % at 500/s, a few MB more peak RSS.
//
// A larger GOGC lets garbage grow further past a burst's live bodies, so
// in a container with a memory limit and no GOMEMLIMIT the server sets a
// soft limit of nine tenths of the container's: the collector then works
// harder near the limit instead of letting the kernel kill the process.

// defaultGCPercent is GOGC when the environment does not set it (read
// with the rest of the configuration, in readLimits).
const defaultGCPercent = 200

// setProcs applies GOMAXPROCS: fixed when procs is set, and otherwise
// adapted to the load until stop is called, one thread while the server
// is near idle sparing the cost of waking goroutines on idle cores
// (docs/performance.md, round eighteen). It returns the most threads the
// server will use.
func setProcs(ctx context.Context, procs int, logger *slog.Logger) (most int, stop func()) {
	if procs > 0 {
		runtime.GOMAXPROCS(procs)
		return procs, func() {}
	}
	most = runtime.GOMAXPROCS(0) // before the adapter lowers it
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = adaptprocs.Run(ctx, adaptprocs.WithLogger(logger)) })
	return most, func() { cancel(); wg.Wait() }
}

// softMemoryLimit returns the soft memory limit the server sets: nine
// tenths of the container's memory limit under cgroupRoot, when the
// process environment has no GOMEMLIMIT; 0 when there is none to set.
// getenv is the process environment, env the same with the .env file read.
func softMemoryLimit(getenv, env func(string) string, cgroupRoot string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil // the runtime applied it
	}
	if env("GOMEMLIMIT") != "" {
		// The runtime reads it once, before main, from the process's own
		// environment; a value only in the file would be ignored.
		return 0, errors.New("GOMEMLIMIT must be set in the process environment, not the .env file: the Go runtime reads it at start")
	}
	return containerMemory(cgroupRoot) / 10 * 9, nil
}

// setGC sets GOGC to percent and, when limit is positive, the soft memory
// limit, and returns the soft limit in force (0 when there is none).
func setGC(percent int, limit int64) int64 {
	debug.SetGCPercent(percent)
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 { // -1 reads it
		return n
	}
	return 0
}

// containerMemory returns the memory limit of the cgroup the process
// runs in, as a container sees it at root (cgroup v2's memory.max, or
// v1's memory.limit_in_bytes); 0 when there is none or it cannot be read.
func containerMemory(root string) int64 {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max", or v1's unlimited: a page-rounded maximum int64.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}
