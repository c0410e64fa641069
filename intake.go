package mapper

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatico/mapper/internal/ids"
	"github.com/chatico/mapper/internal/payload"
	"github.com/chatico/mapper/workerauth"
)

// handleHandshake answers Meta's verification GET: the challenge, byte for
// byte and without a newline, when mode and token match; 403 otherwise.
func (m *Mapper) handleHandshake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mode, token, challenge := q.Get("hub.mode"), q.Get("hub.verify_token"), q.Get("hub.challenge")
	switch {
	case mode != "subscribe":
		m.counters.handshakeRefused.Add(1)
		writeProblem(w, r, http.StatusForbidden, "handshake-refused", `hub.mode must be "subscribe"`)
	case !equalSecret(token, m.cfg.verifyToken):
		m.counters.handshakeRefused.Add(1)
		m.cfg.logger.WarnContext(r.Context(), "webhook handshake refused: verify token does not match", slog.String("remote", r.RemoteAddr))
		writeProblem(w, r, http.StatusForbidden, "handshake-refused", "hub.verify_token does not match the configured verify token")
	case challenge == "":
		m.counters.handshakeRefused.Add(1)
		writeProblem(w, r, http.StatusForbidden, "handshake-refused", "hub.challenge is missing")
	default:
		m.counters.handshakeOK.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(challenge)))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, challenge)
	}
}

// equalSecret compares in constant time, whatever the lengths: both sides
// are hashed first.
func equalSecret(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && want != ""
}

// intakeResponse is the body of a 200 answer to a webhook POST.
type intakeResponse struct {
	EventID string `json:"event_id"`
	// Status is "accepted", "duplicate" (every item was seen before) or
	// "ignored" (the payload has no entries at all); in sync mode, the event's
	// status after delivery.
	Status string `json:"status"`
	// Deliveries are reported in sync mode only.
	Deliveries []deliveryOutcome `json:"deliveries,omitempty"`
}

// deliveryOutcome is one delivery's result in a sync-mode answer.
type deliveryOutcome struct {
	DeliveryID string         `json:"delivery_id"`
	AppID      string         `json:"app_id"`
	Status     DeliveryStatus `json:"status"`
	StatusCode int            `json:"status_code,omitempty"`
	Error      string         `json:"error,omitempty"`
}

// handleWebhook takes a webhook POST: rate limit, size limit while reading,
// signature over the raw bytes, parse, then one durable write, and only
// then 200.
func (m *Mapper) handleWebhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := m.tel.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	// A server span unless the embedding service already made one.
	kind := trace.SpanKindServer
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() && !sc.IsRemote() {
		kind = trace.SpanKindInternal
	}
	ctx, span := m.startSpan(ctx, "POST /webhook/", kind, attrHTTPMethod.String(r.Method), attrURLPath.String(r.URL.Path))
	sw := &statusWriter{ResponseWriter: w}
	in := &intake{m: m, ctx: ctx, span: span, w: sw, r: r}
	defer func() {
		span.SetAttributes(attrHTTPStatus.Int(sw.status), attrOutcome.String(string(in.outcome)))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, string(in.outcome))
		}
		span.End()
		m.tel.ackLatency.Record(ctx, time.Since(start).Seconds(), ackAttrs(in.outcome))
	}()
	if !in.admit() {
		return
	}
	release, ok := in.reserve()
	if !ok {
		return
	}
	defer release()
	body, sig, ok := in.readSigned()
	if !ok {
		return
	}
	p, ok := in.parse(body)
	if !ok {
		return
	}
	in.store(p, body, sig)
}

// intake is one webhook POST on its way in. Each stage answers the
// request itself when it refuses it, and counts the outcome before the
// answer goes out.
type intake struct {
	m       *Mapper
	ctx     context.Context
	span    trace.Span
	w       http.ResponseWriter
	r       *http.Request
	outcome intakeOutcome
}

func (in *intake) count(o intakeOutcome) {
	in.outcome = o
	in.m.counters.countIntake(o)
}

// admit applies the per-client rate limit.
func (in *intake) admit() bool {
	m := in.m
	if m.limiter == nil {
		return true
	}
	ok, wait := m.limiter.allow(m.cfg.clientKey(in.r))
	if !ok {
		in.count(outcomeRateLimited)
		in.w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeProblem(in.w, in.r, http.StatusTooManyRequests, "rate-limited", "too many requests from this client; retry after the time in Retry-After")
	}
	return ok
}

