DROP INDEX mapper_events_log;
--bun:split
CREATE INDEX mapper_events_log ON mapper_events (received_at DESC, id DESC);
--bun:split
DROP INDEX mapper_events_status_log;
--bun:split
CREATE INDEX mapper_events_status_log ON mapper_events (status, received_at DESC, id DESC);
--bun:split
DROP INDEX mapper_deliveries_status;
--bun:split
CREATE INDEX mapper_deliveries_status ON mapper_deliveries (status, created_at DESC, id DESC);
--bun:split
DROP INDEX mapper_deliveries_log;
--bun:split
DROP INDEX mapper_deliveries_app;
--bun:split
CREATE INDEX mapper_deliveries_app ON mapper_deliveries (app_id, event_id);
{{ if not .SQLite }}
--bun:split
CREATE INDEX mapper_dedup_keys_created ON mapper_dedup_keys (created_at);
--bun:split
ALTER TABLE mapper_events RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor, autovacuum_vacuum_insert_scale_factor);
--bun:split
ALTER TABLE mapper_deliveries RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor, autovacuum_vacuum_insert_scale_factor);
--bun:split
ALTER TABLE mapper_event_accounts RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor);
--bun:split
ALTER TABLE mapper_dedup_keys RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor);
--bun:split
ALTER TABLE mapper_attempts RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor);
{{ end }}
--bun:split
-- Deliveries keep the event's trace context, and original ones Meta's
-- signature, in their own rows again.
UPDATE mapper_deliveries SET meta_signature = (SELECT signature FROM mapper_events AS e WHERE e.id = mapper_deliveries.event_id)
WHERE original AND meta_signature = '';
--bun:split
UPDATE mapper_deliveries SET trace_context = (SELECT trace_context FROM mapper_events AS e WHERE e.id = mapper_deliveries.event_id)
WHERE trace_context = '';
{{ if .SQLite }}
--bun:split
CREATE TABLE mapper_event_accounts_v6 (
	account_id  TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	event_id    TEXT NOT NULL REFERENCES mapper_events (id) ON DELETE CASCADE,
	PRIMARY KEY (account_id, received_at, event_id)
);
--bun:split
INSERT INTO mapper_event_accounts_v6 SELECT account_id, received_at, event_id FROM mapper_event_accounts;
--bun:split
DROP TABLE mapper_event_accounts;
--bun:split
ALTER TABLE mapper_event_accounts_v6 RENAME TO mapper_event_accounts;
--bun:split
CREATE INDEX mapper_event_accounts_event ON mapper_event_accounts (event_id);
--bun:split
CREATE TABLE mapper_dedup_keys_v6 (
	dedup_key  TEXT PRIMARY KEY,
	event_id   TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
--bun:split
INSERT INTO mapper_dedup_keys_v6 SELECT dedup_key, event_id, created_at FROM mapper_dedup_keys;
--bun:split
DROP TABLE mapper_dedup_keys;
--bun:split
ALTER TABLE mapper_dedup_keys_v6 RENAME TO mapper_dedup_keys;
--bun:split
CREATE INDEX mapper_dedup_keys_created ON mapper_dedup_keys (created_at);
--bun:split
CREATE TABLE mapper_attempts_v6 (
	delivery_id   TEXT NOT NULL REFERENCES mapper_deliveries (id) ON DELETE CASCADE,
	number        INTEGER NOT NULL,
	started_at    BIGINT NOT NULL,
	duration_us   BIGINT NOT NULL,
	status_code   INTEGER NOT NULL,
	error         TEXT NOT NULL,
	outcome       TEXT NOT NULL,
	response_body TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (delivery_id, number)
);
--bun:split
INSERT INTO mapper_attempts_v6 SELECT delivery_id, number, started_at, duration_us, status_code, error, outcome, response_body FROM mapper_attempts;
--bun:split
DROP TABLE mapper_attempts;
--bun:split
ALTER TABLE mapper_attempts_v6 RENAME TO mapper_attempts;
{{ end }}
