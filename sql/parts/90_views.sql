-- 90_views: relations for analysts and apps over the domain tables.
--
-- Every view in schema fleet is created WITH (security_invoker = true), so
-- the row-level security of the underlying tables applies to whoever reads
-- the view, not to the view's owner (which would bypass it).

CREATE VIEW fleet.stop_board WITH (security_invoker = true) AS
SELECT s.tenant_id, j.code AS job_code, s.seq, s.stop_id, s.kind, s.status,
       d.code AS driver_code, s.window_start, s.window_end, s.arrived_at, s.completed_at,
       (SELECT pg_catalog.count(*) FROM fleet.proof_of_delivery p
         WHERE p.tenant_id OPERATOR(pg_catalog.=) s.tenant_id
           AND p.stop_id OPERATOR(pg_catalog.=) s.stop_id) AS evidence_count
  FROM fleet.stop s
  JOIN fleet.job j ON j.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND j.job_id OPERATOR(pg_catalog.=) s.job_id
  LEFT JOIN fleet.driver d ON d.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND d.driver_id OPERATOR(pg_catalog.=) s.driver_id;
COMMENT ON VIEW fleet.stop_board IS 'Stops with their job, driver and evidence count, for dispatch and analysts (tenant-isolated)';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.stop_board', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.stop_board', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.stop_board', 'SELECT');
