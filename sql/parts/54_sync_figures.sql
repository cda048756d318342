-- 54_sync_figures: how offline sync is doing, per tenant.
--
-- fleet.sync_figures(from, to): per workflow (and for all of them) over the
-- mutations processed in the range: conflict, duplicate and reject rates,
-- latency from the device's clock to the server's decision (percentiles),
-- and the share of offline writes reconciled within the target window.
-- fleet.sync_backlog(): per client, what the server holds that the app has
-- not pulled yet, its unreconciled writes and open review items.

CREATE FUNCTION fleet.sync_figures(from_time timestamptz, to_time timestamptz)
RETURNS TABLE (workflow text, mutations bigint, received bigint, applied bigint, merged bigint, rejected bigint,
	duplicates bigint, conflict_rate numeric, duplicate_rate numeric, reject_rate numeric,
	latency_p50 interval, latency_p90 interval, latency_p99 interval, reconciled_within_target numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH m AS (
		SELECT x.workflow, x.result, x.conflict_id, x.duplicates, x.client_time, x.applied_at, x.reconciled_at
		  FROM fleet.sync_mutation x
		 WHERE x.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant()
		   AND x.applied_at OPERATOR(pg_catalog.>=) sync_figures.from_time AND x.applied_at OPERATOR(pg_catalog.<) sync_figures.to_time),
	t AS (SELECT s.target_window FROM fleet.sync_setting s)
	SELECT COALESCE(m.workflow, 'all'),
	       pg_catalog.count(*),
	       pg_catalog.count(*) OPERATOR(pg_catalog.+) COALESCE(pg_catalog.sum(m.duplicates), 0),
	       pg_catalog.count(*) FILTER (WHERE m.result OPERATOR(pg_catalog.=) 'applied'),
	       pg_catalog.count(*) FILTER (WHERE m.result OPERATOR(pg_catalog.=) 'merged'),
	       pg_catalog.count(*) FILTER (WHERE m.result OPERATOR(pg_catalog.=) 'rejected'),
	       COALESCE(pg_catalog.sum(m.duplicates), 0)::bigint,
	       pg_catalog.round(pg_catalog.count(m.conflict_id)::numeric OPERATOR(pg_catalog./) NULLIF(pg_catalog.count(*), 0), 4),
	       pg_catalog.round(pg_catalog.sum(m.duplicates)::numeric OPERATOR(pg_catalog./) NULLIF(pg_catalog.count(*) OPERATOR(pg_catalog.+) pg_catalog.sum(m.duplicates), 0), 4),
	       pg_catalog.round((pg_catalog.count(*) FILTER (WHERE m.result OPERATOR(pg_catalog.=) 'rejected'))::numeric OPERATOR(pg_catalog./) NULLIF(pg_catalog.count(*), 0), 4),
	       pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN fleet.time_is_usable(m.client_time) THEN m.applied_at OPERATOR(pg_catalog.-) m.client_time END),
	       pg_catalog.percentile_cont(0.9) WITHIN GROUP (ORDER BY CASE WHEN fleet.time_is_usable(m.client_time) THEN m.applied_at OPERATOR(pg_catalog.-) m.client_time END),
	       pg_catalog.percentile_cont(0.99) WITHIN GROUP (ORDER BY CASE WHEN fleet.time_is_usable(m.client_time) THEN m.applied_at OPERATOR(pg_catalog.-) m.client_time END),
	       pg_catalog.round((pg_catalog.count(*) FILTER (
	           WHERE m.reconciled_at IS NOT NULL
	             AND CASE WHEN fleet.time_is_usable(m.client_time) THEN m.reconciled_at OPERATOR(pg_catalog.-) m.client_time END
	                 OPERATOR(pg_catalog.<=) (SELECT t.target_window FROM t)))::numeric
	           OPERATOR(pg_catalog./) NULLIF(pg_catalog.count(m.client_time) FILTER (WHERE fleet.time_is_usable(m.client_time)), 0), 4)
	  FROM m
	 GROUP BY GROUPING SETS ((m.workflow), ())
	HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0
	 ORDER BY GROUPING(m.workflow), 1
$$;
COMMENT ON FUNCTION fleet.sync_figures(timestamptz, timestamptz) IS
	'Sync figures of the current tenant for mutations processed in [from_time, to_time), per workflow and for all ("all"): counts, conflict rate (conflicts per mutation), duplicate rate (duplicate receipts per receipt), reject rate, latency from client time to the decision (p50, p90, p99) and the share of writes with a client time reconciled within fleet.sync_setting.target_window';

CREATE FUNCTION fleet.sync_backlog()
RETURNS TABLE (client_id uuid, driver_id bigint, active boolean, last_mutation_id bigint, last_push_at timestamptz,
	last_pull_at timestamptz, unpulled_changes bigint, unreconciled_writes bigint, open_reviews bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.client_id, c.driver_id, c.active, c.last_mutation_id, c.last_push_at, c.last_pull_at,
	       (SELECT pg_catalog.count(*) FROM fleet.sync_change x
	         WHERE x.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND x.driver_id OPERATOR(pg_catalog.=) c.driver_id
	           AND (c.pull_txid IS NULL OR ROW(x.txid, x.change_id) OPERATOR(pg_catalog.>) ROW(c.pull_txid, c.pull_change))),
	       (SELECT pg_catalog.count(*) FROM fleet.sync_mutation m
	         WHERE m.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND m.client_id OPERATOR(pg_catalog.=) c.client_id AND m.reconciled_at IS NULL),
	       (SELECT pg_catalog.count(*) FROM fleet.sync_review v
	         WHERE v.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND v.driver_id OPERATOR(pg_catalog.=) c.driver_id AND v.status OPERATOR(pg_catalog.=) 'open')
	  FROM fleet.sync_client c
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant()
	 ORDER BY c.client_id
$$;
COMMENT ON FUNCTION fleet.sync_backlog() IS
	'Backlog per driver app of the current tenant: change-log rows for its driver beyond its last pull (all of them if it never pulled), its writes not yet reconciled and its driver''s open review items';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'FUNCTION', 'fleet.sync_figures(timestamptz,timestamptz)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.sync_figures(timestamptz,timestamptz)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_figures(timestamptz,timestamptz)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_backlog()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.sync_backlog()', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_backlog()', 'EXECUTE');
