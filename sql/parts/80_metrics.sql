-- 80_metrics: every fleet metric as rows, health per workflow.
--
-- fleet.metrics() returns one row per series -- name, labels (a flat JSON
-- object of strings), value, type (counter or gauge) and help -- which maps
-- one-to-one onto the Prometheus text format (services/common/dbmetrics.c
-- renders it on the services' /metrics).  It must stay cheap enough to be
-- scraped every few seconds, so no source scans a big table: counters kept
-- by fleet itself (fleet.consumer_cursor, fleet.pipeline_stat, view
-- registry), catalog statistics (pg_class, pg_stat_user_tables,
-- pg_inherits), small operational tables (retries, dead letters, findings)
-- and index range scans bounded in time or by a cap.
--
-- The rows come from the functions listed in fleet.metric_source, one per
-- concern, so a new subsystem (tiered storage, say) adds its metrics by
-- adding a function and a row.
--
-- fleet.health() turns metrics into a state per workflow (dispatch,
-- driver_capture, billing, integrations, analytics): ok, degraded or
-- critical, with the reasons, from the rules in fleet.health_threshold.
-- fleet.workflow_health is the same as a view for analysts.
--
-- Services report what only they know (journal depth, per-integration call
-- outcomes) with fleet.report_service_metrics(); fleet.metrics() includes
-- recent reports and derives per-integration error ratios from them.

-- ------------------------------------------------------------ settings

CREATE TABLE fleet.metric_setting (
	id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
	backlog_cap          integer NOT NULL DEFAULT 100000 CHECK (backlog_cap >= 1),
	recent_window        interval NOT NULL DEFAULT '15 minutes' CHECK (recent_window > '0'::interval),
	lag_window           interval NOT NULL DEFAULT '15 minutes' CHECK (lag_window > '0'::interval),
	report_max_age       interval NOT NULL DEFAULT '5 minutes' CHECK (report_max_age > '0'::interval),
	integration_interval interval NOT NULL DEFAULT '1 minute' CHECK (integration_interval >= '0'::interval)
);
COMMENT ON TABLE fleet.metric_setting IS
	'Settings of fleet.metrics(): backlog counts stop at backlog_cap (the metric then reads the cap), "recent" counts cover recent_window, lag percentiles lag_window, service reports older than report_max_age are left out, and per-integration error ratios compare reports at least integration_interval apart';
INSERT INTO fleet.metric_setting DEFAULT VALUES;

CREATE TABLE fleet.view_workflow (
	relation regclass PRIMARY KEY,
	workflow text NOT NULL CHECK (workflow = ANY (ARRAY['dispatch', 'driver_capture', 'billing', 'integrations', 'analytics']))
);
COMMENT ON TABLE fleet.view_workflow IS
	'Which workflow a fleet view serves (for its age metric and for fleet.health()); a view not listed serves analytics';
INSERT INTO fleet.view_workflow (relation, workflow)
SELECT r.relation, w.workflow
  FROM (VALUES ('fleet.vehicle_last_position', 'dispatch'), ('fleet.customer_daily_billing', 'billing')) w(rel, workflow)
  JOIN fleet.view_registry r ON r.relation = pg_catalog.to_regclass(w.rel);

-- ---------------------------------------------------- pipeline counters

CREATE TABLE fleet.pipeline_stat (
	class                text PRIMARY KEY REFERENCES fleet.event_class (class),
	passes               bigint NOT NULL DEFAULT 0,
	last_pass_at         timestamptz,
	last_event_logged_at timestamptz
);
COMMENT ON TABLE fleet.pipeline_stat IS
	'Per class, kept by each consumer pass (extension/pipeline.c, in the pass''s transaction): consumer passes that applied events, when the last one ran and the log time of the newest event it applied';
INSERT INTO fleet.pipeline_stat (class) SELECT c.class FROM fleet.event_class c;

CREATE TABLE fleet.pipeline_lag (
	class      text NOT NULL REFERENCES fleet.event_class (class),
	slot       integer NOT NULL CHECK (slot >= 0 AND slot < 256),
	sampled_at timestamptz NOT NULL,
	lag_first  double precision NOT NULL,
	lag_last   double precision NOT NULL,
	PRIMARY KEY (class, slot)
);
COMMENT ON TABLE fleet.pipeline_lag IS
	'Ring of the last 256 consumer passes per class: seconds from logging to applying of the first (oldest) and the last (newest) event of each pass; fleet.metrics() takes lag percentiles from it';

-- ------------------------------------------------------- service reports

CREATE TABLE fleet.service_report (
	service     text NOT NULL CHECK (service ~ '^[a-z][a-z0-9_-]{0,62}$'),
	instance    text NOT NULL CHECK (length(instance) BETWEEN 1 AND 200),
	name        text NOT NULL CHECK (name ~ '^[a-z_][a-z0-9_]{0,127}$'),
	labels      jsonb NOT NULL DEFAULT '{}',
	value       double precision NOT NULL,
	prev_value  double precision,
	prev_at     timestamptz,
	reported_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (service, instance, name, labels)
);
COMMENT ON TABLE fleet.service_report IS
	'Figures the services report about themselves (journal depth, per-integration calls): latest value per series, and the value it had at least fleet.metric_setting.integration_interval earlier (prev_value, prev_at) for rates. Written only by fleet.report_service_metrics().';

CREATE FUNCTION fleet.report_service_metrics(service text, instance text, metrics jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: services (fleet_ingest, fleet_app) report their own
-- figures without any privilege on fleet.service_report itself, so they can
-- neither read nor rewrite other services' rows; every value is checked
-- here.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_m     jsonb;
	v_n     integer := 0;
	v_val   double precision;
	v_every interval := (SELECT s.integration_interval FROM fleet.metric_setting s);
BEGIN
	IF service IS NULL OR service !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid service name "%"', service
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Service names are lower-case, such as fleet-gateway.';
	END IF;
	IF instance IS NULL OR length(instance) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'instance must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF metrics IS NULL OR jsonb_typeof(metrics) <> 'array' THEN
		RAISE EXCEPTION 'metrics must be a JSON array of {"name", "labels", "value"}'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF jsonb_array_length(metrics) > 1000 THEN
		RAISE EXCEPTION 'at most 1000 series per report, got %', jsonb_array_length(metrics)
			USING ERRCODE = 'program_limit_exceeded';
	END IF;
	FOR v_m IN SELECT x FROM jsonb_array_elements(metrics) x LOOP
		IF jsonb_typeof(v_m) <> 'object' OR jsonb_typeof(v_m -> 'name') IS DISTINCT FROM 'string'
		   OR (v_m ->> 'name') !~ '^[a-z_][a-z0-9_]{0,127}$' THEN
			RAISE EXCEPTION 'invalid series %', v_m
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'Each series is {"name": "[a-z_][a-z0-9_]*", "labels": {"k": "v"}, "value": number}.';
		END IF;
		IF jsonb_typeof(v_m -> 'value') IS DISTINCT FROM 'number' THEN
			RAISE EXCEPTION 'series % has no numeric value', v_m ->> 'name' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		v_val := (v_m ->> 'value')::double precision;
		IF v_m ? 'labels' AND (jsonb_typeof(v_m -> 'labels') <> 'object'
		   OR EXISTS (SELECT 1 FROM jsonb_each(v_m -> 'labels') l
		               WHERE l.key !~ '^[a-z_][a-z0-9_]{0,62}$' OR l.key IN ('service', 'instance')
		                  OR jsonb_typeof(l.value) <> 'string' OR length(l.value #>> '{}') > 200)) THEN
			RAISE EXCEPTION 'series % has invalid labels %', v_m ->> 'name', v_m -> 'labels'
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'Labels are an object of [a-z_][a-z0-9_]* names (not service or instance) to strings of at most 200 characters.';
		END IF;
		INSERT INTO fleet.service_report AS r (service, instance, name, labels, value, reported_at)
		VALUES (report_service_metrics.service, report_service_metrics.instance, v_m ->> 'name',
		        COALESCE(v_m -> 'labels', '{}'), v_val, clock_timestamp())
		ON CONFLICT ON CONSTRAINT service_report_pkey DO UPDATE
		   SET value = EXCLUDED.value, reported_at = EXCLUDED.reported_at,
		       prev_value = CASE WHEN r.prev_at IS NULL OR EXCLUDED.reported_at - r.reported_at >= v_every
		                              OR r.reported_at - r.prev_at >= v_every
		                         THEN r.value ELSE r.prev_value END,
		       prev_at = CASE WHEN r.prev_at IS NULL OR EXCLUDED.reported_at - r.reported_at >= v_every
		                           OR r.reported_at - r.prev_at >= v_every
		                      THEN r.reported_at ELSE r.prev_at END;
		v_n := v_n + 1;
	END LOOP;
	-- a service instance that stopped reporting a day ago is gone
	DELETE FROM fleet.service_report r WHERE r.reported_at < clock_timestamp() - interval '1 day';
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION fleet.report_service_metrics(text, text, jsonb) IS
	'A service reports figures only it knows: [{"name", "labels", "value"}] (at most 1000). fleet.metrics() republishes recent reports as fleet_service_<name>{service, instance, ...} and derives fleet_integration_error_ratio from integration_calls_total{integration, result="ok"|"error"}. Returns the number of series stored.';

-- ------------------------------------------------------- metric sources

CREATE TABLE fleet.metric_source (
	source      text PRIMARY KEY,
	fn          regprocedure NOT NULL,
	description text NOT NULL
);
COMMENT ON TABLE fleet.metric_source IS
	'The functions fleet.metrics() concatenates, one per concern; each takes no argument and returns TABLE (name text, labels jsonb, value double precision, type text, help text)';

CREATE FUNCTION fleet.metrics_pipeline()
RETURNS TABLE (name text, labels jsonb, value double precision, type text, help text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH s AS (SELECT * FROM fleet.metric_setting),
	c AS (
		SELECT cc.class, cc.lo, cc.events, cc.batches, ps.last_event_logged_at, ps.passes,
		       (SELECT count(*) FROM (
		            SELECT 1 FROM fleet.event_log e
		             WHERE e.class = cc.class AND e.txid >= pg_snapshot_xmin(cc.lo)
		               AND NOT pg_visible_in_snapshot(e.txid, cc.lo)
		             LIMIT (SELECT s.backlog_cap FROM s)) x) AS backlog,
		       (SELECT e.logged_at FROM fleet.event_log e
		         WHERE e.class = cc.class AND e.txid >= pg_snapshot_xmin(cc.lo)
		           AND NOT pg_visible_in_snapshot(e.txid, cc.lo)
		         ORDER BY e.txid, e.event_id LIMIT 1) AS oldest_pending
		  FROM fleet.consumer_cursor cc
		  LEFT JOIN fleet.pipeline_stat ps ON ps.class = cc.class),
	lag AS (
		SELECT l.class, p.pct,
		       percentile_cont(p.pct / 100.0) WITHIN GROUP (ORDER BY v.lag) AS lag
		  FROM fleet.pipeline_lag l
		  CROSS JOIN LATERAL (VALUES (l.lag_first), (l.lag_last)) v(lag)
		  CROSS JOIN (VALUES (50), (90), (99)) p(pct)
		 WHERE l.sampled_at >= now() - (SELECT s.lag_window FROM s)
		 GROUP BY l.class, p.pct)
	SELECT 'fleet_event_backlog', jsonb_build_object('class', c.class), c.backlog::float8, 'gauge',
	       'Events logged and not yet consumed, per class (stops counting at fleet.metric_setting.backlog_cap)'
	  FROM c
	UNION ALL
	SELECT 'fleet_event_backlog_oldest_seconds', jsonb_build_object('class', c.class),
	       COALESCE(extract(epoch FROM now() - c.oldest_pending), 0)::float8, 'gauge',
	       'How long the oldest event not yet consumed has waited, per class (0: nothing waits)'
	  FROM c
	UNION ALL
	SELECT 'fleet_event_age_seconds', jsonb_build_object('class', c.class),
	       extract(epoch FROM now() - c.last_event_logged_at)::float8, 'gauge',
	       'Now minus the log time of the newest event consumed, per class'
	  FROM c WHERE c.last_event_logged_at IS NOT NULL
	UNION ALL
	SELECT 'fleet_pipeline_events_total', jsonb_build_object('class', c.class), c.events::float8, 'counter',
	       'Events consumed (new events, not retries), per class' FROM c
	UNION ALL
	SELECT 'fleet_pipeline_batches_total', jsonb_build_object('class', c.class), c.batches::float8, 'counter',
	       'Batches completed by the consumer, per class' FROM c
	UNION ALL
	SELECT 'fleet_pipeline_lag_seconds', jsonb_build_object('class', lag.class, 'percentile', lag.pct::text),
	       lag.lag, 'gauge',
	       'Seconds from logging to applying an event, percentiles over the first and last event of recent consumer passes'
	  FROM lag
	UNION ALL
	SELECT 'fleet_event_retries', jsonb_build_object('tenant', r.tenant_id::text, 'class', r.class),
	       count(*)::float8, 'gauge', 'Events waiting for another attempt after their handler failed'
	  FROM fleet.event_retry r GROUP BY r.tenant_id, r.class
	UNION ALL
	SELECT 'fleet_event_retry_attempts', jsonb_build_object('tenant', r.tenant_id::text, 'class', r.class),
	       sum(r.attempts)::float8, 'gauge', 'Failed attempts so far of the events waiting for a retry'
	  FROM fleet.event_retry r GROUP BY r.tenant_id, r.class
	UNION ALL
	SELECT 'fleet_dead_letters', jsonb_build_object('tenant', d.tenant_id::text, 'class', d.class, 'kind', d.kind),
	       count(*)::float8, 'gauge', 'Events whose handler failed every attempt, waiting for a fix and fleet.requeue_dead_letters()'
	  FROM fleet.dead_letter d GROUP BY d.tenant_id, d.class, d.kind
	UNION ALL
	SELECT 'fleet_dead_letters_recent', jsonb_build_object('class', k.class),
	       (SELECT count(*) FROM fleet.dead_letter d
	         WHERE d.class = k.class AND d.died_at >= now() - (SELECT s.recent_window FROM s))::float8, 'gauge',
	       'Events dead-lettered within fleet.metric_setting.recent_window, per class'
	  FROM fleet.event_class k
	UNION ALL
	SELECT 'fleet_event_conflicts_recent', jsonb_build_object('tenant', x.tenant_id::text),
	       count(*)::float8, 'gauge', 'Events refused within the recent window because their idempotency key came with a different payload'
	  FROM fleet.event_conflict x
	 WHERE x.received_at >= now() - (SELECT s.recent_window FROM s)
	 GROUP BY x.tenant_id
$$;
COMMENT ON FUNCTION fleet.metrics_pipeline() IS 'Metric source: backlog, event age, lag percentiles, retries, dead letters and event conflicts per class';

CREATE FUNCTION fleet.metrics_sync()
RETURNS TABLE (name text, labels jsonb, value double precision, type text, help text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH s AS (SELECT * FROM fleet.metric_setting),
	m AS (
		SELECT t.tenant_id, x.*
		  FROM fleet.tenant t
		 CROSS JOIN LATERAL (
		       SELECT count(*) AS mutations,
		              count(*) FILTER (WHERE y.result = 'rejected') AS rejected,
		              count(y.conflict_id) AS conflicts,
		              COALESCE(sum(y.duplicates), 0) AS duplicates,
		              count(y.client_time) FILTER (WHERE fleet.time_is_usable(y.client_time)) AS timed,
		              count(*) FILTER (WHERE y.reconciled_at IS NOT NULL
		                                 AND CASE WHEN fleet.time_is_usable(y.client_time)
		                                          THEN y.reconciled_at - y.client_time END
		                                     <= (SELECT ss.target_window FROM fleet.sync_setting ss))
		                  AS in_target
		         FROM fleet.sync_mutation y
		        WHERE y.tenant_id = t.tenant_id AND y.applied_at >= now() - (SELECT s.recent_window FROM s)) x
		 WHERE x.mutations > 0)
	SELECT 'fleet_sync_mutations_recent', jsonb_build_object('tenant', m.tenant_id::text), m.mutations::float8, 'gauge',
	       'Driver-app mutations decided within the recent window' FROM m
	UNION ALL
	SELECT 'fleet_sync_conflict_ratio', jsonb_build_object('tenant', m.tenant_id::text),
	       m.conflicts::float8 / m.mutations, 'gauge', 'Share of recent mutations that met a conflict' FROM m
	UNION ALL
	SELECT 'fleet_sync_duplicate_ratio', jsonb_build_object('tenant', m.tenant_id::text),
	       m.duplicates::float8 / (m.mutations + m.duplicates), 'gauge',
	       'Share of recent pushes that repeated an already decided mutation' FROM m
	UNION ALL
	SELECT 'fleet_sync_reject_ratio', jsonb_build_object('tenant', m.tenant_id::text),
	       m.rejected::float8 / m.mutations, 'gauge', 'Share of recent mutations rejected' FROM m
	UNION ALL
	SELECT 'fleet_sync_reconciled_in_target_ratio', jsonb_build_object('tenant', m.tenant_id::text),
	       m.in_target::float8 / m.timed, 'gauge',
	       'Share of recent offline writes reconciled within fleet.sync_setting.target_window of the device''s clock'
	  FROM m WHERE m.timed > 0
	UNION ALL
	SELECT 'fleet_reconcile_findings', jsonb_build_object('tenant', f.tenant_id::text, 'kind', f.kind),
	       count(*)::float8, 'gauge', 'Reconciliation findings not repaired, by kind'
	  FROM fleet.sync_finding f WHERE f.repaired_at IS NULL GROUP BY f.tenant_id, f.kind
	UNION ALL
	SELECT 'fleet_sync_open_reviews', jsonb_build_object('tenant', v.tenant_id::text),
	       count(*)::float8, 'gauge', 'Sync conflicts waiting for a dispatcher''s review'
	  FROM fleet.sync_review v WHERE v.status = 'open' GROUP BY v.tenant_id
$$;
COMMENT ON FUNCTION fleet.metrics_sync() IS
	'Metric source: recent driver-app sync conflict, duplicate and reject ratios, share reconciled within the target window, open reviews and reconciliation findings per tenant (index range scans over the recent window)';

CREATE FUNCTION fleet.metrics_views()
RETURNS TABLE (name text, labels jsonb, value double precision, type text, help text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH v AS (
		SELECT r.relation::text AS view, COALESCE(w.workflow, 'analytics') AS workflow,
		       extract(epoch FROM clock_timestamp() - r.as_of)::float8 AS age,
		       extract(epoch FROM r.max_staleness)::float8 AS bound, r.bound_misses, r.refreshes, r.enabled,
		       (r.last_error_at IS NOT NULL AND (r.last_refresh_at IS NULL OR r.last_error_at > r.last_refresh_at)) AS failing
		  FROM fleet.view_registry r LEFT JOIN fleet.view_workflow w ON w.relation = r.relation)
	SELECT 'fleet_view_age_seconds', jsonb_build_object('view', v.view, 'workflow', v.workflow),
	       COALESCE(v.age, 'Infinity'::float8), 'gauge', 'Age of each fleet view (now minus its as_of watermark; +Inf before its first build)' FROM v
	UNION ALL
	SELECT 'fleet_view_bound_seconds', jsonb_build_object('view', v.view, 'workflow', v.workflow), v.bound, 'gauge',
	       'The staleness bound of each fleet view' FROM v
	UNION ALL
	SELECT 'fleet_view_age_ratio', jsonb_build_object('view', v.view, 'workflow', v.workflow),
	       COALESCE(v.age / v.bound, 'Infinity'::float8), 'gauge',
	       'Age of each enabled fleet view divided by its bound (above 1: late)' FROM v WHERE v.enabled
	UNION ALL
	SELECT 'fleet_view_bound_misses_total', jsonb_build_object('view', v.view, 'workflow', v.workflow),
	       v.bound_misses::float8, 'counter', 'Refreshes that found the view already older than its bound' FROM v
	UNION ALL
	SELECT 'fleet_view_refreshes_total', jsonb_build_object('view', v.view, 'workflow', v.workflow),
	       v.refreshes::float8, 'counter', 'Refreshes of each fleet view' FROM v
	UNION ALL
	SELECT 'fleet_view_failing', jsonb_build_object('view', v.view, 'workflow', v.workflow),
	       CASE WHEN v.failing THEN 1 ELSE 0 END::float8, 'gauge', '1 when the last refresh attempt of the view failed' FROM v
$$;
COMMENT ON FUNCTION fleet.metrics_views() IS 'Metric source: age, bound and age/bound ratio, misses, refreshes and failures of every fleet view';

CREATE FUNCTION fleet.metrics_storage()
RETURNS TABLE (name text, labels jsonb, value double precision, type text, help text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off	-- a few catalog rows; compiling the plan would cost seconds
AS $$
	WITH p AS (
		-- every partition with its range, whatever the table's partition interval
		SELECT t.relation, d.partition, d.lo, d.hi
		  FROM fleet.partitioned_table t CROSS JOIN LATERAL fleet.time_partitions(t.relation) d),
	tn AS (SELECT t.relation, c.relname::text AS rel
	         FROM fleet.partitioned_table t JOIN pg_class c ON c.oid = t.relation),
	today AS (SELECT (now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' AS ts)
	-- A partition is hot unless fleet.tier_state says otherwise; cold
	-- partitions are detached and gone, only their row in fleet.tier_state is left.
	SELECT 'fleet_partitions', jsonb_build_object('table', x.rel, 'tier', x.tier), count(*)::float8, 'gauge',
	       'Partitions per table and storage tier (cold: partitions packed into fleet.cold_segment)'
	  FROM (SELECT tn.rel, COALESCE(s.tier, 'hot') AS tier
	          FROM p JOIN tn ON tn.relation = p.relation
	          LEFT JOIN fleet.tier_state s ON s.relation = p.relation AND s.lo = p.lo
	        UNION ALL
	        SELECT tn.rel, s.tier FROM fleet.tier_state s JOIN tn ON tn.relation = s.relation
	         WHERE s.tier = 'cold') x
	 GROUP BY x.rel, x.tier
	UNION ALL
	SELECT 'fleet_tier_oldest_hot_seconds', jsonb_build_object('table', tn.rel),
	       COALESCE(extract(epoch FROM (SELECT today.ts FROM today) - min(p.lo)), 0)::float8, 'gauge',
	       'Age of the oldest day whose partition is still hot, in seconds (above the policy''s hot period: tier maintenance is behind)'
	  FROM p JOIN tn ON tn.relation = p.relation
	  LEFT JOIN fleet.tier_state s ON s.relation = p.relation AND s.lo = p.lo
	 WHERE s.tier IS NULL AND p.lo < (SELECT today.ts FROM today)
	 GROUP BY tn.rel
	UNION ALL
	SELECT 'fleet_tier_swap_lock_seconds', jsonb_build_object('table', tn.rel),
	       max(s.lock_ms) / 1000.0, 'gauge',
	       'Longest time a hot-to-warm swap held the parent table''s lock, over the partitions now warm or cold'
	  FROM fleet.tier_state s JOIN tn ON tn.relation = s.relation WHERE s.lock_ms IS NOT NULL GROUP BY tn.rel
	UNION ALL
	SELECT 'fleet_quarantine_rows', jsonb_build_object('table', 'position'),
	       pg_stat_get_live_tuples('fleet.position_quarantine'::regclass)::float8, 'gauge',
	       'Fixes set aside by ingest for a day without a partition (cumulative statistics), waiting for fleet.quarantine_replay()'
	UNION ALL
	SELECT 'fleet_legal_holds_active', jsonb_build_object('tenant', h.tenant_id::text), count(*)::float8, 'gauge',
	       'Legal holds in force per tenant: data they cover is never purged'
	  FROM fleet.legal_hold h WHERE h.released_at IS NULL GROUP BY h.tenant_id
	UNION ALL
	SELECT 'fleet_partitions_ahead', jsonb_build_object('table', t.rel),
	       COALESCE(floor(extract(epoch FROM (SELECT max(p.hi) FROM p WHERE p.relation = t.relation) - (SELECT today.ts FROM today)) / 86400) - 1, -1)::float8,
	       'gauge', 'Days after today (UTC) that already have a partition (0: data for tomorrow has nowhere to go)'
	  FROM tn t
	UNION ALL
	SELECT 'fleet_table_rows_estimate', jsonb_build_object('table', t.rel),
	       COALESCE((SELECT sum(GREATEST(c.reltuples, 0)) FROM p JOIN pg_class c ON c.oid = p.partition
	                  WHERE p.relation = t.relation), 0)::float8,
	       'gauge', 'Rows of each partitioned table, from the planner''s statistics (pg_class.reltuples)'
	  FROM tn t
	UNION ALL
	SELECT 'fleet_rows_inserted_total', jsonb_build_object('table', t.rel),
	       COALESCE((SELECT sum(pg_stat_get_tuples_inserted(p.partition)) FROM p
	                  WHERE p.relation = t.relation), 0)::float8,
	       'counter', 'Rows inserted into the existing partitions of each table since statistics were reset (cumulative statistics)'
	  FROM tn t
$$;
COMMENT ON FUNCTION fleet.metrics_storage() IS
	'Metric source: partitions per table and tier, the oldest hot day, warm-swap lock time, quarantined fixes, legal holds, the premade partition horizon, estimated rows and inserted rows, from the catalog, cumulative statistics and fleet''s small tier tables';

CREATE FUNCTION fleet.metrics_services()
RETURNS TABLE (name text, labels jsonb, value double precision, type text, help text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH s AS (SELECT * FROM fleet.metric_setting),
	r AS (
		SELECT * FROM fleet.service_report x
		 WHERE x.reported_at >= clock_timestamp() - (SELECT s.report_max_age FROM s)),
	calls AS (
		SELECT r.service, r.labels ->> 'integration' AS integration,
		       sum(CASE WHEN r.prev_at IS NULL THEN 0
		                WHEN r.value >= r.prev_value THEN r.value - r.prev_value ELSE r.value END)
		           FILTER (WHERE r.labels ->> 'result' = 'error') AS errors,
		       sum(CASE WHEN r.prev_at IS NULL THEN 0
		                WHEN r.value >= r.prev_value THEN r.value - r.prev_value ELSE r.value END) AS total
		  FROM r
		 WHERE r.name = 'integration_calls_total' AND r.labels ? 'integration'
		 GROUP BY r.service, r.labels ->> 'integration')
	SELECT 'fleet_service_' || r.name,
	       r.labels || jsonb_build_object('service', r.service, 'instance', r.instance),
	       r.value, CASE WHEN r.name ~ '_total$' THEN 'counter' ELSE 'gauge' END,
	       'Reported by the service through fleet.report_service_metrics()'
	  FROM r
	UNION ALL
	SELECT 'fleet_service_report_age_seconds', jsonb_build_object('service', x.service, 'instance', x.instance),
	       extract(epoch FROM clock_timestamp() - max(x.reported_at))::float8, 'gauge',
	       'Seconds since each service instance last reported'
	  FROM fleet.service_report x GROUP BY x.service, x.instance
	UNION ALL
	SELECT 'fleet_integration_error_ratio', jsonb_build_object('service', c.service, 'integration', c.integration),
	       COALESCE(c.errors, 0) / c.total, 'gauge',
	       'Share of failed calls per integration (tracker protocol or provider) between the last two reports at least integration_interval apart'
	  FROM calls c WHERE c.total > 0
$$;
COMMENT ON FUNCTION fleet.metrics_services() IS
	'Metric source: recent service reports (journal depth, integration calls), the age of each instance''s last report and per-integration error ratios';

INSERT INTO fleet.metric_source (source, fn, description) VALUES
	('pipeline', 'fleet.metrics_pipeline()', 'event pipeline: backlog, age, lag, retries, dead letters'),
	('sync',     'fleet.metrics_sync()',     'offline sync and reconciliation'),
	('views',    'fleet.metrics_views()',    'staleness-bounded views'),
	('storage',  'fleet.metrics_storage()',  'partitions and table sizes'),
	('services', 'fleet.metrics_services()', 'what the services report: journals, integrations');

CREATE FUNCTION fleet.metrics()
RETURNS TABLE (name text, labels jsonb, value double precision, type text, help text)
LANGUAGE plpgsql STABLE
-- SECURITY DEFINER: the figures span every tenant, whose rows no fleet role
-- can read across tenants (forced row-level security); only aggregates
-- (counts, ages, ratios) leave.  A series labelled with a tenant id is
-- returned for the caller's tenant context only, every tenant's only when
-- the session's role is the DBA or in pg_monitor.  search_path is
-- pinned; the source functions come from fleet.metric_source, which only
-- the extension writes.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_src record;
	-- series labelled with a tenant: the tenant context's only, unless the
	-- session's role sees every tenant (the DBA, pg_monitor members)
	v_all boolean := fleet.sees_all_tenants();
	v_tenant text := fleet.current_tenant()::text;
BEGIN
	FOR v_src IN SELECT m.source, m.fn::oid AS fn FROM fleet.metric_source m ORDER BY m.source LOOP
		RETURN QUERY EXECUTE pg_catalog.format(
			'SELECT x.name, x.labels, x.value, x.type, x.help FROM %s.%s() x'
			' WHERE $1 OR NOT (x.labels OPERATOR(pg_catalog.?) ''tenant'')'
			' OR (x.labels OPERATOR(pg_catalog.->>) ''tenant'') OPERATOR(pg_catalog.=) $2',
			(SELECT quote_ident(n.nspname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = v_src.fn),
			(SELECT quote_ident(p.proname) FROM pg_proc p WHERE p.oid = v_src.fn))
			USING v_all, v_tenant;
	END LOOP;
	RETURN QUERY SELECT 'fleet_metrics_sources'::text, '{}'::jsonb,
	                    (SELECT count(*) FROM fleet.metric_source)::float8, 'gauge'::text,
	                    'Metric sources fleet.metrics() read'::text;
END
$$;
COMMENT ON FUNCTION fleet.metrics() IS
	'Every fleet metric, one row per series: name, labels (flat JSON object of strings), value, type (counter or gauge) and help, mapping one-to-one onto the Prometheus text format. Series labelled with a tenant: the caller''s tenant context only (every tenant for the DBA and members of pg_monitor). Cheap: counters, catalog statistics and bounded index scans only. Sources are listed in fleet.metric_source.';

-- ---------------------------------------------------------------- health

CREATE TABLE fleet.health_threshold (
	workflow    text NOT NULL
	            CHECK (workflow = ANY (ARRAY['dispatch', 'driver_capture', 'billing', 'integrations', 'analytics'])),
	metric      text NOT NULL CHECK (metric ~ '^fleet_[a-z0-9_]+$'),
	match       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(match) = 'object'),
	direction   text NOT NULL DEFAULT 'above' CHECK (direction = ANY (ARRAY['above', 'below'])),
	degraded_at double precision NOT NULL,
	critical_at double precision NOT NULL,
	meaning     text NOT NULL,
	PRIMARY KEY (workflow, metric, match),
	CHECK (CASE direction WHEN 'above' THEN critical_at >= degraded_at ELSE critical_at <= degraded_at END)
);
COMMENT ON TABLE fleet.health_threshold IS
	'Health rules: a workflow is degraded (critical) when any series of metric whose labels contain match is at or above degraded_at (critical_at), or at or below for direction below; meaning says what it means for the customer';

INSERT INTO fleet.health_threshold (workflow, metric, match, direction, degraded_at, critical_at, meaning) VALUES
	('dispatch', 'fleet_event_backlog_oldest_seconds', '{"class": "telemetry"}', 'above', 60, 600,
	 'vehicle state on the dispatch board lags behind the trackers'),
	('dispatch', 'fleet_event_backlog_oldest_seconds', '{"class": "operational"}', 'above', 60, 600,
	 'job and stop changes reach the dispatch board late'),
	('dispatch', 'fleet_view_age_ratio', '{"workflow": "dispatch"}', 'above', 1, 5,
	 'a dispatch view is older than its staleness bound'),
	('dispatch', 'fleet_partitions_ahead', '{"table": "position"}', 'below', 1, 0,
	 'no partition for tomorrow''s fixes yet: fleet.run_maintenance() (pg_cron) is not running'),
	('dispatch', 'fleet_quarantine_rows', '{"table": "position"}', 'above', 1, 10000,
	 'tracker fixes wait in quarantine (no partition for their day): they are not on the board until fleet.quarantine_replay() moves them in'),
	('analytics', 'fleet_tier_oldest_hot_seconds', '{"table": "position"}', 'above', 4 * 86400, 14 * 86400,
	 'tier maintenance is behind: old fixes stay on fast storage and queries over history get slower'),
	('dispatch', 'fleet_service_journal_depth', '{}', 'above', 1, 100000,
	 'the gateway cannot reach the database and keeps fixes in its local journal'),
	('driver_capture', 'fleet_event_backlog_oldest_seconds', '{"class": "operational"}', 'above', 60, 600,
	 'stops and proofs of delivery completed by drivers are applied late'),
	('driver_capture', 'fleet_dead_letters_recent', '{"class": "operational"}', 'above', 1, 10,
	 'driver actions fail in their handler and are set aside'),
	('driver_capture', 'fleet_sync_reject_ratio', '{}', 'above', 0.05, 0.25,
	 'driver-app writes are rejected'),
	('driver_capture', 'fleet_sync_reconciled_in_target_ratio', '{}', 'below', 0.99, 0.9,
	 'offline writes are not reconciled within the target window'),
	('billing', 'fleet_event_backlog_oldest_seconds', '{"class": "financial"}', 'above', 30, 300,
	 'charges and invoices wait: billing is stuck'),
	('billing', 'fleet_view_age_ratio', '{"workflow": "billing"}', 'above', 1, 10,
	 'billing figures are older than their staleness bound'),
	('billing', 'fleet_dead_letters', '{"class": "financial"}', 'above', 1, 1000000,
	 'a financial event failed every attempt and is not billed'),
	('billing', 'fleet_dead_letters_recent', '{"class": "financial"}', 'above', 1, 5,
	 'financial events are failing now'),
	('integrations', 'fleet_integration_error_ratio', '{}', 'above', 0.05, 0.25,
	 'a tracker protocol or provider fails a share of its calls'),
	('integrations', 'fleet_event_backlog_oldest_seconds', '{"class": "audit"}', 'above', 120, 900,
	 'provider webhooks and audit events are applied late'),
	('integrations', 'fleet_dead_letters_recent', '{"class": "audit"}', 'above', 1, 10,
	 'provider events fail in their handler'),
	('analytics', 'fleet_view_age_ratio', '{"workflow": "analytics"}', 'above', 1, 10,
	 'an analytics view is older than its staleness bound'),
	('analytics', 'fleet_view_failing', '{"workflow": "analytics"}', 'above', 1, 1000000,
	 'an analytics view fails to refresh'),
	('analytics', 'fleet_event_backlog_oldest_seconds', '{"class": "telemetry"}', 'above', 300, 3600,
	 'telemetry for reports arrives late');

CREATE FUNCTION fleet.health()
RETURNS TABLE (workflow text, state text, reasons jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH m AS (SELECT * FROM fleet.metrics()),
	w(workflow, ord) AS (VALUES ('dispatch', 1), ('driver_capture', 2), ('billing', 3), ('integrations', 4), ('analytics', 5)),
	hit AS (
		SELECT t.workflow, t.metric, m.labels, m.value, t.meaning,
		       CASE WHEN (t.direction = 'above' AND m.value >= t.critical_at)
		              OR (t.direction = 'below' AND m.value <= t.critical_at) THEN 'critical'
		            WHEN (t.direction = 'above' AND m.value >= t.degraded_at)
		              OR (t.direction = 'below' AND m.value <= t.degraded_at) THEN 'degraded' END AS state,
		       CASE WHEN (t.direction = 'above' AND m.value >= t.critical_at)
		              OR (t.direction = 'below' AND m.value <= t.critical_at) THEN t.critical_at ELSE t.degraded_at END AS threshold
		  FROM fleet.health_threshold t JOIN m ON m.name = t.metric AND m.labels @> t.match)
	SELECT w.workflow,
	       CASE WHEN EXISTS (SELECT 1 FROM hit h WHERE h.workflow = w.workflow AND h.state = 'critical') THEN 'critical'
	            WHEN EXISTS (SELECT 1 FROM hit h WHERE h.workflow = w.workflow AND h.state = 'degraded') THEN 'degraded'
	            ELSE 'ok' END,
	       COALESCE((SELECT jsonb_agg(jsonb_build_object('state', h.state, 'metric', h.metric, 'labels', h.labels,
	                                                     'value', h.value, 'threshold', h.threshold, 'meaning', h.meaning)
	                                  ORDER BY h.state = 'degraded', h.metric, h.labels::text)
	                   FROM hit h WHERE h.workflow = w.workflow AND h.state IS NOT NULL), '[]')
	  FROM w ORDER BY w.ord
$$;
COMMENT ON FUNCTION fleet.health() IS
	'Health per workflow (dispatch, driver_capture, billing, integrations, analytics): ok, degraded or critical from fleet.health_threshold over fleet.metrics(), with the reasons (state, metric, labels, value, threshold crossed, meaning), critical first';

CREATE VIEW fleet.workflow_health WITH (security_invoker = true) AS
	SELECT h.workflow, h.state, h.reasons, pg_catalog.jsonb_array_length(h.reasons) AS reason_count,
	       pg_catalog.now() AS checked_at
	  FROM fleet.health() h;
COMMENT ON VIEW fleet.workflow_health IS
	'Health of each workflow now, for analysts and dashboards in SQL: state, the reasons and when it was checked (fleet.health())';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'FUNCTION', 'fleet.metrics()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.metrics()', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.metrics()', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.metrics()', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.health()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.health()', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.health()', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.workflow_health', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.workflow_health', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.workflow_health', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.report_service_metrics(text,text,jsonb)', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.report_service_metrics(text,text,jsonb)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.report_service_metrics(text,text,jsonb)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.health_threshold', 'SELECT, INSERT, UPDATE, DELETE'),
	('fleet_analyst', 'TABLE', 'fleet.health_threshold', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.health_threshold', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.metric_setting', 'SELECT, UPDATE'),
	('fleet_analyst', 'TABLE', 'fleet.metric_setting', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.view_workflow', 'SELECT, INSERT, UPDATE, DELETE'),
	('fleet_analyst', 'TABLE', 'fleet.view_workflow', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.metric_source', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.metric_source', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.pipeline_stat', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.pipeline_stat', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.service_report', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.service_report', 'SELECT');
