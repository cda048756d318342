-- fleet views: declaring, change tracking through every insert path,
-- incremental refresh of rollup, latest and general views, late rows,
-- rebuild after non-append changes, verification, freshness functions,
-- guaranteed reads and tenant isolation of the read models.
\set VERBOSITY terse

-- ---------------------------------------------------------------- declare
CREATE SCHEMA vt;
CREATE TABLE vt.reading (tenant_id bigint NOT NULL, sensor int NOT NULL, at timestamptz NOT NULL,
                         v double precision, n int, tag text);

SELECT fleet.create_view('vt.reading_daily', 'rollup', '1 minute',
	source     => 'vt.reading',
	keys       => ARRAY['tenant_id', 'sensor', 'day = (at AT TIME ZONE ''UTC'')::date'],
	aggregates => ARRAY['readings = count(*)', 'with_value = count(v)', 'total = sum(v)', 'n_total = sum(n)',
	                    'lo = min(v)', 'hi = max(v)', 'mean = avg(v)', 'first_tag = first(tag, at)',
	                    'last_v = last(v, at)', 'first_at = min(at)'],
	filter     => 'sensor OPERATOR(pg_catalog.>) 0');
SELECT fleet.create_view('vt.reading_latest', 'latest', '10 seconds',
	source   => 'vt.reading',
	keys     => ARRAY['tenant_id', 'sensor'],
	columns  => ARRAY['v', 'tag'],
	order_by => ARRAY['at', 'n']);
SELECT fleet.create_view('vt.reading_general', 'general', '5 minutes',
	source     => 'vt.reading',
	keys       => ARRAY['tenant_id', 'tag'],
	definition => 'SELECT tenant_id, tag, count(*) AS readings, max(at) AS last_at FROM vt.reading WHERE tag IS NOT NULL GROUP BY 1, 2');

SELECT view, kind, source, bound, as_of IS NOT NULL AS has_as_of, refreshes, rebuilds, bound_misses
  FROM fleet.view_status ORDER BY view::text;
\d vt.reading_daily
\d vt.reading_daily_data

-- Declaration errors.
SELECT fleet.create_view('vt.bad', 'cube', '1 minute');
SELECT fleet.create_view('vt.bad', 'rollup', '0 s', source => 'vt.reading', keys => ARRAY['sensor'], aggregates => ARRAY['c = count(*)']);
SELECT fleet.create_view('vt.bad', 'rollup', '1 minute', source => 'vt.reading', aggregates => ARRAY['c = count(*)']);
SELECT fleet.create_view('vt.bad', 'rollup', '1 minute', source => 'vt.reading', keys => ARRAY['sensor'], aggregates => ARRAY['c = median(v)']);
SELECT fleet.create_view('vt.bad', 'rollup', '1 minute', source => 'vt.reading', keys => ARRAY['sensor'], aggregates => ARRAY['c = first(v)']);
SELECT fleet.create_view('vt.bad', 'rollup', '1 minute', source => 'vt.reading', keys => ARRAY['Sensor Id']);
SELECT fleet.create_view('vt.bad', 'rollup', '1 minute', source => 'vt.reading', keys => ARRAY['sensor'], aggregates => ARRAY['c = count(*)', 'tenant_id = max(tenant_id)']);
SELECT fleet.create_view('bad', 'general', '1 minute', keys => ARRAY['x'], definition => 'SELECT 1 AS x');
SELECT fleet.create_view('vt.bad', 'latest', '1 minute', source => 'vt.reading', keys => ARRAY['sensor'], columns => ARRAY['v']);
SELECT fleet.create_view('vt.bad', 'general', '1 minute', keys => ARRAY['x']);
SELECT fleet.refresh_view('vt.reading');
SET ROLE fleet_admin;
SELECT fleet.create_view('vt.bad', 'general', '1 minute', keys => ARRAY['x'], definition => 'SELECT 1 AS x');
RESET ROLE;

