-- 56_sync_tokens: bearer tokens for the driver-app sync service.
--
-- The sync service (services/sync, fleet-sync) is the HTTP front driver
-- apps talk to.  Each installed app (a fleet.sync_client) gets per-device
-- bearer tokens from fleet.sync_issue_token() (fleet_admin, in the tenant's
-- context): "fst1.<tenant id>.<64 hex digits>".  Only the SHA-256 digest of
-- a token is stored; a token has an expiry and can be revoked.  The service
-- connects as a login role that is a member of fleet_app and, for every
-- request, resolves the token with fleet.sync_authenticate() in the same
-- statement as the work it does: that sets the tenant context for the
-- transaction only (so nothing carries over to the next request on the
-- connection) and yields the client, whose driver bounds every push and
-- pull.  A wrong, expired or revoked token (or a deactivated client) fails
-- with SQLSTATE 28000 and the statement stores nothing.
--
-- Apps also send single events (a panic button, a fuel receipt) through
-- fleet.sync_app_event(): kinds driver.*, idempotent by the app's own key.

-- pgcrypto's digest() and gen_random_bytes(), called by their schema-qualified
-- names: pgcrypto is relocatable, so its schema is looked up once, at
-- install time (as for fleet.hmac_sha256 in 38_webhook).
DO $install$
DECLARE
	v_schema name;
BEGIN
	SELECT n.nspname INTO v_schema
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	 WHERE e.extname OPERATOR(pg_catalog.=) 'pgcrypto';
	IF v_schema IS NULL THEN
		RAISE EXCEPTION 'pgcrypto is not installed'
			USING ERRCODE = 'undefined_object',
			      HINT = 'CREATE EXTENSION fleet CASCADE installs it.';
	END IF;
	EXECUTE pg_catalog.format(
		'CREATE FUNCTION fleet.sync_token_digest(token text) RETURNS bytea'
		' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE'
		' SET search_path = pg_catalog, pg_temp'
		' AS %L', pg_catalog.format('SELECT %I.digest(pg_catalog.convert_to(token, %L), %L::text)', v_schema, 'UTF8', 'sha256'));
	EXECUTE pg_catalog.format(
		'CREATE FUNCTION fleet.sync_token_secret() RETURNS text'
		' LANGUAGE sql VOLATILE PARALLEL UNSAFE'
		' SET search_path = pg_catalog, pg_temp'
		' AS %L', pg_catalog.format('SELECT pg_catalog.encode(%I.gen_random_bytes(32), %L)', v_schema, 'hex'));
END
$install$;
COMMENT ON FUNCTION fleet.sync_token_digest(text) IS
	'SHA-256 of a sync bearer token (pgcrypto''s digest(), bound to pgcrypto''s schema at install time): what fleet.sync_token stores';
COMMENT ON FUNCTION fleet.sync_token_secret() IS
	'32 random bytes from pgcrypto''s gen_random_bytes() as 64 hex digits: the secret part of a new sync bearer token';

CREATE TABLE fleet.sync_token (
	tenant_id  bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	token_id   bigint GENERATED ALWAYS AS IDENTITY,
	client_id  uuid NOT NULL,
	token_hash bytea NOT NULL CHECK (pg_catalog.length(token_hash) OPERATOR(pg_catalog.=) 32),
	label      text CHECK (pg_catalog.length(label) OPERATOR(pg_catalog.<=) 200),
	issued_by  text NOT NULL DEFAULT CURRENT_USER,
	issued_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
	expires_at timestamptz NOT NULL,
	revoked_at timestamptz,
	PRIMARY KEY (tenant_id, token_id),
	UNIQUE (tenant_id, token_hash),
	FOREIGN KEY (tenant_id, client_id) REFERENCES fleet.sync_client (tenant_id, client_id),
	CHECK (expires_at OPERATOR(pg_catalog.>) issued_at)
);
COMMENT ON TABLE fleet.sync_token IS
	'Bearer tokens of driver apps for the sync service: the SHA-256 of the token (the token itself is shown once, by fleet.sync_issue_token), the client it acts for, its expiry and revocation. token_hash is readable by no fleet role; fleet.sync_authenticate() resolves a token.';
SELECT fleet.enable_tenant_rls('fleet.sync_token');
CREATE INDEX sync_token_client ON fleet.sync_token (tenant_id, client_id);
COMMENT ON INDEX fleet.sync_token_client IS 'The tokens of a driver app (listing, revocation)';

