-- 48_maintenance: partitions ahead of time, expiry by dropping partitions,
-- scheduled with pg_cron.
--
-- fleet.run_maintenance() keeps fleet.partitioned_table's promise for every
-- daily-partitioned table: partitions exist from days_back to days_ahead
-- (UTC), and partitions older than their retention are dropped whole --
-- never a DELETE, so expiry leaves no dead tuples.  Two guards:
--   * idempotency keys and log partitions are kept at least
--     fleet.replay_window (24 h by default), whatever their retention says;
--   * a log partition is dropped only when every event in it has been
--     consumed by its class cursor and none waits in retries or dead letters.
-- pg_cron runs it every ten minutes as the installing role, through
-- fleet.tier_maintenance() (job name fleet.maintenance; DROP EXTENSION
-- unschedules it, see extension/guard.c).  A partition with rows a legal
-- hold covers is never dropped (fleet.relation_held, 70_tier.sql).

CREATE FUNCTION fleet.run_maintenance()
RETURNS TABLE (relation regclass, created integer, dropped integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	p record;
	v_today date := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
	v_keep interval;
	v_floor interval := pg_catalog.current_setting('fleet.replay_window')::interval;
	v_lo timestamptz;
	v_hi timestamptz;
	v_busy boolean;
BEGIN
	FOR t IN SELECT * FROM fleet.partitioned_table ORDER BY partitioned_table.relation::text LOOP
		relation := t.relation;
		-- at the table's partition interval (daily unless its tier policy says otherwise)
		created := fleet.create_partitions(t.relation,
			(v_today OPERATOR(pg_catalog.-) t.days_back)::timestamp AT TIME ZONE 'UTC',
			GREATEST((v_today OPERATOR(pg_catalog.+) t.days_ahead OPERATOR(pg_catalog.+) 1)::timestamp AT TIME ZONE 'UTC',
			         pg_catalog.now() OPERATOR(pg_catalog.+) COALESCE((fleet.tier_partitioning(t.relation)).ahead, '0'::interval)));
		dropped := 0;
		IF t.retention IS NOT NULL THEN
			v_keep := t.retention;
			IF t.relation OPERATOR(pg_catalog.=) ANY (ARRAY['fleet.event_log', 'fleet.event_key']::pg_catalog.regclass[])
			   AND v_keep OPERATOR(pg_catalog.<) v_floor THEN
				v_keep := v_floor;
			END IF;
			FOR p IN SELECT * FROM fleet.time_partitions(t.relation) d
			          WHERE d.hi OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) v_keep) LOOP
				IF t.relation OPERATOR(pg_catalog.=) 'fleet.event_log'::pg_catalog.regclass THEN
					v_lo := p.lo;
					v_hi := p.hi;
					EXECUTE pg_catalog.format(
						'SELECT EXISTS (SELECT 1 FROM %s e JOIN fleet.consumer_cursor c ON c.class OPERATOR(pg_catalog.=) e.class'
						'                WHERE NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.lo))', p.partition)
						INTO v_busy;
					v_busy := v_busy
						OR EXISTS (SELECT 1 FROM fleet.event_retry r
						            WHERE r.logged_at OPERATOR(pg_catalog.>=) v_lo AND r.logged_at OPERATOR(pg_catalog.<) v_hi)
						OR EXISTS (SELECT 1 FROM fleet.dead_letter d
						            WHERE d.logged_at OPERATOR(pg_catalog.>=) v_lo AND d.logged_at OPERATOR(pg_catalog.<) v_hi);
					CONTINUE WHEN v_busy;
				END IF;
				CONTINUE WHEN fleet.relation_held(p.partition);
				EXECUTE pg_catalog.format('DROP TABLE %s', p.partition);
				dropped := dropped OPERATOR(pg_catalog.+) 1;
			END LOOP;
		END IF;
		RETURN NEXT;
	END LOOP;
	-- tiered tables fleet does not list in fleet.partitioned_table (a user's
	-- own): partitions from now to their policy's ahead, if it sets one
	FOR t IN SELECT tp.relation, tp.ahead FROM fleet.tier_policy tp
	          WHERE tp.ahead IS NOT NULL
	            AND NOT EXISTS (SELECT 1 FROM fleet.partitioned_table pt WHERE pt.relation OPERATOR(pg_catalog.=) tp.relation)
	          ORDER BY tp.relation::text LOOP
		relation := t.relation;
		created := fleet.create_partitions(t.relation, pg_catalog.now(), pg_catalog.now() OPERATOR(pg_catalog.+) t.ahead);
		dropped := 0;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION fleet.run_maintenance() IS
	'Create the partitions ahead of time at each table''s partition interval (fleet.partitioned_table''s days, or a tier policy''s ahead) and drop expired ones (keys and log kept at least fleet.replay_window, log partitions only once fully consumed); run by pg_cron as fleet.maintenance';

-- The job calls fleet.tier_maintenance() (sql/parts/74_tier_maint.sql),
-- which runs fleet.run_maintenance() first and then the due tier steps.
SELECT cron.schedule('fleet.maintenance', '*/10 * * * *', 'CALL fleet.tier_maintenance()');

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin', 'TABLE', 'fleet.partitioned_table', 'UPDATE');
