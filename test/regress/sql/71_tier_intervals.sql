-- Partition intervals other than a day: hourly and weekly policies on a
-- user's table and on fleet.position (creation ahead, naming, due steps,
-- retention, quarantine, warm, cold per day inside a partition, restore,
-- the status view), a monthly change applied to new partitions only, and
-- the intervals that are refused.
\set VERBOSITY terse
SET timezone = 'UTC';
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';

SELECT fleet.create_tenant('Interval Haulage') AS t \gset
SELECT fleet.set_tenant(:t) > 0 AS in_context;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:t, 'IV-1'), (:t, 'IV-2');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
SELECT :t, 'IVD-' || v.code, 'osmand', v.vehicle_id FROM fleet.vehicle v WHERE v.tenant_id = :t;
SELECT fleet.clear_tenant();
CREATE SCHEMA tier_iv;

-- 1. Intervals: whole hours dividing 24, 1 to 31 whole days, one month.
SELECT i, fleet.check_partition_interval(i::interval) IS NOT NULL AS ok
  FROM unnest(ARRAY['1 hour', '2 hours', '3 hours', '4 hours', '6 hours', '8 hours', '12 hours', '24 hours',
                    '1 day', '7 days', '31 days', '1 month']) i;
SELECT fleet.check_partition_interval('5 hours');
SELECT fleet.check_partition_interval('90 minutes');
SELECT fleet.check_partition_interval('1 day 2 hours');
SELECT fleet.check_partition_interval('2 months');
SELECT fleet.check_partition_interval('1 year');
SELECT fleet.check_partition_interval('32 days');
SELECT fleet.check_partition_interval('0');
SELECT fleet.check_partition_interval('-1 day');
SELECT fleet.check_partition_interval(NULL);
\set VERBOSITY default
SELECT fleet.check_partition_interval('30 minutes');
\set VERBOSITY terse
-- aligned starts: whole hours, Mondays (7 days: ISO weeks), the first of the month
SELECT fleet.partition_start('2026-03-11 17:45:10+00', '6 hours') AS six_hours,
       fleet.partition_start('2026-03-11 17:45:10+00', '7 days') AS week,
       extract(isodow FROM fleet.partition_start('2026-03-11 17:45:10+00', '7 days')) AS weekday,
       fleet.partition_start('2026-03-11 17:45:10+00', '1 month') AS month,
       fleet.partition_start('1969-12-31 23:00:00+00', '7 days') AS week_before_epoch;

-- 2. A weekly user table; then the interval changes to a month, which
-- applies to new partitions only (existing ones keep their bounds, new
-- periods are cut around them).
CREATE TABLE tier_iv.weekly (tenant_id bigint NOT NULL, at timestamptz NOT NULL, v integer,
	PRIMARY KEY (tenant_id, at)) PARTITION BY RANGE (at);
