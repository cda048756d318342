-- Metrics and health: fleet.metrics() rows are valid Prometheus series, and
-- fleet.health() moves each workflow through its states: a stuck financial
-- class makes billing critical, a late analytics view degrades analytics
-- only, a dead-letter burst makes driver capture critical, a failing
-- integration makes integrations critical.  Everything runs in one
-- transaction that is rolled back, so later tests see nothing of it.
\set VERBOSITY terse
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset

-- Every series is well formed: a Prometheus metric name, a flat object of
-- string labels with valid names, a counter or gauge type, a help text, and
-- no two rows for the same series.
SELECT count(*) > 40 AS many,
       bool_and(name ~ '^fleet_[a-z0-9_]+$') AS names_ok,
       bool_and(type IN ('counter', 'gauge')) AS types_ok,
       bool_and(help <> '' AND help !~ '[\n\\]') AS help_ok,
       bool_and(jsonb_typeof(labels) = 'object') AS labels_objects,
       bool_and(NOT (type = 'counter' AND value < 0)) AS counters_nonnegative
  FROM fleet.metrics();
SELECT l.key, jsonb_typeof(l.value) FROM fleet.metrics() m, jsonb_each(m.labels) l
 WHERE l.key !~ '^[a-z_][a-z0-9_]*$' OR l.key LIKE '\_\_%' OR jsonb_typeof(l.value) <> 'string';
SELECT name, labels, count(*) FROM fleet.metrics() GROUP BY name, labels HAVING count(*) > 1;
SELECT name FROM fleet.metrics() GROUP BY name HAVING count(DISTINCT type) > 1 OR count(DISTINCT help) > 1;
SELECT DISTINCT name FROM fleet.metrics() WHERE name IN ('fleet_event_backlog', 'fleet_partitions',
	'fleet_partitions_ahead', 'fleet_view_age_ratio', 'fleet_rows_inserted_total') ORDER BY 1;

-- Earlier tests leave quarantined fixes (10_positions) and month-old hot
-- partitions behind; the storage rules they trip are set aside here and
-- checked at the end, so each state below has one cause.
CREATE TEMP TABLE storage_rules AS
	SELECT * FROM fleet.health_threshold WHERE metric IN ('fleet_quarantine_rows', 'fleet_tier_oldest_hot_seconds');
DELETE FROM fleet.health_threshold WHERE metric IN ('fleet_quarantine_rows', 'fleet_tier_oldest_hot_seconds');

-- Who may read what: services read metrics, analysts read health.
SET ROLE fleet_ingest;
SELECT count(*) > 0 AS ingest_reads_metrics FROM fleet.metrics();
SELECT * FROM fleet.health();
SELECT * FROM fleet.service_report;
RESET ROLE;
SET ROLE fleet_analyst;
SELECT count(*) AS workflows FROM fleet.workflow_health;
SELECT fleet.report_service_metrics('x', 'y', '[]');
RESET ROLE;

-- The pipeline keeps its counters once per pass: events consumed, the
-- newest event's time and lag samples (committed: a pass sees committed events only).
SELECT passes AS passes_before FROM fleet.pipeline_stat WHERE class = 'financial' \gset
SELECT fleet.set_tenant(:north);
SELECT status FROM fleet.ingest_event('metrics-test', 'fuel-1', 'acme.fuel_card', '{"card": "M-1", "volume_l": 10}');
SELECT fleet.clear_tenant();
SELECT value AS backlog FROM fleet.metrics() WHERE name = 'fleet_event_backlog' AND labels ->> 'class' = 'financial';
SELECT class, applied FROM fleet.process_pending('financial');
SELECT passes - :passes_before AS new_passes, last_event_logged_at IS NOT NULL AS has_newest
  FROM fleet.pipeline_stat WHERE class = 'financial';
SELECT labels ->> 'percentile' AS percentile, value >= 0 AS sampled FROM fleet.metrics()
 WHERE name = 'fleet_pipeline_lag_seconds' AND labels ->> 'class' = 'financial' ORDER BY 1;
SELECT value >= 0 AS has_age FROM fleet.metrics() WHERE name = 'fleet_event_age_seconds' AND labels ->> 'class' = 'financial';
SELECT value AS backlog FROM fleet.metrics() WHERE name = 'fleet_event_backlog' AND labels ->> 'class' = 'financial';