-- ---------------------------------------------------------------- every insert path
-- multi-row INSERT (with NULLs), INSERT ... SELECT, COPY; rows the filter
-- leaves out (sensor 0) are not aggregated.
INSERT INTO vt.reading VALUES
	(1, 1, '2026-11-01 10:00+00', 1.5, 1, 'a'), (1, 1, '2026-11-01 11:00+00', NULL, 2, 'b'),
	(1, 2, '2026-11-01 10:00+00', 2.5, NULL, NULL), (2, 1, '2026-11-01 10:00+00', -1, 1, 'a'),
	(1, 0, '2026-11-01 10:00+00', 99, 9, 'ignored');
INSERT INTO vt.reading SELECT 1, 1 + g % 3, '2026-11-02 00:00+00'::timestamptz + g * interval '1 hour', g / 4.0, g, 't' || g % 2
  FROM generate_series(1, 30) g;
COPY vt.reading FROM stdin;
1	1	2026-11-02 05:30:00+00	7.25	3	c
1	3	2026-10-20 08:00:00+00	\N	\N	late
2	2	2026-11-03 00:00:00+00	4	4	a
\.
-- one delta row per writing statement and tenant (two of the three wrote
-- rows of tenants 1 and 2)
SELECT delta AS daily_delta FROM fleet.view_registry WHERE relation = 'vt.reading_daily'::regclass \gset
SELECT count(*) AS delta_rows, sum(cardinality(rows)) AS partial_groups FROM :daily_delta;
SELECT fleet.refresh_view('vt.reading_daily') AS groups_changed,
       fleet.refresh_view('vt.reading_latest') AS keys_changed,
       fleet.refresh_view('vt.reading_general') AS rows_changed;
SELECT tenant_id, sensor, day, readings, with_value, total, n_total, lo, hi, mean, first_tag, last_v, first_at
  FROM vt.reading_daily ORDER BY 1, 2, 3;
SELECT tenant_id, sensor, v, tag, at, n FROM vt.reading_latest ORDER BY 1, 2;
-- Nothing new: a refresh changes nothing (and still advances as_of).
SELECT fleet.refresh_view('vt.reading_daily') AS groups_changed;

-- Late rows (weeks old) re-aggregate only their own groups.
INSERT INTO vt.reading VALUES (1, 3, '2026-10-20 09:00+00', 5, 5, 'late'), (1, 3, '2026-10-20 07:00+00', 6, 6, 'early');
SELECT fleet.refresh_view('vt.reading_daily') AS groups_changed;
SELECT tenant_id, sensor, day, readings, total, first_tag, last_v FROM vt.reading_daily WHERE sensor = 3 AND day < '2026-11-01';
-- An older reading never replaces the latest; a tie on time is broken by n.
INSERT INTO vt.reading VALUES (1, 1, '2026-10-01 00:00+00', 0, 0, 'old'), (2, 1, '2026-11-01 10:00+00', 5, 7, 'tie');
SELECT fleet.refresh_view('vt.reading_latest') AS keys_changed;
SELECT tenant_id, sensor, v, tag, at, n FROM vt.reading_latest ORDER BY 1, 2;

SELECT 'vt.reading_daily' AS view, count(*) AS differences FROM fleet.verify_view('vt.reading_daily')
UNION ALL SELECT 'vt.reading_latest', count(*) FROM fleet.verify_view('vt.reading_latest')
UNION ALL SELECT 'vt.reading_general', count(*) FROM fleet.verify_view('vt.reading_general');

-- ---------------------------------------------------------------- non-append changes
-- UPDATE, DELETE and TRUNCATE of the source leave a rebuild marker: the next
-- refresh recomputes the view in full (rebuilds counts it).
UPDATE vt.reading SET v = v + 1 WHERE sensor = 2;
SELECT fleet.refresh_view('vt.reading_daily') > 0 AS rebuilt;
DELETE FROM vt.reading WHERE tag = 'late';
UPDATE vt.reading SET v = 0 WHERE false;	-- touches no row: no rebuild
SELECT 'vt.reading_daily' AS view, count(*) AS differences FROM fleet.verify_view('vt.reading_daily')
UNION ALL SELECT 'vt.reading_latest', count(*) FROM fleet.verify_view('vt.reading_latest')
UNION ALL SELECT 'vt.reading_general', count(*) FROM fleet.verify_view('vt.reading_general');
SELECT view, rebuilds FROM fleet.view_status WHERE view::text LIKE 'vt.%' ORDER BY view::text;
TRUNCATE vt.reading;
SELECT fleet.refresh_view('vt.reading_daily') AS rows_after_truncate;
SELECT count(*) AS rows_left FROM vt.reading_daily;
-- Verification reports a difference when the materialization was tampered with.
INSERT INTO vt.reading VALUES (1, 1, '2026-11-05 10:00+00', 1, 1, 'x');
SELECT fleet.refresh_view('vt.reading_daily');
UPDATE vt.reading_daily SET readings = 42;
SELECT difference, row_data ->> 'readings' AS readings FROM fleet.verify_view('vt.reading_daily');

