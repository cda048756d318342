-- Sync service tokens: issuing (fleet_admin), resolution for the service
-- (fleet_app, SECURITY DEFINER), every refusal with its SQLSTATE, the
-- tenant context lasting one transaction, revocation, what /v1/me shows
-- and driver app events.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.fails(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.fails(text) TO PUBLIC;

SELECT fleet.create_tenant('Token East') AS te \gset
SELECT fleet.create_tenant('Token West') AS tw \gset
SELECT fleet.create_tenant('Token Dormant') AS td \gset
SELECT fleet.set_tenant(:te) IS NOT NULL AS east;
INSERT INTO fleet.vehicle (tenant_id, code) VALUES (:te, 'TE-V1');
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:te, 'te-d1', 'Eve');
SELECT driver_id AS eve FROM fleet.driver WHERE tenant_id = :te AND code = 'te-d1' \gset
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
SELECT :te, 'TE-J1', :eve, vehicle_id, 'assigned' FROM fleet.vehicle WHERE tenant_id = :te AND code = 'TE-V1';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT :te, job_id, g, :eve, 'East ' || g FROM fleet.job, generate_series(1, 2) g WHERE tenant_id = :te AND code = 'TE-J1';
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000e1', :eve);
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000e2', :eve);
SELECT fleet.set_tenant(:tw) IS NOT NULL AS west;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:tw, 'tw-d1', 'Walt');
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000f1', driver_id) FROM fleet.driver WHERE tenant_id = :tw;
SELECT fleet.set_tenant(:td) IS NOT NULL AS dormant;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:td, 'td-d1', 'Dora');
SELECT fleet.sync_register_client('00000000-0000-0000-0000-0000000000d1', driver_id) FROM fleet.driver WHERE tenant_id = :td;
SELECT fleet.clear_tenant();

-- Issuing: fleet_admin in the tenant's context.
SET ROLE fleet_admin;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1')$$) AS no_context;
SELECT fleet.set_tenant(:te) IS NOT NULL AS east;
SELECT token AS tok, token_id AS tok_id FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1', '1 day', 'Eve''s phone') \gset
SELECT :'tok' ~ ('^fst1\.' || :te || '\.[0-9a-f]{64}$') AS token_format;
SELECT token AS tok2 FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1') \gset
SELECT :'tok' <> :'tok2' AS tokens_differ;
SELECT token AS tok_old, token_id AS tok_old_id FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1', '1 hour') \gset
SELECT token AS tok_rev, token_id AS tok_rev_id FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1') \gset
SELECT token AS tok_e2 FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e2') \gset
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-0000000000f1')$$) AS other_tenants_client;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-00000000ffff')$$) AS unknown_client;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token(NULL)$$) AS null_client;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1', '0 seconds')$$) AS zero_validity;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1', '401 days')$$) AS too_long;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1', NULL)$$) AS null_validity;
-- what fleet_admin sees: everything but the digest
SELECT client_id, label, issued_by, expires_at > now() AS valid, revoked_at IS NULL AS live
  FROM fleet.sync_token ORDER BY token_id;
SELECT pg_temp.fails('SELECT token_hash FROM fleet.sync_token') AS digest_hidden;
SELECT pg_temp.fails($$UPDATE fleet.sync_token SET expires_at = now() + interval '9 years'$$) AS no_extending;
SELECT fleet.set_tenant(:td) IS NOT NULL AS dormant;
SELECT token AS tok_dormant FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000d1') \gset
SELECT fleet.set_tenant(:tw) IS NOT NULL AS west;
SELECT token AS tok_west FROM fleet.sync_issue_token('00000000-0000-0000-0000-0000000000f1') \gset
-- revocation: only the own tenant's tokens
SELECT pg_temp.fails(format('SELECT fleet.sync_revoke_token(%s)', :tok_rev_id)) AS revoke_other_tenants;
SELECT fleet.set_tenant(:te) IS NOT NULL AS east;
SELECT fleet.sync_revoke_token(:tok_rev_id) AS revoked;
SELECT fleet.sync_revoke_token(:tok_rev_id) AS revoked_again;
SELECT pg_temp.fails('SELECT fleet.sync_revoke_token(-1)') AS revoke_unknown;
SELECT fleet.clear_tenant();
RESET ROLE;
-- stored hashed: the digest is there, the token is not
SELECT count(*) AS by_digest FROM fleet.sync_token WHERE token_hash = fleet.sync_token_digest(:'tok');
SELECT count(*) AS plain_anywhere FROM fleet.sync_token t WHERE t::text LIKE '%' || split_part(:'tok', '.', 3) || '%';
-- expire one token, suspend one tenant, deactivate one client
UPDATE fleet.sync_token SET issued_at = now() - interval '2 days', expires_at = now() - interval '1 day'
 WHERE token_id = :tok_old_id;
