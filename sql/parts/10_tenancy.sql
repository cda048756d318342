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

-- A tenant's time zone cuts its days in the daily read models
-- (fleet.local_day); it must be a zone name PostgreSQL knows, however the
-- row is written (fleet.create_tenant or fleet_admin's UPDATE).
CREATE FUNCTION fleet.tenant_timezone_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names z WHERE z.name OPERATOR(pg_catalog.=) NEW.timezone) THEN
		RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A tenant''s time zone cuts its days in the daily read models.',
			      HINT = 'Use a name from pg_timezone_names, for example Europe/Berlin.';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION fleet.tenant_timezone_check() IS
	'Trigger of fleet.tenant: refuse a time zone that is not a name in pg_timezone_names (22023)';
CREATE TRIGGER tenant_timezone_check BEFORE INSERT OR UPDATE OF timezone ON fleet.tenant
	FOR EACH ROW EXECUTE FUNCTION fleet.tenant_timezone_check();

-- extension/local_day.c
CREATE FUNCTION fleet.local_day(tenant_id bigint, at timestamptz) RETURNS date
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_local_day';
COMMENT ON FUNCTION fleet.local_day(bigint, timestamptz) IS
	'The calendar day of an instant in the tenant''s time zone (fleet.tenant.timezone): the day key of the daily read models. Reads the tenant row directly; not granted to any role (it would tell any tenant''s zone).';

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
	-- the zone is checked by the trigger tenant_timezone_check
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

-- ------------------------------------------------------- login binding
--
-- A login may be bound to the tenants it acts for: fleet.set_tenant() called
-- from SQL then refuses any other tenant with SQLSTATE 42501 (extension/
-- tenant.c).  The session user (the login) and the role of SET ROLE are
-- checked, each only if it has bindings; a role without bindings may act for
-- any active tenant.  Bindings name roles by oid (regrole), so renaming a
-- role keeps them.  fleet_admin keeps them; a tenant context sees its own.

CREATE TABLE fleet.login_tenant (
	tenant_id bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	login     regrole NOT NULL,
	bound_by  text NOT NULL DEFAULT pg_catalog."session_user"(),
	bound_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, login)
);
COMMENT ON TABLE fleet.login_tenant IS
	'Logins (or SET ROLE roles) bound to the tenants they may act for: fleet.set_tenant() refuses a bound role any other tenant (42501); a role with no row here may act for any active tenant. Kept by fleet_admin with fleet.bind_login() / fleet.unbind_login()';
CREATE INDEX login_tenant_login ON fleet.login_tenant (login);
SELECT fleet.enable_tenant_rls('fleet.login_tenant');
CREATE POLICY login_tenant_admin ON fleet.login_tenant FOR ALL
	USING (fleet.is_admin()) WITH CHECK (fleet.is_admin());
COMMENT ON POLICY login_tenant_admin ON fleet.login_tenant IS 'fleet_admin members keep the bindings of every tenant';

CREATE FUNCTION fleet.bind_login(login regrole, tenant_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_new integer;
BEGIN
	IF NOT fleet.is_admin() THEN
		RAISE EXCEPTION 'binding a login to a tenant needs fleet_admin' USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF bind_login.login IS NULL OR bind_login.tenant_id IS NULL THEN
		RAISE EXCEPTION 'login and tenant_id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fleet.tenant t WHERE t.tenant_id OPERATOR(pg_catalog.=) bind_login.tenant_id) THEN
		RAISE EXCEPTION 'tenant % does not exist', bind_login.tenant_id USING ERRCODE = 'undefined_object';
	END IF;
	INSERT INTO fleet.login_tenant (tenant_id, login) VALUES (bind_login.tenant_id, bind_login.login)
	ON CONFLICT DO NOTHING;
	GET DIAGNOSTICS v_new = ROW_COUNT;
	RETURN v_new OPERATOR(pg_catalog.>) 0;
END
$$;
COMMENT ON FUNCTION fleet.bind_login(regrole, bigint) IS
	'Bind a login (or a role sessions SET ROLE to) to a tenant: from then on fleet.set_tenant() refuses it every tenant it is not bound to (42501). Returns false if the binding existed (fleet_admin)';

CREATE FUNCTION fleet.unbind_login(login regrole, tenant_id bigint DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_n integer;
BEGIN
	IF NOT fleet.is_admin() THEN
		RAISE EXCEPTION 'unbinding a login needs fleet_admin' USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF unbind_login.login IS NULL THEN
		RAISE EXCEPTION 'login must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	DELETE FROM fleet.login_tenant b
	 WHERE b.login::pg_catalog.oid OPERATOR(pg_catalog.=) unbind_login.login::pg_catalog.oid
	   AND (unbind_login.tenant_id IS NULL OR b.tenant_id OPERATOR(pg_catalog.=) unbind_login.tenant_id);
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION fleet.unbind_login(regrole, bigint) IS
	'Remove a login''s binding to a tenant (tenant_id NULL: all its bindings); returns how many were removed. A login left with no binding may act for any active tenant again (fleet_admin)';

CREATE FUNCTION fleet.session_role() RETURNS regrole
	LANGUAGE C STABLE PARALLEL RESTRICTED
	AS 'MODULE_PATHNAME', 'fleet_session_role';
COMMENT ON FUNCTION fleet.session_role() IS
	'The role the session acts as outside any SECURITY DEFINER function: the role of SET ROLE, else the login';

CREATE FUNCTION fleet.is_dba() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT COALESCE((SELECT r.rolsuper
	                     OR r.oid OPERATOR(pg_catalog.=) (SELECT e.extowner FROM pg_catalog.pg_extension e
	                                                       WHERE e.extname OPERATOR(pg_catalog.=) 'fleet')
	                   FROM pg_catalog.pg_roles r
	                  WHERE r.oid OPERATOR(pg_catalog.=) fleet.session_role()::pg_catalog.oid), false)
$$;
COMMENT ON FUNCTION fleet.is_dba() IS
	'true if the session''s role (fleet.session_role(): SET ROLE''s role, else the login) is a superuser or owns the extension: the DBA, for whom functions answer across tenants';

CREATE FUNCTION fleet.sees_all_tenants() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT fleet.is_dba()
	    OR pg_catalog.pg_has_role(fleet.session_role()::pg_catalog.oid, 'pg_monitor', 'USAGE')
$$;
COMMENT ON FUNCTION fleet.sees_all_tenants() IS
	'true if the session''s role may see per-tenant figures of every tenant (fleet.metrics()): the DBA (fleet.is_dba()) or a member of PostgreSQL''s pg_monitor role';

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
	('fleet_analyst', 'TABLE', 'fleet.tenant', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.login_tenant', 'SELECT, INSERT, DELETE'),
	('fleet_admin',   'FUNCTION', 'fleet.bind_login(regrole,bigint)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.unbind_login(regrole,bigint)', 'EXECUTE');

-- asked inside fleet's own functions as the calling role
INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges)
SELECT r, 'FUNCTION', f, 'EXECUTE'
  FROM pg_catalog.unnest(ARRAY['fleet_admin', 'fleet_ingest', 'fleet_app', 'fleet_analyst']) r,
       pg_catalog.unnest(ARRAY['fleet.session_role()', 'fleet.is_dba()', 'fleet.sees_all_tenants()']) f;
