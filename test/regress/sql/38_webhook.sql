-- fleet.ingest_webhook(): provider webhooks signed with HMAC-SHA256 over
-- "<timestamp>.<body>", a replay window, every refusal (SQLSTATE 28000,
-- nothing stored), malformed bodies, positions and events ingested in one
-- transaction with per-item statuses, and who may read the secret.
\set VERBOSITY terse
SELECT fleet.create_tenant('Webhook North') AS wn \gset
SELECT fleet.create_tenant('Webhook South') AS ws \gset
SELECT fleet.set_tenant(:wn) IS NOT NULL AS in_tenant;
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES
	(:wn, 'prov-truck-1', 'provider'), (:wn, 'prov-truck-2', 'provider');
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:wn, 'acme-telematics', '\x000102030405060708090a0b0c0d0e0f10'::bytea);
INSERT INTO fleet.provider (tenant_id, name, secret, replay_window) VALUES (:wn, 'tight', 'tight-secret-0123456789', 10);
INSERT INTO fleet.provider (tenant_id, name, secret, active) VALUES (:wn, 'retired', 'retired-secret-0123456789', false);
-- A name is one URL: unique across tenants; short secrets and bad names are refused.
SELECT fleet.set_tenant(:ws) IS NOT NULL AS in_tenant;
INSERT INTO fleet.device (tenant_id, identifier, protocol) VALUES (:ws, 'prov-south-1', 'provider');
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:ws, 'acme-telematics', 'another-secret-0123456789');
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:ws, 'short', 'too-short');
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:ws, 'Bad Name!', 'another-secret-0123456789');
INSERT INTO fleet.provider (tenant_id, name, secret) VALUES (:ws, 'south-feed', 'south-secret-0123456789');
SELECT fleet.clear_tenant();

-- Signing helper for the test (what a provider computes).
CREATE FUNCTION pg_temp.sign(secret bytea, ts bigint, body text) RETURNS text LANGUAGE sql
	AS $$ SELECT 'sha256=' || encode(fleet.hmac_sha256(convert_to(ts::text || '.' || body, 'UTF8'), secret), 'hex') $$;
SELECT extract(epoch FROM now())::bigint AS now_s \gset
\set body '{"positions": [{"device": "prov-truck-1", "time": "2020-01-01T00:00:00Z", "lat": 1, "lon": 2}]}'
SELECT count(*) AS positions_before FROM fleet.position \gset

-- Refusals: SQLSTATE 28000, nothing stored.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM fleet.ingest_webhook('no-such-provider', :now_s, 'sha256=' || repeat('0', 64), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('retired', :now_s, pg_temp.sign('retired-secret-0123456789', :now_s, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, 'md5=abc', :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, NULL, :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, 'sha256=' || repeat('0', 63), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', NULL, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
-- wrong secret, tampered body, signature for another timestamp
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('another-secret-0123456789', :now_s, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, :'body'), :'body' || ' ');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s + 1, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
-- correctly signed but outside the replay window (default 300 s), both ways
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s - 400, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s - 400, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s + 400, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s + 400, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
-- the provider's own window (10 s), and a narrower window from the caller
SELECT * FROM fleet.ingest_webhook('tight', :now_s - 60, pg_temp.sign('tight-secret-0123456789', :now_s - 60, :'body'), :'body');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s - 60, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s - 60, :'body'), :'body', 30);
\echo sqlstate :LAST_ERROR_SQLSTATE
-- the caller cannot widen it
SELECT * FROM fleet.ingest_webhook('tight', :now_s - 60, pg_temp.sign('tight-secret-0123456789', :now_s - 60, :'body'), :'body', 3600);
\echo sqlstate :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
-- Malformed bodies (correctly signed): refused as a whole.
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, 'not json'), 'not json');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, '[1, 2]'), '[1, 2]');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, '{"other": 1}'), '{"other": 1}');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, '{"positions": {}}'), '{"positions": {}}');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, '{"events": [1]}'), '{"events": [1]}');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s,
	pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, '{"positions": [{"device": "prov-truck-1", "time": "yesterday-ish", "lat": 1, "lon": 2}]}'),
	'{"positions": [{"device": "prov-truck-1", "time": "yesterday-ish", "lat": 1, "lon": 2}]}');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT * FROM fleet.ingest_webhook('acme-telematics', :now_s,
	pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, '{"positions": [{"device": "prov-truck-1", "time": 1, "lat": "north", "lon": 2}]}'),
	'{"positions": [{"device": "prov-truck-1", "time": 1, "lat": "north", "lon": 2}]}');
