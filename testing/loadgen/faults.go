package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chatico/mapper/testing/mappertest"
)

// The fault run (-faults kill,term,app-down,db-down) sends signed webhooks
// at a steady rate to the reference server while it does harm, and
// counts: every webhook answered 200 must reach the worker app, and how
// often. It reports, for each fault, what was acknowledged, delivered,
// lost and repeated, and how long recovery took:
//
//   - kill: -rounds times, kill -9 the server under load (the worker app
//     taking 2 s an answer, so about 20 deliveries are in flight) and
//     start it again at once; recovery is from the restart until every
//     webhook acknowledged so far is delivered (target: 20 s).
//   - term: the same with SIGTERM, a graceful stop (target: 2 s).
//   - app-down: the worker app answers 503 for 40 s, then is back;
//     recovery is from its return until the backlog is delivered
//     (target: 35 s).
//   - replica-kill: a second replica on the same PostgreSQL
//     (-database-url) takes every other webhook and is killed with -9 with
//     deliveries in flight; recovery is from the kill until the survivor
//     has delivered everything acknowledged (target: 20 s).
//   - db-down: PostgreSQL (-pg-container) is stopped for 15 s and started
//     again; webhooks are refused with 503 meanwhile, and none that was
//     acknowledged is lost.
//
// It exits non-zero when a webhook was lost or a target missed.

// FaultReport is what one fault did.
type FaultReport struct {
	Fault     string          `json:"fault"`
	Acked     int             `json:"acknowledged"`
	Delivered int             `json:"delivered"`
	Lost      int             `json:"lost"`
	Repeats   int             `json:"repeats"`
	Recovery  []time.Duration `json:"recovery_ns"`
	Target    time.Duration   `json:"target_ns"`
	Refused   int             `json:"refused"` // webhooks answered non-200 (Meta retries them)
}

// faultRun is the server under test, restarted as a fault asks, and the
// load on it.
type faultRun struct {
	o       options
	bin     string
	tmp     string
	workers *workers
	mu      sync.Mutex
	srv     *exec.Cmd
	url     atomic.Pointer[string]
	other   atomic.Pointer[string] // a second replica's, which takes every other webhook
	account string                 // the account the run's webhooks are for
	acked   map[string]time.Time   // event ID → when Meta got its 200
	refused int
	seq     atomic.Int64
}

func runFaults(o options) error {
	tmp, bin, err := serverBinary(o)
	if err != nil {
		return err
	}
	if os.Getenv("LOADGEN_KEEP") == "" {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Fprintln(os.Stderr, "keeping", tmp)
	}
	// Kept after the run, for a failure's post-mortem.
	logFile, err := os.CreateTemp("", "mapper-faults-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	o.serverLog = logFile
	var reports []FaultReport
	failed := false
	for i, f := range strings.Split(o.faults, ",") {
		// An account of its own for each fault: on PostgreSQL they share
		// one database.
		r := &faultRun{o: o, bin: bin, tmp: filepath.Join(tmp, f), workers: newWorkers(), acked: map[string]time.Time{},
			account: fmt.Sprintf("178414%05d%06d", time.Now().Unix()%100000, i)}
		if err := os.MkdirAll(r.tmp, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "fault %s…\n", f)
		rep, err := r.run(strings.TrimSpace(f))
		r.workers.close()
		if err != nil {
			return fmt.Errorf("fault %s: %w (server log: %s)", f, err, logFile.Name())
		}
		reports = append(reports, rep)
		failed = failed || rep.Lost > 0 || slices.ContainsFunc(rep.Recovery, func(d time.Duration) bool { return d > rep.Target })
	}
	printFaults(os.Stdout, reports)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(reports, "", "  ")
		if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			return err
		}
	}
	if failed {
		tail, _ := os.ReadFile(logFile.Name())
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("a webhook was lost or a recovery missed its target; the server's log ends:\n%s", tail)
	}
	return nil
}

