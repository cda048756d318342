-- 74_tier_maint: one procedure does all due tier work; the status view.
--
-- fleet.tier_maintenance() (pg_cron job fleet.maintenance) first runs
-- fleet.run_maintenance() (partitions ahead, expiry of the untiered tables),
-- then takes the due steps one per transaction, in-progress steps first:
-- warm_copy / warm_swap / cold_pack of a transition already begun, then
-- warm_begin (hot partitions whose range ended hot_for ago), cold_detach
-- (warm partitions of fleet.position past cold_after), purge (partitions
-- and cold partitions whose
-- newest row is past retention and that no legal hold covers).  Each step
-- runs under lock_timeout and is retried with a growing pause when a lock
-- is not granted in time; it takes the parent's lock before a partition's,
-- as ingest does, so it waits for ingest but never deadlocks with it.  A
-- session advisory lock keeps two runs apart.

CREATE FUNCTION fleet.tier_due()
RETURNS TABLE (relation regclass, lo timestamptz, action text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off	-- a few catalog rows; compiling the plan would cost seconds
AS $$
	WITH parts AS (
		SELECT t.relation, t.hot_for, t.cold_after, t.retention, d.lo, d.hi AS upper_bound, d.partition, s.tier
		  FROM fleet.tier_policy t
		 CROSS JOIN LATERAL fleet.time_partitions(t.relation) d
		  LEFT JOIN fleet.tier_state s ON s.relation OPERATOR(pg_catalog.=) t.relation AND s.lo OPERATOR(pg_catalog.=) d.lo
	)
	SELECT due.relation, due.lo, due.action FROM (
		SELECT s.relation, s.lo,
		       CASE s.tier WHEN 'warming' THEN 'warm_copy' WHEN 'copied' THEN 'warm_swap'
		                   WHEN 'cooling' THEN 'cold_pack' END AS action, 0 AS prio
		  FROM fleet.tier_state s WHERE s.tier OPERATOR(pg_catalog.=) ANY (ARRAY['warming', 'copied', 'cooling'])
		UNION ALL
		SELECT p.relation, p.lo, 'purge', 1 FROM parts p
		 WHERE p.retention IS NOT NULL AND p.tier IS DISTINCT FROM 'warming' AND p.tier IS DISTINCT FROM 'copied'
		   AND p.upper_bound OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.retention)
		UNION ALL
		SELECT s.relation, s.lo, 'purge_cold', 1 FROM fleet.tier_state s
		  JOIN fleet.tier_policy t ON t.relation OPERATOR(pg_catalog.=) s.relation
		 WHERE s.tier OPERATOR(pg_catalog.=) 'cold' AND t.retention IS NOT NULL
		   AND s.hi OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) t.retention)
		UNION ALL
		SELECT p.relation, p.lo, 'cold_detach', 2 FROM parts p
		 WHERE p.relation OPERATOR(pg_catalog.=) ANY (ARRAY['fleet.position', 'fleet.event_log']::pg_catalog.regclass[])
		   AND p.tier OPERATOR(pg_catalog.=) 'warm' AND p.cold_after IS NOT NULL
		   AND p.upper_bound OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.cold_after)
		UNION ALL
		SELECT p.relation, p.lo, 'warm_begin', 3 FROM parts p
		 WHERE p.tier IS NULL
		   AND p.upper_bound OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.hot_for)
	) due
	ORDER BY due.prio, due.relation::text, due.lo
$$;
COMMENT ON FUNCTION fleet.tier_due() IS 'The tier steps that are due now, each for a partition by its start (lo), in the order fleet.tier_maintenance() takes them (steps begun first); periods are judged by the partition''s end, whatever its interval';

