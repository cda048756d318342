-- 35_events: event kinds and versions, the append-only event log, the
-- idempotency-key store and the conflict record.
--
-- Events (job events, driver actions, financial, audit, provider webhooks)
-- enter through fleet.ingest_events() / fleet.ingest_event()
-- (extension/ingest_events.c) in the caller's tenant context.  Each carries
-- a source and an idempotency key, unique per (tenant, source): the same
-- key with the same payload is a duplicate, with a different payload a
-- conflict (recorded in fleet.event_conflict; the original stays).
--
-- The log and the key store are partitioned by day and expired by dropping
-- partitions.  Every log row carries the writer's transaction id (xid8), which
-- the pipeline (40_pipeline) uses to consume in commit order without gaps.

-- ---------------------------------------------------------------- classes

CREATE TABLE fleet.event_class (
	class        text PRIMARY KEY
	             CHECK (class OPERATOR(pg_catalog.=) ANY (ARRAY['telemetry', 'operational', 'financial', 'audit'])),
	priority     integer NOT NULL UNIQUE,
	max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts OPERATOR(pg_catalog.>=) 1 AND max_attempts OPERATOR(pg_catalog.<=) 100),
	backoff_base interval NOT NULL DEFAULT '1 second' CHECK (backoff_base OPERATOR(pg_catalog.>=) '0'::interval),
	backoff_max  interval NOT NULL DEFAULT '10 minutes' CHECK (backoff_max OPERATOR(pg_catalog.>=) '0'::interval),
	batch_size   integer NOT NULL DEFAULT 1000 CHECK (batch_size OPERATOR(pg_catalog.>=) 1 AND batch_size OPERATOR(pg_catalog.<=) 100000),
	description  text NOT NULL
);
COMMENT ON TABLE fleet.event_class IS
	'Priority classes of events: each is consumed separately (its own cursor and worker), with its own retry limit, exponential backoff (base doubling per attempt, capped, with jitter) and batch size';

INSERT INTO fleet.event_class (class, priority, max_attempts, backoff_base, backoff_max, batch_size, description) VALUES
	('financial',   1, 10, '2 seconds', '30 minutes', 500,  'charges and invoices: never delayed by telemetry'),
	('audit',       2, 10, '2 seconds', '30 minutes', 500,  'audit trail and provider webhooks'),
	('operational', 3, 8,  '1 second',  '10 minutes', 1000, 'job, stop and proof-of-delivery events from apps and drivers'),
	('telemetry',   4, 3,  '1 second',  '1 minute',   5000, 'vehicle state reported by devices: high volume');

-- ------------------------------------------------------------------ kinds

