-- 30_partitions: range partitions for fleet's time-partitioned tables.
--
-- fleet.position (by fix time), fleet.event_log (by log time) and
-- fleet.event_key (by first-seen time) are RANGE partitioned by time, in UTC,
-- one partition per day unless a tier policy (fleet.tier_policy,
-- 70_tier.sql) sets another partition interval: a whole number of hours
-- dividing 24, a whole number of days (aligned on Mondays, so 7 days are ISO
-- weeks) or one month.  A changed interval applies to partitions created
-- from then on: existing partitions keep their bounds, and a new period that
-- overlaps them gets partitions for the uncovered parts only.  Partitions
-- are known by their bounds (fleet.time_partitions()), and named by them so
-- that no two ranges share a name (fleet.range_partition_name(): _pYYYYMM a
-- month, _pIYYYwIW an ISO week, _pYYYYMMDD a day, _pYYYYMMDD_HH an hour, a
-- length suffix for other spans).  They are created ahead of time by
-- fleet.run_maintenance() (scheduled with pg_cron) and expired by dropping
-- whole partitions, never by DELETE, so expiry leaves no dead tuples.  There
-- is no default partition: a row for a day that has no partition is refused
-- by the ingest functions with a reason instead of landing somewhere hidden.

CREATE TABLE fleet.partitioned_table (
	relation    regclass PRIMARY KEY,
	days_ahead  integer NOT NULL DEFAULT 7 CHECK (days_ahead OPERATOR(pg_catalog.>=) 1 AND days_ahead OPERATOR(pg_catalog.<=) 366),
	days_back   integer NOT NULL DEFAULT 2 CHECK (days_back OPERATOR(pg_catalog.>=) 0 AND days_back OPERATOR(pg_catalog.<=) 3660),
	retention   interval,
	description text NOT NULL
);
COMMENT ON TABLE fleet.partitioned_table IS
	'fleet''s daily-partitioned tables: how many days ahead and back fleet.run_maintenance() keeps partitions for, and how long data is kept (NULL: forever)';

-- A table's tier policy, as far as partitioning needs it: its partition
-- interval and how far ahead partitions are kept (NULL: no policy, or not
-- set).  plpgsql, reading fleet.tier_policy late: that table is created
-- later in the install script, after partitions are first made.
CREATE FUNCTION fleet.tier_partitioning(rel regclass, OUT partition_interval interval, OUT ahead interval)
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pg_catalog.to_regclass('fleet.tier_policy') IS NOT NULL THEN
		EXECUTE 'SELECT t.partition_interval, t.ahead FROM fleet.tier_policy t WHERE t.relation OPERATOR(pg_catalog.=) $1'
			INTO partition_interval, ahead USING rel;
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.tier_partitioning(regclass) IS
	'A table''s tier policy as partitioning reads it: partition_interval (NULL: none, so daily) and ahead, how far into the future fleet.run_maintenance() keeps partitions (NULL: none set)';

CREATE FUNCTION fleet.check_partition_interval(p interval) RETURNS interval
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- (OPERATOR() forms all bind alike, left to right: hence the parentheses)
	v_months numeric := (pg_catalog.date_part('year', p)::numeric OPERATOR(pg_catalog.*) 12)
	                    OPERATOR(pg_catalog.+) pg_catalog.date_part('month', p)::numeric;
	v_days numeric := pg_catalog.date_part('day', p)::numeric;
	v_secs numeric := (pg_catalog.date_part('hour', p)::numeric OPERATOR(pg_catalog.*) 3600)
	                  OPERATOR(pg_catalog.+) (pg_catalog.date_part('minute', p)::numeric OPERATOR(pg_catalog.*) 60)
	                  OPERATOR(pg_catalog.+) pg_catalog.date_part('second', p)::numeric;