-- ---------------------------------------------------------------- freshness
SELECT fleet.view_age('vt.reading_latest') >= '0 s' AS age_known,
       fleet.view_age('vt.reading') IS NULL AS not_a_view;
-- Guaranteed read: within the bound nothing happens; a tighter max_age
-- refreshes first; an impossible one fails, never returning older data.
SELECT refreshes AS before FROM fleet.view_status WHERE view = 'vt.reading_latest'::regclass \gset
SELECT fleet.ensure_fresh('vt.reading_latest', '1 hour') <= clock_timestamp() AS fresh_enough;
SELECT refreshes = :before AS not_refreshed FROM fleet.view_status WHERE view = 'vt.reading_latest'::regclass;
UPDATE fleet.view_registry SET as_of = as_of - interval '1 hour' WHERE relation = 'vt.reading_latest'::regclass;
SELECT within_bound FROM fleet.view_status WHERE view = 'vt.reading_latest'::regclass;
SELECT fleet.ensure_fresh('vt.reading_latest', '10 minutes') > now() - interval '10 minutes' AS refreshed_on_demand;
SELECT refreshes = :before + 1 AS refreshed, within_bound, bound_misses
  FROM fleet.view_status WHERE view = 'vt.reading_latest'::regclass;
SELECT fleet.ensure_fresh('vt.reading_latest', '0 s');
SELECT fleet.ensure_fresh('vt.reading', '1 hour');
BEGIN TRANSACTION READ ONLY;
SELECT fleet.ensure_fresh('vt.reading_latest', '0 s');
ROLLBACK;
-- The scheduler's choice: a view whose age passed half its bound is due.
SELECT fleet.alter_view(v, max_staleness => '10 hours') FROM unnest(ARRAY['vt.reading_daily', 'vt.reading_latest', 'vt.reading_general']::regclass[]) v;
SELECT v::text FROM fleet.views_due() v WHERE v::text LIKE 'vt.%';
UPDATE fleet.view_registry SET as_of = as_of - interval '6 hours' WHERE relation = 'vt.reading_general'::regclass;
SELECT v::text FROM fleet.views_due() v WHERE v::text LIKE 'vt.%';
SELECT fleet.alter_view('vt.reading_general', max_staleness => '20 hours');
SELECT v::text FROM fleet.views_due() v WHERE v::text LIKE 'vt.%';
SELECT fleet.alter_view('vt.reading_general', max_staleness => '-1 s');
SELECT fleet.alter_view('vt.reading_general', enabled => false);
SELECT view, bound, enabled FROM fleet.view_status WHERE view::text LIKE 'vt.%' ORDER BY view::text;

-- ---------------------------------------------------------------- drop
SELECT fleet.drop_view('vt.reading_general');
SELECT fleet.drop_view('vt.reading_daily');
SELECT fleet.drop_view('vt.reading_latest');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'vt.reading'::regclass;
SELECT count(*) AS grants_left FROM fleet.role_grant WHERE object_name LIKE 'vt.%';
DROP SCHEMA vt CASCADE;

