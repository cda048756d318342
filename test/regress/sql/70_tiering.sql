-- Tiered partitioning: quarantine, hot -> warm -> cold -> restore keeping
-- every row, the cold codec, the ledger, legal holds against every way to
-- destroy held data, and the maintenance procedure.
\set VERBOSITY terse
SET timezone = 'UTC';
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';

-- Statements whose errors name a dated partition (or a segment's hash) run
-- through this, which prints the error with dates and hashes masked.  It
-- serves the other tier tests too (72, 73), which run after this one.
CREATE SCHEMA regress_tier;
GRANT USAGE ON SCHEMA regress_tier TO PUBLIC;	-- some run as the fleet roles
CREATE FUNCTION regress_tier.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'done';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || regexp_replace(regexp_replace(regexp_replace(SQLERRM, '[0-9a-f]{32}', 'HASH', 'g'),
	                                         '[0-9]{8}', 'YYYYMMDD', 'g'), '[0-9]{4}-[0-9]{2}-[0-9]{2}', 'YYYY-MM-DD', 'g');
END $$;
-- The same with the detail and hint of the error (ids masked as N), for the
-- legal-hold refusals, whose detail names the hold.
CREATE FUNCTION pg_temp.mask(s text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(regexp_replace(s, '[0-9]{8}', 'YYYYMMDD', 'g'), 'placed by [^)]*', 'placed by U', 'g')
$$;
CREATE FUNCTION pg_temp.refused(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_detail text;
	v_hint text;
BEGIN
	EXECUTE stmt;
	RETURN pg_temp.mask(stmt) || E'\n  done';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
	RETURN pg_temp.mask(stmt) || E'\n  ' || SQLSTATE || ' ' || regexp_replace(regexp_replace(SQLERRM, '[0-9]{8}', 'YYYYMMDD', 'g'),
	                                         '[0-9]{4}-[0-9]{2}-[0-9]{2}', 'YYYY-MM-DD', 'g')
	       || E'\n  DETAIL: ' || regexp_replace(pg_temp.mask(coalesce(v_detail, '')), '(hold|tenant|vehicle) [0-9]+', '\1 N', 'g')
	       || E'\n  HINT: ' || coalesce(v_hint, '');
END $$;

-- Fixture: a tenant with two vehicles and their devices.
SELECT fleet.create_tenant('Tier Logistics') AS t \gset
SELECT fleet.set_tenant(:t) > 0 AS in_context;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:t, 'TV-1'), (:t, 'TV-2');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
SELECT :t, 'TIER-' || v.code, 'osmand', v.vehicle_id FROM fleet.vehicle v WHERE v.tenant_id = :t;
SELECT vehicle_id AS v1 FROM fleet.vehicle WHERE code = 'TV-1' \gset
SELECT fleet.clear_tenant();
SELECT ((now() AT TIME ZONE 'UTC')::date - 40) AS d40, ((now() AT TIME ZONE 'UTC')::date - 41) AS d41 \gset

-- 1. Quarantine: a batch with fixes for a day without a partition goes in
-- whole; those fixes are kept with their reason.
SET ROLE fleet_ingest;
SELECT status, reason, count(*) FROM fleet.ingest_positions(
	device   => ARRAY['TIER-TV-1', 'TIER-TV-1', 'TIER-TV-2'],
	fix_time => ARRAY[now() - interval '1 hour', :'d40'::timestamptz + interval '10 hours', :'d40'::timestamptz + interval '11 hours'],
	lat      => ARRAY[52.1, 52.2, 52.3], lon => ARRAY[13.1, 13.2, 13.3]::float8[],
	speed => NULL, heading => NULL, altitude => NULL, accuracy => NULL, seq => NULL, attrs => NULL)
GROUP BY 1, 2 ORDER BY 1, 2;
RESET ROLE;
SELECT fleet.set_tenant(:t) > 0 AS in_context;
SELECT reason, count(*) FROM fleet.position_quarantine WHERE tenant_id = :t GROUP BY 1;
SELECT fleet.clear_tenant();
-- Once the day has a partition, the quarantine replays into it.
SELECT fleet.create_daily_partitions('fleet.position', :'d41', :'d40');
SELECT replayed FROM fleet.quarantine_replay();
SELECT count(*) AS replayed_fixes FROM fleet.position WHERE tenant_id = :t AND fix_time < now() - interval '30 days';

-- Realistic telemetry for day -40: two vehicles, a fix every 10 s, six decimals.
SET ROLE fleet_ingest;
SELECT status, count(*) FROM fleet.ingest_positions(
	device   => (SELECT array_agg(CASE WHEN i % 2 = 0 THEN 'TIER-TV-1' ELSE 'TIER-TV-2' END ORDER BY i) FROM generate_series(1, 4000) i),
	fix_time => (SELECT array_agg(:'d40'::timestamptz + (i / 2) * interval '10 s' + interval '12 hours' ORDER BY i) FROM generate_series(1, 4000) i),
	lat      => (SELECT array_agg(round((52.5 + (i / 2) * 0.00013 + (i % 2) * 0.1)::numeric, 6)::float8 ORDER BY i) FROM generate_series(1, 4000) i),
	lon      => (SELECT array_agg(round((13.4 + (i / 2) * 0.00021)::numeric, 6)::float8 ORDER BY i) FROM generate_series(1, 4000) i),
	speed    => (SELECT array_agg(round((40 + (i % 17))::numeric, 1)::real ORDER BY i) FROM generate_series(1, 4000) i),
	heading  => (SELECT array_agg(((i * 7) % 360)::real ORDER BY i) FROM generate_series(1, 4000) i),
	altitude => (SELECT array_agg((30 + i % 5)::real ORDER BY i) FROM generate_series(1, 4000) i),
	accuracy => (SELECT array_agg(CASE WHEN i % 50 = 0 THEN NULL ELSE 4.5 END::real ORDER BY i) FROM generate_series(1, 4000) i),
	seq      => (SELECT array_agg((i / 2)::bigint ORDER BY i) FROM generate_series(1, 4000) i),
	attrs    => (SELECT array_agg(CASE WHEN i % 100 = 0 THEN '{"ign": true, "fuel": 61.5}'::jsonb END ORDER BY i) FROM generate_series(1, 4000) i))
GROUP BY 1;
RESET ROLE;

-- The day's content as one hash, read the way applications read it.
CREATE TEMP TABLE day_hash AS
SELECT count(*) AS n, md5(string_agg(r::text, E'\n' ORDER BY r::text)) AS h
  FROM fleet.position_range(:'d40', :'d40'::timestamptz + interval '1 day') r;
SELECT n FROM day_hash;

-- 2. Hot -> warm in three steps; a fix arriving between them is kept.
SET allow_in_place_tablespaces = on;
CREATE TABLESPACE fleet_warm_test LOCATION '';
UPDATE fleet.tier_policy SET warm_tablespace = 'fleet_warm_test' WHERE relation = 'fleet.position'::regclass;
SELECT fleet.warm_begin('fleet.position', :'d40') IS NOT NULL AS shadow_created;
SET ROLE fleet_ingest;
SELECT status FROM fleet.ingest_positions(ARRAY['TIER-TV-1'], ARRAY[:'d40'::timestamptz + interval '23 hours'],
	ARRAY[52.9], ARRAY[13.9]::float8[], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
-- (updates and deletes of that day wait for the move)
SELECT regress_tier.try(format('DELETE FROM fleet.position WHERE tenant_id = %s AND fix_time = %L', :t, :'d40'::timestamptz + interval '23 hours'));
SELECT fleet.warm_copy('fleet.position', :'d40') AS copied;
-- the copy was written frozen: every page all-visible and all-frozen, no vacuum needed
CREATE EXTENSION pg_visibility;
SELECT format('fleet.%I', work) AS shadow FROM fleet.tier_state WHERE lo = :'d40' \gset
SELECT pg_relation_size(:'shadow') / current_setting('block_size')::int AS pages, all_visible, all_frozen
  FROM pg_visibility_map_summary(:'shadow');
SELECT count(*) AS unfrozen_tuples_on_frozen_pages FROM pg_check_frozen(:'shadow');
SET ROLE fleet_ingest;
SELECT status FROM fleet.ingest_positions(ARRAY['TIER-TV-2'], ARRAY[:'d40'::timestamptz + interval '23 hours 1 minute'],
	ARRAY[52.95], ARRAY[13.95]::float8[], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
SELECT fleet.warm_swap('fleet.position', :'d40') >= 0 AS swapped;
-- the fix written during the copy came through the delta table: the swap
-- added it (not frozen); every other page stays all-frozen
SELECT detail->'late_rows' AS late_rows FROM fleet.tier_ledger WHERE action = 'move' ORDER BY seq DESC LIMIT 1;
SELECT pg_relation_size(fleet.tier_partition('fleet.position', :'d40')) / current_setting('block_size')::int - all_frozen AS pages_not_frozen
  FROM pg_visibility_map_summary(fleet.tier_partition('fleet.position', :'d40'));
SELECT count(*) AS delta_left FROM pg_class WHERE relname ~ '^position_p[0-9]{8}_[wd]$';
SELECT tier, tablespace, rows FROM fleet.tier_status WHERE relation = 'fleet.position'::regclass AND day = :'d40';
SELECT am.amname, count(*) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
 WHERE x.indrelid = fleet.tier_partition('fleet.position', :'d40') GROUP BY 1 ORDER BY 1;
-- every row kept: the hash after the move equals the hash before plus the two late fixes
DELETE FROM day_hash;
INSERT INTO day_hash SELECT count(*), md5(string_agg(r::text, E'\n' ORDER BY r::text))
  FROM fleet.position_range(:'d40', :'d40'::timestamptz + interval '1 day') r;
SELECT n FROM day_hash;
SELECT (SELECT hash FROM fleet.tier_hash('fleet.position', :'d40')) IS NOT NULL AS hashed;
-- rows are stored per vehicle over time
SELECT bool_and(ok) AS sorted FROM (
	SELECT (vehicle_id, fix_time) >= lag((vehicle_id, fix_time)) OVER (ORDER BY ctid) OR lag(fix_time) OVER (ORDER BY ctid) IS NULL AS ok
	  FROM fleet.position WHERE fix_time >= :'d40' AND fix_time < :'d40'::timestamptz + interval '23 hours' AND tenant_id = :t) s;

-- 3. Warm -> cold: detach, pack, read back.
SELECT fleet.cold_detach(:'d40') IS NOT NULL AS detached;
SET ROLE fleet_ingest;
SELECT status, reason FROM fleet.ingest_positions(ARRAY['TIER-TV-1'], ARRAY[:'d40'::timestamptz + interval '23 hours 2 minutes'],
	ARRAY[52.97], ARRAY[13.97]::float8[], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
SELECT segments, fixes, bytes::numeric / fixes <= 16 AS at_most_16_bytes_per_fix FROM fleet.cold_pack(:'d40');
SELECT tier, rows FROM fleet.tier_status WHERE relation = 'fleet.position'::regclass AND day = :'d40';
SELECT count(*) AS n, md5(string_agg(r::text, E'\n' ORDER BY r::text)) = (SELECT h FROM day_hash) AS same_rows
  FROM fleet.position_range(:'d40', :'d40'::timestamptz + interval '1 day') r;
SELECT count(*) AS one_vehicle_one_hour FROM fleet.position_range(:'d40'::timestamptz + interval '12 hours',
	:'d40'::timestamptz + interval '13 hours', NULL, :v1);
SELECT count(*) AS through_view FROM fleet.position_all WHERE fix_time >= :'d40' AND fix_time < :'d40'::timestamptz + interval '1 day';
-- the tenant sees its cold rows only in its own context
SET ROLE fleet_app;
SELECT count(*) AS no_context FROM fleet.position_range(:'d40', :'d40'::timestamptz + interval '1 day');
SELECT fleet.set_tenant(:t) > 0 AS in_context;
SELECT count(*) AS own_context FROM fleet.position_range(:'d40', :'d40'::timestamptz + interval '1 day');
SELECT fleet.clear_tenant();
RESET ROLE;
-- packing a day that is not being packed
SELECT regress_tier.try(format('SELECT fleet.cold_pack(%L)', :'d41'));
SELECT regress_tier.try(format('SELECT fleet.warm_copy(''fleet.position'', %L)', :'d41'));
SELECT regress_tier.try(format('SELECT fleet.warm_swap(''fleet.position'', %L)', :'d41'));
SELECT regress_tier.try(format('SELECT fleet.warm_begin(''fleet.position'', %L)', :'d40'::date - 400));
SELECT regress_tier.try(format('SELECT fleet.cold_detach(%L)', :'d40'::date - 400));

-- 4. Restore: the cold day becomes a partition again, every row back.
CALL fleet.cold_restore(:'d40');
SELECT tier FROM fleet.tier_status WHERE relation = 'fleet.position'::regclass AND day = :'d40';
SELECT count(*) AS n, md5(string_agg(r::text, E'\n' ORDER BY r::text)) = (SELECT h FROM day_hash) AS same_rows
  FROM fleet.position r WHERE fix_time >= :'d40' AND fix_time < :'d40'::timestamptz + interval '1 day';
SELECT count(*) AS cold_left FROM fleet.cold_segment WHERE day = :'d40';
SELECT regress_tier.try(format('CALL fleet.cold_restore(%L)', :'d40'));

-- 5. The codec round trip is lossless for awkward values too.
WITH src AS (
	SELECT ARRAY['2026-01-01 00:00:00.123456+00', '2026-01-01 00:00:00.123457+00', '2025-12-31 23:00:00+00']::timestamptz[] AS t,
	       ARRAY[1.0/3, -89.999999999, 0]::float8[] AS la, ARRAY[-0.0, 179.123456789012, 1e-300]::float8[] AS lo,
	       ARRAY[NULL, 1.005, 3.4e38]::real[] AS sp, ARRAY[NULL, NULL, NULL]::real[] AS hd,
	       ARRAY[-12.25, 0, 8848.86]::real[] AS al, ARRAY[0.1, NULL, 1e-7]::real[] AS ac,
	       ARRAY[9223372036854775807, -9223372036854775808, NULL]::bigint[] AS sq,
	       ARRAY['{"a": [1, 2, {"b": "ü"}]}', NULL, '"x"']::jsonb[] AS at,
	       ARRAY['2026-01-01 00:00:01+00', '2020-01-01 00:00:00+00', '2030-06-30 12:00:00.000001+00']::timestamptz[] AS rc
), dec AS (
	SELECT d.* FROM src, fleet.cold_decode(fleet.cold_encode(t, la, lo, sp, hd, al, ac, sq, at, rc)) WITH ORDINALITY d
)
SELECT (SELECT array_agg(fix_time ORDER BY ordinality) FROM dec) = t AS t_ok,
       (SELECT array_agg(float8send(lat) ORDER BY ordinality) FROM dec) = (SELECT array_agg(float8send(x)) FROM unnest(la) x) AS lat_bits,
       (SELECT array_agg(float8send(lon) ORDER BY ordinality) FROM dec) = (SELECT array_agg(float8send(x)) FROM unnest(lo) x) AS lon_bits,
       (SELECT array_agg(speed ORDER BY ordinality) FROM dec) IS NOT DISTINCT FROM sp AS speed_ok,
       (SELECT array_agg(heading ORDER BY ordinality) FROM dec) IS NOT DISTINCT FROM hd AS heading_ok,
       (SELECT array_agg(altitude ORDER BY ordinality) FROM dec) IS NOT DISTINCT FROM al AS alt_ok,
       (SELECT array_agg(accuracy ORDER BY ordinality) FROM dec) IS NOT DISTINCT FROM ac AS acc_ok,
       (SELECT array_agg(seq ORDER BY ordinality) FROM dec) IS NOT DISTINCT FROM sq AS seq_ok,
       (SELECT array_agg(attrs ORDER BY ordinality) FROM dec) IS NOT DISTINCT FROM at AS attrs_ok,
       (SELECT array_agg(received_at ORDER BY ordinality) FROM dec) = rc AS recv_ok
  FROM src;
-- codec errors
SELECT fleet.cold_encode(ARRAY[now()], ARRAY[1.0, 2.0]::float8[], ARRAY[1.0]::float8[], '{}', '{}', '{}', '{}', '{}', '{}', ARRAY[now()]);
SELECT fleet.cold_encode('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
SELECT fleet.cold_encode(ARRAY[NULL::timestamptz], ARRAY[1.0]::float8[], ARRAY[1.0]::float8[], ARRAY[NULL::real], ARRAY[NULL::real],
	ARRAY[NULL::real], ARRAY[NULL::real], ARRAY[NULL::bigint], ARRAY[NULL::jsonb], ARRAY[now()]);
SELECT * FROM fleet.cold_decode('\x00');
SELECT * FROM fleet.cold_decode('\x4643443101000000ff00000000');
SELECT * FROM fleet.cold_decode(overlay(fleet.cold_encode(ARRAY[now()], ARRAY[1.5]::float8[], ARRAY[2.5]::float8[], ARRAY[1::real],
	ARRAY[1::real], ARRAY[1::real], ARRAY[1::real], ARRAY[1::bigint], ARRAY[NULL::jsonb], ARRAY[now()]) placing '\xffff' from 14));

-- 5b. The frozen fill itself: frozen only into a table created in the same
-- transaction (else unfrozen, with a NOTICE); no indexes or triggers on the target.
CREATE TABLE public.fill_src (id integer NOT NULL, v text);
INSERT INTO public.fill_src SELECT g, repeat('x', g % 50) FROM generate_series(1, 3000) g;
BEGIN;
CREATE TABLE public.fill_dst (id integer NOT NULL, v text);
SELECT fleet.warm_fill('public.fill_src', 'public.fill_dst', NULL, 'id DESC') AS filled;
COMMIT;
SELECT all_visible > 0 AND all_visible = all_frozen
       AND all_frozen = pg_relation_size('public.fill_dst') / current_setting('block_size')::int AS all_pages_frozen
  FROM pg_visibility_map_summary('public.fill_dst');
SELECT (SELECT id FROM public.fill_dst WHERE ctid = '(0,1)') AS first_row, count(*) FILTER (WHERE v IS DISTINCT FROM repeat('x', id % 50)) AS wrong
  FROM public.fill_dst;
SELECT fleet.warm_fill('public.fill_src', 'public.fill_dst', NULL, 'id') AS filled_again;
SELECT all_frozen = pg_relation_size('public.fill_dst') / current_setting('block_size')::int AS still_all_frozen
  FROM pg_visibility_map_summary('public.fill_dst');
-- an index on the target is maintained as the rows go in
CREATE INDEX ON public.fill_dst (id);
SELECT fleet.warm_fill('public.fill_src', 'public.fill_dst', NULL, 'id') AS filled_with_index;
SET enable_seqscan = off;
SELECT count(*) AS found_by_index FROM public.fill_dst WHERE id = 1500;
RESET enable_seqscan;
DROP INDEX public.fill_dst_id_idx;
CREATE TRIGGER t BEFORE INSERT ON public.fill_dst FOR EACH ROW EXECUTE FUNCTION fleet.hold_row_guard();
SELECT fleet.warm_fill('public.fill_src', 'public.fill_dst', NULL, 'id');
SELECT fleet.warm_fill('public.fill_src', 'fleet.position', NULL, 'id');
SELECT fleet.warm_fill(NULL, 'public.fill_dst', NULL, 'id');
DROP TABLE public.fill_src, public.fill_dst;

-- 6. Legal hold: a tenant's own time-partitioned table under a policy,
-- owned by a non-superuser who could otherwise destroy it in every way.
CREATE ROLE tier_owner LOGIN;
CREATE SCHEMA tier_test AUTHORIZATION tier_owner;
GRANT fleet_admin TO tier_owner;
SELECT 'evidence_p' || to_char(:'d41'::date, 'YYYYMMDD') AS e41, 'evidence_p' || to_char(:'d40'::date, 'YYYYMMDD') AS e40 \gset
SET ROLE tier_owner;
CREATE TABLE tier_test.evidence (tenant_id bigint NOT NULL, ev_id bigint NOT NULL, at timestamptz NOT NULL,
	vehicle_id bigint, note text, PRIMARY KEY (tenant_id, ev_id, at)) PARTITION BY RANGE (at);
CREATE TABLE tier_test.:"e41" PARTITION OF tier_test.evidence FOR VALUES FROM (:'d41') TO (:'d40');
CREATE TABLE tier_test.:"e40" PARTITION OF tier_test.evidence FOR VALUES FROM (:'d40') TO (:'d40'::date + 1);
INSERT INTO tier_test.evidence VALUES (:t, 1, :'d41'::timestamptz + interval '1 hour', :v1, 'crash'),
	(:t, 2, :'d41'::timestamptz + interval '2 hours', :v1 + 1, 'other vehicle'),
	(:t, 3, :'d40'::timestamptz + interval '1 hour', :v1, 'next day');
CREATE TYPE tier_test.mood AS ENUM ('calm', 'angry');
ALTER TABLE tier_test.evidence ADD COLUMN mood tier_test.mood;
CREATE FUNCTION tier_test.let_through() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
CREATE TRIGGER other_trigger BEFORE DELETE ON tier_test.evidence FOR EACH ROW EXECUTE FUNCTION tier_test.let_through();
INSERT INTO fleet.tier_policy (relation, time_column, hot_for, retention) VALUES ('tier_test.evidence', 'at', '1 day', '100 days');
SELECT fleet.place_hold(:t, :'d41'::timestamptz, :'d41'::timestamptz + interval '12 hours', 'claim 4711: collision', :v1) AS hold \gset
SELECT fleet.place_hold(:t, :'d40'::timestamptz, :'d40'::timestamptz + interval '1 day', 'audit 2026', NULL, 'fleet.position') AS hold2 \gset
-- every way to destroy held data is refused
SELECT regress_tier.try(format('DELETE FROM tier_test.evidence WHERE ev_id = 1')) AS "DELETE FROM tier_test.evidence WHERE ev_id = 1";
SELECT regress_tier.try(format('UPDATE tier_test.evidence SET note = ''edited'' WHERE ev_id = 1')) AS "UPDATE tier_test.evidence SET note = 'edited' WHERE ev_id = ";
SELECT regress_tier.try(format('DELETE FROM tier_test.%I', :'e41')) AS "DELETE FROM tier_test.:e41";
SELECT regress_tier.try(format('TRUNCATE tier_test.evidence')) AS "TRUNCATE tier_test.evidence";
SELECT regress_tier.try(format('TRUNCATE tier_test.%I', :'e41')) AS "TRUNCATE tier_test.:e41";
SELECT regress_tier.try(format('DROP TABLE tier_test.%I', :'e41')) AS "DROP TABLE tier_test.:e41";
SELECT regress_tier.try(format('DROP TABLE tier_test.evidence')) AS "DROP TABLE tier_test.evidence";
SELECT regress_tier.try(format('DROP TABLE tier_test.evidence CASCADE')) AS "DROP TABLE tier_test.evidence CASCADE";
SELECT regress_tier.try(format('ALTER TABLE tier_test.evidence DETACH PARTITION tier_test.%I', :'e41')) AS "ALTER TABLE tier_test.evidence DETACH PARTITION tier_test.:";
SELECT regress_tier.try(format('DROP SCHEMA tier_test CASCADE')) AS "DROP SCHEMA tier_test CASCADE";
SELECT regress_tier.try('DROP OWNED BY tier_owner') AS "DROP OWNED BY tier_owner";
-- ALTER TABLE that drops or rewrites held data, or silences the hold trigger
\pset format unaligned
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence DROP COLUMN note');
SELECT pg_temp.refused(format('ALTER TABLE tier_test.%I DROP COLUMN note', :'e41'));
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence ALTER COLUMN note TYPE varchar(2) USING left(note, 2)');
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence ALTER COLUMN ev_id TYPE integer');
SELECT pg_temp.refused(format('ALTER TABLE tier_test.%I SET UNLOGGED', :'e41'));
SELECT pg_temp.refused(format('ALTER TABLE tier_test.evidence DETACH PARTITION tier_test.%I CONCURRENTLY', :'e41'));
SELECT pg_temp.refused(format('ALTER TABLE tier_test.evidence DETACH PARTITION tier_test.%I FINALIZE', :'e41'));
SELECT pg_temp.refused('DROP TYPE tier_test.mood CASCADE');
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence DISABLE TRIGGER hold_row_guard');
SELECT pg_temp.refused(format('ALTER TABLE tier_test.%I DISABLE TRIGGER hold_row_guard', :'e41'));
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence DISABLE TRIGGER ALL');
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence DISABLE TRIGGER USER');
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence ENABLE REPLICA TRIGGER hold_row_guard');
SELECT pg_temp.refused('DROP TRIGGER hold_row_guard ON tier_test.evidence');
SELECT pg_temp.refused('CREATE OR REPLACE TRIGGER hold_row_guard BEFORE UPDATE OR DELETE ON tier_test.evidence FOR EACH ROW EXECUTE FUNCTION tier_test.let_through()');
-- a renamed hold trigger is still the hold trigger
ALTER TRIGGER hold_row_guard ON tier_test.evidence RENAME TO renamed_guard;
SELECT pg_temp.refused('ALTER TABLE tier_test.evidence DISABLE TRIGGER renamed_guard');
SELECT pg_temp.refused('DROP TRIGGER renamed_guard ON tier_test.evidence');
ALTER TRIGGER renamed_guard ON tier_test.evidence RENAME TO hold_row_guard;
\pset format aligned
-- what leaves held data alone still works
ALTER TABLE tier_test.evidence ADD COLUMN extra integer;
ALTER TABLE tier_test.evidence ALTER COLUMN note SET STORAGE EXTERNAL;
ALTER TABLE tier_test.evidence DISABLE TRIGGER other_trigger;
SELECT regress_tier.try(format('UPDATE fleet.tier_policy SET retention = ''1 day'' WHERE relation = ''tier_test.evidence''::regclass')) AS "UPDATE fleet.tier_policy SET retention = '1 day' WHERE relat";
SELECT regress_tier.try(format('DELETE FROM fleet.tier_policy WHERE relation = ''tier_test.evidence''::regclass')) AS "DELETE FROM fleet.tier_policy WHERE relation = 'tier_test.ev";
SELECT regress_tier.try(format('DELETE FROM fleet.legal_hold')) AS "DELETE FROM fleet.legal_hold";
SELECT regress_tier.try(format('UPDATE fleet.legal_hold SET hi = lo + interval ''1 s''')) AS "UPDATE fleet.legal_hold SET hi = lo + interval '1 s'";
-- rows the hold does not cover stay deletable (another vehicle)
SELECT regress_tier.try(format('DELETE FROM tier_test.evidence WHERE ev_id = 2')) AS "DELETE FROM tier_test.evidence WHERE ev_id = 2";
-- fleet's own tables: held fixes, held cold data, the whole extension
SELECT regress_tier.try(format('DROP TABLE fleet.position')) AS "DROP TABLE fleet.position";
SELECT regress_tier.try(format('DROP EXTENSION fleet')) AS "DROP EXTENSION fleet";
RESET ROLE;
-- even a superuser only releases holds, through the function
DELETE FROM fleet.legal_hold;
UPDATE fleet.legal_hold SET reason = 'changed';
GRANT DELETE, TRUNCATE ON fleet.position, fleet.cold_segment TO tier_owner;
SET ROLE tier_owner;
SELECT fleet.set_tenant(:t) IS NOT NULL AS in_context;
SELECT regress_tier.try(format('DELETE FROM fleet.position WHERE tenant_id = %s AND fix_time >= %L AND fix_time < %L', :t, :'d40', :'d40'::date + 1)) AS "DELETE FROM fleet.position WHERE tenant_id = :t AND fix_time";
SELECT regress_tier.try(format('TRUNCATE fleet.position')) AS "TRUNCATE fleet.position";
SELECT regress_tier.try(format('DROP TABLE fleet.position_quarantine')) AS "DROP TABLE fleet.position_quarantine";
SELECT fleet.clear_tenant();
SELECT (SELECT tablename FROM pg_tables WHERE tablename = 'position_quarantine') AS unheld_table_drop_reaches_permissions;
RESET ROLE;
-- maintenance keeps held data: retention would purge both days
UPDATE fleet.tier_policy SET retention = '2 days', hot_for = '1 day' WHERE relation = 'tier_test.evidence'::regclass;
SELECT relation, (lo AT TIME ZONE 'UTC')::date - :'d41'::date AS day, action FROM fleet.tier_due() WHERE relation = 'tier_test.evidence'::regclass ORDER BY 2, 3;
SELECT fleet.tier_purge('tier_test.evidence', :'d41');
SELECT fleet.tier_purge('tier_test.evidence', :'d40');
SELECT count(*) AS evidence_left FROM tier_test.evidence;
-- released: now the owner may drop it
SET ROLE tier_owner;
SELECT fleet.release_hold(:t, :hold);
\set VERBOSITY sqlstate
SELECT fleet.release_hold(:t, :hold);
\set VERBOSITY terse
DROP TABLE tier_test.:"e41";
-- no hold left: the owner may change the table again, but not remove the
-- hold trigger while the table is tiered (a hold placed later needs it)
ALTER TABLE tier_test.evidence DROP COLUMN extra;
DROP TYPE tier_test.mood CASCADE;
ALTER TABLE tier_test.evidence ALTER COLUMN note TYPE varchar(20);
\pset format unaligned
SELECT pg_temp.refused('DROP TRIGGER hold_row_guard ON tier_test.evidence');
\pset format aligned
DELETE FROM fleet.tier_policy WHERE relation = 'tier_test.evidence'::regclass;
DROP TRIGGER hold_row_guard ON tier_test.evidence;
DROP SCHEMA tier_test CASCADE;
RESET ROLE;
-- hold errors
SET ROLE tier_owner;
SELECT fleet.place_hold(:t, now(), now() - interval '1 day', 'backwards');
SELECT fleet.place_hold(:t, now() - interval '1 day', now(), '  ');
SELECT fleet.place_hold(:t, now() - interval '1 day', now(), 'x', NULL, 'fleet.job');
SELECT fleet.place_hold(-1, now() - interval '1 day', now(), 'x');
RESET ROLE;
SET ROLE fleet_app;
SELECT fleet.place_hold(:t, now() - interval '1 day', now(), 'not an admin');
RESET ROLE;

-- 7. The ledger: every step above, chained; a tampered entry is found.
SELECT action, count(*) FROM fleet.tier_ledger GROUP BY 1 ORDER BY 1;
SELECT ok, entries > 10 AS entries, first_bad, problem FROM fleet.verify_ledger();
UPDATE fleet.tier_ledger SET detail = '{}' WHERE seq = 1;
DELETE FROM fleet.tier_ledger;
TRUNCATE fleet.tier_ledger;
ALTER TABLE fleet.tier_ledger DISABLE TRIGGER ledger_append_only;
CREATE TEMP TABLE saved AS SELECT * FROM fleet.tier_ledger WHERE seq IN (2, 3);
UPDATE fleet.tier_ledger SET detail = detail || '{"forged": true}' WHERE seq = 3;
SELECT ok, first_bad, problem FROM fleet.verify_ledger();
UPDATE fleet.tier_ledger l SET detail = s.detail FROM saved s WHERE l.seq = 3 AND s.seq = 3;
DELETE FROM fleet.tier_ledger WHERE seq = 2;
SELECT ok, first_bad, problem FROM fleet.verify_ledger();
INSERT INTO fleet.tier_ledger SELECT * FROM saved WHERE seq = 2;
SELECT ok, entries > 10 AS entries FROM fleet.verify_ledger();
ALTER TABLE fleet.tier_ledger ENABLE TRIGGER ledger_append_only;

-- 8. Maintenance: one call does the due work, one step per transaction.
UPDATE fleet.tier_policy SET warm_tablespace = NULL, hot_for = '39 days', cold_after = '39 days' WHERE relation = 'fleet.position'::regclass;
SELECT relation, (lo AT TIME ZONE 'UTC')::date - :'d41'::date AS day, action FROM fleet.tier_due() ORDER BY 1, 2, 3;
-- (an empty day packs to no segment)
SET client_min_messages = warning;
CALL fleet.tier_maintenance(p_duty => 1);
RESET client_min_messages;
SELECT day - :'d41'::date AS day, tier, rows > 0 AS has_rows FROM fleet.tier_status
 WHERE relation = 'fleet.position'::regclass AND day <= :'d40' ORDER BY 1;
SELECT count(*) AS n, md5(string_agg(r::text, E'\n' ORDER BY r::text)) = (SELECT h FROM day_hash) AS same_rows
  FROM fleet.position_range(:'d40', :'d40'::timestamptz + interval '1 day') r;
SELECT count(*) AS due_after FROM fleet.tier_due();
-- held cold data: neither DELETE nor TRUNCATE of the segments
SET ROLE tier_owner;
SELECT fleet.set_tenant(:t) IS NOT NULL AS in_context;
SELECT regress_tier.try('DELETE FROM fleet.cold_segment') AS "DELETE FROM fleet.cold_segment";
SELECT regress_tier.try('TRUNCATE fleet.cold_segment') AS "TRUNCATE fleet.cold_segment";
SELECT fleet.clear_tenant();
RESET ROLE;
SELECT fleet.release_hold(:t, :hold2);
SELECT count(*) AS holds_active FROM fleet.legal_hold WHERE released_at IS NULL;
REVOKE ALL ON fleet.position, fleet.cold_segment FROM tier_owner;
DROP OWNED BY tier_owner;
DROP ROLE tier_owner;
DROP TABLESPACE fleet_warm_test;
DROP EXTENSION pg_visibility;
SELECT fleet.tier_step('fleet.position', :'d40', 'nonsense');
UPDATE fleet.tier_policy SET cold_after = NULL, hot_for = '2 days' WHERE relation = 'fleet.position'::regclass;
SELECT cron.alter_job(jobid, active := true) FROM cron.job WHERE jobname = 'fleet.maintenance';
