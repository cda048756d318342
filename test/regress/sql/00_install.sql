-- Installing fleet: hostile objects planted beforehand are not picked up,
-- a schema prepared by someone else is refused, and DROP EXTENSION removes
-- everything fleet created.
\set VERBOSITY terse
CREATE ROLE mallory;
GRANT CREATE ON SCHEMA public TO mallory;

-- 1. A schema "fleet" owned by another role is refused.
CREATE SCHEMA fleet AUTHORIZATION mallory;
CREATE EXTENSION fleet CASCADE;
DROP SCHEMA fleet;

-- 2. A non-empty schema "fleet" is refused, even when the installer owns it.
CREATE SCHEMA fleet;
CREATE TABLE fleet.tenant (tenant_id bigint);
CREATE EXTENSION fleet CASCADE;
DROP SCHEMA fleet CASCADE;

-- 3. Hostile objects on the search path, planted by mallory.
SET ROLE mallory;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql
	AS $$ SELECT 'epoch'::timestamptz $$;
CREATE FUNCTION public.always_true(text, text) RETURNS boolean LANGUAGE sql
	AS $$ SELECT true $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.always_true);
CREATE FUNCTION public.length(text) RETURNS integer LANGUAGE sql AS $$ SELECT 5 $$;
CREATE TABLE public.tenant (tenant_id bigint, name text, status text, timezone text, created_at timestamptz);
CREATE TABLE public.role_grant (role_name text, object_kind text, object_name text, privileges text, columns text[]);
CREATE FUNCTION public.current_tenant() RETURNS bigint LANGUAGE sql AS $$ SELECT 1::bigint $$;
RESET ROLE;
SET search_path = public, fleet;

CREATE EXTENSION fleet CASCADE;
SELECT extname, extversion, extnamespace::regnamespace FROM pg_extension ORDER BY extname;

-- The planted operator would make every status valid and the planted
-- length() every code length 5: the install script used neither.
INSERT INTO fleet.tenant (name, status) VALUES ('hostile', 'bogus');
SELECT fleet.create_tenant('Acme Logistics') AS acme;
SELECT name, created_at > pg_catalog.now() - interval '1 hour' AS created_now
  FROM fleet.tenant;
SELECT count(*) AS hostile_tenant_rows FROM public.tenant;
SELECT count(*) AS hostile_grant_rows FROM public.role_grant;
SELECT count(*) > 0 AS fleet_grant_rows FROM fleet.role_grant;
-- Policies reference fleet.current_tenant(), not the planted one.
SELECT DISTINCT pg_get_expr(polqual, polrelid) FROM pg_policy
 WHERE polrelid = 'fleet.vehicle'::regclass;
-- No fleet function is executable by PUBLIC, no table readable by it.
SELECT count(*) AS public_function_grants
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.pronamespace = 'fleet'::regnamespace AND a.grantee = 0;
SELECT count(*) AS functions_without_acl
  FROM pg_proc p WHERE p.pronamespace = 'fleet'::regnamespace AND p.proacl IS NULL;
SELECT count(*) AS public_table_grants
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'fleet'::regnamespace AND a.grantee = 0;
-- Every fleet object carries a comment.
SELECT c.oid::regclass AS uncommented_relation FROM pg_class c
 WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.oid::regprocedure AS uncommented_function FROM pg_proc p
 WHERE p.pronamespace = 'fleet'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
-- SECURITY DEFINER functions pin search_path.
SELECT p.oid::regprocedure AS definer_without_search_path FROM pg_proc p
 WHERE p.pronamespace = 'fleet'::regnamespace AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);

-- 4. DROP EXTENSION removes everything, including the schema and fleet's cron jobs.
SELECT cron.schedule('fleet.probe', '* * * * *', 'SELECT 1') > 0 AS scheduled;
DROP EXTENSION fleet;
SELECT count(*) AS fleet_schemas FROM pg_namespace WHERE nspname = 'fleet';
SELECT count(*) AS fleet_cron_jobs FROM cron.job WHERE jobname LIKE 'fleet.%';

-- Clean up the planted objects, then install for the following tests.
DROP FUNCTION public.now();
DROP OPERATOR public.= (text, text);
DROP FUNCTION public.always_true(text, text);
DROP FUNCTION public.length(text);
DROP FUNCTION public.current_tenant();
DROP TABLE public.tenant, public.role_grant;
RESET search_path;
REVOKE CREATE ON SCHEMA public FROM mallory;
CREATE EXTENSION fleet CASCADE;