-- ---------------------------------------------------------------- randomized workload
-- Seeded mix of batch ingest (fleet.ingest_positions), direct multi-row
-- inserts with ON CONFLICT, COPY, late fixes (3-25 days old), charges,
-- job inserts and status updates, and refreshes of random views interleaved;
-- afterwards every built-in view equals a full recomputation.
SELECT fleet.create_daily_partitions('fleet.position', current_date - 30, current_date) >= 0 AS partitions;
SELECT fleet.create_tenant('Views Co') AS vco \gset
SELECT fleet.set_tenant(:vco) > 0 AS in_tenant;
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :vco, 'VV' || g FROM generate_series(1, 20) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :vco, 'VDEV' || right(code, -2), 'osmand', vehicle_id FROM fleet.vehicle WHERE tenant_id = :vco;
INSERT INTO fleet.customer (tenant_id, code, name) SELECT :vco, 'VC' || g, 'Customer ' || g FROM generate_series(1, 4) g;
SELECT fleet.clear_tenant();
SELECT setseed(0.4242);
DO $$
DECLARE
	i int;
	r double precision;
	v_views regclass[] := ARRAY(SELECT relation FROM fleet.view_registry ORDER BY view_id);
	v_tenant bigint := (SELECT tenant_id FROM fleet.tenant WHERE name = 'Views Co');
	v_n int;
BEGIN
	FOR i IN 1 .. 60 LOOP
		r := random();
		IF r < 0.35 THEN
			v_n := 1 + (random() * 40)::int;
			PERFORM fleet.ingest_positions(
				ARRAY(SELECT 'VDEV' || (1 + (random() * 19)::int) FROM generate_series(1, v_n)),
				ARRAY(SELECT CASE WHEN random() < 0.05 THEN now() - (3 + random() * 22) * interval '1 day'
				                  ELSE now() - random() * interval '3 hours' END FROM generate_series(1, v_n)),
				ARRAY(SELECT 50 + random() FROM generate_series(1, v_n)),
				ARRAY(SELECT 10 + random() FROM generate_series(1, v_n)),
				ARRAY(SELECT CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 90)::real END FROM generate_series(1, v_n)),
				ARRAY(SELECT (random() * 359)::real FROM generate_series(1, v_n)),
				NULL, NULL, NULL, NULL);
		ELSIF r < 0.55 THEN
			INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
			SELECT d.tenant_id, d.device_id,
			       date_trunc('second', now() - CASE WHEN random() < 0.1 THEN (3 + random() * 22) * interval '1 day'
			                                     ELSE random() * interval '3 hours' END),
			       d.vehicle_id, 50 + random(), 10 + random(), (random() * 90)::real, (random() * 359)::real
			  FROM fleet.device d, generate_series(1, 1 + (random() * 5)::int)
			 WHERE d.tenant_id = v_tenant AND random() < 0.5
			ON CONFLICT DO NOTHING;
		ELSIF r < 0.65 THEN
			INSERT INTO fleet.charge (tenant_id, customer_id, kind, amount, currency, occurred_at)
			SELECT v_tenant, c.customer_id, 'delivery', round((random() * 200)::numeric, 2),
			       CASE WHEN random() < 0.8 THEN 'EUR' ELSE 'USD' END, now() - random() * interval '20 days'
			  FROM fleet.customer c WHERE c.tenant_id = v_tenant AND random() < 0.7;
		ELSIF r < 0.72 THEN
			INSERT INTO fleet.job (tenant_id, code, vehicle_id, status, planned_start)
			SELECT v_tenant, 'J' || i || '-' || g, (SELECT min(vehicle_id) FROM fleet.vehicle WHERE tenant_id = v_tenant) + g,
			       'assigned', now() + (g - 2) * interval '1 day'
			  FROM generate_series(1, 3) g;
		ELSIF r < 0.76 THEN
			UPDATE fleet.job SET status = 'en_route' WHERE tenant_id = v_tenant AND status = 'assigned' AND random() < 0.5;
		ELSE
			PERFORM fleet.refresh_view(v_views[1 + (random() * (cardinality(v_views) - 1))::int]);
		END IF;
	END LOOP;
END
$$;
-- and a COPY after it (written to a file first, as the data needs the ids)
SELECT '/tmp/fleet_views_' || pg_backend_pid() || '.copy' AS copyfile \gset
COPY (SELECT d.tenant_id, d.device_id, date_trunc('second', now()) - g * interval '7 minutes' + interval '0.0005 s', d.vehicle_id,
             51.5, 9.5, (g % 40)::real, 0::real
        FROM fleet.device d, generate_series(1, 5) g WHERE d.tenant_id = :vco) TO :'copyfile';
