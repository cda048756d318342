-- 45_replay: rebuilding projections from the event log.
--
-- fleet.replay(from_time, to_time) (extension/replay.c) takes the events
-- logged in the range that live processing applied (consumed by their class
-- cursor, not waiting in retries or dead letters), rewinds what they
-- produced, and applies them again through the same handlers, in commit
-- order, in one transaction while every class cursor is locked (live
-- consumption waits).  Rewinding per projection:
--   job/stop status   back to the status before the first change made by a
--                     replayed event (fleet.status_change); changes made after
--                     it by other events are re-applied as well;
--   charges, proof of delivery  the rows keyed by a replayed event are
--                     deleted and re-created; touched invoices are recomputed;
--   vehicle telemetry state  reset when a replayed event set it, then rebuilt
--                     from the newest of the replayed events and of the other
--                     applied vehicle.state events still in the log (the
--                     projection is newer-wins, so superseded reports are
--                     skipped: replay cost does not grow with the flood).
-- Because every built-in projection is order-independent (forward-only
-- ranks, newer-wins, keyed by event), the result equals what live
-- processing produced; fleet.projection_hash() compares the two.  Handlers
-- of user kinds are simply re-applied and must be idempotent.

-- The temporary tables it collects are analyzed so that the joins against
-- the projections get sizes right; a sample of 3,000 rows does for that (the
-- default 30,000 was a fifth of a day's replay: 725 -> 523 ms for 280k
-- logged events in bench/ingest.sh, projections identical).
CREATE FUNCTION fleet.replay_rewind(from_time timestamptz, to_time timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET default_statistics_target = 10
AS $$
DECLARE
	n bigint;
BEGIN
	CREATE TEMP TABLE fleet_replay_event ON COMMIT DROP AS
	SELECT e.tenant_id, e.event_id, e.logged_at, e.txid, e.class, e.kind, e.payload, e.occurred_at
	  FROM fleet.event_log e
	  JOIN fleet.consumer_cursor c ON c.class OPERATOR(pg_catalog.=) e.class
	 WHERE e.logged_at OPERATOR(pg_catalog.>=) from_time AND e.logged_at OPERATOR(pg_catalog.<) to_time
	   -- kinds without a handler project nothing: nothing to rebuild
	   AND e.kind OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT k.kind FROM fleet.event_kind k WHERE k.handler IS NOT NULL))
	   AND (pg_catalog.pg_visible_in_snapshot(e.txid, c.lo)
	        OR (c.hi IS NOT NULL AND pg_catalog.pg_visible_in_snapshot(e.txid, c.hi)
	            AND ROW(e.txid, e.event_id) OPERATOR(pg_catalog.<=) ROW(c.pos_txid, c.pos_event)))
	   AND NOT EXISTS (SELECT 1 FROM fleet.event_retry r
	                    WHERE r.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND r.event_id OPERATOR(pg_catalog.=) e.event_id)
	   AND NOT EXISTS (SELECT 1 FROM fleet.dead_letter d
	                    WHERE d.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND d.event_id OPERATOR(pg_catalog.=) e.event_id);
	CREATE UNIQUE INDEX ON fleet_replay_event (tenant_id, event_id);
	ANALYZE fleet_replay_event;

	-- status: rewind each entity to before the first change a replayed event made
	CREATE TEMP TABLE fleet_replay_rewind ON COMMIT DROP AS
	SELECT DISTINCT ON (sc.tenant_id, sc.entity, sc.entity_id) sc.*
	  FROM fleet.status_change sc
	  JOIN fleet_replay_event r ON r.tenant_id OPERATOR(pg_catalog.=) sc.tenant_id AND r.event_id OPERATOR(pg_catalog.=) sc.event_id
	 ORDER BY sc.tenant_id, sc.entity, sc.entity_id, sc.change_id;
	ANALYZE fleet_replay_rewind;
	INSERT INTO fleet_replay_event
	SELECT e.tenant_id, e.event_id, e.logged_at, e.txid, e.class, e.kind, e.payload, e.occurred_at
	  FROM fleet.status_change sc
	  JOIN fleet_replay_rewind f ON f.tenant_id OPERATOR(pg_catalog.=) sc.tenant_id AND f.entity OPERATOR(pg_catalog.=) sc.entity
	   AND f.entity_id OPERATOR(pg_catalog.=) sc.entity_id AND sc.change_id OPERATOR(pg_catalog.>) f.change_id
	  JOIN fleet.event_log e ON e.tenant_id OPERATOR(pg_catalog.=) sc.tenant_id AND e.event_id OPERATOR(pg_catalog.=) sc.event_id
	 WHERE NOT EXISTS (SELECT 1 FROM fleet_replay_event r
	                    WHERE r.tenant_id OPERATOR(pg_catalog.=) sc.tenant_id AND r.event_id OPERATOR(pg_catalog.=) sc.event_id);
	UPDATE fleet.job j
	   SET status = f.old_status, status_at = f.old_status_at, status_event_id = f.old_event_id
	  FROM fleet_replay_rewind f
	 WHERE f.entity OPERATOR(pg_catalog.=) 'job' AND j.tenant_id OPERATOR(pg_catalog.=) f.tenant_id
	   AND j.job_id OPERATOR(pg_catalog.=) f.entity_id;
	UPDATE fleet.stop s
	   SET status = f.old_status, status_at = f.old_status_at, status_event_id = f.old_event_id,
	       arrived_at = CASE WHEN fleet.stop_status_rank(f.old_status) OPERATOR(pg_catalog.<) 3 THEN NULL ELSE s.arrived_at END,
	       completed_at = CASE WHEN f.old_status OPERATOR(pg_catalog.<>) 'completed' THEN NULL ELSE s.completed_at END
	  FROM fleet_replay_rewind f
	 WHERE f.entity OPERATOR(pg_catalog.=) 'stop' AND s.tenant_id OPERATOR(pg_catalog.=) f.tenant_id
	   AND s.stop_id OPERATOR(pg_catalog.=) f.entity_id;
	DELETE FROM fleet.status_change sc
	 USING fleet_replay_rewind f
	 WHERE f.tenant_id OPERATOR(pg_catalog.=) sc.tenant_id AND f.entity OPERATOR(pg_catalog.=) sc.entity
	   AND f.entity_id OPERATOR(pg_catalog.=) sc.entity_id AND sc.change_id OPERATOR(pg_catalog.>=) f.change_id;

	-- charges (and the invoices they feed) and proof of delivery keyed by a replayed event
	CREATE TEMP TABLE fleet_replay_invoice ON COMMIT DROP AS
	SELECT DISTINCT c.tenant_id, c.customer_id, pg_catalog.date_trunc('month', c.occurred_at AT TIME ZONE 'UTC')::date AS period_start,
	       c.currency
	  FROM fleet.charge c
	  JOIN fleet_replay_event r ON r.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND r.event_id OPERATOR(pg_catalog.=) c.source_event_id;
	DELETE FROM fleet.charge c USING fleet_replay_event r
	 WHERE r.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND r.event_id OPERATOR(pg_catalog.=) c.source_event_id;
	DELETE FROM fleet.proof_of_delivery p USING fleet_replay_event r
	 WHERE r.tenant_id OPERATOR(pg_catalog.=) p.tenant_id AND r.event_id OPERATOR(pg_catalog.=) p.source_event_id;

	-- vehicle telemetry state set by a replayed event
	CREATE TEMP TABLE fleet_replay_vehicle ON COMMIT DROP AS
	SELECT s.tenant_id, s.vehicle_id, v.code
	  FROM fleet.vehicle_state s
	  JOIN fleet.vehicle v ON v.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND v.vehicle_id OPERATOR(pg_catalog.=) s.vehicle_id
	  JOIN fleet_replay_event r ON r.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND r.event_id OPERATOR(pg_catalog.=) s.state_event_id;
	ANALYZE fleet_replay_vehicle;
	UPDATE fleet.vehicle_state s SET state = '{}', state_at = NULL, state_event_id = NULL
	  FROM fleet_replay_vehicle v
	 WHERE v.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND v.vehicle_id OPERATOR(pg_catalog.=) s.vehicle_id;
	INSERT INTO fleet_replay_event
	SELECT DISTINCT ON (e.tenant_id, v.vehicle_id)
	       e.tenant_id, e.event_id, e.logged_at, e.txid, e.class, e.kind, e.payload, e.occurred_at
	  FROM fleet.event_log e
	  JOIN fleet_replay_vehicle v ON v.tenant_id OPERATOR(pg_catalog.=) e.tenant_id
	   AND v.code OPERATOR(pg_catalog.=) (e.payload OPERATOR(pg_catalog.->>) 'vehicle')
	  JOIN fleet.consumer_cursor c ON c.class OPERATOR(pg_catalog.=) e.class
	 WHERE e.kind OPERATOR(pg_catalog.=) 'vehicle.state'
	   AND pg_catalog.pg_visible_in_snapshot(e.txid, c.lo)
	   AND NOT EXISTS (SELECT 1 FROM fleet_replay_event r
	                    WHERE r.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND r.event_id OPERATOR(pg_catalog.=) e.event_id)
	   AND NOT EXISTS (SELECT 1 FROM fleet.event_retry r
	                    WHERE r.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND r.event_id OPERATOR(pg_catalog.=) e.event_id)
	   AND NOT EXISTS (SELECT 1 FROM fleet.dead_letter d
	                    WHERE d.tenant_id OPERATOR(pg_catalog.=) e.tenant_id AND d.event_id OPERATOR(pg_catalog.=) e.event_id)
	 ORDER BY e.tenant_id, v.vehicle_id, e.occurred_at DESC, e.event_id DESC;

	ANALYZE fleet_replay_invoice;
	SELECT pg_catalog.count(*) INTO n FROM fleet_replay_event;

	-- vehicle.state is newer-wins: only each vehicle's newest report can
	-- show in the projection, so the superseded ones are not applied again
	DELETE FROM fleet_replay_event r
	 USING (SELECT x.tenant_id, x.event_id,
	               pg_catalog.row_number() OVER (PARTITION BY x.tenant_id, x.payload OPERATOR(pg_catalog.->>) 'vehicle'
	                                             ORDER BY x.occurred_at DESC, x.event_id DESC) AS rn
	          FROM fleet_replay_event x
	         WHERE x.kind OPERATOR(pg_catalog.=) 'vehicle.state') s
	 WHERE s.rn OPERATOR(pg_catalog.>) 1
	   AND r.tenant_id OPERATOR(pg_catalog.=) s.tenant_id AND r.event_id OPERATOR(pg_catalog.=) s.event_id;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.replay_rewind(timestamptz, timestamptz) IS
	'Internal to fleet.replay(): collect the applied events of a log range into a temporary table, rewind the projections they produced and drop superseded vehicle.state reports; returns the number of events logged in the range with a handler';

