-- 53_sync_reconcile: finding (and where possible repairing) what does not
-- add up, per tenant, scope and time range.
--
-- fleet.reconcile(from, to, repair, driver_id, vehicle_id) checks:
--   projection_drift     a job or stop whose status names the event that set
--                        it (status_event_id) but differs from that event;
--                        repair: the event's status
--   missing_evidence     a proof-of-delivery event logged by a sync push
--                        without its proof_of_delivery row; repair: the row,
--                        from the event
--   sequence_gap         consecutive fixes of a device whose sequence
--                        numbers skip (missing scans)
--   reporting_gap        consecutive fixes further apart than
--                        fleet.sync_setting.position_gap
--   stuck_event          an event not consumed by its class (or still
--                        retrying) longer than stuck_after
--   dead_letter          an event that died in its handler
--   unresolved_conflict  an open dispatcher review item; a conflict that
--                        asked for review but has none (repair: the item)
--   unreconciled_write   an offline write not reconciled within
--                        target_window of its client time; repair: a write
--                        whose review was resolved gets reconciled_at
-- Findings are kept in fleet.sync_finding, one row per (kind, subject),
-- seen again by later runs; each run is recorded with what it scanned.
-- Repair is idempotent: a second run finds nothing left to repair and
-- changes no data.  pg_cron runs fleet.reconcile_all() every five minutes.

CREATE TABLE fleet.sync_reconcile_run (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	run_id      bigint GENERATED ALWAYS AS IDENTITY,
	from_time   timestamptz NOT NULL,
	to_time     timestamptz NOT NULL,
	driver_id   bigint,
	vehicle_id  bigint,
	repair      boolean NOT NULL,
	started_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at timestamptz,
	scanned     jsonb NOT NULL DEFAULT '{}',
	findings    integer NOT NULL DEFAULT 0,
	repaired    integer NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, run_id)
);
COMMENT ON TABLE fleet.sync_reconcile_run IS
	'Reconciliation runs: scope, time range, whether repairs were made, rows scanned per source, findings and repairs';
SELECT fleet.enable_tenant_rls('fleet.sync_reconcile_run');

CREATE TABLE fleet.sync_finding (
	tenant_id       bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	finding_id      bigint GENERATED ALWAYS AS IDENTITY,
	kind            text NOT NULL
	                CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['projection_drift', 'missing_evidence', 'sequence_gap', 'reporting_gap',
	                                              'stuck_event', 'dead_letter', 'unresolved_conflict', 'unreconciled_write'])),
	subject         text NOT NULL,
	detail          jsonb NOT NULL,
	first_run_id    bigint NOT NULL,
	last_run_id     bigint NOT NULL,
	first_seen      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	last_seen       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	repaired_run_id bigint,
	repaired_at     timestamptz,
	PRIMARY KEY (tenant_id, finding_id),
	UNIQUE (tenant_id, kind, subject)
);
COMMENT ON TABLE fleet.sync_finding IS
	'What reconciliation found, one row per (kind, subject): first and last run that saw it, and the run that repaired it (NULL: not repairable, or not repaired yet)';
SELECT fleet.enable_tenant_rls('fleet.sync_finding');

CREATE FUNCTION fleet.reconcile(from_time timestamptz, to_time timestamptz, repair boolean DEFAULT false,
	driver_id bigint DEFAULT NULL, vehicle_id bigint DEFAULT NULL)
RETURNS TABLE (kind text, subject text, detail jsonb, repaired boolean)
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: repair restores append-only evidence and projections,
-- which fleet_admin (who runs this, and pg_cron) may not write directly; the
-- checks read the pipeline's cursors and dead letters.  Every statement
-- names the tenant context's tenant_id; search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_tenant bigint := fleet.current_tenant();
	v_run bigint;
	s record;
	v_now timestamptz := pg_catalog.clock_timestamp();
	v_scanned jsonb := '{}';
	n bigint;
	v_found integer := 0;
	v_repaired integer := 0;
	v_driver bigint := reconcile.driver_id;
	v_vehicle bigint := reconcile.vehicle_id;
	v_from timestamptz := reconcile.from_time;
	v_to timestamptz := reconcile.to_time;
	v_repair boolean := COALESCE(reconcile.repair, false);
