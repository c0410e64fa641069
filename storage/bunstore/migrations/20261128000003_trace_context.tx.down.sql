ALTER TABLE mapper_deliveries DROP COLUMN trace_context;
--bun:split
ALTER TABLE mapper_events DROP COLUMN trace_context;
