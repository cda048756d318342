-- 62_read_models: fleet's built-in read models, declared as fleet views.
--
-- Each is an ordinary tenant-owned table (tenant_id leads its key, forced
-- row-level security) kept within its bound by the views worker:
--   fleet.vehicle_last_position   latest fix per vehicle (latest, 30 s)
--   fleet.dispatch_board          security_invoker view over it, the vehicle
--                                 and its current job, with the fix's age
--   fleet.vehicle_daily_activity  pings, moving pings, speeds, first and last
--                                 fix per vehicle and local day (rollup, 1 min)
--   fleet.vehicle_daily_utilization distance, moving, idle and offline time,
--                                 max speed and pings per vehicle and local day
--                                 (general, recomputed in full: consecutive-fix
--                                 gaps are not a mergeable aggregate)
--   fleet.job_daily_summary       jobs per planned local day and status (general, 1 min)
--   fleet.customer_daily_billing  charges and amount per customer, local day and
--                                 currency (rollup, 5 min)
--
-- Days are the tenant's calendar days (fleet.tenant.timezone, column
-- local_day; a day with a DST change has 23 or 25 hours), computed by
-- fleet.local_day() (extension/local_day.c).  A late row re-aggregates only
-- its own local day.  A tenant's zone change rebuilds the rollups in full at
-- their next refresh (fleet.view_zone_changed), so all of the tenant's days,
-- past ones too, are cut in the new zone.  UTC days stay available from
-- fleet.vehicle_daily_activity_utc() and fleet.customer_daily_billing_utc().

SELECT fleet.create_view('fleet.vehicle_last_position', 'latest', '30 seconds',
	source   => 'fleet.position',
	keys     => ARRAY['tenant_id', 'vehicle_id'],
	columns  => ARRAY['device_id', 'lat', 'lon', 'speed', 'heading'],
	order_by => ARRAY['fix_time', 'device_id'],
	readers  => ARRAY['fleet_admin', 'fleet_app', 'fleet_analyst']);
COMMENT ON TABLE fleet.vehicle_last_position IS
	'fleet view (latest, bound 30 s): the newest fix per vehicle (ties: highest device id); an older fix never replaces a newer one';

