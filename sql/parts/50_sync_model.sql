-- 50_sync_model: offline sync for driver apps: clients, workflows and their
-- merge rules, stored mutation results, conflict records, dispatcher review
-- items, hybrid logical clocks and the per-driver change log.
--
-- A client is one installed driver app, bound to a tenant and a driver.  It
-- pushes mutations (fleet.sync_push, 51_sync_push) numbered 1, 2, 3, ... per
-- client; each is decided once, its result stored in fleet.sync_mutation and
-- returned again for a duplicate.  It pulls its driver's scope (jobs, stops
-- with their evidence, vehicles) from a cursor over fleet.sync_change
-- (fleet.sync_pull, 52_sync_pull).  The change log is written by triggers on
-- the domain tables, one row per (driver whose copy may be affected, entity),
-- stamped with the writer's transaction id so a pull never skips a row that
-- a concurrent transaction commits late.

-- ----------------------------------------------------------------- state

CREATE TABLE fleet.sync_state (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	epoch     bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE fleet.sync_state IS
	'One row: the epoch of this installation, written into every pull cursor. A new installation (restore into a new cluster, where transaction ids start over) has a new epoch, so old cursors restart from a full snapshot instead of skipping changes.';
INSERT INTO fleet.sync_state (epoch)
VALUES ((pg_catalog.floor(pg_catalog.random() OPERATOR(pg_catalog.*) 1e15))::bigint OPERATOR(pg_catalog.+) 1);

CREATE TABLE fleet.sync_setting (
	singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	target_window    interval NOT NULL DEFAULT '1 day' CHECK (target_window OPERATOR(pg_catalog.>) '0'::interval),
	stuck_after      interval NOT NULL DEFAULT '15 minutes' CHECK (stuck_after OPERATOR(pg_catalog.>) '0'::interval),
	position_gap     interval NOT NULL DEFAULT '5 minutes' CHECK (position_gap OPERATOR(pg_catalog.>) '0'::interval),
	max_batch        integer NOT NULL DEFAULT 1000 CHECK (max_batch OPERATOR(pg_catalog.>=) 1 AND max_batch OPERATOR(pg_catalog.<=) 100000),
	max_page         integer NOT NULL DEFAULT 10000 CHECK (max_page OPERATOR(pg_catalog.>=) 1 AND max_page OPERATOR(pg_catalog.<=) 100000)
);
COMMENT ON TABLE fleet.sync_setting IS
	'Sync settings (one row, fleet_admin): target_window within which an offline write should be reconciled, stuck_after for unprocessed events, position_gap above which a silence in a device''s reporting is a finding, the largest push batch and pull page';
INSERT INTO fleet.sync_setting DEFAULT VALUES;

-- -------------------------------------------------------------- workflows

CREATE TABLE fleet.sync_workflow (
	workflow    text PRIMARY KEY CHECK (workflow OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$'),
	entity      text NOT NULL CHECK (entity OPERATOR(pg_catalog.=) ANY (ARRAY['job', 'stop'])),
	action      text NOT NULL CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY['status', 'evidence', 'fields'])),
	rule        text NOT NULL
	            CHECK (rule OPERATOR(pg_catalog.=) ANY (ARRAY['server_wins', 'client_wins', 'lww_hlc', 'forward_only_status',
	                                          'append_only_evidence', 'custom'])),
	custom_fn   regprocedure,
	custom_owner oid,
	fields      text[],
	evidence_kind text,
	description text NOT NULL,
	CHECK ((rule OPERATOR(pg_catalog.=) 'custom') OPERATOR(pg_catalog.=) (custom_fn IS NOT NULL)),
	CHECK ((custom_fn IS NULL) OPERATOR(pg_catalog.=) (custom_owner IS NULL)),
	CHECK (rule OPERATOR(pg_catalog.<>) 'forward_only_status' OR action OPERATOR(pg_catalog.=) 'status'),
	CHECK (rule OPERATOR(pg_catalog.<>) 'append_only_evidence' OR action OPERATOR(pg_catalog.=) 'evidence'),
	CHECK (rule OPERATOR(pg_catalog.<>) 'lww_hlc' OR action OPERATOR(pg_catalog.<>) 'evidence'),
	CHECK ((action OPERATOR(pg_catalog.=) 'fields') OPERATOR(pg_catalog.=) (fields IS NOT NULL)),
	CHECK (entity OPERATOR(pg_catalog.=) 'stop' OR action OPERATOR(pg_catalog.=) 'status')
);
COMMENT ON TABLE fleet.sync_workflow IS
	'What a driver app may do offline, and the merge rule deciding a conflict: server_wins, client_wins, lww_hlc (newer hybrid logical clock wins), forward_only_status (a status never moves back), append_only_evidence (evidence is always kept), custom (custom_fn decides, run as custom_owner: the role that set the rule). action status sets a status, evidence appends proof of delivery (of evidence_kind, or the kind in the arguments), fields sets the listed stop columns.';

