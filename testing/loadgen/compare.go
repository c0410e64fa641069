package main

// -compare measures a change: the same load on two builds of the reference
// server, before (-compare) and after (-server, or this module built now),
// in pairs whose order alternates, each run on an empty database of its
// own. This machine's speed drifts by ±20 % over minutes, more than most
// changes are worth; two runs side by side drift together, so the ratio
// within each pair says more than two runs an hour apart, and the spread
// of the pairs' ratios says how far to trust their mean.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// CompareReport is -compare's output.
type CompareReport struct {
	Machine  string        `json:"machine"`
	Store    string        `json:"store"`
	Mode     string        `json:"mode"`
	Duration time.Duration `json:"duration_ns"`
	Before   string        `json:"before"` // the binaries
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
	if o.pairs < 1 || o.conns < 1 || o.duration <= 0 || o.rate < 0 {
		return errors.New("-pairs, -conns and -duration must be positive, -rate not negative")
	}
	if _, err := os.Stat(o.compare); err != nil {
		return fmt.Errorf("-compare: %w", err)
	}
	tmp, after, err := serverBinary(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rep := CompareReport{Machine: machine(), Store: o.store(), Duration: o.duration, Before: o.compare, After: after, StartedAt: time.Now().UTC(),
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
		for _, which := range []bool{p.AfterFirst, !p.AfterFirst} { // true: after
			bin, name, res := o.compare, "before", &p.Before
			if which {
				bin, name, res = after, "after", &p.After
			}
			fmt.Fprintf(os.Stderr, "pair %d of %d, %s…\n", i+1, o.pairs, name)
			dir := filepath.Join(tmp, fmt.Sprintf("run-%d-%s", i+1, name))
			if *res, err = compareRun(o, bin, dir, workers, db); err != nil {
				return fmt.Errorf("pair %d, %s: %w", i+1, name, err)
			}
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

// compareRun runs bin on an empty database, SQLite's in dir or a
// PostgreSQL database made for the run, and drives it as measure does.
func compareRun(o options, bin, dir string, w *workers, db *dbCPU) (Result, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Result{}, err
	}
	if o.databaseURL != "" {
		var err error
		if o.databaseURL, err = freshDatabase(o.databaseURL, true); err != nil {
			return Result{}, err
		}
		defer func() {
			if _, err := freshDatabase(o.databaseURL, false); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
			}
		}()
	}
	url, srv, err := startServer(o, bin, dir)
	if err != nil {
		return Result{}, err
	}
	defer stopServer(srv)
	for _, a := range []struct{ name, url, account string }{{"a", w.a.URL, accountA}, {"b", w.b.URL, accountB}} {
		if _, err := register(url, a.name, a.url, []string{a.account}, o.appLimit); err != nil {
			return Result{}, err
		}
	}
	warm := o
	warm.duration = 2 * time.Second
	drive(warm, url, w)
	use0, db0 := processUsage(srv.Process.Pid), db.read()
	res := drive(o, url, w)
	perWebhook(&res, processUsage(srv.Process.Pid).sub(use0), db.read()-db0)
	res.Target = bin
	res.PeakRSSBytes = peakRSS(srv.Process.Pid)
	return res, nil
}

// freshDatabase drops the database "<name>_compare" beside the one of
// dsn (that one itself, when its name has the suffix already) and, with
// create, makes it again, empty; it returns its DSN.
func freshDatabase(dsn string, create bool) (string, error) {
	u, err := neturl.Parse(dsn)
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if !strings.HasSuffix(name, "_compare") {
		name += "_compare"
	}
	u.Path = "/postgres"
	sqldb, err := sql.Open("pgx", u.String())
	if err != nil {
		return "", err
	}
	defer sqldb.Close()
	qs := []string{`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`}
	if create {
		qs = append(qs, `CREATE DATABASE "`+name+`"`)
	}
	for _, q := range qs {
		if _, err := sqldb.ExecContext(context.Background(), q); err != nil {
			return "", fmt.Errorf("a database for the run: %w", err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
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
	fmt.Fprintf(tw, "machine: %s\nstore: %s; %s; %s each, after 2s of warm-up, on an empty database\nbefore: %s\nafter:  %s\n\n",
		r.Machine, r.Store, r.Mode, r.Duration, r.Before, r.After)
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