SELECT fleet.create_view('fleet.vehicle_daily_activity', 'rollup', '1 minute',
	source     => 'fleet.position',
	keys       => ARRAY['tenant_id', 'vehicle_id', 'local_day = fleet.local_day(tenant_id, fix_time)'],
	aggregates => ARRAY['pings = count(*)',
	                    'moving_pings = count(CASE WHEN speed OPERATOR(pg_catalog.>=) 3 THEN 1 END)',
	                    'max_speed = max(speed)',
	                    'avg_speed = avg(speed)',
	                    'first_fix = min(fix_time)',
	                    'last_fix = max(fix_time)',
	                    'first_lat = first(lat, fix_time)', 'first_lon = first(lon, fix_time)',
	                    'last_lat = last(lat, fix_time)', 'last_lon = last(lon, fix_time)'],
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON VIEW fleet.vehicle_daily_activity IS
	'fleet view (rollup, bound 1 min): per vehicle and local day of its tenant, pings, moving pings (speed >= 3 km/h), max and average speed (km/h), first and last fix with their positions; late fixes re-aggregate only their own vehicle-day. Rows live in fleet.vehicle_daily_activity_data with the merge state of the averages and first/last values';
COMMENT ON COLUMN fleet.vehicle_daily_activity.local_day IS
	'Calendar day in the tenant''s time zone (fleet.tenant.timezone) of the fixes counted';
COMMENT ON COLUMN fleet.vehicle_daily_activity.moving_pings IS 'Fixes with speed >= 3 km/h';
COMMENT ON COLUMN fleet.vehicle_daily_activity.avg_speed IS 'Average speed (km/h) of the fixes that have one';
COMMENT ON COLUMN fleet.vehicle_daily_activity.first_fix IS 'Earliest fix time of the day';
COMMENT ON COLUMN fleet.vehicle_daily_activity.last_fix IS 'Latest fix time of the day';
COMMENT ON COLUMN fleet.vehicle_daily_activity.first_lat IS 'Latitude of the earliest fix of the day';
COMMENT ON COLUMN fleet.vehicle_daily_activity.last_lat IS 'Latitude of the latest fix of the day';

-- Utilization (README "Utilization"): each gap between consecutive fixes of
-- a vehicle (ordered by fix time, then device id, across days) is one
-- segment.  A segment no longer than fleet.utilization_gap_limit is moving
-- time when the later fix's speed is >= 3 km/h, else idle time, and its
-- great-circle length is distance_km; a longer segment is offline time and
-- its length is gap_distance_km (a jump, not driven).  A segment crossing
-- the tenant's local midnight is split there: each part goes to its own
-- local day, same class, with the share of the length proportional to its
-- share of the time.  Local midnights are instants ((day + 1 day) AT TIME
-- ZONE the tenant's zone), so a DST day's parts add up to 23 or 25 hours.
SELECT fleet.create_view('fleet.vehicle_daily_utilization', 'general', '15 minutes',
	source     => 'fleet.position',
	keys       => ARRAY['tenant_id', 'vehicle_id', 'local_day'],
	definition => $q$
SELECT u.tenant_id, u.vehicle_id, u.local_day,
       pg_catalog.round(COALESCE(pg_catalog.sum(u.km) FILTER (WHERE u.class OPERATOR(pg_catalog.<>) 'offline'), 0), 3) AS distance_km,
       pg_catalog.round(COALESCE(pg_catalog.sum(u.km) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'offline'), 0), 3) AS gap_distance_km,
       COALESCE(pg_catalog.sum(u.part) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'moving'), '0'::pg_catalog.interval) AS moving_time,
       COALESCE(pg_catalog.sum(u.part) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'idle'), '0'::pg_catalog.interval) AS idle_time,
       COALESCE(pg_catalog.sum(u.part) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'offline'), '0'::pg_catalog.interval) AS offline_time,
       pg_catalog.max(u.speed) AS max_speed,
       pg_catalog.count(*) FILTER (WHERE u.class IS NULL) AS pings
  FROM (
	-- the day's fixes themselves (pings, max speed)
	SELECT p.tenant_id, p.vehicle_id, fleet.local_day(p.tenant_id, p.fix_time) AS local_day,
	       NULL::pg_catalog.text AS class, NULL::pg_catalog.interval AS part, NULL::pg_catalog.numeric AS km, p.speed
	  FROM fleet.position p
	 WHERE p.vehicle_id IS NOT NULL
	UNION ALL
	-- each segment's part within each local day it touches
	SELECT g.tenant_id, g.vehicle_id, d.d::pg_catalog.date, g.class,
	       LEAST(g.fix_time, (d.d OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval) AT TIME ZONE g.zone)
	         OPERATOR(pg_catalog.-) GREATEST(g.prev, d.d AT TIME ZONE g.zone),
	       CASE WHEN g.fix_time OPERATOR(pg_catalog.=) g.prev THEN g.km
	            ELSE g.km OPERATOR(pg_catalog.*) pg_catalog.date_part('epoch',
	                   LEAST(g.fix_time, (d.d OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval) AT TIME ZONE g.zone)
	                   OPERATOR(pg_catalog.-) GREATEST(g.prev, d.d AT TIME ZONE g.zone))::pg_catalog.numeric
	                 OPERATOR(pg_catalog./) pg_catalog.date_part('epoch', g.fix_time OPERATOR(pg_catalog.-) g.prev)::pg_catalog.numeric END,
	       NULL::pg_catalog.float4
	  FROM (SELECT s.tenant_id, s.vehicle_id, s.prev, s.fix_time, z.timezone AS zone,
	               CASE WHEN s.fix_time OPERATOR(pg_catalog.-) s.prev OPERATOR(pg_catalog.>)
	                         pg_catalog.current_setting('fleet.utilization_gap_limit')::pg_catalog.interval THEN 'offline'::pg_catalog.text
	                    WHEN COALESCE(s.speed, 0) OPERATOR(pg_catalog.>=) 3 THEN 'moving'
	                    ELSE 'idle' END AS class,
	               COALESCE((2 OPERATOR(pg_catalog.*) 6371.0088 OPERATOR(pg_catalog.*) pg_catalog.asin(pg_catalog.sqrt(
	                 pg_catalog.power(pg_catalog.sin(pg_catalog.radians(s.lat OPERATOR(pg_catalog.-) s.plat) OPERATOR(pg_catalog./) 2), 2)
	                 OPERATOR(pg_catalog.+) (pg_catalog.cos(pg_catalog.radians(s.plat)) OPERATOR(pg_catalog.*) pg_catalog.cos(pg_catalog.radians(s.lat))
	                 OPERATOR(pg_catalog.*) pg_catalog.power(pg_catalog.sin(pg_catalog.radians(s.lon OPERATOR(pg_catalog.-) s.plon) OPERATOR(pg_catalog./) 2), 2)))))::pg_catalog.numeric, 0) AS km
	          FROM (SELECT p.tenant_id, p.vehicle_id, p.fix_time, p.lat, p.lon, p.speed,
	                       pg_catalog.lag(p.fix_time) OVER w AS prev,
	                       pg_catalog.lag(p.lat) OVER w AS plat,
	                       pg_catalog.lag(p.lon) OVER w AS plon
	                  FROM fleet.position p
	                 WHERE p.vehicle_id IS NOT NULL
	                WINDOW w AS (PARTITION BY p.tenant_id, p.vehicle_id ORDER BY p.fix_time, p.device_id)) s
	          JOIN fleet.tenant z ON z.tenant_id OPERATOR(pg_catalog.=) s.tenant_id
	         WHERE s.prev IS NOT NULL) g
	 CROSS JOIN LATERAL pg_catalog.generate_series(pg_catalog.date_trunc('day', g.prev AT TIME ZONE g.zone),
	                                               g.fix_time AT TIME ZONE g.zone, '1 day'::pg_catalog.interval) d(d)
	 WHERE d.d OPERATOR(pg_catalog.=) pg_catalog.date_trunc('day', g.prev AT TIME ZONE g.zone)
	    OR d.d OPERATOR(pg_catalog.<) g.fix_time AT TIME ZONE g.zone) u
 GROUP BY u.tenant_id, u.vehicle_id, u.local_day
