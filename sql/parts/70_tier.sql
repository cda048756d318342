-- 70_tier: tier policies, the quarantine, the lifecycle ledger and legal holds.
--
-- A time-partitioned table (fleet.position, or a user's table with a
-- tenant_id and a timestamptz partition key) is put under a tier policy in
-- fleet.tier_policy: its partition interval (hours dividing 24, whole days
-- or a month, 30_partitions.sql; partitions created `ahead` by
-- fleet.run_maintenance()); partitions are hot (default tablespace, btree) for
-- hot_for, then warm (warm tablespace, re-sorted per vehicle over time, BRIN
-- on time, frozen) until cold_after, then packed into the cold format
-- (fleet.cold_segment for positions, fleet.cold_event_segment for the event
-- log; extension/coldcodec.c), and purged once the data's
-- newest timestamp is older than retention -- unless a legal hold covers it.
-- Every lifecycle step is written to fleet.tier_ledger, an append-only,
-- hash-chained log (fleet.verify_ledger()).  Held data cannot be removed by a
-- non-superuser through DROP, DROP SCHEMA ... CASCADE, TRUNCATE, DETACH
-- (extension/tier_guard.c), DELETE or UPDATE (row triggers), nor by
-- shortening a policy.

-- ---------------------------------------------------------------- ledger

CREATE TABLE fleet.tier_ledger (
	seq       bigint PRIMARY KEY,
	at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	action    text NOT NULL CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY[
	              'create', 'move', 'pack', 'restore', 'purge', 'hold', 'release', 'policy', 'quarantine'])),
	relation  text NOT NULL,
	detail    jsonb NOT NULL DEFAULT '{}',
	actor     text NOT NULL DEFAULT pg_catalog."current_user"(),
	prev_hash bytea NOT NULL,
	hash      bytea NOT NULL
);
COMMENT ON TABLE fleet.tier_ledger IS
	'Append-only lifecycle ledger of tiered tables: every create, move, pack, restore, purge, hold, release and policy change; each row''s hash covers its content and the previous row''s hash (fleet.verify_ledger())';

