-- The leases a Mapper holds are extended by token every few seconds: only
-- rows under a lease are indexed by it.
CREATE INDEX mapper_events_lease ON mapper_events (lease_token) WHERE lease_token <> '';
--bun:split
CREATE INDEX mapper_deliveries_lease ON mapper_deliveries (lease_token) WHERE lease_token <> '';
