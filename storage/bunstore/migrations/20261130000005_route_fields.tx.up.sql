-- Routes as a resource: a route may narrow its app's fields (JSON; []
-- takes the app's), and an app's routes are paged by (app_id, account_id).
ALTER TABLE mapper_app_accounts ADD COLUMN fields TEXT NOT NULL DEFAULT '[]';
--bun:split
DROP INDEX mapper_app_accounts_app;
--bun:split
CREATE INDEX mapper_app_accounts_app ON mapper_app_accounts (app_id, account_id);
