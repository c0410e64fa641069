-- Field routing: an account may be served by several apps, each taking
-- some of its fields (mapper_worker_apps.fields, JSON; [] takes them all).
-- That no two apps take one (account, field) pair is checked by the store
-- in the transaction that writes an app, under a lock on PostgreSQL.
ALTER TABLE mapper_worker_apps ADD COLUMN fields TEXT NOT NULL DEFAULT '[]';
--bun:split
CREATE TABLE mapper_app_accounts_v4 (
	account_id TEXT NOT NULL,
	app_id     TEXT NOT NULL REFERENCES mapper_worker_apps (id) ON DELETE CASCADE,
	PRIMARY KEY (account_id, app_id)
);
--bun:split
INSERT INTO mapper_app_accounts_v4 (account_id, app_id) SELECT account_id, app_id FROM mapper_app_accounts;
--bun:split
DROP TABLE mapper_app_accounts;
--bun:split
ALTER TABLE mapper_app_accounts_v4 RENAME TO mapper_app_accounts;
--bun:split
CREATE INDEX mapper_app_accounts_app ON mapper_app_accounts (app_id);