BEGIN
	IF v_tenant IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	IF v_from IS NULL OR v_to IS NULL OR v_to OPERATOR(pg_catalog.<=) v_from THEN
		RAISE EXCEPTION 'invalid time range: from_time and to_time must be given, to_time after from_time'
			USING ERRCODE = 'invalid_parameter_value', DETAIL = pg_catalog.format('Range: %s .. %s', v_from, v_to);
	END IF;
	SELECT * INTO s FROM fleet.sync_setting;
	INSERT INTO fleet.sync_reconcile_run (tenant_id, from_time, to_time, driver_id, vehicle_id, repair)
	VALUES (v_tenant, v_from, v_to, v_driver, v_vehicle, v_repair)
	RETURNING run_id INTO v_run;
	-- repairing a status keeps the event that set it
	IF v_repair THEN
		PERFORM pg_catalog.set_config('fleet_sync.repair', 'on', true);
	END IF;

	-- projection_drift: status vs the event named by status_event_id
	CREATE TEMP TABLE fleet_recon_drift ON COMMIT DROP AS
	SELECT 'stop'::text AS entity, x.stop_id AS id, x.status, e.event_id, e.payload OPERATOR(pg_catalog.->>) 'status' AS event_status
	  FROM fleet.stop x
	  JOIN fleet.event_log e ON e.tenant_id OPERATOR(pg_catalog.=) x.tenant_id AND e.event_id OPERATOR(pg_catalog.=) x.status_event_id
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND e.kind OPERATOR(pg_catalog.=) 'stop.status'
	   AND e.logged_at OPERATOR(pg_catalog.>=) v_from AND e.logged_at OPERATOR(pg_catalog.<) v_to
	   AND (v_driver IS NULL OR x.driver_id OPERATOR(pg_catalog.=) v_driver)
	   AND x.status OPERATOR(pg_catalog.<>) (e.payload OPERATOR(pg_catalog.->>) 'status')
	UNION ALL
	SELECT 'job', x.job_id, x.status, e.event_id, e.payload OPERATOR(pg_catalog.->>) 'status'
	  FROM fleet.job x
	  JOIN fleet.event_log e ON e.tenant_id OPERATOR(pg_catalog.=) x.tenant_id AND e.event_id OPERATOR(pg_catalog.=) x.status_event_id
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND e.kind OPERATOR(pg_catalog.=) 'job.status'
	   AND e.logged_at OPERATOR(pg_catalog.>=) v_from AND e.logged_at OPERATOR(pg_catalog.<) v_to
	   AND (v_driver IS NULL OR x.driver_id OPERATOR(pg_catalog.=) v_driver)
	   AND x.status OPERATOR(pg_catalog.<>) (e.payload OPERATOR(pg_catalog.->>) 'status');
	SELECT pg_catalog.count(*) INTO n FROM fleet.stop x
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.status_event_id IS NOT NULL AND (v_driver IS NULL OR x.driver_id OPERATOR(pg_catalog.=) v_driver);
	v_scanned := v_scanned OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('projections', n);
	IF v_repair THEN
		UPDATE fleet.stop x SET status = d.event_status, updated_at = pg_catalog.now()
		  FROM fleet_recon_drift d
		 WHERE d.entity OPERATOR(pg_catalog.=) 'stop' AND x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.stop_id OPERATOR(pg_catalog.=) d.id;
		UPDATE fleet.job x SET status = d.event_status, updated_at = pg_catalog.now()
		  FROM fleet_recon_drift d
		 WHERE d.entity OPERATOR(pg_catalog.=) 'job' AND x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.job_id OPERATOR(pg_catalog.=) d.id;
	END IF;
	INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id, repaired_run_id, repaired_at)
	SELECT v_tenant, 'projection_drift', d.entity OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) d.id,
	       pg_catalog.jsonb_build_object('entity', d.entity, 'id', d.id, 'status', d.status,
	                                     'event_id', d.event_id, 'event_status', d.event_status),
	       v_run, v_run, CASE WHEN v_repair THEN v_run END, CASE WHEN v_repair THEN v_now END
	  FROM fleet_recon_drift d
	ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
	   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen,
	       repaired_run_id = EXCLUDED.repaired_run_id, repaired_at = EXCLUDED.repaired_at;
	GET DIAGNOSTICS n = ROW_COUNT;
	v_found := v_found OPERATOR(pg_catalog.+) n;
	IF v_repair THEN v_repaired := v_repaired OPERATOR(pg_catalog.+) n; END IF;
	DROP TABLE fleet_recon_drift;

	-- missing_evidence: a sync push logged pod.captured, the row is gone
	CREATE TEMP TABLE fleet_recon_pod ON COMMIT DROP AS
	SELECT e.event_id, e.occurred_at, e.payload, m.entity_id AS stop_id, m.client_id, m.mutation_id
	  FROM fleet.event_log e
	  JOIN fleet.sync_mutation m ON m.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND m.event_id OPERATOR(pg_catalog.=) e.event_id
	 WHERE e.tenant_id OPERATOR(pg_catalog.=) v_tenant AND e.kind OPERATOR(pg_catalog.=) 'pod.captured' AND e.source OPERATOR(pg_catalog.=) 'sync'
	   AND e.logged_at OPERATOR(pg_catalog.>=) v_from AND e.logged_at OPERATOR(pg_catalog.<) v_to
	   AND (v_driver IS NULL OR (e.payload OPERATOR(pg_catalog.->>) 'driver_id')::bigint OPERATOR(pg_catalog.=) v_driver)
	   AND NOT EXISTS (SELECT 1 FROM fleet.proof_of_delivery p
	                    WHERE p.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND p.source_event_id OPERATOR(pg_catalog.=) e.event_id);
	IF v_repair THEN
		INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at, metadata, source_event_id)
		SELECT v_tenant, p.stop_id, p.payload OPERATOR(pg_catalog.->>) 'kind', (p.payload OPERATOR(pg_catalog.->>) 'driver_id')::bigint,
		       COALESCE((p.payload OPERATOR(pg_catalog.->) 'effect' OPERATOR(pg_catalog.->>) 'captured_at')::timestamptz, p.occurred_at),
		       COALESCE(p.payload OPERATOR(pg_catalog.->) 'metadata', '{}'), p.event_id
		  FROM fleet_recon_pod p
		ON CONFLICT (tenant_id, source_event_id) DO NOTHING;
	END IF;
	INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id, repaired_run_id, repaired_at)
	SELECT v_tenant, 'missing_evidence', 'event:' OPERATOR(pg_catalog.||) p.event_id,
	       pg_catalog.jsonb_build_object('event_id', p.event_id, 'stop_id', p.stop_id, 'client_id', p.client_id,
	                                     'mutation_id', p.mutation_id, 'kind', p.payload OPERATOR(pg_catalog.->>) 'kind'),
	       v_run, v_run, CASE WHEN v_repair THEN v_run END, CASE WHEN v_repair THEN v_now END
	  FROM fleet_recon_pod p
	ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
	   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen,
	       repaired_run_id = EXCLUDED.repaired_run_id, repaired_at = EXCLUDED.repaired_at;
	GET DIAGNOSTICS n = ROW_COUNT;
	v_found := v_found OPERATOR(pg_catalog.+) n;
	IF v_repair THEN v_repaired := v_repaired OPERATOR(pg_catalog.+) n; END IF;
	DROP TABLE fleet_recon_pod;

	-- sequence_gap, reporting_gap: consecutive fixes per device
	WITH fixes AS (
		SELECT p.device_id, p.vehicle_id, p.fix_time, p.seq,
		       pg_catalog.lag(p.fix_time) OVER w AS prev_time, pg_catalog.lag(p.seq) OVER w AS prev_seq
		  FROM fleet.position p
		 WHERE p.tenant_id OPERATOR(pg_catalog.=) v_tenant AND p.fix_time OPERATOR(pg_catalog.>=) v_from AND p.fix_time OPERATOR(pg_catalog.<) v_to
		   AND (v_vehicle IS NULL OR p.vehicle_id OPERATOR(pg_catalog.=) v_vehicle)
		   AND (v_driver IS NULL OR p.vehicle_id OPERATOR(pg_catalog.=) ANY (ARRAY(
		        SELECT k.entity_id FROM fleet.sync_scope_keys(v_driver) k WHERE k.entity OPERATOR(pg_catalog.=) 'vehicle')))
		WINDOW w AS (PARTITION BY p.device_id ORDER BY p.fix_time)),
	gaps AS (
		SELECT 'sequence_gap'::text AS kind,
		       pg_catalog.format('device:%s:seq:%s-%s', x.device_id, x.prev_seq, x.seq) AS subject,
		       pg_catalog.jsonb_build_object('device_id', x.device_id, 'vehicle_id', x.vehicle_id,
		           'after_seq', x.prev_seq, 'before_seq', x.seq, 'missing', x.seq OPERATOR(pg_catalog.-) x.prev_seq OPERATOR(pg_catalog.-) 1,
		           'after', x.prev_time, 'before', x.fix_time) AS detail
		  FROM fixes x
		 WHERE x.seq IS NOT NULL AND x.prev_seq IS NOT NULL AND x.seq OPERATOR(pg_catalog.>) (x.prev_seq OPERATOR(pg_catalog.+) 1)
		UNION ALL
		SELECT 'reporting_gap',
		       pg_catalog.format('device:%s:gap:%s', x.device_id, pg_catalog.to_char(x.prev_time AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS.US')),
		       pg_catalog.jsonb_build_object('device_id', x.device_id, 'vehicle_id', x.vehicle_id,
		           'after', x.prev_time, 'before', x.fix_time, 'silence', x.fix_time OPERATOR(pg_catalog.-) x.prev_time)
		  FROM fixes x
		 WHERE x.prev_time IS NOT NULL AND (x.fix_time OPERATOR(pg_catalog.-) x.prev_time) OPERATOR(pg_catalog.>) s.position_gap),
	ins AS (
		INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id)
		SELECT v_tenant, g.kind, g.subject, g.detail, v_run, v_run FROM gaps g
		ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
		   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen
		RETURNING 1)
	SELECT (SELECT pg_catalog.count(*) FROM fixes), (SELECT pg_catalog.count(*) FROM ins) INTO n, v_found;
	v_scanned := v_scanned OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('positions', n);
	SELECT pg_catalog.count(*) INTO v_found FROM fleet.sync_finding f
	 WHERE f.tenant_id OPERATOR(pg_catalog.=) v_tenant AND f.last_run_id OPERATOR(pg_catalog.=) v_run;

	-- stuck_event: not consumed by its class, or still retrying, for too long
	WITH ev AS (
		SELECT e.event_id, e.kind, e.class, e.logged_at,
		       (pg_catalog.pg_visible_in_snapshot(e.txid, c.lo)
		        OR (c.hi IS NOT NULL AND pg_catalog.pg_visible_in_snapshot(e.txid, c.hi)
		            AND ROW(e.txid, e.event_id) OPERATOR(pg_catalog.<=) ROW(c.pos_txid, c.pos_event))) AS consumed
		  FROM fleet.event_log e
		  JOIN fleet.consumer_cursor c ON c.class OPERATOR(pg_catalog.=) e.class
		 WHERE e.tenant_id OPERATOR(pg_catalog.=) v_tenant AND e.logged_at OPERATOR(pg_catalog.>=) v_from AND e.logged_at OPERATOR(pg_catalog.<) v_to),
	stuck AS (
		SELECT ev.event_id, ev.kind, ev.class, ev.logged_at, 'unconsumed'::text AS state, NULL::integer AS attempts
		  FROM ev WHERE NOT ev.consumed AND ev.logged_at OPERATOR(pg_catalog.<) (v_now OPERATOR(pg_catalog.-) s.stuck_after)
		UNION ALL
		SELECT r.event_id, r.kind, r.class, r.logged_at, 'retrying', r.attempts
		  FROM fleet.event_retry r
		 WHERE r.tenant_id OPERATOR(pg_catalog.=) v_tenant AND r.logged_at OPERATOR(pg_catalog.>=) v_from AND r.logged_at OPERATOR(pg_catalog.<) v_to
		   AND r.first_failed_at OPERATOR(pg_catalog.<) (v_now OPERATOR(pg_catalog.-) s.stuck_after)),
	ins AS (
		INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id)
		SELECT DISTINCT ON (x.event_id) v_tenant, 'stuck_event', 'event:' OPERATOR(pg_catalog.||) x.event_id,
		       pg_catalog.jsonb_build_object('event_id', x.event_id, 'kind', x.kind, 'class', x.class,
		                                     'state', x.state, 'attempts', x.attempts, 'logged_at', x.logged_at),
		       v_run, v_run
		  FROM stuck x ORDER BY x.event_id, x.state
		ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
		   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen
		RETURNING 1)
	SELECT (SELECT pg_catalog.count(*) FROM ev) INTO n FROM (SELECT pg_catalog.count(*) FROM ins) i;
	v_scanned := v_scanned OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('events', n);

	-- dead_letter
	INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id)
	SELECT v_tenant, 'dead_letter', 'event:' OPERATOR(pg_catalog.||) d.event_id,
	       pg_catalog.jsonb_build_object('event_id', d.event_id, 'kind', d.kind, 'class', d.class,
	                                     'attempts', d.attempts, 'error', d.error, 'sqlstate', d.sqlstate),
	       v_run, v_run
	  FROM fleet.dead_letter d
	 WHERE d.tenant_id OPERATOR(pg_catalog.=) v_tenant AND d.died_at OPERATOR(pg_catalog.>=) v_from AND d.died_at OPERATOR(pg_catalog.<) v_to
	ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
	   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen;

	-- unresolved_conflict: a review asked for and missing (repaired), or open
	CREATE TEMP TABLE fleet_recon_review ON COMMIT DROP AS
	SELECT c.conflict_id, c.entity_id AS stop_id, m.client_id, m.mutation_id, cl.driver_id, c.kind, c.workflow
	  FROM fleet.sync_conflict c
	  JOIN fleet.sync_mutation m ON m.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND m.client_id OPERATOR(pg_catalog.=) c.client_id
	                             AND m.mutation_id OPERATOR(pg_catalog.=) c.mutation_id
	  JOIN fleet.sync_client cl ON cl.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND cl.client_id OPERATOR(pg_catalog.=) c.client_id
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) v_tenant AND c.review AND c.decided_at OPERATOR(pg_catalog.>=) v_from AND c.decided_at OPERATOR(pg_catalog.<) v_to
	   AND (v_driver IS NULL OR cl.driver_id OPERATOR(pg_catalog.=) v_driver)
	   AND NOT EXISTS (SELECT 1 FROM fleet.sync_review v
	                    WHERE v.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND v.conflict_id OPERATOR(pg_catalog.=) c.conflict_id);
	IF v_repair THEN
		INSERT INTO fleet.sync_review (tenant_id, conflict_id, stop_id, driver_id, reason)
		SELECT v_tenant, r.conflict_id, r.stop_id, r.driver_id,
		       pg_catalog.format('%s on a stop that was %s meanwhile (review item restored by reconciliation)', r.workflow, r.kind)
		  FROM fleet_recon_review r
		ON CONFLICT ON CONSTRAINT sync_review_tenant_id_conflict_id_key DO NOTHING;
		UPDATE fleet.sync_mutation m SET reconciled_at = NULL
		  FROM fleet_recon_review r
		 WHERE m.tenant_id OPERATOR(pg_catalog.=) v_tenant AND m.client_id OPERATOR(pg_catalog.=) r.client_id AND m.mutation_id OPERATOR(pg_catalog.=) r.mutation_id
		   AND m.reconciled_at IS NOT NULL;
	END IF;
	INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id, repaired_run_id, repaired_at)
	SELECT v_tenant, 'unresolved_conflict', 'conflict:' OPERATOR(pg_catalog.||) r.conflict_id,
	       pg_catalog.jsonb_build_object('conflict_id', r.conflict_id, 'stop_id', r.stop_id, 'kind', r.kind,
	                                     'review', 'missing'),
	       v_run, v_run, CASE WHEN v_repair THEN v_run END, CASE WHEN v_repair THEN v_now END
	  FROM fleet_recon_review r
	ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
	   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen,
	       repaired_run_id = EXCLUDED.repaired_run_id, repaired_at = EXCLUDED.repaired_at;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF v_repair THEN v_repaired := v_repaired OPERATOR(pg_catalog.+) n; END IF;
	DROP TABLE fleet_recon_review;
	INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id)
	SELECT v_tenant, 'unresolved_conflict', 'conflict:' OPERATOR(pg_catalog.||) v.conflict_id,
	       pg_catalog.jsonb_build_object('conflict_id', v.conflict_id, 'review_id', v.review_id, 'stop_id', v.stop_id,
	                                     'review', 'open', 'open_for', v_now OPERATOR(pg_catalog.-) v.created_at, 'reason', v.reason),
	       v_run, v_run
	  FROM fleet.sync_review v
	 WHERE v.tenant_id OPERATOR(pg_catalog.=) v_tenant AND v.status OPERATOR(pg_catalog.=) 'open' AND v.created_at OPERATOR(pg_catalog.>=) v_from AND v.created_at OPERATOR(pg_catalog.<) v_to
	   AND (v_driver IS NULL OR v.driver_id OPERATOR(pg_catalog.=) v_driver)
	ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
	   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen;

	-- unreconciled_write: a resolved review not yet counted (repaired), or
	-- a write left unreconciled (or reconciled late) beyond the target window
	IF v_repair THEN
		WITH fixed AS (
			UPDATE fleet.sync_mutation m SET reconciled_at = v.resolved_at
			  FROM fleet.sync_conflict c
			  JOIN fleet.sync_review v ON v.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND v.conflict_id OPERATOR(pg_catalog.=) c.conflict_id
			 WHERE m.tenant_id OPERATOR(pg_catalog.=) v_tenant AND c.tenant_id OPERATOR(pg_catalog.=) v_tenant
			   AND m.client_id OPERATOR(pg_catalog.=) c.client_id AND m.mutation_id OPERATOR(pg_catalog.=) c.mutation_id
			   AND m.reconciled_at IS NULL AND v.status OPERATOR(pg_catalog.=) 'resolved'
			   AND m.applied_at OPERATOR(pg_catalog.>=) v_from AND m.applied_at OPERATOR(pg_catalog.<) v_to
			RETURNING m.client_id, m.mutation_id)
		INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id, repaired_run_id, repaired_at)
		SELECT v_tenant, 'unreconciled_write', pg_catalog.format('mutation:%s:%s', x.client_id, x.mutation_id),
		       pg_catalog.jsonb_build_object('client_id', x.client_id, 'mutation_id', x.mutation_id, 'review', 'resolved'),
		       v_run, v_run, v_run, v_now
		  FROM fixed x
		ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
		   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen,
		       repaired_run_id = EXCLUDED.repaired_run_id, repaired_at = EXCLUDED.repaired_at;
		GET DIAGNOSTICS n = ROW_COUNT;
		v_repaired := v_repaired OPERATOR(pg_catalog.+) n;
	END IF;
	INSERT INTO fleet.sync_finding AS f (tenant_id, kind, subject, detail, first_run_id, last_run_id)
	SELECT v_tenant, 'unreconciled_write', pg_catalog.format('mutation:%s:%s', m.client_id, m.mutation_id),
	       pg_catalog.jsonb_build_object('client_id', m.client_id, 'mutation_id', m.mutation_id, 'workflow', m.workflow,
	                                     'client_time', m.client_time, 'reconciled_at', m.reconciled_at,
	                                     'late_by', COALESCE(m.reconciled_at, v_now) OPERATOR(pg_catalog.-) m.client_time OPERATOR(pg_catalog.-) s.target_window),
	       v_run, v_run
	  FROM fleet.sync_mutation m
	  JOIN fleet.sync_client cl ON cl.tenant_id OPERATOR(pg_catalog.=) m.tenant_id AND cl.client_id OPERATOR(pg_catalog.=) m.client_id
	 WHERE m.tenant_id OPERATOR(pg_catalog.=) v_tenant AND m.applied_at OPERATOR(pg_catalog.>=) v_from AND m.applied_at OPERATOR(pg_catalog.<) v_to
	   AND (v_driver IS NULL OR cl.driver_id OPERATOR(pg_catalog.=) v_driver)
	   AND m.client_time IS NOT NULL
	   AND CASE WHEN fleet.time_is_usable(m.client_time)
	            THEN COALESCE(m.reconciled_at, v_now) OPERATOR(pg_catalog.-) m.client_time END
	       OPERATOR(pg_catalog.>) s.target_window
	ON CONFLICT ON CONSTRAINT sync_finding_tenant_id_kind_subject_key DO UPDATE
	   SET detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = EXCLUDED.last_seen;
	SELECT pg_catalog.count(*) INTO n FROM fleet.sync_mutation m
	 WHERE m.tenant_id OPERATOR(pg_catalog.=) v_tenant AND m.applied_at OPERATOR(pg_catalog.>=) v_from AND m.applied_at OPERATOR(pg_catalog.<) v_to;
	v_scanned := v_scanned OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('mutations', n);

	SELECT pg_catalog.count(*) INTO v_found FROM fleet.sync_finding f
	 WHERE f.tenant_id OPERATOR(pg_catalog.=) v_tenant AND f.last_run_id OPERATOR(pg_catalog.=) v_run;
	UPDATE fleet.sync_reconcile_run r
	   SET finished_at = pg_catalog.clock_timestamp(), scanned = v_scanned, findings = v_found, repaired = v_repaired
	 WHERE r.tenant_id OPERATOR(pg_catalog.=) v_tenant AND r.run_id OPERATOR(pg_catalog.=) v_run;
	IF v_repair THEN
		PERFORM pg_catalog.set_config('fleet_sync.repair', '', true);
	END IF;

	RETURN QUERY
	SELECT f.kind, f.subject, f.detail, COALESCE(f.repaired_run_id OPERATOR(pg_catalog.=) v_run, false)
	  FROM fleet.sync_finding f
	 WHERE f.tenant_id OPERATOR(pg_catalog.=) v_tenant AND f.last_run_id OPERATOR(pg_catalog.=) v_run
	 ORDER BY f.kind, f.subject;
