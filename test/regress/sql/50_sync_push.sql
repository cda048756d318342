-- Offline sync, push side: clients, idempotency and ordering, every merge
-- rule, every rejection and error, conflict records, dispatcher review
-- items and the trail in the event log.
\set VERBOSITY terse
SELECT fleet.create_tenant('Sync North') AS tn \gset
SELECT fleet.create_tenant('Sync South') AS ts \gset

-- Fixture: South has one stop; North has drivers Ann and Bob, a job for Ann
-- with five stops and a job for Bob with one.
SELECT fleet.set_tenant(:ts) IS NOT NULL AS south;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:ts, 'sd', 'Sam');
INSERT INTO fleet.job (tenant_id, code, driver_id, status)
SELECT :ts, 'SJ-1', driver_id, 'assigned' FROM fleet.driver WHERE tenant_id = :ts AND code = 'sd';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :ts, j.job_id, 1, j.driver_id FROM fleet.job j WHERE j.tenant_id = :ts AND j.code = 'SJ-1';
SELECT stop_id AS south_stop FROM fleet.stop WHERE tenant_id = :ts \gset

SELECT fleet.set_tenant(:tn) IS NOT NULL AS north;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:tn, 'ann', 'Ann'), (:tn, 'bob', 'Bob');
SELECT driver_id AS ann FROM fleet.driver WHERE tenant_id = :tn AND code = 'ann' \gset
SELECT driver_id AS bob FROM fleet.driver WHERE tenant_id = :tn AND code = 'bob' \gset
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:tn, 'VAN-1');
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
SELECT :tn, 'J-A', :ann, vehicle_id, 'assigned' FROM fleet.vehicle WHERE tenant_id = :tn AND code = 'VAN-1';
INSERT INTO fleet.job (tenant_id, code, driver_id, status) VALUES (:tn, 'J-B', :bob, 'assigned');
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT :tn, j.job_id, g, :ann, 'Street ' || g FROM fleet.job j, generate_series(1, 5) g WHERE j.tenant_id = :tn AND j.code = 'J-A';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :tn, j.job_id, 1, :bob FROM fleet.job j WHERE j.tenant_id = :tn AND j.code = 'J-B';
SELECT s.stop_id AS s1 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.tenant_id = :tn AND j.code = 'J-A' AND s.seq = 1 \gset
SELECT s.stop_id AS s2 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.tenant_id = :tn AND j.code = 'J-A' AND s.seq = 2 \gset
SELECT s.stop_id AS s3 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.tenant_id = :tn AND j.code = 'J-A' AND s.seq = 3 \gset
SELECT s.stop_id AS s4 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.tenant_id = :tn AND j.code = 'J-A' AND s.seq = 4 \gset
SELECT s.stop_id AS s5 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.tenant_id = :tn AND j.code = 'J-A' AND s.seq = 5 \gset
SELECT s.stop_id AS sb FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.tenant_id = :tn AND j.code = 'J-B' \gset
SELECT job_id AS ja FROM fleet.job WHERE tenant_id = :tn AND code = 'J-A' \gset

-- The workflows and their default rules.
SELECT workflow, entity, action, rule, fields, evidence_kind FROM fleet.sync_workflow ORDER BY workflow;

-- Clients are registered by the app role, in a tenant context, for an
-- active driver of that tenant.
SET ROLE fleet_app;
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000a1', :ann);
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000b1', :bob);
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000a1', :ann);	-- again: fine
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000a1', :bob);	-- rebinding: error
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000a2', 999999);
SELECT fleet.sync_register_client(NULL, :ann);
SELECT client_id, driver_id = :ann AS ann, last_mutation_id, active FROM fleet.sync_client ORDER BY client_id;
\set A '''00000000-0000-0000-0000-0000000000a1'''
\set B '''00000000-0000-0000-0000-0000000000b1'''

-- 1. applied, then duplicates: the stored result comes back.
SELECT mutation_id, result, rule, reason, stored - 'event_id' - 'entity_id' AS stored
  FROM fleet.sync_push(:A, format('[{"id": 1, "workflow": "stop_status", "args": {"stop_id": %s, "status": "en_route"},
                                    "client_time": "2026-01-01T08:00:00Z", "base_version": 1}]', :s1)::jsonb);
SELECT mutation_id, result, rule, reason, stored - 'event_id' - 'entity_id' AS stored
  FROM fleet.sync_push(:A, format('[{"id": 1, "workflow": "stop_status", "args": {"stop_id": %s, "status": "en_route"},
                                    "client_time": "2026-01-01T08:00:00Z", "base_version": 1}]', :s1)::jsonb);
-- the same instant written in another zone is the same payload
SELECT mutation_id, result FROM fleet.sync_push(:A, format('[{"id": 1, "workflow": "stop_status",
    "args": {"stop_id": %s, "status": "en_route"}, "client_time": "2026-01-01T10:00:00+02:00", "base_version": 1}]', :s1)::jsonb);
-- same id, another payload: an error, nothing changes
SELECT mutation_id, result FROM fleet.sync_push(:A, format('[{"id": 1, "workflow": "stop_status",
    "args": {"stop_id": %s, "status": "arrived"}, "client_time": "2026-01-01T08:00:00Z", "base_version": 1}]', :s1)::jsonb);
-- a processed id whose record is gone (removed by hand): an error, not a
-- second application
BEGIN;
RESET ROLE;
DELETE FROM fleet.sync_mutation WHERE client_id = :A AND mutation_id = 1;
SET ROLE fleet_app;
SELECT mutation_id, result FROM fleet.sync_push(:A, format('[{"id": 1, "workflow": "stop_status",
    "args": {"stop_id": %s, "status": "en_route"}, "client_time": "2026-01-01T08:00:00Z", "base_version": 1}]', :s1)::jsonb);
ROLLBACK;
-- an id that skips ahead: refused with the id expected next (the whole batch)
SELECT mutation_id, result FROM fleet.sync_push(:A, format('[{"id": 2, "workflow": "stop_status",
    "args": {"stop_id": %s, "status": "arrived"}, "client_time": "2026-01-01T08:05:00Z", "base_version": 2},
    {"id": 4, "workflow": "stop_status", "args": {"stop_id": %s, "status": "completed"}, "client_time": "2026-01-01T08:09:00Z"}]', :s1, :s1)::jsonb);
\set VERBOSITY default
SELECT mutation_id, result FROM fleet.sync_push(:A, '[{"id": 3, "workflow": "stop_status", "args": {}}]');
\set VERBOSITY terse
SELECT last_mutation_id FROM fleet.sync_client WHERE client_id = :A;
-- a batch is applied in id order whatever order it comes in; duplicates inside it too
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 3, "workflow": "stop_status", "args": {"stop_id": %s, "status": "completed"}, "client_time": "2026-01-01T08:09:00Z", "base_version": 3},
    {"id": 2, "workflow": "stop_status", "args": {"stop_id": %s, "status": "arrived"}, "client_time": "2026-01-01T08:05:00Z", "base_version": 2},
    {"id": 2, "workflow": "stop_status", "args": {"stop_id": %s, "status": "arrived"}, "client_time": "2026-01-01T08:05:00Z", "base_version": 2}]',
    :s1, :s1, :s1)::jsonb);
