-- Every attempt held in a delivery's row goes back to the attempts table
-- before the columns go.
INSERT INTO mapper_attempts (delivery_id, number, started_at, duration_us, status_code, error, outcome, response_body)
SELECT id, attempt_number, attempt_started_at, attempt_duration_us, attempt_status_code, attempt_error, attempt_outcome, attempt_response_body
FROM mapper_deliveries WHERE attempt_number IS NOT NULL;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_response_body;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_outcome;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_error;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_status_code;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_duration_us;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_started_at;
--bun:split
ALTER TABLE mapper_deliveries DROP COLUMN attempt_number;
