package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/payload"
)

// page is what every template receives.
type page struct {
	Base  string
	Title string
	Nav   string
	Flash string
	Data  any
}

// parsePages parses every page over the shared layout.
func parsePages(base string) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"base":   func() string { return base },
		"when":   when,
		"ago":    ago,
		"ms":     func(d time.Duration) string { return number(float64(d.Microseconds())/1000) + " ms" },
		"dur":    duration,
		"join":   func(s []string) string { return strings.Join(s, ", ") },
		"has":    slices.Contains[[]string],
		"fields": fieldsOf,
		"dead":   func(m *metrics) int64 { return m.Store.DeliveriesByStatus[mapper.DeliveryDead] },
		"count": func(n int, one, many string) string {
			if n == 1 {
				return "1 " + one
			}
			return strconv.Itoa(n) + " " + many
		},
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		if path.Base(n) == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(assets, n)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return out, nil
}

// flashes are the messages a redirect after a POST may ask for.
var flashes = map[string]string{
	"created":       "The worker app was created.",
	"updated":       "The worker app was saved.",
	"enabled":       "The worker app was enabled.",
	"disabled":      "The worker app was disabled: its accounts' webhooks wait as unroutable until it is enabled again.",
	"deleted":       "The worker app was deleted.",
	"reset":         "The circuit was closed: the next delivery to the app goes now.",
	"route-added":   "The account was added.",
	"route-removed": "The account was removed.",
	"replayed":      "Replayed: the event goes through routing and delivery again.",
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	t := c.pages[name]
	p := page{Base: c.base, Nav: name, Data: data, Flash: flashes[r.URL.Query().Get("done")]}
	if n, err := strconv.Atoi(r.URL.Query().Get("replayed")); err == nil {
		p.Flash = "Replayed " + strconv.Itoa(n) + " dead deliveries."
		if n == 1 {
			p.Flash = "Replayed 1 dead delivery."
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.logger.Error("console: rendering "+name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page. An API failure shows what the API said.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", errorPage{Status: status, Message: msg})
}

type errorPage struct {
	Status  int
	Message string
}

// failed shows err, with the API's status when it has one.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		c.fail(w, r, ae.Status, ae.Error())
		return
	}
	if r.Context().Err() == nil {
		c.logger.Error("console: admin API call", "path", r.URL.Path, "error", err)
	}
	c.fail(w, r, http.StatusBadGateway, "The admin API could not be read: "+err.Error())
}

func (c *Console) done(w http.ResponseWriter, r *http.Request, to, what string) {
	http.Redirect(w, r, c.base+to+"?done="+what, http.StatusSeeOther)
}

// Overview.

type overviewPage struct {
	Health    *health
	HealthErr string
	Metrics   *metrics
	MetricErr string
	Charts    []chart
}

func (c *Console) handleOverview(w http.ResponseWriter, r *http.Request) {
	var p overviewPage
	var h health
	// Health answers 503 when down, with its body: show it either way.
	if err := c.call(r.Context(), "GET", "/monitoring/health", nil, nil, &h); err != nil {
		p.HealthErr = err.Error()
		h.Status = "down"
	}
	p.Health = &h
	m, err := c.sample(r.Context())
	if err != nil {
		p.MetricErr = err.Error()
	}
	p.Metrics = m
	p.Charts = charts(c.series.snapshot(), c.now())
	c.render(w, r, http.StatusOK, "overview", p)
}

// Worker apps.

type appsPage struct{ Apps []app }

func (c *Console) listApps(r *http.Request) ([]app, error) {
	var out struct {
		Apps []app `json:"worker_apps"`
	}
	err := c.call(r.Context(), "GET", "/worker-apps/", nil, nil, &out)
	return out.Apps, err
}

func (c *Console) handleApps(w http.ResponseWriter, r *http.Request) {
	apps, err := c.listApps(r)
	if err != nil {
		c.failed(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "apps", appsPage{Apps: apps})
}

// appForm is the create and edit form, with what the API said of each
// field.
type appForm struct {
	ID        string
	App       app
	Accounts  string // one per line, on create
	AllFields []string
	Errors    map[string]string
	Err       string
}

func (c *Console) handleNewApp(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "app-new", appForm{App: app{WorkerApp: mapper.WorkerApp{Enabled: true}}, AllFields: payload.Fields})
}

// readForm reads the app form into the API's input.
func readForm(r *http.Request) (appInput, appForm) {
	enabled := r.PostFormValue("enabled") == "on"
	timeout, _ := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("timeout_ms")), 10, 64)
	conc, _ := strconv.Atoi(strings.TrimSpace(r.PostFormValue("max_concurrency")))
	fields := r.PostForm["fields"]
	in := appInput{Name: r.PostFormValue("name"), URL: strings.TrimSpace(r.PostFormValue("url")), Fields: fields,
		Secret: r.PostFormValue("secret"), Enabled: &enabled, TimeoutMS: timeout, MaxConcurrency: conc,
		Ordered: r.PostFormValue("ordered") == "on"}
	form := appForm{App: app{WorkerApp: mapper.WorkerApp{Name: in.Name, URL: in.URL, Fields: fields, Enabled: enabled,
		MaxConcurrency: conc, Ordered: in.Ordered}, TimeoutMS: timeout}, AllFields: payload.Fields, Accounts: r.PostFormValue("account_ids")}
	return in, form
}