BEGIN
	IF p IS NULL THEN
		RAISE EXCEPTION 'a partition interval is required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF (v_months OPERATOR(pg_catalog.=) 1 AND v_days OPERATOR(pg_catalog.=) 0 AND v_secs OPERATOR(pg_catalog.=) 0)
	   OR (v_months OPERATOR(pg_catalog.=) 0 AND v_secs OPERATOR(pg_catalog.=) 0
	       AND v_days OPERATOR(pg_catalog.>=) 1 AND v_days OPERATOR(pg_catalog.<=) 31)
	   OR (v_months OPERATOR(pg_catalog.=) 0 AND v_days OPERATOR(pg_catalog.=) 0 AND v_secs OPERATOR(pg_catalog.>) 0
	       AND (v_secs OPERATOR(pg_catalog.%) 3600) OPERATOR(pg_catalog.=) 0
	       AND (86400 OPERATOR(pg_catalog.%) v_secs) OPERATOR(pg_catalog.=) 0) THEN
		RETURN p;
	END IF;
	RAISE EXCEPTION 'partition interval "%" is not supported', p
		USING ERRCODE = 'invalid_parameter_value',
		      DETAIL = 'A partition interval is a whole number of hours dividing 24 (1, 2, 3, 4, 6, 8, 12 or 24 hours), a whole number of days from 1 to 31, or 1 month.',
		      HINT = 'Partitions start at whole hours, at midnight UTC every n days counted from Monday 1970-01-05 (7 days: ISO weeks), or on the first of the month.';
END
$$;
COMMENT ON FUNCTION fleet.check_partition_interval(interval) IS
	'The interval if fleet supports it as a partition interval (whole hours dividing 24, 1 to 31 whole days, 1 month); otherwise an error saying what is allowed';

-- The start (UTC) of the aligned period of the interval that contains ts.
CREATE FUNCTION fleet.partition_start(ts timestamptz, p interval) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN pg_catalog.date_part('month', p) OPERATOR(pg_catalog.<>) 0 OR pg_catalog.date_part('year', p) OPERATOR(pg_catalog.<>) 0
		THEN pg_catalog.date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
		WHEN pg_catalog.date_part('day', p) OPERATOR(pg_catalog.>) 0
		THEN ((ts AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.-)
		      ((((ts AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.-) '1970-01-05'::date)
		        OPERATOR(pg_catalog.%) pg_catalog.date_part('day', p)::integer
		        OPERATOR(pg_catalog.+) pg_catalog.date_part('day', p)::integer)
		       OPERATOR(pg_catalog.%) pg_catalog.date_part('day', p)::integer))::timestamp AT TIME ZONE 'UTC'
		ELSE pg_catalog.date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
		     OPERATOR(pg_catalog.-) pg_catalog.make_interval(hours => (pg_catalog.date_part('hour', ts AT TIME ZONE 'UTC')::integer
		                                                               OPERATOR(pg_catalog.%) pg_catalog.date_part('hour', p)::integer))
	END
$$;
COMMENT ON FUNCTION fleet.partition_start(timestamptz, interval) IS
	'Start (UTC) of the partition period of a supported interval that contains a time: the whole hour, midnight every n days counted from Monday 1970-01-05, or the first of the month';

-- Partitions are known by their bounds, read in UTC.  In C
-- (extension/tier.c): the bound is read from the catalog's node tree, not
-- deparsed to text and parsed back (maintenance asks once per table and run,
-- the tier steps once per step, the status view once per table).
CREATE FUNCTION fleet.time_partitions(parent regclass)
RETURNS TABLE (partition regclass, lo timestamptz, hi timestamptz)
LANGUAGE C STABLE STRICT ROWS 20
AS 'MODULE_PATHNAME', 'fleet_time_partitions';
COMMENT ON FUNCTION fleet.time_partitions(regclass) IS
	'The range partitions of a time-partitioned table with the time range [lo, hi) each one holds (UTC), from their bounds, ordered by lo (a default partition and MINVALUE or MAXVALUE bounds have no row)';

-- The name of the partition for [lo, hi) says both bounds, whatever the
-- start, so no two ranges share a name (UTC):
--   _pYYYYMM           a calendar month
--   _pIYYYwIW          an ISO week (Monday to Monday)
--   _pYYYYMMDD         a day
--   _pYYYYMMDD_Nd      N days from midnight (N <> 1; not an ISO week)
--   _pYYYYMMDD_HH      one hour starting at HH (also at 00)
--   _pYYYYMMDD_HH_Nh   N whole hours starting at HH (not from midnight for whole days)
--   _pYYYYMMDD_HHMISS_Ns  anything else: start to the second and length in seconds
-- plpgsql: its expressions are planned once per session, where a SQL
-- function (not inlinable, for its SET) is planned at every call.
CREATE FUNCTION fleet.range_partition_name(parent regclass, lo timestamptz, hi timestamptz) RETURNS text
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	l timestamp := lo AT TIME ZONE 'UTC';
	h timestamp := hi AT TIME ZONE 'UTC';
	s bigint := pg_catalog.ceil(pg_catalog.date_part('epoch', hi OPERATOR(pg_catalog.-) lo))::bigint;
