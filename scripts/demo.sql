-- make run: the extension, the roles and a demo tenant (idempotent).
SELECT count(*) = 0 AS fresh FROM pg_extension WHERE extname = 'fleet' \gset
\if :fresh
CREATE EXTENSION fleet CASCADE;
SELECT fleet.create_roles();
DO $$
DECLARE
	t bigint := fleet.create_tenant('Demo Fleet', 'Europe/Berlin');
BEGIN
	PERFORM fleet.set_tenant(t);
	INSERT INTO fleet.vehicle (tenant_id, code, name, plate)
	SELECT t, pg_catalog.format('V%s', pg_catalog.lpad(g::text, 3, '0')), 'Van ' || g, 'B-FL ' || (1000 + g)
	  FROM pg_catalog.generate_series(1, 20) g;
	INSERT INTO fleet.driver (tenant_id, code, name)
	SELECT t, pg_catalog.format('D%s', pg_catalog.lpad(g::text, 3, '0')), 'Driver ' || g
	  FROM pg_catalog.generate_series(1, 20) g;
	INSERT INTO fleet.customer (tenant_id, code, name) VALUES (t, 'ACME', 'Acme Retail'), (t, 'GLOBEX', 'Globex');
	-- Demo trackers: Teltonika IMEIs for the first ten vans, OsmAnd ids for the rest.
	INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT t, CASE WHEN row_number() OVER (ORDER BY v.vehicle_id) <= 10
	               THEN (356307042440000 + row_number() OVER (ORDER BY v.vehicle_id))::text
	               ELSE 'demo-' || v.code END,
	       CASE WHEN row_number() OVER (ORDER BY v.vehicle_id) <= 10 THEN 'teltonika' ELSE 'osmand' END,
	       v.vehicle_id
	  FROM fleet.vehicle v WHERE v.tenant_id = t;
	PERFORM fleet.clear_tenant();
END $$;
\endif
SELECT t.name AS tenant, t.tenant_id,
       (SELECT count(*) FROM fleet.vehicle v WHERE v.tenant_id = t.tenant_id) AS vehicles
  FROM fleet.tenant t ORDER BY t.tenant_id;
