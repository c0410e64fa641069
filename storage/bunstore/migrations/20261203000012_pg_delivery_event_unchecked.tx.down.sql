-- Restoring the check fails while a delivery's event is gone.
{{ if not .SQLite }}
ALTER TABLE mapper_deliveries ADD CONSTRAINT mapper_deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES mapper_events (id) ON DELETE CASCADE;
{{ end }}