CREATE FUNCTION fleet.replay_finish() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM fleet.recompute_invoice(i.tenant_id, i.customer_id, i.period_start, i.currency)
	   FROM fleet_replay_invoice i;
END
$$;
COMMENT ON FUNCTION fleet.replay_finish() IS
	'Internal to fleet.replay(): recompute the invoices whose charges were rebuilt';

CREATE FUNCTION fleet.replay(
	from_time timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.current_setting('fleet.replay_window')::interval,
	to_time timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (replayed bigint, failed bigint)
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_replay';
COMMENT ON FUNCTION fleet.replay(timestamptz, timestamptz) IS
	'Rebuild the projections from the events logged in [from_time, to_time) (default: the last fleet.replay_window, 24 hours unless changed) that live processing applied, in one transaction, pausing the consumers; returns how many events were applied again (events of kinds without handler and superseded vehicle.state reports need not be) and how many handlers failed (the transaction then still commits; see the server log)';

CREATE FUNCTION fleet.projection_hash() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.md5(pg_catalog.concat_ws('|',
		(SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', j.tenant_id, j.job_id, j.status, j.status_at, j.status_event_id), ';'
		        ORDER BY j.tenant_id, j.job_id) FROM fleet.job j),
		(SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', s.tenant_id, s.stop_id, s.status, s.status_at, s.status_event_id,
		        s.arrived_at, s.completed_at), ';' ORDER BY s.tenant_id, s.stop_id) FROM fleet.stop s),
		(SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', p.tenant_id, p.stop_id, p.kind, p.driver_id, p.captured_at,
		        p.metadata, p.source_event_id), ';' ORDER BY p.tenant_id, p.source_event_id, p.pod_id) FROM fleet.proof_of_delivery p),
		(SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', c.tenant_id, c.customer_id, c.job_id, c.kind, c.amount, c.currency,
		        c.occurred_at, c.source_event_id), ';' ORDER BY c.tenant_id, c.source_event_id, c.charge_id) FROM fleet.charge c),
		(SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', i.tenant_id, i.customer_id, i.period_start, i.currency, i.total,
		        i.status), ';' ORDER BY i.tenant_id, i.customer_id, i.period_start, i.currency) FROM fleet.invoice i),
		(SELECT pg_catalog.string_agg(pg_catalog.concat_ws(',', v.tenant_id, v.vehicle_id, v.fix_time, v.lat, v.lon, v.state,
		        v.state_at, v.state_event_id), ';' ORDER BY v.tenant_id, v.vehicle_id) FROM fleet.vehicle_state v)))
$$;
COMMENT ON FUNCTION fleet.projection_hash() IS
	'MD5 over every projection the pipeline maintains (job and stop status, proof of delivery, charges, invoices, vehicle state) as visible to the caller, ignoring surrogate keys of rebuilt rows: equal before and after fleet.replay()';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'FUNCTION', 'fleet.replay(timestamptz,timestamptz)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.projection_hash()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.projection_hash()', 'EXECUTE');