CREATE FUNCTION fleet.sync_issue_token(client_id uuid, valid_for interval DEFAULT '90 days', label text DEFAULT NULL,
	OUT token text, OUT token_id bigint, OUT expires_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant bigint := fleet.current_tenant();
	v_active boolean;
BEGIN
	IF v_tenant IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	IF client_id IS NULL THEN
		RAISE EXCEPTION 'client id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF valid_for IS NULL OR valid_for OPERATOR(pg_catalog.<=) '0'::interval OR valid_for OPERATOR(pg_catalog.>) '400 days'::interval THEN
		RAISE EXCEPTION 'a token is valid for more than zero and at most 400 days'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT c.active INTO v_active FROM fleet.sync_client c
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) v_tenant AND c.client_id OPERATOR(pg_catalog.=) sync_issue_token.client_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown sync client %', client_id
			USING ERRCODE = 'undefined_object', HINT = 'Register the app with fleet.sync_register_client() first.';
	END IF;
	IF NOT v_active THEN
		RAISE EXCEPTION 'sync client % is deactivated', client_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Register the app again (fleet.sync_register_client) to reactivate it.';
	END IF;
	token := pg_catalog.format('fst1.%s.%s', v_tenant, fleet.sync_token_secret());
	expires_at := pg_catalog.now() OPERATOR(pg_catalog.+) valid_for;
	INSERT INTO fleet.sync_token (tenant_id, client_id, token_hash, label, expires_at)
	VALUES (v_tenant, client_id, fleet.sync_token_digest(token), label, sync_issue_token.expires_at)
	RETURNING sync_token.token_id INTO token_id;
END
$$;
COMMENT ON FUNCTION fleet.sync_issue_token(uuid, interval, text) IS
	'Issue a bearer token for a registered, active driver app of the current tenant (fleet_admin), valid for valid_for (at most 400 days); returns the token (shown only here: only its SHA-256 is stored), its id and expiry';

CREATE FUNCTION fleet.sync_revoke_token(token_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF fleet.current_tenant() IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	UPDATE fleet.sync_token k SET revoked_at = pg_catalog.now()
	 WHERE k.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND k.token_id OPERATOR(pg_catalog.=) sync_revoke_token.token_id
	   AND k.revoked_at IS NULL;
	IF FOUND THEN
		RETURN true;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fleet.sync_token k
	                WHERE k.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND k.token_id OPERATOR(pg_catalog.=) sync_revoke_token.token_id) THEN
		RAISE EXCEPTION 'sync token % does not exist', token_id USING ERRCODE = 'undefined_object';
	END IF;
	RETURN false;
END
$$;
COMMENT ON FUNCTION fleet.sync_revoke_token(bigint) IS
	'Revoke a sync bearer token of the current tenant (fleet_admin): refused from the next request on; false if it was already revoked';

