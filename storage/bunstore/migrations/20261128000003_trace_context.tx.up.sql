ALTER TABLE mapper_events ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';
