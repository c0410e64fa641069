// Command loadgen measures the reference server under load, over loopback
// only, against a baseline measured in the same run.
//
//	go run ./testing/loadgen                          # SQLite, flat out, 8 connections, 10 s
//	go run ./testing/loadgen -rate 1000 -duration 60s # a fixed rate (open loop)
//	go run ./testing/loadgen -database-url postgres://… -json result.json
//	go run ./testing/loadgen -onboard 100000          # routes at scale (onboard.go)
//	go run ./testing/loadgen -faults kill,term,app-down # faults under load (faults.go)
//	go run ./testing/loadgen -history 10000000        # a week of history (history.go)
//
// It builds the reference server, starts it as a child process on a
// temporary SQLite file (or the given PostgreSQL database), starts two fake
// worker apps, and sends signed webhooks of realistic size and mix: single
// comments for either account, batches that mix both, messages, and Meta's
// retries of earlier webhooks. It reports ingest requests/s, ack latency,
// delivery lag (from the 200 Meta got to the worker app's receipt), errors
// by kind, the idle lag of single webhooks on a quiet system, each
// target's CPU time, read and write system calls and context switches per
// webhook (from /proc), and its peak RSS. The worker apps are registered with max_concurrency
// 64 (-app-concurrency), as an operator would set it for an app that takes
// a thousand webhooks a second; at the default of 8, an app that answers in
// a few milliseconds on a busy machine caps its own throughput. The
// baseline is the same client against a bare
// net/http handler in a child process that reads the body and answers 200;
// the report gives the ratios. Latencies of a fixed rate are measured from
// the time each request was due, so a stalled server cannot hide its
// backlog (no coordinated omission).
//
// Every address it uses is on 127.0.0.1, and it stops by itself.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/chatico/mapper/testing/mappertest"
)

const (
	secret     = "loadgen-meta-app-secret"
	adminToken = "loadgen-admin-token"
	accountA   = "17841400000000001"
	accountB   = "17841400000000002"
)

type options struct {
	duration    time.Duration
	conns       int
	rate        int
	appLimit    int
	databaseURL string
	server      string
	jsonPath    string
	onboard     int
	faults      string
	rounds      int
	pgContainer string
	cpuProfile  string
	history     int64
	prune       int64
	pruneRate   int
	keep        string
	compare     string // the build to compare with (see compare.go)
	pairs       int
	slice       time.Duration
	serverLog   io.Writer // the server's stderr, when not this process's
	pprofAddr   string    // set for the server when cpuProfile is
	retention   string    // the server's RETENTION, when set
	logLevel    string    // the server's LOG_LEVEL (default warn)
}

