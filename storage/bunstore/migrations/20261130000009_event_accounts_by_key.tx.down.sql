{{ if .SQLite }}
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
{{ end }}
--bun:split
CREATE INDEX mapper_event_accounts_event ON mapper_event_accounts (event_id);
{{ if not .SQLite }}
--bun:split
ALTER TABLE mapper_event_accounts ADD CONSTRAINT mapper_event_accounts_event_id_fkey FOREIGN KEY (event_id) REFERENCES mapper_events (id) ON DELETE CASCADE;
{{ end }}