SELECT format('cat %s && rm -f %s', :'copyfile', :'copyfile') AS copycmd \gset
COPY fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading) FROM PROGRAM :'copycmd'
	WITH (FORMAT text);
SELECT view, count(d.*) AS differences
  FROM fleet.view_status s LEFT JOIN LATERAL fleet.verify_view(s.view) d ON true
 GROUP BY 1 ORDER BY view::text;
SELECT count(*) > 0 AS activity_rows, sum(pings) = (SELECT count(*) FROM fleet.position WHERE tenant_id = :vco) AS pings_match
  FROM fleet.vehicle_daily_activity WHERE tenant_id = :vco;
SELECT count(*) > 0 AS billing_rows FROM fleet.customer_daily_billing WHERE tenant_id = :vco;
SELECT view, last_error FROM fleet.view_status WHERE last_error IS NOT NULL;

-- ---------------------------------------------------------------- tenant isolation
SET ROLE fleet_analyst;
SELECT count(*) AS without_context FROM fleet.vehicle_daily_activity;
SELECT fleet.set_tenant(:vco) = :vco AS in_context;
SELECT count(DISTINCT tenant_id) AS tenants_seen, count(*) > 0 AS rows_seen FROM fleet.vehicle_daily_activity;
SELECT count(*) = 20 AS whole_board FROM fleet.dispatch_board;
SELECT fleet.ensure_fresh('fleet.vehicle_last_position', '1 hour') IS NOT NULL AS guaranteed;
SELECT fleet.refresh_view('fleet.vehicle_last_position');
UPDATE fleet.vehicle_daily_activity SET pings = 0;
SELECT fleet.clear_tenant();
RESET ROLE;

-- ---------------------------------------------------------------- a tenant's guaranteed read
-- The capture writes one delta row per statement and tenant.  A reader
-- under row-level security acting for one tenant sees only that tenant's
-- rows: its fleet.ensure_fresh merges only that tenant's delta rows and
-- returns the tenant's own watermark; the view's as_of and the other
-- tenant's pending rows stay as they are until a full refresh, which also
-- drops the tenant watermarks it has caught up with.
SELECT fleet.create_tenant('Views Two') AS vtwo \gset
SELECT fleet.set_tenant(:vtwo) > 0 AS in_two;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:vtwo, 'W1');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :vtwo, 'WDEV1', 'osmand', vehicle_id FROM fleet.vehicle WHERE code = 'W1';
SELECT fleet.clear_tenant();
SELECT fleet.refresh_view('fleet.vehicle_daily_activity') >= 0 AS drained;
SELECT delta AS activity_delta, view_id AS activity_id FROM fleet.view_registry
 WHERE relation = 'fleet.vehicle_daily_activity'::regclass \gset
-- one statement with fixes of both tenants, then one of each
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
SELECT d.tenant_id, d.device_id, date_trunc('second', now()) - g * interval '1 minute' + interval '0.25 s', d.vehicle_id, 51, 9, 10, 0
  FROM fleet.device d, generate_series(1, 3) g WHERE d.identifier IN ('VDEV1', 'WDEV1');
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
SELECT d.tenant_id, d.device_id, date_trunc('second', now()) - g * interval '1 minute' + interval '0.25 s', d.vehicle_id, 52, 9, 20, 0
  FROM fleet.device d, generate_series(4, 5) g WHERE d.identifier = 'VDEV2';
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
SELECT d.tenant_id, d.device_id, date_trunc('second', now()) - g * interval '1 minute' + interval '0.25 s', d.vehicle_id, 53, 9, 30, 0
  FROM fleet.device d, generate_series(4, 5) g WHERE d.identifier = 'WDEV1';
SELECT for_tenant = :vco AS views_co, count(*) AS delta_rows, sum(cardinality(rows)) AS partial_groups
  FROM :activity_delta GROUP BY 1 ORDER BY 1;