BEGIN
	RETURN (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) parent)
	       OPERATOR(pg_catalog.||) '_p' OPERATOR(pg_catalog.||)
	       CASE WHEN pg_catalog.date_trunc('month', l) OPERATOR(pg_catalog.=) l
	             AND h OPERATOR(pg_catalog.=) (l OPERATOR(pg_catalog.+) '1 month'::interval)
	            THEN pg_catalog.to_char(l, 'YYYYMM')
	            WHEN pg_catalog.date_trunc('week', l) OPERATOR(pg_catalog.=) l
	             AND s OPERATOR(pg_catalog.=) 604800
	            THEN pg_catalog.to_char(l, 'IYYY"w"IW')
	            WHEN pg_catalog.date_trunc('day', l) OPERATOR(pg_catalog.=) l
	             AND s OPERATOR(pg_catalog.=) 86400
	            THEN pg_catalog.to_char(l, 'YYYYMMDD')
	            WHEN pg_catalog.date_trunc('day', l) OPERATOR(pg_catalog.=) l
	             AND s OPERATOR(pg_catalog.%) 86400 OPERATOR(pg_catalog.=) 0
	            THEN pg_catalog.to_char(l, 'YYYYMMDD') OPERATOR(pg_catalog.||) '_'
	                 OPERATOR(pg_catalog.||) (s OPERATOR(pg_catalog./) 86400)::text OPERATOR(pg_catalog.||) 'd'
	            WHEN pg_catalog.date_trunc('hour', l) OPERATOR(pg_catalog.=) l
	             AND s OPERATOR(pg_catalog.=) 3600
	            THEN pg_catalog.to_char(l, 'YYYYMMDD"_"HH24')
	            WHEN pg_catalog.date_trunc('hour', l) OPERATOR(pg_catalog.=) l
	             AND s OPERATOR(pg_catalog.%) 3600 OPERATOR(pg_catalog.=) 0
	            THEN pg_catalog.to_char(l, 'YYYYMMDD"_"HH24') OPERATOR(pg_catalog.||) '_'
	                 OPERATOR(pg_catalog.||) (s OPERATOR(pg_catalog./) 3600)::text OPERATOR(pg_catalog.||) 'h'
	            ELSE pg_catalog.to_char(l, 'YYYYMMDD"_"HH24MISS') OPERATOR(pg_catalog.||) '_'
	                 OPERATOR(pg_catalog.||) s::text OPERATOR(pg_catalog.||) 's'
	       END;
END
$$;
COMMENT ON FUNCTION fleet.range_partition_name(regclass, timestamptz, timestamptz) IS
	'Name of the partition of a fleet table for [lo, hi) (UTC), saying both bounds: <table>_pYYYYMM a calendar month, _pIYYYwIW an ISO week, _pYYYYMMDD a day, _pYYYYMMDD_Nd N days from midnight, _pYYYYMMDD_HH one hour (also at 00), _pYYYYMMDD_HH_Nh N hours, _pYYYYMMDD_HHMISS_Ns any other range';

CREATE FUNCTION fleet.partition_name(parent regclass, day date) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT fleet.range_partition_name(parent, day::timestamp AT TIME ZONE 'UTC',
	                                  (day OPERATOR(pg_catalog.+) 1)::timestamp AT TIME ZONE 'UTC')
$$;
COMMENT ON FUNCTION fleet.partition_name(regclass, date) IS
	'Name of the daily partition of a fleet table for a day (UTC): <table>_pYYYYMMDD (fleet.range_partition_name of the day)';

-- One partition for exactly [lo, hi); nothing if one with that name exists.
CREATE FUNCTION fleet.create_range_partition(parent regclass, lo timestamptz, hi timestamptz) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	-- in the parent's schema
	v_name text := pg_catalog.format('%I.%I',
		(SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
		  WHERE c.oid OPERATOR(pg_catalog.=) parent), fleet.range_partition_name(parent, lo, hi));
	v_rel regclass := pg_catalog.to_regclass(v_name);
	v_ext name;