SELECT status, version, arrived_at, completed_at FROM fleet.stop WHERE stop_id = :s1;

-- 2. Rejections: each counts as processed (the id advances) with its reason.
-- A client clock a little ahead of the server's (inside fleet.future_margin)
-- is computed here, never printed.
SELECT (extract(epoch FROM now()) * 1000)::bigint + 60000 AS future_ms \gset
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 4, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 4},
    {"id": 5, "workflow": "teleport", "args": {"stop_id": %1$s}},
    {"id": 6, "workflow": "stop_status", "args": {"status": "arrived"}},
    {"id": 7, "workflow": "stop_status", "args": "arrived"},
    {"id": 8, "workflow": "stop_status", "args": {"stop_id": 99999999, "status": "arrived"}},
    {"id": 9, "workflow": "stop_status", "args": {"stop_id": %2$s, "status": "arrived"}},
    {"id": 10, "workflow": "stop_status", "args": {"stop_id": %3$s, "status": "arrived"}},
    {"id": 11, "workflow": "stop_status", "args": {"stop_id": %4$s, "status": "flying"}},
    {"id": 12, "workflow": "stop_status", "args": {"stop_id": %4$s, "status": "arrived"}, "base_version": 7},
    {"id": 13, "workflow": "proof_of_delivery", "args": {"stop_id": %4$s, "kind": "selfie"}},
    {"id": 14, "workflow": "proof_of_delivery", "args": {"stop_id": %4$s, "kind": "photo", "metadata": [1]}},
    {"id": 15, "workflow": "stop_adjust", "args": {"stop_id": %4$s, "fields": {"address": "x"}}},
    {"id": 16, "workflow": "stop_adjust", "args": {"stop_id": %4$s, "fields": {"status": "completed"}}, "hlc": "1:0"},
    {"id": 17, "workflow": "stop_adjust", "args": {"stop_id": %4$s, "fields": {}}, "hlc": "1:0"},
    {"id": 18, "workflow": "stop_adjust", "args": {"stop_id": %4$s, "fields": {"address": "x"}}, "hlc": "soon"},
    {"id": 19, "workflow": "stop_adjust", "args": {"stop_id": %4$s, "fields": {"lat": 123.4}}, "hlc": "%5$s:0"},
    {"id": 20, "workflow": "stop_status", "args": {"stop_id": %4$s, "status": "arrived"}, "base_version": 0}]',
    :s1, :sb, :south_stop, :s2, :future_ms)::jsonb);
-- 4 moves s1 back (no conflict: the app saw the current version): status_regression;
-- 9 is Bob's stop and 10 another tenant's: never in Ann's scope, not even found;
-- 19 breaks a constraint: rejected with the error, the rest of the batch goes on.
SELECT last_mutation_id FROM fleet.sync_client WHERE client_id = :A;
SELECT status, version, address, lat FROM fleet.stop WHERE stop_id = :s2;
SELECT count(*) AS bobs_stop_untouched FROM fleet.stop WHERE stop_id = :sb AND status = 'assigned' AND version = 1;

-- 3. Errors that refuse the whole push.
SELECT * FROM fleet.sync_push(:A, '{"id": 1}');
SELECT * FROM fleet.sync_push(:A, NULL);
SELECT * FROM fleet.sync_push(NULL, '[]');
SELECT * FROM fleet.sync_push(:A, '[{"workflow": "stop_status"}]');
SELECT * FROM fleet.sync_push(:A, '[{"id": -1, "workflow": "stop_status"}]');
SELECT * FROM fleet.sync_push(:A, '[{"id": 1.5, "workflow": "stop_status"}]');
SELECT * FROM fleet.sync_push(:A, '[{"id": 21}]');
SELECT * FROM fleet.sync_push(:A, '[{"id": 21, "workflow": "stop_status", "base_version": "3"}]');
SELECT * FROM fleet.sync_push(:A, '[{"id": 21, "workflow": "stop_status", "hlc": 5}]');
-- (a client_time that is not an RFC 3339 instant in the window rejects its
-- mutation only: 15_input_checks has every case)
BEGIN;
SELECT mutation_id, result, reason FROM fleet.sync_push(:A, '[{"id": 21, "workflow": "stop_status", "client_time": "yesterday-ish"}]');
ROLLBACK;
SELECT * FROM fleet.sync_push('00000000-0000-0000-0000-00000000dead', '[]');
SELECT * FROM fleet.sync_push(:A, (SELECT jsonb_agg(jsonb_build_object('id', g, 'workflow', 'x')) FROM generate_series(21, 1021) g));
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM fleet.sync_push(:A, '[]');
ROLLBACK;
-- another tenant's context does not know North's client
RESET ROLE;
SELECT fleet.set_tenant(:ts) IS NOT NULL AS south;
SET ROLE fleet_app;
SELECT * FROM fleet.sync_push(:A, '[]');
RESET ROLE;
SELECT fleet.clear_tenant();
SET ROLE fleet_app;
SELECT * FROM fleet.sync_push(:A, '[]');
RESET ROLE;
SELECT fleet.set_tenant(:tn) IS NOT NULL AS north;
-- an empty batch changes nothing
SET ROLE fleet_app;
SELECT count(*) FROM fleet.sync_push(:A, '[]');

-- 4. forward_only_status with conflicts.  The dispatcher edits s2 (its
-- version moves on); Ann's app, which saw version 1, moves it forward:
-- merged, the client's status applied; then an older status: merged, the
-- server's kept.
RESET ROLE;
UPDATE fleet.stop SET window_start = '2026-01-01 09:00+00' WHERE stop_id = :s2;
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 21, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 1, "client_time": "2026-01-01T09:10:00Z"},
    {"id": 22, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "base_version": 1, "client_time": "2026-01-01T09:05:00Z"},
    {"id": 23, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 1, "client_time": "2026-01-01T09:11:00Z"}]', :s2)::jsonb);
SELECT status, version FROM fleet.stop WHERE stop_id = :s2;

-- 5. server_wins and client_wins (fleet_admin sets the rule).
SET ROLE fleet_admin;
SELECT fleet.set_sync_rule('stop_status', 'server_wins');
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 24, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "completed"}, "base_version": 1},
    {"id": 25, "workflow": "stop_status", "args": {"stop_id": %2$s, "status": "en_route"}, "base_version": 1}]', :s2, :s3)::jsonb);
