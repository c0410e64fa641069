package mapper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatico/mapper/internal/apidocs"
	"github.com/chatico/mapper/internal/ids"
	"github.com/chatico/mapper/internal/payload"
)

// surface says which routes a handler serves.
type surface uint8

const (
	surfaceWebhook surface = 1 << iota // Meta's routes: public, they check Meta's signature
	surfaceAdmin                       // worker apps, deliveries, events, monitoring: the admin token
)

// route is one entry of the route table: every route the Mapper serves
// is in it, and only public ones skip the admin token.
type route struct {
	pattern string
	surface surface // surfaceWebhook|surfaceAdmin: on both handlers
	public  bool
	handler http.HandlerFunc
}

// routeTable is every route. The health, liveness and readiness probes
// are on both surfaces, open, so that a load balancer or Kubernetes can
// probe either listener; they say nothing a stranger could use.
func (m *Mapper) routeTable() []route {
	both := surfaceWebhook | surfaceAdmin
	table := []route{
		{"GET /webhook/{$}", surfaceWebhook, true, m.handleHandshake},
		{"GET /webhook", surfaceWebhook, true, m.handleHandshake},
		{"POST /webhook/{$}", surfaceWebhook, true, m.handleWebhook},
		{"POST /webhook", surfaceWebhook, true, m.handleWebhook},
		{"GET /monitoring/health", both, true, m.handleHealth},
		{"GET /monitoring/live", both, true, m.handleLive},
		{"GET /monitoring/ready", both, true, m.handleReady},
		// The API's document and the pages that render it, for operators:
		// on the admin surface, but open (they hold no secret).
		{"GET /openapi.json", surfaceAdmin, true, apidocs.OpenAPI},
		{"GET /docs", surfaceAdmin, true, apidocs.Docs},
		{"GET /redoc", surfaceAdmin, true, apidocs.Redoc},
		{"GET /docs-assets/{file...}", surfaceAdmin, true, apidocs.Assets().ServeHTTP},
	}
	for _, r := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /worker-apps/{$}", m.handleListApps},
		{"POST /worker-apps/{$}", m.handleCreateApp},
		{"GET /worker-apps/{id}", m.handleGetApp},
		{"PUT /worker-apps/{id}", m.handleUpdateApp},
		{"DELETE /worker-apps/{id}", m.handleDeleteApp},
		{"POST /worker-apps/{id}/circuit:reset", m.handleResetCircuit},
		{"GET /worker-apps/{id}/accounts", m.handleListRoutes},
		{"POST /worker-apps/{id}/accounts:batch", m.handleRouteBatch},
		{"PUT /worker-apps/{id}/accounts/{account_id}", m.handlePutRoute},
		{"DELETE /worker-apps/{id}/accounts/{account_id}", m.handleDeleteRoute},
		{"GET /accounts/{account_id}", m.handleAccount},
		{"GET /deliveries/{$}", m.handleListDeliveries},
		{"POST /deliveries/{id}/replay", m.handleReplayDelivery},
		{"POST /deliveries/replay", m.handleReplayDead},
		{"POST /events/{id}/replay", m.handleReplayEvent},
		{"GET /monitoring/metrics", m.handleMetrics},
		{"GET /monitoring/webhook-logs", m.handleLogs},
		{"GET /monitoring/webhook-logs/{id}", m.handleEvent},
	} {
		table = append(table, route{r.pattern, surfaceAdmin, false, r.h})
	}
	return table
}

// routes builds a handler of the given surfaces from the route table.
// Every error, 404 and 405 included, is problem+json.
func (m *Mapper) routes(which surface) http.Handler {
	mux := http.NewServeMux()
	for _, r := range m.routeTable() {
		switch {
		case r.surface&which == 0:
		case r.public:
			mux.HandleFunc(r.pattern, r.handler)
		default:
			mux.Handle(r.pattern, m.requireAdmin(cleanRequest(r.handler)))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			// ServeHTTP, not h: only the mux sets the path values.
			mux.ServeHTTP(w, r)
			return
		}
		// No route: let the mux decide between 404 and 405 (and set
		// Allow), then answer in problem+json.
		c := &statusCapture{header: w.Header()}
		h.ServeHTTP(c, r)
		switch c.status {
		case http.StatusMethodNotAllowed:
			writeProblem(w, r, c.status, "method-not-allowed", r.Method+" is not allowed here; see the Allow header")
		default:
			writeProblem(w, r, http.StatusNotFound, "not-found", "no route for "+r.URL.Path)
		}
	})
}