CREATE TABLE fleet.event_kind (
	kind           text PRIMARY KEY
	               CHECK (kind OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' AND pg_catalog.length(kind) OPERATOR(pg_catalog.<=) 100),
	class          text NOT NULL REFERENCES fleet.event_class (class),
	schema_version integer NOT NULL DEFAULT 1 CHECK (schema_version OPERATOR(pg_catalog.>=) 1),
	required       jsonb NOT NULL DEFAULT '{}'
	               CHECK (pg_catalog.jsonb_typeof(required) OPERATOR(pg_catalog.=) 'object'),
	handler        regprocedure,
	description    text,
	registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE fleet.event_kind IS
	'Registry of event kinds: class, current schema version, the payload schema (field -> a type, string|number|integer|boolean|object|array|any, or {type, optional, enum, min, max, max_length, format}: see fleet.event_field_spec_fault) and the handler that projects it (run as the owner of the handler function). Written only through fleet.register_event_kind().';

CREATE TABLE fleet.event_upcaster (
	kind         text NOT NULL REFERENCES fleet.event_kind (kind) ON DELETE CASCADE,
	from_version integer NOT NULL CHECK (from_version OPERATOR(pg_catalog.>=) 1),
	upcaster     regprocedure NOT NULL,
	PRIMARY KEY (kind, from_version)
);
COMMENT ON TABLE fleet.event_upcaster IS
	'Upcasters: a function jsonb -> jsonb turning a payload of from_version into from_version + 1, run at ingest as the owner of the function, so old app builds keep working. Written only through fleet.register_event_upcaster().';

-- A kind's schema (fleet.event_kind.required) maps each payload field to a
-- spec, checked at ingest (extension/ingest_events.c) so an event that could
-- never apply is rejected there, naming the field, instead of being retried
-- into a dead letter: a type name (the field is required and of that type),
-- or an object {"type", "optional", "enum" (allowed strings), "min", "max"
-- (numbers), "max_length" (characters), "format" ("date-time": RFC 3339,
-- "currency": three capital letters)}.
CREATE FUNCTION fleet.event_field_spec_fault(spec jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
	WHEN spec IS NULL THEN 'missing'
	WHEN pg_catalog.jsonb_typeof(spec) OPERATOR(pg_catalog.=) 'string' THEN
		CASE WHEN (spec OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) ANY
		          (ARRAY['string', 'number', 'integer', 'boolean', 'object', 'array', 'any'])
		     THEN NULL ELSE pg_catalog.format('unknown type %s', spec) END
	WHEN pg_catalog.jsonb_typeof(spec) OPERATOR(pg_catalog.<>) 'object' THEN 'not a type name or an object'
	WHEN EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(spec) k
	              WHERE k OPERATOR(pg_catalog.<>) ALL (ARRAY['type', 'optional', 'enum', 'min', 'max', 'max_length', 'format'])) THEN
		'unknown key ' OPERATOR(pg_catalog.||) (SELECT pg_catalog.min(k) FROM pg_catalog.jsonb_object_keys(spec) k
		              WHERE k OPERATOR(pg_catalog.<>) ALL (ARRAY['type', 'optional', 'enum', 'min', 'max', 'max_length', 'format']))
	WHEN pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'type') IS DISTINCT FROM 'string'
	  OR (spec OPERATOR(pg_catalog.->>) 'type') OPERATOR(pg_catalog.<>) ALL
	     (ARRAY['string', 'number', 'integer', 'boolean', 'object', 'array', 'any']) THEN
		'"type" must be string, number, integer, boolean, object, array or any'
	WHEN spec OPERATOR(pg_catalog.?) 'optional' AND pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'optional') OPERATOR(pg_catalog.<>) 'boolean' THEN
		'"optional" must be true or false'
	WHEN spec OPERATOR(pg_catalog.?) 'enum' AND (pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'enum') OPERATOR(pg_catalog.<>) 'array'
	     OR pg_catalog.jsonb_array_length(spec OPERATOR(pg_catalog.->) 'enum') OPERATOR(pg_catalog.=) 0
	     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(spec OPERATOR(pg_catalog.->) 'enum') e
	                 WHERE pg_catalog.jsonb_typeof(e) OPERATOR(pg_catalog.<>) 'string')) THEN
		'"enum" must be a non-empty array of strings'
	WHEN (spec OPERATOR(pg_catalog.?) 'min' AND pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'min') OPERATOR(pg_catalog.<>) 'number')
	  OR (spec OPERATOR(pg_catalog.?) 'max' AND pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'max') OPERATOR(pg_catalog.<>) 'number') THEN
		'"min" and "max" must be numbers'
	WHEN spec OPERATOR(pg_catalog.?) 'max_length' AND (pg_catalog.jsonb_typeof(spec OPERATOR(pg_catalog.->) 'max_length') OPERATOR(pg_catalog.<>) 'number'
	     OR (spec OPERATOR(pg_catalog.->>) 'max_length') OPERATOR(pg_catalog.!~) '^[0-9]{1,9}$') THEN
		'"max_length" must be a whole number below 1000000000'
	WHEN spec OPERATOR(pg_catalog.?) 'format' AND (spec OPERATOR(pg_catalog.->>) 'format') IS DISTINCT FROM 'date-time'
	     AND (spec OPERATOR(pg_catalog.->>) 'format') IS DISTINCT FROM 'currency' THEN
		'"format" must be date-time or currency'
	END
$$;
COMMENT ON FUNCTION fleet.event_field_spec_fault(jsonb) IS
	'What is wrong with one field spec of an event kind''s schema (NULL: nothing): a type name (string, number, integer, boolean, object, array, any) or {"type", "optional", "enum": [strings], "min", "max", "max_length", "format": "date-time" | "currency"}';

CREATE FUNCTION fleet.parse_instant(t text) RETURNS timestamptz
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_parse_instant';
COMMENT ON FUNCTION fleet.parse_instant(text) IS
	'An RFC 3339 date-time (2026-01-05T08:00:00Z, 2026-01-05T10:00:00.5+02:00) as a timestamptz; SQLSTATE 22007 for anything else ("yesterday", "infinity", "03/04/2026", zone names). Times from outside are stored only between 2000-01-01T00:00:00Z and now + fleet.future_margin.';

