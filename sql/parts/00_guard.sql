-- 00_guard: refuse to install into a schema someone else prepared.
--
-- fleet.control names the schema "fleet".  CREATE EXTENSION creates it when
-- it is missing; if it already exists it is used as it is, so a schema
-- planted by another role (whose owner could later drop or replace our
-- objects) must be refused before anything is created in it.
DO $guard$
DECLARE
	v_owner oid;
BEGIN
	SELECT n.nspowner INTO v_owner
	  FROM pg_catalog.pg_namespace n
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'fleet';
	IF v_owner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
	                                     WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog."current_user"()) THEN
		RAISE EXCEPTION 'schema "fleet" is owned by another role'
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'fleet installs only into a schema owned by the installing role.',
			      HINT = 'Drop the schema "fleet" or change its owner, then run CREATE EXTENSION fleet again.';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c
	            WHERE c.relnamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
	               WHERE p.pronamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
	               WHERE t.typnamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace)
	   OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator o
	               WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace) THEN
		RAISE EXCEPTION 'schema "fleet" is not empty'
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'fleet creates every object in its schema itself and will not share it with objects created before it.',
			      HINT = 'Move or drop the existing objects in schema "fleet", then run CREATE EXTENSION fleet again.';
	END IF;
END
$guard$;

-- The schema is created by CREATE EXTENSION (from fleet.control) and so is not
-- a member of the extension; fleet's utility hook (extension/guard.c) drops it
-- after DROP EXTENSION fleet when nothing else is left in it.
REVOKE ALL ON SCHEMA fleet FROM PUBLIC;
COMMENT ON SCHEMA fleet IS 'fleet: tenants, fleet domain, ingest, pipeline, views and maintenance';

