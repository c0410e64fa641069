package mapper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// The routes of a worker app as a resource: one account onboarded or
// offboarded per call, thousands in one batch, pages of them, and which
// app serves an account. Every write goes through Store.SetRoutes, which
// applies it atomically, so concurrent onboardings never lose each other.

// routeInput is the body of PUT /worker-apps/{id}/accounts/{account_id},
// and an item of a batch.
type routeInput struct {
	AccountID string `json:"account_id"`
	// Fields narrows the route to these fields; empty or absent takes the
	// app's fields.
	Fields []string `json:"fields"`
}

// routeView is a route as the admin API shows it.
type routeView struct {
	AccountID string   `json:"account_id"`
	Fields    []string `json:"fields"`
}

// maxBatchRoutes bounds one batch: a transaction of this size stays well
// under a second on either database.
const maxBatchRoutes = 10000

// checkRoute validates an account ID and field names, writing Meta's
// spelling over aliases.
func checkRoute(account string, fields []string) error {
	if !isDigits(account) {
		return fmt.Errorf("%q is not a numeric Instagram account ID", account)
	}
	return errors.Join(validFields(fields)...)
}

func (m *Mapper) handlePutRoute(w http.ResponseWriter, r *http.Request) {
	var in routeInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", `the body must be {"fields": [...]} or empty: `+err.Error())
		return
	}
	account := r.PathValue("account_id")
	if in.AccountID != "" && in.AccountID != account {
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid-route", "account_id in the body differs from the path")
		return
	}
	if err := checkRoute(account, in.Fields); err != nil {
		invalidProblem(w, r, http.StatusUnprocessableEntity, "invalid-route", err)
		return
	}
	route := Route{AccountID: account, AppID: r.PathValue("id"), Fields: in.Fields}
	if !m.setRoutes(w, r, route.AppID, []Route{route}, nil) {
		return
	}
	writeJSON(w, http.StatusOK, routeView{AccountID: account, Fields: orNone(in.Fields)})
}

func (m *Mapper) handleDeleteRoute(w http.ResponseWriter, r *http.Request) {
	appID, account := r.PathValue("id"), r.PathValue("account_id")
	page, err := m.store.ListRoutes(r.Context(), RouteQuery{AppID: appID, Accounts: []string{account}, Limit: 1})
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	if len(page.Items) == 0 {
		writeProblem(w, r, http.StatusNotFound, "not-found", fmt.Sprintf("account %s is not routed to worker app %s", account, appID))
		return
	}
	if m.setRoutes(w, r, appID, nil, []string{account}) {
		w.WriteHeader(http.StatusNoContent)
	}
}

// setRoutes applies a change of routes, answering the error if any.
func (m *Mapper) setRoutes(w http.ResponseWriter, r *http.Request, appID string, put []Route, remove []string) bool {
	err := m.store.SetRoutes(r.Context(), appID, put, remove)
	// Whatever happened, the next read of these accounts asks the store.
	changed := slices.Clone(remove)
	for _, p := range put {
		changed = append(changed, p.AccountID)
	}
	m.appCache.forgetAccounts(changed)
	if err != nil {
		m.storeError(w, r, err)
		return false
	}
	m.notify() // parked events of these accounts may route now
	return true
}

// routeBatch is the body of POST /worker-apps/{id}/accounts:batch.
type routeBatch struct {
	Put    []routeInput `json:"put"`
	Remove []string     `json:"remove"`
}

// batchResult is one item's outcome in a batch's answer, in the order of
// the request (puts, then removals).
type batchResult struct {
	AccountID string   `json:"account_id"`
	Action    string   `json:"action"` // "put" or "removed"
	Fields    []string `json:"fields,omitempty"`
}