CREATE FUNCTION fleet.ledger_row_hash(p_seq bigint, p_at timestamptz, p_action text, p_relation text,
                                      p_detail jsonb, p_actor text, p_prev bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.sha256(p_prev OPERATOR(pg_catalog.||) pg_catalog.convert_to(pg_catalog.concat_ws(E'\x1f',
		p_seq::text, pg_catalog.to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
		p_action, p_relation, p_detail::text, p_actor), 'UTF8'))
$$;
COMMENT ON FUNCTION fleet.ledger_row_hash(bigint, timestamptz, text, text, jsonb, text, bytea) IS
	'SHA-256 of a ledger row: previous hash || the row''s fields joined by unit separators';

-- SECURITY DEFINER: nobody may write the ledger directly; this function
-- is the only writer, so every entry is chained.
CREATE FUNCTION fleet.ledger_append(p_action text, p_relation text, p_detail jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_prev bytea;
	v_seq bigint;
	v_at timestamptz := pg_catalog.clock_timestamp();
	v_actor text := pg_catalog."session_user"();
BEGIN
	-- one writer at a time keeps the chain linear
	PERFORM pg_catalog.pg_advisory_xact_lock(1718379877, 70);
	SELECT l.seq, l.hash INTO v_seq, v_prev FROM fleet.tier_ledger l ORDER BY l.seq DESC LIMIT 1;
	v_seq := COALESCE(v_seq, 0) OPERATOR(pg_catalog.+) 1;
	v_prev := COALESCE(v_prev, '\x'::bytea);
	INSERT INTO fleet.tier_ledger (seq, at, action, relation, detail, actor, prev_hash, hash)
	VALUES (v_seq, v_at, p_action, p_relation, COALESCE(p_detail, '{}'), v_actor, v_prev,
	        fleet.ledger_row_hash(v_seq, v_at, p_action, p_relation, COALESCE(p_detail, '{}'), v_actor, v_prev));
	RETURN v_seq;
END
$$;
COMMENT ON FUNCTION fleet.ledger_append(text, text, jsonb) IS
	'Append one entry to the lifecycle ledger, chained to the previous entry''s hash; serialised by an advisory lock';

CREATE FUNCTION fleet.verify_ledger()
RETURNS TABLE (ok boolean, entries bigint, first_bad bigint, problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	v_prev bytea := '\x'::bytea;
	v_expect bigint := 1;
BEGIN
	entries := 0;
	FOR r IN SELECT * FROM fleet.tier_ledger ORDER BY seq LOOP
		IF r.seq OPERATOR(pg_catalog.<>) v_expect THEN
			ok := false; first_bad := r.seq; problem := pg_catalog.format('gap: expected entry %s', v_expect);
			RETURN NEXT; RETURN;
		END IF;
		IF r.prev_hash OPERATOR(pg_catalog.<>) v_prev THEN
			ok := false; first_bad := r.seq; problem := 'prev_hash does not match the previous entry';
			RETURN NEXT; RETURN;
		END IF;
		IF r.hash OPERATOR(pg_catalog.<>) fleet.ledger_row_hash(r.seq, r.at, r.action, r.relation, r.detail, r.actor, r.prev_hash) THEN
			ok := false; first_bad := r.seq; problem := 'hash does not match the entry''s content';
			RETURN NEXT; RETURN;
		END IF;
		v_prev := r.hash;
		v_expect := v_expect OPERATOR(pg_catalog.+) 1;
		entries := entries OPERATOR(pg_catalog.+) 1;
	END LOOP;
	ok := true; first_bad := NULL; problem := NULL;
	RETURN NEXT;
END
$$;
COMMENT ON FUNCTION fleet.verify_ledger() IS
	'Walk the lifecycle ledger and check the hash chain: ok, or the first entry whose sequence, link or content does not verify';

CREATE FUNCTION fleet.ledger_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION 'fleet.tier_ledger is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
COMMENT ON FUNCTION fleet.ledger_append_only() IS 'Trigger function: refuse UPDATE, DELETE and TRUNCATE of the lifecycle ledger';
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON fleet.tier_ledger
	FOR EACH ROW EXECUTE FUNCTION fleet.ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON fleet.tier_ledger
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.ledger_append_only();
COMMENT ON TRIGGER ledger_append_only ON fleet.tier_ledger IS 'The ledger is append-only';
COMMENT ON TRIGGER ledger_no_truncate ON fleet.tier_ledger IS 'The ledger is append-only';

-- ---------------------------------------------------------------- policy

CREATE TABLE fleet.tier_policy (
	relation           regclass PRIMARY KEY,
	time_column        name NOT NULL,
	partition_interval interval NOT NULL DEFAULT '1 day',
	ahead              interval CHECK (ahead OPERATOR(pg_catalog.>) '0'::interval),
	hot_for            interval NOT NULL DEFAULT '2 days'
	                   CHECK (hot_for OPERATOR(pg_catalog.>=) '0'::interval),
	cold_after         interval CHECK (cold_after OPERATOR(pg_catalog.>) '0'::interval),
	retention          interval CHECK (retention OPERATOR(pg_catalog.>) '0'::interval),
	warm_tablespace    name,
	sort_columns       text[] NOT NULL DEFAULT ARRAY['tenant_id'],
	CHECK (cold_after IS NULL OR cold_after OPERATOR(pg_catalog.>=) hot_for),
	CHECK (retention IS NULL OR cold_after IS NULL OR retention OPERATOR(pg_catalog.>=) cold_after)
);
COMMENT ON TABLE fleet.tier_policy IS
	'Tier policy per time-partitioned table: partitions of partition_interval (whole hours dividing 24, 1 to 31 days, or 1 month; a change applies to partitions created afterwards), created by fleet.run_maintenance() up to ahead into the future (NULL: fleet.partitioned_table''s days_ahead, or none); hot for hot_for after a partition''s range ends, then warm (warm_tablespace, NULL: pg_default; re-sorted by sort_columns then time, BRIN, frozen); packed cold after cold_after (NULL: never; fleet.position and fleet.event_log only); purged once the newest row is older than retention (NULL: kept) unless a legal hold covers it';

CREATE TABLE fleet.tier_state (
	relation  regclass NOT NULL,
	lo        timestamptz NOT NULL,
	hi        timestamptz NOT NULL CHECK (hi OPERATOR(pg_catalog.>) lo),
	tier      text NOT NULL CHECK (tier OPERATOR(pg_catalog.=) ANY (ARRAY['warming', 'copied', 'warm', 'cooling', 'cold', 'restoring'])),
	work      text,
	lock_ms   double precision,
	progress  bigint,
	since     timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (relation, lo)
);
COMMENT ON TABLE fleet.tier_state IS
	'Tier of each partition (by its range [lo, hi), UTC) that is not plainly hot, and the in-progress step of fleet.tier_maintenance() (warming, copied, cooling, restoring) with the name of its work table, so a killed step is finished by the next run; lock_ms: how long the warm swap held the parent''s lock; progress: rows the warm copy wrote';

-- ---------------------------------------------------------------- quarantine

CREATE TABLE fleet.position_quarantine (
	tenant_id      bigint NOT NULL,
	quarantine_id  bigint GENERATED ALWAYS AS IDENTITY,
	device_id      bigint NOT NULL,
	fix_time       timestamptz NOT NULL,
	vehicle_id     bigint,
	lat            double precision NOT NULL,
	lon            double precision NOT NULL,
	speed          real,
	heading        real,
	altitude       real,
	accuracy       real,
	seq            bigint,
	attrs          jsonb,
	reason         text NOT NULL,
	quarantined_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, quarantine_id)
);
COMMENT ON TABLE fleet.position_quarantine IS
	'Fixes fleet.ingest_positions() could not store because no partition exists for their day (reason no_partition): kept here instead of failing the batch; fleet.quarantine_replay() moves them in once a partition exists';
SELECT fleet.enable_tenant_rls('fleet.position_quarantine');
CREATE INDEX position_quarantine_time ON fleet.position_quarantine (fix_time);

-- SECURITY DEFINER: the fixes go into fleet.position, which no fleet role
-- writes directly.  With a tenant context only that tenant's quarantined
-- fixes are moved and counted; without one, every tenant's, for the DBA only.
CREATE FUNCTION fleet.quarantine_replay() RETURNS TABLE (replayed bigint, remaining bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant bigint := fleet.current_tenant();
BEGIN
	IF v_tenant IS NULL AND NOT fleet.is_dba() THEN
		RAISE EXCEPTION 'fleet.quarantine_replay() needs a tenant context' USING
			ERRCODE = 'insufficient_privilege',
			DETAIL = 'Without a tenant context it moves every tenant''s fixes, which only the DBA may do.',
			HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	WITH parts AS (
		SELECT t.lo, t.hi FROM fleet.time_partitions('fleet.position') t
	), moved AS (
		DELETE FROM fleet.position_quarantine q
		 WHERE (v_tenant IS NULL OR q.tenant_id OPERATOR(pg_catalog.=) v_tenant)
		   AND EXISTS (SELECT 1 FROM parts WHERE q.fix_time OPERATOR(pg_catalog.>=) parts.lo
		                                     AND q.fix_time OPERATOR(pg_catalog.<) parts.hi)
		RETURNING q.*
	), ins AS (
		INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading,
		                            altitude, accuracy, seq, attrs)
		SELECT DISTINCT ON (m.tenant_id, m.device_id, m.fix_time)
		       m.tenant_id, m.device_id, m.fix_time, m.vehicle_id, m.lat, m.lon, m.speed, m.heading,
		       m.altitude, m.accuracy, m.seq, m.attrs
		  FROM moved m ORDER BY m.tenant_id, m.device_id, m.fix_time, m.quarantine_id
		ON CONFLICT DO NOTHING
		RETURNING 1
	)
	SELECT (SELECT pg_catalog.count(*) FROM moved) INTO replayed;
	SELECT pg_catalog.count(*) INTO remaining FROM fleet.position_quarantine q
	 WHERE v_tenant IS NULL OR q.tenant_id OPERATOR(pg_catalog.=) v_tenant;
	IF replayed OPERATOR(pg_catalog.>) 0 THEN
		PERFORM fleet.ledger_append('quarantine', 'fleet.position',
			pg_catalog.jsonb_build_object('replayed', replayed, 'remaining', remaining, 'tenant_id', v_tenant));
	END IF;
	RETURN NEXT;
END
$$;
COMMENT ON FUNCTION fleet.quarantine_replay() IS
	'Move quarantined fixes whose time now has a partition into fleet.position (a fix already stored is dropped from the quarantine as a duplicate); returns how many moved and how many remain. With a tenant context: that tenant''s fixes (fleet_admin); without: every tenant''s (the DBA only, else 42501)';

-- ---------------------------------------------------------------- legal hold

CREATE TABLE fleet.legal_hold (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	hold_id     bigint GENERATED ALWAYS AS IDENTITY,
	scope       regclass,
	vehicle_id  bigint,
	lo          timestamptz NOT NULL,
	hi          timestamptz NOT NULL,
	reason      text NOT NULL CHECK (pg_catalog.length(reason) OPERATOR(pg_catalog.>) 0),
	placed_by   text NOT NULL,
	placed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
	released_by text,
	released_at timestamptz,
	CHECK (lo OPERATOR(pg_catalog.<) hi),
	PRIMARY KEY (tenant_id, hold_id)
);
COMMENT ON TABLE fleet.legal_hold IS
	'Legal holds: a tenant''s data (optionally one vehicle, optionally one tiered table: scope) in [lo, hi) that no policy, maintenance or non-superuser may remove while the hold is not released; placed and released only through fleet.place_hold() / fleet.release_hold()';
SELECT fleet.enable_tenant_rls('fleet.legal_hold');
CREATE POLICY legal_hold_admin ON fleet.legal_hold FOR SELECT USING (fleet.is_admin());
COMMENT ON POLICY legal_hold_admin ON fleet.legal_hold IS 'fleet_admin members see every tenant''s holds';

CREATE FUNCTION fleet.legal_hold_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE'
	   AND OLD.released_at IS NULL AND NEW.released_at IS NOT NULL
	   AND (OLD.tenant_id, OLD.hold_id, OLD.scope, OLD.vehicle_id, OLD.lo, OLD.hi, OLD.reason, OLD.placed_by, OLD.placed_at)
	       IS NOT DISTINCT FROM
	       (NEW.tenant_id, NEW.hold_id, NEW.scope, NEW.vehicle_id, NEW.lo, NEW.hi, NEW.reason, NEW.placed_by, NEW.placed_at) THEN
		RETURN NEW;		-- a release, the only change a hold takes
	END IF;
	RAISE EXCEPTION 'legal holds are only placed and released, never changed or deleted (% refused)', TG_OP
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'Use fleet.release_hold().';
END
$$;
COMMENT ON FUNCTION fleet.legal_hold_guard() IS 'Trigger function: a legal hold row only changes by being released once';
CREATE TRIGGER legal_hold_guard BEFORE UPDATE OR DELETE ON fleet.legal_hold
	FOR EACH ROW EXECUTE FUNCTION fleet.legal_hold_guard();
CREATE TRIGGER legal_hold_no_truncate BEFORE TRUNCATE ON fleet.legal_hold
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.ledger_append_only();
COMMENT ON TRIGGER legal_hold_guard ON fleet.legal_hold IS 'Holds are released, never edited or deleted';
COMMENT ON TRIGGER legal_hold_no_truncate ON fleet.legal_hold IS 'Holds are never truncated';

-- SECURITY DEFINER: the hold table is written only through these two
-- functions (nobody holds INSERT/UPDATE on it), so every hold and release is
-- ledgered; the caller must be a fleet_admin member.
CREATE FUNCTION fleet.place_hold(p_tenant bigint, p_lo timestamptz, p_hi timestamptz, p_reason text,
                                 p_vehicle bigint DEFAULT NULL, p_scope regclass DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id bigint;
BEGIN
	IF NOT fleet.is_admin() THEN
		RAISE EXCEPTION 'placing a legal hold needs fleet_admin' USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF p_lo IS NULL OR p_hi IS NULL OR p_hi OPERATOR(pg_catalog.<=) p_lo THEN
		RAISE EXCEPTION 'a legal hold needs a time range lo < hi' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p_reason IS NULL OR pg_catalog.btrim(p_reason) OPERATOR(pg_catalog.=) '' THEN
		RAISE EXCEPTION 'a legal hold needs a reason' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF p_scope IS NOT NULL AND fleet.tier_time_column(p_scope) IS NULL THEN
		RAISE EXCEPTION '% is not a time-partitioned table fleet manages', p_scope USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fleet.tenant t WHERE t.tenant_id OPERATOR(pg_catalog.=) p_tenant) THEN
		RAISE EXCEPTION 'tenant % does not exist', p_tenant USING ERRCODE = 'foreign_key_violation';
	END IF;
	INSERT INTO fleet.legal_hold (tenant_id, scope, vehicle_id, lo, hi, reason, placed_by)
	VALUES (p_tenant, p_scope, p_vehicle, p_lo, p_hi, p_reason, pg_catalog."session_user"())
	RETURNING legal_hold.hold_id INTO v_id;
	PERFORM fleet.ledger_append('hold', COALESCE(p_scope::text, '*'),
		pg_catalog.jsonb_build_object('hold_id', v_id, 'tenant_id', p_tenant, 'vehicle_id', p_vehicle,
		                              'lo', p_lo, 'hi', p_hi, 'reason', p_reason));
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION fleet.place_hold(bigint, timestamptz, timestamptz, text, bigint, regclass) IS
	'Place a legal hold on a tenant''s data in [lo, hi), optionally one vehicle and one tiered table; ledgered; returns the hold id (fleet_admin)';

CREATE FUNCTION fleet.release_hold(p_tenant bigint, p_hold bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT fleet.is_admin() THEN
		RAISE EXCEPTION 'releasing a legal hold needs fleet_admin' USING ERRCODE = 'insufficient_privilege';
	END IF;
	UPDATE fleet.legal_hold h SET released_at = pg_catalog.now(), released_by = pg_catalog."session_user"()
	 WHERE h.tenant_id OPERATOR(pg_catalog.=) p_tenant AND h.hold_id OPERATOR(pg_catalog.=) p_hold
	   AND h.released_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no active legal hold % for tenant %', p_hold, p_tenant USING ERRCODE = 'no_data_found';
	END IF;
	PERFORM fleet.ledger_append('release', '*',
		pg_catalog.jsonb_build_object('hold_id', p_hold, 'tenant_id', p_tenant));
END
$$;
COMMENT ON FUNCTION fleet.release_hold(bigint, bigint) IS 'Release an active legal hold; ledgered (fleet_admin)';

-- ---------------------------------------------------------------- cold segments

CREATE TABLE fleet.cold_segment (
	tenant_id  bigint NOT NULL,
	segment_id bigint GENERATED ALWAYS AS IDENTITY,
	part_lo    timestamptz NOT NULL,
	day        date NOT NULL,
	device_id  bigint NOT NULL,
	vehicle_id bigint,
	lo         timestamptz NOT NULL,
	hi         timestamptz NOT NULL,
	nrows      integer NOT NULL CHECK (nrows OPERATOR(pg_catalog.>) 0),
	data       bytea NOT NULL,
	packed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, segment_id)
);
COMMENT ON TABLE fleet.cold_segment IS
	'Cold tier of fleet.position: per packed partition (part_lo: its start), one segment per (tenant, device, vehicle, UTC day) -- a partition longer than a day is split per day, so a short query decodes at most a day per device -- holding the fixes lo..hi in fleet''s cold format (delta-encoded columns, zlib; extension/coldcodec.c); read through fleet.position_range() and fleet.position_all, restored by fleet.cold_restore()';
ALTER TABLE fleet.cold_segment ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX cold_segment_time ON fleet.cold_segment (lo, hi);
CREATE INDEX cold_segment_part ON fleet.cold_segment (part_lo);
SELECT fleet.enable_tenant_rls('fleet.cold_segment');

CREATE TABLE fleet.cold_event_segment (
	tenant_id  bigint NOT NULL,
	segment_id bigint GENERATED ALWAYS AS IDENTITY,
	part_lo    timestamptz NOT NULL,
	day        date NOT NULL,
	lo         timestamptz NOT NULL,
	hi         timestamptz NOT NULL,
	nrows      integer NOT NULL CHECK (nrows OPERATOR(pg_catalog.>) 0),
	data       bytea NOT NULL,
	packed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, segment_id)
);
COMMENT ON TABLE fleet.cold_event_segment IS
	'Cold tier of fleet.event_log: per packed partition (part_lo: its start), one segment per (tenant, UTC day) holding the events logged lo..hi in fleet''s cold event format (delta-encoded ids, times and transaction ids, text and jsonb columns, zlib; extension/coldcodec.c); read through fleet.event_log_range() and fleet.event_log_all, restored by fleet.event_cold_restore()';
ALTER TABLE fleet.cold_event_segment ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX cold_event_segment_time ON fleet.cold_event_segment (lo, hi);
CREATE INDEX cold_event_segment_part ON fleet.cold_event_segment (part_lo);
SELECT fleet.enable_tenant_rls('fleet.cold_event_segment');

-- How a tiered table's cold tier is laid out: the one description the cold
-- steps (fleet.tier_cold_detach, tier_cold_pack, tier_cold_restore,
-- tier_purge_cold) and fleet.tier_status_rows() read instead of repeating
-- themselves per table.
CREATE FUNCTION fleet.cold_layout(p_rel regclass)
RETURNS TABLE (relname text, segments regclass, seg_cols text[], enc_cols text[], order_cols text[], encode text,
               columns text, decoded text, noun text, check_table text, restored_count text, restore_error text)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT l.relname, l.segments, l.seg_cols, l.enc_cols, l.order_cols, l.encode,
	       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
	          FROM pg_catalog.pg_attribute a
	         WHERE a.attrelid OPERATOR(pg_catalog.=) l.rel AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped),
	       pg_catalog.format('SELECT %s FROM %s s CROSS JOIN LATERAL %s(s.data) d',
	         (SELECT pg_catalog.string_agg(CASE WHEN a.attname OPERATOR(pg_catalog.=) 'tenant_id'
	                                             OR a.attname OPERATOR(pg_catalog.=) ANY (l.seg_cols) THEN 's.' ELSE 'd.' END
	                                        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
	            FROM pg_catalog.pg_attribute a
	           WHERE a.attrelid OPERATOR(pg_catalog.=) l.rel AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped),
	         l.segments, l.decode),
	       l.noun, l.check_table, l.restored_count, l.restore_error
	  FROM (VALUES
		('fleet.position'::pg_catalog.regclass, 'fleet.position', 'fleet.cold_segment'::pg_catalog.regclass,
		 ARRAY['device_id', 'vehicle_id'],
		 ARRAY['fix_time', 'lat', 'lon', 'speed', 'heading', 'altitude', 'accuracy', 'seq', 'attrs', 'received_at'],
		 ARRAY['fix_time'], 'fleet.cold_encode', 'fleet.cold_decode', 'fixes', 'fleet_cold_check',
		 -- restored fixes are counted against the segments' devices and times
		 'SELECT pg_catalog.count(*) FROM %s p WHERE EXISTS (SELECT 1 FROM fleet.cold_segment s'
		 ' WHERE s.part_lo OPERATOR(pg_catalog.=) $1 AND s.tenant_id OPERATOR(pg_catalog.=) p.tenant_id'
		 ' AND s.device_id OPERATOR(pg_catalog.=) p.device_id AND p.fix_time BETWEEN s.lo AND s.hi)',
		 'restore from %s found %s of %s cold fixes in the partition'),
		('fleet.event_log'::pg_catalog.regclass, 'fleet.event_log', 'fleet.cold_event_segment'::pg_catalog.regclass,
		 ARRAY[]::text[],
		 ARRAY['event_id', 'logged_at', 'txid', 'class', 'kind', 'schema_version', 'original_version', 'source',
		       'idem_key', 'occurred_at', 'payload'],
		 ARRAY['logged_at', 'event_id'], 'fleet.cold_event_encode', 'fleet.cold_event_decode', 'events',
		 'fleet_cold_event_check',
		 -- restored events: every row of the new partition counts
		 'SELECT pg_catalog.count(*) FROM %s',
		 'restore of the event log from %s found %s of %s cold events in the partition')
	  ) l(rel, relname, segments, seg_cols, enc_cols, order_cols, encode, decode, noun, check_table, restored_count, restore_error)
	 WHERE l.rel OPERATOR(pg_catalog.=) p_rel
$$;
COMMENT ON FUNCTION fleet.cold_layout(regclass) IS
	'The cold tier of fleet.position or fleet.event_log (no row for other tables): its name as messages and ledgers show it, its segment table, the columns a segment is keyed by (besides tenant and UTC day) and those it encodes, the encode order and function, the table''s columns and the SELECT of the decoded rows in that order (add WHERE on s.part_lo), what a row is called in ledgers, the temporary table of the pack''s read-back check, the statement counting restored rows (format: %s the partition, $1 its start) and the restore''s shortfall message (format: start, found, expected)';

CREATE FUNCTION fleet.tier_time_column(rel regclass) RETURNS name
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT a.attname FROM pg_catalog.pg_partitioned_table pt
	  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) pt.partrelid
	                                AND a.attnum OPERATOR(pg_catalog.=) pt.partattrs[0]
	 WHERE pt.partrelid OPERATOR(pg_catalog.=) rel
	   AND (EXISTS (SELECT 1 FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) rel)
	        OR EXISTS (SELECT 1 FROM fleet.partitioned_table t WHERE t.relation OPERATOR(pg_catalog.=) rel))