// reserve takes the body's share of the bytes in flight, by its
// Content-Length (the limit when it gives none), or answers 503 when they
// are full.
func (in *intake) reserve() (release func(), ok bool) {
	m := in.m
	n := in.r.ContentLength
	if n < 0 || n > m.cfg.maxBody {
		// Unknown, or over the limit, which the read refuses anyway.
		n = m.cfg.maxBody
	}
	if !m.bodies.TryAcquire(n) {
		in.count(outcomeBusy)
		in.w.Header().Set("Retry-After", "1")
		// The body is not read: closing the connection sends the answer
		// now, rather than after the server waits to drain the body.
		in.w.Header().Set("Connection", "close")
		writeProblem(in.w, in.r, http.StatusServiceUnavailable, "busy", "too many webhook bodies are being taken in at once; retry after the time in Retry-After")
		return nil, false
	}
	return func() { m.bodies.Release(n) }, true
}

// holdBody waits for n bytes of the budget of bodies in flight, for
// routing a payload of that size, which parses it again and plans its
// items: big batches are routed a few at a time, and while they are, new
// ones are refused at intake rather than piling up in memory. It returns
// the release; when ctx ends first, routing goes on without a share
// (it stops at once anyway).
func (m *Mapper) holdBody(ctx context.Context, n int) (release func()) {
	w := min(int64(n), m.cfg.bodyBudget)
	if m.bodies.Acquire(ctx, w) != nil {
		return func() {}
	}
	return func() { m.bodies.Release(w) }
}

// readSigned reads the body within the size limit and checks Meta's
// signature over exactly those bytes.
func (in *intake) readSigned() (body []byte, sig string, ok bool) {
	m, w, r := in.m, in.w, in.r
	if r.ContentLength > m.cfg.maxBody {
		in.count(outcomeTooLarge)
		m.tooLarge(w, r, r.ContentLength)
		return nil, "", false
	}
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(m.cfg.bodyTimeout)) == nil
	body, err := readBody(w, r, m.cfg.maxBody)
	if deadline {
		// Later requests on the connection get the server's own.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			in.count(outcomeTooLarge)
			m.tooLarge(w, r, -1)
			return nil, "", false
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			in.count(outcomeSlowBody)
			w.Header().Set("Connection", "close")
			writeProblem(w, r, http.StatusRequestTimeout, "slow-body", fmt.Sprintf("the body did not arrive within %v of the headers", m.cfg.bodyTimeout))
			return nil, "", false
		}
		in.count(outcomeMalformed)
		writeProblem(w, r, http.StatusBadRequest, "unreadable-body", "the request body could not be read: "+err.Error())
		return nil, "", false
	}
	in.span.SetAttributes(attrBodySize.Int(len(body)))
	sig = r.Header.Get(workerauth.HeaderMetaSignature)
	_, vspan := m.startSpan(in.ctx, "verify signature", trace.SpanKindInternal)
	_, err = verifyMeta(sig, body, m.cfg.secrets)
	endSpan(vspan, err)
	if err == nil {
		return body, sig, true
	}
	in.count(outcomeBadSignature)
	// Loud on purpose: a wrong secret makes Meta retry and, for
	// messaging, unsubscribe the app within the hour.
	m.cfg.logger.WarnContext(in.ctx, "webhook refused: bad signature", slog.String("reason", err.Error()),
		slog.Int("body_bytes", len(body)), slog.String("remote", r.RemoteAddr))
	detail := "X-Hub-Signature-256 does not match the body for any configured app secret"
	switch {
	case errors.Is(err, errSignatureMissing):
		detail = "X-Hub-Signature-256 is missing"
	case errors.Is(err, errSignatureMalformed):
		detail = `X-Hub-Signature-256 must be "sha256=" followed by 64 hex digits`
	}
	writeProblem(w, r, http.StatusUnauthorized, "bad-signature", detail)
	return nil, "", false
}

// parse reads the payload: only a body that is not a webhook at all, or
// not Instagram's, is refused.
func (in *intake) parse(body []byte) (*payload.Payload, bool) {
	_, pspan := in.m.startSpan(in.ctx, "parse payload", trace.SpanKindInternal)
	p, err := payload.Parse(body)
	endSpan(pspan, err)
	if err != nil {
		in.count(outcomeMalformed)
		writeProblem(in.w, in.r, http.StatusBadRequest, "malformed-payload", err.Error())
		return nil, false
	}
	if p.Object != "instagram" {
		// Instagram webhooks are "instagram" under both logins; a Page's
		// ("page") is another product's, signed with the same secret.
		in.count(outcomeMalformed)
		writeProblem(in.w, in.r, http.StatusBadRequest, "wrong-object", fmt.Sprintf(`object %q is not accepted (want "instagram")`, p.Object))
		return nil, false
	}
	return p, true
}

