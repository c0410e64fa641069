DROP INDEX mapper_deliveries_lease;
--bun:split
DROP INDEX mapper_events_lease;
