-- The catalog check: every key of a tenant-owned table includes tenant_id,
-- foreign keys carry it, row-level security is forced, views are
-- security_invoker.  fleet's own schema passes; a table that breaks the
-- rules is named with each rule it breaks.
\set VERBOSITY terse
SELECT * FROM fleet.check_schema_rules();

CREATE TABLE fleet.bad_table (
	tenant_id bigint NOT NULL,
	id int PRIMARY KEY,
	code text UNIQUE,
	driver_tenant bigint,
	driver_id bigint,
	FOREIGN KEY (driver_tenant, driver_id) REFERENCES fleet.driver (tenant_id, driver_id)
);
CREATE VIEW fleet.bad_view AS SELECT * FROM fleet.vehicle;
SELECT * FROM fleet.check_schema_rules();
SELECT fleet.enable_tenant_rls('fleet.bad_table');
SELECT rule FROM fleet.check_schema_rules() WHERE relation = 'fleet.bad_table'::regclass;
-- a high-volume (partitioned) tenant table numbered by a global sequence
CREATE TABLE fleet.bad_hot (
	tenant_id bigint NOT NULL,
	id bigint GENERATED ALWAYS AS IDENTITY,
	n bigserial,
	at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, id, at)
) PARTITION BY RANGE (at);
SELECT fleet.enable_tenant_rls('fleet.bad_hot');
SELECT rule, detail FROM fleet.check_schema_rules() WHERE relation = 'fleet.bad_hot'::regclass;
DROP TABLE fleet.bad_hot;
DROP VIEW fleet.bad_view;
DROP TABLE fleet.bad_table;
SELECT count(*) AS violations FROM fleet.check_schema_rules();
