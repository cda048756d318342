-- Reconciliation: every kind of finding, repair, and that a second repair
-- changes nothing; the pg_cron schedule; sync figures and backlog.
\set VERBOSITY terse
-- The schedule is installed; this test takes it off so that a run from
-- pg_cron cannot interleave with the runs below.
SELECT jobname, schedule, command FROM cron.job WHERE jobname = 'fleet.reconcile';
SELECT cron.unschedule('fleet.reconcile');

SELECT fleet.create_tenant('Recon Co') AS tr \gset
SELECT fleet.set_tenant(:tr) IS NOT NULL AS recon_co;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:tr, 'eve', 'Eve'), (:tr, 'fay', 'Fay');
SELECT driver_id AS eve FROM fleet.driver WHERE tenant_id = :tr AND code = 'eve' \gset
SELECT driver_id AS fay FROM fleet.driver WHERE tenant_id = :tr AND code = 'fay' \gset
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:tr, 'RV-1');
SELECT vehicle_id AS rv FROM fleet.vehicle WHERE tenant_id = :tr AND code = 'RV-1' \gset
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status) VALUES (:tr, 'R-1', :eve, :rv, 'assigned');
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :tr, j.job_id, g, :eve FROM fleet.job j, generate_series(1, 3) g WHERE j.tenant_id = :tr AND j.code = 'R-1';
SELECT s.stop_id AS r1 FROM fleet.stop s WHERE s.tenant_id = :tr AND s.seq = 1 \gset
SELECT s.stop_id AS r2 FROM fleet.stop s WHERE s.tenant_id = :tr AND s.seq = 2 \gset
SELECT s.stop_id AS r3 FROM fleet.stop s WHERE s.tenant_id = :tr AND s.seq = 3 \gset
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id) VALUES (:tr, 'recon-dev-1', 'osmand', :rv);
SELECT device_id AS dev FROM fleet.device WHERE tenant_id = :tr AND identifier = 'recon-dev-1' \gset
SELECT to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS recent,
       to_char((now() - interval '3 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS old \gset
\set E '''00000000-0000-0000-0000-0000000000e1'''

-- Eve's app: a status, two pieces of evidence, one write that reaches the
-- server three days late, and evidence on a stop reassigned meanwhile.
SET ROLE fleet_app;
SELECT fleet.sync_register_client(:E, :eve) IS NOT NULL AS registered;
SELECT mutation_id, result FROM fleet.sync_push(:E, format('[
    {"id": 1, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "client_time": "%4$s"},
    {"id": 2, "workflow": "proof_of_delivery", "args": {"stop_id": %2$s, "kind": "photo", "metadata": {"f": 1}}, "client_time": "%4$s"},
    {"id": 3, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "signature", "metadata": {"f": 2}}, "client_time": "%5$s"}]',
    :r1, :r2, :r3, :'recent', :'old')::jsonb);
RESET ROLE;
UPDATE fleet.stop SET driver_id = :fay WHERE stop_id = :r3;
SET ROLE fleet_app;
SELECT mutation_id, result, reason FROM fleet.sync_push(:E, format('[
    {"id": 4, "workflow": "inspection", "args": {"stop_id": %1$s, "metadata": {"f": 3}}, "client_time": "%2$s"},
    {"id": 5, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "note", "metadata": {"f": 4}}, "client_time": "%2$s"}]',
    :r3, :'recent')::jsonb);
RESET ROLE;

-- Positions of the vehicle's tracker: sequence 4..6 missing, then 27
-- minutes of silence.
INSERT INTO fleet.position (tenant_id, device_id, vehicle_id, fix_time, lat, lon, seq)
SELECT :tr, :dev, :rv, now() - make_interval(mins => m), 52.0, 13.0, q
  FROM (VALUES (50, 1), (49, 2), (48, 3), (47, 7), (20, 8)) v (m, q);
-- A dead letter of the tenant.
INSERT INTO fleet.dead_letter (tenant_id, event_id, logged_at, class, kind, attempts, error, sqlstate, history)
VALUES (:tr, -1, now(), 'operational', 'stop.status', 8, 'stop 9 of job "X" does not exist', 'P0002', '[]');

