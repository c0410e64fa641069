package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/fakes"
	"github.com/chatico/mapper/resolver/graphresolver"
	"github.com/chatico/mapper/storage/bunstore"
	"github.com/chatico/mapper/workerauth"
)

// The demo's accounts: two with worker apps, one without.
const (
	demoShop    = "17841400000000001"
	demoStudio  = "17841400000000002"
	demoNobody  = "17841400000000003"
	demoSecret  = "demo-meta-app-secret"
	demoVerify  = "demo-verify-token"
	demoGraphTk = "demo-graph-token"
)

type demoCase struct {
	name   string
	body   []byte
	secret string
	// filled in as it runs
	status  int
	eventID string
	answer  string
}

// runDemo starts the server with a fake Graph API and three fake worker
// apps, sends a scripted set of webhooks through real HTTP, prints what
// became of each, and keeps serving until ctx ends.
func runDemo(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	level := slog.LevelError
	if s := getenv("LOG_LEVEL"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("LOG_LEVEL %q must be debug, info, warn or error", s)
		}
	}
	d := &demo{logger: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})), apps: map[string]string{}}
	defer d.close()
	if err := d.start(ctx, cmpOr(getenv("PORT"), "8100")); err != nil {
		return err
	}
	err := d.register()
	if err == nil {
		cases := demoCases()
		if err = d.send(cases); err == nil {
			err = d.report(ctx, stdout, cases)
		}
	}
	if err != nil {
		return errors.Join(err, d.shutdown())
	}
	<-ctx.Done()
	return d.shutdown()
}

// demo is the demo's server and fakes.
type demo struct {
	logger                *slog.Logger
	graph                 *fakes.GraphAPI
	shop, studio, inbox   *fakes.WorkerApp
	store                 *bunstore.Store
	m                     *mapper.Mapper
	dir, base, adminToken string
	apps                  map[string]string // app ID → name
	closers               []func()
	shutdown              func() error
}

func (d *demo) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// start runs the fakes, the store in a temporary directory, the Mapper and
// its server.
func (d *demo) start(ctx context.Context, port string) error {
	d.graph = fakes.NewGraphAPI(demoGraphTk)
	d.closers = append(d.closers, d.graph.Close)
	// The demo's token is @shop's: it sees the owner of @shop's own media
	// only, and the username of anyone else's, as Meta answers.
	d.graph.SetOwner("18000000000000001", demoShop)
	d.graph.SetUsername("18000000000000002", "studio")
	d.shop = fakes.NewWorkerApp("shop-secret-" + randomHex(8))
	d.studio = fakes.NewWorkerApp("studio-secret-" + randomHex(8))
	d.inbox = fakes.NewWorkerApp("inbox-secret-" + randomHex(8))
	d.closers = append(d.closers, d.shop.Close, d.studio.Close, d.inbox.Close)
	d.adminToken = "demo-admin-" + randomHex(8)
	res, err := graphresolver.New(demoGraphTk, graphresolver.WithBaseURL(d.graph.URL()))
	if err != nil {
		return err
	}
	// The demo's database is a SQLite file in a directory of its own,
	// removed when the demo ends.
	if d.dir, err = os.MkdirTemp("", "mapper-demo-"); err != nil {
		return err
	}
	d.closers = append(d.closers, func() { os.RemoveAll(d.dir) })
	if d.store, err = bunstore.OpenSQLite(ctx, filepath.Join(d.dir, "mapper.db")); err != nil {
		return err
	}
	d.closers = append(d.closers, func() { d.store.Close() })
	if _, err := d.store.Migrate(ctx); err != nil {
		return err
	}
	d.m, err = mapper.New(d.store,
		mapper.WithLogger(d.logger),
		mapper.WithMetaSecrets(demoSecret),
		mapper.WithVerifyToken(demoVerify),
		mapper.WithAdminToken(d.adminToken),
		mapper.WithResolver(res),
		mapper.WithMediaEnrichment(500*time.Millisecond, "mentions"),
	)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() { d.m.Close() })
	// The console signs its sessions with a key of this run: the demo's
	// data lives as long as the process anyway.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cons, err := newConsole(d.m, d.adminToken, hex.EncodeToString(key), d.logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return fmt.Errorf("demo cannot listen on 127.0.0.1:%s (%w); run it with PORT=8101, or PORT=0 for any free port", port, err)
	}
	d.base = "http://" + ln.Addr().String()
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan error, 1)
	go func() { _ = cons.Run(srvCtx) }()
	mux := http.NewServeMux()
	mux.Handle("/console/", cons)
	mux.Handle("/", d.m.Handler())
	go func() { srvDone <- serve(srvCtx, d.m, []listener{{ln, mux}}, 10*time.Second, d.logger) }()
	d.shutdown = func() error { stopSrv(); return <-srvDone }
	return nil
}

