package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/chatico/mapper"
)

// apiError is a problem the admin API answered with (RFC 9457).
type apiError struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Fields []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"fields"`
	Conflicts []struct {
		AccountID string `json:"account_id"`
		Field     string `json:"field"`
		AppID     string `json:"app_id"`
	} `json:"conflicts"`
}

func (e *apiError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	return fmt.Sprintf("the admin API answered %d %s", e.Status, e.Title)
}

// byField maps each invalid field to its reasons, for a form.
func (e *apiError) byField() map[string]string {
	out := map[string]string{}
	for _, f := range e.Fields {
		if out[f.Field] != "" {
			out[f.Field] += "; "
		}
		out[f.Field] += f.Detail
	}
	return out
}

// recorder is the response of one in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// call makes one admin API request and decodes its JSON answer into out
// (when out is not nil). A problem answer is an *apiError.
func (c *Console) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	target := path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mapper"+target, body)
	if err != nil {
		return err
	}
	req.RequestURI = target
	req.RemoteAddr = "console"
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		e := &apiError{Status: rec.status, Title: http.StatusText(rec.status)}
		if strings.Contains(rec.header.Get("Content-Type"), "json") {
			_ = json.Unmarshal(rec.body.Bytes(), e)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("console: reading %s %s: %w", method, path, err)
	}
	return nil
}

// The admin API's records, as much of them as the pages show.

// app is a worker app as the admin API shows it.
type app struct {
	mapper.WorkerApp
	TimeoutMS         int64  `json:"timeout_ms"`
	AccountsTruncated bool   `json:"accounts_truncated"`
	Circuit           string `json:"circuit"`
	InFlight          int    `json:"in_flight"`
}

// appInput is the body of a create or an update.
type appInput struct {
	Name           string    `json:"name"`
	URL            string    `json:"url"`
	AccountIDs     *[]string `json:"account_ids,omitempty"`
	Fields         []string  `json:"fields"`
	Secret         string    `json:"secret,omitempty"`
	Enabled        *bool     `json:"enabled"`
	TimeoutMS      int64     `json:"timeout_ms"`
	MaxConcurrency int       `json:"max_concurrency"`
	Ordered        bool      `json:"ordered"`
}

func (a *app) input() appInput {
	enabled := a.Enabled
	return appInput{Name: a.Name, URL: a.URL, Fields: a.Fields, Enabled: &enabled, TimeoutMS: a.TimeoutMS,
		MaxConcurrency: a.MaxConcurrency, Ordered: a.Ordered}
}

type route struct {
	AccountID string   `json:"account_id"`
	Fields    []string `json:"fields"`
}

type routePage struct {
	Accounts   []route `json:"accounts"`
	NextCursor string  `json:"next_cursor"`
}

// fieldsOf lists an event's item fields once each, in order.
func fieldsOf(e mapper.Event) []string {
	var out []string
	for _, it := range e.Items {
		f := it.Field
		if f == "" {
			f = it.Kind
		}
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

type eventPage struct {
	Events     []mapper.Event `json:"events"`
	NextCursor string         `json:"next_cursor"`
}

type deliveryPage struct {
	Deliveries []mapper.Delivery `json:"deliveries"`
	NextCursor string            `json:"next_cursor"`
}

// eventDetail is an event with its payload and its deliveries' attempts.
type eventDetail struct {
	mapper.Event
	Payload    json.RawMessage   `json:"payload"`
	Deliveries []mapper.Delivery `json:"deliveries"`
}

type health struct {
	Status  string            `json:"status"`
	Checks  map[string]string `json:"checks"`
	Details map[string]struct {
		LatencyMS float64 `json:"latency_ms"`
		Error     string  `json:"error"`
	} `json:"details"`
}

type metrics struct {
	Counters struct {
		Webhooks map[string]int64 `json:"webhooks"`
		Attempts map[string]int64 `json:"delivery_attempts"`
		Routing  map[string]int64 `json:"routing"`
	} `json:"counters"`
	Store mapper.Stats `json:"store"`
}
