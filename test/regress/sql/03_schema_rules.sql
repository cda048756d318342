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
-- every foreign key of a fleet table (tenant-owned or not) is backed by an
-- index led by its columns, in any order; columns that are not leading, a
-- partial index or one on only some of them do not count
CREATE TABLE fleet.bad_fk (
	tenant_id bigint NOT NULL,
	id bigint NOT NULL,
	job_id bigint,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, job_id) REFERENCES fleet.job (tenant_id, job_id)
);
SELECT fleet.enable_tenant_rls('fleet.bad_fk');
CREATE TABLE fleet.bad_lookup (name text PRIMARY KEY, class text REFERENCES fleet.event_class (class));
SELECT relation, rule, detail FROM fleet.check_schema_rules();
CREATE INDEX bad_fk_trailing ON fleet.bad_fk (id, tenant_id, job_id);
CREATE INDEX bad_fk_partial ON fleet.bad_fk (tenant_id, job_id) WHERE job_id IS NOT NULL;
CREATE INDEX bad_fk_half ON fleet.bad_fk (job_id);
SELECT relation, rule FROM fleet.check_schema_rules();
CREATE INDEX bad_fk_job ON fleet.bad_fk (job_id, tenant_id, id);
SELECT relation, rule FROM fleet.check_schema_rules();
-- a key that never needs an index is exempted by name, with its reason
INSERT INTO fleet.schema_fk_exemption VALUES ('fleet.bad_lookup', 'bad_lookup_class_fkey', 'regression test');
SELECT relation, rule FROM fleet.check_schema_rules();
DELETE FROM fleet.schema_fk_exemption WHERE relation = 'fleet.bad_lookup';
DROP TABLE fleet.bad_lookup;
-- partitioned tables: the key and index of the parent stand for the clones
-- on its partitions, and a key referencing a partitioned table is one key
CREATE TABLE fleet.bad_part (
	tenant_id bigint NOT NULL,
	job_id bigint NOT NULL,
	at date NOT NULL,
	PRIMARY KEY (tenant_id, at, job_id),
	FOREIGN KEY (tenant_id, job_id) REFERENCES fleet.job (tenant_id, job_id)
) PARTITION BY RANGE (at);
CREATE TABLE fleet.bad_part_1 PARTITION OF fleet.bad_part FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE fleet.bad_part_2 PARTITION OF fleet.bad_part FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE fleet.bad_ref (
	tenant_id bigint NOT NULL,
	id bigint NOT NULL,
	job_id bigint NOT NULL,
	at date NOT NULL,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, at, job_id) REFERENCES fleet.bad_part (tenant_id, at, job_id)
);
SELECT relation, rule, detail FROM fleet.check_schema_rules() WHERE rule = 'fk_has_index';
CREATE INDEX bad_part_job ON fleet.bad_part (tenant_id, job_id);
CREATE INDEX bad_ref_part ON fleet.bad_ref (tenant_id, job_id, at);
SELECT relation, rule, detail FROM fleet.check_schema_rules() WHERE rule = 'fk_has_index';
DROP TABLE fleet.bad_ref;
DROP TABLE fleet.bad_part;
DROP TABLE fleet.bad_fk;
DROP VIEW fleet.bad_view;
DROP TABLE fleet.bad_table;
SELECT count(*) AS violations FROM fleet.check_schema_rules();
