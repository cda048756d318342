-- fleet.vehicle_daily_utilization on a seeded track whose values are known
-- by hand: moving, idle and offline gaps, a gap of exactly the limit, a gap
-- over the limit, gaps across UTC midnight (split there, time and length pro
-- rata), a fix at midnight itself, a fix without speed, and a day with
-- no fix inside a long gap.  The tenant is in UTC, so its local days are UTC
-- days (test 64_local_days covers other zones and DST), whatever the session's zone.
-- Times are offsets from one UTC midnight M (three days ago); only
-- durations and day offsets are printed.
\set VERBOSITY terse
SET IntervalStyle = 'postgres';

-- the gap limit is a server setting (default 5 min), not a session one:
-- the views worker and fleet.verify_view recompute with the same limit
SELECT current_setting('fleet.utilization_gap_limit') AS gap_limit;
SET fleet.utilization_gap_limit = '1h';

SELECT (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '3 days') AT TIME ZONE 'UTC' AS m \gset
SELECT fleet.create_daily_partitions('fleet.position', current_date - 8, current_date + 1) >= 0 AS partitions;
SELECT fleet.create_tenant('Util Co') AS uco \gset
SELECT fleet.set_tenant(:uco) > 0 AS in_tenant;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:uco, 'UA'), (:uco, 'UB');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :uco, 'UDEV-' || code, 'osmand', vehicle_id FROM fleet.vehicle WHERE tenant_id = :uco;
SELECT fleet.clear_tenant();

-- Along the meridian 10 E, 0.01 degree of latitude is 6371.0088 km * pi / 18000
-- = 1.1119510 km (the haversine of a pure latitude step is exact).
-- Vehicle UA (minutes from M; gap limit 5 min):
--   -60 lat 50.00 v 0
--   -58 lat 50.00 v 0   idle 2, 0 km
--   -55 lat 50.01 v 30  moving 3, 1 step
--   -52 lat 50.02 v 30  moving 3, 1 step
--   -40 lat 50.05 v 50  12 > 5: offline 12, 3 steps of gap distance
--   -38 lat 50.05 v 1   idle 2
--    -2 lat 50.06 v 20  36 > 5: offline 36, 1 step of gap distance
--    +2 lat 50.07 v 20  moving 4 across midnight: 2 + 2, half a step each day
--    +7 lat 50.07 v 2   exactly the limit: idle 5
--  +1200 (20 h) lat 50.07 v 0   offline 19 h 53 min
--  +1680 (28 h) lat 50.09 v 40  offline 8 h across midnight: 4 h + 4 h, one step of gap distance each day
--  +1681 lat 50.09 v 40  moving 1
-- Day -1: 7 pings, moving 8 min, idle 4 min, offline 48 min (= 1 h from the
--   first fix), distance 2.5 steps = 2.780, gap distance 4 steps = 4.448, max 50.
-- Day 0: 3 pings, moving 2 min, idle 5 min, offline 23:53 (total 24 h),
--   distance 0.5 step = 0.556, gap distance 1 step = 1.112, max 20.
-- Day +1: 2 pings, moving 1 min, offline 4 h, distance 0, gap 1.112, max 40.
-- Vehicle UB:
--   -3 lat 40.00 v 10
--    0 lat 40.01 v 10     moving 3 min on day -1 (ends at midnight: nothing on day 0), 1 step
--   +1 lat 40.01 v NULL   idle 1 (no speed)
--   +2 lat 40.02 v 5      moving 1, 1 step
--   +3 lat 40.02 v 5      moving 1
-- Day -1: 1 ping, moving 3 min, distance 1.112; day 0: 4 pings, moving 2 min,
--   idle 1 min, distance 1.112.
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
SELECT d.tenant_id, d.device_id, :'m'::timestamptz + t.mins * interval '1 minute', d.vehicle_id,
       t.lat, 10, t.speed, 0
  FROM fleet.device d
  JOIN (VALUES ('UDEV-UA', -60, 50.00, 0), ('UDEV-UA', -58, 50.00, 0), ('UDEV-UA', -55, 50.01, 30),
               ('UDEV-UA', -52, 50.02, 30), ('UDEV-UA', -40, 50.05, 50), ('UDEV-UA', -38, 50.05, 1),
               ('UDEV-UA', -2, 50.06, 20), ('UDEV-UA', 2, 50.07, 20), ('UDEV-UA', 7, 50.07, 2),
               ('UDEV-UA', 1200, 50.07, 0), ('UDEV-UA', 1680, 50.09, 40), ('UDEV-UA', 1681, 50.09, 40),
               ('UDEV-UB', -3, 40.00, 10), ('UDEV-UB', 0, 40.01, 10), ('UDEV-UB', 1, 40.01, NULL),
               ('UDEV-UB', 2, 40.02, 5), ('UDEV-UB', 3, 40.02, 5))
       AS t(identifier, mins, lat, speed) ON t.identifier = d.identifier
 WHERE d.tenant_id = :uco;

