-- 31_positions: GPS fixes and the latest known state of each vehicle.
--
-- fleet.position is the high-volume telemetry table, written only by
-- fleet.ingest_positions() (extension/ingest_positions.c).  A fix is
-- identified by (tenant, device, fix time at millisecond precision), so a
-- device that re-sends its buffer stores nothing twice.  The table has no
-- foreign keys on purpose: the ingest function resolves every device through
-- fleet.device_route before writing, and per-row referential-integrity
-- triggers would cost more than the insert itself.

CREATE TABLE fleet.position (
	tenant_id   bigint NOT NULL,
	device_id   bigint NOT NULL,
	fix_time    timestamptz NOT NULL,
	vehicle_id  bigint,
	lat         double precision NOT NULL,
	lon         double precision NOT NULL,
	speed       real,
	heading     real,
	altitude    real,
	accuracy    real,
	seq         bigint,
	attrs       jsonb,
	received_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, device_id, fix_time)
) PARTITION BY RANGE (fix_time);
COMMENT ON TABLE fleet.position IS
	'GPS fixes, one per (tenant, device, fix time in ms); daily partitions by fix time (UTC), written by fleet.ingest_positions(); speed in km/h, heading in degrees, altitude and accuracy in metres';

SELECT fleet.enable_tenant_rls('fleet.position');

CREATE TYPE fleet.position_row AS (
	tenant_id bigint, device_id bigint, fix_time timestamptz, vehicle_id bigint,
	lat double precision, lon double precision, speed real, heading real, altitude real, accuracy real,
	seq bigint, attrs jsonb);
COMMENT ON TYPE fleet.position_row IS
	'Internal to fleet.ingest_positions(): a new fix as the batch insert passes it (one array of these per batch, scanned by one unnest)';

INSERT INTO fleet.partitioned_table (relation, days_ahead, days_back, retention, description)
VALUES ('fleet.position', 7, 2, NULL, 'GPS fixes by fix time; kept until tiered storage takes them');

-- Today's and the surrounding partitions exist from the start; fleet.run_maintenance() keeps them ahead.
SELECT fleet.create_daily_partitions('fleet.position',
	(pg_catalog.now() AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.-) 2,
	(pg_catalog.now() AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.+) 7);

CREATE TABLE fleet.vehicle_state (
	tenant_id  bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	vehicle_id bigint NOT NULL,
	device_id  bigint,
	fix_time   timestamptz,
	lat        double precision,
	lon        double precision,
	speed      real,
	heading    real,
	altitude   real,
	state      jsonb NOT NULL DEFAULT '{}',
	state_at   timestamptz,
	state_event_id bigint,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, vehicle_id),
	FOREIGN KEY (tenant_id, vehicle_id) REFERENCES fleet.vehicle (tenant_id, vehicle_id)
) WITH (fillfactor = 50);
-- Every batch of fixes updates each of its vehicles' row: half of each page
-- stays free, so the new version goes to the same page and the update is
-- HOT (no new primary-key entry, the old version pruned in place).
COMMENT ON TABLE fleet.vehicle_state IS
	'Latest known state per vehicle: position from the newest accepted fix (an older fix never replaces it), and telemetry state from the newest vehicle.state event';

SELECT fleet.enable_tenant_rls('fleet.vehicle_state');

CREATE FUNCTION fleet.ingest_positions(
	device text[], fix_time timestamptz[], lat double precision[], lon double precision[],
	speed real[], heading real[], altitude real[], accuracy real[], seq bigint[], attrs jsonb[])
RETURNS TABLE (idx integer, status text, reason text)
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_ingest_positions';
COMMENT ON FUNCTION fleet.ingest_positions(text[], timestamptz[], double precision[], double precision[], real[], real[], real[], real[], bigint[], jsonb[]) IS
	'Store a batch of GPS fixes in one transaction; returns per element (1-based idx) accepted, duplicate (same fix already stored), conflict (same device and fix time, different values: the stored fix stays) or rejected with a reason (unknown_device, inactive_device, foreign_device, missing_fix_time, bad_fix_time (infinite or before 2000-01-01T00:00:00Z), bad_coordinates, bad_measurement, future_fix_time, no_partition). Arrays must have equal length; optional arrays may be NULL. Must run at READ COMMITTED.';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_ingest',  'FUNCTION', 'fleet.ingest_positions(text[],timestamptz[],double precision[],double precision[],real[],real[],real[],real[],bigint[],jsonb[])', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.ingest_positions(text[],timestamptz[],double precision[],double precision[],real[],real[],real[],real[],bigint[],jsonb[])', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.position', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.position', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.position', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.vehicle_state', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.vehicle_state', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.vehicle_state', 'SELECT');