// formErrors puts the API's refusal on the form: by field when it named
// them, else above the form.
func formErrors(form *appForm, err error) int {
	var ae *apiError
	if !errors.As(err, &ae) {
		form.Err = err.Error()
		return http.StatusBadGateway
	}
	form.Errors = ae.byField()
	if len(form.Errors) == 0 {
		form.Err = ae.Error()
	}
	return ae.Status
}

func (c *Console) handleCreateApp(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	in, form := readForm(r)
	accounts := strings.FieldsFunc(form.Accounts, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	in.AccountIDs = &accounts
	var created app
	if err := c.call(r.Context(), "POST", "/worker-apps/", nil, in, &created); err != nil {
		status := formErrors(&form, err)
		c.render(w, r, status, "app-new", form)
		return
	}
	c.done(w, r, "apps/"+url.PathEscape(created.ID), "created")
}

type appPage struct {
	Form     appForm
	App      app
	Routes   routePage
	Field    string
	Next     string
	RouteErr string
}

func (c *Console) handleApp(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var a app
	if err := c.call(r.Context(), "GET", "/worker-apps/"+url.PathEscape(id), nil, nil, &a); err != nil {
		c.failed(w, r, err)
		return
	}
	p := appPage{App: a, Form: appForm{ID: a.ID, App: a, AllFields: payload.Fields}}
	c.appRoutes(r, &p)
	c.render(w, r, http.StatusOK, "app", p)
}

// appRoutes reads the page of the app's accounts the query asks for.
func (c *Console) appRoutes(r *http.Request, p *appPage) {
	q := url.Values{"limit": {"50"}}
	v := r.URL.Query()
	if f := v.Get("field"); f != "" {
		q.Set("field", f)
		p.Field = f
	}
	if cur := v.Get("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	if err := c.call(r.Context(), "GET", "/worker-apps/"+url.PathEscape(p.App.ID)+"/accounts", q, nil, &p.Routes); err != nil {
		p.RouteErr = err.Error()
		return
	}
	if p.Routes.NextCursor != "" {
		next := url.Values{"cursor": {p.Routes.NextCursor}}
		if p.Field != "" {
			next.Set("field", p.Field)
		}
		p.Next = c.base + "apps/" + url.PathEscape(p.App.ID) + "?" + next.Encode()
	}
}

func (c *Console) handleUpdateApp(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	in, form := readForm(r)
	// Without account_ids the API keeps the app's accounts; they are
	// managed below the form, a page at a time.
	var saved app
	if err := c.call(r.Context(), "PUT", "/worker-apps/"+url.PathEscape(id), nil, in, &saved); err != nil {
		var a app
		if gerr := c.call(r.Context(), "GET", "/worker-apps/"+url.PathEscape(id), nil, nil, &a); gerr != nil {
			c.failed(w, r, gerr)
			return
		}
		form.ID, form.App.ID, form.App.Circuit, form.App.InFlight = a.ID, a.ID, a.Circuit, a.InFlight
		status := formErrors(&form, err)
		p := appPage{App: a, Form: form}
		c.appRoutes(r, &p)
		c.render(w, r, status, "app", p)
		return
	}
	c.done(w, r, "apps/"+url.PathEscape(id), "updated")
}

func (c *Console) handleEnableApp(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var a app
	if err := c.call(r.Context(), "GET", "/worker-apps/"+url.PathEscape(id), nil, nil, &a); err != nil {
		c.failed(w, r, err)
		return
	}
	in := a.input()
	on := r.PostFormValue("enabled") == "true"
	in.Enabled = &on
	if err := c.call(r.Context(), "PUT", "/worker-apps/"+url.PathEscape(id), nil, in, nil); err != nil {
		c.failed(w, r, err)
		return
	}
	what := "disabled"
	if on {
		what = "enabled"
	}
	c.done(w, r, "apps", what)
}

func (c *Console) handleDeleteApp(w http.ResponseWriter, r *http.Request) {
	if err := c.call(r.Context(), "DELETE", "/worker-apps/"+url.PathEscape(r.PathValue("id")), nil, nil, nil); err != nil {
		c.failed(w, r, err)
		return
	}
	c.done(w, r, "apps", "deleted")
}

func (c *Console) handleResetCircuit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := c.call(r.Context(), "POST", "/worker-apps/"+url.PathEscape(id)+"/circuit:reset", nil, nil, nil); err != nil {
		c.failed(w, r, err)
		return
	}
	c.done(w, r, "apps/"+url.PathEscape(id), "reset")
}

