package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serveRelay is the child process of the relay baseline: for each webhook
// it POSTs the body to sink and answers 200 once the sink has, 502 if it
// did not. That is this job without durability: the limit to compare the
// Mapper with.
func serveRelay(sink string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 15 * time.Second}
	serveChild(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, sink, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
}

// child starts this program again in one of its serving modes and returns
// the address it serves on, and a function that stops it.
func child(args ...string) (string, *exec.Cmd, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, nil, err
	}
	cmd := exec.Command(self, args...)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, nil, err
	}
	stop := func() { stdin.Close(); _ = cmd.Wait() }
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, nil, fmt.Errorf("%s: %w", args[0], err)
	}
	return "http://" + strings.TrimSpace(addr), cmd, stop, nil
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100
// on every architecture Go supports there.
const clockTicks = 100

// processCPU is the CPU time a process has used, user and system, all its
// threads included.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// usage is what a process has used so far.
type usage struct {
	cpu time.Duration
	// calls are its read and write system calls (/proc/<pid>/io's syscr
	// and syscw: read, write and their kin, on files and sockets alike;
	// futex, epoll and fsync are not counted).
	calls int64
	// switches are its threads' context switches, voluntary (a thread
	// that waits) and not (one preempted); a thread that ended takes its
	// own away, and the Go runtime's rarely end.
	switches int64
}

func (u usage) sub(v usage) usage {
	return usage{cpu: u.cpu - v.cpu, calls: u.calls - v.calls, switches: u.switches - v.switches}
}

// processUsage reads a process's usage from /proc.
func processUsage(pid int) usage {
	u := usage{cpu: processCPU(pid), calls: procFields(fmt.Sprintf("/proc/%d/io", pid), "syscr", "syscw")}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/[0-9]*/status", pid))
	for _, t := range tasks {
		// A thread that ended meanwhile reads as 0.
		u.switches += procFields(t, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
	}
	return u
}

// procFields adds up the named fields of a /proc file of "name: value"
// lines (a size's " kB" left out); 0 when the file cannot be read.
func procFields(path string, names ...string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var sum int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if slices.Contains(names, k) {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			sum += n
		}
	}
	return sum
}

// dbCPU reads the CPU time of the database the server runs on, when it is
// not in process: the container's cgroup (-pg-container), which counts the
// backends that came and went too; else the postgres processes on the
// machine that live through the run. SQLite's share is in the server's own.
type dbCPU struct {
	cgroup string // cpu.stat of the container's cgroup
}

func newDBCPU(o options) (*dbCPU, error) {
	if o.databaseURL == "" {
		return nil, nil
	}
	if o.pgContainer == "" {
		return &dbCPU{}, nil
	}
	out, err := exec.Command("docker", "inspect", "-f", "{{.Id}}", o.pgContainer).Output()
	if err != nil {
		return nil, fmt.Errorf("docker inspect %s: %w", o.pgContainer, err)
	}
	id := strings.TrimSpace(string(out))
	// cgroup v2 (systemd's or Docker's own layout), then v1's cpuacct.
	for _, p := range []string{"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat", "/sys/fs/cgroup/docker/" + id + "/cpu.stat",
		"/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage"} {
		if _, err := os.Stat(p); err == nil {
			return &dbCPU{cgroup: p}, nil
		}
	}
	return &dbCPU{}, nil // no cgroup file found: count processes
}

func (d *dbCPU) read() time.Duration {
	if d == nil {
		return 0
	}
	if t, ok := d.cgroupCPU(); ok {
		return t
	}
	var total time.Duration
	for _, pid := range postgresPIDs() {
		total += processCPU(pid)
	}
	return total
}

// cgroupCPU is the CPU time of the container's cgroup; false without one
// or when it cannot be read.
func (d *dbCPU) cgroupCPU() (time.Duration, bool) {
	if d.cgroup == "" {
		return 0, false
	}
	b, err := os.ReadFile(d.cgroup)
	if err != nil {
		return 0, false
	}
	if strings.HasSuffix(d.cgroup, "cpuacct.usage") {
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return time.Duration(ns), true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, true
		}
	}
	return 0, false
}

