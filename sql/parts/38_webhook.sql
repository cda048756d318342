-- 38_webhook: signed JSON batches from telematics providers.
--
-- A provider (a telematics platform pushing its customers' vehicles) posts
-- a JSON batch of positions and events to the gateway's
-- POST /webhook/<provider>, with X-Fleet-Timestamp (unix seconds) and
-- X-Fleet-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">.
-- The gateway passes the four values to fleet.ingest_webhook(), which
-- checks the signature with the provider's secret and the timestamp against
-- the provider's replay window, then ingests the positions and events in
-- the caller's transaction: a bad call stores nothing.  The secret is
-- readable by no fleet role; only this function (owned by the extension
-- owner) reads it.

-- pgcrypto's hmac(), called by its schema-qualified name: pgcrypto is
-- relocatable, so its schema is looked up once, at install time (PG15 has
-- no @extschema:pgcrypto@).
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
		'CREATE FUNCTION fleet.hmac_sha256(data bytea, key bytea) RETURNS bytea'
		' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE'
		' SET search_path = pg_catalog, pg_temp'
		' AS %L', pg_catalog.format('SELECT %I.hmac(data, key, %L::text)', v_schema, 'sha256'));
END
$install$;
COMMENT ON FUNCTION fleet.hmac_sha256(bytea, bytea) IS
	'HMAC-SHA256 of data with key: pgcrypto''s hmac(), bound to pgcrypto''s schema at install time';

CREATE TABLE fleet.provider (
	tenant_id     bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	provider_id   bigint GENERATED ALWAYS AS IDENTITY,
	name          text NOT NULL CHECK (name OPERATOR(pg_catalog.~) '^[a-z0-9][a-z0-9._-]{0,62}$'),
	secret        bytea NOT NULL CHECK (pg_catalog.length(secret) OPERATOR(pg_catalog.>=) 16),
	replay_window integer NOT NULL DEFAULT 300
	              CHECK (replay_window OPERATOR(pg_catalog.>=) 1 AND replay_window OPERATOR(pg_catalog.<=) 86400),
	active        boolean NOT NULL DEFAULT true,
	created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, provider_id),
	UNIQUE (tenant_id, name)
);
COMMENT ON TABLE fleet.provider IS
	'Telematics providers posting signed webhooks (POST /webhook/<name>); name is unique across all tenants; secret (at least 16 bytes) signs the calls and is readable by no fleet role; replay_window (seconds, default 300) bounds the age of X-Fleet-Timestamp';
SELECT fleet.enable_tenant_rls('fleet.provider');

CREATE FUNCTION fleet.provider_name_claim() RETURNS trigger
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: the webhook URL names the provider without a tenant, so
-- a name must be free in every tenant, which RLS hides from the caller.
-- An advisory lock on the name serializes concurrent claims.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('fleet.provider'), pg_catalog.hashtext(NEW.name));
	IF EXISTS (SELECT 1 FROM fleet.provider p
	            WHERE p.name OPERATOR(pg_catalog.=) NEW.name
	              AND (p.tenant_id, p.provider_id) IS DISTINCT FROM (NEW.tenant_id, NEW.provider_id)) THEN
		RAISE EXCEPTION 'provider name "%" is already registered', NEW.name
			USING ERRCODE = 'unique_violation',
			      DETAIL = 'A provider name is its webhook URL and belongs to one tenant only.';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION fleet.provider_name_claim() IS 'Trigger: a provider name (its webhook URL) is unique across tenants';
REVOKE ALL ON FUNCTION fleet.provider_name_claim() FROM PUBLIC;

CREATE TRIGGER provider_name_claim BEFORE INSERT OR UPDATE OF name ON fleet.provider
	FOR EACH ROW EXECUTE FUNCTION fleet.provider_name_claim();
COMMENT ON TRIGGER provider_name_claim ON fleet.provider IS 'Refuses a provider name already used by any tenant';

CREATE FUNCTION fleet.ingest_webhook(provider text, ts bigint, signature text, body text,
	replay_window integer DEFAULT NULL)
RETURNS TABLE (item text, idx integer, status text, reason text)
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: reads the provider's secret, which no fleet role can
-- read, and routes into the provider's tenant.  search_path is pinned.
-- The caller's tenant context is saved on entry and restored on exit (the
-- SET clause), so acting for the provider's tenant never outlives the call.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET fleet.tenant = ''
AS $$
DECLARE
	v_p       record;
	v_given   bytea;
	v_doc     jsonb;
	v_window  integer;
	v_pos     jsonb;
	v_ev      jsonb;