\echo sqlstate :LAST_ERROR_SQLSTATE
SELECT count(*) - :positions_before AS positions_stored_by_refusals FROM fleet.position;

-- A good call: positions and events in one transaction, per-item statuses.
SELECT to_char((now() - interval '10 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t1 \gset
SELECT format('{"positions": ['
	'{"device": "prov-truck-1", "time": "%1$s", "lat": 52.52, "lon": 13.40, "speed": 42.5, "heading": 90, "attrs": {"fuel": 61}},'
	'{"device": "prov-truck-2", "time": %2$s, "lat": 52.53, "lon": 13.41, "seq": 7},'
	'{"device": "prov-truck-1", "time": "%1$s", "lat": 52.52, "lon": 13.40, "speed": 42.5, "heading": 90, "attrs": {"fuel": 61}},'
	'{"device": "prov-south-1", "time": "%1$s", "lat": 1, "lon": 2},'
	'{"device": "nobody", "time": "%1$s", "lat": 1, "lon": 2},'
	'{"device": "prov-truck-2", "lat": 1, "lon": 2},'
	'{"device": "prov-truck-2", "time": "%1$s", "lat": 91, "lon": 2}'
	'], "events": ['
	'{"key": "ev-1", "kind": "audit.note", "payload": {"text": "door opened"}, "occurred_at": "%1$s"},'
	'{"key": "ev-1", "kind": "audit.note", "payload": {"text": "door opened"}, "occurred_at": "%1$s"},'
	'{"key": "ev-2", "kind": "no.such_kind", "payload": {}}'
	']}', :'t1', (extract(epoch FROM :'t1'::timestamptz) * 1000)::bigint + 5) AS good \gset
SELECT item, idx, status, reason
  FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, :'good'), :'good')
 ORDER BY item DESC, idx;
-- The same call again (a provider's retry): duplicates, nothing stored twice.
SELECT item, status, count(*)
  FROM fleet.ingest_webhook('acme-telematics', :now_s, pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, :'good'), :'good')
 GROUP BY 1, 2 ORDER BY 1, 2;
-- The tenant context of the call did not leak into the session.
SELECT fleet.current_tenant() IS NULL AS no_tenant_after;
SELECT fleet.set_tenant(:wn) IS NOT NULL AS in_tenant;
SELECT d.identifier, p.lat, p.lon, p.speed, p.heading, p.seq, p.attrs
  FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
 WHERE d.identifier LIKE 'prov-%' ORDER BY d.identifier, p.fix_time;
SELECT source, idem_key, kind, payload FROM fleet.event_log WHERE source = 'webhook:acme-telematics' ORDER BY event_id;

-- Inside a caller's transaction (here fleet_admin acting for South) the
-- caller's tenant context is back after the call: no North rows visible.
SELECT pg_temp.sign('\x000102030405060708090a0b0c0d0e0f10', :now_s, :'good') AS good_sig \gset
BEGIN;
SET LOCAL ROLE fleet_admin;
SELECT fleet.set_tenant(:ws) IS NOT NULL AS in_tenant;
SELECT count(*) AS items FROM fleet.ingest_webhook('acme-telematics', :now_s, :'good_sig', :'good');
SELECT fleet.current_tenant() = :ws AS callers_tenant_kept;
SELECT name FROM fleet.provider ORDER BY name;
SELECT fleet.clear_tenant();
SELECT count(*) AS items FROM fleet.ingest_webhook('acme-telematics', :now_s, :'good_sig', :'good');
SELECT fleet.current_tenant() IS NULL AS still_no_tenant;
SELECT count(*) AS providers_visible FROM fleet.provider;
COMMIT;

-- Who may see what: the secret is readable by no fleet role.
SET ROLE fleet_admin;
SELECT fleet.set_tenant(:wn) IS NOT NULL AS in_tenant;
SELECT name, replay_window, active FROM fleet.provider ORDER BY name;
SELECT secret FROM fleet.provider;
UPDATE fleet.provider SET secret = 'rotated-secret-0123456789' WHERE name = 'tight';
SELECT fleet.set_tenant(:ws) IS NOT NULL AS in_tenant;
SELECT name FROM fleet.provider ORDER BY name;
RESET ROLE;
SELECT pg_temp.sign('south-secret-0123456789', :now_s, '{"positions": []}') AS south_sig \gset
SET ROLE fleet_ingest;
SELECT name FROM fleet.provider;
SELECT count(*) FROM fleet.ingest_webhook('south-feed', :now_s, :'south_sig', '{"positions": []}');
SELECT fleet.hmac_sha256('a', 'b');
RESET ROLE;
SELECT fleet.clear_tenant();