INSERT INTO fleet.sync_workflow (workflow, entity, action, rule, fields, evidence_kind, description) VALUES
	('stop_status', 'stop', 'status', 'forward_only_status', NULL, NULL,
	 'A stop''s status from the driver: {status} (en_route, arrived, completed, failed)'),
	('job_status', 'job', 'status', 'forward_only_status', NULL, NULL,
	 'A job''s status from the driver: {status} (en_route, in_progress, completed)'),
	('proof_of_delivery', 'stop', 'evidence', 'append_only_evidence', NULL, NULL,
	 'Proof of delivery at a stop: {kind: signature|photo|barcode|note, metadata, captured_at}'),
	('inspection', 'stop', 'evidence', 'append_only_evidence', NULL, 'inspection',
	 'Inspection photo metadata at a stop: {metadata, captured_at}'),
	('stop_adjust', 'stop', 'fields', 'lww_hlc', ARRAY['address', 'lat', 'lon', 'window_start', 'window_end'], NULL,
	 'Route adjustment by the driver: {fields: {address, lat, lon, window_start, window_end}}');

CREATE FUNCTION fleet.set_sync_rule(workflow text, rule text, custom_fn regprocedure DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w record;
BEGIN
	SELECT * INTO w FROM fleet.sync_workflow x WHERE x.workflow OPERATOR(pg_catalog.=) set_sync_rule.workflow;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown sync workflow "%"', workflow USING ERRCODE = 'undefined_object';
	END IF;
	IF rule IS NULL OR rule OPERATOR(pg_catalog.<>) ALL (ARRAY['server_wins', 'client_wins', 'lww_hlc', 'forward_only_status',
	                                           'append_only_evidence', 'custom']) THEN
		RAISE EXCEPTION 'unknown merge rule "%"', rule
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Rules are server_wins, client_wins, lww_hlc, forward_only_status, append_only_evidence and custom.';
	END IF;
	IF (rule OPERATOR(pg_catalog.=) 'forward_only_status' AND w.action OPERATOR(pg_catalog.<>) 'status')
	   OR (rule OPERATOR(pg_catalog.=) 'append_only_evidence' AND w.action OPERATOR(pg_catalog.<>) 'evidence')
	   OR (rule OPERATOR(pg_catalog.=) 'lww_hlc' AND w.action OPERATOR(pg_catalog.=) 'evidence') THEN
		RAISE EXCEPTION 'merge rule % does not apply to workflow "%" (action %)', rule, workflow, w.action
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (rule OPERATOR(pg_catalog.=) 'custom') OPERATOR(pg_catalog.<>) (custom_fn IS NOT NULL) THEN
		RAISE EXCEPTION 'a custom function is given exactly when the rule is custom'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF custom_fn IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM pg_catalog.pg_proc p
		 WHERE p.oid OPERATOR(pg_catalog.=) custom_fn
		   AND p.prorettype OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype
		   AND pg_catalog.oidvectortypes(p.proargtypes) OPERATOR(pg_catalog.=) 'text, jsonb, jsonb') THEN
		RAISE EXCEPTION 'custom merge function % has the wrong signature', custom_fn
			USING ERRCODE = 'invalid_function_definition',
			      HINT = 'A custom merge function takes (workflow text, client jsonb, server jsonb) and returns jsonb {"decision": "client"|"server"|"merge"|"reject", "value": ..., "reason": ...}.';
	END IF;
	UPDATE fleet.sync_workflow x
	   SET rule = set_sync_rule.rule, custom_fn = set_sync_rule.custom_fn,
	       custom_owner = CASE WHEN set_sync_rule.custom_fn IS NOT NULL
	                           THEN (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) END
	 WHERE x.workflow OPERATOR(pg_catalog.=) set_sync_rule.workflow;
END
$$;
COMMENT ON FUNCTION fleet.set_sync_rule(text, text, regprocedure) IS
	'Set the merge rule of a sync workflow (fleet_admin); a custom function (workflow, client, server) -> jsonb runs with the privileges of the role that sets it (which must be able to execute it), never as the extension owner';

-- ---------------------------------------------------------------- clients

CREATE TABLE fleet.sync_client (
	tenant_id        bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	client_id        uuid NOT NULL,
	driver_id        bigint NOT NULL,
	last_mutation_id bigint NOT NULL DEFAULT 0 CHECK (last_mutation_id OPERATOR(pg_catalog.>=) 0),
	last_push_txid   xid8,
	active           boolean NOT NULL DEFAULT true,
	registered_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_push_at     timestamptz,
	last_pull_at     timestamptz,
	pull_txid        xid8,
	pull_change      bigint,
	PRIMARY KEY (tenant_id, client_id),
	FOREIGN KEY (tenant_id, driver_id) REFERENCES fleet.driver (tenant_id, driver_id)
);
COMMENT ON TABLE fleet.sync_client IS
	'Installed driver apps: each bound to one tenant and driver, with the id of the last mutation it pushed that was processed (its mutations apply in id order, once) and the change-log position of its last pull (pull_txid, pull_change: the backlog is what lies beyond)';
CREATE INDEX sync_client_driver ON fleet.sync_client (tenant_id, driver_id);
COMMENT ON INDEX fleet.sync_client_driver IS 'The apps of a driver (backs the foreign key to fleet.driver)';
SELECT fleet.enable_tenant_rls('fleet.sync_client');

CREATE FUNCTION fleet.sync_register_client(client_id uuid, driver_id bigint) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_driver bigint;
	v_active boolean;
