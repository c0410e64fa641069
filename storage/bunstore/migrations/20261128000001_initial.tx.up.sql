-- Times are Unix microseconds (BIGINT), the same in PostgreSQL and SQLite,
-- so that both dialects share every query. to_timestamp(x / 1e6) reads one.
CREATE TABLE mapper_worker_apps (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	url        TEXT NOT NULL,
	secret     TEXT NOT NULL,
	enabled    BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
--bun:split
-- One row per account: the primary key is what makes an account served by
-- at most one app.
CREATE TABLE mapper_app_accounts (
	account_id TEXT PRIMARY KEY,
	app_id     TEXT NOT NULL REFERENCES mapper_worker_apps (id) ON DELETE CASCADE
);
--bun:split
CREATE INDEX mapper_app_accounts_app ON mapper_app_accounts (app_id);
--bun:split
CREATE TABLE mapper_events (
	id              TEXT PRIMARY KEY,
	received_at     BIGINT NOT NULL,
	object          TEXT NOT NULL,
	payload         {{ .Bytes }} NOT NULL,
	signature       TEXT NOT NULL,
	items           TEXT NOT NULL,
	account_ids     TEXT NOT NULL,
	status          TEXT NOT NULL,
	owners          TEXT NOT NULL DEFAULT '[]',
	unroutable      TEXT NOT NULL DEFAULT '[]',
	route_attempts  INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	next_attempt_at BIGINT NOT NULL,
	routed_at       BIGINT,
	completed_at    BIGINT,
	lease_token     TEXT NOT NULL DEFAULT ''
);
--bun:split
-- The claim query reads only pending rows, in due order.
CREATE INDEX mapper_events_due ON mapper_events (next_attempt_at, id) WHERE status = 'pending';
--bun:split
-- The log, newest first, with and without a status filter.
CREATE INDEX mapper_events_log ON mapper_events (received_at DESC, id DESC);
--bun:split
CREATE INDEX mapper_events_status_log ON mapper_events (status, received_at DESC, id DESC);
--bun:split
-- Pruning and processing-time percentiles read ended events by end time.
CREATE INDEX mapper_events_completed ON mapper_events (completed_at) WHERE completed_at IS NOT NULL;
--bun:split
CREATE TABLE mapper_event_accounts (
	account_id  TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	event_id    TEXT NOT NULL REFERENCES mapper_events (id) ON DELETE CASCADE,
	PRIMARY KEY (account_id, received_at, event_id)
);
--bun:split
CREATE INDEX mapper_event_accounts_event ON mapper_event_accounts (event_id);
--bun:split
-- A key belongs to the first event that carried it; the primary key makes
-- two concurrent copies of one change unable to both claim it.
CREATE TABLE mapper_dedup_keys (
	dedup_key  TEXT PRIMARY KEY,
	event_id   TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
--bun:split
CREATE INDEX mapper_dedup_keys_created ON mapper_dedup_keys (created_at);
--bun:split
CREATE TABLE mapper_deliveries (
	id               TEXT PRIMARY KEY,
	event_id         TEXT NOT NULL REFERENCES mapper_events (id) ON DELETE CASCADE,
	app_id           TEXT NOT NULL,
	owner_ids        TEXT NOT NULL,
	-- NULL when the delivery is the event's payload unchanged: it is not
	-- stored twice.
	body             {{ .Bytes }},
	original         BOOLEAN NOT NULL,
	meta_signature   TEXT NOT NULL DEFAULT '',
	status           TEXT NOT NULL,
	attempts         INTEGER NOT NULL DEFAULT 0,
	next_attempt_at  BIGINT NOT NULL,
	last_status_code INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT NOT NULL DEFAULT '',
	created_at       BIGINT NOT NULL,
	completed_at     BIGINT,
	lease_token      TEXT NOT NULL DEFAULT ''
);
--bun:split
CREATE INDEX mapper_deliveries_due ON mapper_deliveries (next_attempt_at, id) WHERE status = 'pending';
--bun:split
CREATE INDEX mapper_deliveries_event ON mapper_deliveries (event_id);
--bun:split
CREATE INDEX mapper_deliveries_app ON mapper_deliveries (app_id, event_id);
--bun:split
CREATE TABLE mapper_attempts (
	delivery_id TEXT NOT NULL REFERENCES mapper_deliveries (id) ON DELETE CASCADE,
	number      INTEGER NOT NULL,
	started_at  BIGINT NOT NULL,
	duration_us BIGINT NOT NULL,
	status_code INTEGER NOT NULL,
	error       TEXT NOT NULL,
	outcome     TEXT NOT NULL,
	PRIMARY KEY (delivery_id, number)
);