CREATE FUNCTION fleet.sync_authenticate(token text)
RETURNS TABLE (tenant_id bigint, client_id uuid, driver_id bigint, token_id bigint, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: the service has no tenant context before it knows the
-- token, and no fleet role may read token digests (fleet.sync_token.
-- token_hash), so the lookup runs as the extension owner.  It reads only
-- the row whose digest equals the given token's, in the tenant the token
-- names, and reveals nothing about other tokens; search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant bigint;
	k record;
BEGIN
	IF token IS NULL OR token OPERATOR(pg_catalog.!~) '^fst1\.[1-9][0-9]{0,17}\.[0-9a-f]{64}$' THEN
		RAISE EXCEPTION 'invalid token' USING ERRCODE = 'invalid_authorization_specification',
			DETAIL = 'malformed';
	END IF;
	v_tenant := pg_catalog.split_part(token, '.', 2)::bigint;
	-- act for the token's tenant in this transaction only; an unknown or
	-- suspended tenant is an invalid token
	BEGIN
		PERFORM fleet.set_tenant(v_tenant, true);
	EXCEPTION WHEN undefined_object OR object_not_in_prerequisite_state THEN
		RAISE EXCEPTION 'invalid token' USING ERRCODE = 'invalid_authorization_specification',
			DETAIL = 'unknown or inactive tenant';
	END;
	SELECT t.token_id, t.client_id, t.expires_at, t.revoked_at, c.driver_id, c.active
	  INTO k
	  FROM fleet.sync_token t
	  JOIN fleet.sync_client c ON c.tenant_id OPERATOR(pg_catalog.=) t.tenant_id AND c.client_id OPERATOR(pg_catalog.=) t.client_id
	 WHERE t.tenant_id OPERATOR(pg_catalog.=) v_tenant AND t.token_hash OPERATOR(pg_catalog.=) fleet.sync_token_digest(token);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invalid token' USING ERRCODE = 'invalid_authorization_specification', DETAIL = 'unknown';
	END IF;
	IF k.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'token revoked' USING ERRCODE = 'invalid_authorization_specification', DETAIL = 'revoked';
	END IF;
	IF k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN
		RAISE EXCEPTION 'token expired' USING ERRCODE = 'invalid_authorization_specification', DETAIL = 'expired';
	END IF;
	IF NOT k.active THEN
		RAISE EXCEPTION 'client deactivated' USING ERRCODE = 'invalid_authorization_specification', DETAIL = 'deactivated';
	END IF;
	tenant_id := v_tenant; client_id := k.client_id; driver_id := k.driver_id;
	token_id := k.token_id; expires_at := k.expires_at;
	RETURN NEXT;
END
$$;
COMMENT ON FUNCTION fleet.sync_authenticate(text) IS
	'Resolve a sync bearer token: sets the token''s tenant as the tenant context for the current transaction (fleet.set_tenant(tenant, true)) and returns its tenant, client, driver, token id and expiry. A malformed, unknown, expired or revoked token, or a deactivated client, is SQLSTATE 28000 (message invalid token, token expired, token revoked or client deactivated). Call it in the same statement as the work, e.g. SELECT ... FROM fleet.sync_authenticate($1) a CROSS JOIN LATERAL fleet.sync_push(a.client_id, $2) p.';

-- ------------------------------------------------------------ what the app sees

CREATE FUNCTION fleet.sync_me(client_id uuid) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH c AS (
		SELECT x.client_id, x.driver_id, x.last_mutation_id FROM fleet.sync_client x
		 WHERE x.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND x.client_id OPERATOR(pg_catalog.=) sync_me.client_id),
	jobs AS (
		SELECT j.job_id, j.code, j.status, j.vehicle_id, j.planned_start, j.planned_end, j.version
		  FROM fleet.job j, c
		 WHERE j.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant()
		   AND j.status OPERATOR(pg_catalog.<>) ALL (ARRAY['completed', 'cancelled'])
		   AND (j.driver_id OPERATOR(pg_catalog.=) c.driver_id
		        OR EXISTS (SELECT 1 FROM fleet.stop s
		                    WHERE s.tenant_id OPERATOR(pg_catalog.=) j.tenant_id AND s.job_id OPERATOR(pg_catalog.=) j.job_id
		                      AND s.driver_id OPERATOR(pg_catalog.=) c.driver_id)))
	SELECT pg_catalog.jsonb_build_object(
		'tenant', (SELECT pg_catalog.jsonb_build_object('id', t.tenant_id, 'name', t.name, 'timezone', t.timezone)
		             FROM fleet.tenant t WHERE t.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant()),
		'client_id', c.client_id,
		'last_mutation_id', c.last_mutation_id,
		'driver', (SELECT pg_catalog.jsonb_build_object('id', d.driver_id, 'code', d.code, 'name', d.name, 'status', d.status)
		             FROM fleet.driver d
		            WHERE d.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND d.driver_id OPERATOR(pg_catalog.=) c.driver_id),
		'vehicle', (SELECT pg_catalog.jsonb_build_object('id', v.vehicle_id, 'code', v.code, 'name', v.name, 'plate', v.plate)
		              FROM jobs j
		              JOIN fleet.vehicle v ON v.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND v.vehicle_id OPERATOR(pg_catalog.=) j.vehicle_id
		             ORDER BY j.planned_start NULLS LAST, j.job_id LIMIT 1),
		'work', COALESCE((
			SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			         'job_id', j.job_id, 'code', j.code, 'status', j.status, 'vehicle_id', j.vehicle_id,
			         'planned_start', j.planned_start, 'planned_end', j.planned_end, 'version', j.version,
			         'stops', COALESCE((
			             SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			                      'stop_id', s.stop_id, 'seq', s.seq, 'kind', s.kind, 'status', s.status,
			                      'address', s.address, 'window_start', s.window_start, 'window_end', s.window_end,
			                      'version', s.version) ORDER BY s.seq)
			               FROM fleet.stop s, c
			              WHERE s.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND s.job_id OPERATOR(pg_catalog.=) j.job_id
			                AND s.driver_id OPERATOR(pg_catalog.=) c.driver_id), '[]'::jsonb))
			       ORDER BY j.planned_start NULLS LAST, j.job_id)
			  FROM jobs j), '[]'::jsonb))
	  FROM c