INSERT INTO fleet.tier_policy (relation, time_column, partition_interval, hot_for) VALUES ('tier_iv.weekly', 'at', '7 days', '1 day');
SELECT fleet.create_partitions('tier_iv.weekly', '2026-01-07', '2026-01-20') AS created;
SELECT partition, lo, hi FROM fleet.time_partitions('tier_iv.weekly');
UPDATE fleet.tier_policy SET partition_interval = '1 month' WHERE relation = 'tier_iv.weekly'::regclass;
SELECT fleet.create_partitions('tier_iv.weekly', '2026-01-01', '2026-03-01') AS created;
SELECT partition, lo, hi FROM fleet.time_partitions('tier_iv.weekly');
SELECT fleet.create_partitions('tier_iv.weekly', '2026-01-01', '2026-03-01') AS created_again;
SELECT obj_description('tier_iv.weekly_p202602'::regclass) AS comment;
-- refused intervals, on insert and on update
UPDATE fleet.tier_policy SET partition_interval = '5 hours' WHERE relation = 'tier_iv.weekly'::regclass;
UPDATE fleet.tier_policy SET partition_interval = '2 weeks 1 hour' WHERE relation = 'tier_iv.weekly'::regclass;
UPDATE fleet.tier_policy SET ahead = '-1 hour' WHERE relation = 'tier_iv.weekly'::regclass;
CREATE TABLE tier_iv.bad (tenant_id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
INSERT INTO fleet.tier_policy (relation, time_column, partition_interval) VALUES ('tier_iv.bad', 'at', '45 minutes');
SELECT count(*) AS bad_policies FROM fleet.tier_policy WHERE relation = 'tier_iv.bad'::regclass;
SELECT fleet.create_partitions('tier_iv.weekly', '2026-03-01', '2026-02-01');
SELECT fleet.create_partitions('tier_iv.weekly', NULL, '2026-02-01');
SELECT fleet.create_partitions('tier_iv.weekly', '2026-01-01', '9999-01-01');
SELECT action, detail->>'partition_interval' AS partition_interval FROM fleet.tier_ledger
 WHERE action = 'policy' AND relation = 'tier_iv.weekly' ORDER BY seq;

-- 3. An hourly user table: created ahead by maintenance, named per hour;
-- hot -> warm and retention judged per hour.  Everything that depends on
-- now() runs in one transaction, so the hour cannot turn under it.
CREATE TABLE tier_iv.readings (tenant_id bigint NOT NULL, at timestamptz NOT NULL, vehicle_id bigint NOT NULL,
	v integer, PRIMARY KEY (tenant_id, vehicle_id, at)) PARTITION BY RANGE (at);
INSERT INTO fleet.tier_policy (relation, time_column, partition_interval, ahead, hot_for, retention)
VALUES ('tier_iv.readings', 'at', '1 hour', '5 hours', '2 hours', '6 hours');
CREATE FUNCTION pg_temp.run_due(p_rel regclass, p_h0 timestamptz)
RETURNS TABLE (hours_back integer, action text, outcome text) LANGUAGE plpgsql AS $$
DECLARE
	r record;
	v_done text[] := '{}';
BEGIN
	LOOP
		SELECT * INTO r FROM fleet.tier_due() d
		 WHERE d.relation = p_rel AND NOT (d.lo::text || d.action = ANY (v_done)) LIMIT 1;
		EXIT WHEN NOT FOUND;
		v_done := v_done || (r.lo::text || r.action);
		hours_back := extract(epoch FROM p_h0 - r.lo) / 3600;
		action := r.action;
		outcome := regexp_replace(fleet.tier_step(r.relation, r.lo, r.action), '[0-9.]+', 'N', 'g');
		RETURN NEXT;
	END LOOP;
END $$;
BEGIN;
SELECT date_trunc('hour', now()) AS h0 \gset
SELECT created >= 5 AS created_ahead FROM fleet.run_maintenance() WHERE relation = 'tier_iv.readings'::regclass;
SELECT bool_and(EXISTS (SELECT 1 FROM fleet.time_partitions('tier_iv.readings') p WHERE h >= p.lo AND h < p.hi)) AS next_5_hours_covered
  FROM generate_series(now(), now() + interval '5 hours', interval '10 minutes') h;
SELECT bool_and(hi - lo = interval '1 hour') AS all_one_hour,
       bool_and(partition::text ~ '^tier_iv\.readings_p[0-9]{8}_[0-9]{2}$') AS named_per_hour
  FROM fleet.time_partitions('tier_iv.readings');
SELECT fleet.create_partitions('tier_iv.readings', :'h0'::timestamptz - interval '10 hours', :'h0'::timestamptz) AS created_back;
INSERT INTO tier_iv.readings SELECT :t, :'h0'::timestamptz - h * interval '1 hour' + m * interval '10 minutes', v, h * 100 + m
  FROM generate_series(1, 10) h, generate_series(0, 5) m, generate_series(1, 2) v;
CREATE TEMP TABLE kept_hash AS SELECT * FROM fleet.tier_hash('tier_iv.readings', :'h0'::timestamptz - interval '6 hours', :'h0');
SELECT (extract(epoch FROM :'h0' - lo) / 3600)::int AS hours_back, action FROM fleet.tier_due()
 WHERE relation = 'tier_iv.readings'::regclass ORDER BY 1 DESC, 2;
SET LOCAL client_min_messages = warning;
SELECT * FROM pg_temp.run_due('tier_iv.readings', :'h0') ORDER BY 1 DESC, 2;
RESET client_min_messages;
SELECT count(*) AS due_after FROM fleet.tier_due() WHERE relation = 'tier_iv.readings'::regclass;
SELECT (extract(epoch FROM :'h0' - range_lo) / 3600)::int AS hours_back, tier, range_hi - range_lo AS span, rows
  FROM fleet.tier_status WHERE relation = 'tier_iv.readings'::regclass AND range_lo < :'h0' ORDER BY 1 DESC;
COMMIT;
-- rows past retention are gone, every other row kept (count and hash)
SELECT (SELECT n FROM kept_hash) AS rows_kept, count(*) AS rows_now,
       (SELECT hash FROM fleet.tier_hash('tier_iv.readings', :'h0'::timestamptz - interval '6 hours', :'h0')) = (SELECT hash FROM kept_hash) AS same_rows
  FROM tier_iv.readings WHERE at < :'h0';
SELECT action, count(*) FROM fleet.tier_ledger WHERE relation = 'tier_iv.readings' GROUP BY 1 ORDER BY 1;

-- 4. fleet.position weekly: partitions on ISO weeks; a week moves warm and
-- cold (segments per day inside the week), reads back and is restored
-- with its own bounds.
UPDATE fleet.tier_policy SET partition_interval = '7 days' WHERE relation = 'fleet.position'::regclass;
SELECT fleet.partition_start(now() - interval '210 days', '7 days') AS wk \gset
SELECT fleet.create_partitions('fleet.position', :'wk'::timestamptz + interval '2 days', :'wk'::timestamptz + interval '3 days') AS created;
SELECT regexp_replace(partition::text, '[0-9]{4}w[0-9]{2}', 'IYYYwIW') AS partition, extract(isodow FROM lo) AS weekday, hi - lo AS span
  FROM fleet.time_partitions('fleet.position') WHERE lo = :'wk';
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, seq, received_at)
SELECT d.tenant_id, d.device_id, :'wk'::timestamptz + day * interval '1 day' + i * interval '1 minute', d.vehicle_id,
       round((48.1 + i * 0.0001)::numeric, 6)::float8, round((11.5 + i * 0.0002)::numeric, 6)::float8, (i % 90)::real, i,
       :'wk'::timestamptz + day * interval '1 day' + i * interval '1 minute' + interval '2 s'
  FROM fleet.device d, generate_series(0, 2) day, generate_series(0, 299) i
 WHERE d.tenant_id = :t;