$q$,
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON TABLE fleet.vehicle_daily_utilization IS
	'fleet view (general, bound 15 min): per vehicle and local day of its tenant, from the gaps between consecutive fixes: moving time (gap <= fleet.utilization_gap_limit ending at >= 3 km/h), idle time (gap within the limit, slower), offline time (gap over the limit), distance_km (great-circle length of the gaps within the limit), gap_distance_km (length of the offline gaps), max speed, pings; a gap crossing local midnight is split there, time and length pro rata; recomputed in full';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.local_day IS
	'Calendar day in the tenant''s time zone (fleet.tenant.timezone); a day with a DST change has 23 or 25 hours';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.distance_km IS
	'Distance driven (km): great-circle length between consecutive fixes over gaps no longer than fleet.utilization_gap_limit (moving and idle gaps); the day''s share of a gap crossing midnight in proportion to time';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.gap_distance_km IS
	'Great-circle length (km) of the offline gaps (longer than fleet.utilization_gap_limit): how far the vehicle was found from its last fix, not counted as driven';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.moving_time IS
	'Time in gaps no longer than fleet.utilization_gap_limit whose later fix has speed >= 3 km/h';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.idle_time IS
	'Time in gaps no longer than fleet.utilization_gap_limit whose later fix has speed < 3 km/h or none';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.offline_time IS
	'Time in gaps longer than fleet.utilization_gap_limit (no fix for longer than the limit); a day inside such a gap has a row with offline time only';