$$;
COMMENT ON FUNCTION fleet.sync_me(uuid) IS
	'What a driver app''s token maps to (current tenant): the tenant, the client and its last processed mutation id, the driver, the vehicle of its first open job and its assigned work (open jobs with the driver''s stops); NULL for an unknown client';

-- --------------------------------------------------------------- app events

SELECT fleet.register_event_kind('driver.panic', 'operational', 1, '{}', NULL,
	'Panic button pressed in the driver app (logged by fleet.sync_app_event with driver_id and client; optional lat, lon, note); no projection');
SELECT fleet.register_event_kind('driver.fuel_receipt', 'operational', 1, '{"liters": "number", "amount": "number", "currency": "string"}', NULL,
	'A fuel receipt captured in the driver app: liters, amount, currency (optional vehicle_id, odometer_km, station); no projection');

CREATE FUNCTION fleet.sync_app_event(client_id uuid, event_key text, kind text, payload jsonb,
	occurred_at timestamptz DEFAULT NULL)
RETURNS TABLE (status text, reason text, event_id bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c record;
BEGIN
	IF fleet.current_tenant() IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	IF kind IS NULL OR kind OPERATOR(pg_catalog.!~) '^driver\.[a-z][a-z0-9_]*$' THEN
		RAISE EXCEPTION 'driver apps send events of kinds driver.*, not "%"', kind
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF event_key IS NULL OR event_key OPERATOR(pg_catalog.!~) '^[A-Za-z0-9._:-]{1,100}$' THEN
		RAISE EXCEPTION 'invalid event key'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'An event key is 1 to 100 characters of A-Z a-z 0-9 . _ : -';
	END IF;
	IF payload IS NULL OR pg_catalog.jsonb_typeof(payload) OPERATOR(pg_catalog.<>) 'object' THEN
		RAISE EXCEPTION 'event payload must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT x.driver_id, x.active INTO c FROM fleet.sync_client x
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND x.client_id OPERATOR(pg_catalog.=) sync_app_event.client_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown sync client %', client_id USING ERRCODE = 'undefined_object';
	END IF;
	RETURN QUERY
	SELECT e.status, e.reason, e.event_id
	  FROM fleet.ingest_event('app', client_id::text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) event_key, kind,
	                          payload OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('driver_id', c.driver_id, 'client', client_id::text),
	                          occurred_at) e;
END
$$;
COMMENT ON FUNCTION fleet.sync_app_event(uuid, text, text, jsonb, timestamptz) IS
	'Log one event from a driver app (kinds driver.*) through fleet.ingest_event(): source "app", idempotency key "<client>:<event_key>", the payload with the client''s driver_id and client added; same statuses as ingest_event (accepted, duplicate, conflict, rejected with a reason)';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges, columns) VALUES
	('fleet_admin', 'TABLE', 'fleet.sync_token', 'SELECT',
	 ARRAY['tenant_id', 'token_id', 'client_id', 'label', 'issued_by', 'issued_at', 'expires_at', 'revoked_at']),
	('fleet_admin', 'TABLE', 'fleet.sync_token', 'INSERT', ARRAY['tenant_id', 'client_id', 'token_hash', 'label', 'expires_at']),
	('fleet_admin', 'TABLE', 'fleet.sync_token', 'UPDATE', ARRAY['revoked_at']);

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin', 'FUNCTION', 'fleet.sync_token_secret()', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_token_digest(text)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_issue_token(uuid,interval,text)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_revoke_token(bigint)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_authenticate(text)', 'EXECUTE'),
	('fleet_app',   'FUNCTION', 'fleet.sync_authenticate(text)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_me(uuid)', 'EXECUTE'),
	('fleet_app',   'FUNCTION', 'fleet.sync_me(uuid)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_app_event(uuid,text,text,jsonb,timestamptz)', 'EXECUTE'),
	('fleet_app',   'FUNCTION', 'fleet.sync_app_event(uuid,text,text,jsonb,timestamptz)', 'EXECUTE');