SELECT count(*) AS vco_fixes FROM fleet.position WHERE tenant_id = :vco \gset
-- the view is made an hour old: the reader's max_age needs a refresh
UPDATE fleet.view_registry SET as_of = as_of - interval '1 hour' WHERE relation = 'fleet.vehicle_daily_activity'::regclass;
SELECT as_of AS view_as_of, refreshes AS view_refreshes FROM fleet.view_status
 WHERE view = 'fleet.vehicle_daily_activity'::regclass \gset
SET ROLE fleet_analyst;
SELECT fleet.set_tenant(:vco) = :vco AS in_context;
SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '10 minutes') AS tenant_as_of \gset
SELECT :'tenant_as_of'::timestamptz > now() - interval '10 minutes' AS tenant_fresh,
       :'tenant_as_of'::timestamptz > :'view_as_of'::timestamptz AS newer_than_view;
SELECT sum(pings) = :vco_fixes AS every_fix_of_the_tenant FROM fleet.vehicle_daily_activity;
-- within the bound again: the same watermark, no refresh
SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '10 minutes') = :'tenant_as_of'::timestamptz AS same_watermark;
SELECT fleet.clear_tenant();
RESET ROLE;
SELECT for_tenant = :vco AS views_co, count(*) AS delta_rows FROM :activity_delta GROUP BY 1 ORDER BY 1;
SELECT as_of = :'view_as_of' AS view_as_of_kept, refreshes = :view_refreshes AS view_refreshes_kept
  FROM fleet.view_status WHERE view = 'fleet.vehicle_daily_activity'::regclass;
SELECT tenant_id = :vco AS views_co, as_of = :'tenant_as_of' AS watermark, refreshes
  FROM fleet.view_tenant_as_of WHERE view_id = :activity_id;
-- the DBA sees every tenant even when acting for one: a full refresh
SELECT fleet.set_tenant(:vtwo) = :vtwo AS dba_in_context;
SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '10 minutes') > :'tenant_as_of'::timestamptz AS whole_view_fresh;
SELECT fleet.clear_tenant();
SELECT count(*) AS delta_rows_left FROM :activity_delta;
SELECT count(*) AS tenant_watermarks_left FROM fleet.view_tenant_as_of WHERE view_id = :activity_id;
SELECT refreshes = :view_refreshes + 1 AS one_full_refresh FROM fleet.view_status WHERE view = 'fleet.vehicle_daily_activity'::regclass;
SELECT count(*) AS differences FROM fleet.verify_view('fleet.vehicle_daily_activity');
SELECT count(*) AS schema_rule_breaches FROM fleet.check_schema_rules();

-- ---------------------------------------------------------------- first_by / last_by
-- The first(x, time) and last(x, time) aggregates of rollup views
-- (extension/first_last.c) give what the ordered aggregate they replace
-- gave: (array_agg(x ORDER BY time, x) FILTER (x and time not NULL))[1],
-- and DESC for last; ties on the time go to the smaller (larger) value.
CREATE TEMP TABLE fl (g int, x float8, t timestamptz, s text);
INSERT INTO fl VALUES
	(1, 3, '2026-01-01 10:00Z', 'b'), (1, 1, '2026-01-01 10:00Z', 'a'), (1, 2, '2026-01-01 11:00Z', 'c'),
	(1, NULL, '2026-01-01 09:00Z', 'z'), (1, 9, NULL, 'y'),
	(2, NULL, NULL, NULL), (3, 5, '2026-01-01 12:00Z', 'b'), (3, 5, '2026-01-01 12:00Z', 'a');
SELECT g, fleet.first_by(x, t) AS first_x, fleet.last_by(x, t) AS last_x,
       fleet.first_by(s, t) AS first_s, fleet.last_by(s, t) AS last_s, fleet.first_by(t, x) AS t_of_min_x
  FROM fl GROUP BY g ORDER BY g;
SELECT fleet.first_by(x, t) IS NULL AS empty FROM fl WHERE false;
-- the same as the ordered aggregate over random groups with ties
INSERT INTO fl SELECT 10 + (i % 37), round((random() * 5)::numeric)::float8,
       '2026-01-01'::timestamptz + (round((random() * 20)::numeric) || ' minutes')::interval, NULL
  FROM generate_series(1, 5000) i;