COMMENT ON COLUMN fleet.vehicle_daily_utilization.pings IS
	'Fixes of the vehicle in the local day';

SELECT fleet.create_view('fleet.job_daily_summary', 'general', '1 minute',
	source     => 'fleet.job',
	keys       => ARRAY['tenant_id', 'local_day'],
	definition => $q$
SELECT j.tenant_id, fleet.local_day(j.tenant_id, COALESCE(j.planned_start, j.created_at)) AS local_day,
       pg_catalog.count(*) AS jobs,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'planned') AS planned,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'assigned') AS assigned,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'en_route') AS en_route,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'in_progress') AS in_progress,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'completed') AS completed,
       pg_catalog.count(*) FILTER (WHERE j.status OPERATOR(pg_catalog.=) 'cancelled') AS cancelled
  FROM fleet.job j
 GROUP BY 1, 2
$q$,
	readers    => ARRAY['fleet_admin', 'fleet_app', 'fleet_analyst']);
COMMENT ON TABLE fleet.job_daily_summary IS
	'fleet view (general, bound 1 min): jobs per tenant and planned local day (planned start, else creation, in the tenant''s time zone), counted by status';
COMMENT ON COLUMN fleet.job_daily_summary.local_day IS
	'Calendar day in the tenant''s time zone of the job''s planned start (its creation when it has none)';

