-- make run: the extension, the roles and a demo tenant with a fleet of
-- :vehicles vans (idempotent: a second run adds what is missing).
--
--   psql -v vehicles=300 -v teltonika_base=356307042440000 -v osmand_prefix=demo -f scripts/demo.sql
--
-- Trackers match what the simulator (services/sim/fleet-sim, driving
-- fleet-loadgen) sends: the first half of the vans carry Teltonika trackers
-- with IMEIs teltonika_base + 0, 1, ..., the rest phones with the OsmAnd
-- app whose ids are <osmand_prefix>-osm-0, -1, ...  Every van has a driver
-- with a registered driver app (sync client), and the provider "demo-telematics"
-- posts signed webhooks with the secret below (demo only).
\if :{?vehicles}
\else
\set vehicles 20
\endif
\if :{?teltonika_base}
\else
\set teltonika_base 356307042440000
\endif
\if :{?osmand_prefix}
\else
\set osmand_prefix demo
\endif
SELECT count(*) = 0 AS fresh FROM pg_extension WHERE extname = 'fleet' \gset
\if :fresh
CREATE EXTENSION fleet CASCADE;
SELECT fleet.create_roles();
SELECT fleet.create_tenant('Demo Fleet', 'Europe/Berlin');
\endif
SELECT tenant_id AS demo_tenant FROM fleet.tenant WHERE name = 'Demo Fleet' \gset
SELECT fleet.set_tenant(:demo_tenant);
SET fleet_demo.vehicles = :vehicles;
SET fleet_demo.teltonika_base = :teltonika_base;
SET fleet_demo.osmand_prefix = :'osmand_prefix';
DO $$
DECLARE
	t bigint := fleet.current_tenant();
	n integer := current_setting('fleet_demo.vehicles')::integer;
	n_tlt integer := (n + 1) / 2;
	base bigint := current_setting('fleet_demo.teltonika_base')::bigint;
	prefix text := current_setting('fleet_demo.osmand_prefix');
BEGIN
	INSERT INTO fleet.vehicle (tenant_id, code, name, plate)
	SELECT t, format('V%s', lpad(g::text, 4, '0')), 'Van ' || g, 'B-FL ' || (1000 + g)
	  FROM generate_series(1, n) g
	ON CONFLICT DO NOTHING;
	INSERT INTO fleet.driver (tenant_id, code, name)
	SELECT t, format('D%s', lpad(g::text, 4, '0')), 'Driver ' || g
	  FROM generate_series(1, n) g
	ON CONFLICT DO NOTHING;
	INSERT INTO fleet.customer (tenant_id, code, name) VALUES (t, 'ACME', 'Acme Retail'), (t, 'GLOBEX', 'Globex')
	ON CONFLICT DO NOTHING;
	-- van g (1-based): Teltonika IMEI base + g - 1 for the first half, OsmAnd id <prefix>-osm-<g - n_tlt - 1> after
	INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT t, CASE WHEN g <= n_tlt THEN (base + g - 1)::text ELSE format('%s-osm-%s', prefix, g - n_tlt - 1) END,
	       CASE WHEN g <= n_tlt THEN 'teltonika' ELSE 'osmand' END, v.vehicle_id
	  FROM generate_series(1, n) g
	  JOIN fleet.vehicle v ON v.tenant_id = t AND v.code = format('V%s', lpad(g::text, 4, '0'))
	 WHERE NOT EXISTS (SELECT 1 FROM fleet.device d WHERE d.tenant_id = t AND d.vehicle_id = v.vehicle_id);
	-- one driver app per driver, client id derived from the driver id
	PERFORM fleet.sync_register_client(format('00000000-0000-4000-8000-%s', lpad(d.driver_id::text, 12, '0'))::uuid, d.driver_id)
	   FROM fleet.driver d
	  WHERE d.tenant_id = t
	    AND NOT EXISTS (SELECT 1 FROM fleet.sync_client c WHERE c.tenant_id = t AND c.driver_id = d.driver_id);
	IF NOT EXISTS (SELECT 1 FROM fleet.provider p WHERE p.tenant_id = t AND p.name = 'demo-telematics') THEN
		INSERT INTO fleet.provider (tenant_id, name, secret)
		VALUES (t, 'demo-telematics', convert_to('demo-provider-secret-0123456789', 'UTF8'));
	END IF;
END $$;
SELECT fleet.clear_tenant();
-- what the provider sends: vehicle alerts, kept in the audit trail
SELECT count(*) = 0 AS need_kind FROM fleet.event_kind WHERE kind = 'demo.vehicle_alert' \gset
\if :need_kind
SELECT fleet.register_event_kind('demo.vehicle_alert', 'audit', 1, '{"vehicle": "string", "alert": "string"}', NULL,
	'make run: an alert from the demo telematics provider');
\endif
SELECT t.name AS tenant, t.tenant_id,
       (SELECT count(*) FROM fleet.vehicle v WHERE v.tenant_id = t.tenant_id) AS vehicles,
       (SELECT count(*) FROM fleet.device d WHERE d.tenant_id = t.tenant_id) AS trackers
  FROM fleet.tenant t ORDER BY t.tenant_id;