-- Figures subtract stored times from each other and from now; a time that is
-- infinite or millennia away (stored before the ingest checks, or written
-- directly by a superuser) would make such a figure fail for everyone
-- ("cannot subtract infinite timestamps", "interval out of range").  Figures
-- leave out the times this says are unusable.  Inlined: no SET clause, every
-- operator schema-qualified.
CREATE FUNCTION fleet.time_is_usable(t timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT t OPERATOR(pg_catalog.>=) '1900-01-01 00:00:00+00'::pg_catalog.timestamptz
	   AND t OPERATOR(pg_catalog.<) '3000-01-01 00:00:00+00'::pg_catalog.timestamptz
$$;
COMMENT ON FUNCTION fleet.time_is_usable(timestamptz) IS
	'Whether a stored time can enter a figure (finite, from 1900 to before 3000): the metrics, health, sync figures and reconciliation leave out the others instead of failing';

CREATE FUNCTION fleet.register_event_kind(kind text, class text, schema_version integer DEFAULT 1,
	required jsonb DEFAULT '{}', handler regprocedure DEFAULT NULL, description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because the registry decides which code the pipeline runs
-- and as whom (the handler function's owner): roles get only SELECT on it, so
-- every entry passes the checks below, including the refusal of handlers
-- owned by a superuser outside schema fleet.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_field text;
	v_spec jsonb;
	v_fault text;
	v_old integer;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM fleet.event_class c WHERE c.class OPERATOR(pg_catalog.=) register_event_kind.class) THEN
		RAISE EXCEPTION 'unknown event class "%"', class
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Use telemetry, operational, financial or audit.';
	END IF;
	IF kind IS NULL OR kind OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' THEN
		RAISE EXCEPTION 'invalid event kind name "%"', kind
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Kinds are dotted lower-case names such as job.status or acme.fuel_card.';
	END IF;
	IF schema_version IS NULL OR schema_version OPERATOR(pg_catalog.<) 1 THEN
		RAISE EXCEPTION 'schema version must be 1 or more' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF required IS NULL OR pg_catalog.jsonb_typeof(required) OPERATOR(pg_catalog.<>) 'object' THEN
		RAISE EXCEPTION 'required fields must be a JSON object of field name -> type'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR v_field, v_spec IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(required) e LOOP
		v_fault := fleet.event_field_spec_fault(v_spec);
		IF v_fault IS NOT NULL THEN
			RAISE EXCEPTION 'field "%" has an invalid spec: %', v_field, v_fault
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'A field maps to a type (string, number, integer, boolean, object, array, any) or to {"type", "optional", "enum", "min", "max", "max_length", "format"}.';
		END IF;
	END LOOP;
	IF handler IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM pg_catalog.pg_proc p
		 WHERE p.oid OPERATOR(pg_catalog.=) handler
		   AND p.prorettype OPERATOR(pg_catalog.=) 'pg_catalog.void'::pg_catalog.regtype
		   AND pg_catalog.oidvectortypes(p.proargtypes) OPERATOR(pg_catalog.=)
		       'bigint, bigint, text, jsonb, timestamp with time zone') THEN
		RAISE EXCEPTION 'handler % has the wrong signature', handler
			USING ERRCODE = 'invalid_function_definition',
			      HINT = 'A handler takes (tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz) and returns void.';
	END IF;
	IF handler IS NOT NULL AND EXISTS (
		SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.proowner
		 WHERE p.oid OPERATOR(pg_catalog.=) handler AND r.rolsuper
		   AND p.pronamespace OPERATOR(pg_catalog.<>) 'fleet'::pg_catalog.regnamespace) THEN
		RAISE EXCEPTION 'handler % is owned by a superuser', handler
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Handlers run with the privileges of their owner.',
			      HINT = 'Create the handler as the role it should run as (for example fleet_admin).';
	END IF;
	SELECT k.schema_version INTO v_old FROM fleet.event_kind k WHERE k.kind OPERATOR(pg_catalog.=) register_event_kind.kind;
	IF FOUND THEN
		IF schema_version OPERATOR(pg_catalog.<) v_old THEN
			RAISE EXCEPTION 'event kind "%" is at schema version %, cannot go back to %', kind, v_old, schema_version
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF (SELECT k.class FROM fleet.event_kind k WHERE k.kind OPERATOR(pg_catalog.=) register_event_kind.kind)
		   OPERATOR(pg_catalog.<>) class THEN
			RAISE EXCEPTION 'event kind "%" cannot change class', kind
				USING ERRCODE = 'invalid_parameter_value',
				      DETAIL = 'Events already logged are consumed by their class''s cursor.';
		END IF;
		UPDATE fleet.event_kind k
		   SET schema_version = register_event_kind.schema_version, required = register_event_kind.required,
		       handler = register_event_kind.handler,
		       description = COALESCE(register_event_kind.description, k.description),
		       registered_at = pg_catalog.now()
		 WHERE k.kind OPERATOR(pg_catalog.=) register_event_kind.kind;
	ELSE
		INSERT INTO fleet.event_kind (kind, class, schema_version, required, handler, description)
		VALUES (kind, class, schema_version, required, handler, description);
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.register_event_kind(text, text, integer, jsonb, regprocedure, text) IS
	'Register an event kind or move it to a newer schema version (fleet_admin). The handler runs with the privileges of its owner (never a superuser, except fleet''s own handlers), in the event''s tenant context.';

CREATE FUNCTION fleet.register_event_upcaster(kind text, from_version integer, upcaster regprocedure)
RETURNS void
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER for the same reason as fleet.register_event_kind(): ingest
-- runs upcasters as their owners, so only checked entries may reach the table.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_current integer;
BEGIN
	SELECT k.schema_version INTO v_current FROM fleet.event_kind k WHERE k.kind OPERATOR(pg_catalog.=) register_event_upcaster.kind;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown event kind "%"', kind USING ERRCODE = 'undefined_object';
	END IF;
	IF from_version IS NULL OR from_version OPERATOR(pg_catalog.<) 1 OR from_version OPERATOR(pg_catalog.>=) v_current THEN
		RAISE EXCEPTION 'an upcaster of "%" must start from a version between 1 and %', kind, v_current OPERATOR(pg_catalog.-) 1
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF upcaster IS NULL OR NOT EXISTS (
		SELECT 1 FROM pg_catalog.pg_proc p
		 WHERE p.oid OPERATOR(pg_catalog.=) upcaster
		   AND p.prorettype OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype
		   AND pg_catalog.oidvectortypes(p.proargtypes) OPERATOR(pg_catalog.=) 'jsonb') THEN
		RAISE EXCEPTION 'upcaster % has the wrong signature', upcaster
			USING ERRCODE = 'invalid_function_definition',
			      HINT = 'An upcaster takes (payload jsonb) and returns jsonb.';
	END IF;
	IF EXISTS (
		SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.proowner
		 WHERE p.oid OPERATOR(pg_catalog.=) upcaster AND r.rolsuper
		   AND p.pronamespace OPERATOR(pg_catalog.<>) 'fleet'::pg_catalog.regnamespace) THEN
		RAISE EXCEPTION 'upcaster % is owned by a superuser', upcaster
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'Upcasters run with the privileges of their owner.',
			      HINT = 'Create the upcaster as the role it should run as (for example fleet_admin).';
	END IF;
	DELETE FROM fleet.event_upcaster u
	 WHERE u.kind OPERATOR(pg_catalog.=) register_event_upcaster.kind
	   AND u.from_version OPERATOR(pg_catalog.=) register_event_upcaster.from_version;
	INSERT INTO fleet.event_upcaster (kind, from_version, upcaster) VALUES (kind, from_version, upcaster);
END
$$;
COMMENT ON FUNCTION fleet.register_event_upcaster(text, integer, regprocedure) IS
	'Register the upcaster that turns payloads of a kind from version from_version into from_version + 1 (fleet_admin); it runs with the privileges of its owner (never a superuser, except fleet''s own)';

-- ------------------------------------------------------------- the log

-- Each backend takes ids 32 at a time (CACHE): a 1,000-event batch no longer
-- locks, updates and every 32nd time WAL-logs the sequence once per event
-- (3% of a batch).  Ids stay unique; a backend's unused ids are skipped.
CREATE SEQUENCE fleet.event_id_seq AS bigint CACHE 32;
COMMENT ON SEQUENCE fleet.event_id_seq IS 'Event ids (not commit-ordered: consumers order by transaction id snapshots, never by id alone; each backend takes them 32 at a time, so ids of concurrent writers interleave in blocks and a backend''s unused ones are skipped)';

CREATE TABLE fleet.event_log (
	tenant_id        bigint NOT NULL,
	event_id         bigint NOT NULL,
	logged_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
	txid             xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	class            text NOT NULL,
	kind             text NOT NULL,
	schema_version   integer NOT NULL,
	original_version integer NOT NULL,
	source           text NOT NULL,
	idem_key         text NOT NULL,
	occurred_at      timestamptz NOT NULL,
	payload          jsonb NOT NULL,
	PRIMARY KEY (tenant_id, event_id, logged_at)
) PARTITION BY RANGE (logged_at);
COMMENT ON TABLE fleet.event_log IS
	'Append-only event log: payloads upcast to the kind''s current version, each row stamped with its writer''s transaction id; daily partitions by log time, dropped whole when expired and fully consumed';
-- Payloads that make a row wider than about 2 kB are compressed when
-- stored: with lz4 where the server has it, which compresses several times
-- faster than the default pglz (a batch of 1,000 events of 2 kB: the log
-- insert 18.9 -> 16.3 ms) and decompresses faster for consumers and replay.
DO $$
BEGIN
	ALTER TABLE fleet.event_log ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;	-- a server built without lz4 keeps pglz
END
$$;
CREATE INDEX event_log_consume ON fleet.event_log (class, txid, event_id);
COMMENT ON INDEX fleet.event_log_consume IS 'The consumers'' read path: a class''s events between two transaction snapshots, in (txid, event_id) order';
-- BRIN, not btree: rows arrive in log-time order, so block ranges summarize
-- them tightly, and an insert updates a summary instead of descending a
-- third btree per event (15.6 -> 14.9 ms of CPU per 1,000-event batch).
-- Each range is summarized as soon as it is full (autosummarize), not only
-- when the partition is next vacuumed.
CREATE INDEX event_log_time ON fleet.event_log USING brin (logged_at) WITH (autosummarize = on);
COMMENT ON INDEX fleet.event_log_time IS 'Replay and the tier and reconciliation functions read a time range of the log (BRIN: the log is appended in time order)';
SELECT fleet.enable_tenant_rls('fleet.event_log');

-- source and idem_key are compared byte by byte (collation "C"): a key is
-- the same key only if it is the same string, and the key index, which
-- every batch probes and extends, then compares with memcmp() instead of
-- the database's collation (strcoll() on copies of both strings).
CREATE TABLE fleet.event_key (
	tenant_id    bigint NOT NULL,
	source       text COLLATE "C" NOT NULL,
	idem_key     text COLLATE "C" NOT NULL,
	first_seen   timestamptz NOT NULL DEFAULT pg_catalog.now(),
	payload_hash bigint NOT NULL,
	event_id     bigint NOT NULL,
	PRIMARY KEY (tenant_id, source, idem_key, first_seen)
) PARTITION BY RANGE (first_seen);
COMMENT ON TABLE fleet.event_key IS
	'Idempotency keys per (tenant, source) with a 64-bit hash of the event: daily partitions by first sight, kept at least fleet.replay_window and expired by dropping partitions. Uniqueness across partitions is guaranteed by fleet.ingest_events() (per-key locks), not by the index.';
SELECT fleet.enable_tenant_rls('fleet.event_key');

CREATE TABLE fleet.event_conflict (
	tenant_id      bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	conflict_id    bigint GENERATED ALWAYS AS IDENTITY,
	source         text NOT NULL,
	idem_key       text NOT NULL,
	event_id       bigint NOT NULL,
	kind           text,
	schema_version integer,
	occurred_at    timestamptz,
	payload        jsonb,
	payload_hash   bigint NOT NULL,
	original_hash  bigint NOT NULL,
	received_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, conflict_id)
);
COMMENT ON TABLE fleet.event_conflict IS
	'Events refused because their idempotency key was already used for a different payload: what was sent, next to the id of the original event that was kept';