func (c *Console) handleAddRoute(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	account := strings.TrimSpace(r.PostFormValue("account_id"))
	// The select's first choice, "the app's fields", is an empty value.
	body := map[string]any{"fields": slices.DeleteFunc(r.PostForm["fields"], func(f string) bool { return f == "" })}
	if account == "" {
		c.fail(w, r, http.StatusUnprocessableEntity, "Give the account's ID to add it.")
		return
	}
	if err := c.call(r.Context(), "PUT", "/worker-apps/"+url.PathEscape(id)+"/accounts/"+url.PathEscape(account), nil, body, nil); err != nil {
		c.failed(w, r, err)
		return
	}
	c.done(w, r, "apps/"+url.PathEscape(id), "route-added")
}

func (c *Console) handleRemoveRoute(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	account := r.PostFormValue("account_id")
	if err := c.call(r.Context(), "DELETE", "/worker-apps/"+url.PathEscape(id)+"/accounts/"+url.PathEscape(account), nil, nil, nil); err != nil {
		c.failed(w, r, err)
		return
	}
	c.done(w, r, "apps/"+url.PathEscape(id), "route-removed")
}

// Events.

// filter is a listing's filters as the form shows them.
type filter struct {
	Status  string
	Account string
	AppID   string
	Since   string
	Until   string
}

// readFilter reads the listing filters into the API's query. Times are
// taken as UTC, in the browser's datetime-local form or as RFC 3339.
func readFilter(v url.Values) (filter, url.Values, error) {
	f := filter{Status: v.Get("status"), Account: strings.TrimSpace(v.Get("account")), AppID: v.Get("app_id"),
		Since: v.Get("since"), Until: v.Get("until")}
	q := url.Values{"limit": {"50"}}
	for name, val := range map[string]string{"status": f.Status, "account": f.Account, "app_id": f.AppID, "cursor": v.Get("cursor")} {
		if val != "" {
			q.Set(name, val)
		}
	}
	for name, val := range map[string]string{"since": f.Since, "until": f.Until} {
		if val == "" {
			continue
		}
		t, err := parseTime(val)
		if err != nil {
			return f, nil, errors.New(name + ": " + err.Error())
		}
		q.Set(name, t.Format(time.RFC3339Nano))
	}
	return f, q, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a time such as 2026-11-30T12:00 (UTC)")
}

// nextURL is the listing's next page: the same filters and the cursor.
func (c *Console) nextURL(r *http.Request, to, cursor string) string {
	if cursor == "" {
		return ""
	}
	v := r.URL.Query()
	v.Del("done")
	v.Del("replayed")
	v.Set("cursor", cursor)
	return c.base + to + "?" + v.Encode()
}

type eventsPage struct {
	Filter   filter
	Statuses []string
	Apps     []app
	Events   []mapper.Event
	Next     string
	Err      string
}

var eventStatuses = []string{"pending", "dispatched", "delivered", "unroutable", "dead", "duplicate", "ignored"}

func (c *Console) handleEvents(w http.ResponseWriter, r *http.Request) {
	f, q, err := readFilter(r.URL.Query())
	p := eventsPage{Filter: f, Statuses: eventStatuses}
	p.Apps, _ = c.listApps(r)
	status := http.StatusOK
	if err == nil {
		var page eventPage
		if err = c.call(r.Context(), "GET", "/monitoring/webhook-logs", q, nil, &page); err == nil {
			p.Events, p.Next = page.Events, c.nextURL(r, "events", page.NextCursor)
		}
	}
	if err != nil {
		p.Err, status = err.Error(), statusOf(err)
	}
	c.render(w, r, status, "events", p)
}