CREATE TEMP TABLE week_hash AS SELECT * FROM fleet.tier_hash('fleet.position', :'wk', :'wk'::timestamptz + interval '7 days');
SELECT n FROM week_hash;
SELECT fleet.warm_begin('fleet.position', :'wk') IS NOT NULL AS begun;
SELECT fleet.warm_copy('fleet.position', :'wk') AS copied;
SELECT fleet.warm_swap('fleet.position', :'wk') >= 0 AS swapped;
SELECT tier, range_hi - range_lo AS span, rows FROM fleet.tier_status
 WHERE relation = 'fleet.position'::regclass AND range_lo = :'wk';
SELECT fleet.cold_detach(:'wk') IS NOT NULL AS detached;
SELECT segments, fixes FROM fleet.cold_pack(:'wk');
SELECT day - (:'wk'::timestamptz AT TIME ZONE 'UTC')::date AS day_of_week, count(*) AS segments, sum(nrows) AS fixes
  FROM fleet.cold_segment WHERE part_lo = :'wk' GROUP BY 1 ORDER BY 1;
SELECT tier, range_hi - range_lo AS span, rows FROM fleet.tier_status
 WHERE relation = 'fleet.position'::regclass AND range_lo = :'wk';
SELECT count(*) AS n, md5(string_agg(r::text, E'\n' ORDER BY r::text)) AS h INTO TEMP week_back
  FROM fleet.position_range(:'wk', :'wk'::timestamptz + interval '7 days') r;