CREATE FUNCTION fleet.tier_purge(p_rel regclass, p_lo timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_part regclass := fleet.tier_partition(p_rel, p_lo);
	v_ret interval;
	v_col name := fleet.tier_time_column(p_rel);
	v_newest timestamptz;
	v_rows bigint;
BEGIN
	SELECT t.retention INTO v_ret FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) p_rel;
	IF v_part IS NULL OR v_ret IS NULL THEN
		RETURN 'nothing to purge';
	END IF;
	-- judged by the newest row actually there, not only by the bounds
	EXECUTE pg_catalog.format('SELECT pg_catalog.max(%I), pg_catalog.count(*) FROM %s', v_col, v_part) INTO v_newest, v_rows;
	IF v_newest IS NOT NULL AND v_newest OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) v_ret) THEN
		RETURN 'kept: newest row within retention';
	END IF;
	IF fleet.relation_held(v_part) THEN
		RETURN 'kept: legal hold';
	END IF;
	EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p_rel);
	EXECUTE pg_catalog.format('DROP TABLE %s', v_part);
	DELETE FROM fleet.tier_state s WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	PERFORM fleet.ledger_append('purge', p_rel::text,
		pg_catalog.jsonb_build_object('lo', p_lo, 'rows', v_rows, 'newest', v_newest));
	RETURN 'purged';
END
$$;
COMMENT ON FUNCTION fleet.tier_purge(regclass, timestamptz) IS
	'Drop the partition starting at lo once past retention, judged by its newest row, unless a legal hold covers rows in it; ledgered';

CREATE FUNCTION fleet.tier_purge_cold(p_lo timestamptz, p_rel regclass DEFAULT 'fleet.position') RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	l record;
	v_ret interval;
	v_n bigint;
	v_rows bigint;
	v_left bigint;
BEGIN
	SELECT t.retention INTO v_ret FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) p_rel;
	IF v_ret IS NULL THEN
		RETURN 'nothing to purge';
	END IF;
	SELECT * INTO STRICT l FROM fleet.cold_layout(p_rel);
	-- a hold names a vehicle: it reaches the segments of that vehicle where
	-- segments are kept per vehicle, else every segment of its tenant
	EXECUTE pg_catalog.format(
		'WITH gone AS ('
		'	DELETE FROM %s s'
		'	 WHERE s.part_lo OPERATOR(pg_catalog.=) $1'
		'	   AND s.hi OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) $2)'
		'	   AND NOT fleet.row_held($3, s.tenant_id, %s, s.lo, s.hi)'
		'	RETURNING s.nrows)'
		' SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(gone.nrows), 0) FROM gone',
		l.segments, CASE WHEN 'vehicle_id' OPERATOR(pg_catalog.=) ANY (l.seg_cols) THEN 's.vehicle_id' ELSE 'NULL' END)
		INTO v_n, v_rows USING p_lo, v_ret, p_rel;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s s WHERE s.part_lo OPERATOR(pg_catalog.=) $1', l.segments)
		INTO v_left USING p_lo;
	IF v_left OPERATOR(pg_catalog.=) 0 THEN
		DELETE FROM fleet.tier_state s
		 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	END IF;
	IF v_n OPERATOR(pg_catalog.>) 0 THEN
		PERFORM fleet.ledger_append('purge', l.relname,
			pg_catalog.jsonb_build_object('lo', p_lo, 'tier', 'cold', 'segments', v_n, l.noun, v_rows, 'segments_kept', v_left));
	END IF;
	RETURN CASE WHEN v_left OPERATOR(pg_catalog.>) 0 THEN pg_catalog.format('purged %s segments, kept %s (legal hold or newer)', v_n, v_left)
	            ELSE pg_catalog.format('purged %s segments', v_n) END;
END
$$;
COMMENT ON FUNCTION fleet.tier_purge_cold(timestamptz, regclass) IS
	'Delete the cold segments (fleet.position''s, or fleet.event_log''s) of the packed partition starting at lo that are past retention, each judged by its newest fix, except those a legal hold covers; ledgered';

