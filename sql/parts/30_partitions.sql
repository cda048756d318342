-- 30_partitions: daily range partitions for fleet's time-partitioned tables.
--
-- fleet.position (by fix time), fleet.event_log (by log time) and
-- fleet.event_key (by first-seen time) are RANGE partitioned by day, in UTC.
-- Partitions are named <table>_pYYYYMMDD, created ahead of time by
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

CREATE FUNCTION fleet.partition_name(parent regclass, day date) RETURNS text
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) parent)
	       OPERATOR(pg_catalog.||) '_p' OPERATOR(pg_catalog.||) pg_catalog.to_char(day, 'YYYYMMDD')
$$;
COMMENT ON FUNCTION fleet.partition_name(regclass, date) IS
	'Name of the daily partition of a fleet table for a day (UTC): <table>_pYYYYMMDD';

CREATE FUNCTION fleet.create_daily_partitions(parent regclass, first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d date;
	v_name text;
	n integer := 0;
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
	d := first_day;
	WHILE d OPERATOR(pg_catalog.<=) last_day LOOP
		v_name := fleet.partition_name(parent, d);
		IF pg_catalog.to_regclass(pg_catalog.quote_ident('fleet') OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(v_name)) IS NULL THEN
			BEGIN
				EXECUTE pg_catalog.format(
					'CREATE TABLE fleet.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
					v_name, parent,
					(d::timestamp OPERATOR(pg_catalog.||) '+00'),
					((d OPERATOR(pg_catalog.+) 1)::timestamp OPERATOR(pg_catalog.||) '+00'));
				EXECUTE pg_catalog.format('COMMENT ON TABLE fleet.%I IS %L', v_name,
					pg_catalog.format('Daily partition of %s for %s (UTC); dropped as a whole when it expires', parent, d));
				n := n OPERATOR(pg_catalog.+) 1;
			EXCEPTION WHEN duplicate_table THEN
				NULL;	-- created concurrently: fine
			END;
		END IF;
		d := d OPERATOR(pg_catalog.+) 1;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.create_daily_partitions(regclass, date, date) IS
	'Create the missing daily partitions of a fleet table for first_day .. last_day (UTC); returns how many were created. Safe to run concurrently.';

CREATE FUNCTION fleet.daily_partitions(parent regclass)
RETURNS TABLE (partition regclass, day date)
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT i.inhrelid::pg_catalog.regclass,
	       pg_catalog.to_date(pg_catalog.substring(c.relname, '_p([0-9]{8})$'), 'YYYYMMDD')
	  FROM pg_catalog.pg_inherits i
	  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
	 WHERE i.inhparent OPERATOR(pg_catalog.=) parent
	   AND c.relname OPERATOR(pg_catalog.~) '_p[0-9]{8}$'
	 ORDER BY 2
$$;
COMMENT ON FUNCTION fleet.daily_partitions(regclass) IS 'The daily partitions of a fleet table with the day (UTC) each one holds';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.partitioned_table', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.partitioned_table', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.daily_partitions(regclass)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.daily_partitions(regclass)', 'EXECUTE');