// mountPrefix is the path an embedding service mounted the handler under
// with http.StripPrefix, which leaves RequestURI as the client sent it;
// links the admin API returns start with it.
func mountPrefix(r *http.Request) string {
	path, _, _ := strings.Cut(r.RequestURI, "?")
	if prefix, ok := strings.CutSuffix(path, r.URL.Path); ok && strings.HasPrefix(prefix, "/") {
		return prefix
	}
	return ""
}

type statusCapture struct {
	header http.Header
	status int
}

func (c *statusCapture) Header() http.Header { return c.header }
func (c *statusCapture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *statusCapture) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// Protect puts h behind the admin bearer token, as the admin routes are:
// for routes an embedding service adds, such as Prometheus' /metrics.
func (m *Mapper) Protect(h http.Handler) http.Handler { return m.requireAdmin(h.ServeHTTP) }

// requireAdmin checks "Authorization: Bearer <token>" in constant time.
func (m *Mapper) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.adminToken == "" {
			writeProblem(w, r, http.StatusForbidden, "admin-disabled", "the admin API is disabled: no admin token is configured")
			return
		}
		if !m.isAdmin(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mapper"`)
			writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required")
			return
		}
		h(w, r)
	})
}

// cleanRequest refuses a path or query parameter holding a control
// character with a 400 naming it: no ID, filter or cursor has one, and a
// NUL would otherwise reach the database.
func cleanRequest(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if payload.HasControl(r.URL.Path) {
			writeProblem(w, r, http.StatusBadRequest, "invalid-query", fmt.Sprintf("the path %q holds a control character", r.URL.Path))
			return
		}
		for name, vs := range r.URL.Query() {
			for _, v := range vs {
				if payload.HasControl(name) || payload.HasControl(v) {
					writeProblem(w, r, http.StatusBadRequest, "invalid-query", fmt.Sprintf("%s: %q holds a control character", name, v))
					return
				}
			}
		}
		h(w, r)
	}
}

// isAdmin reports whether r carries the admin bearer token (never, when
// no token is configured).
func (m *Mapper) isAdmin(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && m.cfg.adminToken != "" && equalSecret(token, m.cfg.adminToken)
}

// appInput is the body of POST and PUT /worker-apps/. Enabled defaults to
// true; on PUT an omitted secret keeps the stored one.
type appInput struct {
	Name       string   `json:"name"`
	URL        string   `json:"url"`
	AccountIDs []string `json:"account_ids"`
	// Fields limits the app to these webhook subscription fields of its
	// accounts (empty or absent: every field).
	Fields  []string `json:"fields"`
	Secret  string   `json:"secret"`
	Enabled *bool    `json:"enabled"`
	// TimeoutMS caps one attempt to this app (0: the Mapper's timeout).
	TimeoutMS int64 `json:"timeout_ms"`
	// MaxConcurrency caps the attempts in flight to it (0: the default).
	MaxConcurrency int `json:"max_concurrency"`
	// Ordered delivers one at a time, in receive order.
	Ordered bool `json:"ordered"`
}

// appView is a worker app as the admin API shows it: without its secret,
// with its timeout in milliseconds, its circuit in this Mapper, and its
// accounts when it has at most inlineAccounts of them (else
// accounts_truncated, and GET /worker-apps/{id}/accounts pages them).
type appView struct {
	*WorkerApp
	AccountIDs *[]string    `json:"account_ids,omitempty"`
	Truncated  bool         `json:"accounts_truncated,omitempty"`
	TimeoutMS  int64        `json:"timeout_ms,omitempty"`
	Circuit    circuitState `json:"circuit"`
	// InFlight counts this process's attempts to the app under way.
	InFlight int `json:"in_flight"`
}

// inlineAccounts is how many accounts an app's view lists at most.
const inlineAccounts = 100

func (m *Mapper) view(ctx context.Context, app *WorkerApp) (appView, error) {
	app.Fields = orNone(app.Fields)
	v := appView{WorkerApp: app, TimeoutMS: app.Timeout.Milliseconds()}
	v.Circuit, v.InFlight = m.apps.circuit(app.ID, m.cfg.now())
	page, err := m.store.ListRoutes(ctx, RouteQuery{AppID: app.ID, Limit: inlineAccounts})
	if err != nil {
		return v, err
	}
	if page.NextCursor != "" {
		v.Truncated = true
		return v, nil
	}
	accounts := make([]string, len(page.Items))
	for i, r := range page.Items {
		accounts[i] = r.AccountID
	}
	v.AccountIDs = &accounts
	return v, nil
}