BEGIN;
-- A known baseline: everything consumed, no failures, fresh views, no
-- recent sync traffic, no service reports from earlier tests.
SELECT count(*) >= 0 AS drained FROM fleet.process_pending();
SELECT count(*) >= 0 AS drained FROM fleet.process_pending();
DELETE FROM fleet.dead_letter;
DELETE FROM fleet.event_retry;
DELETE FROM fleet.sync_finding;
DELETE FROM fleet.sync_review;
DELETE FROM fleet.service_report;
UPDATE fleet.sync_mutation SET applied_at = applied_at - interval '1 day';
UPDATE fleet.view_registry SET as_of = clock_timestamp(), last_error_at = NULL;
SELECT workflow, state, reasons FROM fleet.workflow_health;

-- 1. A stuck financial class: an invoice-relevant event has waited ten
-- minutes unconsumed.  Billing is critical; dispatch is not affected.
SELECT fleet.set_tenant(:north);
SELECT status FROM fleet.ingest_event('metrics-test', 'fuel-2', 'acme.fuel_card', '{"card": "M-2", "volume_l": 20}');
SELECT fleet.clear_tenant();
UPDATE fleet.event_log SET logged_at = logged_at - interval '10 minutes'
 WHERE source = 'metrics-test' AND idem_key = 'fuel-2';
SELECT value AS backlog FROM fleet.metrics() WHERE name = 'fleet_event_backlog' AND labels ->> 'class' = 'financial';
SELECT value >= 600 AS waited_ten_minutes FROM fleet.metrics()
 WHERE name = 'fleet_event_backlog_oldest_seconds' AND labels ->> 'class' = 'financial';
SELECT workflow, state, (SELECT jsonb_agg(r - 'value' - 'meaning') FROM jsonb_array_elements(reasons) r) AS reasons
  FROM fleet.workflow_health;
-- once the event is gone (here: removed; normally: consumed), billing is ok again
DELETE FROM fleet.event_log WHERE source = 'metrics-test' AND idem_key = 'fuel-2';
SELECT workflow, state FROM fleet.health() WHERE workflow = 'billing';

-- 2. A late analytics view (twice its bound): analytics is degraded, and
-- dispatch stays ok.
UPDATE fleet.view_registry SET as_of = clock_timestamp() - 2 * max_staleness
 WHERE relation = 'fleet.job_daily_summary'::regclass;
SELECT workflow, state, (SELECT jsonb_agg(r - 'value' - 'meaning') FROM jsonb_array_elements(reasons) r) AS reasons
  FROM fleet.workflow_health;
-- ... and a late dispatch view makes dispatch degraded, then critical.
UPDATE fleet.view_registry SET as_of = clock_timestamp() - 2 * max_staleness
 WHERE relation = 'fleet.vehicle_last_position'::regclass;
SELECT workflow, state FROM fleet.health() WHERE workflow = 'dispatch';
UPDATE fleet.view_registry SET as_of = clock_timestamp() - 6 * max_staleness
 WHERE relation = 'fleet.vehicle_last_position'::regclass;
SELECT workflow, state FROM fleet.health() WHERE workflow = 'dispatch';
UPDATE fleet.view_registry SET as_of = clock_timestamp();

-- 3. A dead-letter burst of driver actions: driver capture is critical.
INSERT INTO fleet.dead_letter (tenant_id, event_id, logged_at, class, kind, attempts, error, sqlstate, history)
SELECT :north, -g, now(), 'operational', 'stop.status', 8, 'handler failed', 'P0001', '[]'
  FROM generate_series(1, 12) g;
SELECT name, labels, value FROM fleet.metrics() WHERE name LIKE 'fleet_dead_letters%' AND value > 0 ORDER BY 1, 2::text;
SELECT workflow, state, (SELECT jsonb_agg(r - 'value' - 'meaning') FROM jsonb_array_elements(reasons) r) AS reasons
  FROM fleet.workflow_health;
-- three are degraded, not critical
DELETE FROM fleet.dead_letter WHERE event_id < -3;
SELECT workflow, state FROM fleet.health() WHERE workflow = 'driver_capture';
DELETE FROM fleet.dead_letter;

-- 4. A failing integration: the gateway reports its calls per integration;
-- between two reports 40 of 50 GT06 calls failed.
UPDATE fleet.metric_setting SET integration_interval = '0';
SELECT fleet.report_service_metrics('fleet-gateway', 'gw-1', '[
	{"name": "integration_calls_total", "labels": {"integration": "gt06", "result": "ok"}, "value": 100},
	{"name": "integration_calls_total", "labels": {"integration": "gt06", "result": "error"}, "value": 0},
	{"name": "integration_calls_total", "labels": {"integration": "teltonika", "result": "ok"}, "value": 500},
	{"name": "journal_depth", "value": 0}]');
