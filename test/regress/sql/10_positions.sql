-- fleet.ingest_positions(): idempotent batch ingest of GPS fixes, every
-- status and rejection reason, tenant rules, vehicle latest state, errors.
\set VERBOSITY terse
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset
SELECT tenant_id AS south FROM fleet.tenant WHERE name = 'South Haulage' \gset

-- Fixture: a South device on a vehicle, an inactive North device and a
-- North device without a vehicle.
SET ROLE fleet_admin;
SELECT fleet.set_tenant(:south);
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :south, 'S-DEV-1', 'osmand', vehicle_id FROM fleet.vehicle WHERE code = 'S-1';
SELECT fleet.set_tenant(:north);
INSERT INTO fleet.device (tenant_id, identifier, protocol, active) VALUES (:north, 'N-OFF', 'gt06', false);
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:north, 'N-LOOSE', 'gt06');
SELECT fleet.clear_tenant();
RESET ROLE;

-- The gateway (fleet_ingest, no tenant context) sends one batch with every outcome.
SET ROLE fleet_ingest;
SELECT date_trunc('hour', now()) - interval '2 hours' AS t0 \gset
SELECT * FROM fleet.ingest_positions(
	device   => ARRAY['356307042441013', '356307042441013', '356307042441013', 'S-DEV-1', 'nope', 'N-OFF',
	                  NULL, '356307042441013', '356307042441013', '356307042441013', '356307042441013',
	                  '356307042441013', '356307042441013', 'N-LOOSE', '356307042441013'],
	fix_time => ARRAY[:'t0', :'t0'::timestamptz + interval '1 s', :'t0'::timestamptz + interval '1 s',
	                  :'t0', :'t0', :'t0', :'t0', NULL, :'t0'::timestamptz + interval '2 s',
	                  :'t0'::timestamptz + interval '3 s', now() + interval '1 day', now() - interval '60 days',
	                  :'t0'::timestamptz + interval '4 s', :'t0', :'t0'::timestamptz + interval '1 s']::timestamptz[],
	lat      => ARRAY[52.1, 52.2, 52.2, 48.1, 1, 1, 1, 1, 95, 52.3, 52.4, 52.5, 52.6, 10, 52.25],
	lon      => ARRAY[13.1, 13.2, 13.2, 11.5, 1, 1, 1, 1, 13, 'NaN', 13.4, 13.5, 13.6, 10, 13.2]::float8[],
	speed    => ARRAY[50, 60, 60, 30, 0, 0, 0, 0, 0, 0, 0, 0, -5, 0, 60]::real[],
	heading  => ARRAY[90, 91, 91, 180, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 91]::real[],
	altitude => NULL, accuracy => NULL,
	seq      => ARRAY[1, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]::bigint[],
	attrs    => ARRAY['{"ign": true}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	                  NULL, NULL, NULL]::jsonb[]);
-- 1: accepted; 2: accepted; 3: duplicate of 2 in the same batch; 4: South's
-- device, accepted; 5: unknown; 6: inactive; 7: no identifier; 8: no time;
-- 9-10: bad coordinates; 11: a day ahead; 12: no partition that far back;
-- 13: negative speed; 14: accepted (no vehicle); 15: same key as 2 with
-- another latitude: conflict.

-- Sent again (a device re-sending its buffer): nothing is stored twice.
SELECT status, reason, count(*) FROM fleet.ingest_positions(
	ARRAY['356307042441013', '356307042441013', 'S-DEV-1', 'N-LOOSE'],
	ARRAY[:'t0', :'t0'::timestamptz + interval '1 s', :'t0', :'t0']::timestamptz[],
	ARRAY[52.1, 52.2, 48.1, 10], ARRAY[13.1, 13.2, 11.5, 10],
	ARRAY[50, 60, 30, 0]::real[], ARRAY[90, 91, 180, 0]::real[], NULL, NULL,
	ARRAY[1, 2, 1, 0]::bigint[], ARRAY['{"ign": true}', NULL, NULL, NULL]::jsonb[])
 GROUP BY 1, 2 ORDER BY 1, 2;
-- Fix times count to the millisecond: 0.4 ms later is the same fix.
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['356307042441013'], ARRAY[:'t0'::timestamptz + interval '0.0004 s'],
	ARRAY[52.1], ARRAY[13.1], ARRAY[50]::real[], ARRAY[90]::real[], NULL, NULL,
	ARRAY[1]::bigint[], ARRAY['{"ign": true}']::jsonb[]);
-- Different attributes with the same key: conflict, the stored fix stays.
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['356307042441013'], ARRAY[:'t0']::timestamptz[],
	ARRAY[52.1], ARRAY[13.1], ARRAY[50]::real[], ARRAY[90]::real[], NULL, NULL,
	ARRAY[1]::bigint[], ARRAY['{"ign": false}']::jsonb[]);