// Validate checks an app's fields; requireSecret is set on create.
func (in *appInput) Validate(requireSecret bool) error {
	var errs []error
	if strings.TrimSpace(in.Name) == "" || len(in.Name) > 200 || payload.HasControl(in.Name) {
		errs = append(errs, &fieldError{"name", "must be 1 to 200 characters, none of them a control character"})
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		errs = append(errs, &fieldError{"url", "must be an absolute http or https URL without credentials"})
	}
	errs = append(errs, validAccounts(in.AccountIDs)...)
	errs = append(errs, validFields(in.Fields)...)
	if (requireSecret || in.Secret != "") && (len(in.Secret) < 16 || payload.HasControl(in.Secret)) {
		errs = append(errs, &fieldError{"secret", "must be at least 16 characters, none of them a control character"})
	}
	if in.TimeoutMS < 0 || in.TimeoutMS > 0 && in.TimeoutMS < 100 || in.TimeoutMS > maxAppTimeout.Milliseconds() {
		errs = append(errs, &fieldError{"timeout_ms", fmt.Sprintf("must be 0 (the default) or from 100 to %d", maxAppTimeout.Milliseconds())})
	}
	if in.MaxConcurrency < 0 || in.MaxConcurrency > 1000 {
		errs = append(errs, &fieldError{"max_concurrency", "must be from 0 (the default) to 1000"})
	}
	return errors.Join(errs...)
}

// validAccounts checks an app's account IDs.
func validAccounts(ids []string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, id := range ids {
		if !isDigits(id) {
			errs = append(errs, &fieldError{"account_ids", fmt.Sprintf("%q is not a numeric Instagram account ID", id)})
		} else if seen[id] {
			errs = append(errs, &fieldError{"account_ids", fmt.Sprintf("%q is listed twice", id)})
		}
		seen[id] = true
	}
	return errs
}

// validFields checks an app's field names, writing Meta's spelling over an
// alias.
func validFields(fields []string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, f := range fields {
		if canon, ok := payload.FieldAliases[f]; ok {
			f, fields[i] = canon, canon
		}
		switch {
		case !slices.Contains(payload.Fields, f):
			errs = append(errs, &fieldError{"fields", fmt.Sprintf("%q is not an Instagram webhook field (want one of %s)", f, strings.Join(payload.Fields, ", "))})
		case seen[f]:
			errs = append(errs, &fieldError{"fields", fmt.Sprintf("%q is listed twice", f)})
		}
		seen[f] = true
	}
	return errs
}

// maxAppTimeout bounds an app's own timeout; the Mapper also holds every
// attempt within half its lease.
const maxAppTimeout = 5 * time.Minute

func isDigits(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (m *Mapper) readAppInput(w http.ResponseWriter, r *http.Request, requireSecret bool) (*appInput, bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var in appInput
	if err := dec.Decode(&in); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", "the body must be one JSON worker app: "+err.Error())
		return nil, false
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", "the body must hold exactly one JSON object")
		return nil, false
	}
	err := in.Validate(requireSecret)
	if err == nil {
		if perr := m.cfg.dialPolicy.CheckURL(r.Context(), in.URL); perr != nil {
			err = &fieldError{"url", perr.Error()}
		}
	}
	if err != nil {
		invalidProblem(w, r, http.StatusUnprocessableEntity, "invalid-worker-app", err)
		return nil, false
	}
	return &in, true
}

func (m *Mapper) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalidInput):
		// A query the store cannot read, such as a forged cursor.
		invalidProblem(w, r, http.StatusBadRequest, "invalid-query", err)
	case errors.Is(err, ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such record")
	case errors.Is(err, ErrConflict):
		p := &problem{Type: "conflict", Status: http.StatusConflict, Detail: err.Error()}
		if cs := routeConflicts(err); len(cs) > 0 {
			p.Conflicts, p.Detail = cs, conflictDetail(cs)
		}
		sendProblem(w, r, p)
	default:
		// A query cut short because its client left (or the server is
		// stopping) is no store failure.
		if r.Context().Err() == nil {
			m.cfg.logger.ErrorContext(r.Context(), "store error", "error", err.Error(), "path", r.URL.Path)
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "store-unavailable", "the store could not answer; retry later")
	}
}

