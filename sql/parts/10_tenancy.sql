-- 10_tenancy: tenants, the tenant context and the row-level security helper.
--
-- Every tenant-owned table has tenant_id leading its primary key and every
-- unique constraint (so it can be distributed by tenant later), and a FORCEd
-- row-level security policy comparing tenant_id with fleet.current_tenant()
-- for reads (USING) and writes (WITH CHECK).  No tenant context: NULL, so no
-- row matches and no row can be written.

CREATE FUNCTION fleet.set_tenant(tenant_id bigint, is_local boolean DEFAULT false) RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_set_tenant';
COMMENT ON FUNCTION fleet.set_tenant(bigint, boolean) IS
	'Act for a tenant: validates it exists and is active, then sets fleet.tenant for the session (or, with is_local, the transaction). The only way to set the tenant context.';

CREATE FUNCTION fleet.clear_tenant() RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_clear_tenant';
COMMENT ON FUNCTION fleet.clear_tenant() IS 'Leave the tenant context: no tenant-owned row is visible or writable afterwards';

CREATE FUNCTION fleet.current_tenant() RETURNS bigint
	LANGUAGE C STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_current_tenant';
COMMENT ON FUNCTION fleet.current_tenant() IS 'The tenant the session acts for, or NULL when no tenant context is set';

CREATE TABLE fleet.tenant (
	tenant_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       text NOT NULL CHECK (pg_catalog.length(name) OPERATOR(pg_catalog.>) 0
	                                AND pg_catalog.length(name) OPERATOR(pg_catalog.<=) 200),
	status     text NOT NULL DEFAULT 'active'
	           CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'suspended'])),
	timezone   text NOT NULL DEFAULT 'UTC',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE fleet.tenant IS 'Tenants: the root of every tenant-owned row. A tenant sees its own row; fleet_admin sees and manages all.';

ALTER TABLE fleet.tenant ENABLE ROW LEVEL SECURITY;
ALTER TABLE fleet.tenant FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON fleet.tenant FOR SELECT
	USING (tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant());
CREATE POLICY tenant_admin ON fleet.tenant FOR ALL
	USING (fleet.is_admin()) WITH CHECK (fleet.is_admin());
COMMENT ON POLICY tenant_self ON fleet.tenant IS 'A tenant context sees its own tenant row';
COMMENT ON POLICY tenant_admin ON fleet.tenant IS 'fleet_admin members manage every tenant row';

CREATE FUNCTION fleet.create_tenant(name text, timezone text DEFAULT 'UTC') RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id bigint;
BEGIN
	IF name IS NULL OR pg_catalog.btrim(name) OPERATOR(pg_catalog.=) '' THEN
		RAISE EXCEPTION 'tenant name must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names z WHERE z.name OPERATOR(pg_catalog.=) create_tenant.timezone) THEN
		RAISE EXCEPTION 'unknown time zone "%"', timezone
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Use a name from pg_timezone_names, for example Europe/Berlin.';
	END IF;
	INSERT INTO fleet.tenant (name, timezone) VALUES (pg_catalog.btrim(name), timezone)
		RETURNING tenant.tenant_id INTO v_id;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION fleet.create_tenant(text, text) IS 'Create a tenant and return its id (fleet_admin)';

CREATE FUNCTION fleet.enable_tenant_rls(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
	                WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attname OPERATOR(pg_catalog.=) 'tenant_id'
	                  AND NOT a.attisdropped) THEN
		RAISE EXCEPTION 'table % has no tenant_id column', rel
			USING ERRCODE = 'undefined_column',
			      HINT = 'Tenant-owned tables need a tenant_id bigint column leading their primary key.';
	END IF;
	EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
	EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', rel);
	EXECUTE pg_catalog.format(
		'CREATE POLICY tenant_isolation ON %s FOR ALL'
		' USING (tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant())'
		' WITH CHECK (tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant())', rel);
	EXECUTE pg_catalog.format(
		'COMMENT ON POLICY tenant_isolation ON %s IS %L', rel,
		'Rows are visible and writable only in the context of their tenant (fleet.set_tenant)');
END
$$;
COMMENT ON FUNCTION fleet.enable_tenant_rls(regclass) IS
	'Put a tenant-owned table under fleet''s tenant isolation: ENABLE and FORCE row-level security with a USING and WITH CHECK policy on tenant_id';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'FUNCTION', 'fleet.set_tenant(bigint,boolean)', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.set_tenant(bigint,boolean)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.set_tenant(bigint,boolean)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.set_tenant(bigint,boolean)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.clear_tenant()', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.clear_tenant()', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.clear_tenant()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.clear_tenant()', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.current_tenant()', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.current_tenant()', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.current_tenant()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.current_tenant()', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.create_tenant(text,text)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.tenant', 'SELECT, INSERT, UPDATE'),
	('fleet_app',     'TABLE', 'fleet.tenant', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.tenant', 'SELECT');