func (m *Mapper) handleRouteBatch(w http.ResponseWriter, r *http.Request) {
	var in routeBatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid-json", `the body must be {"put": [{"account_id", "fields"}], "remove": ["account_id"]}: `+err.Error())
		return
	}
	if n := len(in.Put) + len(in.Remove); n == 0 || n > maxBatchRoutes {
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid-route", fmt.Sprintf("a batch holds 1 to %d routes, this one %d", maxBatchRoutes, n))
		return
	}
	put, remove, errs := checkBatch(&in)
	if len(errs) > 0 {
		sendProblem(w, r, &problem{Type: "invalid-route", Status: http.StatusUnprocessableEntity,
			Detail: fmt.Sprintf("%d of the batch's items are invalid (see errors); nothing was changed", len(errs)), Errors: errs})
		return
	}
	if !m.setRoutes(w, r, r.PathValue("id"), put, remove) {
		return
	}
	out := make([]batchResult, 0, len(put)+len(remove))
	for _, p := range put {
		out = append(out, batchResult{AccountID: p.AccountID, Action: "put", Fields: p.Fields})
	}
	for _, a := range remove {
		out = append(out, batchResult{AccountID: a, Action: "removed"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// checkBatch validates a batch item by item; an account may appear once.
func checkBatch(in *routeBatch) ([]Route, []string, []itemError) {
	var errs []itemError
	seen := make(map[string]bool, len(in.Put)+len(in.Remove))
	once := func(i int, account string) bool {
		if seen[account] {
			errs = append(errs, itemError{Index: i, Detail: fmt.Sprintf("account %s appears twice in the batch", account)})
			return false
		}
		seen[account] = true
		return true
	}
	put := make([]Route, 0, len(in.Put))
	for i, p := range in.Put {
		if err := checkRoute(p.AccountID, p.Fields); err != nil {
			errs = append(errs, itemError{Index: i, Detail: err.Error()})
		} else if once(i, p.AccountID) {
			put = append(put, Route{AccountID: p.AccountID, Fields: p.Fields})
		}
	}
	for i, a := range in.Remove {
		if !isDigits(a) {
			errs = append(errs, itemError{Index: len(in.Put) + i, Detail: fmt.Sprintf("%q is not a numeric Instagram account ID", a)})
		} else {
			once(len(in.Put)+i, a)
		}
	}
	return put, in.Remove, errs
}

func (m *Mapper) handleListRoutes(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := RouteQuery{AppID: r.PathValue("id"), Field: v.Get("field"), Cursor: v.Get("cursor")}
	var err error
	if q.Field != "" {
		fields := []string{q.Field}
		err = errors.Join(validFields(fields)...)
		q.Field = fields[0]
	}
	if err == nil {
		q.Limit, err = parseLimit(v)
	}
	if err != nil {
		invalidProblem(w, r, http.StatusBadRequest, "invalid-query", err)
		return
	}
	app, err := m.storedApp(r.Context(), q.AppID)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	page, err := m.store.ListRoutes(r.Context(), q)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	out := make([]routeView, len(page.Items))
	for i, rt := range page.Items {
		out[i] = routeView{AccountID: rt.AccountID, Fields: orNone(app.fields(rt))}
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out, "next_cursor": page.NextCursor})
}

// accountRoute is one app serving an account, in GET /accounts/{id}.
type accountRoute struct {
	AppID   string `json:"app_id"`
	AppName string `json:"app_name"`
	Enabled bool   `json:"enabled"`
	// Fields are the fields the app receives of the account; empty is all.
	Fields []string `json:"fields"`
}

func (m *Mapper) handleAccount(w http.ResponseWriter, r *http.Request) {
	account := r.PathValue("account_id")
	if !isDigits(account) {
		writeProblem(w, r, http.StatusBadRequest, "invalid-query", fmt.Sprintf("%q is not a numeric Instagram account ID", account))
		return
	}
	routes, err := m.accountRoutes(r.Context(), account)
	if err != nil {
		m.storeError(w, r, err)
		return
	}
	if len(routes) == 0 {
		writeProblem(w, r, http.StatusNotFound, "not-found", fmt.Sprintf("no worker app serves account %s", account))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account_id": account, "routes": routes})
}

// accountRoutes reads, from the store, which apps serve the account.
func (m *Mapper) accountRoutes(ctx context.Context, account string) ([]accountRoute, error) {
	page, err := m.store.ListRoutes(ctx, RouteQuery{Accounts: []string{account}, Limit: 500})
	if err != nil || len(page.Items) == 0 {
		return nil, err
	}
	apps, err := m.store.ListApps(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]accountRoute, 0, len(page.Items))
	for _, rt := range page.Items {
		i := slices.IndexFunc(apps, func(a WorkerApp) bool { return a.ID == rt.AppID })
		if i < 0 {
			continue // deleted meanwhile
		}
		out = append(out, accountRoute{AppID: rt.AppID, AppName: apps[i].Name, Enabled: apps[i].Enabled, Fields: orNone(apps[i].fields(rt))})
	}
	return out, nil
}
