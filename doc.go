// Package mapper receives Meta's Instagram webhooks, verifies them, works
// out which Instagram account each item belongs to, and delivers each
// webhook to the internal worker app that serves that account (and that
// item's field): durably, with retries, and with a record of every
// attempt.
//
// # Embedding
//
// A Mapper needs a [Store] and a few options; it gives an [http.Handler]
// and a background loop:
//
//	m, err := mapper.New(store,
//		mapper.WithMetaSecrets(os.Getenv("INSTAGRAM_APP_SECRET")),
//		mapper.WithVerifyToken(os.Getenv("WEBHOOK_VERIFY_TOKEN")),
//		mapper.WithAdminToken(os.Getenv("ADMIN_TOKEN")),
//	)
//	if err != nil { … }
//	go m.Run(ctx)                       // routing and delivery
//	http.ListenAndServe(":8100", m.Handler())
//
// [Mapper.Handler] serves every route; [Mapper.WebhookHandler] (Meta's
// routes) and [Mapper.AdminHandler] (the operators') serve each half, so
// that the admin API can live on a private listener or under a prefix.
//
// # What happens to a webhook
//
// GET /webhook/ answers Meta's verification handshake: when hub.mode is
// "subscribe" and hub.verify_token matches, the hub.challenge is echoed
// byte for byte as text/plain; anything else is 403.
//
// POST /webhook/ is taken in this order, and each refusal is an
// application/problem+json body (RFC 9457):
//
//  1. Rate limit per client (429 with Retry-After); see [WithRateLimit].
//  2. Size limit while reading, whatever Content-Length says (413); 4 MiB by
//     default, since Meta's payloads can be several megabytes.
//  3. X-Hub-Signature-256 checked over the raw bytes in constant time
//     against every configured secret (401, and nothing is stored). Several
//     secrets serve a rotation, and Instagram Login apps, which sign with
//     the Instagram app secret rather than the Meta app secret.
//  4. Parse: 400 only for a body that is not a JSON object with an
//     "object" string and an "entry" array, or whose object is not
//     accepted (anything but "instagram"). Inside the entries nothing fails a
//     webhook, since a 400 makes Meta retry for 36 hours and then disable
//     the subscription: every changes[], messaging[] and standby[] item
//     is read leniently (IDs as strings or numbers, times in seconds or
//     milliseconds, a member of an unexpected type read as well as it
//     can be), and an array the Mapper does not know, or an entry with no
//     items, is passed through as an item of kind "entry". An item whose
//     account cannot be read is unroutable, with the reason, not refused.
//  5. One atomic write of the event and its routing work, then 200. If
//     the store cannot take it, 503, so that Meta retries.
//
// Each item gets a deduplication key: the comment ID with its field, the
// message ID, the mention's media and comment, and for items without an
// ID a hash of the item's own bytes (so a retry recognises it alone or in
// another batch). Meta retries a webhook
// for up to 36 hours, sometimes alone and sometimes batched with new
// changes; an item whose key is already stored is marked duplicate and is
// never delivered again, and a payload made only of duplicates is stored
// with status [EventDuplicate] and answered {"status":"duplicate"}.
//
// [Mapper.Run] then routes the event and delivers it. The Mapper wakes the
// loop at once when it stores an event, so an idle system delivers in
// milliseconds; a slow poll ([WithPollInterval]) only picks up work that
// other replicas left or whose lease expired.
//
// # Routing: whose event is it?
//
// Meta sends each webhook for a subscribed app user, and entry.id is that
// Instagram professional account: a comment on its media, a mention of it
// on someone else's media, a message to it, a standby event of one of its
// conversations are all its events. By default ([OwnerFromEntry]) every
// item goes to the app serving its entry's account and the item's field,
// and routing makes no Graph API call. [OwnerFromMedia] is the original
// service's behaviour: an item naming a media is routed by the media's
// owner, looked up through cache → singleflight → [OwnerResolver], so a
// burst of thousands of comments on one new post costs one Graph API call
// (a test sends 10,000 in 100 concurrent webhooks and counts one). Meta
// shows a media's owner only to its creator, so a mention's media
// (someone else's) has no visible owner: such an item, and one whose
// media cannot be seen at all, routes by entry.id, and the event's
// LastError says so. A throttled resolver, or one whose token was
// rejected, parks the event until it can answer, however long that is;
// other failures are retried with backoff. A cache that fails is
// skipped, never failing a webhook.
//
// [WithMediaEnrichment] looks the media of mentions (or of other fields)
// up without changing where they go, and tells the worker app what Meta
// said in the X-Mapper-Media header: the owner's ID for the token's own
// media, else the owner's username. It never holds a delivery up for
// longer than its budget.
//
// # Fields
//
// A worker app takes every field of its accounts, or only some
// ([WorkerApp.Fields]): one account's comments may go to a moderation
// service and its messages to an inbox. An (account, field) pair belongs
// to one app at most. Field names are Meta's subscription fields:
// comments, live_comments, mentions and story_insights (changes[]
// items, under their own field); messages, message_echoes (a message
// with is_echo), message_reactions, message_edit, messaging_seen (read),
// messaging_postbacks, messaging_referral, messaging_optins and
// messaging_handovers (pass_thread_control, take_thread_control,
// request_thread_control) for messaging[] items; and standby for every
// standby[] item, whatever its kind. Passed-through arrays carry their
// member name as field, and only an app taking every field receives
// them. The event log lists each item with its key, field and kind
// ("change", "messaging", "standby" or "entry").
//
// The cost of the routing step, measured by BenchmarkRoutingCacheHit and
// BenchmarkRoutingCacheMiss (one signed comment webhook through the
// handler in sync mode on memstore: verify, parse, store, route, deliver
// to an in-process forwarder, record) on the 2-core development machine:
// about 60–80 µs and 201 allocations with the owner in the default cache,
// about 85–95 µs and 211 allocations when it must be looked up (an
// in-process resolver; the difference is the cache write). A Graph API
// call costs tens of milliseconds more, which is why the cache matters.
// docs/performance.md has the rest of the measurements.
//
// Items are grouped by the worker app of their account and field, and
// each app gets one [Delivery] per event. When one app receives the whole payload it
// gets Meta's bytes unchanged, with Meta's X-Hub-Signature-256, so it can
// verify Meta's signature itself. When a batch mixes accounts, each app
// gets an envelope {"object":…,"entry":[…]} holding only its own entries
// and items (their bytes as Meta sent them): no app ever sees another
// account's data, nor another app's fields. Accounts with no enabled app
// are listed in the event's Unroutable field, and as "account/field" when
// apps serve other fields of the account but none this one; an event
// none of whose items has an app is [EventUnroutable], and is kept.
//
// # Delivery
//
// Every delivery is a POST signed with the app's own secret:
// X-Mapper-Signature-256 is "sha256=" + hex(HMAC-SHA256(secret,
// timestamp + "." + body)) with the Unix timestamp in X-Mapper-Timestamp;
// package workerauth checks it on the worker app's side, and names every
// header. X-Mapper-Event-Id, X-Mapper-Delivery-Id, X-Mapper-Attempt,
// X-Mapper-Owner-Ids, X-Mapper-Envelope ("original" or "split") and, with
// enrichment, X-Mapper-Media go with it.
//
// A 2xx answer delivers. Network errors, timeouts, 408, 425, 429 and 5xx
// are retried with exponential backoff and full jitter, honouring the
// app's Retry-After, up to [RetryPolicy.MaxAttempts] and
// [RetryPolicy.MaxAge]; any other answer, redirects included, is
// permanent. A delivery that cannot be made is [DeliveryDead], and so is
// its event; the admin API lists dead deliveries and replays one, an
// event, or all that match a filter, and replays an unroutable event once
// an app serves its account (only the items that were unroutable go). Every attempt is recorded with its time,
// status code, error, duration and the start of the app's answer.
//
// One worker app cannot hold up the others: each has at most
// [WithConcurrency]'s per-app attempts in flight (its MaxConcurrency overrides
// it; Ordered apps get one at a time, in receive order) and a circuit
// breaker ([BreakerPolicy]) that stops attempts to an app that keeps
// failing, so a dead app costs a probe now and then rather than a storm
// of attempts. A test with one hanging and one healthy app compares the
// healthy app's latency percentiles with and without the hang, and checks
// that no healthy delivery waited for a hanging attempt.
//
// Work is claimed with a lease ([WithLease]), so several Mappers can share
// one store and a crashed replica's work is taken over when its lease
// runs out; the lease must be at least twice the delivery timeout, so a
// delivery is never sent by two claimers at once. Delivery is
// at-least-once: worker apps should use X-Mapper-Delivery-Id (or the
// items' own IDs) to recognise a repeat.
//
// A webhook costs the store two writes when its deliveries can go at
// once: the event (group-committed with other webhooks' before the 200),
// then, after the attempts, the route with their outcomes
// ([Store].RouteEvent with attempts). A delivery whose
// app is at its limit, ordered, or behind an open circuit is stored
// unleased with the route and claimed by the loop when its turn comes;
// claimed deliveries beyond an app's room wait in memory, leased, rather
// than going back to the store. docs/performance.md has the numbers.
//
// With [WithSyncDelivery] the handler routes and delivers before it
// answers, and answers with the outcome; what fails with a retryable
// error is left to the loop.
//
// # Admin and monitoring
//
// All but the webhook routes and GET /monitoring/health need
// "Authorization: Bearer <admin token>"; without a configured token they
// answer 403.
//
//	GET    /monitoring/health                 ok, degraded or down (503), per check (public;
//	                                          errors and latencies with the token)
//	GET    /monitoring/live                   the process serves (public)
//	GET    /monitoring/ready                  a webhook can be stored now, else 503 (public)
//	GET    /openapi.json                      the OpenAPI 3.1 document of these routes (open)
//	GET    /docs, /redoc                      Swagger UI and ReDoc on it, from the binary (open)
//	GET    /worker-apps/                      list apps
//	POST   /worker-apps/                      create an app ([appInput])
//	GET    /worker-apps/{id}                  one app
//	PUT    /worker-apps/{id}                  replace an app (secret kept if omitted,
//	                                          routes kept if account_ids is omitted)
//	DELETE /worker-apps/{id}                  delete an app and its routes
//	POST   /worker-apps/{id}/circuit:reset    close the app's circuit in this Mapper
//	GET    /worker-apps/{id}/accounts         the app's routes, by account: field, limit, cursor
//	PUT    /worker-apps/{id}/accounts/{acc}   route an account to the app ({"fields": [...]}
//	                                          optional, else the app's); idempotent
//	DELETE /worker-apps/{id}/accounts/{acc}   stop routing it
//	POST   /worker-apps/{id}/accounts:batch   {"put": [{"account_id", "fields"}], "remove": [...]},
//	                                          up to 10,000, all or nothing
//	GET    /accounts/{acc}                    which apps serve which fields of an account
//	GET    /monitoring/metrics                counters and store aggregates
//	GET    /monitoring/webhook-logs           events, newest first: status, account,
//	                                          app_id, since, until, limit, cursor
//	GET    /monitoring/webhook-logs/{id}      one event with payload, deliveries, attempts
//	POST   /events/{id}/replay                replay a dead or unroutable event
//	GET    /deliveries/                       deliveries, newest first: status, app_id,
//	                                          since, until, limit, cursor
//	POST   /deliveries/{id}/replay            replay a dead delivery
//	POST   /deliveries/replay                 replay every dead delivery matching
//	                                          {"app_id", "since", "until"}; answers {"replayed": n}
//
// Worker-app secrets are write-only: no response includes them.
//
// # Parts
//
// The root package declares the four interfaces it consumes — [Store],
// [OwnerResolver], [Cache] and [Forwarder] — and the domain types. It may
// import the leaf engines that never import it, for working defaults:
// forwarder/httpforwarder (the default Forwarder), cache/ristrettocache
// (the default Cache) and resolver/graphresolver (a Graph API
// OwnerResolver). Stores live in storage/…: storage/bunstore on PostgreSQL
// or SQLite, storage/memstore in memory; testing/storetest is the
// conformance suite a Store of your own must pass. testing/mappertest has a fake Graph API, a fake
// worker app and a builder of signed webhooks.
//
// # Observability
//
// The Mapper uses only the OpenTelemetry API; its providers default to the
// globals ([WithTelemetry]), and package otelx
// sets up the SDK for a program that wants one.
//
// Traces: a span for the webhook POST with children for the signature
// check, the parse and the store write; "route event" with "resolve owner"
// (mapper.cache.hit) and the Graph API call as an HTTP client span; and
// "deliver" (an HTTP client span) for each attempt. The intake's span
// context is stored with the event (and copied to its deliveries), so
// routing and delivery continue the same trace after a restart or on
// another replica, and the worker app receives it as traceparent.
// Attributes follow OpenTelemetry's semantic conventions
// (http.request.method, http.response.status_code, server.address,
// url.path, error.type); the Mapper's own are mapper.event.id,
// mapper.delivery.id, mapper.delivery.attempt, mapper.app.id,
// mapper.media.id, mapper.outcome, mapper.route.* and
// mapper.delivery.outcome. No payload text, token or secret is ever an
// attribute or a log field; a test greps a whole run for them.
//
// Metrics: mapper.webhooks.received (by mapper.outcome: accepted,
// duplicate, bad_signature, too_large, rate_limited, malformed,
// store_unavailable, busy, slow_body), mapper.routing.events (routed, unroutable,
// retried), mapper.delivery.attempts (by outcome and app),
// mapper.webhook.ack.duration and mapper.delivery.latency (received →
// delivered) histograms, mapper.queue.depth, mapper.queue.oldest_age and
// mapper.deliveries.dead gauges (read from the store at most every 5 s),
// mapper.cache.lookups (hit, miss, error), mapper.resolver.calls and
// mapper.graph.usage (percent of each Graph API budget). The counters of
// GET /monitoring/metrics are the same numbers.
//
// The cost, measured by BenchmarkIntake on the 2-core development machine
// (one signed webhook through the handler, memstore): 35–45 µs and 153
// allocations per webhook with tracing off, 43–52 µs and 166 allocations
// with every span sampled and batched — some 15–25 % more, before any
// network export.
//
// # Logging
//
// The Mapper logs through the *slog.Logger of [WithLogger] and is silent
// by default. Refused signatures are logged at Warn: a wrong secret makes
// Meta retry and, for messaging, unsubscribe the app within the hour.
// Payloads, secrets and tokens are never logged.
package mapper