SELECT workflow, state FROM fleet.health() WHERE workflow = 'integrations';
SELECT fleet.report_service_metrics('fleet-gateway', 'gw-1', '[
	{"name": "integration_calls_total", "labels": {"integration": "gt06", "result": "ok"}, "value": 110},
	{"name": "integration_calls_total", "labels": {"integration": "gt06", "result": "error"}, "value": 40},
	{"name": "integration_calls_total", "labels": {"integration": "teltonika", "result": "ok"}, "value": 900},
	{"name": "journal_depth", "value": 0}]');
SELECT name, labels, value FROM fleet.metrics() WHERE name IN ('fleet_integration_error_ratio', 'fleet_service_journal_depth')
 ORDER BY 1, 2::text;
SELECT workflow, state, (SELECT jsonb_agg(r - 'value' - 'meaning') FROM jsonb_array_elements(reasons) r) AS reasons
  FROM fleet.workflow_health;
-- a counter reset (service restart) counts from zero, it is no negative rate
SELECT fleet.report_service_metrics('fleet-gateway', 'gw-1', '[
	{"name": "integration_calls_total", "labels": {"integration": "gt06", "result": "ok"}, "value": 20},
	{"name": "integration_calls_total", "labels": {"integration": "gt06", "result": "error"}, "value": 0}]');
SELECT labels ->> 'integration' AS integration, value FROM fleet.metrics() WHERE name = 'fleet_integration_error_ratio' ORDER BY 1;
-- the journal of a gateway cut off from the database degrades dispatch
SELECT fleet.report_service_metrics('fleet-gateway', 'gw-1', '[{"name": "journal_depth", "value": 250}]');
SELECT workflow, state FROM fleet.health() WHERE workflow IN ('dispatch', 'integrations');
ROLLBACK;

-- Reports are checked: each error leaves nothing behind.
SELECT fleet.report_service_metrics('Bad Service', 'i', '[]');
SELECT fleet.report_service_metrics('svc', '', '[]');
SELECT fleet.report_service_metrics('svc', 'i', '{"name": "x"}');
SELECT fleet.report_service_metrics('svc', 'i', '[{"name": "Bad-Name", "value": 1}]');
SELECT fleet.report_service_metrics('svc', 'i', '[{"name": "x"}]');
SELECT fleet.report_service_metrics('svc', 'i', '[{"name": "x", "value": "1"}]');
SELECT fleet.report_service_metrics('svc', 'i', '[{"name": "x", "value": 1, "labels": {"Bad": "v"}}]');
SELECT fleet.report_service_metrics('svc', 'i', '[{"name": "x", "value": 1, "labels": {"service": "v"}}]');
SELECT fleet.report_service_metrics('svc', 'i', '[{"name": "x", "value": 1, "labels": {"k": 1}}]');
SELECT fleet.report_service_metrics('svc', 'i', (SELECT jsonb_agg(jsonb_build_object('name', 'x', 'value', g)) FROM generate_series(1, 1001) g));
SELECT count(*) AS reports FROM fleet.service_report;

-- Thresholds are kept consistent.
INSERT INTO fleet.health_threshold (workflow, metric, degraded_at, critical_at, meaning)
VALUES ('billing', 'fleet_event_backlog', 10, 5, 'inverted');
INSERT INTO fleet.health_threshold (workflow, metric, degraded_at, critical_at, meaning)
VALUES ('marketing', 'fleet_event_backlog', 1, 5, 'no such workflow');

-- Tiered storage reports its state too: partitions per tier, the oldest hot
-- day, quarantined fixes; a fix quarantined for a day without partition
-- shows up once the statistics have it.
SELECT DISTINCT name FROM fleet.metrics()
 WHERE name IN ('fleet_partitions', 'fleet_tier_oldest_hot_seconds', 'fleet_quarantine_rows') ORDER BY 1;
SELECT count(*) > 0 AS hot_partitions_counted FROM fleet.metrics()
 WHERE name = 'fleet_partitions' AND labels = '{"table": "position", "tier": "hot"}';
-- The storage rules back: the quarantined fix degrades dispatch, the
-- month-old hot partitions make analytics critical (maintenance is behind),
-- and neither touches billing.
INSERT INTO fleet.health_threshold SELECT * FROM storage_rules;
SELECT workflow, metric, direction, degraded_at, critical_at FROM fleet.health_threshold
 WHERE metric IN ('fleet_quarantine_rows', 'fleet_tier_oldest_hot_seconds') ORDER BY 1, 2;
SELECT count(*) > 0 AS quarantine_seen FROM fleet.metrics() WHERE name = 'fleet_quarantine_rows' AND value >= 1;
SELECT h.workflow, h.state, r ->> 'metric' AS metric
  FROM fleet.health() h LEFT JOIN LATERAL jsonb_array_elements(h.reasons) r ON true
 WHERE h.workflow IN ('dispatch', 'analytics', 'billing') ORDER BY 1, 3;