$$;
COMMENT ON FUNCTION fleet.tier_time_column(regclass) IS
	'The time column (partition key) of a table fleet partitions by time (fleet.partitioned_table or fleet.tier_policy); NULL for any other relation';

-- Which tiered table (root of the partition tree) a relation belongs to.
CREATE FUNCTION fleet.tier_root(rel regclass) RETURNS regclass
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN rel OPERATOR(pg_catalog.=) 'fleet.cold_segment'::pg_catalog.regclass
	            THEN 'fleet.position'::pg_catalog.regclass
	            WHEN rel OPERATOR(pg_catalog.=) 'fleet.cold_event_segment'::pg_catalog.regclass
	            THEN 'fleet.event_log'::pg_catalog.regclass
	            ELSE pg_catalog.pg_partition_root(rel) END
$$;
COMMENT ON FUNCTION fleet.tier_root(regclass) IS 'The tiered table a relation holds data of: the root of its partition tree (cold segments: fleet.position; cold event segments: fleet.event_log)';

-- Not SECURITY DEFINER: the caller sees the holds fleet.legal_hold's
-- policies show it -- its tenant context's, or every tenant's for
-- fleet_admin members and superusers (maintenance runs as the owner) -- so
-- a tenant cannot probe another tenant's holds.  Asking about another
-- tenant than the context's is refused outright.
CREATE FUNCTION fleet.row_held(p_root regclass, p_tenant bigint, p_vehicle bigint, p_lo timestamptz, p_hi timestamptz)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF p_tenant IS NOT NULL AND p_tenant IS DISTINCT FROM fleet.current_tenant()
	   AND NOT fleet.is_admin() AND NOT fleet.is_dba() THEN
		RAISE EXCEPTION 'legal holds of tenant % are not visible to this role', p_tenant
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'fleet.row_held() answers for the tenant context only (fleet_admin and the DBA: any tenant).';
	END IF;
	RETURN EXISTS (
		SELECT 1 FROM fleet.legal_hold h
		 WHERE h.released_at IS NULL
		   AND (h.scope IS NULL OR h.scope OPERATOR(pg_catalog.=) p_root)
		   AND (p_tenant IS NULL OR h.tenant_id OPERATOR(pg_catalog.=) p_tenant)
		   AND (h.vehicle_id IS NULL OR p_vehicle IS NULL OR h.vehicle_id OPERATOR(pg_catalog.=) p_vehicle)
		   AND h.lo OPERATOR(pg_catalog.<=) p_hi AND h.hi OPERATOR(pg_catalog.>) p_lo);