SET ROLE fleet_admin;
SELECT fleet.set_sync_rule('stop_status', 'client_wins');
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 26, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "base_version": 1}]', :s2)::jsonb);
SELECT status FROM fleet.stop WHERE stop_id = :s2;
SET ROLE fleet_admin;
SELECT fleet.set_sync_rule('stop_status', 'forward_only_status');
-- rules that do not fit a workflow, unknown rules and workflows
SELECT fleet.set_sync_rule('proof_of_delivery', 'forward_only_status');
SELECT fleet.set_sync_rule('stop_status', 'append_only_evidence');
SELECT fleet.set_sync_rule('inspection', 'lww_hlc');
SELECT fleet.set_sync_rule('stop_status', 'coin_toss');
SELECT fleet.set_sync_rule('stop_teleport', 'server_wins');
SELECT fleet.set_sync_rule('stop_status', 'custom');
SELECT fleet.set_sync_rule('stop_status', 'custom', 'fleet.sync_parse_hlc(text)');
SET ROLE fleet_app;
SELECT fleet.set_sync_rule('stop_status', 'server_wins');

-- 6. lww_hlc on route adjustments.  The dispatcher changes s3's address
-- (the server's clock moves to now); an app write with an older clock
-- loses, one with a newer clock wins; without a clock it is rejected.
RESET ROLE;
UPDATE fleet.stop SET address = 'Dispatcher Road 1' WHERE stop_id = :s3;
SELECT origin FROM fleet.sync_clock WHERE entity = 'stop' AND entity_id = :s3;
-- the app's clock: a minute ahead of the dispatcher's write, inside the margin
SELECT (extract(epoch FROM now()) * 1000)::bigint + 60000 AS future_ms \gset
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 27, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Old Lane 2"}}, "hlc": "1000:0", "base_version": 1},
    {"id": 28, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Future Way 3", "lat": 52.5}}, "hlc": "%2$s:0", "base_version": 1},
    {"id": 29, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Future Way 4"}}, "hlc": "%2$s:1"},
    {"id": 30, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Same Time 5"}}, "hlc": "%2$s:1"}]', :s3, :future_ms)::jsonb);
SELECT address, lat FROM fleet.stop WHERE stop_id = :s3;
SELECT hlc_ms = :future_ms AS future_ms, hlc_counter, origin FROM fleet.sync_clock WHERE entity = 'stop' AND entity_id = :s3;

-- 7. A custom merge function decides.
RESET ROLE;
CREATE FUNCTION public.sync_merge_test(workflow text, client jsonb, server jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT CASE client -> 'args' -> 'fields' ->> 'address'
	       WHEN 'keep' THEN '{"decision": "server"}'
	       WHEN 'nope' THEN '{"decision": "reject", "reason": "address refused"}'
	       WHEN 'mix' THEN jsonb_build_object('decision', 'merge', 'value',
	                           jsonb_build_object('address', (server ->> 'address') || ' / mix'))
	       WHEN 'bad' THEN '{"decision": "maybe"}'
	       WHEN 'worse' THEN '{"decision": "merge", "value": {"status": "completed"}}'
	       ELSE '{"decision": "client"}' END::jsonb
$$;
GRANT EXECUTE ON FUNCTION public.sync_merge_test(text, jsonb, jsonb) TO fleet_app;
SET ROLE fleet_admin;
SELECT fleet.set_sync_rule('stop_adjust', 'custom', 'public.sync_merge_test(text,jsonb,jsonb)');
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 31, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Client Street"}}},
    {"id": 32, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "keep"}}},
    {"id": 33, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "nope"}}},
    {"id": 34, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "mix"}}},
    {"id": 35, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "bad"}}},
    {"id": 36, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "worse"}}}]', :s4)::jsonb);
SELECT address FROM fleet.stop WHERE stop_id = :s4;
-- the function runs as the role that set the rule (fleet_admin), not as the
-- extension owner: it cannot read what fleet_admin cannot
RESET ROLE;
CREATE FUNCTION public.sync_merge_spy(workflow text, client jsonb, server jsonb) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT jsonb_build_object('decision', 'server', 'routes', (SELECT count(*) FROM fleet.device_route))
$$;
SET ROLE fleet_admin;
SELECT fleet.set_sync_rule('stop_adjust', 'custom', 'public.sync_merge_spy(text,jsonb,jsonb)');
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 37, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "spy"}}}]', :s4)::jsonb);
SET ROLE fleet_admin;
SELECT fleet.set_sync_rule('stop_adjust', 'lww_hlc');

-- 8. Evidence is appended; after a reassignment the stop's evidence is
-- kept, the completion is not applied, and a dispatcher review item is
-- raised for each.  Bob (the new driver) continues normally.
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 38, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "signature", "metadata": {"signer": "J. Doe"}},
     "client_time": "2026-01-01T10:00:00Z", "base_version": 1}]', :s5)::jsonb);
RESET ROLE;
UPDATE fleet.stop SET driver_id = :bob WHERE stop_id = :s5;		-- the dispatcher reassigns s5 to Bob
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 39, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "photo", "metadata": {"file": "p1.jpg"}},
     "client_time": "2026-01-01T10:01:00Z", "base_version": 2},
    {"id": 40, "workflow": "inspection", "args": {"stop_id": %1$s, "metadata": {"damage": "none"}},
     "client_time": "2026-01-01T10:02:00Z", "base_version": 2},
    {"id": 41, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "completed"},
     "client_time": "2026-01-01T10:03:00Z", "base_version": 2},
    {"id": 42, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "x"}}, "hlc": "%2$s:5"}]', :s5, :future_ms)::jsonb);
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:B, format('[
    {"id": 1, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 2},
    {"id": 2, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "barcode", "metadata": {"code": "123"}},
     "client_time": "2026-01-01T10:30:00Z"}]', :s5)::jsonb);
SELECT p.kind, p.driver_id = :ann AS by_ann, p.metadata FROM fleet.proof_of_delivery p WHERE p.stop_id = :s5 ORDER BY p.pod_id;
SELECT status, driver_id = :bob AS bobs FROM fleet.stop WHERE stop_id = :s5;
-- a cancelled stop keeps late evidence too, and it is reviewed
RESET ROLE;
UPDATE fleet.stop SET status = 'cancelled' WHERE stop_id = :s4;
SET ROLE fleet_app;
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 43, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "note", "metadata": {"text": "left at door"}},
     "client_time": "2026-01-01T11:00:00Z"},
    {"id": 44, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "completed"}, "base_version": 1}]', :s4)::jsonb);
