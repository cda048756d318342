-- fleet.ingest_events() / fleet.ingest_event(): idempotency keys per
-- (tenant, source), duplicate vs conflict, the kind registry with versions
-- and upcasters, every rejection reason and every error.
\set VERBOSITY terse
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset
SELECT tenant_id AS south FROM fleet.tenant WHERE name = 'South Haulage' \gset

-- The built-in kinds.
SELECT kind, class, schema_version, required, handler FROM fleet.event_kind
 WHERE kind IN ('audit.note', 'charge.created', 'job.status', 'pod.captured', 'stop.status', 'vehicle.state', 'webhook.received')
 ORDER BY kind;
SELECT kind, from_version, upcaster FROM fleet.event_upcaster;

-- Events need a tenant context.
SET ROLE fleet_app;
SELECT * FROM fleet.ingest_event('driver-app', 'k-0', 'audit.note', '{"text": "hi"}');

SELECT fleet.set_tenant(:north);
SELECT now() - interval '1 hour' AS t1 \gset
SELECT idx, status, reason, event_id IS NOT NULL AS has_event FROM fleet.ingest_events(
	source         => ARRAY['driver-app', 'driver-app', 'driver-app', 'driver-app', NULL, '', 'driver-app',
	                        'driver-app', 'driver-app', 'driver-app', 'driver-app', 'driver-app', 'driver-app',
	                        'driver-app', 'driver-app', 'driver-app'],
	idem_key       => ARRAY['k-1', 'k-1', 'k-1', 'k-2', 'k-3', 'k-4', NULL, repeat('x', 256),
	                        'k-5', 'k-6', 'k-7', 'k-8', 'k-9', 'k-10', 'k-11', 'k-12'],
	kind           => ARRAY['job.status', 'job.status', 'job.status', 'no.such_kind', 'audit.note', 'audit.note',
	                        'audit.note', 'audit.note', 'job.status', 'job.status', 'job.status', 'job.status',
	                        'audit.note', 'job.status', 'job.status', 'audit.note'],
	schema_version => ARRAY[NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3, 0, NULL, NULL, NULL, 1, 1, NULL]::int[],
	occurred_at    => ARRAY[:'t1', :'t1', :'t1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                        now() + interval '1 day', :'t1', :'t1', NULL]::timestamptz[],
	payload        => ARRAY['{"job": "J-1", "status": "en_route"}', '{"job": "J-1", "status": "en_route"}',
	                        '{"job": "J-1", "status": "completed"}', '{}', '{"text": "a"}', '{"text": "a"}',
	                        '{"text": "a"}', '{"text": "a"}', '{"job": "J-1", "status": "x"}', '{"job": "J-1", "status": "x"}',
	                        '{"job": "J-1"}', '{"job": 7, "status": "assigned"}', '{"text": "late"}',
	                        '{"job_code": "J-1", "state": "in_progress"}', '{"job_code": "J-1"}', '[1, 2]']::jsonb[]);
-- 1 accepted; 2 duplicate of 1; 3 conflict with 1; 4 unknown kind; 5-8 bad
-- source or key; 9 newer than the kind; 10 version 0; 11 missing field; 12
-- wrong type; 13 occurred a day ahead; 14 version 1, upcast to 2; 15
-- version 1 that upcasts to an invalid payload; 16 not an object.

-- The log holds the upcast payload with both versions.
SELECT idem_key, kind, schema_version, original_version, payload, occurred_at = :'t1'::timestamptz AS at_t1
  FROM fleet.event_log ORDER BY event_id;

-- Sending the same again: duplicates returning the original event id; a
-- different payload under a used key: conflict, recorded and visible.
SELECT e.event_id AS k1_event FROM fleet.event_log e WHERE e.idem_key = 'k-1' \gset
SELECT status, reason, event_id = :k1_event AS original
  FROM fleet.ingest_event('driver-app', 'k-1', 'job.status', '{"job": "J-1", "status": "en_route"}', :'t1');
SELECT status, reason, event_id = :k1_event AS original
  FROM fleet.ingest_event('driver-app', 'k-1', 'job.status', '{"job": "J-1", "status": "cancelled"}', :'t1');
-- The same payload with another occurred_at is another event: conflict too.
SELECT status, reason, event_id = :k1_event AS original
  FROM fleet.ingest_event('driver-app', 'k-1', 'job.status', '{"job": "J-1", "status": "en_route"}', :'t1'::timestamptz + interval '1 s');
SELECT source, idem_key, event_id = :k1_event AS original, kind, payload, payload_hash <> original_hash AS differs
  FROM fleet.event_conflict ORDER BY conflict_id;
-- Left to the server, occurred_at is "now" but counts as not sent: a retry is a duplicate.
SELECT status, reason FROM fleet.ingest_event('driver-app', 'k-now', 'audit.note', '{"text": "now"}');
SELECT status, reason FROM fleet.ingest_event('driver-app', 'k-now', 'audit.note', '{"text": "now"}');
-- Keys are unique per (tenant, source): another source may use k-1.
SELECT status, reason FROM fleet.ingest_event('webhook:stripe', 'k-1', 'webhook.received', '{"id": "evt_1"}');
-- ... and so may another tenant.
SELECT fleet.set_tenant(:south);
SELECT status, reason FROM fleet.ingest_event('driver-app', 'k-1', 'audit.note', '{"text": "south"}');
SELECT count(*) AS south_sees_conflicts FROM fleet.event_conflict;
SELECT fleet.set_tenant(:north);
-- Keys persist across calls and transactions; version NULL means current.
SELECT status, reason FROM fleet.ingest_event('driver-app', 'k-1', 'job.status', '{"job": "J-1", "status": "en_route"}', :'t1', 2);
RESET ROLE;
SELECT tenant_id = :north AS north, source, idem_key, event_id IS NOT NULL AS has_event
  FROM fleet.event_key ORDER BY tenant_id, source, idem_key;

-- Registering kinds (fleet_admin), with their errors.  Handlers and
-- upcasters run as their function's owner, so fleet_admin writes its own.
CREATE SCHEMA acme AUTHORIZATION fleet_admin;
CREATE FUNCTION public.su_upcaster(p jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT p $$;
CREATE FUNCTION public.bad_handler(bigint) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SET ROLE fleet_admin;
CREATE FUNCTION acme.fuel_v1(p jsonb) RETURNS jsonb LANGUAGE sql AS
$$ SELECT CASE WHEN p ? 'litres' THEN p - 'litres' || jsonb_build_object('volume_l', p -> 'litres')
               ELSE p END $$;
CREATE FUNCTION acme.fuel_v2(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS
$$ BEGIN
	IF p ->> 'card' = 'stolen' THEN RAISE EXCEPTION 'card % is blocked', p ->> 'card'; END IF;
	RETURN p || '{"checked": true}';
END $$;
SELECT fleet.register_event_kind('acme.fuel_card', 'financial', 3, '{"card": "string", "volume_l": "number"}');
SELECT fleet.register_event_upcaster('acme.fuel_card', 2, 'acme.fuel_v2(jsonb)');
SELECT fleet.register_event_kind('acme.fuel_card', 'nosuch');
SELECT fleet.register_event_kind('Acme Fuel', 'audit');
SELECT fleet.register_event_kind('acme.x', 'audit', 0);
SELECT fleet.register_event_kind('acme.x', 'audit', 1, '["card"]');
SELECT fleet.register_event_kind('acme.x', 'audit', 1, '{"card": "text"}');
SELECT fleet.register_event_kind('acme.x', 'audit', 1, '{}', 'public.bad_handler(bigint)');
SELECT fleet.register_event_kind('acme.fuel_card', 'financial', 2);
SELECT fleet.register_event_kind('acme.fuel_card', 'audit', 3);
SELECT fleet.register_event_upcaster('acme.nothing', 1, 'acme.fuel_v1(jsonb)');
SELECT fleet.register_event_upcaster('acme.fuel_card', 3, 'acme.fuel_v1(jsonb)');
SELECT fleet.register_event_upcaster('acme.fuel_card', 1, 'fleet.job_status_rank(text)');
SELECT fleet.register_event_upcaster('acme.fuel_card', 1, 'public.su_upcaster(jsonb)');
-- The registry is written only through these functions.
INSERT INTO fleet.event_kind (kind, class) VALUES ('acme.sneaky', 'audit');
RESET ROLE;
-- Version 1 has no upcaster yet: unsupported until one is registered.
SET ROLE fleet_app;
SELECT idx, status, reason FROM fleet.ingest_events(ARRAY['pos'], ARRAY['f-0'], ARRAY['acme.fuel_card'], ARRAY[1],
	NULL, ARRAY['{"card": "C0", "litres": 1}']::jsonb[]);
SET ROLE fleet_admin;
SELECT fleet.register_event_upcaster('acme.fuel_card', 1, 'acme.fuel_v1(jsonb)');
-- Upcasters chain 1 -> 2 -> 3; one that fails rejects only its row.
SET ROLE fleet_app;
SELECT idx, status, reason FROM fleet.ingest_events(
	ARRAY['pos', 'pos', 'pos', 'pos'], ARRAY['f-1', 'f-2', 'f-3', 'f-4'],
	ARRAY['acme.fuel_card', 'acme.fuel_card', 'acme.fuel_card', 'acme.fuel_card'], ARRAY[1, 2, 1, 3],
	NULL,
	ARRAY['{"card": "C1", "litres": 40.5}', '{"card": "C2", "volume_l": 12}', '{"card": "stolen", "litres": 1}',
	      '{"card": "C4", "volume_l": 7, "checked": false}']::jsonb[]);
SELECT idem_key, original_version, schema_version, payload FROM fleet.event_log WHERE source = 'pos' ORDER BY idem_key;

-- Errors: the whole call fails, nothing is logged.
SELECT * FROM fleet.ingest_events(ARRAY['a'], NULL, ARRAY['audit.note'], NULL, NULL, ARRAY['{}']::jsonb[]);
SELECT * FROM fleet.ingest_events(ARRAY['a'], ARRAY['b', 'c'], ARRAY['audit.note'], NULL, NULL, ARRAY['{}']::jsonb[]);
SELECT * FROM fleet.ingest_events(ARRAY['a'], ARRAY['b'], ARRAY['audit.note'], ARRAY[1, 1], NULL, ARRAY['{}']::jsonb[]);
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT * FROM fleet.ingest_event('a', 'b', 'audit.note', '{"text": "x"}');
ROLLBACK;
SELECT fleet.clear_tenant();
SELECT * FROM fleet.ingest_events(ARRAY['a'], ARRAY['b'], ARRAY['audit.note'], NULL, NULL, ARRAY['{}']::jsonb[]);
RESET ROLE;
SET ROLE fleet_analyst;
SELECT fleet.set_tenant(:north);
SELECT * FROM fleet.ingest_event('a', 'b', 'audit.note', '{"text": "x"}');
SELECT fleet.register_event_kind('acme.y', 'audit');
RESET ROLE;
SELECT fleet.clear_tenant();
DROP FUNCTION public.bad_handler(bigint), public.su_upcaster(jsonb);
SELECT * FROM fleet.check_schema_rules();