UPDATE fleet.tenant SET status = 'suspended' WHERE tenant_id = :td;
SELECT fleet.set_tenant(:te) IS NOT NULL AS east;
SELECT fleet.sync_deactivate_client('00000000-0000-0000-0000-0000000000e2');
SELECT fleet.clear_tenant();

-- Resolution, as the service's role (fleet_app), which may not issue.
SET ROLE fleet_app;
SELECT pg_temp.fails($$SELECT fleet.sync_issue_token('00000000-0000-0000-0000-0000000000e1')$$) AS app_cannot_issue;
SELECT pg_temp.fails('SELECT count(*) FROM fleet.sync_token') AS app_cannot_read;
SELECT tenant_id = :te AS tenant, client_id, driver_id = :eve AS driver, token_id = :tok_id AS token,
       fleet.current_tenant() = :te AS context_set
  FROM fleet.sync_authenticate(:'tok');
SELECT fleet.current_tenant() IS NULL AS context_gone_after_the_statement;
BEGIN;
SELECT client_id FROM fleet.sync_authenticate(:'tok');
SELECT fleet.current_tenant() = :te AS context_for_the_transaction;
COMMIT;
SELECT fleet.current_tenant() IS NULL AS context_gone_after_commit;
-- a session acting for West resolving East's token: East for that statement only
SELECT fleet.set_tenant(:tw) IS NOT NULL AS west;
SELECT fleet.current_tenant() = :te AS east_inside FROM fleet.sync_authenticate(:'tok');
SELECT fleet.current_tenant() = :tw AS west_again;
SELECT fleet.clear_tenant();
-- refusals: all 28000, nothing set
SELECT pg_temp.fails($$SELECT * FROM fleet.sync_authenticate(NULL)$$) AS null_token;
SELECT pg_temp.fails($$SELECT * FROM fleet.sync_authenticate('Bearer abc')$$) AS malformed;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', upper(:'tok'))) AS wrong_case;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', left(:'tok', -1) || CASE right(:'tok', 1) WHEN '0' THEN '1' ELSE '0' END)) AS wrong_secret;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', 'fst1.999999.' || split_part(:'tok', '.', 3))) AS unknown_tenant;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', 'fst1.' || :tw || '.' || split_part(:'tok', '.', 3))) AS other_tenant;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', :'tok_dormant')) AS suspended_tenant;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', :'tok_old')) AS expired;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', :'tok_rev')) AS revoked;
SELECT pg_temp.fails(format('SELECT * FROM fleet.sync_authenticate(%L)', :'tok_e2')) AS deactivated_client;
SELECT fleet.current_tenant() IS NULL AS still_no_context;
-- a refused token stores nothing: the work in the same statement never runs
SELECT pg_temp.fails(format($$SELECT * FROM fleet.sync_authenticate(%L) a
	CROSS JOIN LATERAL fleet.sync_push(a.client_id, '[{"id": 1, "workflow": "stop_status", "args": {"stop_id": 1, "status": "en_route"}}]')$$,
	:'tok_rev')) AS push_with_revoked;