func (m *Mapper) handleListApps(w http.ResponseWriter, r *http.Request) {
	apps, err := m.store.ListApps(r.Context())
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	views := make([]appView, len(apps))
	for i := range apps {
		if views[i], err = m.view(r.Context(), &apps[i]); err != nil {
			m.storeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"worker_apps": views})
}

func (m *Mapper) handleCreateApp(w http.ResponseWriter, r *http.Request) {
	in, ok := m.readAppInput(w, r, true)
	if !ok {
		return
	}
	now := m.cfg.now()
	app := &WorkerApp{ID: ids.New("app_", now), Name: in.Name, URL: in.URL, AccountIDs: in.AccountIDs, Fields: orNone(in.Fields),
		Secret: in.Secret, Enabled: in.Enabled == nil || *in.Enabled, Timeout: time.Duration(in.TimeoutMS) * time.Millisecond,
		MaxConcurrency: in.MaxConcurrency, Ordered: in.Ordered, CreatedAt: now, UpdatedAt: now}
	err := m.store.CreateApp(r.Context(), app)
	m.appCache.invalidate() // whatever happened, the next read asks the store
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	m.apps.setLimit(app)
	w.Header().Set("Location", mountPrefix(r)+"/worker-apps/"+app.ID)
	m.writeApp(w, r, http.StatusCreated, app)
}

func (m *Mapper) handleGetApp(w http.ResponseWriter, r *http.Request) {
	app, err := m.storedApp(r.Context(), r.PathValue("id"))
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	m.writeApp(w, r, http.StatusOK, app)
}

// writeApp answers with one app's view.
func (m *Mapper) writeApp(w http.ResponseWriter, r *http.Request, code int, app *WorkerApp) {
	v, err := m.view(r.Context(), app)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	writeJSON(w, code, v)
}

// storedApp reads one app from the store, not the cache: the admin API
// shows what is stored.
func (m *Mapper) storedApp(ctx context.Context, id string) (*WorkerApp, error) {
	apps, err := m.store.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	for i := range apps {
		if apps[i].ID == id {
			return &apps[i], nil
		}
	}
	return nil, fmt.Errorf("worker app %q: %w", id, ErrNotFound)
}

func (m *Mapper) handleUpdateApp(w http.ResponseWriter, r *http.Request) {
	in, ok := m.readAppInput(w, r, false)
	if !ok {
		return
	}
	old, err := m.storedApp(r.Context(), r.PathValue("id"))
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	app := *old
	app.Name, app.URL, app.AccountIDs, app.Fields = in.Name, in.URL, in.AccountIDs, orNone(in.Fields)
	if in.Secret != "" {
		app.Secret = in.Secret
	}
	if in.Enabled != nil {
		app.Enabled = *in.Enabled
	}
	app.Timeout, app.MaxConcurrency, app.Ordered = time.Duration(in.TimeoutMS)*time.Millisecond, in.MaxConcurrency, in.Ordered
	app.UpdatedAt = m.cfg.now()
	err = m.store.UpdateApp(r.Context(), &app)
	m.appCache.invalidate() // whatever happened, the next read asks the store
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	// A changed app gets a fresh circuit, and what waits for it goes now.
	m.apps.reset(app.ID)
	m.apps.setLimit(&app)
	m.notify()
	m.writeApp(w, r, http.StatusOK, &app)
}

// handleResetCircuit closes an app's circuit in this Mapper, for an
// operator who knows the app is back, and wakes the loop for its backlog.
func (m *Mapper) handleResetCircuit(w http.ResponseWriter, r *http.Request) {
	app, err := m.storedApp(r.Context(), r.PathValue("id"))
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	m.apps.reset(app.ID)
	m.notify()
	m.writeApp(w, r, http.StatusOK, app)
}

func (m *Mapper) handleDeleteApp(w http.ResponseWriter, r *http.Request) {
	err := m.store.DeleteApp(r.Context(), r.PathValue("id"))
	m.appCache.invalidate() // whatever happened, the next read asks the store
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// metricsResponse is the body of GET /monitoring/metrics.
type metricsResponse struct {
	Counters countersView `json:"counters"`
	// Store aggregates the log; processing-time percentiles cover the last
	// hour.
	Store Stats `json:"store"`
}

func (m *Mapper) handleMetrics(w http.ResponseWriter, r *http.Request) {
	st, err := m.stats(r.Context())
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, metricsResponse{Counters: m.snapshot(), Store: st})
}

func (m *Mapper) handleLogs(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r.URL.Query())
	if err != nil {
		invalidProblem(w, r, http.StatusBadRequest, "invalid-query", err)
		return
	}
	page, err := m.store.ListEvents(r.Context(), q)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, eventPage{Events: orNone(page.Items), NextCursor: page.NextCursor})
}