BEGIN
	IF fleet.current_tenant() IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	IF client_id IS NULL OR driver_id IS NULL THEN
		RAISE EXCEPTION 'client id and driver id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fleet.driver d
	                WHERE d.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND d.driver_id OPERATOR(pg_catalog.=) sync_register_client.driver_id
	                  AND d.status OPERATOR(pg_catalog.=) 'active') THEN
		RAISE EXCEPTION 'driver % is not an active driver of this tenant', driver_id USING ERRCODE = 'foreign_key_violation';
	END IF;
	SELECT c.driver_id, c.active INTO v_driver, v_active FROM fleet.sync_client c
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND c.client_id OPERATOR(pg_catalog.=) sync_register_client.client_id;
	IF FOUND THEN
		IF v_driver OPERATOR(pg_catalog.<>) driver_id THEN
			RAISE EXCEPTION 'client % is bound to another driver', client_id
				USING ERRCODE = 'unique_violation',
				      DETAIL = 'A client stays bound to the driver it was registered for; its mutation ids would be ambiguous otherwise.',
				      HINT = 'Register the reinstalled app under a new client id.';
		END IF;
		UPDATE fleet.sync_client c SET active = true
		 WHERE c.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND c.client_id OPERATOR(pg_catalog.=) sync_register_client.client_id;
		RETURN client_id;
	END IF;
	INSERT INTO fleet.sync_client (tenant_id, client_id, driver_id)
	VALUES (fleet.current_tenant(), client_id, driver_id);
	RETURN client_id;
END
$$;
COMMENT ON FUNCTION fleet.sync_register_client(uuid, bigint) IS
	'Register a driver app (client id chosen by the app) for an active driver of the current tenant; registering again for the same driver reactivates it, for another driver is an error';

CREATE FUNCTION fleet.sync_deactivate_client(client_id uuid) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH u AS (
		UPDATE fleet.sync_client c SET active = false
		 WHERE c.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND c.client_id OPERATOR(pg_catalog.=) sync_deactivate_client.client_id
		RETURNING 1)
	SELECT EXISTS (SELECT 1 FROM u)
$$;
COMMENT ON FUNCTION fleet.sync_deactivate_client(uuid) IS
	'Deactivate a driver app (lost or replaced device): its pushes and pulls are refused from then on; true if it existed';

-- -------------------------------------------------------------- mutations

CREATE TABLE fleet.sync_mutation (
	tenant_id     bigint NOT NULL,
	client_id     uuid NOT NULL,
	mutation_id   bigint NOT NULL CHECK (mutation_id OPERATOR(pg_catalog.>=) 1),
	workflow      text NOT NULL,
	payload       jsonb NOT NULL,
	client_time   timestamptz,
	result        text NOT NULL CHECK (result OPERATOR(pg_catalog.=) ANY (ARRAY['applied', 'merged', 'rejected'])),
	rule          text,
	reason        text,
	entity        text,
	entity_id     bigint,
	conflict_id   bigint,
	event_id      bigint,
	stored        jsonb NOT NULL,
	duplicates    integer NOT NULL DEFAULT 0,
	txid          xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	applied_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	reconciled_at timestamptz,
	PRIMARY KEY (tenant_id, client_id, mutation_id),
	FOREIGN KEY (tenant_id, client_id) REFERENCES fleet.sync_client (tenant_id, client_id)
);
COMMENT ON TABLE fleet.sync_mutation IS
	'Every mutation a client pushed that was processed, once: the payload as received (a later push of the same id must match it), the result (applied, merged by a rule, rejected with a reason) and the stored result returned again for duplicates, the trail event in fleet.event_log, the push transaction id (pulls report a mutation as processed only once its effects are in the pulled changes), and when it was reconciled (decided, and any review it raised resolved)';
CREATE INDEX sync_mutation_txid ON fleet.sync_mutation (tenant_id, client_id, txid);
COMMENT ON INDEX fleet.sync_mutation_txid IS 'Pull finds the mutations whose push transaction is beyond its horizon';
CREATE INDEX sync_mutation_applied ON fleet.sync_mutation (tenant_id, applied_at);
COMMENT ON INDEX fleet.sync_mutation_applied IS 'Reconciliation and sync figures scan a time range';
SELECT fleet.enable_tenant_rls('fleet.sync_mutation');

-- -------------------------------------------------------- conflicts, review

CREATE TABLE fleet.sync_conflict (
	tenant_id    bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	conflict_id  bigint GENERATED ALWAYS AS IDENTITY,
	client_id    uuid NOT NULL,
	mutation_id  bigint NOT NULL,
	workflow     text NOT NULL,
	entity       text NOT NULL,
	entity_id    bigint NOT NULL,
	rule         text NOT NULL,
	kind         text NOT NULL CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['stale_base', 'reassigned', 'cancelled', 'clock'])),
	client_side  jsonb NOT NULL,
	server_side  jsonb NOT NULL,
	decision     text NOT NULL CHECK (decision OPERATOR(pg_catalog.=) ANY (ARRAY['client', 'server', 'merge', 'kept_evidence', 'reject'])),
	outcome      jsonb NOT NULL DEFAULT '{}',
	review       boolean NOT NULL DEFAULT false,
	decided_at   timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	PRIMARY KEY (tenant_id, conflict_id),
	FOREIGN KEY (tenant_id, client_id) REFERENCES fleet.sync_client (tenant_id, client_id)
);
COMMENT ON TABLE fleet.sync_conflict IS
	'Every conflict decision: the mutation (client side: arguments, base version, clock, client time), the server side (the entity as it was, its clock), the rule, the kind of conflict (stale_base: changed since the device saw it; reassigned: no longer the driver''s; cancelled; clock: lww_hlc compared clocks) and the decision with its outcome';