-- job status follows the job workflow
SELECT mutation_id, result, rule, reason FROM fleet.sync_push(:A, format('[
    {"id": 45, "workflow": "job_status", "args": {"job_id": %1$s, "status": "in_progress"}},
    {"id": 46, "workflow": "job_status", "args": {"job_id": %1$s, "status": "assigned"}},
    {"id": 47, "workflow": "job_status", "args": {"job_id": %1$s, "status": "parked"}}]', :ja)::jsonb);
SELECT status, version FROM fleet.job WHERE job_id = :ja;

-- 9. Every conflict decision is recorded with both sides and the rule.
SELECT mutation_id, workflow, entity, rule, kind, decision, review,
       (client_side -> 'args') - 'stop_id' - 'job_id' AS client_args, client_side ->> 'base_version' AS base,
       server_side ->> 'status' AS server_status, server_side ->> 'version' AS server_version,
       outcome - 'event_id' - 'pod_id' AS outcome
  FROM fleet.sync_conflict ORDER BY conflict_id;
SELECT count(*) = count(*) FILTER (WHERE m.conflict_id IS NOT NULL) AS every_merge_has_its_record
  FROM fleet.sync_mutation m WHERE m.result = 'merged';
SELECT v.reason, v.status, v.driver_id = :ann AS by_ann FROM fleet.sync_review v ORDER BY v.review_id;

-- The dispatcher resolves a review item: the offline write is then reconciled.
SELECT review_id AS first_review FROM fleet.sync_review ORDER BY review_id LIMIT 1 \gset
SELECT count(*) AS unreconciled FROM fleet.sync_mutation WHERE reconciled_at IS NULL;
SELECT fleet.sync_resolve_review(:first_review, 'evidence accepted, billed to Ann''s run');
SELECT fleet.sync_resolve_review(:first_review, 'again');
SELECT fleet.sync_resolve_review(:first_review, ' ');
SELECT fleet.sync_resolve_review(999999, 'x');
SELECT count(*) AS unreconciled FROM fleet.sync_mutation WHERE reconciled_at IS NULL;

-- 10. The trail: every processed mutation entered the event log once,
-- through the ingest path, keyed by client and mutation id.
RESET ROLE;
SELECT e.kind, count(*) AS events, count(DISTINCT e.idem_key) AS keys
  FROM fleet.event_log e WHERE e.tenant_id = :tn AND e.source = 'sync' GROUP BY e.kind ORDER BY e.kind;
SELECT count(*) AS mutations, count(*) FILTER (WHERE e.event_id IS NOT NULL) AS with_trail,
       count(*) FILTER (WHERE e.idem_key = m.client_id || ':' || m.mutation_id) AS keyed
  FROM fleet.sync_mutation m
  LEFT JOIN fleet.event_log e ON e.tenant_id = m.tenant_id AND e.event_id = m.event_id
 WHERE m.tenant_id = :tn;
SELECT e.payload - 'client_time' - 'driver_id' - 'client' #- '{args,stop_id}' AS payload FROM fleet.event_log e
  JOIN fleet.sync_mutation m ON e.tenant_id = m.tenant_id AND e.event_id = m.event_id
 WHERE m.client_id = :A AND m.mutation_id IN (3, 39, 41) ORDER BY m.mutation_id;
-- the projection agrees with the events that set it
SELECT s.status = e.payload ->> 'status' AS status_from_event
  FROM fleet.stop s JOIN fleet.event_log e ON e.tenant_id = s.tenant_id AND e.event_id = s.status_event_id
 WHERE s.stop_id = :s1;
SELECT count(*) AS pods_keyed_by_their_event FROM fleet.proof_of_delivery p
  JOIN fleet.event_log e ON e.tenant_id = p.tenant_id AND e.event_id = p.source_event_id AND e.kind = 'pod.captured'
 WHERE p.tenant_id = :tn;

-- 11. Deactivated clients are refused.
SET ROLE fleet_admin;
SELECT fleet.sync_deactivate_client(:B);
SET ROLE fleet_app;
SELECT * FROM fleet.sync_push(:B, '[]');
SELECT fleet.sync_register_client(:B, :bob);		-- the app role may reactivate it
SELECT count(*) FROM fleet.sync_push(:B, '[]');
-- the analyst reads, pushes nothing
RESET ROLE;
SET ROLE fleet_analyst;
SELECT * FROM fleet.sync_push(:B, '[]');
SELECT count(*) > 0 AS reads_mutations FROM fleet.sync_mutation;
RESET ROLE;
-- 12. The trail is logged once per page under ids its effects already name:
-- a trail key taken by another writer fails the whole push, nothing of it stays.
SET ROLE fleet_app;
SELECT last_mutation_id + 1 AS next_a FROM fleet.sync_client WHERE client_id = :A \gset
SELECT status, event_id AS forged FROM fleet.ingest_events(ARRAY['sync'], ARRAY[:A || ':' || :next_a], ARRAY['sync.mutation'], NULL, NULL,
	ARRAY['{"client": "forged", "mutation_id": 0, "workflow": "x", "result": "applied"}'::jsonb]) \gset
SELECT :'status' AS status;
SELECT set_config('fleet_test.client', :A, false) IS NOT NULL AS client, set_config('fleet_test.next', :'next_a', false) IS NOT NULL AS next,
       set_config('fleet_test.stop', :'s1', false) IS NOT NULL AS stop, set_config('fleet_test.forged', :'forged', false) IS NOT NULL AS forged;
-- (the event id in the detail depends on what earlier tests logged: compared, not printed)
DO $$
DECLARE
	m text;
	d text;
	s text;
	h text;
BEGIN
	PERFORM * FROM fleet.sync_push(current_setting('fleet_test.client')::uuid, jsonb_build_array(jsonb_build_object(
		'id', current_setting('fleet_test.next')::bigint, 'workflow', 'stop_status',
		'args', jsonb_build_object('stop_id', current_setting('fleet_test.stop')::bigint, 'status', 'arrived'))));
	RAISE NOTICE 'not refused';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, s = RETURNED_SQLSTATE, h = PG_EXCEPTION_HINT;
	RAISE NOTICE 'refused (%): %', s, m;
	RAISE NOTICE 'hint: %', h;
	RAISE NOTICE 'the detail names the key and the event holding it: %',
		d = format('Its idempotency key (source "sync", key "%s:%s") is already taken by event %s.',
		           current_setting('fleet_test.client'), current_setting('fleet_test.next'), current_setting('fleet_test.forged'));
END $$;
SELECT last_mutation_id + 1 = :next_a AS nothing_processed FROM fleet.sync_client WHERE client_id = :A;
SELECT count(*) AS stored FROM fleet.sync_mutation WHERE client_id = :A AND mutation_id = :next_a;
-- the reserved-id ingest is internal: not for the app, and every id must be given
SELECT * FROM fleet.ingest_events_reserved(ARRAY['x'], ARRAY['k'], ARRAY['sync.mutation'], NULL, NULL, ARRAY['{}'::jsonb], ARRAY[1::bigint]);
RESET ROLE;
SELECT * FROM fleet.ingest_events_reserved(ARRAY['x'], ARRAY['k'], ARRAY['sync.mutation'], NULL, NULL, ARRAY['{}'::jsonb], ARRAY[NULL::bigint]);
SELECT * FROM fleet.ingest_events_reserved(ARRAY['x', 'y'], ARRAY['k', 'l'], ARRAY['sync.mutation', 'sync.mutation'], NULL, NULL,
	ARRAY['{}'::jsonb, '{}'::jsonb], ARRAY[1::bigint]);
-- 13. A run's plain part (a driver's own stops, status forward or evidence
-- added, against the current version) is decided in memory and written
-- set-based by fleet.sync_apply_run(); it stops at the first mutation that
-- needs more, which the push decides alone, and goes on after it.
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:tn, 'cat', 'Cat');
SELECT driver_id AS cat FROM fleet.driver WHERE tenant_id = :tn AND code = 'cat' \gset
INSERT INTO fleet.job (tenant_id, code, driver_id, status) VALUES (:tn, 'J-C', :cat, 'assigned');
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :tn, j.job_id, g, :cat FROM fleet.job j, generate_series(1, 2) g WHERE j.tenant_id = :tn AND j.code = 'J-C';
SELECT s.stop_id AS c1 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'J-C' AND s.seq = 1 \gset
SELECT s.stop_id AS c2 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'J-C' AND s.seq = 2 \gset
\set C '''00000000-0000-0000-0000-0000000000c1'''
SELECT fleet.sync_register_client(:C, :cat);
-- the run itself (rolled back: called alone it logs no trail): three plain
-- mutations, then a stale base version ends it
BEGIN;
SELECT result, rule, reason, entity, entity_id = :c1 AS c1, conflict_id, version, trail_kind,
       trail_payload - 'client' - 'client_time' - 'driver_id' #- '{args,stop_id}' AS trail_payload, trail_occurred = '2026-02-01 08:00Z' AS occurred
  FROM fleet.sync_apply_run(:tn, :C, :cat, ARRAY[1, 2, 3, 4],
       ARRAY['stop_status', 'proof_of_delivery', 'stop_status', 'stop_status'],
       ARRAY[jsonb_build_object('stop_id', :c1, 'status', 'en_route'),
             jsonb_build_object('stop_id', :c1, 'kind', 'photo', 'metadata', jsonb_build_object('n', 1)),
             jsonb_build_object('stop_id', :c1, 'status', 'en_route'),
             jsonb_build_object('stop_id', :c1, 'status', 'arrived')],
       ARRAY['2026-02-01 08:00Z', '2026-02-01 08:00Z', '2026-02-01 08:00Z', '2026-02-01 08:00Z']::timestamptz[],
       ARRAY[1, 2, NULL, 1]::bigint[], ARRAY[NULL, NULL, '5:0', NULL]);