type eventView struct {
	Event    eventDetail
	Payload  string
	AppNames map[string]string
}

func (c *Console) handleEvent(w http.ResponseWriter, r *http.Request) {
	var ev eventDetail
	if err := c.call(r.Context(), "GET", "/monitoring/webhook-logs/"+url.PathEscape(r.PathValue("id")), nil, nil, &ev); err != nil {
		c.failed(w, r, err)
		return
	}
	p := eventView{Event: ev, Payload: string(ev.Payload), AppNames: map[string]string{}}
	var pretty bytes.Buffer
	if json.Indent(&pretty, ev.Payload, "", "  ") == nil {
		p.Payload = pretty.String()
	}
	apps, _ := c.listApps(r)
	for _, a := range apps {
		p.AppNames[a.ID] = a.Name
	}
	c.render(w, r, http.StatusOK, "event", p)
}

func (c *Console) handleReplayEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := c.call(r.Context(), "POST", "/events/"+url.PathEscape(id)+"/replay", nil, nil, nil); err != nil {
		c.failed(w, r, err)
		return
	}
	c.done(w, r, "events/"+url.PathEscape(id), "replayed")
}

func (c *Console) handleReplayDelivery(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var d mapper.Delivery
	if err := c.call(r.Context(), "POST", "/deliveries/"+url.PathEscape(id)+"/replay", nil, nil, &d); err != nil {
		c.failed(w, r, err)
		return
	}
	http.Redirect(w, r, c.base+"events/"+url.PathEscape(d.EventID)+"?replayed=1", http.StatusSeeOther)
}

// Dead letters.

type deadPage struct {
	Filter     filter
	Apps       []app
	AppNames   map[string]string
	Deliveries []mapper.Delivery
	Next       string
	Err        string
}

func (c *Console) handleDead(w http.ResponseWriter, r *http.Request) {
	f, q, err := readFilter(r.URL.Query())
	q.Del("account")
	q.Set("status", "dead")
	p := deadPage{Filter: f, AppNames: map[string]string{}}
	p.Apps, _ = c.listApps(r)
	for _, a := range p.Apps {
		p.AppNames[a.ID] = a.Name
	}
	status := http.StatusOK
	if err == nil {
		var page deliveryPage
		if err = c.call(r.Context(), "GET", "/deliveries/", q, nil, &page); err == nil {
			p.Deliveries, p.Next = page.Deliveries, c.nextURL(r, "dead", page.NextCursor)
		}
	}
	if err != nil {
		p.Err, status = err.Error(), statusOf(err)
	}
	c.render(w, r, status, "dead", p)
}

func (c *Console) handleReplaySelected(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		c.fail(w, r, http.StatusUnprocessableEntity, "Select the deliveries to replay.")
		return
	}
	n := 0
	for _, id := range ids {
		if err := c.call(r.Context(), "POST", "/deliveries/"+url.PathEscape(id)+"/replay", nil, nil, nil); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusConflict {
				continue // replayed meanwhile, by someone else
			}
			c.failed(w, r, err)
			return
		}
		n++
	}
	http.Redirect(w, r, c.base+"dead?replayed="+strconv.Itoa(n), http.StatusSeeOther)
}

func (c *Console) handleReplayAll(w http.ResponseWriter, r *http.Request) {
	in := map[string]string{}
	if id := r.PostFormValue("app_id"); id != "" {
		in["app_id"] = id
	}
	for _, name := range []string{"since", "until"} {
		if v := r.PostFormValue(name); v != "" {
			t, err := parseTime(v)
			if err != nil {
				c.fail(w, r, http.StatusUnprocessableEntity, name+": "+err.Error())
				return
			}
			in[name] = t.Format(time.RFC3339Nano)
		}
	}
	var out struct {
		Replayed int `json:"replayed"`
	}
	if err := c.call(r.Context(), "POST", "/deliveries/replay", nil, in, &out); err != nil {
		c.failed(w, r, err)
		return
	}
	http.Redirect(w, r, c.base+"dead?replayed="+strconv.Itoa(out.Replayed), http.StatusSeeOther)
}

// statusOf is the status a listing answers with when err stopped it: the
// API's, or 400 for a filter the console could not read.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return http.StatusBadRequest
}

// Formatting.

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return duration(time.Since(t)) + " ago"
}

// duration writes d briefly: 850 ms, 12 s, 3 min, 5 h.
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < 2*time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	case d < 2*time.Hour:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	default:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " h"
	}
}