-- Optional arrays may be NULL as a whole.
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['N-LOOSE'], ARRAY[:'t0'::timestamptz + interval '5 s'], ARRAY[10.5], ARRAY[10.5],
	NULL, NULL, NULL, NULL, NULL, NULL);
-- An empty batch returns nothing.
SELECT count(*) FROM fleet.ingest_positions('{}', '{}', '{}', '{}', NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;

-- What is stored (as the owner: across tenants).
SELECT tenant_id = :north AS north, fix_time - :'t0'::timestamptz AS after_t0, lat, lon, speed, seq, attrs,
       vehicle_id IS NOT NULL AS on_vehicle
  FROM fleet.position ORDER BY tenant_id, device_id, fix_time;
-- Tenants see only their own fixes.
SET ROLE fleet_app;
SELECT fleet.set_tenant(:south);
SELECT count(*) AS south_fixes FROM fleet.position;
SELECT lat, lon, speed FROM fleet.vehicle_state;
RESET ROLE;

-- A tenant context makes other tenants' devices foreign.
SET ROLE fleet_ingest;
SELECT fleet.set_tenant(:north);
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['S-DEV-1', '356307042441013'], ARRAY[:'t0'::timestamptz + interval '10 s', :'t0'::timestamptz + interval '10 s'],
	ARRAY[1, 52.11], ARRAY[1, 13.11], NULL, NULL, NULL, NULL, NULL, NULL);
SELECT fleet.clear_tenant();

-- Vehicle latest state only moves forward: a late, older fix does not
-- replace it; a fix within the future margin does, one beyond it is rejected.
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['356307042441013'], ARRAY[:'t0'::timestamptz - interval '1 hour'],
	ARRAY[50.0], ARRAY[10.0], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
SELECT v.code, s.lat, s.lon, s.fix_time - :'t0'::timestamptz AS after_t0
  FROM fleet.vehicle_state s JOIN fleet.vehicle v USING (tenant_id, vehicle_id) ORDER BY v.code;
SET fleet.future_margin = '10min';
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['356307042441013', '356307042441013'], ARRAY[now() + interval '5 min', now() + interval '20 min'],
	ARRAY[51.0, 51.5], ARRAY[11.0, 11.5], NULL, NULL, NULL, NULL, NULL, NULL);
RESET fleet.future_margin;
SELECT v.code, s.lat, s.lon FROM fleet.vehicle_state s JOIN fleet.vehicle v USING (tenant_id, vehicle_id) ORDER BY v.code;

-- Duplicate storm, sequentially: the same 10,000-fix batch five times
-- stores each fix once (the concurrent version is an isolation test).
CREATE TEMP TABLE storm AS
SELECT array_agg(CASE WHEN g % 2 = 0 THEN '356307042441013' ELSE 'S-DEV-1' END ORDER BY g) AS dev,
       array_agg(:'t0'::timestamptz - interval '1 day' + g * interval '1 s' ORDER BY g) AS ts,
       array_agg(40 + g / 100000.0 ORDER BY g) AS lat, array_agg(10 + g / 100000.0 ORDER BY g) AS lon,
       array_agg((g % 120)::real ORDER BY g) AS speed, array_agg(g::bigint ORDER BY g) AS seq
  FROM generate_series(1, 10000) g;
SELECT round, status, count(*)
  FROM generate_series(1, 5) round,
       LATERAL (SELECT p.* FROM storm, fleet.ingest_positions(dev, ts, lat, lon, speed, NULL, NULL, NULL, seq, NULL) p) r
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS stored, count(DISTINCT (tenant_id, device_id, fix_time)) AS distinct_keys
  FROM fleet.position WHERE fix_time < :'t0'::timestamptz - interval '12 hours';

-- A device's next batch, wholly newer than its last one through this
-- connection, is stored without looking up its stored fixes; the primary key
-- still refuses a fix stored meanwhile some other way (here written
-- directly, as another connection or fleet.quarantine_replay() would): the
-- insert fails, is rolled back, and the batch is stored again with every
-- device looked up, so that fix is a duplicate.  Four rows were written:
-- two by the first attempt (the newest first, then the stored one, which the
-- primary key refused; both rolled back) and the batch's two new fixes.
SET ROLE fleet_ingest;
SELECT idx, status FROM fleet.ingest_positions(ARRAY['S-DEV-1', 'S-DEV-1'],
	ARRAY[:'t0'::timestamptz + interval '10 s', :'t0'::timestamptz + interval '11 s'],
	ARRAY[48.10, 48.11], ARRAY[11.50, 11.51], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon)