END
$$;
COMMENT ON FUNCTION fleet.reconcile(timestamptz, timestamptz, boolean, bigint, bigint) IS
	'Reconcile the current tenant (optionally one driver''s scope or one vehicle) over [from_time, to_time): projection drift, missing evidence, sequence and reporting gaps in positions, stuck events, dead letters, unresolved conflicts, offline writes not reconciled within the target window. With repair it fixes drift, missing evidence, missing review items and unrecorded resolutions; a second run repairs nothing. Findings are kept in fleet.sync_finding; returns this run''s findings.';

CREATE FUNCTION fleet.reconcile_all(lookback interval DEFAULT '1 day', repair boolean DEFAULT true) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t bigint;
	n integer := 0;
	k integer;
	v_failed text[] := '{}';
BEGIN
	IF lookback IS NULL OR lookback OPERATOR(pg_catalog.<=) '0'::interval THEN
		RAISE EXCEPTION 'lookback must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF repair IS NULL THEN
		RAISE EXCEPTION 'repair must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	FOR t IN SELECT x.tenant_id FROM fleet.tenant x WHERE x.status OPERATOR(pg_catalog.=) 'active' ORDER BY x.tenant_id LOOP
		BEGIN
			PERFORM fleet.set_tenant(t, true);
			SELECT pg_catalog.count(*) INTO k
			  FROM fleet.reconcile(pg_catalog.now() OPERATOR(pg_catalog.-) lookback, pg_catalog.now(), reconcile_all.repair);
			n := n OPERATOR(pg_catalog.+) k;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'fleet.reconcile failed for tenant %: %', t, SQLERRM;
			v_failed := v_failed OPERATOR(pg_catalog.||) pg_catalog.format('%s (%s: %s)', t, SQLSTATE, SQLERRM);
		END;
	END LOOP;
	PERFORM fleet.clear_tenant();
	IF pg_catalog.cardinality(v_failed) OPERATOR(pg_catalog.>) 0 THEN
		RAISE EXCEPTION 'fleet.reconcile failed for % tenant(s)', pg_catalog.cardinality(v_failed)
			USING ERRCODE = 'external_routine_exception',
			      DETAIL = pg_catalog.array_to_string(v_failed, '; '),
			      HINT = 'Run fleet.reconcile() for that tenant to see the error; CALL fleet.reconcile_scheduled() keeps the other tenants'' runs.';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.reconcile_all(interval, boolean) IS
	'Reconcile every active tenant over the last lookback in one transaction; returns the number of findings seen. If any tenant fails, every tenant is still tried (a warning each), then the call fails (SQLSTATE 38000, the detail names the tenants and errors) and nothing is kept: pg_cron runs CALL fleet.reconcile_scheduled(), which keeps each tenant''s run.';

