-- The logs' time indexes hold the time alone, not the time and the ID
-- (30 bytes of each entry, three entries per one-comment event, #19).
-- Listings still order by (time, ID): both planners walk the index by
-- time and sort only the rows of one instant among themselves (SQLite's
-- "temp B-tree for right part of ORDER BY", PostgreSQL's incremental
-- sort), a few rows at most, and the keyset cursor's row comparison
-- still bounds the index range. Each index is rebuilt from its table.
DROP INDEX mapper_events_log;
--bun:split
CREATE INDEX mapper_events_log ON mapper_events (received_at);
--bun:split
DROP INDEX mapper_deliveries_log;
--bun:split
CREATE INDEX mapper_deliveries_log ON mapper_deliveries (created_at);
--bun:split
DROP INDEX mapper_deliveries_app;
--bun:split
CREATE INDEX mapper_deliveries_app ON mapper_deliveries (app_id, created_at);
