package main

// -compare measures a change: the same load on two builds of the reference
// server, before (-compare) and after (-server, or this module built now),
// in pairs whose order alternates, each run on an empty database of its
// own. This machine's speed drifts by ±20 % over minutes, more than most
// changes are worth; two runs side by side drift together, so the ratio
// within each pair says more than two runs an hour apart, and the spread
// of the pairs' ratios says how far to trust their mean. With -slice,
// a pair is one run of both servers at once, the load going to each in
// turn slice by slice: the two then ride the same drift.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"
)

// CompareReport is -compare's output.
type CompareReport struct {
	Machine  string        `json:"machine"`
	Store    string        `json:"store"`
	Mode     string        `json:"mode"`
	Duration time.Duration `json:"duration_ns"`
	Slice    time.Duration `json:"slice_ns,omitempty"` // -slice: both at once, in turns
	Before   string        `json:"before"`             // the binaries
	After    string        `json:"after"`
	Pairs    []ComparePair `json:"pairs"`
	// The pairs' ratios (after / before): their geometric mean and range.
	PerSecond Spread    `json:"requests_per_second_ratio"`
	CPU       Spread    `json:"cpu_per_webhook_ratio"` // the server's, with the database's
	AckP99    Spread    `json:"ack_p99_ratio"`
	StartedAt time.Time `json:"started_at"`
}

// ComparePair is one pair of runs, AfterFirst when the order was swapped.
type ComparePair struct {
	Before     Result `json:"before"`
	After      Result `json:"after"`
	AfterFirst bool   `json:"after_first"`
}

