-- A week of history must cost little (#19). From this version on, a
-- delivery keeps its trace context, and an original delivery Meta's
-- signature, in its event's row only (rows stored before keep theirs). Delivered rows, nearly all of
-- them, leave the status indexes: a listing of delivered ones walks the
-- time index instead, where nearly every row is one, and a query for
-- another status names "status <> 'delivered'" so that both planners
-- take the partial index.
-- The time-ordered indexes ascend: both planners walk them backwards for
-- newest first, and new rows, the newest, go at their right end, where
-- SQLite fills pages; at the left end of a descending one it leaves them
-- half empty (twice the bytes).
DROP INDEX mapper_events_log;
--bun:split
CREATE INDEX mapper_events_log ON mapper_events (received_at, id);
--bun:split
DROP INDEX mapper_events_status_log;
--bun:split
CREATE INDEX mapper_events_status_log ON mapper_events (status, received_at, id) WHERE status <> 'delivered';
--bun:split
DROP INDEX mapper_deliveries_status;
--bun:split
CREATE INDEX mapper_deliveries_status ON mapper_deliveries (status, created_at, id) WHERE status <> 'delivered';
--bun:split
-- Deliveries newest first, unfiltered or by app: before, both sorted every
-- row they matched.
CREATE INDEX mapper_deliveries_log ON mapper_deliveries (created_at, id);
--bun:split
DROP INDEX mapper_deliveries_app;
--bun:split
CREATE INDEX mapper_deliveries_app ON mapper_deliveries (app_id, created_at, id);
--bun:split
-- Deduplication keys are pruned with the events that own them, by key.
DROP INDEX mapper_dedup_keys_created;
{{ if .SQLite }}
--bun:split
-- SQLite: the small tables keyed by text are stored in their primary key
-- (WITHOUT ROWID) instead of a table and an index that repeats the key.
CREATE TABLE mapper_event_accounts_v7 (
	account_id  TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	event_id    TEXT NOT NULL REFERENCES mapper_events (id) ON DELETE CASCADE,
	PRIMARY KEY (account_id, received_at, event_id)
) WITHOUT ROWID;
--bun:split
INSERT INTO mapper_event_accounts_v7 SELECT account_id, received_at, event_id FROM mapper_event_accounts;
--bun:split
DROP TABLE mapper_event_accounts;
--bun:split
ALTER TABLE mapper_event_accounts_v7 RENAME TO mapper_event_accounts;
--bun:split
CREATE INDEX mapper_event_accounts_event ON mapper_event_accounts (event_id);
--bun:split
CREATE TABLE mapper_dedup_keys_v7 (
	dedup_key  TEXT PRIMARY KEY,
	event_id   TEXT NOT NULL,
	created_at BIGINT NOT NULL
) WITHOUT ROWID;
--bun:split
INSERT INTO mapper_dedup_keys_v7 SELECT dedup_key, event_id, created_at FROM mapper_dedup_keys;
--bun:split
DROP TABLE mapper_dedup_keys;
--bun:split
ALTER TABLE mapper_dedup_keys_v7 RENAME TO mapper_dedup_keys;
--bun:split
CREATE TABLE mapper_attempts_v7 (
	delivery_id   TEXT NOT NULL REFERENCES mapper_deliveries (id) ON DELETE CASCADE,
	number        INTEGER NOT NULL,
	started_at    BIGINT NOT NULL,
	duration_us   BIGINT NOT NULL,
	status_code   INTEGER NOT NULL,
	error         TEXT NOT NULL,
	outcome       TEXT NOT NULL,
	response_body TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;
--bun:split
INSERT INTO mapper_attempts_v7 SELECT delivery_id, number, started_at, duration_us, status_code, error, outcome, response_body FROM mapper_attempts;
--bun:split
DROP TABLE mapper_attempts;
--bun:split
ALTER TABLE mapper_attempts_v7 RENAME TO mapper_attempts;
{{ end }}
{{ if not .SQLite }}
--bun:split
-- PostgreSQL: pruning deletes an hour's events at a time, a small share of
-- a week's tables, which the default scale factors (vacuum at a fifth of a
-- table dead, analyze at a tenth) leave unvacuumed for a day or more; the
-- visibility map, which lets the metrics' counts read their partial
-- indexes alone, goes stale meanwhile. Vacuum and analyze at 2 %.
ALTER TABLE mapper_events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
--bun:split
ALTER TABLE mapper_deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
--bun:split
ALTER TABLE mapper_event_accounts SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
--bun:split
ALTER TABLE mapper_dedup_keys SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
--bun:split
ALTER TABLE mapper_attempts SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);
{{ end }}