CREATE FUNCTION fleet.tier_step(p_rel regclass, p_lo timestamptz, p_action text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	CASE p_action
		WHEN 'warm_begin' THEN RETURN 'shadow ' OPERATOR(pg_catalog.||) fleet.warm_begin(p_rel, p_lo);
		WHEN 'warm_copy' THEN RETURN 'copied ' OPERATOR(pg_catalog.||) fleet.warm_copy(p_rel, p_lo) OPERATOR(pg_catalog.||) ' rows, frozen';
		WHEN 'warm_swap' THEN RETURN 'swapped, lock ms ' OPERATOR(pg_catalog.||) pg_catalog.round(fleet.warm_swap(p_rel, p_lo)::numeric, 1);
		WHEN 'cold_detach' THEN RETURN 'detached as ' OPERATOR(pg_catalog.||)
		     CASE WHEN p_rel OPERATOR(pg_catalog.=) 'fleet.event_log'::pg_catalog.regclass
		          THEN fleet.event_cold_detach(p_lo) ELSE fleet.cold_detach(p_lo) END;
		WHEN 'cold_pack' THEN
			IF p_rel OPERATOR(pg_catalog.=) 'fleet.event_log'::pg_catalog.regclass THEN
				RETURN (SELECT pg_catalog.format('packed %s events in %s segments, %s bytes', c.events, c.segments, c.bytes)
				          FROM fleet.event_cold_pack(p_lo) c);
			END IF;
			RETURN (SELECT pg_catalog.format('packed %s fixes in %s segments, %s bytes', c.fixes, c.segments, c.bytes)
			          FROM fleet.cold_pack(p_lo) c);
		WHEN 'purge' THEN RETURN fleet.tier_purge(p_rel, p_lo);
		WHEN 'purge_cold' THEN RETURN fleet.tier_purge_cold(p_lo, p_rel);
		ELSE RAISE EXCEPTION 'unknown tier step %', p_action USING ERRCODE = 'invalid_parameter_value';
	END CASE;
END
$$;
COMMENT ON FUNCTION fleet.tier_step(regclass, timestamptz, text) IS 'Run one tier step (see fleet.tier_due()) in the current transaction';

CREATE PROCEDURE fleet.tier_maintenance(p_max_steps integer DEFAULT 10000, p_lock_timeout text DEFAULT '100ms',
                                        p_attempts integer DEFAULT 8, p_duty double precision DEFAULT 0.25)
LANGUAGE plpgsql
AS $$	-- commits between steps, so no SET search_path: every name in it is qualified
DECLARE
	r record;
	v_done text[] := ARRAY[]::text[];
	v_steps integer := 0;
	v_out text;
	v_ok boolean;
	v_t0 timestamptz;
	v_key text;
	a integer;
BEGIN
	IF p_duty IS NULL OR p_duty OPERATOR(pg_catalog.<=) 0 OR p_duty OPERATOR(pg_catalog.>) 1 THEN
		RAISE EXCEPTION 'p_duty must be in (0, 1]' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT pg_catalog.pg_try_advisory_lock(1718379877, 74) THEN
		RAISE NOTICE 'fleet.tier_maintenance: another run is in progress';
		RETURN;
	END IF;
	PERFORM fleet.run_maintenance();
	COMMIT;
	WHILE v_steps OPERATOR(pg_catalog.<) p_max_steps LOOP
		SELECT * INTO r FROM fleet.tier_due() d
		 WHERE NOT (pg_catalog.concat_ws('/', d.relation, d.lo, d.action) OPERATOR(pg_catalog.=) ANY (v_done))
		 LIMIT 1;
		EXIT WHEN NOT FOUND;
		v_key := pg_catalog.concat_ws('/', r.relation, r.lo, r.action);
		v_steps := v_steps OPERATOR(pg_catalog.+) 1;
		v_ok := false;
		a := 1;
		v_t0 := pg_catalog.clock_timestamp();
		WHILE NOT v_ok AND a OPERATOR(pg_catalog.<=) p_attempts LOOP
			BEGIN
				PERFORM pg_catalog.set_config('lock_timeout', p_lock_timeout, true);
				PERFORM pg_catalog.set_config('fleet.tier_duty', p_duty::text, true);
				v_out := fleet.tier_step(r.relation, r.lo, r.action);
				v_ok := true;
			EXCEPTION
				WHEN lock_not_available THEN
					v_out := 'lock not granted within ' OPERATOR(pg_catalog.||) p_lock_timeout;
				WHEN OTHERS THEN
					v_out := pg_catalog.format('failed: %s (%s)', SQLERRM, SQLSTATE);
					a := p_attempts;	-- not a lock wait: no retry in this run
			END;
			IF NOT v_ok AND a OPERATOR(pg_catalog.<) p_attempts THEN
				PERFORM pg_catalog.pg_sleep(0.05 OPERATOR(pg_catalog.*) a);
			END IF;
			a := a OPERATOR(pg_catalog.+) 1;
		END LOOP;
		RAISE NOTICE 'fleet.tier_maintenance: % % %: %', r.relation, fleet.utc_text(r.lo), r.action, v_out;
		-- a step is taken once per run: done, it is followed by the next step
		-- of its move; failed, it waits for the next run
		v_done := v_done OPERATOR(pg_catalog.||) v_key;
		IF NOT v_ok THEN
			RAISE WARNING 'fleet.tier_maintenance: % % % not done: %', r.relation, fleet.utc_text(r.lo), r.action, v_out;
		END IF;
		PERFORM pg_catalog.set_config('lock_timeout', '0', true);
		COMMIT;
		-- heavy steps run at most p_duty of the time, leaving the rest to live
		-- ingest (the warm copy pauses inside its transaction: fleet.tier_duty)
		IF v_ok AND r.action OPERATOR(pg_catalog.=) 'cold_pack' AND p_duty OPERATOR(pg_catalog.<) 1 THEN
			PERFORM pg_catalog.pg_sleep(LEAST(60, pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_t0)
			                                      OPERATOR(pg_catalog.*) (1 OPERATOR(pg_catalog.-) p_duty) OPERATOR(pg_catalog./) p_duty));
		END IF;
	END LOOP;
	PERFORM pg_catalog.pg_advisory_unlock(1718379877, 74);