// store writes the event, then answers 200 and sets its routing going
// (in this handler in sync mode, else in the loop); 503 when the store
// cannot take it, so that Meta retries.
func (in *intake) store(p *payload.Payload, body []byte, sig string) {
	m, ctx := in.m, in.ctx
	now := m.cfg.now()
	ev := newEvent(p, body, sig, now)
	ev.TraceContext = m.carrier(ctx)
	in.span.SetAttributes(attrEventID.String(ev.ID), attrEventItems.Int(len(ev.Items)))
	handoff := false
	switch {
	case ev.Status != EventPending:
	case m.cfg.sync:
		// Keep the background loop off this event while the handler
		// delivers it; if the process dies, the lease runs out and the
		// loop takes over.
		ev.LeaseToken, ev.NextAttemptAt = ids.Token(), now.Add(m.cfg.lease)
	case m.reserveHandoff(ctx):
		// Stored already leased to this process and handed to its loop
		// in memory: no claim query, no wait for a poll. Should the
		// process die first, the lease runs out and any replica claims it.
		ev.LeaseToken, ev.NextAttemptAt = ids.Token(), now.Add(m.cfg.lease)
		handoff = true
	}
	sctx, sspan := m.startSpan(ctx, "persist event", trace.SpanKindInternal, attrEventID.String(ev.ID))
	err := m.store.CreateEvent(sctx, ev)
	endSpan(sspan, err)
	if handoff && (err != nil || ev.Status != EventPending) {
		m.cancelHandoff() // nothing to hand over: refused, or all duplicates
		handoff = false
	}
	if err != nil {
		in.count(outcomeStoreUnavailable)
		m.cfg.logger.ErrorContext(ctx, "webhook not stored; answering 503 so that Meta retries", slog.String("error", err.Error()))
		in.w.Header().Set("Retry-After", "5")
		writeProblem(in.w, in.r, http.StatusServiceUnavailable, "store-unavailable", "the event could not be stored; retry later")
		return
	}
	resp := intakeResponse{EventID: ev.ID, Status: "accepted"}
	switch ev.Status {
	case EventDuplicate:
		in.count(outcomeDuplicate)
		resp.Status = "duplicate"
	case EventIgnored:
		in.count(outcomeAccepted)
		resp.Status = "ignored"
	default:
		in.count(outcomeAccepted)
		switch {
		case m.cfg.sync:
			m.inflight.Add(1)
			resp.Status, resp.Deliveries = m.deliverNow(ctx, ev, p)
			m.inflight.Done()
		case handoff:
			m.handOver(ev, p)
		default:
			m.notify()
		}
	}
	m.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "webhook stored", slog.String("event_id", ev.ID), slog.String("status", resp.Status), slog.Int("items", len(ev.Items)))
	writeJSON(in.w, http.StatusOK, resp)
}

// statusWriter remembers the status of the answer, for the span.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *Mapper) tooLarge(w http.ResponseWriter, r *http.Request, n int64) {
	detail := fmt.Sprintf("the body exceeds the limit of %d bytes", m.cfg.maxBody)
	if n > 0 {
		detail = fmt.Sprintf("the body of %d bytes exceeds the limit of %d bytes", n, m.cfg.maxBody)
	}
	m.cfg.logger.WarnContext(r.Context(), "webhook refused: body too large", slog.Int64("limit", m.cfg.maxBody), slog.Int64("content_length", r.ContentLength))
	// The rest of the body is not read; make sure the connection is not
	// reused with unread bytes in it.
	w.Header().Set("Connection", "close")
	writeProblem(w, r, http.StatusRequestEntityTooLarge, "too-large", detail)
}

// readBody reads the whole body through a MaxBytesReader, sized from
// Content-Length when it is known and within the limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	size := r.ContentLength
	if size < 0 || size > limit {
		size = 0
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := buf.ReadFrom(rd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newEvent builds the event record of a verified, parsed payload.
func newEvent(p *payload.Payload, body []byte, sig string, now time.Time) *Event {
	ev := &Event{
		ID:            ids.New("evt_", now),
		ReceivedAt:    now,
		Object:        p.Object,
		Payload:       body,
		Signature:     sig,
		Status:        EventPending,
		NextAttemptAt: now,
	}
	for i := range p.Entries {
		e := &p.Entries[i]
		if e.ID != "" && !slices.Contains(ev.AccountIDs, e.ID) {
			ev.AccountIDs = append(ev.AccountIDs, e.ID)
		}
		for _, it := range e.Items {
			ev.Items = append(ev.Items, EventItem{Key: it.Key, Field: it.Field, Kind: string(it.Kind)})
		}
	}
	if len(ev.Items) == 0 {
		ev.Status = EventIgnored
		ev.CompletedAt = &now
	}
	return ev
}
