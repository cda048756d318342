-- Input from outside, checked in the database: NULL arguments and NULL
-- array elements get a per-row rejection or a clear error (never a crash);
-- every time from outside is an RFC 3339 instant in the accepted window
-- (2000-01-01T00:00:00Z to now + fleet.future_margin) or is rejected per
-- row; stored extreme times cannot make a figure fail; a kind's schema
-- checks value domains at ingest; a failing scheduled reconcile is seen as
-- failed.  Runs last but one: everything it leaves behind is rolled back or
-- in its own tenant.
\set VERBOSITY terse
SELECT fleet.create_tenant('Input Checks') AS ti \gset
SELECT fleet.set_tenant(:ti) IS NOT NULL AS in_tenant;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:ti, 'IC-1');
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
SELECT :ti, 'ic-dev-1', 'osmand', vehicle_id FROM fleet.vehicle WHERE tenant_id = :ti AND code = 'IC-1';
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:ti, 'ida', 'Ida');
SELECT driver_id AS ida FROM fleet.driver WHERE tenant_id = :ti AND code = 'ida' \gset
INSERT INTO fleet.job (tenant_id, code, driver_id, status) VALUES (:ti, 'IC-J', :ida, 'assigned');
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id)
SELECT :ti, j.job_id, 1, :ida FROM fleet.job j WHERE j.tenant_id = :ti AND j.code = 'IC-J';
SELECT stop_id AS st FROM fleet.stop WHERE tenant_id = :ti \gset
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:ti, 'ic-provider', 'ic-secret-0123456789');
CREATE FUNCTION pg_temp.sign(secret bytea, ts bigint, body text) RETURNS text LANGUAGE sql
	AS $$ SELECT 'sha256=' || encode(fleet.hmac_sha256(convert_to(ts::text || '.' || body, 'UTF8'), secret), 'hex') $$;
SELECT extract(epoch FROM now())::bigint AS now_s \gset
SELECT count(*) AS events_before FROM fleet.event_log WHERE tenant_id = :ti \gset

-- 1. NULL: a NULL payload (it crashed the server) and NULL elements of
-- every array are rejected per row; a NULL array that is required is 22004.
SET ROLE fleet_app;
SELECT * FROM fleet.ingest_event('s', 'k', 'audit.note', NULL);
SELECT idx, status, reason FROM fleet.ingest_events(
	ARRAY[NULL, 's', 's', 's', 's'], ARRAY['k1', NULL, 'k3', 'k4', 'k5'],
	ARRAY['audit.note', 'audit.note', NULL, 'audit.note', 'audit.note'],
	ARRAY[NULL, NULL, NULL, NULL, NULL]::int[], ARRAY[NULL, NULL, NULL, NULL, NULL]::timestamptz[],
	ARRAY['{"text": "a"}', '{"text": "b"}', '{"text": "c"}', NULL, 'null']::jsonb[]);
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM fleet.ingest_events(NULL, ARRAY['k'], ARRAY['audit.note'], NULL, NULL, ARRAY['{}'::jsonb]);
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_events(ARRAY['s'], ARRAY['k'], ARRAY['audit.note'], NULL, NULL, NULL);
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_events(ARRAY['s'], ARRAY['k', 'l'], ARRAY['audit.note'], NULL, NULL, ARRAY['{}'::jsonb]);
\echo sqlstate :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
RESET ROLE;

-- 2. Times from outside.  RFC 3339 only: no words, no DateStyle, no zone names.
SELECT t, fleet.parse_instant(t) AT TIME ZONE 'UTC' AS utc
  FROM unnest(ARRAY['2026-01-05T08:00:00Z', '2026-01-05t10:00:00.123456789+02:00', '2026-01-05 08:00:00-00:30',
                    '2024-02-29T23:59:59z']) t;
DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['infinity', '-infinity', 'yesterday', 'now', '03/04/2026', '2026-01-05', '2026-01-05T08:00:00',
	                         '2026-01-05T08:00Z', '2026-01-05T08:00:00 UTC', '2026-01-05T08:00:00Europe/Berlin',
	                         '2026-02-29T08:00:00Z', '2026-13-01T08:00:00Z', '2026-01-05T24:00:00Z', '2026-01-05T08:00:60Z',
	                         '2026-01-05T08:00:00+24:00', '2026-01-05T08:00:00.Z', '+2026-01-05T08:00:00Z',
	                         '2026-01-05T08:00:00Z ', '', '0000-01-01T00:00:00Z', 'epoch', 'allballs'] LOOP
		BEGIN
			PERFORM fleet.parse_instant(t);
			RAISE NOTICE '% accepted', pg_catalog.quote_literal(t);
		EXCEPTION WHEN invalid_datetime_format THEN
			RAISE NOTICE '% refused (22007)', pg_catalog.quote_literal(t);
		END;
	END LOOP;
END
$$;
SELECT fleet.parse_instant(NULL) IS NULL AS null_stays_null;

-- Fix times: infinite or before 2000 is bad_fix_time, NULL missing_fix_time.
SET ROLE fleet_ingest;
SELECT idx, status, reason FROM fleet.ingest_positions(
	ARRAY['ic-dev-1', 'ic-dev-1', 'ic-dev-1', 'ic-dev-1', 'ic-dev-1', 'ic-dev-1'],
	ARRAY['infinity', '-infinity', '1970-01-01 00:00:00+00', '1999-12-31 23:59:59.999+00', NULL,
	      now() + interval '1 day']::timestamptz[],
	ARRAY[1, 1, 1, 1, 1, 1]::float8[], ARRAY[2, 2, 2, 2, 2, 2]::float8[], NULL, NULL, NULL, NULL, NULL, NULL);
RESET ROLE;

-- occurred_at: the same window.
SELECT fleet.set_tenant(:ti) IS NOT NULL AS in_tenant;
SET ROLE fleet_app;
SELECT idx, status, reason FROM fleet.ingest_events(
	ARRAY['s', 's', 's', 's'], ARRAY['t1', 't2', 't3', 't4'], ARRAY['audit.note', 'audit.note', 'audit.note', 'audit.note'],
	NULL, ARRAY['infinity', '-infinity', '1999-12-31 23:59:59+00', now() + interval '1 day']::timestamptz[],
	ARRAY['{"text": "a"}', '{"text": "a"}', '{"text": "a"}', '{"text": "a"}']::jsonb[]);
RESET ROLE;