// store names the database the server runs on.
func (o options) store() string {
	if o.databaseURL != "" {
		return "postgres"
	}
	return "sqlite"
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve-baseline" {
		serveBaseline()
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "-serve-relay" {
		serveRelay(os.Args[2])
		return
	}
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	flag.IntVar(&o.conns, "conns", 8, "connections (concurrent senders)")
	flag.IntVar(&o.rate, "rate", 0, "webhooks per second in all (0: flat out)")
	flag.IntVar(&o.appLimit, "app-concurrency", 64, "max_concurrency of the two worker apps (0: the Mapper's default, 8)")
	flag.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL for the server (default: a temporary SQLite file)")
	flag.StringVar(&o.server, "server", "", "reference server binary (default: built from this module)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the result as JSON to this file")
	flag.IntVar(&o.onboard, "onboard", 0, "instead of a load run, onboard this many accounts into one app through the API (see onboard.go)")
	flag.StringVar(&o.faults, "faults", "", "instead of a load run, inject faults under load: kill, term, replica-kill, app-down, db-down (comma-separated; see faults.go)")
	flag.IntVar(&o.rounds, "rounds", 3, "kill and term rounds of -faults")
	flag.StringVar(&o.pgContainer, "pg-container", "", "the Docker container of -database-url, which -faults db-down stops and starts; its CPU is counted as the database's")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the reference server under load to this file")
	flag.Int64Var(&o.history, "history", 0, "instead of a load run, measure with this many events of history (see history.go)")
	flag.Int64Var(&o.prune, "prune", -1, "of -history, how many are beyond the retention and pruned under load (default a tenth, at most 1,000,000)")
	flag.IntVar(&o.pruneRate, "prune-rate", 500, "webhooks per second of -history's runs with and without pruning")
	flag.StringVar(&o.keep, "keep", "", "of -history on SQLite, move the database into this directory when the run ends")
	flag.StringVar(&o.compare, "compare", "", "instead of a load run, compare -server (default: built from this module) with this earlier build: the same load in pairs (see compare.go)")
	flag.IntVar(&o.pairs, "pairs", 4, "of -compare, how many pairs of runs, their order alternating")
	flag.DurationVar(&o.slice, "slice", 0, "of -compare, run both builds at once, the load going to each in turns this long (0: one after the other)")
	flag.Parse()
	if o.prune < 0 {
		o.prune = min(o.history/10, 1_000_000)
	}
	do := run
	switch {
	case o.history > 0:
		do = runHistory
	case o.onboard > 0:
		do = runOnboard
	case o.faults != "":
		do = runFaults
	case o.compare != "":
		do = runCompare
	}
	if err := do(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// serveBaseline is the child process of the baseline: a bare handler that
// reads the body and answers 200.
func serveBaseline() {
	serveChild(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
}

// serveChild serves h as a child process of the load generator: it prints
// its address, then serves until its standard input closes.
func serveChild(h http.Handler) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	_ = http.Serve(ln, h)
}

// Result is what one run measured.
type Result struct {
	Target       string         `json:"target"`
	Requests     int64          `json:"requests"`
	PerSecond    float64        `json:"requests_per_second"`
	AckP50       time.Duration  `json:"ack_p50_ns"`
	AckP95       time.Duration  `json:"ack_p95_ns"`
	AckP99       time.Duration  `json:"ack_p99_ns"`
	LagP50       time.Duration  `json:"delivery_lag_p50_ns,omitempty"`
	LagP95       time.Duration  `json:"delivery_lag_p95_ns,omitempty"`
	LagP99       time.Duration  `json:"delivery_lag_p99_ns,omitempty"`
	Delivered    int            `json:"delivered,omitempty"`
	Undelivered  int            `json:"undelivered,omitempty"`
	Errors       map[string]int `json:"errors"`
	PeakRSSBytes int64          `json:"peak_rss_bytes"`
	// CPU is the target's CPU time per webhook acknowledged, from the
	// first request until the last delivery; DBCPU the database's, when
	// it runs in its own processes.
	CPU   time.Duration `json:"cpu_per_webhook_ns"`
	DBCPU time.Duration `json:"db_cpu_per_webhook_ns,omitempty"`
	// Calls are the target's read and write system calls per webhook
	// acknowledged, Switches its threads' context switches (see usage):
	// where a webhook's CPU goes at a moderate rate, waking threads and
	// writing small commits, more than its work in user space.
	Calls    float64 `json:"syscalls_per_webhook"`
	Switches float64 `json:"context_switches_per_webhook"`
	// PeakAnonBytes is the most anonymous memory (heap, stacks) the
	// target held: PeakRSSBytes also counts the pages of files it maps,
	// which for SQLite is its database, up to mmap_size, shared with the
	// kernel's page cache.
	PeakAnonBytes int64 `json:"peak_anon_bytes"`
}

// Report is the whole output.
type Report struct {
	Machine  string        `json:"machine"`
	Store    string        `json:"store"`
	Mode     string        `json:"mode"`
	Duration time.Duration `json:"duration_ns"`
	Baseline Result        `json:"baseline"`
	Relay    Result        `json:"relay"`
	Mapper   Result        `json:"mapper"`
	IdleLag  []int64       `json:"idle_lag_ns"`
	Ratio    float64       `json:"ingest_ratio"`
	AckRatio float64       `json:"ack_p99_ratio"`
	// RelayRatio is the Mapper's ingest over the relay's: what durability
	// costs.
	RelayRatio float64   `json:"relay_ratio"`
	StartedAt  time.Time `json:"started_at"`
}

func run(o options) error {
	if o.conns < 1 || o.duration <= 0 || o.rate < 0 {
		return errors.New("-conns and -duration must be positive, -rate not negative")
	}
	tmp, bin, err := serverBinary(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rep := Report{Machine: machine(), Store: o.store(), Duration: o.duration, StartedAt: time.Now().UTC(), Mode: fmt.Sprintf("flat out, %d connections", o.conns)}
	if o.rate > 0 {
		rep.Mode = fmt.Sprintf("%d webhooks/s, %d connections", o.rate, o.conns)
	}

	if o.cpuProfile != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		o.pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
	}
	if rep.Baseline, err = runBaseline(o); err != nil {
		return err
	}
	// The same worker apps serve the relay and the Mapper.
	workers := newWorkers()
	defer workers.close()
	if rep.Relay, err = runRelay(o, workers); err != nil {
		return err
	}

	// The reference server.
	url, srv, err := startServer(o, bin, tmp)
	if err != nil {
		return err
	}
	defer stopServer(srv)
	if err := registerApps(url, workers, o.appLimit); err != nil {
		return err
	}
	if rep.IdleLag, err = idleLag(url, workers); err != nil {
		return err
	}
	db, err := newDBCPU(o)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "mapper…")
	profiled := profile(o)
	use0, db0 := processUsage(srv.Process.Pid), db.read()
	anon := watchAnon(srv.Process.Pid)
	rep.Mapper = drive(o, url, workers)
	rep.Mapper.PeakAnonBytes = anon()
	if err := <-profiled; err != nil {
		return err
	}
	perWebhook(&rep.Mapper, processUsage(srv.Process.Pid).sub(use0), db.read()-db0)
	rep.Mapper.Target = "reference server (" + rep.Store + ")"
	rep.Mapper.PeakRSSBytes = peakRSS(srv.Process.Pid)
	if rep.Baseline.PerSecond > 0 {
		rep.Ratio = rep.Mapper.PerSecond / rep.Baseline.PerSecond
	}
	if rep.Relay.PerSecond > 0 {
		rep.RelayRatio = rep.Mapper.PerSecond / rep.Relay.PerSecond
	}
	if rep.Baseline.AckP99 > 0 {
		rep.AckRatio = float64(rep.Mapper.AckP99) / float64(rep.Baseline.AckP99)
	}
	print(os.Stdout, rep)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startServer starts the reference server on a free port, on a temporary
// SQLite file or -database-url, and waits until it is healthy.
func startServer(o options, bin, tmp string) (string, *exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	srv := exec.Command(bin, "-env-file", filepath.Join(tmp, "none.env"))
	srv.Env = append(os.Environ(),
		"INSTAGRAM_APP_SECRET="+secret, "WEBHOOK_VERIFY_TOKEN=loadgen", "ADMIN_TOKEN="+adminToken, "SECRET_KEY=loadgen-console-key-0123", "OWNER_POLICY=entry",
		"RATE_LIMIT_RPS=0", "LOG_LEVEL="+cmp.Or(o.logLevel, "warn"), "PORT="+strconv.Itoa(port), "SQLITE_PATH="+filepath.Join(tmp, "mapper.db"),
		"DATABASE_URL="+o.databaseURL, "OTEL_SDK_DISABLED=", "PPROF_ADDR="+o.pprofAddr)
	if o.retention != "" {
		srv.Env = append(srv.Env, "RETENTION="+o.retention)
	}
	srv.Stderr = os.Stderr
	if o.serverLog != nil {
		srv.Stderr = o.serverLog
	}
	if err := srv.Start(); err != nil {
		return "", nil, fmt.Errorf("starting the reference server: %w", err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHealthy(url); err != nil {
		stopServer(srv)
		return "", nil, err
	}
	return url, srv, nil
}

func stopServer(srv *exec.Cmd) {
	_ = srv.Process.Signal(os.Interrupt)
	_ = srv.Wait()
}

// serverBinary makes a temporary directory for the run and returns it
// with the reference server to run: -server, or one built into it now.
func serverBinary(o options) (tmp, bin string, err error) {
	if tmp, err = os.MkdirTemp("", "mapper-loadgen-"); err != nil {
		return "", "", err
	}
	if o.server != "" {
		return tmp, o.server, nil
	}
	bin = filepath.Join(tmp, "referenceserver")
	fmt.Fprintln(os.Stderr, "building the reference server…")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/chatico/mapper/referenceserver")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		return "", "", fmt.Errorf("building the reference server: %w", err)
	}
	return tmp, bin, nil
}

// runBaseline drives the bare handler, in a child process like the server.
func runBaseline(o options) (Result, error) {
	return runChild(o, "bare net/http handler", "-serve-baseline")
}

// runRelay drives the relay: each webhook POSTed to a worker app before
// the answer, nothing stored.
func runRelay(o options, w *workers) (Result, error) {
	return runChild(o, "bare relay (no storage)", "-serve-relay", w.a.URL)
}

// runChild drives a baseline served by this program in a child process
// (args name its mode), measuring its CPU and memory.
func runChild(o options, target string, args ...string) (Result, error) {
	url, cmd, stop, err := child(args...)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	fmt.Fprintln(os.Stderr, target+"…")
	use0 := processUsage(cmd.Process.Pid)
	res := drive(o, url, nil)
	perWebhook(&res, processUsage(cmd.Process.Pid).sub(use0), 0)
	res.Target = target
	res.PeakRSSBytes = peakRSS(cmd.Process.Pid)
	return res, nil
}

// profile takes a CPU profile of the server while it is driven, for all but
// the last second of the run, and writes it to -cpuprofile.
func profile(o options) <-chan error {
	done := make(chan error, 1)
	if o.cpuProfile == "" {
		done <- nil
		return done
	}
	go func() {
		secs := max(1, int(o.duration/time.Second)-1)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", o.pprofAddr, secs))
		if err != nil {
			done <- fmt.Errorf("CPU profile: %w", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	return done
}

// perWebhook divides CPU times by the webhooks acknowledged.
func perWebhook(r *Result, u usage, db time.Duration) {
	if acked := r.Requests - int64(sumErrors(r.Errors)); acked > 0 {
		r.CPU, r.DBCPU = u.cpu/time.Duration(acked), db/time.Duration(acked)
		r.Calls, r.Switches = float64(u.calls)/float64(acked), float64(u.switches)/float64(acked)
	}
}

func sumErrors(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// idleLag measures, one webhook at a time on an idle server, how long a
// webhook takes from its 200 to the worker app.
func idleLag(url string, workers *workers) ([]int64, error) {
	fmt.Fprintln(os.Stderr, "idle lag…")
	var lags []int64
	for i := range 5 {
		id, ackAt, err := post(http.DefaultClient, url, mappertest.NewWebhook().Comment(accountA, "18000000000000009", fmt.Sprintf("idle-%d", i), "hi").Bytes())
		if err != nil {
			return nil, err
		}
		got := workers.wait(id, 5*time.Second)
		if got.IsZero() {
			return nil, fmt.Errorf("idle webhook %s was not delivered within 5s", id)
		}
		// The worker app may get the webhook before the client has read the
		// 200: that is no lag at all, as in the load runs.
		lags = append(lags, int64(max(got.Sub(ackAt), 0)))
		time.Sleep(200 * time.Millisecond)
	}
	return lags, nil
}

// drive sends webhooks to url for the duration and measures. With workers,
// it then waits for the deliveries and measures their lag.
func drive(o options, url string, w *workers) Result {
	return driveEach(o, []string{url}, 0, w)[0]
}

// driveEach is drive for several servers at once, taking turns slice by
// slice: a webhook due in the run's k-th slice goes to urls[k % len(urls)],
// and each has its own result, its rate over its share of the time
// (slice must be set for more than one url).
func driveEach(o options, urls []string, slice time.Duration, w *workers) []Result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns}, Timeout: 30 * time.Second}
	type due struct {
		at     time.Time
		target int
	}
	type target struct {
		acks  []time.Duration
		ackAt map[string]time.Time
		errs  map[string]int
		sent  int64
	}
	var (
		mu      sync.Mutex
		targets = make([]target, len(urls))
		history [][]byte
	)
	for i := range targets {
		targets[i] = target{ackAt: map[string]time.Time{}, errs: map[string]int{}}
	}
	deadline := time.Now().Add(o.duration)
	dues := make(chan due, o.conns)
	go func() {
		defer close(dues)
		start := time.Now()
		for i := 0; ; i++ {
			at := time.Now()
			if o.rate > 0 {
				at = start.Add(time.Duration(i) * time.Second / time.Duration(o.rate))
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
			}
			if at.After(deadline) {
				return
			}
			t := 0
			if slice > 0 {
				t = int(at.Sub(start)/slice) % len(urls)
			}
			dues <- due{at, t}
		}
	}()
	var wg sync.WaitGroup
	for c := range o.conns {
		wg.Go(func() {
			// Seeded by the run's start too: a second run on the same
			// database sends new webhooks, not the first run's again
			// (which would all be duplicates, and cheap).
			rnd := rand.New(rand.NewPCG(uint64(c), uint64(deadline.UnixNano())))
			n := 0
			for d := range dues {
				n++
				body := webhook(rnd, c, n)
				mu.Lock()
				if len(history) > 0 && rnd.IntN(20) == 0 {
					body = history[rnd.IntN(len(history))] // Meta retries an earlier one
				} else if len(history) < 1000 {
					history = append(history, body)
				}
				mu.Unlock()
				id, ackTime, err := post(client, urls[d.target], body)
				lat := time.Since(d.at)
				mu.Lock()
				t := &targets[d.target]
				if err != nil {
					t.errs[kind(err)]++
				} else {
					t.acks = append(t.acks, lat)
					if id != "" {
						t.ackAt[id] = ackTime
					}
				}
				t.sent++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	share := o.duration / time.Duration(len(urls))
	out := make([]Result, len(urls))
	for i, t := range targets {
		r := Result{Requests: t.sent, Errors: t.errs}
		r.PerSecond = float64(len(t.acks)) / share.Seconds()
		slices.Sort(t.acks)
		r.AckP50, r.AckP95, r.AckP99 = pct(t.acks, 50), pct(t.acks, 95), pct(t.acks, 99)
		if w != nil {
			var lags []time.Duration
			for id, at := range t.ackAt {
				got := w.wait(id, 30*time.Second)
				if got.IsZero() {
					r.Undelivered++
					continue
				}
				lags = append(lags, max(got.Sub(at), 0))
			}
			slices.Sort(lags)
			r.Delivered = len(lags)
			r.LagP50, r.LagP95, r.LagP99 = pct(lags, 50), pct(lags, 95), pct(lags, 99)
		}
		out[i] = r
	}
	return out
}

// webhook is one body of the mix: 70 % a comment for one account, 15 % a
// batch for both, 15 % a message. Texts carry Meta's escapes.
func webhook(rnd *rand.Rand, conn, n int) []byte {
	text := "Love this! 😍 Größe M? / @friend " + strings.Repeat("so good ", 10+rnd.IntN(20))
	w := mappertest.NewWebhook()
	switch p := rnd.IntN(100); {
	case p < 70:
		acc := accountA
		if p%2 == 1 {
			acc = accountB
		}
		w.Comment(acc, "18000000000000001", commentID(), text)
	case p < 85:
		w.Comment(accountA, "18000000000000001", commentID(), text).Comment(accountB, "18000000000000002", commentID(), text)
	default:
		w.Message(accountB, "1236422025128657", fmt.Sprintf("mid.%d-%d-%d", conn, n, rnd.Uint32()), text)
	}
	return w.Bytes()
}

// lastComment is the last comment ID made.
var lastComment atomic.Int64

// commentID returns a comment ID like Instagram's: 17 digits that grow
// with time and never repeat in this process. A comment's deduplication
// key then lands where a real one would, at the end of its account's
// keys, and not scattered through a week of history as random IDs put
// it, an index insert pattern a real week does not have.
func commentID() string {
	for {
		last := lastComment.Load()
		next := max(last+1, 17_000_000_000_000_000+time.Now().UnixMicro())
		if lastComment.CompareAndSwap(last, next) {
			return strconv.FormatInt(next, 10)
		}
	}
}

// post sends one signed webhook and returns the event ID (empty for the
// baseline and for duplicates) and when the answer came.
func post(client *http.Client, url string, body []byte) (string, time.Time, error) {
	resp, err := client.Do(mappertest.SignedRequest(url+"/webhook/", secret, body))
	if err != nil {
		return "", time.Time{}, err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	at := time.Now()
	if resp.StatusCode != http.StatusOK {
		return "", at, fmt.Errorf("status %d", resp.StatusCode)
	}
	var ir struct {
		EventID string `json:"event_id"`
		Status  string `json:"status"`
	}
	if json.Unmarshal(raw, &ir) == nil && ir.Status == "accepted" {
		return ir.EventID, at, nil
	}
	return "", at, nil
}

func kind(err error) string {
	switch s := err.Error(); {
	case strings.HasPrefix(s, "status "):
		return s
	case strings.Contains(s, "timeout"), strings.Contains(s, "deadline"):
		return "timeout"
	case strings.Contains(s, "refused"), strings.Contains(s, "reset"):
		return "connection"
	}
	return "other"
}

// workers are two fake worker apps noting when each event arrived, and
// how often; while down, they answer 503.
type workers struct {
	a, b  *httptest.Server
	mu    sync.Mutex
	at    map[string]time.Time
	count map[string]int
	ch    chan struct{}
	down  atomic.Bool
	delay atomic.Int64 // each answer waits this long (ns)
}

func newWorkers() *workers {
	w := &workers{at: map[string]time.Time{}, count: map[string]int{}, ch: make(chan struct{})}
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		now := time.Now()
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(time.Duration(w.delay.Load()))
		if r.Context().Err() != nil {
			return // the sender is gone (killed): it never got the answer
		}
		if w.down.Load() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		id := r.Header.Get("X-Mapper-Event-Id")
		w.mu.Lock()
		w.count[id]++
		if _, ok := w.at[id]; !ok {
			w.at[id] = now
		}
		close(w.ch)
		w.ch = make(chan struct{})
		w.mu.Unlock()
		rw.WriteHeader(http.StatusOK)
	})
	w.a, w.b = httptest.NewServer(h), httptest.NewServer(h)
	return w
}

func (w *workers) close() { w.a.Close(); w.b.Close() }

// wait returns when event id first reached a worker, or zero after timeout.
func (w *workers) wait(id string, timeout time.Duration) time.Time {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		at, ok := w.at[id]
		ch := w.ch
		w.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}
		}
	}
}

// registerApps registers the two worker apps of a load run, "a" for
// accountA and "b" for accountB.
func registerApps(url string, w *workers, limit int) error {
	for _, a := range []struct{ name, url, account string }{{"a", w.a.URL, accountA}, {"b", w.b.URL, accountB}} {
		if _, err := register(url, a.name, a.url, []string{a.account}, limit); err != nil {
			return err
		}
	}
	return nil
}

// register registers a worker app for the accounts (none: onboarded
// later) and returns its ID.
func register(base, name, url string, accounts []string, limit int) (string, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "url": url, "secret": "loadgen-worker-secret", "account_ids": accounts,
		"max_concurrency": limit})
	resp, raw, err := adminCall(http.DefaultClient, http.MethodPost, base+"/worker-apps/", body)
	if err != nil {
		return "", err
	}
	var app struct{ ID string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &app) != nil {
		return "", fmt.Errorf("registering worker app %s: %d %s", name, resp.StatusCode, raw)
	}
	return app.ID, nil
}

func waitHealthy(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(url + "/monitoring/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the reference server did not become healthy within 30s")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// peakRSS reads a process's high-water resident set (VmHWM) from /proc.
func peakRSS(pid int) int64 { return procBytes(pid, "VmHWM:") }

// watchAnon samples a process's anonymous memory (RssAnon) until the
// function it returns is called, which returns the most seen.
func watchAnon(pid int) func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procBytes(pid, "RssAnon:"); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(stop); <-done; return peak.Load() }
}

// procBytes reads a size in kB from a process's /proc status.
func procBytes(pid int, field string) int64 {
	return procFields(fmt.Sprintf("/proc/%d/status", pid), strings.TrimSuffix(field, ":")) * 1024
}

func machine() string {
	cpus := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := strings.Count(string(b), "\nprocessor") + 1
		model := ""
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		cpus = fmt.Sprintf("%d × %s", n, model)
	}
	return cpus
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[(len(ds)-1)*p/100]
}