SELECT status, version, status_at = '2026-02-01 08:00Z' AS status_at FROM fleet.stop WHERE stop_id = :c1;
SELECT old_status, new_status FROM fleet.status_change WHERE entity = 'stop' AND entity_id = :c1;
SELECT kind, metadata, captured_at = '2026-02-01 08:00Z' AS captured_at FROM fleet.proof_of_delivery WHERE stop_id = :c1;
-- a first mutation that is not plain: no rows, nothing written
SELECT count(*) FROM fleet.sync_apply_run(:tn, :C, :cat, ARRAY[1], ARRAY['stop_status'],
       ARRAY[jsonb_build_object('stop_id', :c1, 'status', 'assigned')], NULL, ARRAY[2]::bigint[], NULL);
ROLLBACK;
SELECT * FROM fleet.sync_apply_run(NULL, :C, :cat, ARRAY[1], ARRAY['stop_status'], NULL, NULL, NULL, NULL);
SELECT * FROM fleet.sync_apply_run(:tn, :C, :cat, ARRAY[1, 2], ARRAY['stop_status'], NULL, NULL, NULL, NULL);
SELECT * FROM fleet.sync_apply_run(:tn, :C, :cat, ARRAY[NULL]::bigint[], ARRAY['stop_status'], NULL, NULL, NULL, NULL);
SET ROLE fleet_app;
SELECT * FROM fleet.sync_apply_run(:tn, :C, :cat, ARRAY[1], ARRAY['stop_status'], NULL, NULL, NULL, NULL);
-- through the push: plain, a stale base (merged alone), plain again
SELECT mutation_id, result, rule, reason, stored ->> 'version' AS version FROM fleet.sync_push(:C, format('[
    {"id": 1, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "base_version": 1},
    {"id": 2, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "signature"}, "base_version": 2},
    {"id": 3, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 1},
    {"id": 4, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "completed"}, "base_version": 3}]', :c1)::jsonb);
SELECT status, version FROM fleet.stop WHERE stop_id = :c1;
SELECT old_status, new_status FROM fleet.status_change WHERE entity = 'stop' AND entity_id = :c1 ORDER BY change_id;
SELECT m.mutation_id, e.kind, e.idem_key = :C || ':' || m.mutation_id AS keyed
  FROM fleet.sync_mutation m JOIN fleet.event_log e ON e.tenant_id = m.tenant_id AND e.event_id = m.event_id
 WHERE m.client_id = :C ORDER BY m.mutation_id;
-- a run whose writes fail (a captured_at no timestamp reads) is redone one
-- mutation at a time: only the bad one is rejected
SELECT mutation_id, result, reason FROM fleet.sync_push(:C, format('[
    {"id": 5, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "base_version": 1},
    {"id": 6, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "photo", "captured_at": "half past nine"}},
    {"id": 7, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 2}]', :c2)::jsonb);
SELECT status, version FROM fleet.stop WHERE stop_id = :c2;
SELECT count(*) AS proofs FROM fleet.proof_of_delivery WHERE stop_id = :c2;
RESET ROLE;
-- 14. The change-log triggers (extension/sync_log.c): a stop handed to
-- another driver is logged, with its job, for both; a field change moves
-- the server clock; the trigger functions refuse any other use.
BEGIN;
UPDATE fleet.stop SET driver_id = :bob WHERE stop_id = :c2;
SELECT entity, entity_id = :c2 AS c2, driver_id = :cat AS cat, driver_id = :bob AS bob
  FROM fleet.sync_change WHERE txid = pg_current_xact_id() ORDER BY entity, driver_id;