BEGIN
	IF v_rel IS NOT NULL THEN
		-- the name says the range: a table of that name for another range is not ours
		IF EXISTS (SELECT 1 FROM fleet.time_partitions(parent) t
		            WHERE t.partition OPERATOR(pg_catalog.=) v_rel
		              AND t.lo OPERATOR(pg_catalog.=) create_range_partition.lo
		              AND t.hi OPERATOR(pg_catalog.=) create_range_partition.hi) THEN
			RETURN 0;
		END IF;
		RAISE EXCEPTION 'relation % exists but is not the partition of % for % to %', v_name, parent,
		                pg_catalog.to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
		                pg_catalog.to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
			USING ERRCODE = 'duplicate_table',
			      DETAIL = 'fleet names each partition by its range (fleet.range_partition_name), so that name is reserved for it.',
			      HINT = 'Rename or drop that relation, then create the partitions again.';
	END IF;
	BEGIN
		EXECUTE pg_catalog.format('CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
		                          v_name, parent, lo, hi);
		EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', v_name,
			pg_catalog.format('Partition of %s for %s to %s (UTC); dropped as a whole when it expires', parent,
			                  pg_catalog.to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
			                  pg_catalog.to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')));
		-- made inside CREATE EXTENSION (fleet's own first partitions, or an
		-- extension of the user's): not a member of it, or expiry and tier
		-- steps could never drop it ("extension requires it"); it goes with
		-- its parent all the same
		FOR v_ext IN SELECT e.extname FROM pg_catalog.pg_depend d
		               JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
		              WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
		                AND d.objid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(v_name)::pg_catalog.oid
		                AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
		                AND d.deptype OPERATOR(pg_catalog.=) 'e' LOOP
			EXECUTE pg_catalog.format('ALTER EXTENSION %I DROP TABLE %s', v_ext, v_name);
		END LOOP;
		RETURN 1;
	EXCEPTION WHEN duplicate_table THEN
		RETURN 0;	-- created concurrently: fine
	END;
END
$$;
COMMENT ON FUNCTION fleet.create_range_partition(regclass, timestamptz, timestamptz) IS
	'Create the partition of a fleet-managed table for exactly [lo, hi) (UTC), in the table''s schema, unless it exists; returns 1 if created';

CREATE FUNCTION fleet.create_partitions(parent regclass, p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_iv interval := COALESCE((fleet.tier_partitioning(parent)).partition_interval, '1 day'::interval);
	v_first timestamptz;
	v_stop timestamptz;
	v_start timestamptz;
	v_end timestamptz;
	v_cur timestamptz;
	v_los timestamptz[];
	v_his timestamptz[];
	v_parts integer;
	j integer := 1;
	k integer;
	n integer := 0;
	v_count integer := 0;
BEGIN
	IF p_from IS NULL OR p_to IS NULL OR p_to OPERATOR(pg_catalog.<=) p_from THEN
		RAISE EXCEPTION 'invalid time range % .. %', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM fleet.check_partition_interval(v_iv);
	-- count first: a range too long for the interval is refused before anything is created
	v_first := fleet.partition_start(p_from, v_iv);
	v_start := v_first;
	WHILE v_start OPERATOR(pg_catalog.<) p_to LOOP
		v_count := v_count OPERATOR(pg_catalog.+) 1;
		IF v_count OPERATOR(pg_catalog.>) 5000 THEN
			RAISE EXCEPTION 'time range % .. % would need more than 5000 partitions of %', p_from, p_to, v_iv
				USING ERRCODE = 'program_limit_exceeded',
				      HINT = 'Create the partitions in shorter ranges, or use a longer partition interval.';
		END IF;
		v_start := ((v_start AT TIME ZONE 'UTC') OPERATOR(pg_catalog.+) v_iv) AT TIME ZONE 'UTC';
	END LOOP;
	v_stop := v_start;	-- the end of the last period
	-- the existing partitions reaching into the range, read once, by start;
	-- partitions of one table never overlap, so they are ordered by end too
	SELECT COALESCE(pg_catalog.array_agg(t.lo ORDER BY t.lo), ARRAY[]::timestamptz[]),
	       COALESCE(pg_catalog.array_agg(t.hi ORDER BY t.lo), ARRAY[]::timestamptz[])
	  INTO v_los, v_his
	  FROM fleet.time_partitions(parent) t
	 WHERE t.lo OPERATOR(pg_catalog.<) v_stop AND t.hi OPERATOR(pg_catalog.>) v_first;
	v_parts := pg_catalog.cardinality(v_los);
	v_start := v_first;
	WHILE v_start OPERATOR(pg_catalog.<) p_to LOOP
		v_end := ((v_start AT TIME ZONE 'UTC') OPERATOR(pg_catalog.+) v_iv) AT TIME ZONE 'UTC';
		-- the parts of [v_start, v_end) no existing partition covers (a changed
		-- interval applies to new partitions only: old ones keep their bounds)
		WHILE j OPERATOR(pg_catalog.<=) v_parts AND v_his[j] OPERATOR(pg_catalog.<=) v_start LOOP
			j := j OPERATOR(pg_catalog.+) 1;
		END LOOP;
		v_cur := v_start;
		k := j;
		WHILE k OPERATOR(pg_catalog.<=) v_parts AND v_los[k] OPERATOR(pg_catalog.<) v_end LOOP
			IF v_los[k] OPERATOR(pg_catalog.>) v_cur THEN
				n := n OPERATOR(pg_catalog.+) fleet.create_range_partition(parent, v_cur, v_los[k]);
			END IF;
			v_cur := GREATEST(v_cur, v_his[k]);
			k := k OPERATOR(pg_catalog.+) 1;
		END LOOP;
		IF v_cur OPERATOR(pg_catalog.<) v_end THEN
			n := n OPERATOR(pg_catalog.+) fleet.create_range_partition(parent, v_cur, v_end);
		END IF;
		v_start := v_end;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.create_partitions(regclass, timestamptz, timestamptz) IS
	'Create the missing partitions of a time-partitioned fleet table covering [from, to) at its partition interval (fleet.partition_interval), aligned (fleet.partition_start); where existing partitions cover part of a period, only the rest gets partitions. Returns how many were created. Safe to run concurrently.';

CREATE FUNCTION fleet.create_daily_partitions(parent regclass, first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF first_day IS NULL OR last_day IS NULL OR last_day OPERATOR(pg_catalog.<) first_day THEN
		RAISE EXCEPTION 'invalid day range % .. %', first_day, last_day
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF last_day OPERATOR(pg_catalog.-) first_day OPERATOR(pg_catalog.>) 3660 THEN
		RAISE EXCEPTION 'day range % .. % is longer than ten years', first_day, last_day
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fleet.partitioned_table t WHERE t.relation OPERATOR(pg_catalog.=) parent) THEN
		RAISE EXCEPTION '% is not a daily-partitioned fleet table', parent
			USING ERRCODE = 'wrong_object_type',
			      HINT = 'See fleet.partitioned_table for the tables fleet partitions by day.';
	END IF;
	RETURN fleet.create_partitions(parent, first_day::timestamp AT TIME ZONE 'UTC',
	                               (last_day OPERATOR(pg_catalog.+) 1)::timestamp AT TIME ZONE 'UTC');
END
$$;
COMMENT ON FUNCTION fleet.create_daily_partitions(regclass, date, date) IS
	'Create the missing partitions of a fleet table covering the days first_day .. last_day (UTC) at its partition interval (one per day unless its tier policy says otherwise); returns how many were created. Safe to run concurrently.';

CREATE FUNCTION fleet.daily_partitions(parent regclass)
RETURNS TABLE (partition regclass, day date)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT t.partition, (t.lo AT TIME ZONE 'UTC')::date
	  FROM fleet.time_partitions(parent) t
	 WHERE t.hi OPERATOR(pg_catalog.=) (((t.lo AT TIME ZONE 'UTC')::date OPERATOR(pg_catalog.+) 1)::timestamp AT TIME ZONE 'UTC')
	   AND pg_catalog.date_trunc('day', t.lo AT TIME ZONE 'UTC') OPERATOR(pg_catalog.=) (t.lo AT TIME ZONE 'UTC')
	 ORDER BY 2
$$;
COMMENT ON FUNCTION fleet.daily_partitions(regclass) IS 'The partitions of a fleet table that hold exactly one day (UTC), with that day (fleet.time_partitions() lists every partition)';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.partitioned_table', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.partitioned_table', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.daily_partitions(regclass)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.daily_partitions(regclass)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.time_partitions(regclass)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.time_partitions(regclass)', 'EXECUTE');