SELECT d.tenant_id, d.device_id, :'t0'::timestamptz + interval '13 s', d.vehicle_id, 48.13, 11.53
  FROM fleet.device d WHERE d.identifier = 'S-DEV-1';
BEGIN;
SELECT sum(n_tup_ins) AS written_before FROM pg_stat_xact_user_tables
 WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fleet.position'::regclass) \gset
SET ROLE fleet_ingest;
SELECT idx, status FROM fleet.ingest_positions(ARRAY['S-DEV-1', 'S-DEV-1', 'S-DEV-1'],
	ARRAY[:'t0'::timestamptz + interval '12 s', :'t0'::timestamptz + interval '13 s', :'t0'::timestamptz + interval '14 s'],
	ARRAY[48.12, 48.13, 48.14], ARRAY[11.52, 11.53, 11.54], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
SELECT sum(n_tup_ins) - :written_before AS rows_written FROM pg_stat_xact_user_tables
 WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fleet.position'::regclass);
COMMIT;
SET ROLE fleet_ingest;
-- The same key with other values, now older than the device's last batch:
-- looked up, a conflict.  The device re-sending its older fixes: duplicates.
SELECT idx, status FROM fleet.ingest_positions(ARRAY['S-DEV-1'], ARRAY[:'t0'::timestamptz + interval '13 s'],
	ARRAY[48.0], ARRAY[11.0], NULL, NULL, NULL, NULL, NULL, NULL);
SELECT idx, status FROM fleet.ingest_positions(ARRAY['S-DEV-1', 'S-DEV-1', 'S-DEV-1'],
	ARRAY[:'t0'::timestamptz + interval '10 s', :'t0'::timestamptz + interval '11 s', :'t0'::timestamptz + interval '12 s'],
	ARRAY[48.10, 48.11, 48.12], ARRAY[11.50, 11.51, 11.52], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
SELECT p.fix_time - :'t0'::timestamptz AS after_t0, count(*), min(p.lat) AS lat
  FROM fleet.position p JOIN fleet.device d USING (device_id)
 WHERE d.identifier = 'S-DEV-1' AND p.fix_time >= :'t0'::timestamptz + interval '10 s'
 GROUP BY 1 ORDER BY 1;
-- The vehicle's state is its newest fix; an older batch leaves it.
SELECT v.code, s.lat, s.fix_time - :'t0'::timestamptz AS after_t0
  FROM fleet.vehicle_state s JOIN fleet.vehicle v USING (tenant_id, vehicle_id) WHERE v.code = 'S-1';

-- Errors: they fail the whole call, nothing is stored.
SELECT * FROM fleet.ingest_positions(NULL, '{}', '{}', '{}', NULL, NULL, NULL, NULL, NULL, NULL);
SELECT * FROM fleet.ingest_positions(ARRAY['a', 'b'], ARRAY[now()], ARRAY[1.0, 2.0], ARRAY[1.0, 2.0],
	NULL, NULL, NULL, NULL, NULL, NULL);
SELECT * FROM fleet.ingest_positions(ARRAY['a'], ARRAY[now()], ARRAY[1.0], ARRAY[1.0],
	ARRAY[1, 2]::real[], NULL, NULL, NULL, NULL, NULL);
SELECT * FROM fleet.ingest_positions(ARRAY[['a'], ['b']], ARRAY[now(), now()], ARRAY[1.0, 2.0], ARRAY[1.0, 2.0],
	NULL, NULL, NULL, NULL, NULL, NULL);
SET fleet.ingest_max_batch = 2;
SELECT * FROM fleet.ingest_positions(ARRAY['a', 'b', 'c'], ARRAY[now(), now(), now()], ARRAY[1.0, 2.0, 3.0],
	ARRAY[1.0, 2.0, 3.0], NULL, NULL, NULL, NULL, NULL, NULL);
RESET fleet.ingest_max_batch;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM fleet.ingest_positions(ARRAY['a'], ARRAY[now()], ARRAY[1.0], ARRAY[1.0], NULL, NULL, NULL, NULL, NULL, NULL);
ROLLBACK;
SET fleet.future_margin = -1;
SET ROLE fleet_ingest;
SET fleet.future_margin = '1h';
RESET ROLE;
-- Only fleet_ingest and fleet_admin may call it.
SET ROLE fleet_app;
SELECT * FROM fleet.ingest_positions(ARRAY['a'], ARRAY[now()], ARRAY[1.0], ARRAY[1.0], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
-- The new objects keep the schema rules.
SELECT * FROM fleet.check_schema_rules();