SELECT count(*) AS groups,
       count(*) FILTER (WHERE f IS NOT DISTINCT FROM fo AND l IS NOT DISTINCT FROM lo) AS same
  FROM (SELECT g, fleet.first_by(x, t) AS f, fleet.last_by(x, t) AS l,
               (array_agg(x ORDER BY t, x) FILTER (WHERE x IS NOT NULL AND t IS NOT NULL))[1] AS fo,
               (array_agg(x ORDER BY t DESC, x DESC) FILTER (WHERE x IS NOT NULL AND t IS NOT NULL))[1] AS lo
          FROM fl GROUP BY g) y;
-- a type without an ordering is refused
SELECT fleet.first_by(point(1, 2), now());

-- ---------------------------------------------------------------- view_combine
-- A refresh combines the partial results of its delta log (one array of the
-- view's row type per statement) with fleet.view_combine (first_last.c):
-- one element per group, each column as its spec token says; the same as
-- the GROUP BY over the unnested partials it replaced.
CREATE TEMP TABLE part (k int, c bigint, s numeric, lo real, hi timestamptz, a numeric, a_s numeric, a_n bigint,
                        f text, f_t timestamptz, l text, l_t timestamptz);
SELECT setseed(0.25);
CREATE TEMP TABLE parts AS
SELECT b, array_agg(ROW(k, c, s, lo, hi, CASE WHEN a_n > 0 THEN a_s / a_n END, a_s, a_n, f, f_t, l, l_t)::part ORDER BY k) AS rows
  FROM (SELECT b, k, (random() * 5)::bigint AS c,
               CASE WHEN random() < 0.2 THEN NULL ELSE round((random() * 100)::numeric, 2) END AS s,
               CASE WHEN random() < 0.2 THEN NULL ELSE round(random() * 50)::real END AS lo,
               '2026-01-01'::timestamptz + (random() * 10)::int * interval '1 minute' AS hi,
               round((random() * 30)::numeric, 1) AS a_s, (random() * 3)::bigint AS a_n,
               f, CASE WHEN f IS NOT NULL THEN '2026-01-01'::timestamptz + (random() * 5)::int * interval '1 minute' END AS f_t,
               l, CASE WHEN l IS NOT NULL THEN '2026-01-01'::timestamptz + (random() * 5)::int * interval '1 minute' END AS l_t
          FROM (SELECT b, k, CASE WHEN random() < 0.2 THEN NULL ELSE chr(97 + (random() * 3)::int) END AS f,
                       CASE WHEN random() < 0.2 THEN NULL ELSE chr(97 + (random() * 3)::int) END AS l
                  FROM generate_series(1, 60) b, generate_series(1, 25) k WHERE random() < 0.4) p) q
 GROUP BY b;
WITH v AS (SELECT x.* FROM (SELECT fleet.view_combine(rows, 'k c s m M a s c f m l M') AS r FROM parts) c, unnest(c.r) x),
     q AS (SELECT k, sum(c)::bigint AS c, sum(s) AS s, min(lo) AS lo, max(hi) AS hi,
                  sum(a_s) / NULLIF(sum(a_n), 0) AS a, sum(a_s) AS a_s, sum(a_n)::bigint AS a_n,
                  fleet.first_by(f, f_t) AS f, min(f_t) AS f_t, fleet.last_by(l, l_t) AS l, max(l_t) AS l_t
             FROM parts, unnest(rows) x GROUP BY k)
SELECT (SELECT count(*) FROM v) AS groups, (SELECT count(DISTINCT k) FROM v) AS distinct_groups,
       (SELECT count(*) FROM (TABLE v EXCEPT ALL TABLE q) d) + (SELECT count(*) FROM (TABLE q EXCEPT ALL TABLE v) d) AS differences;
-- one array alone (one statement since the last refresh) is returned as it is
SELECT fleet.view_combine(rows, 'k c s m M a s c f m l M') = min(rows) AS unchanged FROM parts WHERE b = (SELECT min(b) FROM parts);
SELECT fleet.view_combine(rows, 'k c s m M a s c f m l M') IS NULL AS nothing FROM parts WHERE false;
-- latest: the partial with the largest order (time, then tie-breaker) per key
CREATE TEMP TABLE lpart (k int, v text, t timestamptz, n int);
CREATE TEMP TABLE lparts AS
SELECT b, array_agg(ROW(k, md5(b::text || k), '2026-01-01'::timestamptz + (b % 7) * interval '1 hour', b)::lpart) AS rows
  FROM generate_series(1, 30) b, generate_series(1, 12) k WHERE (b * k) % 5 <> 0 GROUP BY b;
SELECT count(*) AS keys,
       count(*) FILTER (WHERE (x.k, x.v, x.t, x.n) = (d.k, d.v, d.t, d.n)) AS same
  FROM (SELECT x.* FROM (SELECT fleet.view_combine(rows, 'k v o1 o2') AS r FROM lparts) c, unnest(c.r) x) x
  JOIN (SELECT DISTINCT ON (k) x.* FROM lparts, unnest(rows) x ORDER BY k, t DESC, n DESC) d USING (k);
-- specs that do not fit the row type are refused
CREATE TEMP TABLE pair (k int, c bigint);
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'k');
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'k c c');
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'k s');
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'k x');
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'c c');
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'k o2');
SELECT fleet.view_combine(ARRAY[1, 2], 'k');
-- key ranks (kN) name the order fleet.view_merge writes the groups in
SELECT fleet.view_combine(ARRAY[ROW(1, 2)::pair], 'k2 c');

