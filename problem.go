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
}

// problemTypeBase prefixes our problem types; the fragment names the case
// so that clients can branch on it.
const problemTypeBase = "https://github.com/chatico/mapper/blob/main/docs/problems.md#"

func writeProblem(w http.ResponseWriter, r *http.Request, status int, kind, detail string) {
	p := problem{
		Type:     problemTypeBase + kind,
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
