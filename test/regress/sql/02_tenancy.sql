-- Tenant isolation: a tenant sees and writes only its own rows, through
-- every table and view; no tenant context means no rows at all.
\set VERBOSITY terse
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset
SELECT tenant_id AS south FROM fleet.tenant WHERE name = 'South Haulage' \gset

-- The context can only be set through fleet.set_tenant().
SET fleet.tenant = '1';
SELECT set_config('fleet.tenant', '1', false);
SELECT fleet.set_tenant(NULL);
SELECT fleet.set_tenant(999999);
SELECT fleet.set_tenant(-1);
SELECT fleet.create_tenant('Dormant Ltd') AS dormant \gset
UPDATE fleet.tenant SET status = 'suspended' WHERE tenant_id = :dormant;
SELECT fleet.set_tenant(:dormant);
SELECT fleet.current_tenant() IS NULL AS no_context;
SELECT fleet.create_tenant('  ');
SELECT fleet.create_tenant('Zoned', 'Mars/Olympus');

SET ROLE fleet_app;

-- No tenant context: every tenant-owned relation is empty and unwritable.
DO $$
DECLARE r record; n bigint;
BEGIN
	FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
	          WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'v', 'p')
	            AND has_table_privilege(c.oid, 'SELECT')
	            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
	          ORDER BY 1 LOOP
		EXECUTE format('SELECT count(*) FROM %s', r.rel) INTO n;
		RAISE NOTICE '% without context: % rows', r.rel, n;
	END LOOP;
END $$;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:north, 'N-9');
UPDATE fleet.vehicle SET name = 'x';

-- North's context: only North's rows, through every relation.
SELECT fleet.set_tenant(:north) = :north AS acting_for_north;
DO $$
DECLARE r record; mine bigint; foreign_rows bigint;
BEGIN
	FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
	          WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'v', 'p')
	            AND has_table_privilege(c.oid, 'SELECT')
	            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
	          ORDER BY 1 LOOP
		EXECUTE format('SELECT count(*) FILTER (WHERE tenant_id = fleet.current_tenant()),'
		               ' count(*) FILTER (WHERE tenant_id <> fleet.current_tenant()) FROM %s', r.rel)
		   INTO mine, foreign_rows;
		RAISE NOTICE '% as north: % own, % foreign', r.rel, mine, foreign_rows;
	END LOOP;
END $$;
SELECT job_code, seq, status, driver_code, evidence_count FROM fleet.stop_board;

-- Writing into South from North's context is refused; updates and deletes
-- cannot reach South's rows.
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:south, 'S-evil');
UPDATE fleet.vehicle SET tenant_id = :south WHERE code = 'N-1';
UPDATE fleet.driver SET name = 'hijacked' WHERE code = 'sd1';
-- A foreign key cannot point into another tenant: South's driver id does not
-- exist for North.
RESET ROLE;
SELECT fleet.set_tenant(:south);
SELECT driver_id AS south_driver FROM fleet.driver WHERE code = 'sd1' \gset
SELECT fleet.set_tenant(:north);
SET ROLE fleet_app;
UPDATE fleet.job SET driver_id = :south_driver WHERE code = 'J-1';
RESET ROLE;

-- South's context sees South only; its driver was not renamed.
SET ROLE fleet_app;
SELECT fleet.set_tenant(:south) = :south AS acting_for_south;
SELECT code, name FROM fleet.driver;
SELECT count(*) AS south_jobs FROM fleet.job;
RESET ROLE;

-- A device identifier belongs to one tenant only.
SET ROLE fleet_admin;
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:south, '356307042441013', 'teltonika');
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:south, 'bad identifier!', 'osmand');
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:south, '358480081523995', 'carrier-pigeon');
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:south, '358480081523995', 'gt06');
RESET ROLE;
SELECT identifier, tenant_id = :south AS is_south, protocol FROM fleet.device_route ORDER BY identifier;
-- The gateway (fleet_ingest) may ask whether an identifier is known, and
-- learns nothing else; the routing table itself stays out of its reach.
SET ROLE fleet_ingest;
SELECT fleet.device_known('356307042441013') AS known,
       fleet.device_known('356307042441013', 'teltonika') AS known_as_teltonika,
       fleet.device_known('356307042441013', 'gt06') AS known_as_gt06,
       fleet.device_known('000000000000000') AS unknown;
RESET ROLE;
SELECT fleet.set_tenant(:south);
UPDATE fleet.device SET active = false WHERE identifier = '358480081523995';
SELECT fleet.device_known('358480081523995') AS inactive_known;

-- SET LOCAL semantics: a transaction-local context ends with the transaction.
SELECT fleet.clear_tenant();
BEGIN;
SET LOCAL ROLE fleet_app;
SELECT fleet.set_tenant(:north, true) = :north AS local_north;
SELECT code FROM fleet.vehicle;
COMMIT;
SELECT fleet.current_tenant() IS NULL AS cleared_after_commit;
-- A rolled-back set_tenant leaves the previous context.
SELECT fleet.set_tenant(:south) = :south AS south;
BEGIN;
SELECT fleet.set_tenant(:north) = :north AS north_in_txn;
ROLLBACK;
SELECT fleet.current_tenant() = :south AS back_to_south;
-- RESET ALL and DISCARD ALL (what a pooler runs) clear it.
RESET ALL;
SELECT fleet.current_tenant() IS NULL AS cleared_by_reset_all;
SELECT fleet.set_tenant(:south) = :south AS south;
DISCARD ALL;
SELECT fleet.current_tenant() IS NULL AS cleared_by_discard_all;

-- Tenant rows: a tenant sees itself only; fleet_admin sees all.
SET ROLE fleet_analyst;
SELECT fleet.set_tenant(:north) = :north;
SELECT name FROM fleet.tenant;
RESET ROLE;
SET ROLE fleet_admin;
SELECT count(*) >= 3 AS admin_sees_all FROM fleet.tenant;
RESET ROLE;

-- enable_tenant_rls refuses a table with no tenant_id.
CREATE TABLE public.no_tenant (id int);
SELECT fleet.enable_tenant_rls('public.no_tenant');
DROP TABLE public.no_tenant;
SELECT fleet.clear_tenant();