END
$$;
COMMENT ON FUNCTION fleet.row_held(regclass, bigint, bigint, timestamptz, timestamptz) IS
	'Does an active legal hold cover data of this tiered table, tenant (NULL: any the caller may see), vehicle (NULL: any) with times in [lo, hi]? Answers for the caller''s tenant context only; another tenant is 42501 (fleet_admin and the DBA: any tenant)';

-- How a hold is named in refusals.
CREATE FUNCTION fleet.hold_name(h fleet.legal_hold) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.format('legal hold %s of tenant %s%s (%s, placed by %s)', h.hold_id, h.tenant_id,
	                         CASE WHEN h.vehicle_id IS NULL THEN '' ELSE pg_catalog.format(', vehicle %s', h.vehicle_id) END,
	                         pg_catalog.quote_literal(h.reason), h.placed_by)
$$;
COMMENT ON FUNCTION fleet.hold_name(fleet.legal_hold) IS 'A legal hold as refusals name it: id, tenant, vehicle, reason, who placed it';

-- SECURITY DEFINER: reads every tenant's rows of the relation to see
-- whether a hold covers data that is actually there (forced RLS).
CREATE FUNCTION fleet.relation_hold(rel regclass) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_root regclass := fleet.tier_root(rel);
	v_col name;
	v_has_vehicle boolean;
	v_cold regclass;
	v_cold_vehicle boolean;
	h fleet.legal_hold;
	v_found boolean;
