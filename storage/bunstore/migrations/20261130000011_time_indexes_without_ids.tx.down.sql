DROP INDEX mapper_events_log;
--bun:split
CREATE INDEX mapper_events_log ON mapper_events (received_at, id);
--bun:split
DROP INDEX mapper_deliveries_log;
--bun:split
CREATE INDEX mapper_deliveries_log ON mapper_deliveries (created_at, id);
--bun:split
DROP INDEX mapper_deliveries_app;
--bun:split
CREATE INDEX mapper_deliveries_app ON mapper_deliveries (app_id, created_at, id);