UPDATE fleet.stop SET lat = 48.1 WHERE stop_id = :c2;
SELECT origin, hlc_counter FROM fleet.sync_clock WHERE entity = 'stop' AND entity_id = :c2;
UPDATE fleet.stop SET lat = 48.1 WHERE stop_id = :c2;		-- not a change: the clock stays
SELECT origin, hlc_counter FROM fleet.sync_clock WHERE entity = 'stop' AND entity_id = :c2;
ROLLBACK;
-- they are statement triggers: one statement over several stops logs each
-- for its own driver (old and new rows paired by key); a statement that
-- changes nothing logs nothing; two proofs of one stop log it once; stops
-- handed to another driver together are logged for both drivers, each job
-- and vehicle once per driver, and each stop's clock moves; stops deleted
-- together are logged with their job, once, for their driver
BEGIN;
CREATE TEMP TABLE log_mark AS SELECT COALESCE(max(change_id), 0) AS m FROM fleet.sync_change;
UPDATE fleet.stop SET status = 'en_route' WHERE stop_id IN (:c1, :c2, :s1);
SELECT entity, entity_id = :c1 AS c1, entity_id = :c2 AS c2, entity_id = :s1 AS s1, driver_id = :cat AS cat, driver_id = :ann AS ann
  FROM fleet.sync_change WHERE change_id > (SELECT m FROM log_mark) ORDER BY entity, entity_id;
UPDATE log_mark SET m = (SELECT max(change_id) FROM fleet.sync_change);
UPDATE fleet.stop SET status = 'en_route' WHERE false;
INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at, metadata)
VALUES (:tn, :c1, 'photo', :cat, now(), '{}'), (:tn, :c1, 'note', :cat, now(), '{}');
SELECT entity, entity_id = :c1 AS c1, driver_id = :cat AS cat
  FROM fleet.sync_change WHERE change_id > (SELECT m FROM log_mark) ORDER BY entity, entity_id;
UPDATE log_mark SET m = (SELECT max(change_id) FROM fleet.sync_change);
CREATE TEMP TABLE clock_mark AS
SELECT s.stop_id, c.hlc_ms, c.hlc_counter
  FROM fleet.stop s LEFT JOIN fleet.sync_clock c ON c.tenant_id = s.tenant_id AND c.entity = 'stop' AND c.entity_id = s.stop_id
 WHERE s.stop_id IN (:c1, :c2, :s1);
UPDATE fleet.stop SET driver_id = :bob, lat = COALESCE(lat, 0) + 0.5 WHERE stop_id IN (:c1, :c2, :s1);
SELECT c.entity, CASE c.driver_id WHEN :cat THEN 'cat' WHEN :ann THEN 'ann' WHEN :bob THEN 'bob' END AS driver,
       count(*) AS logged, count(DISTINCT c.entity_id) AS entities,
       count(*) FILTER (WHERE c.entity = 'job' AND c.entity_id IN (SELECT job_id FROM fleet.stop WHERE stop_id IN (:c1, :c2, :s1))) AS their_jobs
  FROM fleet.sync_change c WHERE c.change_id > (SELECT m FROM log_mark) GROUP BY 1, 2 ORDER BY 1, 2;
SELECT m.stop_id = :s1 AS s1, c.origin,
       (c.hlc_ms, c.hlc_counter) > (COALESCE(m.hlc_ms, 0), COALESCE(m.hlc_counter, -1)) AS moved
  FROM clock_mark m JOIN fleet.sync_clock c ON c.entity = 'stop' AND c.entity_id = m.stop_id ORDER BY m.stop_id;
UPDATE fleet.stop SET driver_id = :cat WHERE stop_id IN (:c1, :c2);
UPDATE log_mark SET m = (SELECT max(change_id) FROM fleet.sync_change);
DELETE FROM fleet.proof_of_delivery WHERE stop_id = :c1;
DELETE FROM fleet.stop WHERE stop_id IN (:c1, :c2);
SELECT entity, entity_id = :c1 AS c1, entity_id = :c2 AS c2, driver_id = :cat AS cat
  FROM fleet.sync_change WHERE change_id > (SELECT m FROM log_mark) ORDER BY entity, entity_id;
ROLLBACK;
-- the version trigger (extension/sync_version.c): a change moves the
-- version unless the writer set it; an update that changes nothing does
-- not (NULLs equal); a status set without its event clears the event,
-- except under fleet_sync.repair; jobs the same
BEGIN;
UPDATE fleet.stop SET address = 'V 1', status_event_id = 7 WHERE stop_id = :c2;
SELECT version AS v0 FROM fleet.stop WHERE stop_id = :c2 \gset
UPDATE fleet.stop SET address = 'V 1' WHERE stop_id = :c2;
UPDATE fleet.stop SET lat = NULL WHERE stop_id = :c2 AND lat IS NULL;
SELECT version - :v0 AS moved_by_nothing FROM fleet.stop WHERE stop_id = :c2;
UPDATE fleet.stop SET address = 'V 2' WHERE stop_id = :c2;
SELECT version - :v0 AS moved_by_a_change FROM fleet.stop WHERE stop_id = :c2;
UPDATE fleet.stop SET address = 'V 3', version = version + 10 WHERE stop_id = :c2;
SELECT version - :v0 AS set_by_writer FROM fleet.stop WHERE stop_id = :c2;
UPDATE fleet.stop SET status = 'en_route', status_event_id = 8 WHERE stop_id = :c2;
SELECT status, status_event_id AS named_event FROM fleet.stop WHERE stop_id = :c2;
UPDATE fleet.stop SET status = 'arrived' WHERE stop_id = :c2;
SELECT status, status_event_id AS event_cleared FROM fleet.stop WHERE stop_id = :c2;
UPDATE fleet.stop SET status_event_id = 9 WHERE stop_id = :c2;
SET LOCAL fleet_sync.repair = on;
UPDATE fleet.stop SET status = 'completed' WHERE stop_id = :c2;
SELECT status, status_event_id AS kept_under_repair FROM fleet.stop WHERE stop_id = :c2;
UPDATE fleet.job SET planned_start = '2026-03-01 08:00Z' WHERE code = 'J-C' RETURNING version AS job_version;
ROLLBACK;
CREATE TABLE public.sync_log_misuse (tenant_id bigint, stop_id bigint, driver_id bigint, job_id bigint);
CREATE TRIGGER misuse BEFORE INSERT ON public.sync_log_misuse FOR EACH ROW EXECUTE FUNCTION fleet.sync_log_stop();
INSERT INTO public.sync_log_misuse VALUES (:tn, 1, 1, 1);
DROP TRIGGER misuse ON public.sync_log_misuse;
CREATE TRIGGER misuse AFTER UPDATE ON public.sync_log_misuse FOR EACH STATEMENT EXECUTE FUNCTION fleet.sync_log_stop();
INSERT INTO public.sync_log_misuse VALUES (:tn, 1, 1, 1);
UPDATE public.sync_log_misuse SET driver_id = 2;
DROP TRIGGER misuse ON public.sync_log_misuse;
CREATE TRIGGER misuse AFTER UPDATE ON public.sync_log_misuse REFERENCING OLD TABLE AS o NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.sync_log_pod();
UPDATE public.sync_log_misuse SET driver_id = 3;
DROP TRIGGER misuse ON public.sync_log_misuse;
CREATE TRIGGER misuse AFTER UPDATE ON public.sync_log_misuse FOR EACH ROW EXECUTE FUNCTION fleet.sync_bump_version();
UPDATE public.sync_log_misuse SET driver_id = 4;
DROP TRIGGER misuse ON public.sync_log_misuse;
CREATE TRIGGER misuse BEFORE UPDATE ON public.sync_log_misuse FOR EACH ROW EXECUTE FUNCTION fleet.sync_bump_version();
UPDATE public.sync_log_misuse SET driver_id = 5;
DROP TABLE public.sync_log_misuse;
-- 15. The run reads a mutation's clock itself (valid_hlc() in
-- extension/sync_push.c): it must take exactly the clocks
-- fleet.sync_parse_hlc() accepts, or a mutation whose clock
-- fleet.sync_apply() rejects could be applied by the run.  Both refuse a
-- wall time later than the statement's start + fleet.future_margin.
CREATE FUNCTION pg_temp.hlc_ok(h text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM fleet.sync_parse_hlc(h);
	RETURN true;
EXCEPTION WHEN invalid_parameter_value OR datetime_field_overflow THEN
	RETURN false;
END $$;
-- the clocks at the window's edge, computed in the calling statement (the
-- same statement_timestamp() as the parser and the run see)
CREATE FUNCTION pg_temp.hlc_edges(t bigint, c uuid, d bigint, s bigint)
RETURNS TABLE (ord int, what text, parses boolean, run_takes_it boolean) LANGUAGE plpgsql AS $$
DECLARE
	edge bigint := floor((extract(epoch FROM statement_timestamp())
	                      + extract(epoch FROM current_setting('fleet.future_margin')::interval)) * 1000);
	x record;
