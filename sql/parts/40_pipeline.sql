-- 40_pipeline: consuming the event log (extension/pipeline.c, worker.c).
--
-- Each class has one cursor row.  A consumer pass (fleet.process_pending(),
-- run by the class's background worker or by hand) locks it and reads the
-- class's events whose writing transaction became visible between two
-- transaction snapshots, PgQ style: "lo" is the snapshot up to which the
-- class is consumed, "hi" the snapshot of the batch in progress.  An event
-- is in the batch when its xid8 is visible in hi and not in lo, so a
-- transaction that commits late -- after others that started later -- is
-- simply in a later batch, never skipped.  Within a batch events are applied
-- in (txid, event_id) order and a long batch is resumed from (pos_txid,
-- pos_event).  The only write per batch is the cursor row: the log is never
-- updated.  Handler effects and the cursor move commit together, so an event
-- is applied exactly once, also across crashes.
--
-- A failing handler does not stop the class: the event goes to
-- fleet.event_retry (exponential backoff with jitter, per-class limit), then
-- to fleet.dead_letter with the error, SQLSTATE and every attempt.

CREATE TABLE fleet.consumer_cursor (
	class      text PRIMARY KEY REFERENCES fleet.event_class (class),
	lo         pg_snapshot NOT NULL,
	hi         pg_snapshot,
	pos_txid   xid8 NOT NULL DEFAULT '0',
	pos_event  bigint NOT NULL DEFAULT 0,
	batches    bigint NOT NULL DEFAULT 0,
	events     bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE fleet.consumer_cursor IS
	'Consumer position per class: everything visible in snapshot lo is consumed; hi is the batch in progress, resumed after (pos_txid, pos_event). One row update per batch, never per event.';
INSERT INTO fleet.consumer_cursor (class, lo) SELECT c.class, pg_catalog.pg_current_snapshot() FROM fleet.event_class c;

CREATE TABLE fleet.event_retry (
	tenant_id       bigint NOT NULL,
	event_id        bigint NOT NULL,
	logged_at       timestamptz NOT NULL,
	class           text NOT NULL,
	kind            text NOT NULL,
	attempts        integer NOT NULL,
	next_attempt_at timestamptz NOT NULL,
	last_error      text,
	last_sqlstate   text,
	history         jsonb NOT NULL DEFAULT '[]',
	first_failed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, event_id)
);
COMMENT ON TABLE fleet.event_retry IS
	'Events whose handler failed, waiting for their next attempt (exponential backoff with jitter, capped by the class); history lists every attempt with its error and SQLSTATE';
CREATE INDEX event_retry_due ON fleet.event_retry (class, next_attempt_at);
COMMENT ON INDEX fleet.event_retry_due IS 'Consumers pick the due retries of their class';
SELECT fleet.enable_tenant_rls('fleet.event_retry');

CREATE TABLE fleet.dead_letter (
	tenant_id   bigint NOT NULL,
	event_id    bigint NOT NULL,
	logged_at   timestamptz NOT NULL,
	class       text NOT NULL,
	kind        text NOT NULL,
	attempts    integer NOT NULL,
	error       text,
	sqlstate    text,
	history     jsonb NOT NULL,
	payload     jsonb,
	died_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, event_id)
);
COMMENT ON TABLE fleet.dead_letter IS
	'Events whose handler failed max_attempts times: last error and SQLSTATE, the attempt history and a copy of the payload; fleet.requeue_dead_letters() sends them back after a fix';
SELECT fleet.enable_tenant_rls('fleet.dead_letter');

CREATE FUNCTION fleet.process_pending(class text DEFAULT NULL, max_events integer DEFAULT NULL)
RETURNS TABLE (class text, applied integer, failed integer, dead_lettered integer)
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_process_pending';
COMMENT ON FUNCTION fleet.process_pending(text, integer) IS
	'Run one consumer pass now, in this transaction, for a class (NULL: every class in priority order): due retries, then up to max_events (default the class batch size) new events. What the background workers do; for tests and operations.';

CREATE FUNCTION fleet.requeue_dead_letters(event_ids bigint[] DEFAULT NULL, class text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	IF fleet.current_tenant() IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Dead letters are requeued per tenant: call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	IF class IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fleet.event_class c WHERE c.class OPERATOR(pg_catalog.=) requeue_dead_letters.class) THEN
		RAISE EXCEPTION 'unknown event class "%"', class USING ERRCODE = 'invalid_parameter_value';
	END IF;
	WITH moved AS (
		DELETE FROM fleet.dead_letter d
		 WHERE d.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant()
		   AND (event_ids IS NULL OR d.event_id OPERATOR(pg_catalog.=) ANY (event_ids))
		   AND (requeue_dead_letters.class IS NULL OR d.class OPERATOR(pg_catalog.=) requeue_dead_letters.class)
		RETURNING d.*)
	INSERT INTO fleet.event_retry (tenant_id, event_id, logged_at, class, kind, attempts, next_attempt_at,
	                               last_error, last_sqlstate, history, first_failed_at)
	SELECT m.tenant_id, m.event_id, m.logged_at, m.class, m.kind, 0, pg_catalog.now(), m.error, m.sqlstate,
	       m.history OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
	           'requeued_at', pg_catalog.now(), 'by', CURRENT_USER)),
	       m.died_at
	  FROM moved m;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.requeue_dead_letters(bigint[], text) IS
	'Send the current tenant''s dead letters (all, or those listed, or of one class) back to the retry queue with a fresh attempt budget; each is then applied exactly once by the next pass of its class. Returns how many.';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.consumer_cursor', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.consumer_cursor', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.event_retry', 'SELECT, INSERT'),
	('fleet_analyst', 'TABLE', 'fleet.event_retry', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.dead_letter', 'SELECT, DELETE'),
	('fleet_analyst', 'TABLE', 'fleet.dead_letter', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.process_pending(text,integer)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.requeue_dead_letters(bigint[],text)', 'EXECUTE');