func print(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "machine: %s\nstore: %s; %s; %s each\n\n", r.Machine, r.Store, r.Mode, r.Duration)
	fmt.Fprintln(tw, "TARGET\tREQ/S\tACK p50\tp95\tp99\tLAG p50\tp95\tp99\tDELIVERED\tERRORS\tCPU/WEBHOOK\tSYSCALLS\tSWITCHES\tPEAK RSS\t(ANON)")
	for _, x := range []Result{r.Baseline, r.Relay, r.Mapper} {
		lag := [3]string{"-", "-", "-"}
		delivered := "-"
		if x.Delivered+x.Undelivered > 0 {
			lag = [3]string{ms(x.LagP50), ms(x.LagP95), ms(x.LagP99)}
			delivered = fmt.Sprintf("%d/%d", x.Delivered, x.Delivered+x.Undelivered)
		}
		errs := "0"
		if len(x.Errors) > 0 {
			b, _ := json.Marshal(x.Errors)
			errs = string(b)
		}
		cpu := fmt.Sprintf("%.3fms", x.CPU.Seconds()*1000)
		if x.DBCPU > 0 {
			cpu = fmt.Sprintf("%.3fms + db %.3fms", x.CPU.Seconds()*1000, x.DBCPU.Seconds()*1000)
		}
		anon := "-"
		if x.PeakAnonBytes > 0 {
			anon = fmt.Sprintf("%.0f MB", float64(x.PeakAnonBytes)/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.0f MB\t%s\n", x.Target, x.PerSecond, ms(x.AckP50), ms(x.AckP95), ms(x.AckP99),
			lag[0], lag[1], lag[2], delivered, errs, cpu, x.Calls, x.Switches, float64(x.PeakRSSBytes)/(1<<20), anon)
	}
	tw.Flush()
	var idle []string
	for _, l := range r.IdleLag {
		idle = append(idle, ms(time.Duration(l)))
	}
	fmt.Fprintf(w, "\ningest ratio (mapper / relay): %.2f\ningest ratio (mapper / bare handler): %.2f\nack p99 ratio (mapper / bare handler): %.2f\nidle delivery lag (5 single webhooks): %s\n",
		r.RelayRatio, r.Ratio, r.AckRatio, strings.Join(idle, ", "))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