BEGIN
	FOR x IN SELECT * FROM (VALUES (1, 'now + margin', edge || ':0'),
	                               (2, 'now + margin, top counter', edge || ':999999999'),
	                               (3, 'now + margin + 1 ms', (edge + 1) || ':0'),
	                               (4, 'now + margin + 1 day', (edge + 86400000) || ':0'),
	                               (5, 'now - 1 ms', (edge - 1 - (extract(epoch FROM current_setting('fleet.future_margin')::interval) * 1000)::bigint) || ':0')) v (o, w, h)
	LOOP
		ord := x.o; what := x.w; parses := pg_temp.hlc_ok(x.h);
		run_takes_it := (SELECT count(*) FROM fleet.sync_apply_run(t, c, d, ARRAY[1], ARRAY['stop_status'],
		                                                          ARRAY[jsonb_build_object('stop_id', s, 'status', 'en_route')],
		                                                          NULL, NULL, ARRAY[x.h])) = 1;
		RETURN NEXT;
	END LOOP;
END $$;
BEGIN;
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :tn, j.job_id, 3, :cat FROM fleet.job j WHERE j.tenant_id = :tn AND j.code = 'J-C'
RETURNING stop_id AS c3 \gset
SELECT x.ord, x.h, pg_temp.hlc_ok(x.h) AS parses,
       (SELECT count(*) FROM fleet.sync_apply_run(:tn, :C, :cat, ARRAY[1], ARRAY['stop_status'],
                                                 ARRAY[jsonb_build_object('stop_id', :c3, 'status', 'en_route')],
                                                 NULL, NULL, ARRAY[x.h])) = 1 AS run_takes_it
  FROM unnest(ARRAY['1:0', '0:0', '123456789012345:123456789', '1234567890123456:0', '1:1234567890',
                    ':0', '1:', '1', '1:2:3', ' 1:0', '1:0 ', E'1:0\n', '+1:0', '-1:0', '1.5:0',
                    U&'\FF11:0', U&'\0663:0', 'a:0', '', '0x1:0', '00000000000001:000000001',
                    '99999999999999:0', '999999999999999:999999999']) WITH ORDINALITY x (h, ord)
 ORDER BY x.ord;
SELECT * FROM pg_temp.hlc_edges(:tn, :C, :cat, :c3) ORDER BY ord;
SET LOCAL fleet.future_margin = 0;
SELECT * FROM pg_temp.hlc_edges(:tn, :C, :cat, :c3) ORDER BY ord;
SET LOCAL fleet.future_margin = '1500ms';
SELECT * FROM pg_temp.hlc_edges(:tn, :C, :cat, :c3) ORDER BY ord;
SET LOCAL fleet.future_margin = '7d';
SELECT * FROM pg_temp.hlc_edges(:tn, :C, :cat, :c3) ORDER BY ord;
ROLLBACK;
-- 16. The run builds its trail payloads in C (extension/sync_push.c): for
-- the same mutation they must equal what fleet.sync_apply() builds by SQL,
-- client time and captured_at written in the session's zone included.
BEGIN;
SET LOCAL TimeZone = 'America/New_York';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :tn, j.job_id, 4, :cat FROM fleet.job j WHERE j.tenant_id = :tn AND j.code = 'J-C'
RETURNING stop_id AS c4 \gset
CREATE TEMP TABLE trail_case (n int, wf text, args jsonb, ct timestamptz, bv bigint) ON COMMIT DROP;
INSERT INTO trail_case VALUES
 (1, 'stop_status', jsonb_build_object('stop_id', :c4, 'status', 'en_route'), '2026-01-05 08:00Z', 1),
 (2, 'stop_status', jsonb_build_object('stop_id', :c4, 'status', 'assigned'), NULL, NULL),
 (3, 'proof_of_delivery', jsonb_build_object('stop_id', :c4, 'kind', 'photo', 'metadata', jsonb_build_object('a', 1, 'b', 'x')),
  '2026-01-05 08:00:01.5Z', 1),
 (4, 'proof_of_delivery', jsonb_build_object('stop_id', :c4, 'kind', 'signature', 'captured_at', '2026-01-05 07:00+03'),
  '2026-01-05 08:00Z', NULL),
 (5, 'proof_of_delivery', jsonb_build_object('stop_id', :c4, 'kind', 'note'), NULL, NULL),	-- captured now
 (6, 'stop_status', jsonb_build_object('stop_id', :c4, 'status', 'completed', 'extra', true), 'infinity', 1),
 (7, 'inspection', jsonb_build_object('stop_id', :c4, 'metadata', jsonb_build_object('damage', 'none')), '2026-01-05 08:00Z', 1);
CREATE TEMP TABLE trail_got (n int, path text, payload jsonb, occurred timestamptz) ON COMMIT DROP;
DO $$
DECLARE
	c record;
	p jsonb;
	o timestamptz;
	t bigint := fleet.current_tenant();
	d bigint := (SELECT driver_id FROM fleet.driver WHERE code = 'cat');
