package mapper_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/chatico/mapper"
	"github.com/chatico/mapper/internal/apidocs"
	"github.com/chatico/mapper/storage/memstore"
)

// The OpenAPI document the Mapper serves (TestDocsPages checks that it is
// served), loaded and validated once for every test.
var contract = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(apidocs.Document())
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
})

// TestOpenAPIMatchesRoutes: the served document is valid OpenAPI 3.1, every
// route the Mapper serves is in it, and everything in it is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapper.New(memstore.New(), mapper.WithMetaSecrets("s"), mapper.WithVerifyToken("v"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var served []string
	for pattern := range m.RouteTable() {
		if strings.HasPrefix(pattern, "GET /docs-assets/") {
			continue // the pages' scripts and styles, not API
		}
		served = append(served, strings.Replace(pattern, "{$}", "", 1))
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("served but not documented: %s", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("documented but not served: %s", d)
		}
	}
}

// contractCheck wraps a handler so that every request and response going
// through it is validated against the document; what does not match is
// reported on t when the test ends. A response the document does not
// describe (a status it does not list, a field it does not know) fails.
func contractCheck(t *testing.T, h http.Handler) http.Handler {
	checked, problems := newContractChecker(t, h)
	t.Cleanup(func() {
		for _, p := range problems()[:min(len(problems()), 20)] {
			t.Errorf("contract: %s", p)
		}
	})
	return checked
}

// newContractChecker wraps h, and returns what did not match so far.
func newContractChecker(t *testing.T, h http.Handler) (http.Handler, func() []string) {
	doc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	list := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(problems)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The handler reads the body and writes the answer as it would
		// unwrapped (deadlines and limits included); copies are kept.
		var reqBody bytes.Buffer
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(r.Body, &reqBody), r.Body}
		rec := &recordingWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		body := reqBody.Bytes()

		check := r.Clone(context.Background())
		check.Body = io.NopCloser(bytes.NewReader(body))
		if strings.HasPrefix(r.URL.Path, "/docs-assets/") {
			return // the pages' scripts and styles, not API
		}
		route, params, err := router.FindRoute(check)
		if err != nil {
			if rec.code() != http.StatusNotFound && rec.code() != http.StatusMethodNotAllowed {
				report("%s %s answered %d but is not in the document: %v", r.Method, r.URL.Path, rec.code(), err)
			}
			return
		}
		reqOpts := opts
		if len(body) == 0 || r.Header.Get("Content-Type") == "" {
			// No body, or a test client that names no type: the Mapper
			// reads JSON whatever the header says.
			o := *opts
			o.ExcludeRequestBody = true
			reqOpts = &o
		}
		in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route, Options: reqOpts}
		if rec.code() < 400 {
			// Requests the Mapper refused may well be invalid; those it
			// served must match the document.
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				report("%s %s request (answered %d): %v", r.Method, r.URL.Path, rec.code(), err)
			}
		}
		respOpts := opts
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			// A page: its status and type are checked, not its HTML.
			o := *opts
			o.ExcludeResponseBody = true
			respOpts = &o
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.code(), Header: rec.Header(), Options: respOpts}
		out.SetBodyBytes(rec.body.Bytes())
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			report("%s %s response %d: %v", r.Method, r.URL.Path, rec.code(), err)
		}
	}), list
}

// TestContractCatchesDrift: a response that drifted from the document (a
// field of the wrong type, a field it does not know, a status it does not
// list) is reported.
func TestContractCatchesDrift(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path string
		status     int
		body       string
	}{
		{"wrong type", "/worker-apps/app_1", 200, `{"id":1,"name":"x","url":"http://x","fields":[],"enabled":true,"ordered":false,"circuit":"closed","created_at":"2026-11-30T00:00:00Z","updated_at":"2026-11-30T00:00:00Z"}`},
		{"unknown field", "/monitoring/live", 200, `{"status":"ok","uptime":3}`},
		{"unlisted status", "/monitoring/live", 418, `{"status":"ok"}`},
	} {
		drifted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		})
		h, problems := newContractChecker(t, drifted)
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("Authorization", "Bearer x")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if len(problems()) == 0 {
			t.Errorf("%s: the drifted response passed", tc.name)
		}
	}
}

// recordingWriter passes an answer through and keeps a copy.
type recordingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recordingWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// The document and the pages that render it are served from the binary,
// open, with a strict Content-Security-Policy, and their assets too.
func TestDocsPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		path, ctype, contains string
		code                  int
	}{
		{"/openapi.json", "application/json", `"openapi": "3.1.0"`, 200},
		{"/docs", "text/html", "docs-assets/swagger-ui/swagger-ui-bundle.js", 200},
		{"/redoc", "text/html", "docs-assets/redoc/redoc.standalone.js", 200},
		{"/docs-assets/swagger-ui/swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle", 200},
		{"/docs-assets/swagger-ui/swagger-ui.css", "text/css", ".swagger-ui", 200},
		{"/docs-assets/redoc/redoc.standalone.js", "text/javascript", "Redoc", 200},
		{"/docs-assets/docs.js", "text/javascript", "openapi.json", 200},
		{"/docs-assets/docs.html", "", "", 404},
		{"/docs-assets/nope.js", "", "", 404},
	} {
		resp, raw := h.do(mustRequest(t, http.MethodGet, h.srv.URL+tc.path, nil))
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(string(raw), tc.contains) {
			t.Errorf("GET %s: %d %q, %d bytes", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(raw))
		}
		if tc.ctype == "text/html" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, resp.Header.Get("Content-Security-Policy"))
		}
	}
}