BEGIN
	IF v_root IS NULL THEN
		RETURN NULL;
	END IF;
	-- no active hold reaches the table: nothing to look up (maintenance asks
	-- this for every partition it drops)
	IF NOT EXISTS (SELECT 1 FROM fleet.legal_hold l
	                WHERE l.released_at IS NULL AND (l.scope IS NULL OR l.scope OPERATOR(pg_catalog.=) v_root)) THEN
		RETURN NULL;
	END IF;
	v_col := fleet.tier_time_column(v_root);
	-- the table's cold segments, if it has a cold tier; kept per vehicle or not
	SELECT l.segments, 'vehicle_id' OPERATOR(pg_catalog.=) ANY (l.seg_cols) INTO v_cold, v_cold_vehicle
	  FROM fleet.cold_layout(v_root) l;
	IF v_col IS NULL AND rel IS DISTINCT FROM v_cold THEN
		RETURN NULL;			-- not a tiered table: holds do not reach it
	END IF;
	v_has_vehicle := EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
	                          WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attname OPERATOR(pg_catalog.=) 'vehicle_id'
	                            AND NOT a.attisdropped);
	FOR h IN SELECT * FROM fleet.legal_hold l
	          WHERE l.released_at IS NULL AND (l.scope IS NULL OR l.scope OPERATOR(pg_catalog.=) v_root)
	          ORDER BY l.placed_at, l.tenant_id, l.hold_id LOOP
		-- cold data of the table (dropping fleet.position or fleet.event_log
		-- takes its cold data with it)
		IF rel OPERATOR(pg_catalog.=) v_cold OR (v_cold IS NOT NULL AND rel OPERATOR(pg_catalog.=) v_root) THEN
			EXECUTE pg_catalog.format(
				'SELECT EXISTS (SELECT 1 FROM %s s WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 %s'
				' AND $2 OPERATOR(pg_catalog.<=) s.hi AND $3 OPERATOR(pg_catalog.>) s.lo)',
				v_cold,
				CASE WHEN v_cold_vehicle
				     THEN 'AND ($4 IS NULL OR s.vehicle_id IS NULL OR s.vehicle_id OPERATOR(pg_catalog.=) $4)' ELSE '' END)
				INTO v_found USING h.tenant_id, h.lo, h.hi, h.vehicle_id;
			IF v_found THEN
				RETURN fleet.hold_name(h);
			END IF;
		END IF;
		IF rel IS DISTINCT FROM v_cold THEN
			EXECUTE pg_catalog.format(
				'SELECT EXISTS (SELECT 1 FROM %s x WHERE x.tenant_id OPERATOR(pg_catalog.=) $1'
				' AND x.%I OPERATOR(pg_catalog.>=) $2 AND x.%I OPERATOR(pg_catalog.<) $3 %s)',
				rel, v_col, v_col,
				CASE WHEN v_has_vehicle AND h.vehicle_id IS NOT NULL
				     THEN 'AND x.vehicle_id OPERATOR(pg_catalog.=) $4' ELSE '' END)
				INTO v_found USING h.tenant_id, h.lo, h.hi, h.vehicle_id;
			IF v_found THEN
				RETURN fleet.hold_name(h);
			END IF;
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION fleet.relation_hold(regclass) IS
	'The first active legal hold covering rows of the relation (a tiered table, one of its partitions, or the cold segments), named; NULL if none. Used by the DDL guard (extension/tier_guard.c)';