CREATE INDEX sync_conflict_mutation ON fleet.sync_conflict (tenant_id, client_id, mutation_id);
COMMENT ON INDEX fleet.sync_conflict_mutation IS 'Finds the conflict record of a mutation';
SELECT fleet.enable_tenant_rls('fleet.sync_conflict');

CREATE TABLE fleet.sync_review (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	review_id   bigint GENERATED ALWAYS AS IDENTITY,
	conflict_id bigint NOT NULL,
	stop_id     bigint NOT NULL,
	driver_id   bigint NOT NULL,
	reason      text NOT NULL,
	status      text NOT NULL DEFAULT 'open' CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['open', 'resolved'])),
	created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	resolved_at timestamptz,
	resolved_by text,
	resolution  text,
	PRIMARY KEY (tenant_id, review_id),
	UNIQUE (tenant_id, conflict_id),
	FOREIGN KEY (tenant_id, conflict_id) REFERENCES fleet.sync_conflict (tenant_id, conflict_id),
	FOREIGN KEY (tenant_id, stop_id) REFERENCES fleet.stop (tenant_id, stop_id),
	FOREIGN KEY (tenant_id, driver_id) REFERENCES fleet.driver (tenant_id, driver_id),
	CHECK ((status OPERATOR(pg_catalog.=) 'resolved') OPERATOR(pg_catalog.=) (resolved_at IS NOT NULL))
);
COMMENT ON TABLE fleet.sync_review IS
	'Dispatcher review queue: work a driver did offline on a stop that meanwhile was reassigned or cancelled (its evidence is kept); resolved with fleet.sync_resolve_review()';
CREATE INDEX sync_review_stop ON fleet.sync_review (tenant_id, stop_id);
COMMENT ON INDEX fleet.sync_review_stop IS 'The reviews of a stop (backs the foreign key to fleet.stop)';
CREATE INDEX sync_review_driver ON fleet.sync_review (tenant_id, driver_id);
COMMENT ON INDEX fleet.sync_review_driver IS 'The reviews of a driver''s work (backs the foreign key to fleet.driver)';
SELECT fleet.enable_tenant_rls('fleet.sync_review');