SELECT fleet.create_view('fleet.customer_daily_billing', 'rollup', '5 minutes',
	source     => 'fleet.charge',
	keys       => ARRAY['tenant_id', 'customer_id', 'local_day = fleet.local_day(tenant_id, occurred_at)', 'currency'],
	aggregates => ARRAY['charges = count(*)', 'amount = sum(amount)', 'last_charge_at = max(occurred_at)'],
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON TABLE fleet.customer_daily_billing IS
	'fleet view (rollup, bound 5 min): charges and their amount per customer, local day of the tenant and currency; a replay or correction of charges (UPDATE, DELETE) triggers a full rebuild';
COMMENT ON COLUMN fleet.customer_daily_billing.local_day IS
	'Calendar day in the tenant''s time zone (fleet.tenant.timezone) when the charges occurred';

-- UTC days, for analysts who compare tenants or reconcile with UTC systems:
-- computed on call from the source, under the caller's row-level security;
-- the range bounds the scan to the partitions it touches.
CREATE FUNCTION fleet.vehicle_daily_activity_utc(from_day date, to_day date)
RETURNS TABLE (tenant_id bigint, vehicle_id bigint, utc_day date, pings bigint, moving_pings bigint,
               max_speed real, avg_speed numeric, first_fix timestamptz, last_fix timestamptz,
               first_lat double precision, first_lon double precision, last_lat double precision, last_lon double precision)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.tenant_id, p.vehicle_id, (p.fix_time AT TIME ZONE 'UTC')::pg_catalog.date,
	       pg_catalog.count(*), pg_catalog.count(CASE WHEN p.speed OPERATOR(pg_catalog.>=) 3 THEN 1 END),
	       pg_catalog.max(p.speed), pg_catalog.avg(p.speed::pg_catalog.numeric),
	       pg_catalog.min(p.fix_time), pg_catalog.max(p.fix_time),
	       fleet.first_by(p.lat, p.fix_time), fleet.first_by(p.lon, p.fix_time),
	       fleet.last_by(p.lat, p.fix_time), fleet.last_by(p.lon, p.fix_time)
	  FROM fleet.position p
	 WHERE p.vehicle_id IS NOT NULL
	   AND p.fix_time OPERATOR(pg_catalog.>=) (from_day::pg_catalog.timestamp AT TIME ZONE 'UTC')
	   AND p.fix_time OPERATOR(pg_catalog.<) ((to_day OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamp AT TIME ZONE 'UTC')
	 GROUP BY 1, 2, 3
$$;
COMMENT ON FUNCTION fleet.vehicle_daily_activity_utc(date, date) IS
	'The figures of fleet.vehicle_daily_activity by UTC day (utc_day) for the days from_day..to_day, computed from fleet.position under the caller''s tenant context';

CREATE FUNCTION fleet.customer_daily_billing_utc(from_day date, to_day date)
RETURNS TABLE (tenant_id bigint, customer_id bigint, utc_day date, currency bpchar,
               charges bigint, amount numeric, last_charge_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.tenant_id, c.customer_id, (c.occurred_at AT TIME ZONE 'UTC')::pg_catalog.date, c.currency,
	       pg_catalog.count(*), pg_catalog.sum(c.amount::pg_catalog.numeric), pg_catalog.max(c.occurred_at)
	  FROM fleet.charge c
	 WHERE c.customer_id IS NOT NULL AND c.currency IS NOT NULL
	   AND c.occurred_at OPERATOR(pg_catalog.>=) (from_day::pg_catalog.timestamp AT TIME ZONE 'UTC')
	   AND c.occurred_at OPERATOR(pg_catalog.<) ((to_day OPERATOR(pg_catalog.+) 1)::pg_catalog.timestamp AT TIME ZONE 'UTC')
	 GROUP BY 1, 2, 3, 4
$$;
COMMENT ON FUNCTION fleet.customer_daily_billing_utc(date, date) IS
	'The figures of fleet.customer_daily_billing by UTC day (utc_day) for the days from_day..to_day, computed from fleet.charge under the caller''s tenant context';

CREATE VIEW fleet.dispatch_board WITH (security_invoker = true) AS
SELECT v.tenant_id, v.vehicle_id, v.code AS vehicle_code, v.status AS vehicle_status,
       p.device_id, p.fix_time, p.lat, p.lon, p.speed, p.heading,
       CASE WHEN p.speed IS NULL THEN NULL WHEN p.speed OPERATOR(pg_catalog.>=) 3 THEN 'moving' ELSE 'stopped' END AS motion,
       pg_catalog.now() OPERATOR(pg_catalog.-) p.fix_time AS position_age,
       j.job_id, j.code AS job_code, j.status AS job_status
  FROM fleet.vehicle v
  LEFT JOIN fleet.vehicle_last_position p
         ON p.tenant_id OPERATOR(pg_catalog.=) v.tenant_id AND p.vehicle_id OPERATOR(pg_catalog.=) v.vehicle_id
  LEFT JOIN LATERAL (
	SELECT jj.job_id, jj.code, jj.status FROM fleet.job jj
	 WHERE jj.tenant_id OPERATOR(pg_catalog.=) v.tenant_id AND jj.vehicle_id OPERATOR(pg_catalog.=) v.vehicle_id
	   AND jj.status OPERATOR(pg_catalog.=) ANY (ARRAY['assigned', 'en_route', 'in_progress'])
	 ORDER BY jj.planned_start NULLS LAST, jj.job_id
	 LIMIT 1) j ON true;
COMMENT ON VIEW fleet.dispatch_board IS
	'Dispatch board: every vehicle with its latest position, speed, heading, motion, current job and the position''s age (from fleet view fleet.vehicle_last_position; its freshness in fleet.view_status)';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'FUNCTION', 'fleet.vehicle_daily_activity_utc(date,date)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.vehicle_daily_activity_utc(date,date)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.customer_daily_billing_utc(date,date)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.customer_daily_billing_utc(date,date)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.dispatch_board', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.dispatch_board', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.dispatch_board', 'SELECT');
