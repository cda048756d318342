-- The extension dropped and created again in a session that has used it:
-- the statements fleet keeps per backend find the new objects (the batch
-- insert of positions names its row type by OID and prepares again when
-- the type is new; the others are planned again by name), and the old
-- objects' rows are gone.
\set VERBOSITY terse
SELECT fleet.create_tenant('Before Reinstall') AS t \gset
SELECT fleet.set_tenant(:t) AS tenant_set \gset
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:t, 'RE-1', 'osmand');
SELECT status, count(*) FROM fleet.ingest_positions(ARRAY['RE-1', 'RE-1'],
	ARRAY[now() - interval '1 minute', now()], ARRAY[50.0, 50.1], ARRAY[10.0, 10.1],
	NULL, NULL, NULL, NULL, NULL, NULL) GROUP BY status;
SELECT status FROM fleet.ingest_event('app', 'k-1', 'audit.note', '{"text": "before"}');
SELECT fleet.clear_tenant();
SELECT 'fleet.position_row'::regtype::oid AS old_type \gset
DROP EXTENSION fleet;
CREATE EXTENSION fleet;
SELECT 'fleet.position_row'::regtype::oid <> :old_type AS type_is_new;
SELECT fleet.create_tenant('After Reinstall') AS t \gset
SELECT fleet.set_tenant(:t) AS tenant_set \gset
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:t, 'RE-2', 'osmand');
SELECT status, count(*) FROM fleet.ingest_positions(ARRAY['RE-2', 'RE-2', 'RE-2', 'RE-1'],
	ARRAY[now() - interval '2 minutes', now() - interval '1 minute', now(), now()],
	ARRAY[50.0, 50.1, 50.2, 50.3], ARRAY[10.0, 10.1, 10.2, 10.3],
	NULL, NULL, NULL, NULL, NULL, NULL) GROUP BY status ORDER BY status;
SELECT status FROM fleet.ingest_event('app', 'k-1', 'audit.note', '{"text": "after"}');
SELECT status FROM fleet.ingest_event('app', 'k-1', 'audit.note', '{"text": "after"}');
SELECT fleet.clear_tenant();
SELECT d.identifier, count(*) FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id) GROUP BY 1;
SELECT kind, payload, idem_key FROM fleet.event_log;