func (r *faultRun) run(fault string) (FaultReport, error) {
	rep := FaultReport{Fault: fault}
	if err := r.start(); err != nil {
		return rep, err
	}
	defer func() { r.mu.Lock(); stopServer(r.srv); r.mu.Unlock() }()
	if _, err := register(*r.url.Load(), "faults-"+r.account, r.workers.a.URL, []string{r.account}, 64); err != nil {
		return rep, err
	}
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() { r.send(stop) })
	time.Sleep(time.Second)
	var err error
	switch fault {
	case "kill", "term":
		sig, target := syscall.SIGKILL, 20*time.Second
		if fault == "term" {
			sig, target = syscall.SIGTERM, 2*time.Second
		}
		rep.Target = target
		// Answers that take 2 s keep deliveries in flight when the blow
		// falls; one whose sender dies before the answer does not count,
		// so it must be sent again, by the restarted server, once the dead
		// one's lease has run out.
		r.workers.delay.Store(int64(2 * time.Second))
		for range r.o.rounds {
			var d time.Duration
			if d, err = r.restartWith(sig); err != nil {
				break
			}
			rep.Recovery = append(rep.Recovery, d)
			time.Sleep(time.Second)
		}
	case "replica-kill":
		rep.Target = 20 * time.Second
		if r.o.databaseURL == "" {
			err = errors.New("replica-kill needs -database-url")
			break
		}
		r.workers.delay.Store(int64(2 * time.Second))
		url2, second, serr := startServer(r.o, r.bin, r.tmp)
		if serr != nil {
			err = serr
			break
		}
		r.other.Store(&url2)
		time.Sleep(3 * time.Second)
		// The second replica dies with deliveries in flight; the first
		// takes its work over.
		r.other.Store(nil)
		_ = second.Process.Signal(syscall.SIGKILL)
		_ = second.Wait()
		killed := time.Now()
		var d time.Duration
		if d, err = r.waitDelivered(killed, time.Minute); err == nil {
			rep.Recovery = append(rep.Recovery, d)
		}
	case "app-down":
		rep.Target = 35 * time.Second
		r.workers.down.Store(true)
		time.Sleep(40 * time.Second)
		r.workers.down.Store(false)
		back := time.Now()
		var d time.Duration
		if d, err = r.waitDelivered(back, 2*time.Minute); err == nil {
			rep.Recovery = append(rep.Recovery, d)
		}
	case "db-down":
		rep.Target = 30 * time.Second
		if r.o.pgContainer == "" || r.o.databaseURL == "" {
			err = errors.New("db-down needs -database-url and -pg-container")
			break
		}
		if err = exec.Command("docker", "stop", "-t", "1", r.o.pgContainer).Run(); err != nil {
			break
		}
		time.Sleep(15 * time.Second)
		if err = exec.Command("docker", "start", r.o.pgContainer).Run(); err != nil {
			break
		}
		up := time.Now()
		var d time.Duration
		if d, err = r.waitDelivered(up, 2*time.Minute); err == nil {
			rep.Recovery = append(rep.Recovery, d)
		}
	default:
		err = fmt.Errorf("unknown fault %q (want kill, term, replica-kill, app-down or db-down)", fault)
	}
	close(stop)
	load.Wait()
	if err != nil {
		return rep, err
	}
	// Everything acknowledged must arrive, however long it takes.
	if _, err := r.waitDelivered(time.Now(), 2*time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	r.count(&rep)
	return rep, nil
}

// start starts the server on the run's database.
func (r *faultRun) start() error {
	url, srv, err := startServer(r.o, r.bin, r.tmp)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	r.url.Store(&url)
	return nil
}

// restartWith stops the server with sig, starts it again at once, and
// returns how long after the restart everything acknowledged so far was
// delivered.
func (r *faultRun) restartWith(sig syscall.Signal) (time.Duration, error) {
	r.mu.Lock()
	r.workers.mu.Lock()
	fmt.Fprintf(os.Stderr, "  %s with %d acknowledged, %d delivered\n", sig, len(r.acked), len(r.workers.count))
	r.workers.mu.Unlock()
	_ = r.srv.Process.Signal(sig)
	_ = r.srv.Wait()
	r.mu.Unlock()
	if err := r.start(); err != nil {
		return 0, err
	}
	return r.waitDelivered(time.Now(), time.Minute)
}

// waitDelivered waits until every webhook acknowledged before now has
// reached the worker app, and returns how long that took from since.
func (r *faultRun) waitDelivered(since time.Time, limit time.Duration) (time.Duration, error) {
	cutoff := time.Now()
	r.mu.Lock()
	var want []string
	for id, at := range r.acked {
		if at.Before(cutoff) {
			want = append(want, id)
		}
	}
	r.mu.Unlock()
	deadline := time.Now().Add(limit)
	for _, id := range want {
		if r.workers.wait(id, time.Until(deadline)).IsZero() {
			_, raw, _ := adminCall(http.DefaultClient, http.MethodGet, *r.url.Load()+"/monitoring/webhook-logs/"+id, nil)
			return 0, fmt.Errorf("webhook %s acknowledged but not delivered within %v; the server has: %.1500s", id, limit, raw)
		}
	}
	return time.Since(since), nil
}

// send posts unique signed comment webhooks, 10 a second from 4 clients
// (below what 2-second answers let the server deliver: 32 at once),
// noting the event of every 200, until stop closes.
func (r *faultRun) send(stop chan struct{}) {
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			t := time.NewTicker(400 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				n := r.seq.Add(1)
				body := mappertest.NewWebhook().Comment(r.account, "18000000000000009", fmt.Sprintf("fault-%s-%d-%d", r.account, c, n), "hi").Bytes()
				url := *r.url.Load()
				if o := r.other.Load(); o != nil && n%2 == 1 {
					url = *o
				}
				id, at, err := post(client, url, body)
				r.mu.Lock()
				if err == nil && id != "" {
					r.acked[id] = at
				} else {
					r.refused++
				}
				r.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// count fills in what was acknowledged, delivered, lost and repeated.
func (r *faultRun) count(rep *FaultReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workers.mu.Lock()
	defer r.workers.mu.Unlock()
	rep.Acked, rep.Refused = len(r.acked), r.refused
	for id := range r.acked {
		n := r.workers.count[id]
		if n == 0 {
			rep.Lost++
			continue
		}
		rep.Delivered++
		rep.Repeats += n - 1
	}
}

func printFaults(w io.Writer, reps []FaultReport) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "machine: %s\n\n", machine())
	fmt.Fprintln(tw, "FAULT\tACKED\tDELIVERED\tLOST\tREPEATS\tREFUSED\tRECOVERY (each round)\tTARGET")
	for _, r := range reps {
		var rec []string
		for _, d := range r.Recovery {
			rec = append(rec, d.Round(10*time.Millisecond).String())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Fault, r.Acked, r.Delivered, r.Lost, r.Repeats, r.Refused, strings.Join(rec, ", "), r.Target)
	}
	tw.Flush()
}