SELECT fleet.enable_tenant_rls('fleet.event_conflict');

INSERT INTO fleet.partitioned_table (relation, days_ahead, days_back, retention, description) VALUES
	('fleet.event_log', 3, 0, '7 days', 'event log by log time; a partition is dropped only when every class has consumed it and no retry or dead letter refers to it'),
	('fleet.event_key', 3, 0, '7 days', 'idempotency keys by first sight; never kept shorter than fleet.replay_window');
SELECT fleet.create_daily_partitions(t.relation, (pg_catalog.now() AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.-) 1,
	(pg_catalog.now() AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.+) 3)
  FROM fleet.partitioned_table t
 WHERE t.relation OPERATOR(pg_catalog.=) ANY (ARRAY['fleet.event_log', 'fleet.event_key']::pg_catalog.regclass[]);

-- ---------------------------------------------------------------- ingest

CREATE FUNCTION fleet.ingest_events(source text[], idem_key text[], kind text[], schema_version integer[],
	occurred_at timestamptz[], payload jsonb[])
RETURNS TABLE (idx integer, status text, reason text, event_id bigint)
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_ingest_events';
COMMENT ON FUNCTION fleet.ingest_events(text[], text[], text[], integer[], timestamptz[], jsonb[]) IS
	'Log a batch of events for the current tenant in one transaction; returns per element accepted, duplicate (key seen with the same event), conflict (key seen with a different event: recorded in fleet.event_conflict) or rejected with a reason (bad_key, unknown_kind, unsupported_version, upcast_failed, invalid_payload (a NULL payload, not an object, or a field failing the kind''s schema, named), future_occurred_at, bad_occurred_at (infinite or before 2000-01-01T00:00:00Z)); event_id is the new or original event. schema_version NULL means current, occurred_at NULL means now. Must run at READ COMMITTED.';

