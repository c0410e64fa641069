DROP TABLE mapper_attempts;
--bun:split
DROP TABLE mapper_deliveries;
--bun:split
DROP TABLE mapper_dedup_keys;
--bun:split
DROP TABLE mapper_event_accounts;
--bun:split
DROP TABLE mapper_events;
--bun:split
DROP TABLE mapper_app_accounts;
--bun:split
DROP TABLE mapper_worker_apps;
