// Package apidocs serves the Mapper's OpenAPI document and the pages that
// render it (Swagger UI at /docs, ReDoc at /redoc) from assets embedded in
// the binary, so they work with no network. The document is the HTTP
// contract; the root package's contract test checks every request and
// response of its tests against it.
package apidocs

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Document returns the OpenAPI document (JSON).
func Document() []byte {
	b, err := assets.ReadFile("assets/openapi.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// csp allows the pages their own scripts and styles only (Swagger UI and
// ReDoc inject styles, and ReDoc runs a worker from a blob).
const csp = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"

func page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(b)
	}
}

// Docs serves Swagger UI; Redoc serves ReDoc.
var (
	Docs  = page("docs.html")
	Redoc = page("redoc.html")
)

// OpenAPI serves the document.
func OpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(Document())
}

// Assets serves the pages' scripts and styles under /docs-assets/ (the
// caller strips nothing: the path names the file).
func Assets() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.LastIndex(r.URL.Path, "/docs-assets/")
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		name := r.URL.Path[i+len("/docs-assets/"):]
		if strings.HasSuffix(name, ".html") || name == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		files.ServeHTTP(w, r2)
	})
}
