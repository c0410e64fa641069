-- Back to one app per account: where several apps share an account, the
-- first by ID keeps it.
CREATE TABLE mapper_app_accounts_v3 (
	account_id TEXT PRIMARY KEY,
	app_id     TEXT NOT NULL REFERENCES mapper_worker_apps (id) ON DELETE CASCADE
);
--bun:split
INSERT INTO mapper_app_accounts_v3 (account_id, app_id) SELECT account_id, MIN(app_id) FROM mapper_app_accounts GROUP BY account_id;
--bun:split
DROP TABLE mapper_app_accounts;
--bun:split
ALTER TABLE mapper_app_accounts_v3 RENAME TO mapper_app_accounts;
--bun:split
CREATE INDEX mapper_app_accounts_app ON mapper_app_accounts (app_id);
--bun:split
ALTER TABLE mapper_worker_apps DROP COLUMN fields;
