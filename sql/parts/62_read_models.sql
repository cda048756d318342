-- 62_read_models: fleet's built-in read models, declared as fleet views.
--
-- Each is an ordinary tenant-owned table (tenant_id leads its key, forced
-- row-level security) kept within its bound by the views worker:
--   fleet.vehicle_last_position   latest fix per vehicle (latest, 30 s)
--   fleet.dispatch_board          security_invoker view over it, the vehicle
--                                 and its current job, with the fix's age
--   fleet.vehicle_daily_activity  pings, moving pings, speeds, first and last
--                                 fix per vehicle and UTC day (rollup, 1 min)
--   fleet.vehicle_daily_utilization distance, moving and idle time, max speed
--                                 and pings per vehicle and UTC day (general,
--                                 recomputed in full: consecutive-fix
--                                 distances are not a mergeable aggregate)
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

SELECT fleet.create_view('fleet.vehicle_daily_utilization', 'general', '15 minutes',
	source     => 'fleet.position',
	keys       => ARRAY['tenant_id', 'vehicle_id', 'day'],
	definition => $q$
SELECT s.tenant_id, s.vehicle_id, s.day,
       pg_catalog.round(pg_catalog.sum(COALESCE((2 OPERATOR(pg_catalog.*) 6371.0088 OPERATOR(pg_catalog.*) pg_catalog.asin(pg_catalog.sqrt(
                 pg_catalog.power(pg_catalog.sin(pg_catalog.radians(s.lat OPERATOR(pg_catalog.-) s.plat) OPERATOR(pg_catalog./) 2), 2)
                 OPERATOR(pg_catalog.+) pg_catalog.cos(pg_catalog.radians(s.plat)) OPERATOR(pg_catalog.*) pg_catalog.cos(pg_catalog.radians(s.lat))
                 OPERATOR(pg_catalog.*) pg_catalog.power(pg_catalog.sin(pg_catalog.radians(s.lon OPERATOR(pg_catalog.-) s.plon) OPERATOR(pg_catalog./) 2), 2)))), 0))::numeric, 3) AS distance_km,
       pg_catalog.sum(CASE WHEN s.prev IS NOT NULL AND COALESCE(s.speed, 0) OPERATOR(pg_catalog.>=) 3
                           THEN s.fix_time OPERATOR(pg_catalog.-) s.prev ELSE '0'::interval END) AS moving_time,
       pg_catalog.sum(CASE WHEN s.prev IS NOT NULL AND COALESCE(s.speed, 0) OPERATOR(pg_catalog.<) 3
                           THEN s.fix_time OPERATOR(pg_catalog.-) s.prev ELSE '0'::interval END) AS idle_time,
       pg_catalog.max(s.speed) AS max_speed,
       pg_catalog.count(*) AS pings
  FROM (SELECT p.tenant_id, p.vehicle_id, (p.fix_time AT TIME ZONE 'UTC')::date AS day, p.fix_time, p.lat, p.lon, p.speed,
               pg_catalog.lag(p.fix_time) OVER w AS prev,
               pg_catalog.lag(p.lat) OVER w AS plat,
               pg_catalog.lag(p.lon) OVER w AS plon
          FROM fleet.position p
         WHERE p.vehicle_id IS NOT NULL
        WINDOW w AS (PARTITION BY p.tenant_id, p.vehicle_id, (p.fix_time AT TIME ZONE 'UTC')::date ORDER BY p.fix_time, p.device_id)) s
 GROUP BY s.tenant_id, s.vehicle_id, s.day
$q$,
	readers    => ARRAY['fleet_admin', 'fleet_analyst']);
COMMENT ON TABLE fleet.vehicle_daily_utilization IS
	'fleet view (general, bound 15 min): per vehicle and UTC day, distance between consecutive fixes (km), moving time (segments ending at >= 3 km/h), idle time, max speed, pings; recomputed in full';

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
