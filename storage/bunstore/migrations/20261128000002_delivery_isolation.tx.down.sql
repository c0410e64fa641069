DROP INDEX mapper_deliveries_status;
--bun:split
DROP INDEX mapper_deliveries_app_pending;
--bun:split
ALTER TABLE mapper_attempts DROP COLUMN response_body;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN cycle_start;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_base;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN ordered;
--bun:split
ALTER TABLE mapper_worker_apps DROP COLUMN ordered;
--bun:split
ALTER TABLE mapper_worker_apps DROP COLUMN max_concurrency;
--bun:split
ALTER TABLE mapper_worker_apps DROP COLUMN timeout_us;
