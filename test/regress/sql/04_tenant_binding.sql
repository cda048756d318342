-- Logins bound to their tenants (fleet.login_tenant), and the functions that
-- answer per tenant: for the caller's tenant context only, across tenants
-- for the DBA (and, for metrics, pg_monitor members); the documented grants
-- of health, verify_ledger and quarantine_replay work for their roles.
\set VERBOSITY sqlstate
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset
SELECT tenant_id AS south FROM fleet.tenant WHERE name = 'South Haulage' \gset
CREATE ROLE regress_bound LOGIN IN ROLE fleet_app;
CREATE ROLE regress_free LOGIN IN ROLE fleet_app;
CREATE ROLE regress_keeper LOGIN IN ROLE fleet_admin;
CREATE ROLE regress_analyst LOGIN IN ROLE fleet_analyst;
CREATE ROLE regress_monitor LOGIN IN ROLE fleet_analyst, pg_monitor;
-- a pooler: one unbound login that SETs ROLE to per-tenant roles
CREATE ROLE regress_north_role NOLOGIN IN ROLE fleet_app;
CREATE ROLE regress_pool LOGIN;
GRANT regress_north_role TO regress_pool;

-- 1. Unbound, a login acts for any active tenant (today's rule).
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:north) = :north AS unbound_north, fleet.set_tenant(:south) = :south AS unbound_south;
-- only fleet_admin keeps bindings
SELECT fleet.bind_login('regress_bound', :north);
SELECT * FROM fleet.login_tenant;
RESET SESSION AUTHORIZATION;

-- 2. fleet_admin binds the login to North.
SET SESSION AUTHORIZATION regress_keeper;
SELECT fleet.bind_login('regress_bound', :north) AS bound;
SELECT fleet.bind_login('regress_bound', :north) AS bound_again;
SELECT fleet.bind_login('regress_bound', 999999);
SELECT fleet.bind_login('regress_bound', NULL);
SELECT fleet.bind_login(NULL, :north);
SELECT fleet.bind_login('regress_nobody', :north);
SELECT login, tenant_id = :north AS north, bound_by FROM fleet.login_tenant ORDER BY 1, 2;
RESET SESSION AUTHORIZATION;

-- 3. Bound: North only.  Another tenant, existing or not, is 42501 (no
-- 42704 that would tell which tenant ids exist); the context is unchanged.
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:north) = :north AS bound_north;
SELECT fleet.set_tenant(:south);
SELECT fleet.set_tenant(999999);
SELECT fleet.set_tenant(:south, true);
SELECT fleet.current_tenant() = :north AS still_north;
-- SET ROLE to an unbound role does not shed the login's binding
SET ROLE fleet_app;
SELECT fleet.set_tenant(:south);
RESET ROLE;
-- the login cannot unbind itself nor touch the bindings
SELECT fleet.unbind_login('regress_bound');
DELETE FROM fleet.login_tenant;
SELECT count(*) FROM fleet.login_tenant;
RESET SESSION AUTHORIZATION;
\set VERBOSITY default
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:south);
RESET SESSION AUTHORIZATION;
\set VERBOSITY sqlstate

-- 4. Binding changes apply to the next fleet.set_tenant() of a session
-- already open.
SET SESSION AUTHORIZATION regress_keeper;
SELECT fleet.bind_login('regress_bound', :south) AS bound_south;
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:south) = :south AS now_south;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_keeper;
SELECT fleet.unbind_login('regress_bound', :south) AS unbound;
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:south);
RESET SESSION AUTHORIZATION;

-- 5. Other logins are not affected.
SET SESSION AUTHORIZATION regress_free;
SELECT fleet.set_tenant(:south) = :south AS free_south, fleet.set_tenant(:north) = :north AS free_north;
RESET SESSION AUTHORIZATION;

-- 6. A pooler's unbound login SET ROLE-ing to a bound role is held to the
-- role's tenants while it acts as that role.
SET SESSION AUTHORIZATION regress_keeper;
SELECT fleet.bind_login('regress_north_role', :north) AS bound_role;
SET SESSION AUTHORIZATION regress_pool;
SET ROLE regress_north_role;
SELECT fleet.set_tenant(:north) = :north AS role_north;
SELECT fleet.set_tenant(:south);
RESET ROLE;
SELECT fleet.clear_tenant();
RESET SESSION AUTHORIZATION;

-- 7. The last binding removed: the login is unbound again.
SET SESSION AUTHORIZATION regress_keeper;
SELECT fleet.unbind_login('regress_bound') AS removed;
SELECT fleet.unbind_login('regress_north_role') AS removed_role;
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:south) = :south AS unbound_again;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS bindings_left FROM fleet.login_tenant;