-- SECURITY DEFINER: as fleet.relation_hold, but answers only yes or no, so
-- the roles that may ask (maintenance, triggers) learn no other tenant's
-- hold reason.
CREATE FUNCTION fleet.relation_held(rel regclass) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT fleet.relation_hold(rel) IS NOT NULL
$$;
COMMENT ON FUNCTION fleet.relation_held(regclass) IS
	'Does the relation (a tiered table, one of its partitions, or the cold segments) hold rows an active legal hold covers?';

-- SECURITY DEFINER: as fleet.relation_hold, over every relation of a schema.
CREATE FUNCTION fleet.schema_hold(p_schema name) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.format('%s (in %s)', x.hold, x.rel)
	  FROM (SELECT c.oid::pg_catalog.regclass AS rel, fleet.relation_hold(c.oid) AS hold
	          FROM pg_catalog.pg_class c
	          JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
	         WHERE n.nspname OPERATOR(pg_catalog.=) p_schema
	           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])) x
	 WHERE x.hold IS NOT NULL
	 ORDER BY x.rel::text LIMIT 1
$$;
COMMENT ON FUNCTION fleet.schema_hold(name) IS 'The first active legal hold covering rows of a table of the schema, named with the table; NULL if none (DROP SCHEMA guard)';

-- SECURITY DEFINER: as fleet.relation_hold, over every table a role owns.
CREATE FUNCTION fleet.owned_hold(p_role oid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.format('%s (in %s)', x.hold, x.rel)
	  FROM (SELECT c.oid::pg_catalog.regclass AS rel, fleet.relation_hold(c.oid) AS hold
	          FROM pg_catalog.pg_class c
	         WHERE c.relowner OPERATOR(pg_catalog.=) p_role
	           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])) x
	 WHERE x.hold IS NOT NULL
	 ORDER BY x.rel::text LIMIT 1