-- Webhooks: an event without a payload is rejected (it crashed the server);
-- a time that is not RFC 3339 text is 22007, nothing stored.
SELECT format('{"events": [{"key": "w1", "kind": "audit.note"}, {"key": "w2", "kind": "audit.note", "payload": null},'
              ' {"key": "w3", "kind": "audit.note", "payload": {"text": "x"}, "occurred_at": "%s"}]}',
              to_char(now() AT TIME ZONE 'UTC' - interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) AS wbody \gset
SELECT pg_temp.sign('ic-secret-0123456789', :now_s, :'wbody') AS wsig \gset
BEGIN;
SET LOCAL ROLE fleet_ingest;
SELECT item, idx, status, reason FROM fleet.ingest_webhook('ic-provider', :now_s, :'wsig', :'wbody');
ROLLBACK;
SELECT * FROM fleet.ingest_webhook('ic-provider', :now_s,
	pg_temp.sign('ic-secret-0123456789', :now_s, '{"events": [{"key": "w4", "kind": "audit.note", "payload": {"text": "x"}, "occurred_at": "yesterday"}]}'),
	'{"events": [{"key": "w4", "kind": "audit.note", "payload": {"text": "x"}, "occurred_at": "yesterday"}]}');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('ic-provider', :now_s,
	pg_temp.sign('ic-secret-0123456789', :now_s, '{"positions": [{"device": "ic-dev-1", "time": "03/04/2026", "lat": 1, "lon": 2}]}'),
	'{"positions": [{"device": "ic-dev-1", "time": "03/04/2026", "lat": 1, "lon": 2}]}');
\echo sqlstate :LAST_ERROR_SQLSTATE

-- Driver apps: a client_time that is not an RFC 3339 instant in the window
-- is rejected per mutation, naming the field; the others are decided.
SELECT fleet.set_tenant(:ti) IS NOT NULL AS in_tenant;
\set C '''00000000-0000-0000-0000-0000000015c1'''
SET ROLE fleet_app;
SELECT fleet.sync_register_client(:C, :ida) IS NOT NULL AS registered;
SELECT format('[
  {"id": 1, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": "infinity"},
  {"id": 2, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": "yesterday"},
  {"id": 3, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": "03/04/2026"},
  {"id": 4, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": 1767225600},
  {"id": 5, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": "1999-12-31T23:59:59Z"},
  {"id": 6, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": "9999-12-31T23:59:59Z"},
  {"id": 7, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "en_route"}, "client_time": "2026-01-05T08:00:00+01:00"},
  {"id": 8, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "client_time": null}]', :st) AS push \gset
SELECT mutation_id, result, reason FROM fleet.sync_push(:C, :'push');
-- the same batch again: every one a duplicate with its stored result
SELECT mutation_id, result, reason FROM fleet.sync_push(:C, :'push');
RESET ROLE;
SELECT mutation_id, result, client_time AT TIME ZONE 'UTC' AS client_time_utc, payload -> 'client_time' AS sent
  FROM fleet.sync_mutation WHERE tenant_id = :ti ORDER BY mutation_id;
SELECT status FROM fleet.stop WHERE stop_id = :st;
-- each rejection has its trail event
SELECT payload ->> 'mutation_id' AS mutation_id, payload ->> 'result' AS result, payload ->> 'reason' AS reason
  FROM fleet.event_log WHERE tenant_id = :ti AND kind = 'sync.mutation' AND payload ->> 'result' = 'rejected'
 ORDER BY (payload ->> 'mutation_id')::int;

-- 3. Nothing refused above was stored as an event.
SELECT count(*) - :events_before AS events_stored, count(*) FILTER (WHERE source <> 'sync') AS not_trail
  FROM fleet.event_log WHERE tenant_id = :ti;

-- 4. A kind's schema checks value domains: an event that could never apply
-- is rejected at ingest naming the field, not retried into a dead letter.
BEGIN;
SET LOCAL ROLE fleet_app;
SELECT idx, status, reason FROM fleet.ingest_events(
	ARRAY['d', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'd', 'd'],
	ARRAY['j1', 'j2', 'j3', 'j4', 's1', 's2', 's3', 'p1', 'c1', 'c2', 'c3', 'c4'],
	ARRAY['job.status', 'job.status', 'job.status', 'job.status', 'stop.status', 'stop.status', 'stop.status',
	      'pod.captured', 'charge.created', 'charge.created', 'charge.created', 'charge.created'],
	ARRAY[NULL, NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL]::int[], NULL,
	ARRAY['{"job": "IC-J", "status": "started"}', '{"job": "IC-J", "status": "flying"}',
	      '{"job": "IC-J", "status": "completed"}', '{"job_code": "IC-J", "state": "started"}',
	      '{"job": "IC-J", "seq": 1.5, "status": "arrived"}', '{"job": "IC-J", "seq": 0, "status": "arrived"}',
	      '{"job": "IC-J", "seq": 1, "status": "arrived", "extra": [1]}',
	      '{"job": "IC-J", "seq": 1, "kind": "selfie"}',
	      '{"customer": "C", "kind": "toll", "amount": 12.5, "currency": "eur"}',
	      '{"customer": "C", "kind": "toll", "amount": 1e15, "currency": "EUR"}',
	      '{"customer": "C", "kind": "toll", "amount": 12.5, "currency": "EUR", "job": 7}',
	      '{"customer": "C", "kind": "toll", "amount": 12.5, "currency": "EUR"}']::jsonb[]);
ROLLBACK;
-- Kinds of your own use the same specs; a bad spec is refused.
BEGIN;
SET LOCAL ROLE fleet_admin;
SELECT fleet.register_event_kind('ic.reading', 'audit', 1,
	'{"sensor": {"type": "string", "max_length": 3}, "celsius": {"type": "number", "min": -90, "max": 60},
	  "count": "integer", "at": {"type": "string", "format": "date-time", "optional": true}, "note": "any"}');
SELECT fleet.set_tenant(:ti) IS NOT NULL AS in_tenant;
SELECT idx, status, reason FROM fleet.ingest_events(
	array_fill('r'::text, ARRAY[8]), ARRAY['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8'], array_fill('ic.reading'::text, ARRAY[8]),
	NULL, NULL,
	ARRAY['{"sensor": "a", "celsius": 20, "count": 1, "note": null}',
	      '{"sensor": "abcd", "celsius": 20, "count": 1, "note": 1}',
	      '{"sensor": "a", "celsius": 61, "count": 1, "note": 1}',
	      '{"sensor": "a", "celsius": -90.5, "count": 1, "note": 1}',
	      '{"sensor": "a", "celsius": 20, "count": 1.25, "note": 1}',
	      '{"sensor": "a", "celsius": 20, "count": 1, "note": 1, "at": "yesterday"}',
	      '{"sensor": "a", "celsius": 20, "count": 1, "note": 1, "at": "2026-01-05T08:00:00Z"}',
	      '{"sensor": "a", "celsius": 20, "count": 1}']::jsonb[]);
\set VERBOSITY default
SAVEPOINT s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": "date"}');
ROLLBACK TO s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": {"type": "string", "enum": []}}');
ROLLBACK TO s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": {"type": "string", "pattern": "^a"}}');
ROLLBACK TO s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": {"type": "number", "min": "1"}}');
ROLLBACK TO s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": {"optional": true}}');
ROLLBACK TO s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": {"type": "string", "format": "email"}}');
ROLLBACK TO s;
SELECT fleet.register_event_kind('ic.bad', 'audit', 1, '{"x": 5}');
ROLLBACK;
\set VERBOSITY terse

-- 5. Stored extreme times (written directly by a superuser) cannot make a
-- figure fail: metrics, health, sync figures and reconciliation leave them out.
BEGIN;
SELECT fleet.set_tenant(:ti) IS NOT NULL AS in_tenant;
UPDATE fleet.sync_mutation SET client_time = CASE mutation_id WHEN 1 THEN 'infinity'::timestamptz
                                                               WHEN 2 THEN '-infinity'
                                                               WHEN 3 THEN '294276-12-31 23:59:59+00'
                                                               WHEN 4 THEN '4713-11-24 00:00:00+00 BC' END
 WHERE tenant_id = :ti AND mutation_id <= 4;
SELECT count(*) > 0 AS metrics FROM fleet.metrics();
SELECT count(*) > 0 AS health FROM fleet.health();
SELECT workflow, mutations, rejected FROM fleet.sync_figures(now() - interval '1 hour', now() + interval '1 hour');
SELECT count(*) >= 0 AS reconciled FROM fleet.reconcile(now() - interval '1 hour', now(), true);
ROLLBACK;

-- 6. A failing scheduled reconcile is seen as failed: pg_cron calls a
-- procedure that commits each tenant's run, then raises naming the tenants
-- that failed (cron.job_run_details then says failed).
SELECT jobname, schedule, command FROM cron.job WHERE jobname = 'fleet.reconcile';
CREATE FUNCTION pg_temp.boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.tenant_id = (SELECT tenant_id FROM fleet.tenant WHERE name = 'Input Checks') THEN
		RAISE EXCEPTION 'reconcile of this tenant breaks' USING ERRCODE = 'data_exception';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER boom BEFORE INSERT ON fleet.sync_reconcile_run FOR EACH ROW EXECUTE FUNCTION pg_temp.boom();
SELECT count(*) AS runs_before FROM fleet.sync_reconcile_run \gset
SELECT count(*) AS active_tenants FROM fleet.tenant WHERE status = 'active' \gset
SET client_min_messages = error;
CALL fleet.reconcile_scheduled('1 hour', false);
\echo sqlstate :LAST_ERROR_SQLSTATE
-- every other tenant's run was kept
SELECT count(*) - :runs_before = :active_tenants - 1 AS other_runs_kept FROM fleet.sync_reconcile_run;
-- the function form tries every tenant, then fails as a whole
SELECT count(*) AS runs_before FROM fleet.sync_reconcile_run \gset
SELECT fleet.reconcile_all('1 hour', false);
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT count(*) - :runs_before AS runs_kept FROM fleet.sync_reconcile_run;
SELECT fleet.reconcile_all(NULL);
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT fleet.reconcile_all('1 hour', NULL);
\echo sqlstate :LAST_ERROR_SQLSTATE
RESET client_min_messages;
DROP TRIGGER boom ON fleet.sync_reconcile_run;
SELECT fleet.clear_tenant();
