DROP INDEX mapper_app_accounts_app;
--bun:split
CREATE INDEX mapper_app_accounts_app ON mapper_app_accounts (app_id);
--bun:split
ALTER TABLE mapper_app_accounts DROP COLUMN fields;