$$;
COMMENT ON FUNCTION fleet.owned_hold(oid) IS 'The first active legal hold covering rows of a table the role owns, named with the table; NULL if none (DROP OWNED guard)';

-- The name of the legal-hold row trigger of a relation of a table fleet
-- partitions or tiers: the named trigger if it runs fleet.hold_row_guard()
-- (p_trigger NULL: any such trigger), else NULL.
CREATE FUNCTION fleet.hold_trigger(p_rel regclass, p_trigger name) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT g.tgname::text FROM pg_catalog.pg_trigger g
	 WHERE g.tgrelid OPERATOR(pg_catalog.=) p_rel
	   AND (p_trigger IS NULL OR g.tgname OPERATOR(pg_catalog.=) p_trigger)
	   AND g.tgfoid OPERATOR(pg_catalog.=) (SELECT p.oid FROM pg_catalog.pg_proc p
	                                          WHERE p.proname OPERATOR(pg_catalog.=) 'hold_row_guard'
	                                            AND p.pronamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace)
	   AND fleet.tier_time_column(fleet.tier_root(p_rel)) IS NOT NULL
	 ORDER BY g.tgname LIMIT 1
$$;
COMMENT ON FUNCTION fleet.hold_trigger(regclass, name) IS
	'The legal-hold row trigger (running fleet.hold_row_guard()) of a relation of a partitioned or tiered table, by name or any (NULL); NULL if none. Used by the DDL guard to refuse dropping or silencing it';

CREATE FUNCTION fleet.hold_row_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_root regclass := fleet.tier_root(TG_RELID);
	v_time timestamptz;
	v_vehicle bigint;
	v_row jsonb := pg_catalog.to_jsonb(OLD);
