package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/chatico/mapper/testing/mappertest"
)

// The onboarding run (-onboard N) answers whether one worker app can serve
// a platform's every account: it registers an app with no accounts,
// routes the first ten accounts and measures the delivery lag of single
// webhooks to one of them (the baseline), onboards the rest through
// PUT /worker-apps/{id}/accounts/{account_id} from -conns clients at once,
// checks by paging the app's accounts that none was lost, and measures the
// lag again for the first and the last account. The reports compare the
// latency of the first and the last thousand PUTs, and the lags.

// firstAccount is the first onboarded account ID; the others follow it.
const firstAccount = 17841500000000000

// OnboardReport is the result of an onboarding run.
type OnboardReport struct {
	Machine   string `json:"machine"`
	Store     string `json:"store"`
	Accounts  int    `json:"accounts"`
	Clients   int    `json:"clients"`
	Routed    int    `json:"routed"` // counted by paging the app's accounts
	PerSecond float64
	// FirstPut and LastPut are the PUT latencies of the first and the
	// last thousand accounts onboarded concurrently.
	FirstPutP50, FirstPutP99 time.Duration
	LastPutP50, LastPutP99   time.Duration
	// OneFirst and OneLast are the latencies of PUTs from one client at a
	// time (200 each), with ten routes and with every route.
	OneFirstP50, OneFirstP99 time.Duration
	OneLastP50, OneLastP99   time.Duration
	Errors                   int
	// Lag of single webhooks with ten routes, and with every route, to
	// the first and the last account.
	LagTenP50, LagTenP99     time.Duration
	LagFirstP50, LagFirstP99 time.Duration
	LagLastP50, LagLastP99   time.Duration
	RSSBefore, RSSAfter      int64
	DBBytesBefore, DBBytes   int64 `json:",omitempty"`
}

func runOnboard(o options) error {
	if o.onboard < 1000 || o.conns < 1 {
		return errors.New("-onboard needs at least 1000 accounts and -conns at least 1")
	}
	tmp, bin, err := serverBinary(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	workers := newWorkers()
	defer workers.close()
	url, srv, err := startServer(o, bin, tmp)
	if err != nil {
		return err
	}
	defer stopServer(srv)
	rep := OnboardReport{Machine: machine(), Store: o.store(), Accounts: o.onboard, Clients: o.conns}
	r := &onboarding{o: o, url: url, workers: workers, rep: &rep, pid: srv.Process.Pid, dbPath: filepath.Join(tmp, "mapper.db")}
	for _, step := range []func() error{r.baseline, r.onboardAll, r.measureAfter} {
		if err := step(); err != nil {
			return err
		}
	}
	printOnboard(os.Stdout, rep)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			return err
		}
	}
	if rep.Routed != o.onboard || rep.Errors > 0 {
		return fmt.Errorf("%d of %d accounts routed, %d errors", rep.Routed, o.onboard, rep.Errors)
	}
	return nil
}

// onboarding is one onboarding run against a started server. Accounts
// 0–9 are routed first, 10–209 one at a time, the rest concurrently.
type onboarding struct {
	o            options
	url, appID   string
	workers      *workers
	rep          *OnboardReport
	pid          int
	dbPath       string
	concurrentAt int
}

func account(i int) string { return strconv.Itoa(firstAccount + i) }

// baseline registers the app, routes ten accounts, and measures the lag
// and single PUTs with ten routes.
func (r *onboarding) baseline() error {
	var err error
	if r.appID, err = register(r.url, "platform", r.workers.a.URL, nil, 64); err != nil {
		return err
	}
	for i := range 10 {
		if _, err := putRoute(http.DefaultClient, r.url, r.appID, account(i)); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "lag with ten routes…")
	ten, err := lags(r.url, r.workers, account(0), 200)
	if err != nil {
		return err
	}
	r.rep.LagTenP50, r.rep.LagTenP99 = pct(ten, 50), pct(ten, 99)
	if r.rep.OneFirstP50, r.rep.OneFirstP99, err = sequentialPuts(r.url, r.appID, 10, 200); err != nil {
		return err
	}
	r.concurrentAt = 210
	r.rep.RSSBefore, r.rep.DBBytesBefore = rss(r.pid), fileSize(r.dbPath)
	return nil
}

