-- 51_sync_push: applying a driver app's offline writes, exactly once.
--
-- fleet.sync_push(client, mutations) locks the client row, so one client's
-- pushes are serialized, and processes the batch in id order: an id at or
-- below the client's last processed id is a duplicate (its stored result is
-- returned again; a different payload under that id is an error), the next
-- id is decided and applied, an id beyond it is refused with the id expected
-- next.  Deciding a mutation locks its entity, compares what the device saw
-- (base_version, and for lww_hlc its clock) with the server, and applies the
-- workflow's merge rule (fleet.sync_workflow).  Each decision becomes one
-- trail event through fleet.ingest_events() (source "sync", idempotency key
-- "<client>:<mutation id>"), so replay and audits see it, and every conflict
-- a fleet.sync_conflict record.  A mutation that fails for a permanent
-- reason is rejected with the reason and still counts as processed, so one
-- bad write never blocks a device.

CREATE FUNCTION fleet.sync_bump_version() RETURNS trigger
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_sync_bump_version';
COMMENT ON FUNCTION fleet.sync_bump_version() IS
	'Trigger: an update of a job or stop that changes anything but does not set its version increments it, so a driver app that saw the old version detects the conflict; a status change that does not name its event clears status_event_id (the status no longer comes from an event), except when fleet.reconcile() restores the event''s status';
CREATE TRIGGER sync_bump_version BEFORE UPDATE ON fleet.stop
	FOR EACH ROW EXECUTE FUNCTION fleet.sync_bump_version();
COMMENT ON TRIGGER sync_bump_version ON fleet.stop IS 'Every change of a stop moves its version (optimistic concurrency for driver apps)';
CREATE TRIGGER sync_bump_version BEFORE UPDATE ON fleet.job
	FOR EACH ROW EXECUTE FUNCTION fleet.sync_bump_version();
COMMENT ON TRIGGER sync_bump_version ON fleet.job IS 'Every change of a job moves its version (optimistic concurrency for driver apps)';

CREATE FUNCTION fleet.sync_call_merge(fn regprocedure, owner oid, workflow text, client jsonb, server jsonb)
RETURNS jsonb
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_sync_call_merge';
COMMENT ON FUNCTION fleet.sync_call_merge(regprocedure, oid, text, jsonb, jsonb) IS
	'Internal to fleet.sync_push(): call a custom merge function as the role that registered it (not as the extension owner), in a restricted security context';
REVOKE ALL ON FUNCTION fleet.sync_call_merge(regprocedure, oid, text, jsonb, jsonb) FROM PUBLIC;

SELECT fleet.register_event_kind('sync.mutation', 'audit', 1,
	'{"client": "string", "mutation_id": "number", "workflow": "string", "result": "string"}', NULL,
	'A driver app''s offline write and how it was decided (logged by fleet.sync_push); no projection');

CREATE TYPE fleet.sync_outcome AS (
	result text, rule text, reason text, entity text, entity_id bigint,
	conflict_id bigint, event_id bigint, version bigint,
	trail_kind text, trail_payload jsonb, trail_occurred timestamptz);
COMMENT ON TYPE fleet.sync_outcome IS
	'Internal to fleet.sync_push(): how one mutation was decided (result, rule, reason, the entity and its version after it, the conflict record) and its trail event (id taken, kind, payload, occurred-at) still to be logged';

CREATE FUNCTION fleet.sync_apply_run(tenant_id bigint, client_id uuid, driver_id bigint, mutation_id bigint[],
	workflow text[], args jsonb[], client_time timestamptz[], base_version bigint[], hlc text[])
RETURNS SETOF fleet.sync_outcome
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_sync_apply_run';
COMMENT ON FUNCTION fleet.sync_apply_run(bigint, uuid, bigint, bigint[], text[], jsonb[], timestamptz[], bigint[], text[]) IS
	'The set-based run of fleet.sync_push() (FleetSyncRun in extension/sync_push.c, which the push calls directly) from SQL, for tests: decide the leading mutations of a run that meet no conflict (a driver''s own stops: status forward, evidence added, against the current version) in memory under one lock of their stops, write them set-based, and return their outcomes in order; stops at the first mutation that needs fleet.sync_apply()';
REVOKE ALL ON FUNCTION fleet.sync_apply_run(bigint, uuid, bigint, bigint[], text[], jsonb[], timestamptz[], bigint[], text[]) FROM PUBLIC;