END
$$;
COMMENT ON PROCEDURE fleet.tier_maintenance(integer, text, integer, double precision) IS
	'All due partition and tier work, one step per transaction: partitions ahead and untiered expiry (fleet.run_maintenance), then the steps of fleet.tier_due() under lock_timeout with retries; copy and pack steps take at most p_duty of the time (the copy pauses inside its transaction); a killed run is finished by the next; scheduled by pg_cron as fleet.maintenance';

-- SECURITY DEFINER: the status counts every tenant's rows and cold
-- segments (forced RLS would show a tenant-less admin nothing); it returns
-- only sizes and counts, never tenant data.
-- Whose holds a session may count: its tenant context's; every tenant's for
-- fleet_admin members and the DBA.  Asked inside SECURITY DEFINER functions,
-- so by the session's role (fleet.session_role()), not current_user.
CREATE FUNCTION fleet.hold_visible(p_tenant bigint) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p_tenant OPERATOR(pg_catalog.=) fleet.current_tenant()
	    OR fleet.is_dba()
	    OR pg_catalog.pg_has_role(fleet.session_role()::pg_catalog.oid, 'fleet_admin', 'MEMBER')
$$;
COMMENT ON FUNCTION fleet.hold_visible(bigint) IS
	'May the session count a legal hold of this tenant: its tenant context''s, or any for fleet_admin members and the DBA (by the session''s role)';

CREATE FUNCTION fleet.tier_status_rows()
RETURNS TABLE (relation regclass, partition text, day date, tier text, range_lo timestamptz, range_hi timestamptz,
               tablespace name, rows bigint, bytes bigint, holds integer)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off	-- a few catalog rows; compiling the plan would cost seconds