BEGIN
	IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog."current_user"()) THEN
		RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	v_vehicle := (v_row OPERATOR(pg_catalog.->>) 'vehicle_id')::bigint;
	IF TG_TABLE_NAME OPERATOR(pg_catalog.=) ANY (ARRAY['cold_segment', 'cold_event_segment']) THEN
		IF fleet.row_held(v_root, (v_row OPERATOR(pg_catalog.->>) 'tenant_id')::bigint, v_vehicle,
		                  (v_row OPERATOR(pg_catalog.->>) 'lo')::timestamptz, (v_row OPERATOR(pg_catalog.->>) 'hi')::timestamptz) THEN
			RAISE EXCEPTION 'legal hold: % of held cold data in % refused', TG_OP, TG_TABLE_NAME
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	ELSE
		v_time := (v_row OPERATOR(pg_catalog.->>) fleet.tier_time_column(v_root))::timestamptz;
		IF fleet.row_held(v_root, (v_row OPERATOR(pg_catalog.->>) 'tenant_id')::bigint, v_vehicle, v_time, v_time) THEN
			RAISE EXCEPTION 'legal hold: % of held data in % refused', TG_OP, TG_TABLE_NAME
				USING ERRCODE = 'insufficient_privilege',
				      DETAIL = pg_catalog.format('tenant %s, time %s', v_row OPERATOR(pg_catalog.->>) 'tenant_id', v_time);
		END IF;
	END IF;
	RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION fleet.hold_row_guard() IS
	'Row trigger of tiered tables and cold segments: a non-superuser cannot DELETE or UPDATE a row an active legal hold covers';

CREATE FUNCTION fleet.tier_policy_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_super boolean := (SELECT r.rolsuper FROM pg_catalog.pg_roles r
	                     WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog."current_user"());
	v_rel regclass := CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD.relation ELSE NEW.relation END;
	v_held boolean;
BEGIN
	v_held := EXISTS (SELECT 1 FROM fleet.legal_hold h WHERE h.released_at IS NULL
	                     AND (h.scope IS NULL OR h.scope OPERATOR(pg_catalog.=) v_rel))
	          OR fleet.row_held(v_rel, NULL, NULL, '-infinity', 'infinity');
	IF NOT v_super AND v_held AND (
	     TG_OP OPERATOR(pg_catalog.=) 'DELETE'
	     OR (TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.retention IS NOT NULL
	         AND (OLD.retention IS NULL OR NEW.retention OPERATOR(pg_catalog.<) OLD.retention))) THEN
		RAISE EXCEPTION 'legal hold: shortening or removing the tier policy of % refused while a hold is active', v_rel
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
		PERFORM fleet.check_partition_interval(NEW.partition_interval);
	END IF;
	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		IF fleet.tier_time_column(v_rel) IS NULL AND NOT EXISTS (
			SELECT 1 FROM pg_catalog.pg_partitioned_table pt WHERE pt.partrelid OPERATOR(pg_catalog.=) v_rel) THEN
			RAISE EXCEPTION '% is not a partitioned table', v_rel USING ERRCODE = 'wrong_object_type';
		END IF;
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) v_rel
		                  AND a.attname OPERATOR(pg_catalog.=) 'tenant_id' AND NOT a.attisdropped) THEN
			RAISE EXCEPTION '% has no tenant_id column: legal holds could not reach it', v_rel
				USING ERRCODE = 'undefined_column';
		END IF;
		-- a table put under a policy gets the legal-hold row trigger (fleet's own tables have it already)
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) v_rel
		                  AND g.tgname OPERATOR(pg_catalog.=) 'hold_row_guard') THEN
			EXECUTE pg_catalog.format('CREATE TRIGGER hold_row_guard BEFORE UPDATE OR DELETE ON %s'
			                          ' FOR EACH ROW EXECUTE FUNCTION fleet.hold_row_guard()', v_rel);
		END IF;
	END IF;
	PERFORM fleet.ledger_append('policy', v_rel::text,
		CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN pg_catalog.jsonb_build_object('op', 'delete')
		     ELSE pg_catalog.jsonb_build_object('op', pg_catalog.lower(TG_OP), 'partition_interval', NEW.partition_interval,
		          'ahead', NEW.ahead, 'hot_for', NEW.hot_for,
		          'cold_after', NEW.cold_after, 'retention', NEW.retention, 'warm_tablespace', NEW.warm_tablespace) END);
	RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION fleet.tier_policy_guard() IS
	'Trigger of fleet.tier_policy: ledger every change; refuse an unsupported partition interval (fleet.check_partition_interval); refuse a shortened retention or a removed policy while a legal hold is active (superusers excepted)';
CREATE TRIGGER tier_policy_guard BEFORE INSERT OR UPDATE OR DELETE ON fleet.tier_policy
	FOR EACH ROW EXECUTE FUNCTION fleet.tier_policy_guard();
COMMENT ON TRIGGER tier_policy_guard ON fleet.tier_policy IS 'Ledger policy changes; no shortened policy under a legal hold';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.tier_ledger', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.tier_ledger', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.verify_ledger()', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.verify_ledger()', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.ledger_row_hash(bigint,timestamptz,text,text,jsonb,text,bytea)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.ledger_row_hash(bigint,timestamptz,text,text,jsonb,text,bytea)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.tier_policy', 'SELECT, INSERT, UPDATE, DELETE'),
	('fleet_admin',   'FUNCTION', 'fleet.check_partition_interval(interval)', 'EXECUTE'),
	('fleet_analyst', 'TABLE', 'fleet.tier_policy', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.tier_state', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.tier_state', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.position_quarantine', 'SELECT, DELETE'),
	('fleet_app',     'TABLE', 'fleet.position_quarantine', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.position_quarantine', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.quarantine_replay()', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.legal_hold', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.legal_hold', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.legal_hold', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.place_hold(bigint,timestamptz,timestamptz,text,bigint,regclass)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.release_hold(bigint,bigint)', 'EXECUTE'),
	('fleet_admin',   'TABLE', 'fleet.cold_segment', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.cold_segment', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.cold_segment', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.cold_event_segment', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.cold_event_segment', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.cold_event_segment', 'SELECT');