// postgresPIDs are the postgres processes on the machine.
func postgresPIDs() []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		if comm, err := os.ReadFile(dir + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			pids = append(pids, pid)
		}
	}
	return pids
}

// dbSnapshot is the database's CPU time at one moment, in all and by
// process, for split.
type dbSnapshot struct {
	total time.Duration
	procs map[int]dbProcess
}

// dbProcess is a PostgreSQL process: its CPU time, and the database its
// title names ("" for the shared ones: the WAL writer, the checkpointer…).
type dbProcess struct {
	cpu      time.Duration
	database string
}

// snapshot reads the database's CPU time, and each of its processes'.
// They are the container's (its cgroup's cgroup.procs), whose total is
// the cgroup's; or, without one, every postgres process on the machine,
// whose total is theirs (as read counts it).
func (d *dbCPU) snapshot() dbSnapshot {
	s := dbSnapshot{procs: map[int]dbProcess{}}
	if d == nil {
		return s
	}
	total, inCgroup := d.cgroupCPU()
	var pids []int
	if inCgroup {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(d.cgroup), "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	} else {
		pids = postgresPIDs()
	}
	for _, pid := range pids {
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // ended meanwhile
		}
		p := dbProcess{cpu: processCPU(pid), database: titleDatabase(string(title))}
		s.procs[pid] = p
		if !inCgroup {
			total += p.cpu
		}
	}
	s.total = total
	return s
}

// titleDatabase is the database of a PostgreSQL backend, from its title
// ("postgres: user database host state"); "" for any other process. An
// autovacuum worker names its database too, but is left shared: it comes
// when a table has changed enough, so in a run of 20 s it may vacuum one
// build's tables and not yet the other's, which both wrote alike.
func titleDatabase(title string) string {
	rest, ok := strings.CutPrefix(strings.TrimRight(title, "\x00 "), "postgres: ")
	if !ok {
		return ""
	}
	if f := strings.Fields(rest); len(f) >= 3 && (strings.Contains(f[2], "(") || f[2] == "[local]") {
		return f[1]
	}
	return ""
}

// dbSplit divides the database's CPU time between databases, from
// snapshots taken through a run: each gets what its backends used, and the
// rest (the shared processes, and what backends used since the last
// snapshot before they ended) in proportion, or evenly when no backend used
// any. Snapshots must come often: a server's pool closes the connections
// it has no use for, and each took its backend's time with it (taken only
// at the start and end, half of one build's time went to the other).
type dbSplit struct {
	databases   []string
	first, last dbSnapshot
	own         []time.Duration
}

func newDBSplit(databases []string, first dbSnapshot) *dbSplit {
	return &dbSplit{databases: databases, first: first, last: first, own: make([]time.Duration, len(databases))}
}

// add counts what each backend used since the last snapshot (all of it
// for one that started since, or whose PID serves another database now).
func (a *dbSplit) add(s dbSnapshot) {
	for pid, p := range s.procs {
		i := slices.Index(a.databases, p.database)
		if i < 0 {
			continue
		}
		used := p.cpu
		if q, ok := a.last.procs[pid]; ok && q.database == p.database {
			used -= q.cpu
		}
		a.own[i] += used
	}
	a.last = s
}

// shares is each database's time, from the first snapshot to the last.
func (a *dbSplit) shares() []time.Duration {
	var owned time.Duration
	for _, d := range a.own {
		owned += d
	}
	shared := max(a.last.total-a.first.total-owned, 0)
	out := make([]time.Duration, len(a.own))
	for i, d := range a.own {
		out[i] = d
		if owned > 0 {
			out[i] += time.Duration(float64(shared) * float64(d) / float64(owned))
		} else {
			out[i] += shared / time.Duration(len(out))
		}
	}
	return out
}
