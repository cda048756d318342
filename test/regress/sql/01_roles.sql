-- The role set: what each fleet role may and may not do.
\set VERBOSITY terse
SELECT fleet.create_roles() > 0 AS granted;
-- Idempotent: running it again creates nothing new and grants the same.
SELECT fleet.create_roles() = fleet.apply_grants() AS idempotent;
SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles
 WHERE rolname LIKE 'fleet\_%' ORDER BY rolname;

-- Fixture, as fleet_admin: two tenants with a vehicle, device, driver,
-- customer, job, stop and a charge each.
SET ROLE fleet_admin;
SELECT fleet.create_tenant('North Freight') AS north \gset
SELECT fleet.create_tenant('South Haulage') AS south \gset
SELECT fleet.set_tenant(:north);
INSERT INTO fleet.vehicle (tenant_id, code, name) VALUES (:north, 'N-1', 'North truck');
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:north, 'nd1', 'Nora');
INSERT INTO fleet.customer (tenant_id, code, name) VALUES (:north, 'nc1', 'North customer');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id, secret)
	SELECT :north, '356307042441013', 'teltonika', vehicle_id, '\x01020304' FROM fleet.vehicle;
RESET ROLE;
-- Charges are written by the pipeline (extension owner), not by any role.
SELECT fleet.set_tenant(:north);
INSERT INTO fleet.charge (tenant_id, customer_id, kind, amount, currency, occurred_at)
	SELECT :north, customer_id, 'delivery', 120.50, 'EUR', '2026-11-01' FROM fleet.customer;
SET ROLE fleet_admin;
SELECT fleet.set_tenant(:south);
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:south, 'S-1');
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:south, 'sd1', 'Sam');
RESET ROLE;
SELECT fleet.clear_tenant();

-- fleet_ingest: no financial data, no writes to the domain, no secrets.
SET ROLE fleet_ingest;
SELECT fleet.set_tenant(:north);
SELECT code FROM fleet.vehicle;
SELECT * FROM fleet.charge;
SELECT * FROM fleet.invoice;
SELECT identifier FROM fleet.device;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:north, 'N-x');
SELECT * FROM fleet.device_route;
SELECT fleet.create_tenant('nope');
RESET ROLE;

-- fleet_analyst: reads, never writes; no device secrets.
SET ROLE fleet_analyst;
SELECT fleet.set_tenant(:north);
SELECT code FROM fleet.vehicle;
SELECT amount, currency FROM fleet.charge;
SELECT identifier, protocol FROM fleet.device;
SELECT secret FROM fleet.device;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:north, 'N-2');
UPDATE fleet.vehicle SET name = 'x';
DELETE FROM fleet.driver;
INSERT INTO fleet.charge (tenant_id, customer_id, kind, amount, currency, occurred_at)
	VALUES (:north, 1, 'x', 1, 'EUR', now());
SELECT fleet.apply_grants();
RESET ROLE;

-- fleet_app: operational reads and writes; reads billing; no deletes, no secrets.
SET ROLE fleet_app;
SELECT fleet.set_tenant(:north);
INSERT INTO fleet.job (tenant_id, code, customer_id, vehicle_id, driver_id, status)
	SELECT :north, 'J-1', c.customer_id, v.vehicle_id, d.driver_id, 'assigned'
	  FROM fleet.customer c, fleet.vehicle v, fleet.driver d;
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
	SELECT :north, job_id, 1, driver_id FROM fleet.job WHERE code = 'J-1';
UPDATE fleet.stop SET status = 'en_route';
SELECT j.code, s.seq, s.status FROM fleet.job j JOIN fleet.stop s USING (tenant_id, job_id);
SELECT amount FROM fleet.charge;
DELETE FROM fleet.vehicle;
SELECT secret FROM fleet.device;
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:north, '111', 'gt06');
INSERT INTO fleet.charge (tenant_id, customer_id, kind, amount, currency, occurred_at)
	SELECT :north, customer_id, 'x', 1, 'EUR', now() FROM fleet.customer;
UPDATE fleet.tenant SET name = 'renamed';
RESET ROLE;

-- fleet_admin: manages devices and tenants, reads secrets, cannot forge charges.
SET ROLE fleet_admin;
SELECT fleet.set_tenant(:north);
SELECT identifier, secret FROM fleet.device;
SELECT name FROM fleet.tenant ORDER BY tenant_id;
INSERT INTO fleet.charge (tenant_id, customer_id, kind, amount, currency, occurred_at)
	SELECT :north, customer_id, 'x', 1, 'EUR', now() FROM fleet.customer;
SELECT fleet.create_roles();
RESET ROLE;

-- A role outside the fleet roles gets nothing at all.
CREATE ROLE outsider;
SET ROLE outsider;
SELECT fleet.current_tenant();
SELECT count(*) FROM fleet.vehicle;
RESET ROLE;
SELECT fleet.clear_tenant();