-- Damage, as a bug or a hand-made fix would: s1's status no longer what its
-- event says, s2's evidence gone, one review item lost, one resolution not
-- counted.  (Triggers are off while doing it.)
SELECT review_id AS rev1 FROM fleet.sync_review WHERE tenant_id = :tr ORDER BY review_id LIMIT 1 \gset
SELECT review_id AS rev2 FROM fleet.sync_review WHERE tenant_id = :tr ORDER BY review_id DESC LIMIT 1 \gset
SELECT fleet.sync_resolve_review(:rev1, 'inspection kept for the record');
SET session_replication_role = replica;
UPDATE fleet.stop SET status = 'assigned' WHERE stop_id = :r1;
DELETE FROM fleet.proof_of_delivery WHERE stop_id = :r2;
DELETE FROM fleet.sync_review WHERE review_id = :rev2;
UPDATE fleet.sync_mutation SET reconciled_at = NULL WHERE tenant_id = :tr AND mutation_id = 4;
SET session_replication_role = DEFAULT;

-- The state that repair may change, as a hash.
CREATE TEMP VIEW recon_state AS
SELECT md5(string_agg(x, ',' ORDER BY x)) AS h FROM (
	SELECT 's' || stop_id || status || version || coalesce(status_event_id::text, '') AS x FROM fleet.stop WHERE tenant_id = :tr
	UNION ALL SELECT 'p' || pod_id || kind || stop_id FROM fleet.proof_of_delivery WHERE tenant_id = :tr
	UNION ALL SELECT 'v' || conflict_id || status FROM fleet.sync_review WHERE tenant_id = :tr
	UNION ALL SELECT 'm' || mutation_id || coalesce(reconciled_at::text, '-') FROM fleet.sync_mutation WHERE tenant_id = :tr) q;

-- 1. Report only: every kind is found, nothing is changed.  Events count
-- as stuck once older than stuck_after (set to a microsecond here).
UPDATE fleet.sync_setting SET stuck_after = '1 microsecond';
SELECT h AS before FROM recon_state \gset
SET ROLE fleet_admin;
SELECT kind, count(*) AS findings, bool_or(repaired) AS repaired
  FROM fleet.reconcile(now() - interval '1 day', now() + interval '1 minute') GROUP BY kind ORDER BY kind;
SELECT kind, detail - 'id' - 'event_id' - 'device_id' - 'vehicle_id' - 'stop_id' - 'conflict_id' - 'review_id'
                    - 'client_id' - 'after' - 'before' - 'open_for' - 'logged_at' - 'late_by' - 'client_time'
                    - 'reconciled_at' AS detail
  FROM fleet.sync_finding WHERE kind NOT IN ('stuck_event') ORDER BY kind, detail::text;
RESET ROLE;
SELECT h = :'before' AS unchanged FROM recon_state;

-- 2. Repair: drift, missing evidence, the lost review item and the
-- uncounted resolution are fixed; the rest stays reported.
SET ROLE fleet_admin;
SELECT kind, count(*) AS findings, count(*) FILTER (WHERE repaired) AS repaired
  FROM fleet.reconcile(now() - interval '1 day', now() + interval '1 minute', true) GROUP BY kind ORDER BY kind;
RESET ROLE;
SELECT status, status_event_id IS NOT NULL AS from_event FROM fleet.stop WHERE stop_id = :r1;
SELECT kind, metadata, driver_id = :eve AS by_eve, source_event_id IS NOT NULL AS keyed FROM fleet.proof_of_delivery WHERE stop_id = :r2;
SELECT count(*) AS reviews, count(*) FILTER (WHERE status = 'open') AS open FROM fleet.sync_review WHERE tenant_id = :tr;
SELECT mutation_id, reconciled_at IS NOT NULL AS reconciled FROM fleet.sync_mutation WHERE tenant_id = :tr ORDER BY mutation_id;
SELECT h AS after_repair FROM recon_state \gset

-- 3. Repair again: nothing left to repair, no data changed.
SET ROLE fleet_admin;
SELECT kind, count(*) AS findings, count(*) FILTER (WHERE repaired) AS repaired
  FROM fleet.reconcile(now() - interval '1 day', now() + interval '1 minute', true) GROUP BY kind ORDER BY kind;
