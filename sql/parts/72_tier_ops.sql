-- 72_tier_ops: the tier transitions, cold reads and restore, the status view.
--
-- Each transition is split into steps of one transaction each; the step
-- reached is kept in fleet.tier_state, so a run killed anywhere is finished
-- by the next (every step is idempotent):
--   hot -> warm   warm_begin: create the delta table <partition>_d and a
--                   trigger on the partition that mirrors new rows into it
--                   (updates/deletes of that day wait);
--                 warm_copy: in one transaction, create the shadow table
--                   <partition>_w in the warm tablespace with a CHECK of its
--                   range and fill it from the partition sorted per vehicle
--                   over time, frozen and all-visible as written
--                   (fleet.warm_fill, extension/warm_fill.c: the COPY FREEZE
--                   mechanism, so no vacuum has to freeze it later), its
--                   indexes (the parent's, BRIN on time) maintained batch by
--                   batch, at most fleet.tier_duty of the time; trim from the
--                   delta what the fill saw; analyze;
--                 warm_swap: with lock_timeout, lock the parent and the
--                   partition, add the delta's rows (those written during the
--                   fill), drop the old partition, attach the shadow (its
--                   CHECK spares the scan): only this step blocks readers and
--                   writers.
--   warm -> cold  cold_detach: detach the partition (short lock) and keep it
--                   as the work table <partition>_c (late fixes for that day
--                   go to the quarantine from now on);
--                 cold_pack: encode it into fleet.cold_segment (one segment
--                   per tenant, device, vehicle), decode it again and compare
--                   every row with the work table, and only then drop it.
-- fleet.cold_restore() brings a cold day back as a partition (procedure:
-- create the partition, then fill it and remove the segments).