// register makes the worker apps through the admin API, as an operator
// would.
func (d *demo) register() error {
	for _, a := range []struct {
		name   string
		app    *fakes.WorkerApp
		acc    string
		fields []string
	}{
		{"shop", d.shop, demoShop, nil},
		{"studio", d.studio, demoStudio, []string{"comments", "mentions"}},
		{"studio-inbox", d.inbox, demoStudio, []string{"messages", "standby"}},
	} {
		id, err := demoRegister(d.base, d.adminToken, a.name, a.app.URL(), a.app.Secret(), a.acc, a.fields)
		if err != nil {
			return err
		}
		d.apps[id] = a.name
	}
	return nil
}

// demoCases are the scripted webhooks.
func demoCases() []*demoCase {
	first := fakes.NewWebhook().Comment(demoShop, "18000000000000001", "17900000000000001", "Love it! 😍 / @friend").Bytes()
	return []*demoCase{
		{name: "comment on @shop's post", body: first, secret: demoSecret},
		{name: "comment on @studio's post", body: fakes.NewWebhook().Comment(demoStudio, "18000000000000002", "17900000000000002", "Größe M?").Bytes(), secret: demoSecret},
		{name: "one POST for both accounts", body: fakes.NewWebhook().
			Comment(demoShop, "18000000000000001", "17900000000000003", "for shop").
			Message(demoStudio, "1236422025128657", "mid.demo.1", "for studio").Bytes(), secret: demoSecret},
		{name: "Meta retries the first webhook", body: first, secret: demoSecret},
		{name: "forged (wrong signature)", body: fakes.NewWebhook().Comment(demoShop, "1", "2", "forged").Bytes(), secret: "not-the-app-secret"},
		{name: "account with no worker app", body: fakes.NewWebhook().Comment(demoNobody, "18000000000000003", "17900000000000004", "anyone?").Bytes(), secret: demoSecret},
		{name: "@shop mentioned on @studio's post", body: fakes.NewWebhook().Mention(demoShop, "18000000000000002", "17900000000000005").Bytes(), secret: demoSecret},
		{name: "DM to @studio on the standby channel", body: fakes.NewWebhook().Standby(demoStudio, "1236422025128657", "mid.demo.2", "talking to a human").Bytes(), secret: demoSecret},
		{name: "a field's type changed by Meta", body: []byte(`{"object":"instagram","entry":[{"id":"` + demoStudio + `","time":1764331200,"changes":[{"field":"comments","value":"a string where an object was"}]}]}`), secret: demoSecret},
	}
}