// onboardAll onboards the other accounts from -conns clients at once.
func (r *onboarding) onboardAll() error {
	n := r.o.onboard
	fmt.Fprintf(os.Stderr, "onboarding %d accounts from %d clients…\n", n, r.o.conns)
	took := make([]time.Duration, n)
	var next, errs atomic.Int64
	next.Store(int64(r.concurrentAt))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: r.o.conns}, Timeout: 30 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	for range r.o.conns {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				d, err := putRoute(client, r.url, r.appID, account(i))
				if err != nil {
					errs.Add(1)
					fmt.Fprintln(os.Stderr, err)
				}
				took[i] = d
			}
		})
	}
	wg.Wait()
	r.rep.PerSecond = float64(n-r.concurrentAt) / time.Since(start).Seconds()
	r.rep.Errors = int(errs.Load())
	// The first and the last thousand (fewer when they would overlap).
	w := min(1000, (n-r.concurrentAt)/2)
	first, last := slices.Clone(took[r.concurrentAt:r.concurrentAt+w]), slices.Clone(took[n-w:])
	slices.Sort(first)
	slices.Sort(last)
	r.rep.FirstPutP50, r.rep.FirstPutP99, r.rep.LastPutP50, r.rep.LastPutP99 = pct(first, 50), pct(first, 99), pct(last, 50), pct(last, 99)
	return nil
}

// measureAfter counts the routes by paging them, and measures single PUTs
// and the lag to the first and the last account with every route.
func (r *onboarding) measureAfter() error {
	n := r.o.onboard
	var err error
	if r.rep.Routed, err = countRoutes(r.url, r.appID, n); err != nil {
		return err
	}
	if r.rep.OneLastP50, r.rep.OneLastP99, err = sequentialPuts(r.url, r.appID, n, 200); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "lag with every route…")
	for _, m := range []struct {
		account  int
		p50, p99 *time.Duration
	}{{0, &r.rep.LagFirstP50, &r.rep.LagFirstP99}, {n - 1, &r.rep.LagLastP50, &r.rep.LagLastP99}} {
		ds, err := lags(r.url, r.workers, account(m.account), 200)
		if err != nil {
			return err
		}
		*m.p50, *m.p99 = pct(ds, 50), pct(ds, 99)
	}
	r.rep.RSSAfter, r.rep.DBBytes = rss(r.pid), fileSize(r.dbPath)
	return nil
}

// sequentialPuts onboards n accounts from index from, one at a time, and
// returns the p50 and p99 of their latency.
func sequentialPuts(url, appID string, from, n int) (time.Duration, time.Duration, error) {
	ds := make([]time.Duration, n)
	for i := range n {
		d, err := putRoute(http.DefaultClient, url, appID, strconv.Itoa(firstAccount+from+i))
		if err != nil {
			return 0, 0, err
		}
		ds[i] = d
	}
	slices.Sort(ds)
	return pct(ds, 50), pct(ds, 99), nil
}

// putRoute onboards one account and returns how long it took.
func putRoute(client *http.Client, base, appID, account string) (time.Duration, error) {
	start := time.Now()
	resp, raw, err := adminCall(client, http.MethodPut, base+"/worker-apps/"+appID+"/accounts/"+account, nil)
	d := time.Since(start)
	if err != nil {
		return d, err
	}
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("onboarding %s: %d %s", account, resp.StatusCode, raw)
	}
	return d, nil
}

func adminCall(client *http.Client, method, url string, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}