AS $$
	SELECT t.relation, d.partition::text, (d.lo AT TIME ZONE 'UTC')::date, COALESCE(s.tier, 'hot'), d.lo, d.hi,
	       COALESCE(ts.spcname, 'pg_default'), GREATEST(c.reltuples, 0)::bigint,
	       pg_catalog.pg_total_relation_size(d.partition),
	       (SELECT pg_catalog.count(*)::integer FROM fleet.legal_hold h
	         WHERE h.released_at IS NULL AND (h.scope IS NULL OR h.scope OPERATOR(pg_catalog.=) t.relation)
	           AND h.lo OPERATOR(pg_catalog.<) d.hi AND h.hi OPERATOR(pg_catalog.>) d.lo
	           AND fleet.hold_visible(h.tenant_id))
	  FROM (SELECT tp.relation FROM fleet.tier_policy tp
	        UNION SELECT pt.relation FROM fleet.partitioned_table pt) t
	 CROSS JOIN LATERAL fleet.time_partitions(t.relation) d
	  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.partition
	  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid OPERATOR(pg_catalog.=) c.reltablespace
	  LEFT JOIN fleet.tier_state s ON s.relation OPERATOR(pg_catalog.=) t.relation AND s.lo OPERATOR(pg_catalog.=) d.lo
	UNION ALL
	SELECT g.relation, NULL, (g.part_lo AT TIME ZONE 'UTC')::date, 'cold',
	       g.part_lo, COALESCE(st.hi, g.part_hi),
	       COALESCE(ts.spcname, 'pg_default'), g.nrows, g.bytes,
	       (SELECT pg_catalog.count(*)::integer FROM fleet.legal_hold h
	         WHERE h.released_at IS NULL AND (h.scope IS NULL OR h.scope OPERATOR(pg_catalog.=) g.relation)
	           AND h.lo OPERATOR(pg_catalog.<) COALESCE(st.hi, g.part_hi) AND h.hi OPERATOR(pg_catalog.>) g.part_lo
	           AND fleet.hold_visible(h.tenant_id))
	  FROM (SELECT 'fleet.position'::pg_catalog.regclass AS relation, 'fleet.cold_segment'::pg_catalog.regclass AS segments,
	               s.part_lo, pg_catalog.max(s.hi) AS part_hi, pg_catalog.sum(s.nrows)::bigint AS nrows,
	               pg_catalog.sum(pg_catalog.pg_column_size(s.data))::bigint AS bytes
	          FROM fleet.cold_segment s GROUP BY s.part_lo
	        UNION ALL
	        SELECT 'fleet.event_log'::pg_catalog.regclass, 'fleet.cold_event_segment'::pg_catalog.regclass,
	               s.part_lo, pg_catalog.max(s.hi), pg_catalog.sum(s.nrows)::bigint,
	               pg_catalog.sum(pg_catalog.pg_column_size(s.data))::bigint
	          FROM fleet.cold_event_segment s GROUP BY s.part_lo) g
	  LEFT JOIN fleet.tier_state st ON st.relation OPERATOR(pg_catalog.=) g.relation
	                               AND st.lo OPERATOR(pg_catalog.=) g.part_lo
	  LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) g.segments
	  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid OPERATOR(pg_catalog.=) c.reltablespace
	ORDER BY 1, 5
$$;
COMMENT ON FUNCTION fleet.tier_status_rows() IS 'Rows of fleet.tier_status (sizes and counts only)';

CREATE VIEW fleet.tier_status WITH (security_invoker = true) AS
	SELECT * FROM fleet.tier_status_rows();
COMMENT ON VIEW fleet.tier_status IS
	'Each partition of fleet''s time-partitioned tables and each packed (cold) partition of fleet.position: tier (hot, warming, copied, warm, cooling, cold), time range [range_lo, range_hi) and the UTC day it starts in, tablespace, rows (estimate for partitions, exact for cold), bytes, active legal holds overlapping it (the tenant context''s; every tenant''s for fleet_admin members and the DBA)';