BEGIN
	FOR c IN SELECT * FROM trail_case ORDER BY n LOOP
		p := NULL; o := NULL;
		BEGIN		-- each path alone, its writes rolled back
			SELECT trail_payload, trail_occurred INTO p, o
			  FROM fleet.sync_apply_run(t, '00000000-0000-0000-0000-0000000000c1', d, ARRAY[1], ARRAY[c.wf], ARRAY[c.args],
			                            ARRAY[c.ct], ARRAY[c.bv], NULL);
			RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001';
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		INSERT INTO trail_got VALUES (c.n, 'run', p, o);
		p := NULL; o := NULL;
		BEGIN
			SELECT trail_payload, trail_occurred INTO p, o
			  FROM fleet.sync_apply(t, '00000000-0000-0000-0000-0000000000c1', d, 1, c.wf, c.args, c.ct, c.bv, NULL);
			RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001';
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		INSERT INTO trail_got VALUES (c.n, 'single', p, o);
	END LOOP;
END $$;
SELECT s.n, r.payload IS NOT NULL AS by_run, r.payload = s.payload AS same_payload, r.occurred = s.occurred AS same_occurred,
       s.payload #>> '{effect,status}' AS status, s.payload #>> '{effect,kind}' AS kind, s.payload #> '{effect,metadata}' AS metadata,
       CASE WHEN s.n = 5 THEN 'now' ELSE s.payload #>> '{effect,captured_at}' END AS captured_at,
       s.payload ->> 'client_time' AS client_time
  FROM trail_got s LEFT JOIN trail_got r ON r.n = s.n AND r.path = 'run'
 WHERE s.path = 'single' ORDER BY s.n;
ROLLBACK;
-- 17. A clock later than now + fleet.future_margin would win every lww_hlc
-- conflict for ever: it rejects its mutation (whatever the workflow, the
-- run's plain path too), and the rest of the push is decided.  An old clock
-- is taken: it only loses.  (The clocks are computed, never printed.)
BEGIN;
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT :tn, j.job_id, 5, :cat, 'Cat Street 5' FROM fleet.job j WHERE j.tenant_id = :tn AND j.code = 'J-C'
RETURNING stop_id AS c5 \gset
SELECT last_mutation_id + 1 AS next_c FROM fleet.sync_client WHERE client_id = :C \gset
SELECT (extract(epoch FROM now()) * 1000)::bigint + 60000 AS future_ms,
       (extract(epoch FROM now()) * 1000)::bigint + 86400000 AS day_ahead_ms \gset
SET ROLE fleet_app;
SELECT mutation_id - :next_c AS n, result, rule, reason FROM fleet.sync_push(:C, format('[
    {"id": %2$s, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "hlc": "99999999999999:0"},
    {"id": %3$s, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Tomorrow Road"}}, "hlc": "%6$s:0"},
    {"id": %4$s, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Soon Street"}}, "hlc": "%7$s:0"},
    {"id": %5$s, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "hlc": "1:0"},
    {"id": %8$s, "workflow": "stop_adjust", "args": {"stop_id": %1$s, "fields": {"address": "Long Ago Lane"}}, "hlc": "1:0"}]',
    :c5, :next_c, :next_c + 1, :next_c + 2, :next_c + 3, :day_ahead_ms, :future_ms, :next_c + 4)::jsonb) ORDER BY 1;
SELECT address, status FROM fleet.stop WHERE stop_id = :c5;
SELECT hlc_ms = :future_ms AS future_ms, origin FROM fleet.sync_clock WHERE entity = 'stop' AND entity_id = :c5;
SELECT mutation_id - :next_c AS n, result, reason FROM fleet.sync_mutation
 WHERE client_id = :C AND mutation_id >= :next_c ORDER BY mutation_id;
ROLLBACK;
-- 18. A run over several stops of a tenant with many: each stop is locked by
-- its primary key and updated by the version it locked (the stops of other
-- jobs are neither read by the lock nor written).
BEGIN;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:tn, 'dan', 'Dan');
SELECT driver_id AS dan FROM fleet.driver WHERE tenant_id = :tn AND code = 'dan' \gset
INSERT INTO fleet.job (tenant_id, code, driver_id, status)
SELECT :tn, 'J-D' || g, :dan, 'assigned' FROM generate_series(1, 40) g;
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :tn, j.job_id, g, :dan FROM fleet.job j, generate_series(1, 10) g WHERE j.tenant_id = :tn AND j.code LIKE 'J-D%';
SELECT s.stop_id AS d1 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'J-D7' AND s.seq = 3 \gset
SELECT s.stop_id AS d2 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'J-D2' AND s.seq = 9 \gset
SELECT s.stop_id AS d3 FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'J-D31' AND s.seq = 1 \gset
-- a dispatcher's edit first moves d2 to another version in this transaction
UPDATE fleet.stop SET address = 'Edited' WHERE stop_id = :d2;
SELECT result, CASE entity_id WHEN :d1 THEN 'd1' WHEN :d2 THEN 'd2' WHEN :d3 THEN 'd3' END AS stop, version, trail_kind,
       trail_payload ->> 'job' AS job, trail_payload ->> 'seq' AS seq
  FROM fleet.sync_apply_run(:tn, '00000000-0000-0000-0000-0000000000c1', :dan, ARRAY[1, 2, 3, 4, 5],
       ARRAY['stop_status', 'stop_status', 'proof_of_delivery', 'stop_status', 'stop_status'],
       ARRAY[jsonb_build_object('stop_id', :d2, 'status', 'en_route'),
             jsonb_build_object('stop_id', :d1, 'status', 'en_route'),
             jsonb_build_object('stop_id', :d3, 'kind', 'photo'),
             jsonb_build_object('stop_id', :d2, 'status', 'arrived'),
             jsonb_build_object('stop_id', :d1, 'status', 'arrived')],
       NULL, NULL, NULL);
SELECT CASE stop_id WHEN :d1 THEN 'd1' WHEN :d2 THEN 'd2' WHEN :d3 THEN 'd3' END AS stop, status, version, address
  FROM fleet.stop WHERE stop_id IN (:d1, :d2, :d3) ORDER BY 1;
SELECT CASE entity_id WHEN :d1 THEN 'd1' WHEN :d2 THEN 'd2' END AS stop, old_status, new_status
  FROM fleet.status_change WHERE entity = 'stop' AND entity_id IN (:d1, :d2) ORDER BY 1, change_id;
SELECT count(*) AS other_stops_changed FROM fleet.stop s
 WHERE s.tenant_id = :tn AND s.driver_id = :dan AND s.stop_id NOT IN (:d1, :d2, :d3)
   AND (s.status <> 'assigned' OR s.version <> 1);
ROLLBACK;
SELECT * FROM fleet.check_schema_rules();