CREATE FUNCTION fleet.sync_apply(tenant_id bigint, client_id uuid, driver_id bigint, mutation_id bigint,
	workflow text, args jsonb, client_time timestamptz, base_version bigint, hlc text,
	OUT result text, OUT rule text, OUT reason text, OUT entity text, OUT entity_id bigint,
	OUT conflict_id bigint, OUT event_id bigint, OUT version bigint,
	OUT trail_kind text, OUT trail_payload jsonb, OUT trail_occurred timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w record;
	cur record;
	v_tenant bigint := sync_apply.tenant_id;
	v_id bigint;
	v_kind text;				-- conflict kind, NULL when there is none
	v_kind0 text;
	v_decision text;			-- client, server, merge, kept_evidence
	v_value jsonb;				-- what the client asks for (or the custom merge)
	v_server jsonb;
	v_client jsonb;
	v_hlc bigint[];
	v_clock bigint[];
	v_custom jsonb;
	v_review boolean := false;
	v_status text;
	v_ekind text;
	v_epayload jsonb;
	v_changed boolean := false;
	v_pod bigint;
	v_field text;
	v_occurred timestamptz;
BEGIN
	SELECT * INTO w FROM fleet.sync_workflow x WHERE x.workflow OPERATOR(pg_catalog.=) sync_apply.workflow;
	IF NOT FOUND THEN
		result := 'rejected'; reason := 'unknown_workflow';
		RETURN;
	END IF;
	rule := w.rule;
	entity := w.entity;
	IF args IS NULL OR pg_catalog.jsonb_typeof(args) OPERATOR(pg_catalog.<>) 'object' THEN
		result := 'rejected'; reason := 'invalid_args: not a JSON object';
		RETURN;
	END IF;
	IF pg_catalog.jsonb_typeof(args OPERATOR(pg_catalog.->) (w.entity OPERATOR(pg_catalog.||) '_id')) IS DISTINCT FROM 'number' THEN
		result := 'rejected'; reason := pg_catalog.format('invalid_args: %s_id must be a number', w.entity);
		RETURN;
	END IF;
	v_id := (args OPERATOR(pg_catalog.->>) (w.entity OPERATOR(pg_catalog.||) '_id'))::bigint;
	entity_id := v_id;
	BEGIN
		v_hlc := fleet.sync_parse_hlc(hlc);
	EXCEPTION
		WHEN invalid_parameter_value THEN
			result := 'rejected'; reason := 'invalid_hlc';
			RETURN;
		WHEN datetime_field_overflow THEN
			result := 'rejected'; reason := 'invalid_hlc: later than now + fleet.future_margin';
			RETURN;
	END;

	-- the entity, locked until the push commits
	IF w.entity OPERATOR(pg_catalog.=) 'stop' THEN
		SELECT s.stop_id AS id, s.status, s.version, s.driver_id, s.job_id, s.seq, j.code AS job_code,
		       s.address, s.lat, s.lon, s.window_start, s.window_end, s.updated_at,
		       (s.driver_id OPERATOR(pg_catalog.=) sync_apply.driver_id) AS in_scope
		  INTO cur
		  FROM fleet.stop s
		  JOIN fleet.job j ON j.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND j.job_id OPERATOR(pg_catalog.=) s.job_id
		 WHERE s.tenant_id OPERATOR(pg_catalog.=) v_tenant AND s.stop_id OPERATOR(pg_catalog.=) v_id
		   FOR UPDATE OF s;
	ELSE
		SELECT j.job_id AS id, j.status, j.version, j.driver_id, j.job_id, NULL::integer AS seq, j.code AS job_code,
		       j.updated_at,
		       (j.driver_id OPERATOR(pg_catalog.=) sync_apply.driver_id
		        OR EXISTS (SELECT 1 FROM fleet.stop s
		                    WHERE s.tenant_id OPERATOR(pg_catalog.=) j.tenant_id AND s.job_id OPERATOR(pg_catalog.=) j.job_id
		                      AND s.driver_id OPERATOR(pg_catalog.=) sync_apply.driver_id)) AS in_scope
		  INTO cur
		  FROM fleet.job j
		 WHERE j.tenant_id OPERATOR(pg_catalog.=) v_tenant AND j.job_id OPERATOR(pg_catalog.=) v_id
		   FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		result := 'rejected'; reason := 'not_found';
		RETURN;
	END IF;
	version := cur.version;
	IF NOT COALESCE(cur.in_scope, false) THEN
		-- outside the driver's scope: acceptable only if it was theirs once
		-- (reassigned while the device was offline)
		IF NOT EXISTS (SELECT 1 FROM fleet.sync_change c
		                WHERE c.tenant_id OPERATOR(pg_catalog.=) v_tenant AND c.entity OPERATOR(pg_catalog.=) w.entity
		                  AND c.entity_id OPERATOR(pg_catalog.=) v_id AND c.driver_id OPERATOR(pg_catalog.=) sync_apply.driver_id) THEN
			result := 'rejected'; reason := 'not_in_scope';
			RETURN;
		END IF;
		v_kind := 'reassigned';
	END IF;
	IF base_version IS NOT NULL AND (base_version OPERATOR(pg_catalog.<) 1 OR base_version OPERATOR(pg_catalog.>) cur.version) THEN
		result := 'rejected'; reason := 'bad_base_version';
		RETURN;
	END IF;
	IF v_kind IS NULL AND cur.status OPERATOR(pg_catalog.=) 'cancelled' THEN
		v_kind := 'cancelled';
	END IF;
	IF v_kind IS NULL AND base_version IS NOT NULL AND base_version OPERATOR(pg_catalog.<) cur.version THEN
		v_kind := 'stale_base';
	END IF;

	v_kind0 := v_kind;		-- the conflict as the client side records it

	-- what is asked, validated
	IF w.action OPERATOR(pg_catalog.=) 'status' THEN
		v_status := args OPERATOR(pg_catalog.->>) 'status';
		IF v_status IS NULL OR (w.entity OPERATOR(pg_catalog.=) 'stop' AND fleet.stop_status_rank(v_status) IS NULL)
		   OR (w.entity OPERATOR(pg_catalog.=) 'job' AND fleet.job_status_rank(v_status) IS NULL) THEN
			result := 'rejected'; reason := 'invalid_status';
			RETURN;
		END IF;
		v_value := pg_catalog.jsonb_build_object('status', v_status);
	ELSIF w.action OPERATOR(pg_catalog.=) 'evidence' THEN
		IF v_kind OPERATOR(pg_catalog.=) 'stale_base' THEN
			v_kind := NULL;		-- evidence adds, it does not overwrite
		END IF;
		v_value := pg_catalog.jsonb_build_object(
			'kind', COALESCE(w.evidence_kind, args OPERATOR(pg_catalog.->>) 'kind'),
			'metadata', COALESCE(args OPERATOR(pg_catalog.->) 'metadata', '{}'),
			'captured_at', pg_catalog.to_jsonb(COALESCE((args OPERATOR(pg_catalog.->>) 'captured_at')::timestamptz, client_time, pg_catalog.now())));
		IF (v_value OPERATOR(pg_catalog.->>) 'kind') IS NULL
		   OR (v_value OPERATOR(pg_catalog.->>) 'kind') OPERATOR(pg_catalog.<>) ALL (ARRAY['signature', 'photo', 'barcode', 'note', 'inspection']) THEN
			result := 'rejected'; reason := 'invalid_kind';
			RETURN;
		END IF;
		IF pg_catalog.jsonb_typeof(v_value OPERATOR(pg_catalog.->) 'metadata') OPERATOR(pg_catalog.<>) 'object' THEN
			result := 'rejected'; reason := 'invalid_args: metadata must be a JSON object';
			RETURN;
		END IF;
	ELSE
		v_value := args OPERATOR(pg_catalog.->) 'fields';
		IF v_value IS NULL OR pg_catalog.jsonb_typeof(v_value) OPERATOR(pg_catalog.<>) 'object' OR v_value OPERATOR(pg_catalog.=) '{}'::jsonb THEN
			result := 'rejected'; reason := 'invalid_args: fields must be a non-empty JSON object';
			RETURN;
		END IF;
		SELECT k INTO v_field FROM pg_catalog.jsonb_object_keys(v_value) k
		 WHERE k OPERATOR(pg_catalog.<>) ALL (w.fields) LIMIT 1;
		IF FOUND THEN
			result := 'rejected'; reason := pg_catalog.format('invalid_field: %s', v_field);
			RETURN;
		END IF;
	END IF;

	-- both sides, for a custom merge, the clock rule and the conflict record:
	-- only those use them (a conflict arises later only under those two
	-- rules), so a plain applied mutation skips the clock read and the JSON;
	-- nothing above wrote anything, so they are what they were at the lock
	IF v_kind IS NOT NULL OR w.rule OPERATOR(pg_catalog.=) ANY (ARRAY['custom', 'lww_hlc']) THEN
		SELECT ARRAY[k.hlc_ms, k.hlc_counter] INTO v_clock FROM fleet.sync_clock k
		 WHERE k.tenant_id OPERATOR(pg_catalog.=) v_tenant AND k.entity OPERATOR(pg_catalog.=) w.entity AND k.entity_id OPERATOR(pg_catalog.=) v_id;
		IF v_clock IS NULL THEN
			v_clock := ARRAY[(EXTRACT(epoch FROM cur.updated_at) OPERATOR(pg_catalog.*) 1000)::bigint, 0];
		END IF;
		v_server := pg_catalog.jsonb_strip_nulls(pg_catalog.to_jsonb(cur)) OPERATOR(pg_catalog.-) 'in_scope'
		            OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('hlc', v_clock[1]::text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) v_clock[2]::text);
		v_client := pg_catalog.jsonb_build_object('args', args, 'base_version', base_version, 'hlc', hlc,
		                                          'client_time', client_time, 'driver_id', driver_id,
		                                          'conflict', v_kind0);
	END IF;

	-- the decision
	IF v_kind OPERATOR(pg_catalog.=) 'reassigned' AND w.action OPERATOR(pg_catalog.<>) 'evidence' THEN
		v_decision := 'server';			-- the stop belongs to its new driver now
	ELSIF w.rule OPERATOR(pg_catalog.=) 'custom' THEN
		v_custom := fleet.sync_call_merge(w.custom_fn, w.custom_owner, w.workflow, v_client, v_server);
		v_decision := v_custom OPERATOR(pg_catalog.->>) 'decision';
		IF v_decision OPERATOR(pg_catalog.=) 'reject' THEN
			result := 'rejected';
			reason := 'custom: ' OPERATOR(pg_catalog.||) COALESCE(v_custom OPERATOR(pg_catalog.->>) 'reason', 'rejected');
			RETURN;
		ELSIF v_decision OPERATOR(pg_catalog.=) 'merge' THEN
			IF w.action OPERATOR(pg_catalog.=) 'fields' THEN
				v_value := v_custom OPERATOR(pg_catalog.->) 'value';
			ELSIF w.action OPERATOR(pg_catalog.=) 'status' THEN
				v_value := pg_catalog.jsonb_build_object('status', v_custom OPERATOR(pg_catalog.->) 'value' OPERATOR(pg_catalog.->>) 'status');
			ELSE
				v_value := v_value OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('metadata', v_custom OPERATOR(pg_catalog.->) 'value' OPERATOR(pg_catalog.->) 'metadata');
			END IF;
		ELSIF v_decision IS NULL OR v_decision OPERATOR(pg_catalog.<>) ALL (ARRAY['client', 'server']) THEN
			RAISE EXCEPTION 'custom merge function of workflow "%" returned no valid decision', w.workflow
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF v_decision OPERATOR(pg_catalog.=) 'merge' AND w.action OPERATOR(pg_catalog.=) 'fields' THEN
			IF v_value IS NULL OR pg_catalog.jsonb_typeof(v_value) OPERATOR(pg_catalog.<>) 'object' OR v_value OPERATOR(pg_catalog.=) '{}'::jsonb
			   OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(v_value) k WHERE k OPERATOR(pg_catalog.<>) ALL (w.fields)) THEN
				RAISE EXCEPTION 'custom merge function of workflow "%" returned invalid fields', w.workflow
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
		END IF;
		IF v_kind IS NULL AND v_decision OPERATOR(pg_catalog.<>) 'client' THEN
			v_kind := 'stale_base';		-- the function overrode the device
		END IF;
	ELSIF w.rule OPERATOR(pg_catalog.=) 'server_wins' THEN
		v_decision := CASE WHEN v_kind IS NULL THEN 'client' ELSE 'server' END;
	ELSIF w.rule OPERATOR(pg_catalog.=) 'client_wins' THEN
		v_decision := 'client';
	ELSIF w.rule OPERATOR(pg_catalog.=) 'append_only_evidence' THEN
		v_decision := CASE WHEN v_kind IS NULL THEN 'client' ELSE 'kept_evidence' END;
	ELSIF w.rule OPERATOR(pg_catalog.=) 'lww_hlc' THEN
		IF v_hlc IS NULL THEN
			result := 'rejected'; reason := 'missing_hlc';
			RETURN;
		END IF;
		IF ROW(v_hlc[1], v_hlc[2]) OPERATOR(pg_catalog.>) ROW(v_clock[1], v_clock[2]) THEN
			v_decision := 'client';
		ELSE
			v_decision := 'server';		-- ties go to the server
			v_kind := COALESCE(v_kind, 'clock');
		END IF;
	ELSE	-- forward_only_status
		IF (w.entity OPERATOR(pg_catalog.=) 'stop' AND fleet.stop_status_rank(v_status) OPERATOR(pg_catalog.>) fleet.stop_status_rank(cur.status))
		   OR (w.entity OPERATOR(pg_catalog.=) 'job' AND fleet.job_status_rank(v_status) OPERATOR(pg_catalog.>) fleet.job_status_rank(cur.status))
		   OR v_status OPERATOR(pg_catalog.=) cur.status THEN
			v_decision := 'client';
		ELSIF v_kind IS NULL THEN
			result := 'rejected';
			reason := pg_catalog.format('status_regression: %s -> %s', cur.status, v_status);
			RETURN;
		ELSE
			v_decision := 'server';
		END IF;
	END IF;
	v_review := COALESCE(w.entity OPERATOR(pg_catalog.=) 'stop' AND v_kind OPERATOR(pg_catalog.=) ANY (ARRAY['reassigned', 'cancelled'])
	                     AND (w.action OPERATOR(pg_catalog.=) 'evidence' OR v_status OPERATOR(pg_catalog.=) ANY (ARRAY['arrived', 'completed', 'failed'])), false);

	result := CASE WHEN v_kind IS NULL THEN 'applied' ELSE 'merged' END;
	IF v_kind IS NOT NULL THEN
		reason := v_kind OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) CASE v_decision
			WHEN 'server' THEN 'server state kept'
			WHEN 'client' THEN 'client write applied'
			WHEN 'merge' THEN 'merged by the custom function'
			ELSE 'evidence kept' END
			OPERATOR(pg_catalog.||) CASE WHEN v_review THEN ', review raised' ELSE '' END;
	END IF;

	-- the trail event: the effect in the projection's own kind where there is one
	v_changed := v_decision OPERATOR(pg_catalog.<>) 'server' AND (
		(w.action OPERATOR(pg_catalog.=) 'status' AND (v_value OPERATOR(pg_catalog.->>) 'status') IS DISTINCT FROM cur.status)
		OR w.action OPERATOR(pg_catalog.=) 'evidence' OR w.action OPERATOR(pg_catalog.=) 'fields');
	IF v_changed AND w.action OPERATOR(pg_catalog.=) 'status'
	   AND ((w.entity OPERATOR(pg_catalog.=) 'stop' AND fleet.stop_status_rank(v_value OPERATOR(pg_catalog.->>) 'status') IS NULL)
	        OR (w.entity OPERATOR(pg_catalog.=) 'job' AND fleet.job_status_rank(v_value OPERATOR(pg_catalog.->>) 'status') IS NULL)) THEN
		RAISE EXCEPTION 'custom merge function of workflow "%" returned an invalid status', w.workflow
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF v_changed AND w.action OPERATOR(pg_catalog.=) 'status' AND w.entity OPERATOR(pg_catalog.=) 'stop' THEN
		v_ekind := 'stop.status';
		v_epayload := pg_catalog.jsonb_build_object('job', cur.job_code, 'seq', cur.seq, 'status', v_value OPERATOR(pg_catalog.->>) 'status');
	ELSIF v_changed AND w.action OPERATOR(pg_catalog.=) 'status' THEN
		v_ekind := 'job.status';
		v_epayload := pg_catalog.jsonb_build_object('job', cur.job_code, 'status', v_value OPERATOR(pg_catalog.->>) 'status');
	ELSIF v_changed AND w.action OPERATOR(pg_catalog.=) 'evidence' THEN
		v_ekind := 'pod.captured';
		v_epayload := pg_catalog.jsonb_build_object('job', cur.job_code, 'seq', cur.seq, 'kind', v_value OPERATOR(pg_catalog.->>) 'kind',
		                                            'metadata', v_value OPERATOR(pg_catalog.->) 'metadata');
	ELSE
		v_ekind := 'sync.mutation';
		v_epayload := pg_catalog.jsonb_build_object('args', args);
	END IF;
	v_epayload := v_epayload OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
		'client', client_id::text, 'mutation_id', mutation_id, 'workflow', w.workflow, 'result', result,
		'rule', w.rule, 'decision', v_decision, 'conflict', v_kind, 'driver_id', driver_id,
		'client_time', client_time, 'effect', CASE WHEN v_changed THEN v_value END);
	v_occurred := LEAST(COALESCE(client_time, pg_catalog.now()), pg_catalog.now());
	-- the trail event's id, taken now so the effect can name it; the caller
	-- logs the page's trail events in one fleet.ingest_events_reserved()
	event_id := pg_catalog.nextval('fleet.event_id_seq'::pg_catalog.regclass);
	trail_kind := v_ekind; trail_payload := v_epayload; trail_occurred := v_occurred;

	-- the effect
	IF v_changed AND w.action OPERATOR(pg_catalog.=) 'status' THEN
		INSERT INTO fleet.status_change (tenant_id, entity, entity_id, event_id, old_status, old_status_at, old_event_id, new_status)
		SELECT v_tenant, w.entity, v_id, event_id, cur.status, x.status_at, x.status_event_id, v_value OPERATOR(pg_catalog.->>) 'status'
		  FROM (SELECT s.status_at, s.status_event_id FROM fleet.stop s
		         WHERE w.entity OPERATOR(pg_catalog.=) 'stop' AND s.tenant_id OPERATOR(pg_catalog.=) v_tenant AND s.stop_id OPERATOR(pg_catalog.=) v_id
		        UNION ALL
		        SELECT j.status_at, j.status_event_id FROM fleet.job j
		         WHERE w.entity OPERATOR(pg_catalog.=) 'job' AND j.tenant_id OPERATOR(pg_catalog.=) v_tenant AND j.job_id OPERATOR(pg_catalog.=) v_id) x;
		IF w.entity OPERATOR(pg_catalog.=) 'stop' THEN
			UPDATE fleet.stop s
			   SET status = v_value OPERATOR(pg_catalog.->>) 'status', status_at = v_occurred, status_event_id = sync_apply.event_id,
			       arrived_at = CASE WHEN (v_value OPERATOR(pg_catalog.->>) 'status') OPERATOR(pg_catalog.=) 'arrived' THEN v_occurred ELSE s.arrived_at END,
			       completed_at = CASE WHEN (v_value OPERATOR(pg_catalog.->>) 'status') OPERATOR(pg_catalog.=) 'completed' THEN v_occurred ELSE s.completed_at END,
			       version = s.version OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now()
			 WHERE s.tenant_id OPERATOR(pg_catalog.=) v_tenant AND s.stop_id OPERATOR(pg_catalog.=) v_id
			RETURNING s.version INTO version;
		ELSE
			UPDATE fleet.job j
			   SET status = v_value OPERATOR(pg_catalog.->>) 'status', status_at = v_occurred, status_event_id = sync_apply.event_id,
			       version = j.version OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now()
			 WHERE j.tenant_id OPERATOR(pg_catalog.=) v_tenant AND j.job_id OPERATOR(pg_catalog.=) v_id
			RETURNING j.version INTO version;
		END IF;
	ELSIF v_changed AND w.action OPERATOR(pg_catalog.=) 'evidence' THEN
		INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at, metadata, source_event_id)
		VALUES (v_tenant, v_id, v_value OPERATOR(pg_catalog.->>) 'kind', driver_id, (v_value OPERATOR(pg_catalog.->>) 'captured_at')::timestamptz,
		        v_value OPERATOR(pg_catalog.->) 'metadata', event_id)
		RETURNING pod_id INTO v_pod;
	ELSIF v_changed THEN
		UPDATE fleet.stop s
		   SET address = CASE WHEN v_value OPERATOR(pg_catalog.?) 'address' THEN v_value OPERATOR(pg_catalog.->>) 'address' ELSE s.address END,
		       lat = CASE WHEN v_value OPERATOR(pg_catalog.?) 'lat' THEN (v_value OPERATOR(pg_catalog.->>) 'lat')::double precision ELSE s.lat END,
		       lon = CASE WHEN v_value OPERATOR(pg_catalog.?) 'lon' THEN (v_value OPERATOR(pg_catalog.->>) 'lon')::double precision ELSE s.lon END,
		       window_start = CASE WHEN v_value OPERATOR(pg_catalog.?) 'window_start' THEN (v_value OPERATOR(pg_catalog.->>) 'window_start')::timestamptz ELSE s.window_start END,
		       window_end = CASE WHEN v_value OPERATOR(pg_catalog.?) 'window_end' THEN (v_value OPERATOR(pg_catalog.->>) 'window_end')::timestamptz ELSE s.window_end END,
		       version = s.version OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now()
		 WHERE s.tenant_id OPERATOR(pg_catalog.=) v_tenant AND s.stop_id OPERATOR(pg_catalog.=) v_id
		RETURNING s.version INTO version;
		IF v_hlc IS NOT NULL THEN
			INSERT INTO fleet.sync_clock AS k (tenant_id, entity, entity_id, hlc_ms, hlc_counter, origin)
			VALUES (v_tenant, 'stop', v_id, v_hlc[1], v_hlc[2], client_id::text)
			ON CONFLICT ON CONSTRAINT sync_clock_pkey DO UPDATE
			   SET hlc_ms = EXCLUDED.hlc_ms, hlc_counter = EXCLUDED.hlc_counter, origin = EXCLUDED.origin;
		END IF;
	END IF;

	-- the conflict record, with both sides, the rule and the outcome
	IF v_kind IS NOT NULL THEN
		INSERT INTO fleet.sync_conflict (tenant_id, client_id, mutation_id, workflow, entity, entity_id, rule, kind,
		                                 client_side, server_side, decision, outcome, review)
		VALUES (v_tenant, client_id, mutation_id, w.workflow, w.entity, v_id, w.rule, v_kind,
		        v_client, v_server, v_decision,
		        pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
		            'applied', v_changed, 'value', CASE WHEN v_changed THEN v_value END,
		            'version', version, 'pod_id', v_pod, 'event_id', event_id)),
		        v_review)
		RETURNING sync_conflict.conflict_id INTO conflict_id;
		IF v_review THEN
			INSERT INTO fleet.sync_review (tenant_id, conflict_id, stop_id, driver_id, reason)
			VALUES (v_tenant, conflict_id, v_id, driver_id,
			        pg_catalog.format('%s offline on a stop that was %s meanwhile',
			            CASE WHEN w.action OPERATOR(pg_catalog.=) 'evidence' THEN 'evidence (' OPERATOR(pg_catalog.||) (v_value OPERATOR(pg_catalog.->>) 'kind') OPERATOR(pg_catalog.||) ') captured'
			                 ELSE 'status ' OPERATOR(pg_catalog.||) v_status OPERATOR(pg_catalog.||) ' set' END,
			            v_kind));
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.sync_apply(bigint, uuid, bigint, bigint, text, jsonb, timestamptz, bigint, text) IS
	'Internal to fleet.sync_push(): decide one mutation by its workflow''s merge rule, log its trail event, apply the effect, record any conflict and review item. Returns the result; rejections for known reasons are returned, not raised.';