BEGIN
	SELECT p.tenant_id, p.name, p.secret, p.replay_window, p.active INTO v_p
	  FROM fleet.provider p WHERE p.name OPERATOR(pg_catalog.=) ingest_webhook.provider;
	IF NOT FOUND OR NOT v_p.active THEN
		RAISE EXCEPTION 'webhook refused: unknown or inactive provider'
			USING ERRCODE = 'invalid_authorization_specification';
	END IF;
	IF signature IS NULL OR signature OPERATOR(pg_catalog.!~*) '^sha256=[0-9a-f]{64}$' THEN
		RAISE EXCEPTION 'webhook refused: malformed signature'
			USING ERRCODE = 'invalid_authorization_specification',
			      HINT = 'X-Fleet-Signature: sha256=<64 hex digits of HMAC-SHA256 over "<timestamp>.<body>">';
	END IF;
	IF ts IS NULL OR body IS NULL THEN
		RAISE EXCEPTION 'webhook refused: timestamp and body are required'
			USING ERRCODE = 'invalid_authorization_specification';
	END IF;
	v_given := pg_catalog.decode(pg_catalog.lower(pg_catalog.substr(signature, 8)), 'hex');
	-- compare MACs of the MACs: the comparison time says nothing about the expected value
	IF fleet.hmac_sha256(fleet.hmac_sha256(pg_catalog.convert_to(ts::text || '.' || body, 'UTF8'), v_p.secret), v_p.secret)
	   OPERATOR(pg_catalog.<>) fleet.hmac_sha256(v_given, v_p.secret) THEN
		RAISE EXCEPTION 'webhook refused: bad signature'
			USING ERRCODE = 'invalid_authorization_specification';
	END IF;
	-- the caller may narrow the provider's window, never widen it
	v_window := LEAST(coalesce(ingest_webhook.replay_window, v_p.replay_window), v_p.replay_window);
	IF pg_catalog.abs(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.-) ts)
	   OPERATOR(pg_catalog.>) v_window THEN
		RAISE EXCEPTION 'webhook refused: timestamp outside the replay window'
			USING ERRCODE = 'invalid_authorization_specification',
			      DETAIL = pg_catalog.format('The timestamp must be within %s seconds of the server''s clock.', v_window);
	END IF;

	BEGIN
		v_doc := body::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RAISE EXCEPTION 'webhook body is not JSON' USING ERRCODE = 'invalid_text_representation';
	END;
	IF pg_catalog.jsonb_typeof(v_doc) OPERATOR(pg_catalog.<>) 'object'
	   OR NOT (v_doc OPERATOR(pg_catalog.?|) ARRAY['positions', 'events']) THEN
		RAISE EXCEPTION 'webhook body must be an object with "positions" and/or "events"'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_pos := coalesce(v_doc OPERATOR(pg_catalog.->) 'positions', '[]');
	v_ev := coalesce(v_doc OPERATOR(pg_catalog.->) 'events', '[]');
	IF pg_catalog.jsonb_typeof(v_pos) OPERATOR(pg_catalog.<>) 'array'
	   OR pg_catalog.jsonb_typeof(v_ev) OPERATOR(pg_catalog.<>) 'array' THEN
		RAISE EXCEPTION 'webhook "positions" and "events" must be arrays'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(v_pos OPERATOR(pg_catalog.||) v_ev) e
	            WHERE pg_catalog.jsonb_typeof(e) OPERATOR(pg_catalog.<>) 'object') THEN
		RAISE EXCEPTION 'webhook "positions" and "events" must hold objects'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- The provider's tenant, for this call only: its devices and events.
	PERFORM fleet.set_tenant(v_p.tenant_id, true);

	IF pg_catalog.jsonb_array_length(v_pos) OPERATOR(pg_catalog.>) 0 THEN
		RETURN QUERY
		WITH p AS (
			SELECT e, n FROM pg_catalog.jsonb_array_elements(v_pos) WITH ORDINALITY AS x(e, n)
		), a AS (
			SELECT pg_catalog.array_agg(e OPERATOR(pg_catalog.->>) 'device' ORDER BY n) AS device,
			       pg_catalog.array_agg(CASE pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'time')
			                              WHEN 'number' THEN pg_catalog.to_timestamp(
			                                  ((e OPERATOR(pg_catalog.->>) 'time')::numeric OPERATOR(pg_catalog./) 1000)::float8)
			                              ELSE fleet.parse_instant(e OPERATOR(pg_catalog.->>) 'time') END ORDER BY n) AS fix_time,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'lat')::float8 ORDER BY n) AS lat,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'lon')::float8 ORDER BY n) AS lon,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'speed')::real ORDER BY n) AS speed,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'heading')::real ORDER BY n) AS heading,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'altitude')::real ORDER BY n) AS altitude,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'accuracy')::real ORDER BY n) AS accuracy,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'seq')::bigint ORDER BY n) AS seq,
			       pg_catalog.array_agg(CASE WHEN pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'attrs')
			                                      OPERATOR(pg_catalog.=) 'object'
			                                 THEN e OPERATOR(pg_catalog.->) 'attrs' END ORDER BY n) AS attrs
			  FROM p
		)
		SELECT 'position'::text, r.idx, r.status, r.reason
		  FROM a, fleet.ingest_positions(a.device, a.fix_time, a.lat, a.lon, a.speed, a.heading,
		                                 a.altitude, a.accuracy, a.seq, a.attrs) r;
	END IF;

	IF pg_catalog.jsonb_array_length(v_ev) OPERATOR(pg_catalog.>) 0 THEN
		RETURN QUERY
		WITH p AS (
			SELECT e, n FROM pg_catalog.jsonb_array_elements(v_ev) WITH ORDINALITY AS x(e, n)
		), a AS (
			SELECT pg_catalog.array_agg('webhook:' OPERATOR(pg_catalog.||) v_p.name ORDER BY n) AS source,
			       pg_catalog.array_agg(e OPERATOR(pg_catalog.->>) 'key' ORDER BY n) AS idem_key,
			       pg_catalog.array_agg(e OPERATOR(pg_catalog.->>) 'kind' ORDER BY n) AS kind,
			       pg_catalog.array_agg((e OPERATOR(pg_catalog.->>) 'schema_version')::integer ORDER BY n) AS schema_version,
			       pg_catalog.array_agg(fleet.parse_instant(e OPERATOR(pg_catalog.->>) 'occurred_at') ORDER BY n) AS occurred_at,
			       pg_catalog.array_agg(e OPERATOR(pg_catalog.->) 'payload' ORDER BY n) AS payload
			  FROM p
		)
		SELECT 'event'::text, r.idx, r.status, r.reason
		  FROM a, fleet.ingest_events(a.source, a.idem_key, a.kind, a.schema_version, a.occurred_at, a.payload) r;
	END IF;
	RETURN;