-- the session's zone does not move the UTC days
SET TimeZone = 'America/New_York';
SELECT fleet.refresh_view('fleet.vehicle_daily_utilization') > 0 AS refreshed;
RESET TimeZone;
SELECT v.code, u.local_day - (:'m'::timestamptz AT TIME ZONE 'UTC')::date AS day_offset, u.pings,
       u.moving_time, u.idle_time, u.offline_time, u.distance_km, u.gap_distance_km, u.max_speed
  FROM fleet.vehicle_daily_utilization u JOIN fleet.vehicle v USING (tenant_id, vehicle_id)
 WHERE u.tenant_id = :uco ORDER BY 1, 2;
-- every day of a vehicle from its first fix to its last is accounted for in full
SELECT v.code, u.local_day - (:'m'::timestamptz AT TIME ZONE 'UTC')::date AS day_offset,
       u.moving_time + u.idle_time + u.offline_time AS accounted
  FROM fleet.vehicle_daily_utilization u JOIN fleet.vehicle v USING (tenant_id, vehicle_id)
 WHERE u.tenant_id = :uco ORDER BY 1, 2;
SELECT count(*) AS differences FROM fleet.verify_view('fleet.vehicle_daily_utilization');

-- two late fixes inside the long silence (+600, +603 with a 0.01 degree
-- step between them): day 0 gains 3 min moving and a step of distance,
-- its offline time is the gaps either side (593 + 597 min, still over the
-- limit) plus the 4 h before midnight: 23:50; gap distance 2 steps; 5 pings
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
SELECT d.tenant_id, d.device_id, :'m'::timestamptz + interval '600 minutes', d.vehicle_id, 50.07, 10, 0, 0
  FROM fleet.device d WHERE d.tenant_id = :uco AND d.identifier = 'UDEV-UA';
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
SELECT d.tenant_id, d.device_id, :'m'::timestamptz + interval '603 minutes', d.vehicle_id, 50.08, 10, 25, 0
  FROM fleet.device d WHERE d.tenant_id = :uco AND d.identifier = 'UDEV-UA';
SELECT fleet.refresh_view('fleet.vehicle_daily_utilization') > 0 AS refreshed;
SELECT u.pings, u.moving_time, u.idle_time, u.offline_time, u.distance_km, u.gap_distance_km
  FROM fleet.vehicle_daily_utilization u JOIN fleet.vehicle v USING (tenant_id, vehicle_id)
 WHERE u.tenant_id = :uco AND v.code = 'UA' AND u.local_day = (:'m'::timestamptz AT TIME ZONE 'UTC')::date;
SELECT count(*) AS differences FROM fleet.verify_view('fleet.vehicle_daily_utilization');

-- readers: an analyst sees the documented columns of its own tenant only
SET ROLE fleet_analyst;
SELECT count(*) AS without_context FROM fleet.vehicle_daily_utilization;
SELECT fleet.set_tenant(:uco) = :uco AS in_context;
SELECT count(*) AS rows_seen, sum(pings) AS pings FROM fleet.vehicle_daily_utilization;
SELECT fleet.clear_tenant();
RESET ROLE;
