ALTER TABLE mapper_worker_apps ADD COLUMN timeout_us BIGINT NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_worker_apps ADD COLUMN max_concurrency INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_worker_apps ADD COLUMN ordered BOOLEAN NOT NULL DEFAULT FALSE;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN ordered BOOLEAN NOT NULL DEFAULT FALSE;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN cycle_start BIGINT NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_attempts ADD COLUMN response_body TEXT NOT NULL DEFAULT '';
--bun:split
-- Ordered delivery asks whether a delivery of an older event to the same
-- app is pending.
CREATE INDEX mapper_deliveries_app_pending ON mapper_deliveries (app_id, event_id) WHERE status = 'pending';
--bun:split
-- The dead-letter listing and bulk replay, newest first.
CREATE INDEX mapper_deliveries_status ON mapper_deliveries (status, created_at DESC, id DESC);