SELECT n, h = (SELECT md5(string_agg(r::text, E'\n' ORDER BY r::text)) FROM fleet.position_all r
                WHERE r.fix_time >= :'wk' AND r.fix_time < :'wk'::timestamptz + interval '7 days') AS view_agrees
  FROM week_back;
-- a fix for the packed week has no partition now: quarantined, not lost
SET ROLE fleet_ingest;
SELECT status, reason FROM fleet.ingest_positions(ARRAY['IVD-IV-1'], ARRAY[:'wk'::timestamptz + interval '5 days'],
	ARRAY[48.5], ARRAY[11.5]::float8[], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;
CALL fleet.cold_restore(:'wk');
SELECT regexp_replace(partition::text, '[0-9]{4}w[0-9]{2}', 'IYYYwIW') AS partition, hi - lo AS span
  FROM fleet.time_partitions('fleet.position') WHERE lo = :'wk';
SELECT (SELECT n FROM week_hash) AS before, n AS after,
       hash = (SELECT hash FROM week_hash) AS same_rows
  FROM fleet.tier_hash('fleet.position', :'wk', :'wk'::timestamptz + interval '7 days');
SELECT replayed FROM fleet.quarantine_replay();
SELECT count(*) AS replayed_into_week FROM fleet.position WHERE fix_time = :'wk'::timestamptz + interval '5 days';
-- maintenance ahead at a weekly interval: existing daily partitions stay,
-- the days after them are covered up to the next week boundary, then weeks
BEGIN;	-- one now() for the creation and the check
CREATE TEMP TABLE before_ahead AS SELECT * FROM fleet.time_partitions('fleet.position');
SELECT fleet.create_partitions('fleet.position', now(), now() + interval '21 days') > 0 AS created;
SELECT (SELECT count(*) FROM before_ahead b JOIN fleet.time_partitions('fleet.position') p USING (partition, lo, hi))
       = (SELECT count(*) FROM before_ahead) AS old_partitions_unchanged,
       bool_and(EXISTS (SELECT 1 FROM fleet.time_partitions('fleet.position') p WHERE h >= p.lo AND h < p.hi)) AS next_21_days_covered
  FROM generate_series(now(), now() + interval '21 days', interval '1 hour') h;
COMMIT;
SELECT bool_and(extract(isodow FROM hi) = 1) AS new_partitions_end_on_mondays,
       bool_and(hi - lo <= interval '7 days') AS at_most_a_week
  FROM fleet.time_partitions('fleet.position') p
 WHERE NOT EXISTS (SELECT 1 FROM before_ahead b WHERE b.partition = p.partition);

-- 5. fleet.position hourly: a quarantined fix replays once its hour has a
-- partition; the hour moves warm and cold and comes back.
UPDATE fleet.tier_policy SET partition_interval = '1 hour' WHERE relation = 'fleet.position'::regclass;
SELECT date_trunc('hour', now() - interval '250 days') AS hr \gset
SET ROLE fleet_ingest;
SELECT status, reason, count(*) FROM fleet.ingest_positions(
	(SELECT array_agg(CASE WHEN i % 2 = 0 THEN 'IVD-IV-1' ELSE 'IVD-IV-2' END ORDER BY i) FROM generate_series(0, 239) i),
	(SELECT array_agg(:'hr'::timestamptz + (i / 2) * interval '30 s' ORDER BY i) FROM generate_series(0, 239) i),
	(SELECT array_agg(round((47.0 + i * 0.0001)::numeric, 6)::float8 ORDER BY i) FROM generate_series(0, 239) i),
	(SELECT array_agg(round((8.0 + i * 0.0001)::numeric, 6)::float8 ORDER BY i) FROM generate_series(0, 239) i),
	NULL, NULL, NULL, NULL, NULL, NULL) GROUP BY 1, 2;
RESET ROLE;
SELECT fleet.create_partitions('fleet.position', :'hr', :'hr'::timestamptz + interval '1 hour') AS created;
SELECT regexp_replace(partition::text, '[0-9]{8}_[0-9]{2}', 'YYYYMMDD_HH') AS partition, hi - lo AS span
  FROM fleet.time_partitions('fleet.position') WHERE lo = :'hr';
SELECT replayed FROM fleet.quarantine_replay();
CREATE TEMP TABLE hour_hash AS SELECT * FROM fleet.tier_hash('fleet.position', :'hr', :'hr'::timestamptz + interval '1 hour');
SELECT n FROM hour_hash;
SELECT fleet.warm_begin('fleet.position', :'hr') IS NOT NULL AS begun;
SELECT fleet.warm_copy('fleet.position', :'hr') AS copied;
SELECT fleet.warm_swap('fleet.position', :'hr') >= 0 AS swapped;
SELECT fleet.cold_detach(:'hr') IS NOT NULL AS detached;
SELECT segments, fixes FROM fleet.cold_pack(:'hr');
SELECT tier, range_hi - range_lo AS span, rows FROM fleet.tier_status
 WHERE relation = 'fleet.position'::regclass AND range_lo = :'hr';
SELECT count(*) AS from_cold FROM fleet.position_range(:'hr', :'hr'::timestamptz + interval '1 hour');
CALL fleet.cold_restore(:'hr');
SELECT n = (SELECT n FROM hour_hash) AND hash = (SELECT hash FROM hour_hash) AS restored_identical
  FROM fleet.tier_hash('fleet.position', :'hr', :'hr'::timestamptz + interval '1 hour');
SELECT action, count(*) FROM fleet.tier_ledger
 WHERE action IN ('move', 'pack', 'restore') AND (detail->>'lo')::timestamptz IN (:'wk', :'hr') GROUP BY 1 ORDER BY 1;
SELECT ok FROM fleet.verify_ledger();

-- 6. Names say the range, whatever its start: every interval around fixed
-- day, week, month and year boundaries (a leap day too).  Each name is
-- parsed back (independently of fleet's code) and must give exactly the
-- partition's bounds, so no two ranges can share a name.
SET timezone = 'America/New_York';	-- names and bounds are UTC whatever the session's zone
CREATE SCHEMA tier_nm;
CREATE FUNCTION pg_temp.name_range(n text) RETURNS tstzrange LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	m text[];
	t0 timestamp;
	len interval;
BEGIN
	m := regexp_match(n, '_p([0-9]{4})([0-9]{2})$');			-- a month
	IF m IS NOT NULL THEN
		t0 := make_timestamp(m[1]::int, m[2]::int, 1, 0, 0, 0);
		len := interval '1 month';
	END IF;
	m := regexp_match(n, '_p([0-9]{4})w([0-9]{2})$');			-- an ISO week
	IF m IS NOT NULL THEN
		t0 := to_date(m[1] || m[2], 'IYYYIW');
		len := interval '7 days';
	END IF;
	m := regexp_match(n, '_p([0-9]{8})$');				-- a day
	IF m IS NOT NULL THEN
		t0 := to_date(m[1], 'YYYYMMDD');
		len := interval '1 day';
	END IF;
	m := regexp_match(n, '_p([0-9]{8})_([0-9]+)d$');			-- n days
	IF m IS NOT NULL THEN
		t0 := to_date(m[1], 'YYYYMMDD');
		len := m[2]::int * interval '1 day';
	END IF;
	m := regexp_match(n, '_p([0-9]{8})_([0-9]{2})$');			-- an hour
	IF m IS NOT NULL THEN
		t0 := to_date(m[1], 'YYYYMMDD') + m[2]::int * interval '1 hour';
		len := interval '1 hour';
	END IF;
	m := regexp_match(n, '_p([0-9]{8})_([0-9]{2})_([0-9]+)h$');		-- n hours
	IF m IS NOT NULL THEN
		t0 := to_date(m[1], 'YYYYMMDD') + m[2]::int * interval '1 hour';
		len := m[3]::int * interval '1 hour';
	END IF;
	m := regexp_match(n, '_p([0-9]{8})_([0-9]{6})_([0-9]+)s$');		-- n seconds
	IF m IS NOT NULL THEN
		t0 := to_timestamp(m[1] || m[2], 'YYYYMMDDHH24MISS')::timestamp;
		len := m[3]::int * interval '1 second';
	END IF;
	RETURN tstzrange(t0 AT TIME ZONE 'UTC', (t0 + len) AT TIME ZONE 'UTC');
END $$;
CREATE TEMP TABLE nm_iv (n int, iv interval);
INSERT INTO nm_iv VALUES (1, '1 hour'), (2, '2 hours'), (3, '3 hours'), (4, '4 hours'), (6, '6 hours'), (8, '8 hours'),
	(12, '12 hours'), (24, '24 hours'), (48, '2 days'), (168, '7 days'), (744, '31 days'), (745, '1 month');
CREATE TEMP TABLE nm_at (label text, b timestamptz);
INSERT INTO nm_at VALUES ('day', '2026-03-11 00:00+00'),	-- a Wednesday
	('week', '2026-03-16 00:00+00'),	-- a Monday
	('month', '2026-04-01 00:00+00'),
	('year', '2027-01-01 00:00+00'),	-- inside ISO week 2026-W53
	('leap day', '2028-02-29 00:00+00'),
	('after leap day', '2028-03-01 00:00+00');
DO $$
DECLARE r record;
BEGIN
	FOR r IN SELECT n, iv FROM nm_iv LOOP
		EXECUTE format('CREATE TABLE tier_nm.t%s (tenant_id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at)', r.n);
		INSERT INTO fleet.tier_policy (relation, time_column, partition_interval)
		VALUES (format('tier_nm.t%s', r.n)::regclass, 'at', r.iv);
	END LOOP;
END $$;
SELECT sum(fleet.create_partitions(format('tier_nm.t%s', i.n)::regclass, a.b - interval '1 hour', a.b + interval '1 hour')) AS created
  FROM nm_iv i, nm_at a;
CREATE TEMP TABLE nm_part AS
SELECT i.n, i.iv, p.partition, substring(p.partition::text FROM '_p.*$') AS suffix, p.lo, p.hi
  FROM nm_iv i, fleet.time_partitions(format('tier_nm.t%s', i.n)::regclass) p;
-- every boundary is covered at every interval, by partitions of that interval
SELECT bool_and(EXISTS (SELECT 1 FROM nm_part p WHERE p.n = i.n AND a.b + s * interval '1 hour' >= p.lo
                                                   AND a.b + s * interval '1 hour' < p.hi)) AS boundaries_covered,
       bool_and(NOT EXISTS (SELECT 1 FROM nm_part p WHERE p.n = i.n AND p.lo >= a.b - interval '1 hour' AND p.hi <= a.b + interval '1 hour'
                                                     AND fleet.partition_start(p.lo, i.iv) <> p.lo)) AS aligned
  FROM nm_iv i, nm_at a, generate_series(-1, 0) s;
-- the names, per interval
SET timezone = 'UTC';
SELECT iv AS "interval", string_agg(suffix, ' ' ORDER BY lo) AS partitions FROM nm_part GROUP BY n, iv ORDER BY n;
SELECT count(*) AS partitions,
       count(*) FILTER (WHERE pg_temp.name_range(suffix) = tstzrange(lo, hi)) AS names_give_bounds,
       count(DISTINCT suffix) AS distinct_names, count(DISTINCT (lo, hi)) AS distinct_ranges
  FROM nm_part;
-- an hourly partition at midnight is not the day's partition, nor a 2-hour one
SELECT fleet.range_partition_name('tier_nm.t1', '2026-03-11 00:00+00', '2026-03-11 01:00+00') AS hour_at_midnight,
       fleet.range_partition_name('tier_nm.t1', '2026-03-11 00:00+00', '2026-03-12 00:00+00') AS day,
       fleet.range_partition_name('tier_nm.t1', '2026-03-11 00:00+00', '2026-03-11 02:00+00') AS two_hours,
       fleet.range_partition_name('tier_nm.t1', '2026-03-11 12:00+00', '2026-03-13 12:00+00') AS two_days_from_noon,
       fleet.range_partition_name('tier_nm.t1', '2026-03-16 00:00+00', '2026-03-23 00:00+00') AS iso_week,
       fleet.range_partition_name('tier_nm.t1', '2026-03-17 00:00+00', '2026-03-24 00:00+00') AS seven_days_from_tuesday,
       fleet.range_partition_name('tier_nm.t1', '2026-02-01 00:00+00', '2026-03-01 00:00+00') AS month,
       fleet.range_partition_name('tier_nm.t1', '2026-02-02 00:00+00', '2026-03-02 00:00+00') AS four_weeks,
       fleet.range_partition_name('tier_nm.t1', '2026-03-11 00:30+00', '2026-03-11 01:00+00') AS half_hour,
       fleet.partition_name('tier_nm.t1', '2026-03-11') AS daily_name_of_day;
-- tier_status: one row per partition, its name giving its range
SELECT count(*) AS status_rows, count(DISTINCT s.partition) AS distinct_names,
       bool_and(pg_temp.name_range(s.partition) = tstzrange(s.range_lo, s.range_hi)) AS names_give_ranges
  FROM fleet.tier_status s WHERE s.relation::text LIKE 'tier_nm.%';
-- a relation holding a partition's name for another range is refused, not taken for it
CREATE TABLE tier_nm.t1_p20260520_00 (tenant_id bigint NOT NULL, at timestamptz NOT NULL);
SELECT fleet.create_partitions('tier_nm.t1', '2026-05-20 00:00+00', '2026-05-20 02:00+00');
SELECT count(*) AS partitions_may_20 FROM fleet.time_partitions('tier_nm.t1')
 WHERE lo >= '2026-05-20 00:00+00' AND lo < '2026-05-21 00:00+00';
DROP TABLE tier_nm.t1_p20260520_00;
SELECT fleet.create_partitions('tier_nm.t1', '2026-05-20 00:00+00', '2026-05-20 02:00+00') AS created;
DELETE FROM fleet.tier_policy WHERE relation::text LIKE 'tier_nm.%';
DROP SCHEMA tier_nm CASCADE;
-- partitions made while CREATE EXTENSION ran (fleet's first ones) are not
-- members of the extension, or expiry could never drop them
SELECT count(*) > 0 AS partitions_made_at_install,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                        AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')) AS extension_members
  FROM pg_class c WHERE c.relnamespace = 'fleet'::regnamespace AND c.relispartition AND c.relkind = 'r'
   AND c.oid < 'fleet.tier_status'::regclass::oid;	-- made before the end of the install script

-- back to daily partitions for fleet.position; clean up
UPDATE fleet.tier_policy SET partition_interval = '1 day' WHERE relation = 'fleet.position'::regclass;
DELETE FROM fleet.tier_policy WHERE relation IN ('tier_iv.weekly'::regclass, 'tier_iv.readings'::regclass);
DROP SCHEMA tier_iv CASCADE;
SELECT cron.alter_job(jobid, active := true) FROM cron.job WHERE jobname = 'fleet.maintenance';
