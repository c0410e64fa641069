-- A delivery's last attempt is held in its own row (attempt_number is NULL
-- while it holds none); the attempts table keeps the ones before it. Most
-- deliveries are attempted once: they no longer write an attempt row
-- (73 bytes on SQLite and a B-tree insert per delivery, #19, #15). A
-- delivery retried moves the attempt its row held into the table when it
-- records the next. Rows stored before keep every attempt in the table.
-- Adding columns with constant defaults rewrites no row on either database.
ALTER TABLE mapper_deliveries ADD COLUMN attempt_number INTEGER;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_started_at BIGINT NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_duration_us BIGINT NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_status_code INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_error TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_outcome TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE mapper_deliveries ADD COLUMN attempt_response_body TEXT NOT NULL DEFAULT '';
