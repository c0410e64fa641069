-- PostgreSQL: a delivery's event is no longer checked by a foreign key
-- (migration 9 took event accounts' the same way). For each delivery
-- inserted the check looked the event up and locked its row (FOR KEY
-- SHARE): 7 % of the database's CPU flat out (docs/performance.md, round
-- fifteen). Nothing relied on it: deliveries
-- are written only by the statement that routes their event, and only
-- when its update found the event's row; pruning deletes an event's
-- deliveries before the event, so the cascade deleted nothing but still
-- ran a query for each event pruned. SQLite keeps its constraint: dropping
-- it would rebuild the table, the largest.
{{ if not .SQLite }}
ALTER TABLE mapper_deliveries DROP CONSTRAINT mapper_deliveries_event_id_fkey;
{{ end }}