CREATE FUNCTION fleet.utc_text(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
$$;
COMMENT ON FUNCTION fleet.utc_text(timestamptz) IS 'A time as tier messages and comments show it: YYYY-MM-DD HH:MI UTC, whatever the session''s time zone';

CREATE FUNCTION fleet.tier_partition(p_rel regclass, p_lo timestamptz) RETURNS regclass
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT t.partition FROM fleet.time_partitions(p_rel) t WHERE t.lo OPERATOR(pg_catalog.=) p_lo
$$;
COMMENT ON FUNCTION fleet.tier_partition(regclass, timestamptz) IS 'The attached partition of a tiered table starting at lo, or NULL';

CREATE FUNCTION fleet.tier_partition_hi(p_rel regclass, p_lo timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT t.hi FROM fleet.time_partitions(p_rel) t WHERE t.lo OPERATOR(pg_catalog.=) p_lo
$$;
COMMENT ON FUNCTION fleet.tier_partition_hi(regclass, timestamptz) IS 'The end (exclusive) of the attached partition of a tiered table starting at lo, or NULL';

-- a partition's rows as one hash, for "every row kept" checks
CREATE FUNCTION fleet.tier_hash(p_rel regclass, p_lo timestamptz DEFAULT NULL, p_hi timestamptz DEFAULT NULL)
RETURNS TABLE (n bigint, hash text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cols text;
	v_key text;
	v_col name;
	v_root regclass := COALESCE(fleet.tier_root(p_rel), p_rel);
BEGIN
	v_col := fleet.tier_time_column(v_root);
	SELECT pg_catalog.string_agg(pg_catalog.format('x.%I', a.attname), ', ' ORDER BY a.attnum),
	       pg_catalog.string_agg(pg_catalog.format('x.%I', a.attname), ', ' ORDER BY a.attnum)
	  INTO v_cols, v_key
	  FROM pg_catalog.pg_attribute a
	 WHERE a.attrelid OPERATOR(pg_catalog.=) v_root AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT pg_catalog.count(*), pg_catalog.md5(COALESCE(pg_catalog.string_agg(ROW(%s)::text, E''\n'' ORDER BY ROW(%s)::text), ''''))'
		'  FROM %s x %s', v_cols, v_key, p_rel,
		CASE WHEN p_lo IS NULL THEN ''
		     ELSE pg_catalog.format('WHERE x.%I OPERATOR(pg_catalog.>=) %L AND x.%I OPERATOR(pg_catalog.<) %L',
		          v_col, p_lo, v_col, COALESCE(p_hi, p_lo OPERATOR(pg_catalog.+) '1 day'::interval)) END);
END
$$;
COMMENT ON FUNCTION fleet.tier_hash(regclass, timestamptz, timestamptz) IS
	'Row count and MD5 over the sorted text of every row of a relation (optionally of a tiered table''s rows in [lo, hi), hi defaulting to a day after lo): compares data across tiers';

CREATE FUNCTION fleet.cold_encode(fix_time timestamptz[], lat double precision[], lon double precision[],
	speed real[], heading real[], altitude real[], accuracy real[], seq bigint[], attrs jsonb[],
	received_at timestamptz[]) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_cold_encode';
COMMENT ON FUNCTION fleet.cold_encode(timestamptz[], double precision[], double precision[], real[], real[], real[], real[], bigint[], jsonb[], timestamptz[]) IS
	'Pack fixes (parallel arrays, sorted by fix time) into one cold segment: delta-encoded columns, zlib (extension/coldcodec.c)';

CREATE FUNCTION fleet.cold_decode(segment bytea)
RETURNS TABLE (fix_time timestamptz, lat double precision, lon double precision, speed real, heading real,
               altitude real, accuracy real, seq bigint, attrs jsonb, received_at timestamptz)
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000
	AS 'MODULE_PATHNAME', 'fleet_cold_decode';
COMMENT ON FUNCTION fleet.cold_decode(bytea) IS 'The fixes of a cold segment, bit for bit as they were packed';

CREATE VIEW fleet.position_all WITH (security_invoker = true) AS
	SELECT p.tenant_id, p.device_id, p.fix_time, p.vehicle_id, p.lat, p.lon, p.speed, p.heading, p.altitude,
	       p.accuracy, p.seq, p.attrs, p.received_at
	  FROM fleet.position p
	UNION ALL
	SELECT s.tenant_id, s.device_id, d.fix_time, s.vehicle_id, d.lat, d.lon, d.speed, d.heading, d.altitude,
	       d.accuracy, d.seq, d.attrs, d.received_at
	  FROM fleet.cold_segment s CROSS JOIN LATERAL fleet.cold_decode(s.data) d;
COMMENT ON VIEW fleet.position_all IS
	'Every GPS fix, hot, warm and cold (decoded); for time-range queries prefer fleet.position_range(), which decodes only the segments in range';

CREATE FUNCTION fleet.position_range(p_lo timestamptz, p_hi timestamptz, p_device bigint DEFAULT NULL,
                                     p_vehicle bigint DEFAULT NULL)
RETURNS SETOF fleet.position_all
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.tenant_id, p.device_id, p.fix_time, p.vehicle_id, p.lat, p.lon, p.speed, p.heading, p.altitude,
	       p.accuracy, p.seq, p.attrs, p.received_at
	  FROM fleet.position p
	 WHERE p.fix_time OPERATOR(pg_catalog.>=) p_lo AND p.fix_time OPERATOR(pg_catalog.<) p_hi
	   AND (p_device IS NULL OR p.device_id OPERATOR(pg_catalog.=) p_device)
	   AND (p_vehicle IS NULL OR p.vehicle_id OPERATOR(pg_catalog.=) p_vehicle)
	UNION ALL
	SELECT s.tenant_id, s.device_id, d.fix_time, s.vehicle_id, d.lat, d.lon, d.speed, d.heading, d.altitude,
	       d.accuracy, d.seq, d.attrs, d.received_at
	  FROM fleet.cold_segment s CROSS JOIN LATERAL fleet.cold_decode(s.data) d
	 WHERE s.lo OPERATOR(pg_catalog.<) p_hi AND s.hi OPERATOR(pg_catalog.>=) p_lo
	   AND (p_device IS NULL OR s.device_id OPERATOR(pg_catalog.=) p_device)
	   AND (p_vehicle IS NULL OR s.vehicle_id OPERATOR(pg_catalog.=) p_vehicle)
	   AND d.fix_time OPERATOR(pg_catalog.>=) p_lo AND d.fix_time OPERATOR(pg_catalog.<) p_hi
$$;
COMMENT ON FUNCTION fleet.position_range(timestamptz, timestamptz, bigint, bigint) IS
	'GPS fixes with lo <= fix_time < hi (optionally one device or vehicle) from every tier: hot and warm partitions and the cold segments in range, under the caller''s tenant context';

-- ---------------------------------------------------------------- hot -> warm

CREATE FUNCTION fleet.tier_background() RETURNS integer
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_tier_background';
COMMENT ON FUNCTION fleet.tier_background() IS
	'Lower this backend''s CPU priority to fleet.tier_nice for the rest of its life (extension/tier.c): the copy and pack steps call it so that live ingest keeps its share of the CPU';

CREATE FUNCTION fleet.tier_mirror() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		EXECUTE pg_catalog.format('INSERT INTO %s SELECT ($1).*', TG_ARGV[0]) USING NEW;
		RETURN NULL;
	END IF;
	RAISE EXCEPTION '% of % refused while the partition moves to the warm tier', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'object_in_use', HINT = 'Retry in a moment: the move finishes within one maintenance run.';
END
$$;
COMMENT ON FUNCTION fleet.tier_mirror() IS
	'Trigger on a partition being moved to the warm tier: copy inserted rows into its delta table; updates and deletes wait for the move';

-- A work table's name qualified with the schema of the partition it serves
-- (a user's tiered table keeps its partitions in its own schema).
CREATE FUNCTION fleet.tier_qname(p_part regclass, p_name text) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.format('%I.%I', n.nspname, p_name)
	  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
	 WHERE c.oid OPERATOR(pg_catalog.=) p_part
$$;
COMMENT ON FUNCTION fleet.tier_qname(regclass, text) IS 'A name qualified with the schema of a partition: where the warm copy, delta and work tables of its move live';

CREATE FUNCTION fleet.warm_fill(p_source regclass, p_target regclass, p_delta regclass, p_order text) RETURNS bigint
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'fleet_warm_fill';
COMMENT ON FUNCTION fleet.warm_fill(regclass, regclass, regclass, text) IS
	'Copy every row of p_source into p_target (no triggers; its indexes are maintained batch by batch) sorted by p_order, frozen and all-visible when p_target was created in this transaction (else unfrozen, with a NOTICE); delete from p_delta the rows the copy saw, under the same snapshot; at most fleet.tier_duty of the time (extension/warm_fill.c). Returns the rows copied';

CREATE FUNCTION fleet.warm_begin(p_rel regclass, p_lo timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_part regclass := fleet.tier_partition(p_rel, p_lo);
	v_name text;
	v_shadow text;
	v_delta text;
	v_pol fleet.tier_policy;
BEGIN
	SELECT * INTO v_pol FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) p_rel;
	IF v_part IS NULL OR v_pol.relation IS NULL THEN
		RAISE EXCEPTION 'no partition of % starting % under a tier policy', p_rel, fleet.utc_text(p_lo) USING ERRCODE = 'undefined_table';
	END IF;
	v_name := (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) v_part);
	v_shadow := v_name OPERATOR(pg_catalog.||) '_w';
	v_delta := v_name OPERATOR(pg_catalog.||) '_d';
	-- a begun move is begun again (the delta only repeats rows of the partition)
	IF pg_catalog.to_regclass(fleet.tier_qname(v_part, v_shadow)) IS NOT NULL THEN
		EXECUTE pg_catalog.format('DROP TABLE %s', fleet.tier_qname(v_part, v_shadow));
	END IF;
	IF pg_catalog.to_regclass(fleet.tier_qname(v_part, v_delta)) IS NOT NULL THEN
		EXECUTE pg_catalog.format('DROP TABLE %s', fleet.tier_qname(v_part, v_delta));
	END IF;
	EXECUTE pg_catalog.format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING STORAGE)', fleet.tier_qname(v_part, v_delta), p_rel);
	EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', fleet.tier_qname(v_part, v_delta),
		pg_catalog.format('Rows written into %s while fleet.tier_maintenance() moves it to the warm tier', v_name));
	EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER tier_mirror AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION fleet.tier_mirror(%L)',
	                          v_part, fleet.tier_qname(v_part, v_delta));
	EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER tier_mirror_wait BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION fleet.tier_mirror(%L)',
	                          v_part, fleet.tier_qname(v_part, v_delta));
	INSERT INTO fleet.tier_state (relation, lo, hi, tier, work) VALUES (p_rel, p_lo, fleet.tier_partition_hi(p_rel, p_lo), 'warming', v_shadow)
	ON CONFLICT (relation, lo) DO UPDATE SET tier = 'warming', work = EXCLUDED.work, lock_ms = NULL, progress = NULL,
	                                          since = pg_catalog.now();
	RETURN v_shadow;
END
$$;
COMMENT ON FUNCTION fleet.warm_begin(regclass, timestamptz) IS
	'Step 1 of hot -> warm: the delta table <partition>_d and the mirror trigger on the partition that copies new rows into it; returns the name the warm copy will have';

CREATE FUNCTION fleet.warm_copy(p_rel regclass, p_lo timestamptz) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_part regclass := fleet.tier_partition(p_rel, p_lo);
	v_pol fleet.tier_policy;
	v_state fleet.tier_state;
	v_name text;
	v_delta text;
	v_ts text;
	v_n bigint;
	v_sort text;
	v_work text;
	i record;
BEGIN
	SELECT * INTO v_pol FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) p_rel;
	SELECT * INTO v_state FROM fleet.tier_state s
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo
	   AND s.tier OPERATOR(pg_catalog.=) 'warming'
	   FOR UPDATE;
	IF v_state.work IS NULL OR v_part IS NULL THEN
		RAISE EXCEPTION 'partition of % starting % is not being warmed', p_rel, fleet.utc_text(p_lo) USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	PERFORM fleet.tier_background();
	v_name := (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) v_part);
	v_delta := fleet.tier_qname(v_part, v_name OPERATOR(pg_catalog.||) '_d');
	v_work := fleet.tier_qname(v_part, v_state.work);
	v_ts := COALESCE(v_pol.warm_tablespace, 'pg_default');
	SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') INTO v_sort
	  FROM pg_catalog.unnest(v_pol.sort_columns OPERATOR(pg_catalog.||) ARRAY[v_pol.time_column::text]) c;
	-- created here, in the fill's own transaction, so the fill may write it frozen
	IF pg_catalog.to_regclass(v_work) IS NOT NULL THEN
		EXECUTE pg_catalog.format('DROP TABLE %s', v_work);
	END IF;
	-- autovacuum has nothing to do on a table written frozen and analyzed
	-- here; kept off until the swap, it cannot hold the shadow when the swap
	-- needs it
	EXECUTE pg_catalog.format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING STORAGE)'
	                          ' WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false) TABLESPACE %I',
	                          v_work, p_rel, v_ts);
	EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I OPERATOR(pg_catalog.>=) %L AND %I OPERATOR(pg_catalog.<) %L)',
	                          v_work, v_state.work OPERATOR(pg_catalog.||) '_range',
	                          v_pol.time_column, v_state.lo, v_pol.time_column, v_state.hi);
	-- the parent's indexes (so ATTACH finds them all and builds none under
	-- its lock) and BRIN on time, on the empty table: the fill maintains them
	FOR i IN SELECT x.indexrelid, x.indisprimary, pg_catalog.pg_get_indexdef(x.indexrelid) AS def
	           FROM pg_catalog.pg_index x
	          WHERE x.indrelid OPERATOR(pg_catalog.=) p_rel LOOP
		IF i.indisprimary THEN
			EXECUTE pg_catalog.format('ALTER TABLE %s ADD PRIMARY KEY (%s) USING INDEX TABLESPACE %I', v_work,
				(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord)
				   FROM pg_catalog.pg_index x2, pg_catalog.unnest(x2.indkey) WITH ORDINALITY k(att, ord)
				   JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p_rel AND a.attnum OPERATOR(pg_catalog.=) k.att
				  WHERE x2.indexrelid OPERATOR(pg_catalog.=) i.indexrelid), v_ts);
		ELSE
			EXECUTE pg_catalog.format('CREATE %s INDEX ON %s USING %s TABLESPACE %I',
				CASE WHEN i.def OPERATOR(pg_catalog.~) '^CREATE UNIQUE' THEN 'UNIQUE' ELSE '' END,
				v_work, pg_catalog.substring(i.def FROM ' USING (.*)$'), v_ts);
		END IF;
	END LOOP;
	EXECUTE pg_catalog.format('CREATE INDEX ON %s USING brin (%I) TABLESPACE %I', v_work, v_pol.time_column, v_ts);
	-- the rows, with their index entries, at the duty cycle
	v_n := fleet.warm_fill(v_part, v_work::pg_catalog.regclass, pg_catalog.to_regclass(v_delta), v_sort);
	EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', v_work,
		pg_catalog.format('Warm copy of %s being built by fleet.tier_maintenance()', v_name));
	EXECUTE pg_catalog.format('ANALYZE %s', v_work);
	UPDATE fleet.tier_state s SET tier = 'copied', progress = v_n, since = pg_catalog.now()
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION fleet.warm_copy(regclass, timestamptz) IS
	'Step 2 of hot -> warm, one transaction: create the warm shadow table with the parent''s indexes and BRIN on time, fill it from the partition sorted by the policy''s sort columns then time, frozen and all-visible, its indexes maintained as it goes (fleet.warm_fill), analyze. No lock on the parent. Returns the rows copied';

CREATE FUNCTION fleet.warm_swap(p_rel regclass, p_lo timestamptz) RETURNS double precision
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_part regclass := fleet.tier_partition(p_rel, p_lo);
	v_name text;
	v_shadow text;
	v_t0 timestamptz;
	v_ms double precision;
	v_late bigint := 0;
	v_delta text;
	v_final text;
	v_hi timestamptz;
	v_pol fleet.tier_policy;
BEGIN
	SELECT * INTO v_pol FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) p_rel;
	SELECT s.work, s.hi INTO v_shadow, v_hi FROM fleet.tier_state s
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo
	   AND s.tier OPERATOR(pg_catalog.=) 'copied';
	IF v_shadow IS NULL OR v_part IS NULL THEN
		RAISE EXCEPTION 'partition of % starting % has no finished warm copy', p_rel, fleet.utc_text(p_lo) USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	v_name := (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) v_part);
	v_t0 := pg_catalog.clock_timestamp();
	-- parent first, as ingest does: waits end at lock_timeout, never in a deadlock
	EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p_rel);
	EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_part);
	-- rows written while the copy ran (usually none: the day ended hot_for ago)
	v_delta := fleet.tier_qname(v_part, v_name OPERATOR(pg_catalog.||) '_d');
	v_final := fleet.tier_qname(v_part, v_name);
	v_shadow := fleet.tier_qname(v_part, v_shadow);
	IF pg_catalog.to_regclass(v_delta) IS NOT NULL THEN
		EXECUTE pg_catalog.format('INSERT INTO %s SELECT * FROM %s', v_shadow, v_delta);
		GET DIAGNOSTICS v_late = ROW_COUNT;
		EXECUTE pg_catalog.format('DROP TABLE %s', v_delta);
	END IF;
	EXECUTE pg_catalog.format('DROP TABLE %s', v_part);
	EXECUTE pg_catalog.format('ALTER TABLE %s RENAME TO %I', v_shadow, v_name);
	EXECUTE pg_catalog.format('ALTER TABLE %s RESET (autovacuum_enabled, toast.autovacuum_enabled)', v_final);
	EXECUTE pg_catalog.format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)', p_rel, v_final,
	                          p_lo, v_hi);
	v_ms := pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_t0) OPERATOR(pg_catalog.*) 1000;
	EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', v_final,
		pg_catalog.format('Partition of %s for %s to %s, warm tier: %s, sorted, frozen, BRIN on time', p_rel,
		                  fleet.utc_text(p_lo), fleet.utc_text(v_hi),
		                  COALESCE(v_pol.warm_tablespace, 'pg_default')));
	UPDATE fleet.tier_state s SET tier = 'warm', work = NULL, lock_ms = v_ms, since = pg_catalog.now()
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	PERFORM fleet.ledger_append('move', p_rel::text, pg_catalog.jsonb_build_object(
		'lo', p_lo, 'hi', v_hi, 'partition', v_name, 'tier', 'warm', 'tablespace', COALESCE(v_pol.warm_tablespace, 'pg_default'),
		'lock_ms', pg_catalog.round(v_ms::numeric, 3), 'late_rows', v_late));
	RETURN v_ms;
END
$$;
COMMENT ON FUNCTION fleet.warm_swap(regclass, timestamptz) IS
	'Step 3 of hot -> warm: lock the parent and the partition, add the rows written during the copy (delta table), drop the hot partition, attach the warm copy in its place (no validation scan); returns the milliseconds the lock was held before commit';

-- ---------------------------------------------------------------- warm -> cold
--
-- One implementation for both tables with a cold tier (fleet.position,
-- fleet.event_log), driven by fleet.cold_layout(); the public steps
-- (cold_detach, cold_pack, cold_restore and their event_ counterparts) are
-- thin wrappers.

CREATE FUNCTION fleet.tier_cold_detach(p_rel regclass, p_lo timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_part regclass := fleet.tier_partition(p_rel, p_lo);
	v_name text := (SELECT l.relname FROM fleet.cold_layout(p_rel) l);
	v_work text;
BEGIN
	IF v_part IS NULL THEN
		RAISE EXCEPTION 'no partition of % starting %', v_name, fleet.utc_text(p_lo) USING ERRCODE = 'undefined_table';
	END IF;
	v_work := (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) v_part) OPERATOR(pg_catalog.||) '_c';
	EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p_rel);
	INSERT INTO fleet.tier_state (relation, lo, hi, tier, work)
	VALUES (p_rel, p_lo, fleet.tier_partition_hi(p_rel, p_lo), 'cooling', v_work)
	ON CONFLICT (relation, lo) DO UPDATE SET tier = 'cooling', work = EXCLUDED.work, since = pg_catalog.now();
	EXECUTE pg_catalog.format('ALTER TABLE %s DETACH PARTITION %s', p_rel, v_part);
	EXECUTE pg_catalog.format('ALTER TABLE %s RENAME TO %I', v_part, v_work);
	RETURN v_work;
END
$$;
COMMENT ON FUNCTION fleet.tier_cold_detach(regclass, timestamptz) IS
	'Step 1 of warm -> cold for fleet.position or fleet.event_log: detach the partition starting at lo (short lock) and keep it as the work table <partition>_c (called by fleet.cold_detach and fleet.event_cold_detach)';

CREATE FUNCTION fleet.tier_cold_pack(p_rel regclass, p_lo timestamptz) RETURNS TABLE (segments bigint, nrows bigint, bytes bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	l record;
	v_work text;
	v_time text;
	v_keys text;
	v_wkeys text;
	v_order text;
	v_aggs text;
	v_src record;
	v_back record;
BEGIN
	SELECT * INTO STRICT l FROM fleet.cold_layout(p_rel);
	SELECT s.work INTO v_work FROM fleet.tier_state s
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel
	   AND s.lo OPERATOR(pg_catalog.=) p_lo AND s.tier OPERATOR(pg_catalog.=) 'cooling';
	IF v_work IS NULL THEN
		RAISE EXCEPTION 'partition of % starting % is not being packed', l.relname, fleet.utc_text(p_lo)
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	PERFORM fleet.tier_background();
	-- a run killed before commit left nothing: segments of this day come only from a committed pack
	EXECUTE pg_catalog.format('DELETE FROM %s s WHERE s.part_lo OPERATOR(pg_catalog.=) $1', l.segments) USING p_lo;
	-- one segment per tenant, segment key and UTC day; each encoded column
	-- aggregated in the encode order
	v_time := pg_catalog.quote_ident(l.order_cols[1]);
	SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format('%I, ', k), '' ORDER BY o), ''),
	       COALESCE(pg_catalog.string_agg(pg_catalog.format('w.%I, ', k), '' ORDER BY o), '')
	  INTO v_keys, v_wkeys
	  FROM pg_catalog.unnest(l.seg_cols) WITH ORDINALITY u(k, o);
	SELECT pg_catalog.string_agg('w.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k), ', ' ORDER BY o) INTO v_order
	  FROM pg_catalog.unnest(l.order_cols) WITH ORDINALITY u(k, o);
	SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.array_agg(w.%I ORDER BY %s)', k, v_order), ', ' ORDER BY o) INTO v_aggs
	  FROM pg_catalog.unnest(l.enc_cols) WITH ORDINALITY u(k, o);
	EXECUTE pg_catalog.format(
		'INSERT INTO %s (tenant_id, part_lo, day, %slo, hi, nrows, data)'
		' SELECT w.tenant_id, %L, (w.%s AT TIME ZONE ''UTC'')::date, %spg_catalog.min(w.%s), pg_catalog.max(w.%s),'
		'        pg_catalog.count(*), %s(%s)'
		'   FROM fleet.%I w GROUP BY w.tenant_id, %s(w.%s AT TIME ZONE ''UTC'')::date',
		l.segments, v_keys, p_lo, v_time, v_wkeys, v_time, v_time, l.encode, v_aggs, v_work, v_wkeys, v_time);
	-- read the cold copy back and compare it with the source, row for row
	SELECT * INTO v_src FROM fleet.tier_hash(pg_catalog.format('fleet.%I', v_work)::pg_catalog.regclass);
	EXECUTE pg_catalog.format('CREATE TEMP TABLE IF NOT EXISTS %I (LIKE %s) ON COMMIT DROP', l.check_table, p_rel);
	EXECUTE pg_catalog.format('TRUNCATE pg_temp.%I', l.check_table);
	EXECUTE pg_catalog.format('INSERT INTO pg_temp.%I (%s) %s WHERE s.part_lo OPERATOR(pg_catalog.=) $1',
	                          l.check_table, l.columns, l.decoded) USING p_lo;
	SELECT * INTO v_back FROM fleet.tier_hash(pg_catalog.format('pg_temp.%I', l.check_table)::pg_catalog.regclass);
	IF v_src.n OPERATOR(pg_catalog.<>) v_back.n OR v_src.hash OPERATOR(pg_catalog.<>) v_back.hash THEN
		RAISE EXCEPTION 'cold copy of % from % does not read back equal to its source (% rows %, cold % rows %)',
			l.relname, fleet.utc_text(p_lo), v_src.n, v_src.hash, v_back.n, v_back.hash
			USING ERRCODE = 'data_corrupted';
	END IF;
	EXECUTE pg_catalog.format('DROP TABLE pg_temp.%I', l.check_table);
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(s.nrows), 0), COALESCE(pg_catalog.sum(pg_catalog.octet_length(s.data)), 0)'
		'  FROM %s s WHERE s.part_lo OPERATOR(pg_catalog.=) $1', l.segments)
		INTO segments, nrows, bytes USING p_lo;
	EXECUTE pg_catalog.format('DROP TABLE fleet.%I', v_work);
	UPDATE fleet.tier_state s SET tier = 'cold', work = NULL, since = pg_catalog.now()
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	PERFORM fleet.ledger_append('pack', l.relname, pg_catalog.jsonb_build_object(
		'lo', p_lo, 'segments', segments, l.noun, nrows, 'bytes', bytes, 'hash', v_src.hash));
	RETURN NEXT;
END
$$;
COMMENT ON FUNCTION fleet.tier_cold_pack(regclass, timestamptz) IS
	'Step 2 of warm -> cold for fleet.position or fleet.event_log: encode the detached partition into cold segments (fleet.cold_layout: one per tenant, segment key and UTC day), decode them and compare every row with the source (count and hash), then drop the source; ledgered (called by fleet.cold_pack and fleet.event_cold_pack)';

-- (a procedure that commits cannot carry SET search_path: every name in it is qualified)
CREATE PROCEDURE fleet.tier_cold_restore(p_rel regclass, p_lo timestamptz)
LANGUAGE plpgsql
AS $$
DECLARE
	l record;
	v_part regclass;
	v_hi timestamptz;
	v_any boolean;
	v_want bigint;
	v_n bigint;
BEGIN
	SELECT * INTO STRICT l FROM fleet.cold_layout(p_rel);
	SELECT s.hi INTO v_hi FROM fleet.tier_state s
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo
	   AND s.tier OPERATOR(pg_catalog.=) ANY (ARRAY['cold', 'restoring']);
	EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s s WHERE s.part_lo OPERATOR(pg_catalog.=) $1)', l.segments)
		INTO v_any USING p_lo;
	IF v_hi IS NULL OR NOT v_any THEN
		RAISE EXCEPTION 'no cold data of % starting %', l.relname, fleet.utc_text(p_lo) USING ERRCODE = 'no_data_found';
	END IF;
	UPDATE fleet.tier_state s SET tier = 'restoring', since = pg_catalog.now()
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	-- the partition the data was packed from, with its own bounds
	PERFORM fleet.create_range_partition(p_rel, p_lo, v_hi);
	COMMIT;		-- the new partition's lock on the parent ends here; filling it takes none
	v_part := fleet.tier_partition(p_rel, p_lo);
	EXECUTE pg_catalog.format('SELECT pg_catalog.sum(s.nrows) FROM %s s WHERE s.part_lo OPERATOR(pg_catalog.=) $1', l.segments)
		INTO v_want USING p_lo;
	EXECUTE pg_catalog.format('INSERT INTO %s (%s) %s WHERE s.part_lo OPERATOR(pg_catalog.=) $1 ON CONFLICT DO NOTHING',
	                          v_part, l.columns, l.decoded) USING p_lo;
	EXECUTE pg_catalog.format(l.restored_count, v_part) INTO v_n USING p_lo;
	IF v_n OPERATOR(pg_catalog.<) v_want THEN
		RAISE EXCEPTION '%', pg_catalog.format(l.restore_error, fleet.utc_text(p_lo), v_n, v_want)
			USING ERRCODE = 'data_corrupted';
	END IF;
	EXECUTE pg_catalog.format('DELETE FROM %s s WHERE s.part_lo OPERATOR(pg_catalog.=) $1', l.segments) USING p_lo;
	DELETE FROM fleet.tier_state s
	 WHERE s.relation OPERATOR(pg_catalog.=) p_rel AND s.lo OPERATOR(pg_catalog.=) p_lo;
	PERFORM fleet.ledger_append('restore', l.relname, pg_catalog.jsonb_build_object('lo', p_lo, 'hi', v_hi, l.noun, v_want));
	COMMIT;
END
$$;
COMMENT ON PROCEDURE fleet.tier_cold_restore(regclass, timestamptz) IS
	'Bring a cold partition of fleet.position or fleet.event_log (by its start) back as a partition with its own bounds: create it, fill it from the decoded segments, check every row arrived (fleet.cold_layout''s count), remove the segments; ledgered (called by fleet.cold_restore and fleet.event_cold_restore)';

CREATE FUNCTION fleet.cold_detach(p_lo timestamptz) RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT fleet.tier_cold_detach('fleet.position', p_lo)
$$;
COMMENT ON FUNCTION fleet.cold_detach(timestamptz) IS
	'Step 1 of warm -> cold: detach the partition of fleet.position starting at lo (short lock) and keep it as the work table <partition>_c';

CREATE FUNCTION fleet.cold_pack(p_lo timestamptz) RETURNS TABLE (segments bigint, fixes bigint, bytes bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.segments, p.nrows, p.bytes FROM fleet.tier_cold_pack('fleet.position', p_lo) p
$$;
COMMENT ON FUNCTION fleet.cold_pack(timestamptz) IS
	'Step 2 of warm -> cold: encode the detached partition into cold segments (one per tenant, device, vehicle and UTC day), decode them and compare every row with the source (count and hash), then drop the source';

CREATE PROCEDURE fleet.cold_restore(p_lo timestamptz)
LANGUAGE plpgsql
AS $$
BEGIN
	CALL fleet.tier_cold_restore('fleet.position', p_lo);
END
$$;
COMMENT ON PROCEDURE fleet.cold_restore(timestamptz) IS
	'Bring a cold partition of fleet.position (by its start) back as a normal (hot) partition: create it, fill it from the decoded segments, check every fix arrived, remove the segments; ledgered';

-- ---------------------------------------------------------------- the event log's cold tier
--
-- The same two steps as positions, by the same functions (above):
-- event_cold_detach detaches a partition of fleet.event_log (only once every
-- class has consumed it and no retry or dead letter refers to it: the
-- pipeline reads the live table) and keeps it as <partition>_c;
-- event_cold_pack encodes it into fleet.cold_event_segment (one segment per
-- tenant and UTC day), decodes it again, compares every row (count and
-- hash) and only then drops the source.

CREATE FUNCTION fleet.cold_event_encode(event_id bigint[], logged_at timestamptz[], txid xid8[], class text[], kind text[],
	schema_version integer[], original_version integer[], source text[], idem_key text[], occurred_at timestamptz[],
	payload jsonb[]) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_cold_event_encode';
COMMENT ON FUNCTION fleet.cold_event_encode(bigint[], timestamptz[], xid8[], text[], text[], integer[], integer[], text[], text[], timestamptz[], jsonb[]) IS
	'Pack events (parallel arrays, sorted by log time then id) into one cold segment: delta-encoded ids, times and transaction ids, text and jsonb columns, zlib (extension/coldcodec.c)';

CREATE FUNCTION fleet.cold_event_decode(segment bytea)
RETURNS TABLE (event_id bigint, logged_at timestamptz, txid xid8, class text, kind text, schema_version integer,
               original_version integer, source text, idem_key text, occurred_at timestamptz, payload jsonb)
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000
	AS 'MODULE_PATHNAME', 'fleet_cold_event_decode';
COMMENT ON FUNCTION fleet.cold_event_decode(bytea) IS 'The events of a cold event segment, exactly as they were packed';

CREATE VIEW fleet.event_log_all WITH (security_invoker = true) AS
	SELECT e.tenant_id, e.event_id, e.logged_at, e.txid, e.class, e.kind, e.schema_version, e.original_version,
	       e.source, e.idem_key, e.occurred_at, e.payload
	  FROM fleet.event_log e
	UNION ALL
	SELECT s.tenant_id, d.event_id, d.logged_at, d.txid, d.class, d.kind, d.schema_version, d.original_version,
	       d.source, d.idem_key, d.occurred_at, d.payload
	  FROM fleet.cold_event_segment s CROSS JOIN LATERAL fleet.cold_event_decode(s.data) d;
COMMENT ON VIEW fleet.event_log_all IS
	'Every logged event, live and cold (decoded); for time ranges prefer fleet.event_log_range(), which decodes only the segments in range';

CREATE FUNCTION fleet.event_log_range(p_lo timestamptz, p_hi timestamptz, p_class text DEFAULT NULL)
RETURNS SETOF fleet.event_log_all
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.tenant_id, e.event_id, e.logged_at, e.txid, e.class, e.kind, e.schema_version, e.original_version,
	       e.source, e.idem_key, e.occurred_at, e.payload
	  FROM fleet.event_log e
	 WHERE e.logged_at OPERATOR(pg_catalog.>=) p_lo AND e.logged_at OPERATOR(pg_catalog.<) p_hi
	   AND (p_class IS NULL OR e.class OPERATOR(pg_catalog.=) p_class)
	UNION ALL
	SELECT s.tenant_id, d.event_id, d.logged_at, d.txid, d.class, d.kind, d.schema_version, d.original_version,
	       d.source, d.idem_key, d.occurred_at, d.payload
	  FROM fleet.cold_event_segment s CROSS JOIN LATERAL fleet.cold_event_decode(s.data) d
	 WHERE s.lo OPERATOR(pg_catalog.<) p_hi AND s.hi OPERATOR(pg_catalog.>=) p_lo
	   AND d.logged_at OPERATOR(pg_catalog.>=) p_lo AND d.logged_at OPERATOR(pg_catalog.<) p_hi
	   AND (p_class IS NULL OR d.class OPERATOR(pg_catalog.=) p_class)
$$;
COMMENT ON FUNCTION fleet.event_log_range(timestamptz, timestamptz, text) IS
	'Events with lo <= logged_at < hi (optionally one class) from the live log and the cold event segments in range, under the caller''s tenant context';

CREATE FUNCTION fleet.event_cold_detach(p_lo timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_part regclass := fleet.tier_partition('fleet.event_log', p_lo);
	v_hi timestamptz := fleet.tier_partition_hi('fleet.event_log', p_lo);
	v_busy boolean;
BEGIN
	-- the pipeline reads the live log: only a fully consumed partition leaves
	-- it (a missing partition is refused by fleet.tier_cold_detach)
	IF v_part IS NOT NULL THEN
		EXECUTE pg_catalog.format(
			'SELECT EXISTS (SELECT 1 FROM %s e JOIN fleet.consumer_cursor c ON c.class OPERATOR(pg_catalog.=) e.class'
			'                WHERE NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.lo))', v_part) INTO v_busy;
		v_busy := v_busy
			OR EXISTS (SELECT 1 FROM fleet.event_retry r
			            WHERE r.logged_at OPERATOR(pg_catalog.>=) p_lo AND r.logged_at OPERATOR(pg_catalog.<) v_hi)
			OR EXISTS (SELECT 1 FROM fleet.dead_letter d
			            WHERE d.logged_at OPERATOR(pg_catalog.>=) p_lo AND d.logged_at OPERATOR(pg_catalog.<) v_hi);
		IF v_busy THEN
			RAISE EXCEPTION 'partition of fleet.event_log starting % is not fully consumed', fleet.utc_text(p_lo)
				USING ERRCODE = 'object_in_use',
				      DETAIL = 'A class has not consumed all its events, or a retry or dead letter refers to them.',
				      HINT = 'It is packed once the pipeline has caught up.';
		END IF;
	END IF;
	RETURN fleet.tier_cold_detach('fleet.event_log', p_lo);
END
$$;
COMMENT ON FUNCTION fleet.event_cold_detach(timestamptz) IS
	'Step 1 of the event log''s warm -> cold: once every class has consumed it, detach the partition starting at lo (short lock) and keep it as the work table <partition>_c';

CREATE FUNCTION fleet.event_cold_pack(p_lo timestamptz) RETURNS TABLE (segments bigint, events bigint, bytes bigint)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.segments, p.nrows, p.bytes FROM fleet.tier_cold_pack('fleet.event_log', p_lo) p
$$;
COMMENT ON FUNCTION fleet.event_cold_pack(timestamptz) IS
	'Step 2 of the event log''s warm -> cold: encode the detached partition into cold event segments (one per tenant and UTC day), decode them and compare every row with the source (count and hash), then drop the source; ledgered';

CREATE PROCEDURE fleet.event_cold_restore(p_lo timestamptz)
LANGUAGE plpgsql
AS $$
BEGIN
	CALL fleet.tier_cold_restore('fleet.event_log', p_lo);
END
$$;
COMMENT ON PROCEDURE fleet.event_cold_restore(timestamptz) IS
	'Bring a cold partition of fleet.event_log (by its start) back as a live partition with its own bounds: create it, fill it from the decoded segments, check every event arrived, remove the segments; ledgered';