// countRoutes pages through the app's accounts and counts the distinct
// onboarded ones.
func countRoutes(base, appID string, n int) (int, error) {
	seen := make(map[string]bool, n)
	cursor := ""
	for {
		resp, raw, err := adminCall(http.DefaultClient, http.MethodGet, base+"/worker-apps/"+appID+"/accounts?limit=500&cursor="+cursor, nil)
		if err != nil {
			return 0, err
		}
		var page struct {
			Accounts []struct {
				AccountID string `json:"account_id"`
			} `json:"accounts"`
			NextCursor string `json:"next_cursor"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &page) != nil {
			return 0, fmt.Errorf("paging the accounts: %d %.200s", resp.StatusCode, raw)
		}
		for _, a := range page.Accounts {
			if v, err := strconv.Atoi(a.AccountID); err == nil && v >= firstAccount && v < firstAccount+n {
				seen[a.AccountID] = true
			}
		}
		if page.NextCursor == "" {
			return len(seen), nil
		}
		cursor = page.NextCursor
	}
}

// lags sends n single comment webhooks for account, one at a time, and
// returns, sorted, how long each took from Meta's 200 to the worker app.
func lags(url string, w *workers, account string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := range n {
		body := mappertest.NewWebhook().Comment(account, "18000000000000009", fmt.Sprintf("onboard-%s-%d-%d", account, time.Now().UnixNano(), i), "hi").Bytes()
		id, ackAt, err := post(http.DefaultClient, url, body)
		if err != nil {
			return nil, err
		}
		got := w.wait(id, 5*time.Second)
		if got.IsZero() {
			return nil, fmt.Errorf("webhook %s for account %s was not delivered within 5s", id, account)
		}
		out = append(out, max(got.Sub(ackAt), 0))
	}
	slices.Sort(out)
	return out, nil
}

// rss reads a process's resident set (VmRSS) from /proc.
func rss(pid int) int64 { return procBytes(pid, "VmRSS:") }

// fileSize is the size of a SQLite database with its WAL; 0 on PostgreSQL.
func fileSize(path string) int64 {
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func printOnboard(w io.Writer, r OnboardReport) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "machine: %s\nstore: %s; %d accounts into one app from %d clients\n\n", r.Machine, r.Store, r.Accounts, r.Clients)
	fmt.Fprintf(tw, "onboarded\t%d/%d routed (paged back), %d errors, %.0f PUTs/s\n", r.Routed, r.Accounts, r.Errors, r.PerSecond)
	fmt.Fprintf(tw, "PUT, one client, 10 routes\tp50 %s\tp99 %s\n", ms(r.OneFirstP50), ms(r.OneFirstP99))
	fmt.Fprintf(tw, "PUT, one client, all routes\tp50 %s\tp99 %s\tp99 ratio %.2f\n", ms(r.OneLastP50), ms(r.OneLastP99), ratio(r.OneLastP99, r.OneFirstP99))
	fmt.Fprintf(tw, "PUT latency, first 1000\tp50 %s\tp99 %s\n", ms(r.FirstPutP50), ms(r.FirstPutP99))
	fmt.Fprintf(tw, "PUT latency, last 1000\tp50 %s\tp99 %s\tp99 ratio %.2f\n", ms(r.LastPutP50), ms(r.LastPutP99), ratio(r.LastPutP99, r.FirstPutP99))
	fmt.Fprintf(tw, "lag, 10 routes\tp50 %s\tp99 %s\n", ms(r.LagTenP50), ms(r.LagTenP99))
	fmt.Fprintf(tw, "lag, all routes, first account\tp50 %s\tp99 %s\tp50 ratio %.2f\n", ms(r.LagFirstP50), ms(r.LagFirstP99), ratio(r.LagFirstP50, r.LagTenP50))
	fmt.Fprintf(tw, "lag, all routes, last account\tp50 %s\tp99 %s\tp50 ratio %.2f\n", ms(r.LagLastP50), ms(r.LagLastP99), ratio(r.LagLastP50, r.LagTenP50))
	fmt.Fprintf(tw, "server RSS\t%.1f MB before, %.1f MB after\n", float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20))
	if r.DBBytes > 0 {
		fmt.Fprintf(tw, "database file\t%.1f MB before, %.1f MB after (%.0f bytes per route)\n", float64(r.DBBytesBefore)/(1<<20), float64(r.DBBytes)/(1<<20),
			float64(r.DBBytes-r.DBBytesBefore)/float64(max(r.Accounts-10, 1)))
	}
	tw.Flush()
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