END
$$;
COMMENT ON FUNCTION fleet.ingest_webhook(text, bigint, text, text, integer) IS
	'Verify and ingest one provider webhook: signature = "sha256=" || hex(HMAC-SHA256(secret, ts || ''.'' || body)), ts (unix seconds) within the replay window (the provider''s, default 300 s, or the narrower replay_window argument), body {"positions": [{device, time (RFC 3339 text or unix ms), lat, lon, speed km/h, heading, altitude, accuracy, seq, attrs}], "events": [{key, kind, occurred_at (RFC 3339 text), schema_version, payload}]}; a time that is not RFC 3339 text raises 22007 (fleet.parse_instant), one outside the accepted window or an event without payload is rejected per item. Refusals raise SQLSTATE 28000 (unknown or inactive provider, malformed or bad signature, stale timestamp) and nothing is stored; a malformed body raises 22P02, 22023 or a cast error. Returns per item (position or event, 1-based idx) the status and reason of fleet.ingest_positions() / fleet.ingest_events(); events get source "webhook:<provider>".';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges, columns) VALUES
	('fleet_ingest',  'FUNCTION', 'fleet.ingest_webhook(text,bigint,text,text,integer)', 'EXECUTE', NULL),
	('fleet_admin',   'FUNCTION', 'fleet.ingest_webhook(text,bigint,text,text,integer)', 'EXECUTE', NULL),
	('fleet_admin',   'TABLE', 'fleet.provider', 'SELECT',
		ARRAY['tenant_id', 'provider_id', 'name', 'replay_window', 'active', 'created_at']),
	('fleet_admin',   'TABLE', 'fleet.provider', 'INSERT, UPDATE, DELETE', NULL),
	('fleet_analyst', 'TABLE', 'fleet.provider', 'SELECT',
		ARRAY['tenant_id', 'provider_id', 'name', 'replay_window', 'active', 'created_at']);