RESET ROLE;
SELECT h = :'after_repair' AS unchanged, h <> :'before' AS repaired_once FROM recon_state;
SELECT repair, findings, repaired, scanned ? 'positions' AND scanned ? 'events' AND scanned ? 'mutations' AS scanned_all,
       (scanned ->> 'positions')::int AS positions
  FROM fleet.sync_reconcile_run WHERE tenant_id = :tr ORDER BY run_id;
-- findings are kept, one row per subject, with the runs that saw them
SELECT kind, count(*) AS kept, min(last_run_id - first_run_id) AS seen_again,
       count(repaired_run_id) AS repaired
  FROM fleet.sync_finding WHERE tenant_id = :tr GROUP BY kind ORDER BY kind;

-- Scope: Fay's scope has none of Eve's writes and conflicts (her stop is on
-- the same vehicle, so its positions count); a vehicle filter narrows the
-- positions only; dead letters and stuck events are tenant-wide.
UPDATE fleet.sync_setting SET stuck_after = '15 minutes';
SET ROLE fleet_admin;
SELECT kind, count(*) FROM fleet.reconcile(now() - interval '1 day', now() + interval '1 minute', false, :fay) GROUP BY kind ORDER BY kind;
SELECT kind, count(*) FROM fleet.reconcile(now() - interval '1 day', now() + interval '1 minute', false, NULL, :rv) GROUP BY kind ORDER BY kind;
SELECT kind, count(*) FROM fleet.reconcile(now() - interval '1 day', now() + interval '1 minute', false, NULL, -1) GROUP BY kind ORDER BY kind;

-- Errors, and who may run it.
SELECT * FROM fleet.reconcile(now(), now() - interval '1 hour');
SELECT * FROM fleet.reconcile(NULL, now());
SET ROLE fleet_app;
SELECT * FROM fleet.reconcile(now() - interval '1 hour', now());
SET ROLE fleet_analyst;
SELECT * FROM fleet.reconcile(now() - interval '1 hour', now());
SELECT count(*) > 0 AS analyst_reads_findings FROM fleet.sync_finding;
RESET ROLE;
SELECT fleet.clear_tenant();
SET ROLE fleet_admin;
SELECT * FROM fleet.reconcile(now() - interval '1 hour', now());
-- What pg_cron runs: every active tenant; the tenant context is left clear.
SELECT fleet.reconcile_all() >= 0 AS ran;
SELECT fleet.reconcile_all('-1 hour');
SELECT fleet.current_tenant() IS NULL AS no_context;
RESET ROLE;
SELECT count(DISTINCT tenant_id) >= 4 AS tenants_reconciled FROM fleet.sync_reconcile_run;

-- Figures: per workflow and for all.
SELECT fleet.set_tenant(:tr) IS NOT NULL AS recon_co;
SET ROLE fleet_app;
SELECT mutation_id, result FROM fleet.sync_push(:E, format('[
    {"id": 5, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "note", "metadata": {"f": 4}}, "client_time": "%2$s"},
    {"id": 6, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "assigned"}, "client_time": "%2$s"},
    {"id": 7, "workflow": "teleport", "args": {}}]', :r3, :'recent')::jsonb);
SET ROLE fleet_analyst;
SELECT workflow, mutations, received, applied, merged, rejected, duplicates, conflict_rate, duplicate_rate, reject_rate,
       latency_p50 > interval '0' AS has_latency, latency_p50 <= latency_p99 AS ordered, reconciled_within_target
  FROM fleet.sync_figures(now() - interval '1 day', now() + interval '1 minute');
SELECT count(*) AS no_figures FROM fleet.sync_figures(now() - interval '2 days', now() - interval '1 day');
-- Backlog: Eve's app has not pulled; after a pull nothing is pending.
SELECT client_id, driver_id = :eve AS eve, active, last_mutation_id, unpulled_changes > 0 AS pending, unreconciled_writes, open_reviews
  FROM fleet.sync_backlog();
SET ROLE fleet_app;
SELECT (fleet.sync_pull(:E, NULL, 1000)) ->> 'has_more' AS has_more;
SELECT unpulled_changes FROM fleet.sync_backlog();
RESET ROLE;
SELECT * FROM fleet.check_schema_rules();