-- 8. Legal holds: a tenant role asks about its own tenant only.
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.set_tenant(:north) = :north AS north;
SELECT fleet.row_held('fleet.position', :north, NULL, '-infinity', 'infinity') AS own_tenant;
SELECT fleet.row_held('fleet.position', NULL, NULL, '-infinity', 'infinity') AS any_visible;
SELECT fleet.row_held('fleet.position', :south, NULL, '-infinity', 'infinity');
SELECT fleet.clear_tenant();
SELECT fleet.row_held('fleet.position', :south, NULL, '-infinity', 'infinity');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_keeper;
SELECT fleet.set_tenant(:north) = :north AS north;
SELECT fleet.row_held('fleet.position', :south, NULL, '-infinity', 'infinity') AS admin_any_tenant;
RESET SESSION AUTHORIZATION;

-- 9. Metrics: series labelled with a tenant only for the caller's tenant
-- context; every tenant's for the DBA and pg_monitor members.
INSERT INTO fleet.dead_letter (tenant_id, event_id, logged_at, class, kind, attempts, error, sqlstate, history)
VALUES (:north, -1, now(), 'operational', 'stop.status', 8, 'handler failed', 'P0001', '[]'),
       (:south, -2, now(), 'operational', 'stop.status', 8, 'handler failed', 'P0001', '[]'),
       (:south, -3, now(), 'operational', 'stop.status', 8, 'handler failed', 'P0001', '[]');
CREATE TEMP VIEW tenant_series AS
SELECT CASE (labels ->> 'tenant')::bigint WHEN :north THEN 'north' WHEN :south THEN 'south' END AS tenant, value
  FROM fleet.metrics() WHERE name = 'fleet_dead_letters';
GRANT SELECT ON tenant_series TO PUBLIC;
SELECT 'dba' AS who, * FROM tenant_series ORDER BY 2;
SET SESSION AUTHORIZATION regress_bound;
SELECT fleet.clear_tenant();
SELECT 'app, no context' AS who, * FROM tenant_series ORDER BY 2;
SELECT fleet.set_tenant(:north) = :north AS north;
SELECT 'app, north' AS who, * FROM tenant_series ORDER BY 2;
SELECT fleet.set_tenant(:south) = :south AS south;
SELECT 'app, south' AS who, * FROM tenant_series ORDER BY 2;
-- a tenant's health counts its own dead letters
SELECT count(*) AS workflows FROM fleet.health();
SELECT workflow, state FROM fleet.workflow_health WHERE workflow = 'driver_capture';
SELECT fleet.clear_tenant();
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_monitor;
SELECT 'pg_monitor' AS who, * FROM tenant_series ORDER BY 2;
RESET SESSION AUTHORIZATION;
-- SET ROLE counts, as for bindings: the DBA acting as fleet_app is a tenant role
SET ROLE fleet_app;
SELECT 'set role fleet_app' AS who, * FROM tenant_series ORDER BY 2;
RESET ROLE;
DELETE FROM fleet.dead_letter WHERE event_id IN (-1, -2, -3);

-- 10. The documented grants work for their roles.
SET SESSION AUTHORIZATION regress_analyst;
SELECT fleet.set_tenant(:north) = :north AS north;
SELECT ok, problem FROM fleet.verify_ledger();
SELECT count(*) AS workflows FROM fleet.workflow_health;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_keeper;
SELECT ok, problem FROM fleet.verify_ledger();
SELECT count(*) AS workflows FROM fleet.health();
-- quarantine_replay: the tenant context's fixes; without one, the DBA's only
SELECT fleet.set_tenant(:north) = :north AS north;
SELECT replayed, remaining FROM fleet.quarantine_replay();
SELECT fleet.clear_tenant();
SELECT replayed, remaining FROM fleet.quarantine_replay();
RESET SESSION AUTHORIZATION;
SELECT replayed, remaining FROM fleet.quarantine_replay();
-- is_dba() is the session's role, not the SECURITY DEFINER owner's
SELECT fleet.is_dba() AS dba, fleet.sees_all_tenants() AS sees_all;
SET ROLE fleet_admin;
SELECT fleet.is_dba() AS dba, fleet.sees_all_tenants() AS sees_all, fleet.session_role() AS session_role;
RESET ROLE;

DROP VIEW tenant_series;
DROP ROLE regress_bound, regress_free, regress_keeper, regress_analyst, regress_monitor, regress_pool, regress_north_role;