CREATE FUNCTION fleet.sync_resolve_review(review_id bigint, resolution text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	IF resolution IS NULL OR pg_catalog.btrim(resolution) OPERATOR(pg_catalog.=) '' THEN
		RAISE EXCEPTION 'a resolution must be given' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE fleet.sync_review v
	   SET status = 'resolved', resolved_at = pg_catalog.clock_timestamp(), resolved_by = CURRENT_USER,
	       resolution = sync_resolve_review.resolution
	 WHERE v.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND v.review_id OPERATOR(pg_catalog.=) sync_resolve_review.review_id
	   AND v.status OPERATOR(pg_catalog.=) 'open'
	RETURNING v.conflict_id, v.resolved_at INTO r;
	IF NOT FOUND THEN
		IF NOT EXISTS (SELECT 1 FROM fleet.sync_review v
		                WHERE v.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND v.review_id OPERATOR(pg_catalog.=) sync_resolve_review.review_id) THEN
			RAISE EXCEPTION 'review item % does not exist', review_id USING ERRCODE = 'undefined_object';
		END IF;
		RETURN false;
	END IF;
	-- the offline write is reconciled once its review is resolved
	UPDATE fleet.sync_mutation m SET reconciled_at = r.resolved_at
	  FROM fleet.sync_conflict c
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND c.conflict_id OPERATOR(pg_catalog.=) r.conflict_id
	   AND m.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND m.client_id OPERATOR(pg_catalog.=) c.client_id AND m.mutation_id OPERATOR(pg_catalog.=) c.mutation_id
	   AND m.reconciled_at IS NULL;
	RETURN true;
END
$$;
COMMENT ON FUNCTION fleet.sync_resolve_review(bigint, text) IS
	'Resolve an open dispatcher review item with a resolution text; the offline write that raised it counts as reconciled from then on. false if it was already resolved.';

-- --------------------------------------------------------------- clocks

CREATE TABLE fleet.sync_clock (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	entity      text NOT NULL,
	entity_id   bigint NOT NULL,
	hlc_ms      bigint NOT NULL,
	hlc_counter integer NOT NULL,
	origin      text NOT NULL,
	PRIMARY KEY (tenant_id, entity, entity_id)
);
COMMENT ON TABLE fleet.sync_clock IS
	'Hybrid logical clock (wall ms, counter, origin) of the last write to an entity''s adjustable fields: a client''s clock when its write won, the server''s when anyone else (a dispatcher) changed them; lww_hlc compares against it';
SELECT fleet.enable_tenant_rls('fleet.sync_clock');

CREATE FUNCTION fleet.sync_parse_hlc(hlc text) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v bigint[];
BEGIN
	IF hlc IS NULL THEN
		RETURN NULL;
	END IF;
	IF hlc OPERATOR(pg_catalog.!~) '^[0-9]{1,15}:[0-9]{1,9}$' THEN
		RAISE EXCEPTION 'invalid hybrid logical clock "%"', hlc
			USING ERRCODE = 'invalid_parameter_value', HINT = 'A clock is "<unix ms>:<counter>", for example "1732800000000:0".';
	END IF;
	v := ARRAY[pg_catalog.split_part(hlc, ':', 1)::bigint, pg_catalog.split_part(hlc, ':', 2)::bigint];
	-- in unix ms, exactly as extension/sync_push.c's valid_hlc() compares
	IF v[1]::pg_catalog.numeric OPERATOR(pg_catalog.>)
	   ((EXTRACT(epoch FROM pg_catalog.statement_timestamp())
	     OPERATOR(pg_catalog.+) EXTRACT(epoch FROM pg_catalog.current_setting('fleet.future_margin')::pg_catalog.interval))
	    OPERATOR(pg_catalog.*) 1000) THEN
		RAISE EXCEPTION 'hybrid logical clock "%" is later than now + fleet.future_margin', hlc
			USING ERRCODE = 'datetime_field_overflow',
			      DETAIL = pg_catalog.format('The clock''s wall time may lie at most %s past the server''s clock.',
			                                 pg_catalog.current_setting('fleet.future_margin')),
			      HINT = 'Set the device''s clock; a clock from the future would win every lww_hlc conflict.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION fleet.sync_parse_hlc(text) IS
	'Parse a hybrid logical clock "<unix ms>:<counter>" (1-15 and 1-9 digits) into {ms, counter}; NULL stays NULL. Not of that shape: SQLSTATE 22023; wall time later than the statement''s start + fleet.future_margin: SQLSTATE 22008 (an old clock is accepted: it only loses lww_hlc conflicts)';

-- ----------------------------------------------------------- change log

CREATE TABLE fleet.sync_change (
	tenant_id  bigint NOT NULL,
	change_id  bigint GENERATED ALWAYS AS IDENTITY,
	txid       xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	driver_id  bigint NOT NULL,
	entity     text NOT NULL CHECK (entity OPERATOR(pg_catalog.=) ANY (ARRAY['job', 'stop', 'vehicle'])),
	entity_id  bigint NOT NULL,
	changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, change_id)
);
COMMENT ON TABLE fleet.sync_change IS
	'Change log for pulls: one row per driver whose copy of an entity may have changed (the entity changed, or entered or left the driver''s scope), stamped with the writer''s transaction id. Pulls read it in (txid, change_id) order below the oldest running transaction, so a late commit is never skipped; whether a row is a put or a removal is decided at pull time from the current scope.';
CREATE INDEX sync_change_pull ON fleet.sync_change (tenant_id, driver_id, txid, change_id);
COMMENT ON INDEX fleet.sync_change_pull IS 'A driver''s changes in cursor order';
CREATE INDEX sync_change_entity ON fleet.sync_change (tenant_id, entity, entity_id, driver_id);
COMMENT ON INDEX fleet.sync_change_entity IS 'Was an entity ever in a driver''s scope (reassignment detection)';
SELECT fleet.enable_tenant_rls('fleet.sync_change');