// send posts every case as Meta would.
func (d *demo) send(cases []*demoCase) error {
	for _, c := range cases {
		resp, err := http.DefaultClient.Do(fakes.SignedRequest(d.base+"/webhook/", c.secret, c.body))
		if err != nil {
			return err
		}
		var ir struct {
			EventID string `json:"event_id"`
			Status  string `json:"status"`
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.status = resp.StatusCode
		if resp.StatusCode == http.StatusOK && json.Unmarshal(raw, &ir) == nil {
			c.eventID, c.answer = ir.EventID, ir.Status
		} else {
			var p struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(raw, &p)
			_, kind, _ := strings.Cut(p.Type, "#")
			c.answer = "refused: " + kind
		}
	}

	return nil
}

// report prints what became of each case, once it settled.
func (d *demo) report(ctx context.Context, stdout io.Writer, cases []*demoCase) error {
	w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nmapper demo: %d webhooks sent to %s/webhook/ (fake Graph API; worker apps \"shop\" for every field of @shop, \"studio\" for @studio's comments and mentions, \"studio-inbox\" for its messages; SQLite in %s)\n\n", len(cases), d.base, d.dir)
	fmt.Fprintln(w, "CASE\tHTTP\tANSWER\tEVENT\tDELIVERED TO")
	unroutable := ""
	for _, c := range cases {
		event, to := "-", "-"
		if c.eventID != "" {
			ev, err := demoSettled(ctx, d.store, c.eventID)
			if err != nil {
				return err
			}
			event = string(ev.Status)
			if len(ev.Unroutable) > 0 {
				event += " (no app for " + strings.Join(ev.Unroutable, ", ") + ")"
				unroutable = ev.ID
			}
			page, _ := d.store.FindDeliveries(ctx, mapper.DeliveryQuery{EventID: c.eventID})
			var parts []string
			for _, dl := range page.Items {
				kind := "split"
				if dl.Original {
					kind = "original bytes"
				}
				parts = append(parts, fmt.Sprintf("%s (%s, %s)", d.apps[dl.AppID], kind, dl.Status))
			}
			if len(parts) > 0 {
				slices.Sort(parts)
				to = strings.Join(parts, ", ")
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", c.name, c.status, c.answer, event, to)
	}
	w.Flush()
	fmt.Fprintf(stdout, "\nworker apps received: shop %d, studio %d, studio-inbox %d; Graph API lookups: %d (none to route: a mention is the mentioned account's; one to tell shop who posted the media it was mentioned on: %s)\n",
		len(d.shop.Received()), len(d.studio.Received()), len(d.inbox.Received()), d.graph.Calls(), demoMediaHeader(d.shop.Received()))
	fmt.Fprintf(stdout, `
The server keeps running (Ctrl-C stops it). The console: %[1]s/console/ (sign in with the admin token %[3]s).
Or try:

  curl -s %[1]s/monitoring/health
  curl -s '%[1]s/webhook/?hub.mode=subscribe&hub.verify_token=%[2]s&hub.challenge=1158201444'
  curl -s -H 'Authorization: Bearer %[3]s' %[1]s/worker-apps/
  curl -s -H 'Authorization: Bearer %[3]s' '%[1]s/monitoring/webhook-logs?limit=5'
  curl -s -H 'Authorization: Bearer %[3]s' %[1]s/monitoring/metrics
  body='{"object":"instagram","entry":[{"id":"%[4]s","time":1764331200,"changes":[{"field":"comments","value":{"id":"17900000000000099","text":"hi","media":{"id":"18000000000000001"}}}]}]}'
  curl -s -H "X-Hub-Signature-256: sha256=$(printf %%s "$body" | openssl dgst -sha256 -hmac %[5]s -r | cut -d' ' -f1)" -d "$body" %[1]s/webhook/
  curl -s -X PUT -H 'Authorization: Bearer %[3]s' %[1]s/worker-apps/%[6]s/accounts/%[7]s    # onboard the account that had no app
  curl -s -X POST -H 'Authorization: Bearer %[3]s' %[1]s/events/%[8]s/replay    # and deliver its webhook now

`, d.base, demoVerify, d.adminToken, demoShop, demoSecret, d.appID("shop"), demoNobody, unroutable)
	return nil
}

// appID is the ID of the demo's app of that name.
func (d *demo) appID(name string) string {
	for id, n := range d.apps {
		if n == name {
			return id
		}
	}
	return ""
}

// demoMediaHeader is the enrichment header of the delivery that had one.
func demoMediaHeader(got []fakes.Received) string {
	for _, r := range got {
		if v := r.Header.Get(workerauth.HeaderMedia); v != "" {
			return workerauth.HeaderMedia + ": " + v
		}
	}
	return "no " + workerauth.HeaderMedia + " header"
}

func demoRegister(base, token, name, url, secret, account string, fields []string) (string, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "url": url, "secret": secret, "account_ids": []string{account}, "fields": fields})
	req, _ := http.NewRequest(http.MethodPost, base+"/worker-apps/", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var app mapper.WorkerApp
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&app) != nil {
		return "", fmt.Errorf("registering worker app %s: HTTP %d", name, resp.StatusCode)
	}
	return app.ID, nil
}

// demoSettled waits for an event to reach a final status.
func demoSettled(ctx context.Context, store mapper.Store, id string) (*mapper.Event, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ev, err := store.GetEvent(ctx, id)
		if err != nil {
			return nil, err
		}
		if ev.Status.Terminal() || time.Now().After(deadline) {
			return ev, nil
		}
		select {
		case <-ctx.Done():
			return ev, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
