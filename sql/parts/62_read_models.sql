-- 62_read_models: fleet's built-in read models, declared as fleet views.
--
-- Each is an ordinary tenant-owned table (tenant_id leads its key, forced
-- row-level security) kept within its bound by the views worker:
--   fleet.vehicle_last_position   latest fix per vehicle (latest, 30 s)
--   fleet.dispatch_board          security_invoker view over it, the vehicle
--                                 and its current job, with the fix's age
--   fleet.vehicle_daily_activity  pings, moving pings, speeds, first and last
--                                 fix per vehicle and UTC day (rollup, 1 min)
--   fleet.vehicle_daily_utilization distance, moving, idle and offline time,
--                                 max speed and pings per vehicle and UTC day
--                                 (general, recomputed in full: consecutive-fix
--                                 gaps are not a mergeable aggregate)
--   fleet.job_daily_summary       jobs per planned UTC day and status (general, 1 min)
--   fleet.customer_daily_billing  charges and amount per customer, UTC day and
--                                 currency (rollup, 5 min)

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
	keys       => ARRAY['tenant_id', 'vehicle_id', 'day = (fix_time AT TIME ZONE ''UTC'')::date'],
	aggregates => ARRAY['pings = count(*)',
	                    'moving_pings = count(CASE WHEN speed OPERATOR(pg_catalog.>=) 3 THEN 1 END)',
	                    'max_speed = max(speed)',
	                    'avg_speed = avg(speed)',
	                    'first_fix = min(fix_time)',
	                    'last_fix = max(fix_time)',
	                    'first_lat = first(lat, fix_time)', 'first_lon = first(lon, fix_time)',
	                    'last_lat = last(lat, fix_time)', 'last_lon = last(lon, fix_time)'],
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON TABLE fleet.vehicle_daily_activity IS
	'fleet view (rollup, bound 1 min): per vehicle and UTC day, pings, moving pings (speed >= 3 km/h), max and average speed (km/h), first and last fix with their positions; late fixes re-aggregate only their own vehicle-day';