CREATE FUNCTION fleet.sync_log_stop() RETURNS trigger
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_sync_log_stop';
-- Not SECURITY DEFINER: the change log and the clocks are written on behalf
-- of every writer of fleet.stop (dispatch apps, handlers, sync) but no role
-- may write them directly, so a pull can trust them; extension/sync_log.c
-- runs its statements as the extension owner (schema-qualified, naming the
-- row's own tenant_id), as the ingest functions do.
COMMENT ON FUNCTION fleet.sync_log_stop() IS
	'Statement trigger on fleet.stop (rows as transition tables, an update''s old and new rows paired by key): log each stop (and, when its driver or job changes, its job and vehicle) for the old and new driver; advance the server clock when adjustable fields change';
REVOKE ALL ON FUNCTION fleet.sync_log_stop() FROM PUBLIC;
-- Statement triggers with transition tables (one per event: PostgreSQL
-- allows transition tables only on single-event triggers), so a statement
-- that changes many stops logs them in one insert.
CREATE TRIGGER sync_log_stop_insert AFTER INSERT ON fleet.stop
	REFERENCING NEW TABLE AS sync_new
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.sync_log_stop();
COMMENT ON TRIGGER sync_log_stop_insert ON fleet.stop IS 'Feeds fleet.sync_change (pulls of driver apps): new stops';
CREATE TRIGGER sync_log_stop_update AFTER UPDATE ON fleet.stop
	REFERENCING OLD TABLE AS sync_old NEW TABLE AS sync_new
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.sync_log_stop();
COMMENT ON TRIGGER sync_log_stop_update ON fleet.stop IS 'Feeds fleet.sync_change (pulls of driver apps): changed stops';
CREATE TRIGGER sync_log_stop_delete AFTER DELETE ON fleet.stop
	REFERENCING OLD TABLE AS sync_old
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.sync_log_stop();
COMMENT ON TRIGGER sync_log_stop_delete ON fleet.stop IS 'Feeds fleet.sync_change (pulls of driver apps): deleted stops';

CREATE FUNCTION fleet.sync_log_job() RETURNS trigger
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: as fleet.sync_log_stop(), the change log is written on
-- behalf of every writer of fleet.job; statements name the row's tenant_id.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant bigint;
	v_job bigint;
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN v_tenant := OLD.tenant_id; v_job := OLD.job_id;
	ELSE v_tenant := NEW.tenant_id; v_job := NEW.job_id; END IF;
	WITH drivers AS (
		SELECT CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.driver_id END AS d
		UNION SELECT CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.driver_id END
		UNION SELECT s.driver_id FROM fleet.stop s
		       WHERE s.tenant_id OPERATOR(pg_catalog.=) v_tenant AND s.job_id OPERATOR(pg_catalog.=) v_job)
	INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)
	SELECT v_tenant, d.d, e.entity, e.id
	  FROM drivers d
	 CROSS JOIN (
		SELECT 'job'::text AS entity, v_job AS id
		UNION
		SELECT 'vehicle', v.v
		  FROM (VALUES (CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.vehicle_id END),
		               (CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.vehicle_id END)) v (v)
		 WHERE v.v IS NOT NULL
		   AND (TG_OP OPERATOR(pg_catalog.<>) 'UPDATE' OR OLD.vehicle_id IS DISTINCT FROM NEW.vehicle_id
		        OR OLD.driver_id IS DISTINCT FROM NEW.driver_id)) e
	 WHERE d.d IS NOT NULL;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION fleet.sync_log_job() IS
	'Trigger on fleet.job: log the job for its old and new driver and the drivers of its stops; and its old and new vehicle when the vehicle or driver changes';
REVOKE ALL ON FUNCTION fleet.sync_log_job() FROM PUBLIC;
CREATE TRIGGER sync_log_job AFTER INSERT OR UPDATE OR DELETE ON fleet.job
	FOR EACH ROW EXECUTE FUNCTION fleet.sync_log_job();
COMMENT ON TRIGGER sync_log_job ON fleet.job IS 'Feeds fleet.sync_change (pulls of driver apps)';

CREATE FUNCTION fleet.sync_log_vehicle() RETURNS trigger
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: as fleet.sync_log_stop(); statements name the row's tenant_id.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)
	SELECT DISTINCT OLD.tenant_id, d.d, 'vehicle', OLD.vehicle_id
	  FROM fleet.job j
	 CROSS JOIN LATERAL (SELECT j.driver_id AS d
	                     UNION SELECT s.driver_id FROM fleet.stop s
	                            WHERE s.tenant_id OPERATOR(pg_catalog.=) j.tenant_id AND s.job_id OPERATOR(pg_catalog.=) j.job_id) d
	 WHERE j.tenant_id OPERATOR(pg_catalog.=) OLD.tenant_id AND j.vehicle_id OPERATOR(pg_catalog.=) OLD.vehicle_id AND d.d IS NOT NULL;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION fleet.sync_log_vehicle() IS 'Trigger on fleet.vehicle: log the vehicle for every driver who has it in scope';
REVOKE ALL ON FUNCTION fleet.sync_log_vehicle() FROM PUBLIC;
CREATE TRIGGER sync_log_vehicle AFTER UPDATE OR DELETE ON fleet.vehicle
	FOR EACH ROW EXECUTE FUNCTION fleet.sync_log_vehicle();
COMMENT ON TRIGGER sync_log_vehicle ON fleet.vehicle IS 'Feeds fleet.sync_change (pulls of driver apps)';

CREATE FUNCTION fleet.sync_log_pod() RETURNS trigger
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_sync_log_pod';
-- Not SECURITY DEFINER: as fleet.sync_log_stop() (extension/sync_log.c).
COMMENT ON FUNCTION fleet.sync_log_pod() IS 'Statement trigger on fleet.proof_of_delivery (new rows as a transition table): new evidence changes the stop for its driver';
REVOKE ALL ON FUNCTION fleet.sync_log_pod() FROM PUBLIC;
CREATE TRIGGER sync_log_pod AFTER INSERT ON fleet.proof_of_delivery
	REFERENCING NEW TABLE AS sync_new
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.sync_log_pod();
COMMENT ON TRIGGER sync_log_pod ON fleet.proof_of_delivery IS 'Feeds fleet.sync_change (pulls of driver apps)';

-- ---------------------------------------------------------------- scope

-- fleet.sync_entities() is the one definition of an entity as a driver's
-- app holds it: pulls (both modes), fleet.sync_scope() and
-- fleet.sync_entity() all build their JSON with it, so a pulled copy and the
-- scope query can never disagree.  It is set-based: one query per call,
-- however many entities (a pull page of 10,000 change-log rows is one call,
-- not one executor start per entity).