CREATE FUNCTION fleet.ingest_events_reserved(source text[], idem_key text[], kind text[], schema_version integer[],
	occurred_at timestamptz[], payload jsonb[], event_id bigint[])
RETURNS TABLE (idx integer, status text, reason text, event_id bigint)
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_ingest_events_reserved';
COMMENT ON FUNCTION fleet.ingest_events_reserved(text[], text[], text[], integer[], timestamptz[], jsonb[], bigint[]) IS
	'Internal to fleet.sync_push(): fleet.ingest_events() where an accepted event takes the id given for it (taken from fleet.event_id_seq by the caller before it wrote the effects that name the event), so a page of trail events is logged in one call; duplicates and conflicts keep their original event as usual';
REVOKE ALL ON FUNCTION fleet.ingest_events_reserved(text[], text[], text[], integer[], timestamptz[], jsonb[], bigint[]) FROM PUBLIC;

CREATE FUNCTION fleet.ingest_event(source text, idem_key text, kind text, payload jsonb,
	occurred_at timestamptz DEFAULT NULL, schema_version integer DEFAULT NULL)
RETURNS TABLE (status text, reason text, event_id bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.status, r.reason, r.event_id
	  FROM fleet.ingest_events(ARRAY[source], ARRAY[idem_key], ARRAY[kind], ARRAY[schema_version],
	                           ARRAY[occurred_at], ARRAY[payload]) r
$$;
COMMENT ON FUNCTION fleet.ingest_event(text, text, text, jsonb, timestamptz, integer) IS
	'Log one event for the current tenant: fleet.ingest_events() for a single element, same statuses and reasons';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.event_class', 'SELECT, UPDATE'),
	('fleet_app',     'TABLE', 'fleet.event_class', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.event_class', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.event_kind', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.event_kind', 'SELECT'),
	('fleet_ingest',  'TABLE', 'fleet.event_kind', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.event_kind', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.event_upcaster', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.event_upcaster', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.register_event_kind(text,text,integer,jsonb,regprocedure,text)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.event_field_spec_fault(jsonb)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.time_is_usable(timestamptz)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.time_is_usable(timestamptz)', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.time_is_usable(timestamptz)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.time_is_usable(timestamptz)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.parse_instant(text)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.parse_instant(text)', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.parse_instant(text)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.parse_instant(text)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.register_event_upcaster(text,integer,regprocedure)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.event_log', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.event_log', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.event_log', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.event_conflict', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.event_conflict', 'SELECT'),
	('fleet_ingest',  'TABLE', 'fleet.event_conflict', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.event_conflict', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.ingest_events(text[],text[],text[],integer[],timestamptz[],jsonb[])', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.ingest_events(text[],text[],text[],integer[],timestamptz[],jsonb[])', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.ingest_events(text[],text[],text[],integer[],timestamptz[],jsonb[])', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.ingest_event(text,text,text,jsonb,timestamptz,integer)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.ingest_event(text,text,text,jsonb,timestamptz,integer)', 'EXECUTE'),
	('fleet_ingest',  'FUNCTION', 'fleet.ingest_event(text,text,text,jsonb,timestamptz,integer)', 'EXECUTE');