// Spread is a set of ratios' geometric mean, least and greatest.
type Spread struct {
	Mean float64 `json:"geometric_mean"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// cpu is a run's CPU per webhook, the database's included.
func (r Result) cpu() float64 { return (r.CPU + r.DBCPU).Seconds() }

func runCompare(o options) error {
	if o.pairs < 1 || o.conns < 1 || o.duration <= 0 || o.rate < 0 || o.slice < 0 || o.slice > 0 && o.slice*2 > o.duration {
		return errors.New("-pairs, -conns and -duration must be positive, -rate and -slice not negative, and -duration at least two slices")
	}
	if _, err := os.Stat(o.compare); err != nil {
		return fmt.Errorf("-compare: %w", err)
	}
	tmp, after, err := serverBinary(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rep := CompareReport{Machine: machine(), Store: o.store(), Duration: o.duration, Slice: o.slice, Before: o.compare, After: after, StartedAt: time.Now().UTC(),
		Mode: fmt.Sprintf("flat out, %d connections", o.conns)}
	if o.rate > 0 {
		rep.Mode = fmt.Sprintf("%d webhooks/s, %d connections", o.rate, o.conns)
	}
	workers := newWorkers()
	defer workers.close()
	db, err := newDBCPU(o)
	if err != nil {
		return err
	}
	for i := range o.pairs {
		p := ComparePair{AfterFirst: i%2 == 1}
		bins := []string{o.compare, after}
		if p.AfterFirst {
			bins = []string{after, o.compare}
		}
		var res []Result // in bins' order
		if o.slice > 0 {
			fmt.Fprintf(os.Stderr, "pair %d of %d, in slices of %s…\n", i+1, o.pairs, o.slice)
			if res, err = runBuilds(o, bins, filepath.Join(tmp, fmt.Sprintf("run-%d", i+1)), workers, db); err != nil {
				return fmt.Errorf("pair %d: %w", i+1, err)
			}
		} else {
			for j, bin := range bins {
				fmt.Fprintf(os.Stderr, "pair %d of %d, run %d…\n", i+1, o.pairs, j+1)
				one, err := runBuilds(o, []string{bin}, filepath.Join(tmp, fmt.Sprintf("run-%d-%d", i+1, j+1)), workers, db)
				if err != nil {
					return fmt.Errorf("pair %d, run %d: %w", i+1, j+1, err)
				}
				res = append(res, one[0])
			}
		}
		p.Before, p.After = res[0], res[1]
		if p.AfterFirst {
			p.Before, p.After = res[1], res[0]
		}
		rep.Pairs = append(rep.Pairs, p)
	}
	rep.PerSecond = spread(rep.Pairs, func(r Result) float64 { return r.PerSecond })
	rep.CPU = spread(rep.Pairs, Result.cpu)
	rep.AckP99 = spread(rep.Pairs, func(r Result) float64 { return r.AckP99.Seconds() })
	printCompare(os.Stdout, rep)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(o.jsonPath, b, 0o644)
	}
	return nil
}

// runBuilds runs the builds at once, each on an empty database, and
// drives them in turns of o.slice (one build: the whole time). Each
// process's CPU is its own; on PostgreSQL (one server for all) each
// database's backends are counted to the build that uses it, and the
// shared processes' time in proportion (dbSplit).
func runBuilds(o options, bins []string, dir string, w *workers, db *dbCPU) ([]Result, error) {
	urls := make([]string, len(bins))
	srvs := make([]*exec.Cmd, len(bins))
	databases := make([]string, len(bins))
	for i, bin := range bins {
		suffix := "_compare"
		if len(bins) > 1 {
			suffix += strconv.Itoa(i)
		}
		url, srv, done, err := startEmpty(o, bin, fmt.Sprintf("%s-%d", dir, i), suffix, w)
		if err != nil {
			return nil, err
		}
		defer done()
		urls[i], srvs[i] = url, srv
		if o.databaseURL != "" {
			name, _ := databaseName(o.databaseURL) // startEmpty parsed it
			databases[i] = name + suffix
		}
	}
	warm := o
	warm.duration = 2 * time.Second
	driveEach(warm, urls, o.slice, w)
	use0 := make([]usage, len(srvs))
	for i, srv := range srvs {
		use0[i] = processUsage(srv.Process.Pid)
	}
	split := newDBSplit(databases, db.snapshot())
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		if db == nil {
			return // SQLite: the server's own CPU holds it
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				split.add(db.snapshot())
			case <-stop:
				return
			}
		}
	}()
	res := driveEach(o, urls, o.slice, w)
	close(stop)
	<-sampled
	split.add(db.snapshot())
	dbShare := split.shares()
	for i := range res {
		perWebhook(&res[i], processUsage(srvs[i].Process.Pid).sub(use0[i]), dbShare[i])
		res[i].Target = bins[i]
		res[i].PeakRSSBytes = peakRSS(srvs[i].Process.Pid)
	}
	return res, nil
}

// startEmpty starts bin on an empty database, SQLite's in dir or a
// PostgreSQL database named for the run with suffix, and registers the
// worker apps; done stops it and drops the database.
func startEmpty(o options, bin, dir, suffix string, w *workers) (url string, srv *exec.Cmd, done func(), err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", nil, nil, err
	}
	drop := func() {}
	if o.databaseURL != "" {
		base := o.databaseURL
		if o.databaseURL, err = freshDatabase(base, suffix, true); err != nil {
			return "", nil, nil, err
		}
		drop = func() {
			if _, err := freshDatabase(base, suffix, false); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
			}
		}
	}
	if url, srv, err = startServer(o, bin, dir); err != nil {
		drop()
		return "", nil, nil, err
	}
	done = func() { stopServer(srv); drop() }
	if err := registerApps(url, w, o.appLimit); err != nil {
		done()
		return "", nil, nil, err
	}
	return url, srv, done, nil
}

// freshDatabase drops the database named as dsn's with suffix beside it
// and, with create, makes it again, empty; it returns its DSN.
func freshDatabase(dsn, suffix string, create bool) (string, error) {
	name, err := databaseName(dsn)
	if err != nil {
		return "", err
	}
	name += suffix
	qs := []string{`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`}
	if create {
		qs = append(qs, `CREATE DATABASE "`+name+`"`)
	}
	if dsn, err = besideDatabase(dsn, name, qs...); err != nil {
		return "", fmt.Errorf("a database for the run: %w", err)
	}
	return dsn, nil
}

// spread is the spread of the pairs' ratios of key, after over before.
func spread(pairs []ComparePair, key func(Result) float64) Spread {
	s := Spread{Min: math.Inf(1), Max: math.Inf(-1)}
	logs, n := 0.0, 0
	for _, p := range pairs {
		b, a := key(p.Before), key(p.After)
		if b <= 0 || a <= 0 {
			continue
		}
		r := a / b
		logs += math.Log(r)
		n++
		s.Min, s.Max = min(s.Min, r), max(s.Max, r)
	}
	if n == 0 {
		return Spread{}
	}
	s.Mean = math.Exp(logs / float64(n))
	return s
}

func printCompare(w io.Writer, r CompareReport) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	each := "each build " + r.Duration.String()
	if r.Slice > 0 {
		each = fmt.Sprintf("both builds at once for %s, in turns of %s", r.Duration, r.Slice)
	}
	fmt.Fprintf(tw, "machine: %s\nstore: %s; %s; %s, after 2s of warm-up, each on an empty database\nbefore: %s\nafter:  %s\n\n",
		r.Machine, r.Store, r.Mode, each, r.Before, r.After)
	fmt.Fprintln(tw, "PAIR\tFIRST\tBEFORE REQ/S\tCPU/WEBHOOK\tACK p99\tAFTER REQ/S\tCPU/WEBHOOK\tACK p99\tREQ/S ×\tCPU ×\tERRORS, UNDELIVERED")
	for i, p := range r.Pairs {
		first := "before"
		if p.AfterFirst {
			first = "after"
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.3fms\t%s\t%.0f\t%.3fms\t%s\t%.3f\t%.3f\t%d/%d, %d/%d\n", i+1, first,
			p.Before.PerSecond, p.Before.cpu()*1000, ms(p.Before.AckP99), p.After.PerSecond, p.After.cpu()*1000, ms(p.After.AckP99),
			p.After.PerSecond/p.Before.PerSecond, p.After.cpu()/p.Before.cpu(),
			sumErrors(p.Before.Errors), sumErrors(p.After.Errors), p.Before.Undelivered, p.After.Undelivered)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nafter / before, geometric mean of %d pairs (least–greatest):\n", len(r.Pairs))
	for _, s := range []struct {
		name string
		s    Spread
	}{{"webhooks/s", r.PerSecond}, {"CPU per webhook", r.CPU}, {"ack p99", r.AckP99}} {
		fmt.Fprintf(w, "  %-16s %.3f (%.3f–%.3f)\n", s.name, s.s.Mean, s.s.Min, s.s.Max)
	}
}