CREATE FUNCTION fleet.sync_entities(driver_id bigint, entities text[], entity_ids bigint[])
RETURNS TABLE (entity text, entity_id bigint, data jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pg_catalog.cardinality(entities) IS DISTINCT FROM pg_catalog.cardinality(entity_ids) THEN
		RAISE EXCEPTION 'entities and entity_ids must have the same length (% and %)',
			COALESCE(pg_catalog.cardinality(entities)::text, 'NULL'), COALESCE(pg_catalog.cardinality(entity_ids)::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Element i of both arrays names one entity: (entities[i], entity_ids[i]).';
	END IF;
	-- Each type is a join from the keys to its table by primary key and a
	-- stop's evidence a correlated aggregate over its index: no join in
	-- here depends on row estimates (the keys are a parameter), so a
	-- generic plan is as good as a custom one.
	RETURN QUERY
	WITH keys AS (
		SELECT DISTINCT u.ent, u.eid
		  FROM ROWS FROM (pg_catalog.unnest(sync_entities.entities), pg_catalog.unnest(sync_entities.entity_ids)) u (ent, eid))
	SELECT k.ent, k.eid,
	       CASE WHEN s.stop_id IS NOT NULL THEN pg_catalog.jsonb_build_object(
	           'stop_id', s.stop_id, 'job_id', s.job_id, 'seq', s.seq, 'kind', s.kind, 'address', s.address,
	           'lat', s.lat, 'lon', s.lon, 'window_start', s.window_start, 'window_end', s.window_end,
	           'driver_id', s.driver_id, 'status', s.status, 'version', s.version,
	           'arrived_at', s.arrived_at, 'completed_at', s.completed_at,
	           'evidence', COALESCE((
	               SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
	                   'pod_id', p.pod_id, 'kind', p.kind, 'driver_id', p.driver_id,
	                   'captured_at', p.captured_at, 'metadata', p.metadata) ORDER BY p.pod_id)
	                 FROM fleet.proof_of_delivery p
	                WHERE p.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND p.stop_id OPERATOR(pg_catalog.=) s.stop_id), '[]')) END
	  FROM keys k
	  LEFT JOIN fleet.stop s
	    ON s.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND s.stop_id OPERATOR(pg_catalog.=) k.eid
	   AND s.driver_id OPERATOR(pg_catalog.=) sync_entities.driver_id
	 WHERE k.ent OPERATOR(pg_catalog.=) 'stop'
	UNION ALL
	SELECT k.ent, k.eid,
	       CASE WHEN j.job_id IS NOT NULL THEN pg_catalog.jsonb_build_object(
	           'job_id', j.job_id, 'code', j.code, 'customer_id', j.customer_id, 'vehicle_id', j.vehicle_id,
	           'driver_id', j.driver_id, 'status', j.status, 'version', j.version,
	           'planned_start', j.planned_start, 'planned_end', j.planned_end) END
	  FROM keys k
	  LEFT JOIN fleet.job j
	    ON j.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND j.job_id OPERATOR(pg_catalog.=) k.eid
	   AND (j.driver_id OPERATOR(pg_catalog.=) sync_entities.driver_id
	        OR EXISTS (SELECT 1 FROM fleet.stop s
	                    WHERE s.tenant_id OPERATOR(pg_catalog.=) j.tenant_id AND s.job_id OPERATOR(pg_catalog.=) j.job_id
	                      AND s.driver_id OPERATOR(pg_catalog.=) sync_entities.driver_id))
	 WHERE k.ent OPERATOR(pg_catalog.=) 'job'
	UNION ALL
	SELECT k.ent, k.eid,
	       CASE WHEN v.vehicle_id IS NOT NULL THEN pg_catalog.jsonb_build_object(
	           'vehicle_id', v.vehicle_id, 'code', v.code, 'name', v.name, 'plate', v.plate, 'status', v.status) END
	  FROM keys k
	  LEFT JOIN fleet.vehicle v
	    ON v.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND v.vehicle_id OPERATOR(pg_catalog.=) k.eid
	   AND EXISTS (SELECT 1 FROM fleet.job j
	                WHERE j.tenant_id OPERATOR(pg_catalog.=) v.tenant_id AND j.vehicle_id OPERATOR(pg_catalog.=) v.vehicle_id
	                  AND (j.driver_id OPERATOR(pg_catalog.=) sync_entities.driver_id
	                       OR EXISTS (SELECT 1 FROM fleet.stop s
	                                   WHERE s.tenant_id OPERATOR(pg_catalog.=) j.tenant_id AND s.job_id OPERATOR(pg_catalog.=) j.job_id
	                                     AND s.driver_id OPERATOR(pg_catalog.=) sync_entities.driver_id)))
	 WHERE k.ent OPERATOR(pg_catalog.=) 'vehicle'
	UNION ALL
	SELECT k.ent, k.eid, NULL::jsonb		-- no such kind of entity
	  FROM keys k
	 WHERE k.ent IS NULL OR k.ent OPERATOR(pg_catalog.<>) ALL (ARRAY['stop', 'job', 'vehicle'])
	 ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION fleet.sync_entities(bigint, text[], bigint[]) IS
	'Entities as a driver app sees them (a stop with its evidence, a job, a vehicle), built in one query: one row per distinct requested (entities[i], entity_ids[i]), data NULL when it is not in the driver''s scope: their stops, the jobs they drive or have stops in, and those jobs'' vehicles (current tenant only). In (entity, id) order. The one definition pulls, fleet.sync_scope() and fleet.sync_entity() use.';

