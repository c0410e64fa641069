package fakes

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/chatico/mapper/workerauth"
)

// WorkerApp is a fake worker app: it records every delivery, checks the
// Mapper's X-Mapper-Signature-256 with its secret, and answers 200 unless
// told to fail.
type WorkerApp struct {
	srv    *server
	secret string

	mu       sync.Mutex
	received []Received
	script   []int
	handler  func(*http.Request) int
	changed  chan struct{}
	hang     chan struct{}
}

// Received is one request the fake worker app answered (a request that
// hung is not recorded).
type Received struct {
	Header http.Header
	Body   []byte
	// SignatureOK says whether X-Mapper-Signature-256 matched the body and
	// timestamp under the app's secret.
	SignatureOK bool
	// Status is what the fake answered.
	Status int
	At     time.Time
}

// NewWorkerApp starts a fake app whose deliveries are signed with secret.
// Close it when done.
func NewWorkerApp(secret string) *WorkerApp {
	w := &WorkerApp{secret: secret, changed: make(chan struct{}), hang: make(chan struct{})}
	w.srv = newServer(http.HandlerFunc(w.serve))
	return w
}

// URL is where the app listens.
func (w *WorkerApp) URL() string { return w.srv.URL }

// Secret is the app's secret.
func (w *WorkerApp) Secret() string { return w.secret }

// Close shuts the app down, releasing any request held by Hang.
func (w *WorkerApp) Close() {
	w.mu.Lock()
	select {
	case <-w.hang:
	default:
		close(w.hang)
	}
	w.mu.Unlock()
	w.srv.Close()
}

// FailNext makes the next requests answer the given status codes in turn
// (e.g. 500, 500, 500), then 200 again.
func (w *WorkerApp) FailNext(statuses ...int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.script = append(w.script, statuses...)
}

// Respond sets a function choosing the status of each request (after any
// FailNext script); nil restores 200. A status of 0 makes the request hang
// until the client gives up or the app is closed.
func (w *WorkerApp) Respond(f func(*http.Request) int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handler = f
}

// Received returns every request so far.
func (w *WorkerApp) Received() []Received {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Received(nil), w.received...)
}

// WaitFor waits until the app has received at least n requests, or ctx
// ends, and returns what it received.
func (w *WorkerApp) WaitFor(ctx context.Context, n int) ([]Received, error) {
	for {
		w.mu.Lock()
		got, ch := len(w.received), w.changed
		w.mu.Unlock()
		if got >= n {
			return w.Received(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return w.Received(), fmt.Errorf("mappertest: worker app got %d requests, want %d: %w", got, n, ctx.Err())
		}
	}
}

func (w *WorkerApp) serve(rw http.ResponseWriter, r *http.Request) {
	body := drain(r.Body)
	ok := verify(w.secret, r.Header.Get("X-Mapper-Signature-256"), r.Header.Get("X-Mapper-Timestamp"), body)
	w.mu.Lock()
	status, scripted := http.StatusOK, false
	if len(w.script) > 0 {
		status, w.script, scripted = w.script[0], w.script[1:], true
	}
	handler, hang := w.handler, w.hang
	w.mu.Unlock()
	if !scripted && handler != nil {
		// Called without the lock: a test's handler may block.
		status = handler(r)
	}
	if status == 0 {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
		return
	}
	if !ok && status < 300 {
		// A real app must refuse what it cannot verify.
		status = http.StatusUnauthorized
	}
	w.mu.Lock()
	w.received = append(w.received, Received{Header: r.Header.Clone(), Body: body, SignatureOK: ok, Status: status, At: time.Now()})
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	rw.WriteHeader(status)
}

func verify(secret, sig, ts string, body []byte) bool {
	return workerauth.Verifier{Secrets: []string{secret}}.Check(sig, ts, body) == nil
}
