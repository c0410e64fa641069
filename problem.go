package mapper

import (
	"encoding/json"
	"net/http"
)

// problem is an RFC 9457 problem detail, the body of every error answer.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
	// Conflicts names every route that clashed, on a 409 about routes.
	Conflicts []routeConflict `json:"conflicts,omitempty"`
	// Errors lists what is wrong with each rejected item of a batch.
	Errors []itemError `json:"errors,omitempty"`
	// Fields names each invalid field of a rejected worker app or query,
	// so that a form can show the reason beside the field.
	Fields []fieldIssue `json:"fields,omitempty"`
}

// fieldIssue is one [fieldError] as the admin API shows it.
type fieldIssue struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// routeConflict is a [RouteConflictError] as the admin API shows it.
type routeConflict struct {
	AccountID string `json:"account_id"`
	Field     string `json:"field,omitempty"`
	AppID     string `json:"app_id"`
}

// itemError is what is wrong with one item of a batch, by its place.
type itemError struct {
	Index  int    `json:"index"`
	Detail string `json:"detail"`
}

// problemTypeBase prefixes our problem types; the fragment names the case
// so that clients can branch on it.
const problemTypeBase = "https://github.com/chatico/mapper/blob/main/docs/problems.md#"

func writeProblem(w http.ResponseWriter, r *http.Request, status int, kind, detail string) {
	sendProblem(w, r, &problem{Type: kind, Status: status, Detail: detail})
}

// sendProblem writes p, completing its type, title and instance.
func sendProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	status := p.Status
	p.Type, p.Title, p.Instance = problemTypeBase+p.Type, http.StatusText(status), r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// invalidProblem writes a 400 or 422 for err, naming each invalid field.
func invalidProblem(w http.ResponseWriter, r *http.Request, status int, kind string, err error) {
	sendProblem(w, r, &problem{Type: kind, Status: status, Detail: err.Error(), Fields: fieldIssues(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
