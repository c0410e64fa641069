-- An event's accounts are found by their primary key (account, time,
-- event) alone, from the event's own row: pruning deletes them by key and
-- ordered deliveries read the pending events' account lists. The index by
-- event, and the foreign key that needed it, go: 72 bytes and an index
-- write per event on SQLite (#19, #15).
{{ if .SQLite }}
CREATE TABLE mapper_event_accounts_v9 (
	account_id  TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	event_id    TEXT NOT NULL,
	PRIMARY KEY (account_id, received_at, event_id)
) WITHOUT ROWID;
--bun:split
INSERT INTO mapper_event_accounts_v9 SELECT account_id, received_at, event_id FROM mapper_event_accounts;
--bun:split
DROP TABLE mapper_event_accounts;
--bun:split
ALTER TABLE mapper_event_accounts_v9 RENAME TO mapper_event_accounts;
{{ end }}
{{ if not .SQLite }}
ALTER TABLE mapper_event_accounts DROP CONSTRAINT IF EXISTS mapper_event_accounts_event_id_fkey;
--bun:split
DROP INDEX mapper_event_accounts_event;
{{ end }}