-- Tiered tables: DELETE and UPDATE of held rows are refused (row triggers
-- are cloned onto every partition, present and future).
CREATE TRIGGER hold_row_guard BEFORE UPDATE OR DELETE ON fleet.position
	FOR EACH ROW EXECUTE FUNCTION fleet.hold_row_guard();
COMMENT ON TRIGGER hold_row_guard ON fleet.position IS 'Legal hold: no DELETE or UPDATE of held fixes';
CREATE TRIGGER hold_row_guard BEFORE UPDATE OR DELETE ON fleet.event_log
	FOR EACH ROW EXECUTE FUNCTION fleet.hold_row_guard();
COMMENT ON TRIGGER hold_row_guard ON fleet.event_log IS 'Legal hold: no DELETE or UPDATE of held events';
CREATE TRIGGER hold_row_guard BEFORE UPDATE OR DELETE ON fleet.cold_segment
	FOR EACH ROW EXECUTE FUNCTION fleet.hold_row_guard();
COMMENT ON TRIGGER hold_row_guard ON fleet.cold_segment IS 'Legal hold: no DELETE or UPDATE of held cold segments';
CREATE TRIGGER hold_row_guard BEFORE UPDATE OR DELETE ON fleet.cold_event_segment
	FOR EACH ROW EXECUTE FUNCTION fleet.hold_row_guard();
COMMENT ON TRIGGER hold_row_guard ON fleet.cold_event_segment IS 'Legal hold: no DELETE or UPDATE of held cold events';

INSERT INTO fleet.tier_policy (relation, time_column, hot_for, cold_after, retention, sort_columns)
VALUES ('fleet.position', 'fix_time', '2 days', '30 days', NULL, ARRAY['tenant_id', 'vehicle_id', 'device_id']);

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.position_all', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.position_all', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.position_all', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.position_range(timestamptz,timestamptz,bigint,bigint)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.position_range(timestamptz,timestamptz,bigint,bigint)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.position_range(timestamptz,timestamptz,bigint,bigint)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.cold_decode(bytea)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.cold_decode(bytea)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.cold_decode(bytea)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.tier_status', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.tier_status', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.tier_status_rows()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.tier_status_rows()', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.tier_due()', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.event_log_all', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.event_log_all', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.event_log_all', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.event_log_range(timestamptz,timestamptz,text)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.event_log_range(timestamptz,timestamptz,text)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.event_log_range(timestamptz,timestamptz,text)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.cold_event_decode(bytea)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.cold_event_decode(bytea)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.cold_event_decode(bytea)', 'EXECUTE');

-- what the row and policy triggers call as the acting role
INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges)
SELECT r, 'FUNCTION', f, 'EXECUTE'
  FROM pg_catalog.unnest(ARRAY['fleet_admin', 'fleet_ingest', 'fleet_app', 'fleet_analyst']) r,
       pg_catalog.unnest(ARRAY['fleet.tier_root(regclass)', 'fleet.tier_time_column(regclass)',
                               'fleet.row_held(regclass,bigint,bigint,timestamptz,timestamptz)',
                               'fleet.relation_held(regclass)']) f;
INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin', 'FUNCTION', 'fleet.ledger_append(text,text,jsonb)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.hold_row_guard()', 'EXECUTE');

-- Procedures are not covered by 99_finish's REVOKE ON ALL FUNCTIONS: they
-- run as the owner or a superuser only (pg_cron runs the maintenance job
-- as the installing role).
REVOKE ALL ON PROCEDURE fleet.tier_maintenance(integer, text, integer, double precision) FROM PUBLIC;
REVOKE ALL ON PROCEDURE fleet.cold_restore(timestamptz) FROM PUBLIC;
REVOKE ALL ON PROCEDURE fleet.event_cold_restore(timestamptz) FROM PUBLIC;
REVOKE ALL ON PROCEDURE fleet.tier_cold_restore(regclass, timestamptz) FROM PUBLIC;
