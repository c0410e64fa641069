package main

import (
	"os"
	"path/filepath"
	"slices"
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

// TestTitleDatabase: the database is read from backends' titles, and from
// no other process's (autovacuum workers' are shared).
func TestTitleDatabase(t *testing.T) {
	for title, want := range map[string]string{
		"postgres: mapper mapper_compare0 172.17.0.1(54012) idle\x00":            "mapper_compare0",
		"postgres: mapper mapper_compare1 172.17.0.1(54012) idle in transaction": "mapper_compare1",
		"postgres: mapper mapper [local] SELECT\x00":                             "mapper",
		"postgres: autovacuum worker mapper_compare1\x00":                        "",
		"postgres: autovacuum launcher\x00":                                      "",
		"postgres: walwriter\x00":                                                "",
		"postgres: logical replication launcher\x00":                             "",
		"postgres\x00-D\x00/var/lib/postgresql/data\x00":                         "",
		"psql\x00-U\x00mapper\x00":                                               "",
	} {
		if got := titleDatabase(title); got != want {
			t.Errorf("titleDatabase(%q) = %q; want %q", title, got, want)
		}
	}
}

// TestDBSplit: each database gets its backends' time, counted from the
// snapshot before (or from nothing for a backend that started since, or
// whose PID now serves another database), and the rest in proportion.
func TestDBSplit(t *testing.T) {
	ms := time.Millisecond
	dbs := []string{"a", "b"}
	first := dbSnapshot{total: 1000 * ms, procs: map[int]dbProcess{
		1: {100 * ms, ""}, 2: {200 * ms, "a"}, 3: {300 * ms, "b"}, 4: {50 * ms, "a"}, 7: {10 * ms, "b"},
	}}
	a := newDBSplit(dbs, first)
	a.add(dbSnapshot{total: 1200 * ms, procs: map[int]dbProcess{
		1: {100 * ms, ""},
		2: {250 * ms, "a"}, // +50
		3: {300 * ms, "b"},
		4: {50 * ms, "a"},
		7: {60 * ms, "b"}, // +50, then it ends
	}})
	a.add(dbSnapshot{total: 1700 * ms, procs: map[int]dbProcess{
		1: {200 * ms, ""},  // shared
		2: {400 * ms, "a"}, // +150
		3: {400 * ms, "b"}, // +100
		4: {20 * ms, "b"},  // reused by b since: 20 from nothing
		5: {80 * ms, "a"},  // new: +80
		6: {40 * ms, "c"},  // a database not compared: shared
	}})
	// a owns 280, b 170; the rest, 700-450 = 250, goes 28:17.
	got := a.shares()
	if want := []time.Duration{280*ms + 250*ms*28/45, 170*ms + 250*ms*17/45}; !slices.Equal(got, want) {
		t.Errorf("shares = %v; want %v", got, want)
	}
	idle := newDBSplit(dbs, first)
	idle.add(dbSnapshot{total: 1100 * ms, procs: first.procs})
	if got, want := idle.shares(), []time.Duration{50 * ms, 50 * ms}; !slices.Equal(got, want) {
		t.Errorf("shares with no backend busy = %v; want %v (evenly)", got, want)
	}
	if got := newDBSplit(dbs, dbSnapshot{}).shares(); !slices.Equal(got, []time.Duration{0, 0}) {
		t.Errorf("shares of nothing = %v", got)
	}
}
