-- 05_roles: the role set and the table that drives every grant.
--
-- Roles are cluster-wide, so the extension does not create them: a DBA runs
-- fleet.create_roles() once per cluster (or creates them by hand and runs
-- fleet.apply_grants()).  Each part of the install script lists the
-- privileges its objects need in fleet.role_grant; fleet.apply_grants()
-- turns that list into GRANTs for the roles that exist, and nothing is ever
-- granted to PUBLIC.
--
--   fleet_admin    manages tenants, devices, policies and holds
--   fleet_ingest   calls the ingest functions (gateway); no financial data
--   fleet_app      dispatch and driver apps: operational reads and writes
--   fleet_analyst  reads everything it is given, writes nothing

CREATE TABLE fleet.role_grant (
	role_name   text NOT NULL
	            CHECK (role_name OPERATOR(pg_catalog.=) ANY (ARRAY['fleet_admin', 'fleet_ingest', 'fleet_app', 'fleet_analyst'])),
	object_kind text NOT NULL
	            CHECK (object_kind OPERATOR(pg_catalog.=) ANY (ARRAY['TABLE', 'FUNCTION', 'SCHEMA'])),
	object_name text NOT NULL,
	privileges  text NOT NULL
	            CHECK (privileges OPERATOR(pg_catalog.~) '^(ALL|SELECT|INSERT|UPDATE|DELETE|EXECUTE|USAGE)( *, *(SELECT|INSERT|UPDATE|DELETE))*$'),
	columns     text[],
	PRIMARY KEY (role_name, object_kind, object_name, privileges)
);
COMMENT ON TABLE fleet.role_grant IS
	'Privileges fleet grants to its roles: one row per role, object and privilege list; applied by fleet.apply_grants()';

CREATE FUNCTION fleet.role_exists(p_role text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) p_role)
$$;
COMMENT ON FUNCTION fleet.role_exists(text) IS 'true if a role of that name exists in the cluster';

CREATE FUNCTION fleet.is_admin() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
	                WHERE r.rolname OPERATOR(pg_catalog.=) 'fleet_admin'
	                  AND pg_catalog.pg_has_role(pg_catalog."current_user"(), r.oid, 'MEMBER'))
$$;
COMMENT ON FUNCTION fleet.is_admin() IS 'true if the current user is a member of fleet_admin (superusers are members of every role)';

CREATE FUNCTION fleet.apply_grants() RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	g record;
	n integer := 0;
	v_on text;
BEGIN
	FOR g IN SELECT * FROM fleet.role_grant ORDER BY role_name, object_kind, object_name LOOP
		CONTINUE WHEN NOT fleet.role_exists(g.role_name);
		IF g.object_kind OPERATOR(pg_catalog.=) 'TABLE' THEN
			-- validates the name: an unknown relation raises here
			v_on := 'TABLE ' || g.object_name::pg_catalog.regclass::text;
		ELSIF g.object_kind OPERATOR(pg_catalog.=) 'FUNCTION' THEN
			v_on := 'FUNCTION ' || g.object_name::pg_catalog.regprocedure::text;
		ELSE
			v_on := 'SCHEMA ' || pg_catalog.quote_ident(g.object_name);
		END IF;
		IF g.columns IS NOT NULL THEN
			EXECUTE pg_catalog.format('GRANT %s (%s) ON %s TO %I', g.privileges,
				(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(g.columns) c),
				v_on, g.role_name);
		ELSE
			EXECUTE pg_catalog.format('GRANT %s ON %s TO %I', g.privileges, v_on, g.role_name);
		END IF;
		n := n OPERATOR(pg_catalog.+) 1;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.apply_grants() IS
	'Grant every privilege listed in fleet.role_grant to the fleet roles that exist; returns the number of grants applied. Idempotent.';

CREATE FUNCTION fleet.create_roles() RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['fleet_admin', 'fleet_ingest', 'fleet_app', 'fleet_analyst'] LOOP
		IF NOT fleet.role_exists(r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
	RETURN fleet.apply_grants();
END
$$;
COMMENT ON FUNCTION fleet.create_roles() IS
	'Create the NOLOGIN roles fleet_admin, fleet_ingest, fleet_app and fleet_analyst where missing, then apply fleet.role_grant. Needs CREATEROLE. Login roles are then granted one of them.';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'SCHEMA', 'fleet', 'USAGE'),
	('fleet_ingest',  'SCHEMA', 'fleet', 'USAGE'),
	('fleet_app',     'SCHEMA', 'fleet', 'USAGE'),
	('fleet_analyst', 'SCHEMA', 'fleet', 'USAGE'),
	('fleet_admin',   'FUNCTION', 'fleet.is_admin()', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.is_admin()', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.is_admin()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.is_admin()', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.role_exists(text)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.role_grant', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.role_grant', 'SELECT');