RESET ROLE;
SELECT count(*) AS mutations_stored FROM fleet.sync_mutation WHERE client_id = '00000000-0000-0000-0000-0000000000e1';
SET ROLE fleet_app;

-- What the app sees (GET /v1/me).
SELECT me -> 'tenant' ->> 'name' AS tenant, me -> 'driver' ->> 'name' AS driver, me -> 'vehicle' ->> 'code' AS vehicle,
       (me -> 'tenant' ->> 'id')::bigint = :te AS tenant_id, (me -> 'driver' ->> 'id')::bigint = :eve AS driver_id,
       me ->> 'client_id' AS client, me ->> 'last_mutation_id' AS last_mutation_id,
       jsonb_array_length(me -> 'work') AS jobs, me -> 'work' -> 0 ->> 'code' AS job,
       (SELECT string_agg(s ->> 'seq' || ' ' || (s ->> 'address') || ' ' || (s ->> 'status'), ', ')
          FROM jsonb_array_elements(me -> 'work' -> 0 -> 'stops') s) AS stops
  FROM (SELECT fleet.sync_me(a.client_id) AS me FROM fleet.sync_authenticate(:'tok') a) x;
SELECT fleet.sync_me('00000000-0000-0000-0000-0000000000f1') IS NULL AS other_tenants_client_invisible
  FROM fleet.sync_authenticate(:'tok') a;

-- Driver app events (POST /v1/events).
SELECT e.status, e.reason, e.event_id IS NOT NULL AS has_id FROM fleet.sync_authenticate(:'tok') a
 CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'panic-1', 'driver.panic', '{"lat": 52.5}', '2026-01-01T08:00:00Z') e;
SELECT e.status FROM fleet.sync_authenticate(:'tok') a
 CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'panic-1', 'driver.panic', '{"lat": 52.5}', '2026-01-01T08:00:00Z') e;
SELECT e.status FROM fleet.sync_authenticate(:'tok') a
 CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'panic-1', 'driver.panic', '{"lat": 1}', '2026-01-01T08:00:00Z') e;
SELECT e.status, e.reason FROM fleet.sync_authenticate(:'tok') a
 CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'fuel-1', 'driver.fuel_receipt', '{"liters": 40}') e;
SELECT e.status FROM fleet.sync_authenticate(:'tok') a
 CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'fuel-2', 'driver.fuel_receipt', '{"liters": 40, "amount": 70.5, "currency": "EUR"}') e;
SELECT pg_temp.fails(format($$SELECT * FROM fleet.sync_authenticate(%L) a
	CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'x', 'job.status', '{}')$$, :'tok')) AS kind_not_for_apps;
SELECT pg_temp.fails(format($$SELECT * FROM fleet.sync_authenticate(%L) a
	CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'bad key!', 'driver.panic', '{}')$$, :'tok')) AS bad_key;
SELECT pg_temp.fails(format($$SELECT * FROM fleet.sync_authenticate(%L) a
	CROSS JOIN LATERAL fleet.sync_app_event(a.client_id, 'k', 'driver.panic', '[]')$$, :'tok')) AS payload_not_object;
SELECT pg_temp.fails(format($$SELECT * FROM fleet.sync_authenticate(%L) a
	CROSS JOIN LATERAL fleet.sync_app_event('00000000-0000-0000-0000-0000000000f1', 'k', 'driver.panic', '{}')$$, :'tok')) AS other_tenants_client;
SELECT pg_temp.fails($$SELECT * FROM fleet.sync_app_event('00000000-0000-0000-0000-0000000000e1', 'k', 'driver.panic', '{}')$$) AS no_context;
RESET ROLE;
SELECT kind, idem_key, payload - 'driver_id' AS payload, (payload ->> 'driver_id')::bigint = :eve AS driver
  FROM fleet.event_log e
 WHERE e.source = 'app' AND e.tenant_id = :te ORDER BY e.event_id;
UPDATE fleet.tenant SET status = 'active' WHERE tenant_id = :td;