CREATE PROCEDURE fleet.reconcile_scheduled(lookback interval DEFAULT '1 day', repair boolean DEFAULT true)
LANGUAGE plpgsql
AS $$	-- commits between tenants, so no SET search_path: every name in it is qualified
DECLARE
	t bigint;
	v_tenants bigint[];
	v_failed pg_catalog.text[] := '{}';
BEGIN
	IF lookback IS NULL OR lookback OPERATOR(pg_catalog.<=) '0'::interval THEN
		RAISE EXCEPTION 'lookback must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF repair IS NULL THEN
		RAISE EXCEPTION 'repair must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT pg_catalog.array_agg(x.tenant_id ORDER BY x.tenant_id) INTO v_tenants
	  FROM fleet.tenant x WHERE x.status OPERATOR(pg_catalog.=) 'active';
	FOREACH t IN ARRAY COALESCE(v_tenants, '{}') LOOP
		BEGIN
			PERFORM fleet.set_tenant(t, true);
			PERFORM pg_catalog.count(*)
			   FROM fleet.reconcile(pg_catalog.now() OPERATOR(pg_catalog.-) lookback, pg_catalog.now(), reconcile_scheduled.repair);
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'fleet.reconcile failed for tenant %: %', t, SQLERRM;
			v_failed := v_failed OPERATOR(pg_catalog.||) pg_catalog.format('%s (%s: %s)', t, SQLSTATE, SQLERRM);
		END;
		COMMIT;
	END LOOP;
	IF pg_catalog.cardinality(v_failed) OPERATOR(pg_catalog.>) 0 THEN
		RAISE EXCEPTION 'fleet.reconcile failed for % tenant(s)', pg_catalog.cardinality(v_failed)
			USING ERRCODE = 'external_routine_exception',
			      DETAIL = pg_catalog.array_to_string(v_failed, '; ');
	END IF;
END
$$;
COMMENT ON PROCEDURE fleet.reconcile_scheduled(interval, boolean) IS
	'What pg_cron runs as job fleet.reconcile every five minutes: fleet.reconcile() for each active tenant over the last lookback, each tenant''s run committed on its own (extension owner only; its commits need a top-level CALL); when any tenant failed the call then fails (SQLSTATE 38000, the detail names the tenants and errors), so cron.job_run_details records the job as failed.';

REVOKE ALL ON PROCEDURE fleet.reconcile_scheduled(interval, boolean) FROM PUBLIC;

SELECT cron.schedule('fleet.reconcile', '*/5 * * * *', 'CALL fleet.reconcile_scheduled()');

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.sync_reconcile_run', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_reconcile_run', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.sync_finding', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.sync_finding', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.reconcile(timestamptz,timestamptz,boolean,bigint,bigint)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.reconcile_all(interval,boolean)', 'EXECUTE');
