// Package fakes holds the fakes of the Graph API and of worker apps, and
// the builder of signed webhooks, that testing/mappertest publishes for
// tests and that the reference server's demo runs. They serve on loopback
// with net/http alone, so that the demo's binary links no test package.
package fakes

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// server is a real HTTP server on a free loopback port, as
// httptest.NewServer starts one.
type server struct {
	URL string
	srv *http.Server
}

func newServer(h http.Handler) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		// As httptest.NewServer: a machine without loopback cannot test.
		panic(fmt.Sprintf("fakes: listening on loopback: %v", err))
	}
	s := &server{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s
}

// Close stops the server and drops its connections.
func (s *server) Close() { _ = s.srv.Close() }