CREATE FUNCTION fleet.sync_entity(driver_id bigint, entity text, entity_id bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.data
	  FROM fleet.sync_entities(sync_entity.driver_id, ARRAY[sync_entity.entity], ARRAY[sync_entity.entity_id]) e
$$;
COMMENT ON FUNCTION fleet.sync_entity(bigint, text, bigint) IS
	'An entity as a driver app sees it (a stop with its evidence, a job, a vehicle), or NULL when it is not in the driver''s scope: their stops, the jobs they drive or have stops in, and those jobs'' vehicles (current tenant only); one row of fleet.sync_entities()';

CREATE FUNCTION fleet.sync_scope_keys(driver_id bigint)
RETURNS TABLE (entity text, entity_id bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH stops AS (
		SELECT s.stop_id, s.job_id FROM fleet.stop s
		 WHERE s.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant() AND s.driver_id OPERATOR(pg_catalog.=) sync_scope_keys.driver_id),
	jobs AS (
		SELECT j.job_id, j.vehicle_id FROM fleet.job j
		 WHERE j.tenant_id OPERATOR(pg_catalog.=) fleet.current_tenant()
		   AND (j.driver_id OPERATOR(pg_catalog.=) sync_scope_keys.driver_id OR j.job_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT s.job_id FROM stops s))))
	SELECT 'job'::text, j.job_id FROM jobs j
	UNION SELECT 'stop', s.stop_id FROM stops s
	UNION SELECT 'vehicle', j.vehicle_id FROM jobs j WHERE j.vehicle_id IS NOT NULL
$$;
COMMENT ON FUNCTION fleet.sync_scope_keys(bigint) IS
	'The entities in a driver''s scope (current tenant): their stops, the jobs they drive or have stops in, and those jobs'' vehicles';

CREATE FUNCTION fleet.sync_scope(driver_id bigint)
RETURNS TABLE (entity text, entity_id bigint, data jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.entity, e.entity_id, e.data
	  FROM (SELECT pg_catalog.array_agg(k.entity) AS entities, pg_catalog.array_agg(k.entity_id) AS entity_ids
	          FROM fleet.sync_scope_keys(sync_scope.driver_id) k) ks
	 CROSS JOIN LATERAL fleet.sync_entities(sync_scope.driver_id, ks.entities, ks.entity_ids) e
	 ORDER BY 1, 2
$$;
COMMENT ON FUNCTION fleet.sync_scope(bigint) IS
	'Everything in a driver''s scope as their app should hold it, in (entity, id) order: the server side of a full sync, and the oracle tests compare pulled copies with';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges, columns) VALUES
	('fleet_app',     'TABLE', 'fleet.sync_client', 'UPDATE', ARRAY['active', 'last_pull_at', 'pull_txid', 'pull_change']),
	('fleet_app',     'TABLE', 'fleet.sync_review', 'UPDATE', ARRAY['status', 'resolved_at', 'resolved_by', 'resolution']),
	('fleet_admin',   'TABLE', 'fleet.sync_review', 'UPDATE', ARRAY['status', 'resolved_at', 'resolved_by', 'resolution']),
	('fleet_app',     'TABLE', 'fleet.sync_mutation', 'UPDATE', ARRAY['reconciled_at']),
	('fleet_admin',   'TABLE', 'fleet.sync_mutation', 'UPDATE', ARRAY['reconciled_at']);

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.sync_state', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.sync_state', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_state', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.sync_setting', 'SELECT, UPDATE'),
	('fleet_app',     'TABLE', 'fleet.sync_setting', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_setting', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.sync_workflow', 'SELECT, UPDATE'),
	('fleet_app',     'TABLE', 'fleet.sync_workflow', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_workflow', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.set_sync_rule(text,text,regprocedure)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.sync_client', 'SELECT, INSERT, UPDATE'),
	('fleet_app',     'TABLE', 'fleet.sync_client', 'SELECT, INSERT'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_scope_keys(bigint)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_scope_keys(bigint)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.sync_scope_keys(bigint)', 'EXECUTE'),
	('fleet_analyst', 'TABLE', 'fleet.sync_client', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_register_client(uuid,bigint)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_register_client(uuid,bigint)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_deactivate_client(uuid)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.sync_mutation', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.sync_mutation', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_mutation', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.sync_conflict', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.sync_conflict', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_conflict', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.sync_review', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.sync_review', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_review', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_resolve_review(bigint,text)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_resolve_review(bigint,text)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.sync_clock', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.sync_clock', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_clock', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_parse_hlc(text)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_parse_hlc(text)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.sync_change', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.sync_change', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_change', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_entities(bigint,text[],bigint[])', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_entities(bigint,text[],bigint[])', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.sync_entities(bigint,text[],bigint[])', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_entity(bigint,text,bigint)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_entity(bigint,text,bigint)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.sync_scope(bigint)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.sync_scope(bigint)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.sync_scope(bigint)', 'EXECUTE');