REVOKE ALL ON FUNCTION fleet.sync_apply(bigint, uuid, bigint, bigint, text, jsonb, timestamptz, bigint, text) FROM PUBLIC;

CREATE FUNCTION fleet.sync_push(client_id uuid, mutations jsonb)
RETURNS TABLE (mutation_id bigint, result text, rule text, reason text, conflict_id bigint, stored jsonb)
LANGUAGE C VOLATILE
-- SECURITY DEFINER: applying a driver's offline write appends proof of
-- delivery and writes the sync bookkeeping tables, none of which the app
-- role may write directly (evidence is append-only and must carry its trail
-- event).  Every statement names the tenant context's tenant_id explicitly;
-- the client must belong to it.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'fleet_sync_push';
COMMENT ON FUNCTION fleet.sync_push(uuid, jsonb) IS
	'Push a driver app''s batch of mutations [{id, workflow, args, client_time, base_version, hlc}] for the current tenant: per mutation (in id order) applied, duplicate (the stored result again), merged (a conflict decided by the named rule) or rejected (with a reason). An id beyond the next expected one is refused (SQLSTATE 55000, detail names the expected id); a processed id with another payload is an error (23505), and so is a mutation whose trail key (source sync, key <client>:<id>) holds another writer''s event (the detail names it); a clock (hlc) later than now + fleet.future_margin rejects its mutation. Must run at READ COMMITTED.';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_app',   'FUNCTION', 'fleet.sync_push(uuid,jsonb)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_push(uuid,jsonb)', 'EXECUTE');