func parseTimes(v url.Values, since, until *time.Time) error {
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", since}, {"until", until}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return &fieldError{f.name, "must be an RFC 3339 time such as 2026-11-28T12:00:00Z"}
			}
			*f.dst = t
		}
	}
	return nil
}

func parseLimit(v url.Values) (int, error) {
	s := v.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > ids.MaxPageLimit {
		return 0, &fieldError{"limit", fmt.Sprintf("must be a whole number from 1 to %d", ids.MaxPageLimit)}
	}
	return n, nil
}

func parseEventQuery(v url.Values) (EventQuery, error) {
	q := EventQuery{Status: EventStatus(v.Get("status")), Account: v.Get("account"), AppID: v.Get("app_id"), Cursor: v.Get("cursor")}
	if q.Status != "" && !validEventStatus(q.Status) {
		return q, &fieldError{"status", fmt.Sprintf("%q is not an event status", q.Status)}
	}
	if err := parseTimes(v, &q.Since, &q.Until); err != nil {
		return q, err
	}
	var err error
	q.Limit, err = parseLimit(v)
	return q, err
}

// eventDetail is the body of GET /monitoring/webhook-logs/{id}.
type eventDetail struct {
	Event
	Payload    json.RawMessage   `json:"payload"`
	Deliveries []deliveryHistory `json:"deliveries"`
}

// deliveryHistory is a delivery with its attempts, listed even when
// there are none.
type deliveryHistory struct {
	Delivery
	History []Attempt `json:"attempts_history"`
}

// eventPage and deliveryPage are the bodies of the admin listings.
type (
	eventPage struct {
		Events     []Event `json:"events"`
		NextCursor string  `json:"next_cursor,omitempty"`
	}
	deliveryPage struct {
		Deliveries []Delivery `json:"deliveries"`
		NextCursor string     `json:"next_cursor,omitempty"`
	}
)

// orNone makes a nil list an empty one, so that the API shows [].
func orNone[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (m *Mapper) handleEvent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ev, err := m.store.GetEvent(ctx, r.PathValue("id"))
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	ds, err := m.eventDeliveries(ctx, ev.ID, true)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	out := eventDetail{Event: *ev, Payload: ev.Payload, Deliveries: make([]deliveryHistory, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryHistory{Delivery: d, History: orNone(d.History)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Mapper) handleListDeliveries(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := DeliveryQuery{Status: DeliveryStatus(v.Get("status")), AppID: v.Get("app_id"), EventID: v.Get("event_id"), Cursor: v.Get("cursor")}
	var err error
	switch {
	case q.Status != "" && q.Status != DeliveryPending && q.Status != DeliveryDelivered && q.Status != DeliveryDead:
		err = &fieldError{"status", fmt.Sprintf("%q is not a delivery status (pending, delivered, dead)", q.Status)}
	default:
		if err = parseTimes(v, &q.Since, &q.Until); err == nil {
			q.Limit, err = parseLimit(v)
		}
	}
	if err != nil {
		invalidProblem(w, r, http.StatusBadRequest, "invalid-query", err)
		return
	}
	page, err := m.store.FindDeliveries(r.Context(), q)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deliveryPage{Deliveries: orNone(page.Items), NextCursor: page.NextCursor})
}

func (m *Mapper) handleReplayDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := m.replayDelivery(r.Context(), r.PathValue("id"))
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	m.notify()
	writeJSON(w, http.StatusOK, d)
}

func (m *Mapper) handleReplayEvent(w http.ResponseWriter, r *http.Request) {
	ev, err := m.replayEvent(r.Context(), r.PathValue("id"))
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	m.notify()
	writeJSON(w, http.StatusOK, ev)
}

// replayInput is the body of POST /deliveries/replay: which dead
// deliveries to replay. An empty body replays every dead delivery.
type replayInput struct {
	AppID string    `json:"app_id"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

func (m *Mapper) handleReplayDead(w http.ResponseWriter, r *http.Request) {
	var in replayInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", "the body must be {\"app_id\", \"since\", \"until\"} (each optional): "+err.Error())
		return
	}
	n, err := m.replayDead(r.Context(), DeliveryQuery{AppID: in.AppID, Since: in.Since, Until: in.Until})
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	if n > 0 {
		m.notify()
	}
	writeJSON(w, http.StatusOK, map[string]int64{"replayed": n})
}