-- ---------------------------------------------------------------- view_merge
-- fleet.view_merge writes the combined groups into the view's table: an
-- existing group merged as its spec says, a new one inserted; the rows
-- changed are returned.  It writes a table directly, so only one the
-- current role owns, without row-level security for that role, without
-- triggers, and only rows of the table's own type.
CREATE TEMP TABLE mt (k int PRIMARY KEY, c bigint, lo real, s numeric);
SELECT fleet.view_merge('mt', ARRAY[ROW(2, 5, 1, 1.5)::mt, ROW(1, 2, NULL, NULL)::mt], 'k1 c m s') AS inserted;
SELECT fleet.view_merge('mt', ARRAY[ROW(1, 3, 7, 2)::mt, ROW(3, 1, 0, NULL)::mt], 'k1 c m s') AS merged;
SELECT fleet.view_merge('mt', ARRAY[ROW(2, 1, 0.5, NULL)::mt], 'k1 c m s') AS merged;
SELECT * FROM mt ORDER BY k;
SELECT fleet.view_merge('mt', ARRAY[]::mt[], 'k1 c m s') AS nothing, fleet.view_merge('mt', NULL::mt[], 'k1 c m s') AS nothing_either;
SELECT fleet.view_merge('mt', ARRAY[ROW(1, 2)::pair], 'k1 c');
CREATE FUNCTION pg_temp.keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER mt_keep BEFORE UPDATE ON mt FOR EACH ROW EXECUTE FUNCTION pg_temp.keep();
SELECT fleet.view_merge('mt', ARRAY[ROW(1, 1, 0, 0)::mt], 'k1 c m s');
DROP TRIGGER mt_keep ON mt;
CREATE ROLE fleet_merge_probe;
GRANT EXECUTE ON FUNCTION fleet.view_merge(regclass, anyarray, text) TO fleet_merge_probe;
GRANT USAGE ON SCHEMA fleet TO fleet_merge_probe;
SET ROLE fleet_merge_probe;
CREATE TEMP TABLE mr (k int PRIMARY KEY, c bigint);
ALTER TABLE mr ENABLE ROW LEVEL SECURITY;
ALTER TABLE mr FORCE ROW LEVEL SECURITY;
SELECT fleet.view_merge('mr', ARRAY[ROW(1, 2)::mr], 'k1 c');
SELECT fleet.view_merge('mt', ARRAY[ROW(1, 1, 0, 0)::mt], 'k1 c m s');
RESET ROLE;
DROP TABLE mr;
REVOKE ALL ON FUNCTION fleet.view_merge(regclass, anyarray, text) FROM fleet_merge_probe;
REVOKE ALL ON SCHEMA fleet FROM fleet_merge_probe;
DROP ROLE fleet_merge_probe;
