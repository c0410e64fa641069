package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProcessUsage: this process's own usage grows by what it does: the
// writes it makes count as system calls, a thread that sleeps as
// switches, and a busy loop as CPU.
func TestProcessUsage(t *testing.T) {
	pid := os.Getpid()
	before := processUsage(pid)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 100 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		time.Sleep(time.Millisecond)
	}
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	d := processUsage(pid).sub(before)
	if d.calls < 100 || d.switches < 10 || d.cpu <= 0 {
		t.Errorf("usage grew by %d calls, %d switches and %v of CPU; want at least 100, 10 and some", d.calls, d.switches, d.cpu)
	}
}