-- Utilization (README "Utilization"): each gap between consecutive fixes of
-- a vehicle (ordered by fix time, then device id, across days) is one
-- segment.  A segment no longer than fleet.utilization_gap_limit is moving
-- time when the later fix's speed is >= 3 km/h, else idle time, and its
-- great-circle length is distance_km; a longer segment is offline time and
-- its length is gap_distance_km (a jump, not driven).  A segment crossing
-- UTC midnight is split there: each part goes to its own day, same class,
-- with the share of the length proportional to its share of the time.
SELECT fleet.create_view('fleet.vehicle_daily_utilization', 'general', '15 minutes',
	source     => 'fleet.position',
	keys       => ARRAY['tenant_id', 'vehicle_id', 'day'],
	definition => $q$
SELECT u.tenant_id, u.vehicle_id, u.day,
       pg_catalog.round(COALESCE(pg_catalog.sum(u.km) FILTER (WHERE u.class OPERATOR(pg_catalog.<>) 'offline'), 0), 3) AS distance_km,
       pg_catalog.round(COALESCE(pg_catalog.sum(u.km) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'offline'), 0), 3) AS gap_distance_km,
       COALESCE(pg_catalog.sum(u.part) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'moving'), '0'::pg_catalog.interval) AS moving_time,
       COALESCE(pg_catalog.sum(u.part) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'idle'), '0'::pg_catalog.interval) AS idle_time,
       COALESCE(pg_catalog.sum(u.part) FILTER (WHERE u.class OPERATOR(pg_catalog.=) 'offline'), '0'::pg_catalog.interval) AS offline_time,
       pg_catalog.max(u.speed) AS max_speed,
       pg_catalog.count(*) FILTER (WHERE u.class IS NULL) AS pings
  FROM (
	-- the day's fixes themselves (pings, max speed)
	SELECT p.tenant_id, p.vehicle_id, (p.fix_time AT TIME ZONE 'UTC')::pg_catalog.date AS day,
	       NULL::pg_catalog.text AS class, NULL::pg_catalog.interval AS part, NULL::pg_catalog.numeric AS km, p.speed
	  FROM fleet.position p
	 WHERE p.vehicle_id IS NOT NULL
	UNION ALL
	-- each segment's part within each UTC day it touches
	SELECT g.tenant_id, g.vehicle_id, d.d::pg_catalog.date, g.class,
	       LEAST(g.fix_time, (d.d OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval) AT TIME ZONE 'UTC')
	         OPERATOR(pg_catalog.-) GREATEST(g.prev, d.d AT TIME ZONE 'UTC'),
	       CASE WHEN g.fix_time OPERATOR(pg_catalog.=) g.prev THEN g.km
	            ELSE g.km OPERATOR(pg_catalog.*) pg_catalog.date_part('epoch',
	                   LEAST(g.fix_time, (d.d OPERATOR(pg_catalog.+) '1 day'::pg_catalog.interval) AT TIME ZONE 'UTC')
	                   OPERATOR(pg_catalog.-) GREATEST(g.prev, d.d AT TIME ZONE 'UTC'))::pg_catalog.numeric
	                 OPERATOR(pg_catalog./) pg_catalog.date_part('epoch', g.fix_time OPERATOR(pg_catalog.-) g.prev)::pg_catalog.numeric END,
	       NULL::pg_catalog.float4
	  FROM (SELECT s.tenant_id, s.vehicle_id, s.prev, s.fix_time,
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
	         WHERE s.prev IS NOT NULL) g
	 CROSS JOIN LATERAL pg_catalog.generate_series(pg_catalog.date_trunc('day', g.prev AT TIME ZONE 'UTC'),
	                                               g.fix_time AT TIME ZONE 'UTC', '1 day'::pg_catalog.interval) d(d)
	 WHERE d.d OPERATOR(pg_catalog.=) pg_catalog.date_trunc('day', g.prev AT TIME ZONE 'UTC')
	    OR d.d OPERATOR(pg_catalog.<) g.fix_time AT TIME ZONE 'UTC') u
 GROUP BY u.tenant_id, u.vehicle_id, u.day
$q$,
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON TABLE fleet.vehicle_daily_utilization IS
	'fleet view (general, bound 15 min): per vehicle and UTC day, from the gaps between consecutive fixes: moving time (gap <= fleet.utilization_gap_limit ending at >= 3 km/h), idle time (gap within the limit, slower), offline time (gap over the limit), distance_km (great-circle length of the gaps within the limit), gap_distance_km (length of the offline gaps), max speed, pings; a gap crossing UTC midnight is split there, time and length pro rata; recomputed in full';
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
	'Fixes of the vehicle in the UTC day';

SELECT fleet.create_view('fleet.job_daily_summary', 'general', '1 minute',
	source     => 'fleet.job',
	keys       => ARRAY['tenant_id', 'day'],
	definition => $q$
SELECT j.tenant_id, (COALESCE(j.planned_start, j.created_at) AT TIME ZONE 'UTC')::date AS day,
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
	'fleet view (general, bound 1 min): jobs per tenant and planned UTC day (planned start, else creation), counted by status';

SELECT fleet.create_view('fleet.customer_daily_billing', 'rollup', '5 minutes',
	source     => 'fleet.charge',
	keys       => ARRAY['tenant_id', 'customer_id', 'day = (occurred_at AT TIME ZONE ''UTC'')::date', 'currency'],
	aggregates => ARRAY['charges = count(*)', 'amount = sum(amount)', 'last_charge_at = max(occurred_at)'],
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON TABLE fleet.customer_daily_billing IS
	'fleet view (rollup, bound 5 min): charges and their amount per customer, UTC day and currency; a replay or correction of charges (UPDATE, DELETE) triggers a full rebuild';

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
	('fleet_admin',   'TABLE', 'fleet.dispatch_board', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.dispatch_board', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.dispatch_board', 'SELECT');
