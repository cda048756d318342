-- 60_views: staleness-bounded materialized views ("fleet views").
--
-- A fleet view is an ordinary table (the materialization) kept within a
-- declared maximum age (max_staleness) of its source.  Three kinds:
--   rollup   GROUP BY keys with mergeable aggregates (count, sum, min, max,
--            avg, first/last by time) over an append-only source;
--   latest   one row per key, the newest by an order (time, tie-breakers);
--   general  any query with a unique key, recomputed in full and applied
--            as a diff (upsert changed rows, delete vanished keys).
--
-- Change tracking (rollup, latest).  A statement-level AFTER INSERT trigger
-- with a transition table aggregates each inserted batch to its partial
-- result per group (the view's own row type) and appends ONE row per tenant
-- (for_tenant; one row if the view has no tenant_id key) to the view's delta
-- log, stamped with the writer's transaction id.  It fires for every INSERT
-- path (multi-row INSERT, INSERT ... SELECT, COPY, the ingest functions).
-- UPDATE, DELETE and TRUNCATE of the source append a rebuild marker
-- instead.  A refresh consumes the delta log with one statement (DELETE ...
-- RETURNING feeding the merge), so a delta row is merged and removed
-- atomically, under one MVCC snapshot: a transaction that commits late is
-- simply not visible yet and is consumed by a later refresh; no sequence or
-- timestamp high-water mark is involved, so nothing is skipped.
--
-- The merge.  fleet.view_combine (extension/first_last.c) combines the
-- consumed partials into one row per group in a hash table (one delta row
-- alone is taken as it is), and fleet.view_merge writes the groups into the
-- view's table in the order of fleet.view_key_order, date and time keys
-- first: one index probe per group, the merged row computed in C, a heap
-- update (HOT) or insert, without the per-row machinery of an INSERT ... ON
-- CONFLICT DO UPDATE.  A rebuild writes its rows in that order too.  So the groups fresh rows touch -- today's, one per
-- vehicle -- lie together on few pages whatever order the writers' or a bulk
-- load's statements had: a refresh after 10k new rows, one per vehicle,
-- changes about 500 pages of fleet.vehicle_daily_activity_data, not 10k
-- scattered ones, and the first refresh after a checkpoint writes about 700
-- full-page images (6 MB of WAL in all), not 10k (43 MB).  fillfactor 50
-- leaves each page room for a new version of every row on it, so those
-- updates stay HOT.
--
-- Freshness.  as_of is a commit-time watermark: the clock is read before
-- the snapshot of the consuming statement is taken, so every transaction
-- that committed before as_of is in the view.  Age = clock - as_of.
-- A reader under row-level security acting for one tenant sees only that
-- tenant's rows; fleet.ensure_fresh refreshes only that tenant's groups for
-- it (its delta rows) and keeps the tenant's own watermark, with the same
-- guarantee for the rows that reader can see (fleet.view_tenant_as_of).
-- Every refresh sends NOTIFY fleet_view_refreshed with a JSON payload.
--
-- Storage.  A rollup with avg, first or last keeps merge state per group
-- (_fv_<name>_sum/_n, _fv_<name>_t).  Its rows then live in <name>_data and
-- <name> is a security_invoker view of the documented columns; readers are
-- granted SELECT on the view and on those columns of the table only.
--
-- Refreshes of one view are serialized by a row lock on its registry row;
-- readers of the view are never blocked (row-level changes only, in the
-- refresh's own transaction).  A full rebuild (after a non-append change of
-- the source) takes a SHARE lock on the source for its duration: writers of
-- that source wait, readers do not.

-- ------------------------------------------------------------------ registry

CREATE TABLE fleet.view_registry (
	view_id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	relation          regclass NOT NULL UNIQUE,
	storage           regclass NOT NULL UNIQUE,
	kind              text NOT NULL
	                  CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['rollup', 'latest', 'general'])),
	source            regclass,
	max_staleness     interval NOT NULL CHECK (max_staleness OPERATOR(pg_catalog.>) '0'::interval),
	key_columns       text[] NOT NULL,
	build_sql         text NOT NULL,
	apply_sql         text NOT NULL,
	delta             regclass,
	spec              jsonb NOT NULL DEFAULT '{}',
	enabled           boolean NOT NULL DEFAULT true,
	created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
	as_of             timestamptz,
	snapshot          pg_snapshot,
	last_refresh_at   timestamptz,
	last_duration     interval,
	last_rows_changed bigint,
	refreshes         bigint NOT NULL DEFAULT 0,
	rebuilds          bigint NOT NULL DEFAULT 0,
	bound_misses      bigint NOT NULL DEFAULT 0,
	last_error        text,
	last_error_at     timestamptz
);
COMMENT ON TABLE fleet.view_registry IS
	'fleet views: one row per staleness-bounded materialized view (kind, source, bound, the generated SQL) and its freshness (as_of watermark, last refresh, misses); written only by fleet''s view functions';
COMMENT ON COLUMN fleet.view_registry.storage IS
	'The table holding the view''s rows: the relation itself, or <relation>_data when the view keeps merge state (the sums and counts of avg, the times of first/last) that readers do not see; the relation is then a security_invoker view of its documented columns';
COMMENT ON COLUMN fleet.view_registry.as_of IS
	'Commit-time watermark: every transaction that committed before as_of is reflected in the view';
COMMENT ON COLUMN fleet.view_registry.snapshot IS 'Transaction snapshot of the last refresh (txids visible in it are consumed)';
COMMENT ON COLUMN fleet.view_registry.bound_misses IS
	'Refreshes that found the view already older than max_staleness';
COMMENT ON COLUMN fleet.view_registry.build_sql IS 'Full recomputation of the view from its source (used for the first build, rebuilds and fleet.verify_view)';
COMMENT ON COLUMN fleet.view_registry.apply_sql IS 'Incremental refresh statement: consumes the delta log and merges it (general views: the full diff); $1 is NULL or the one tenant whose changes it consumes';

-- A reader acting for one tenant sees only that tenant's rows of a view
-- (row-level security), so fleet.ensure_fresh refreshes only that tenant's
-- groups for it and keeps that tenant's watermark here.
CREATE TABLE fleet.view_tenant_as_of (
	view_id      integer NOT NULL,
	tenant_id    bigint NOT NULL,
	as_of        timestamptz NOT NULL,
	refreshed_at timestamptz NOT NULL,
	refreshes    bigint NOT NULL DEFAULT 1,
	PRIMARY KEY (view_id, tenant_id)
);
COMMENT ON TABLE fleet.view_tenant_as_of IS
	'fleet views: a tenant''s own commit-time watermark of a view, newer than the view''s as_of after fleet.ensure_fresh refreshed only that tenant''s groups for a reader acting for it: every transaction that committed before as_of is reflected in the tenant''s rows. Rows not newer than the view''s as_of are dropped by the next full refresh; written only by fleet''s view functions';
SELECT fleet.enable_tenant_rls('fleet.view_tenant_as_of');

-- ------------------------------------------------------------------ helpers

-- first(x, time) and last(x, time) of rollup views (extension/first_last.c):
-- the value of the row with the smallest (largest) (time, value), NULLs
-- skipped; what (array_agg(x ORDER BY time, x) FILTER (...))[1] gave,
-- without sorting each group.
CREATE FUNCTION fleet.first_by_trans(internal, anyelement, anycompatible) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_first_by_trans';
COMMENT ON FUNCTION fleet.first_by_trans(internal, anyelement, anycompatible) IS
	'Transition function of fleet.first_by()';
CREATE FUNCTION fleet.last_by_trans(internal, anyelement, anycompatible) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_last_by_trans';
COMMENT ON FUNCTION fleet.last_by_trans(internal, anyelement, anycompatible) IS
	'Transition function of fleet.last_by()';
CREATE FUNCTION fleet.by_final(internal, anyelement, anycompatible) RETURNS anyelement
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_by_final';
COMMENT ON FUNCTION fleet.by_final(internal, anyelement, anycompatible) IS
	'Final function of fleet.first_by() and fleet.last_by(): the kept value';
CREATE AGGREGATE fleet.first_by(anyelement, anycompatible) (
	SFUNC = fleet.first_by_trans, STYPE = internal,
	FINALFUNC = fleet.by_final, FINALFUNC_EXTRA);
COMMENT ON AGGREGATE fleet.first_by(anyelement, anycompatible) IS
	'first_by(value, key): the value of the row with the smallest (key, value), rows with a NULL value or key skipped (a rollup view''s first(x, time))';
CREATE AGGREGATE fleet.last_by(anyelement, anycompatible) (
	SFUNC = fleet.last_by_trans, STYPE = internal,
	FINALFUNC = fleet.by_final, FINALFUNC_EXTRA);
COMMENT ON AGGREGATE fleet.last_by(anyelement, anycompatible) IS
	'last_by(value, key): the value of the row with the largest (key, value), rows with a NULL value or key skipped (a rollup view''s last(x, time))';

-- fleet.view_combine(rows, spec) and fleet.view_merge(storage, rows, spec)
-- (extension/first_last.c): a refresh combines the partial results its delta
-- log holds, one array per writing statement, into one element per group,
-- column by column as spec says (kN key, N-th in the write order; c count,
-- s sum, m/M min/max, a avg, f/l first/last value followed by its time, v
-- value and oN order of a latest view), then merges those into the view's
-- table in the write order: an existing group updated as an ON CONFLICT ...
-- DO UPDATE of count + count, sum + sum, LEAST, GREATEST, the average of the
-- new sum and count, first/last by (time, value) would (a latest view's row
-- only by a newer one), a new group inserted.
CREATE FUNCTION fleet.view_combine_trans(internal, anyarray, text) RETURNS internal
	LANGUAGE C PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_view_combine_trans';
COMMENT ON FUNCTION fleet.view_combine_trans(internal, anyarray, text) IS
	'Transition function of fleet.view_combine()';
CREATE FUNCTION fleet.view_combine_final(internal, anyarray, text) RETURNS anyarray
	LANGUAGE C PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'fleet_view_combine_final';
COMMENT ON FUNCTION fleet.view_combine_final(internal, anyarray, text) IS
	'Final function of fleet.view_combine(): one element per group';
CREATE AGGREGATE fleet.view_combine(anyarray, text) (
	SFUNC = fleet.view_combine_trans, STYPE = internal,
	FINALFUNC = fleet.view_combine_final, FINALFUNC_EXTRA);
COMMENT ON AGGREGATE fleet.view_combine(anyarray, text) IS
	'Internal: combine the partial results of a fleet view''s delta log (arrays of its row type) into one element per group, each column as the spec token names it (k or kN key, c count, s sum, m/M min/max, a avg of the next s and c, f/l first/last value of the next m/M time, v value and oN order of a latest view); a single array is returned as it is';
CREATE FUNCTION fleet.view_merge(storage regclass, rows anyarray, spec text) RETURNS bigint
	LANGUAGE C VOLATILE
	AS 'MODULE_PATHNAME', 'fleet_view_merge';
COMMENT ON FUNCTION fleet.view_merge(regclass, anyarray, text) IS
	'Internal: merge combined partials (fleet.view_combine) into a fleet view''s table, in the order of the spec''s kN keys: existing groups updated column by column as the spec says, new ones inserted; returns the rows changed. Writes only a table the current role owns, without row-level security for it and without triggers';

CREATE FUNCTION fleet.view_key_order(storage regclass, keys text[]) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.array_agg(k.k
	         ORDER BY (t.atttypid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.date'::pg_catalog.regtype,
	                   'pg_catalog.timestamp'::pg_catalog.regtype, 'pg_catalog.timestamptz'::pg_catalog.regtype]::pg_catalog.oid[])) DESC,
	                  k.n)
	  FROM pg_catalog.unnest(keys) WITH ORDINALITY k(k, n)
	  JOIN pg_catalog.pg_attribute t ON t.attrelid OPERATOR(pg_catalog.=) storage
	                                AND t.attname OPERATOR(pg_catalog.=) k.k AND NOT t.attisdropped
$$;
COMMENT ON FUNCTION fleet.view_key_order(regclass, text[]) IS
	'The order a fleet view''s rows are written in, as key names: its date and time keys first, then the other keys, so that the groups new rows touch (the recent days) share pages';

CREATE FUNCTION fleet.view_split_item(item text, OUT name text, OUT expr text)
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m text[];
BEGIN
	m := pg_catalog.regexp_match(item, '^\s*([a-z_][a-z0-9_]*)\s*=\s*(.+?)\s*$');
	IF m IS NOT NULL THEN
		name := m[1];
		expr := m[2];
	ELSIF item OPERATOR(pg_catalog.~) '^\s*[a-z_][a-z0-9_]*\s*$' THEN
		name := pg_catalog.btrim(item);
		expr := pg_catalog.quote_ident(name);
	ELSE
		RAISE EXCEPTION 'invalid view column "%"', item
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Write a column as name or as name = expression, with a lower-case name.';
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.view_split_item(text) IS
	'Split a view column declaration "name = expression" (or a bare column name) into name and expression';

CREATE FUNCTION fleet.view_owner_check() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
	                WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog."session_user"() AND r.rolsuper)
	   AND NOT pg_catalog.pg_has_role(pg_catalog."session_user"(),
	          (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'fleet'), 'MEMBER') THEN
		RAISE EXCEPTION 'only the owner of extension fleet can declare or drop fleet views'
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = 'A fleet view''s definition is refreshed as the extension owner, across all tenants.',
			      HINT = 'fleet_admin can change bounds, refresh and verify views.';
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.view_owner_check() IS
	'Raise unless the session user is a superuser or a member of the extension owner (declaring a view runs its SQL as the owner)';

-- ------------------------------------------------------------------ declare

CREATE FUNCTION fleet.create_view(
	name text,
	kind text,
	max_staleness interval,
	source regclass DEFAULT NULL,
	keys text[] DEFAULT NULL,
	aggregates text[] DEFAULT NULL,
	columns text[] DEFAULT NULL,
	order_by text[] DEFAULT NULL,
	filter text DEFAULT NULL,
	definition text DEFAULT NULL,
	readers text[] DEFAULT ARRAY['fleet_admin', 'fleet_analyst'])
RETURNS regclass
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because the view's tables, delta log and capture trigger
-- must belong to the extension owner (who refreshes them across tenants);
-- view_owner_check() admits only the owner or a superuser as the caller, so
-- this runs nothing the caller could not already run.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	v_rel regclass;
	v_id integer;
	v_keys text[] := '{}';
	v_kexpr text[] := '{}';
	v_sel text[] := '{}';		-- select list of the build query
	v_set text[] := '{}';		-- general: the upsert's SET list
	v_where text;
	v_ocols text[] := '{}';
	v_build_from text;			-- build query with %s for the FROM relation
	v_build text;
	v_apply text;
	v_delta text;
	v_cols text[];
	v_func text;
	it record;
	m text[];
	a text;
	i integer;
	v_schema text;
	v_relname text;
	v_has_tenant boolean;
	v_as_of timestamptz;
	v_store regclass;
	v_store_name text;
	v_pub text[];
	v_tok jsonb := '{}';		-- rollup, latest: view_combine's token per column
	v_spec text;
BEGIN
	PERFORM fleet.view_owner_check();
	IF kind IS NULL OR NOT kind OPERATOR(pg_catalog.=) ANY (ARRAY['rollup', 'latest', 'general']) THEN
		RAISE EXCEPTION 'unknown fleet view kind "%"', kind
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use rollup, latest or general.';
	END IF;
	IF max_staleness IS NULL OR max_staleness OPERATOR(pg_catalog.<=) '0'::interval THEN
		RAISE EXCEPTION 'max_staleness must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF keys IS NULL OR pg_catalog.cardinality(keys) OPERATOR(pg_catalog.=) 0 THEN
		RAISE EXCEPTION 'a fleet view needs keys' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'keys are the GROUP BY keys (rollup), the per-key identity (latest) or the unique key (general).';
	END IF;
	m := pg_catalog.parse_ident(name);
	IF pg_catalog.cardinality(m) OPERATOR(pg_catalog.<>) 2 THEN
		RAISE EXCEPTION 'fleet view name "%" must be schema-qualified', name USING ERRCODE = 'invalid_name';
	END IF;
	v_schema := m[1];
	v_relname := m[2];
	IF pg_catalog.length(v_relname) OPERATOR(pg_catalog.>) 50 THEN
		RAISE EXCEPTION 'fleet view name "%" is too long (at most 50 characters)', v_relname USING ERRCODE = 'invalid_name';
	END IF;

	IF kind OPERATOR(pg_catalog.=) 'general' THEN
		IF definition IS NULL THEN
			RAISE EXCEPTION 'a general fleet view needs a definition' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOREACH a IN ARRAY keys LOOP
			SELECT * INTO it FROM fleet.view_split_item(a);
			v_keys := v_keys OPERATOR(pg_catalog.||) it.name;
		END LOOP;
		v_build := definition;
	ELSE
		IF source IS NULL THEN
			RAISE EXCEPTION 'a % fleet view needs a source table', kind USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF definition IS NOT NULL THEN
			RAISE EXCEPTION 'a % fleet view is declared by keys and columns, not by a definition', kind
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOREACH a IN ARRAY keys LOOP
			SELECT * INTO it FROM fleet.view_split_item(a);
			v_keys := v_keys OPERATOR(pg_catalog.||) it.name;
			v_kexpr := v_kexpr OPERATOR(pg_catalog.||) it.expr;
			v_tok := v_tok OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(it.name, 'k');
			v_sel := v_sel OPERATOR(pg_catalog.||) pg_catalog.format('(%s) AS %I', it.expr, it.name);
		END LOOP;
		v_where := pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.format('(%s) IS NOT NULL', e)
		                                              FROM pg_catalog.unnest(v_kexpr) e), ' AND ');
		IF filter IS NOT NULL THEN
			v_where := pg_catalog.format('(%s) AND %s', filter, v_where);
		END IF;

		IF kind OPERATOR(pg_catalog.=) 'rollup' THEN
			IF aggregates IS NULL OR pg_catalog.cardinality(aggregates) OPERATOR(pg_catalog.=) 0 THEN
				RAISE EXCEPTION 'a rollup fleet view needs aggregates' USING ERRCODE = 'invalid_parameter_value';
			END IF;
			FOREACH a IN ARRAY aggregates LOOP
				m := pg_catalog.regexp_match(a, '^\s*([a-z_][a-z0-9_]*)\s*=\s*(count|sum|min|max|avg|first|last)\s*\((.*)\)\s*$');
				IF m IS NULL THEN
					RAISE EXCEPTION 'invalid aggregate "%"', a
						USING ERRCODE = 'invalid_parameter_value',
						      HINT = 'Write name = count(*), count(x), sum(x), min(x), max(x), avg(x), first(x, time) or last(x, time).';
				END IF;
				IF m[1] OPERATOR(pg_catalog.=) ANY (v_keys) THEN
					RAISE EXCEPTION 'aggregate name "%" is also a key', m[1] USING ERRCODE = 'duplicate_column';
				END IF;
				CASE m[2]
				WHEN 'count' THEN
					v_tok := v_tok OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(m[1], 'c');
					v_sel := v_sel OPERATOR(pg_catalog.||) pg_catalog.format('pg_catalog.count(%s) AS %I', m[3], m[1]);
				WHEN 'sum' THEN
					v_tok := v_tok OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(m[1], 's');
					v_sel := v_sel OPERATOR(pg_catalog.||) pg_catalog.format('pg_catalog.sum((%s)::numeric) AS %I', m[3], m[1]);
				WHEN 'min', 'max' THEN
					v_tok := v_tok OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(m[1], CASE m[2] WHEN 'min' THEN 'm' ELSE 'M' END);
					v_sel := v_sel OPERATOR(pg_catalog.||) pg_catalog.format('pg_catalog.%s(%s) AS %I', m[2], m[3], m[1]);
				WHEN 'avg' THEN
					v_tok := v_tok OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(m[1], 'a',
						'_fv_' OPERATOR(pg_catalog.||) m[1] OPERATOR(pg_catalog.||) '_sum', 's',
						'_fv_' OPERATOR(pg_catalog.||) m[1] OPERATOR(pg_catalog.||) '_n', 'c');
					v_sel := v_sel OPERATOR(pg_catalog.||) ARRAY[
						pg_catalog.format('pg_catalog.sum((%s)::numeric) OPERATOR(pg_catalog./) NULLIF(pg_catalog.count(%s), 0) AS %I', m[3], m[3], m[1]),
						pg_catalog.format('pg_catalog.sum((%s)::numeric) AS %I', m[3], '_fv_' OPERATOR(pg_catalog.||) m[1] OPERATOR(pg_catalog.||) '_sum'),
						pg_catalog.format('pg_catalog.count(%s) AS %I', m[3], '_fv_' OPERATOR(pg_catalog.||) m[1] OPERATOR(pg_catalog.||) '_n')];
				WHEN 'first', 'last' THEN
					DECLARE
						mm text[] := pg_catalog.regexp_match(m[3], '^(.+),\s*([^,]+)$');
						v_t text := '_fv_' OPERATOR(pg_catalog.||) m[1] OPERATOR(pg_catalog.||) '_t';
						v_ext text := CASE m[2] WHEN 'first' THEN 'min' ELSE 'max' END;
					BEGIN
						IF mm IS NULL THEN
							RAISE EXCEPTION 'aggregate "%" needs a value and a time: %(value, time)', a, m[2]
								USING ERRCODE = 'invalid_parameter_value';
						END IF;
						v_tok := v_tok OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
							m[1], CASE m[2] WHEN 'first' THEN 'f' ELSE 'l' END,
							v_t, CASE m[2] WHEN 'first' THEN 'm' ELSE 'M' END);
						v_sel := v_sel OPERATOR(pg_catalog.||) ARRAY[
							pg_catalog.format('fleet.%1$s_by(%2$s, %3$s) AS %4$I', m[2], mm[1], mm[2], m[1]),
							pg_catalog.format('pg_catalog.%1$s(%3$s) FILTER (WHERE (%2$s) IS NOT NULL AND (%3$s) IS NOT NULL) AS %4$I',
								v_ext, mm[1], mm[2], v_t)];
					END;
				END CASE;
			END LOOP;
			v_build_from := pg_catalog.format('SELECT %s FROM {{source}} WHERE %s GROUP BY %s',
				pg_catalog.array_to_string(v_sel, ', '), v_where,
				(SELECT pg_catalog.string_agg(g::text, ', ') FROM pg_catalog.generate_series(1, pg_catalog.cardinality(v_keys)) g));
		ELSE
			-- latest
			IF order_by IS NULL OR pg_catalog.cardinality(order_by) OPERATOR(pg_catalog.=) 0 THEN
				RAISE EXCEPTION 'a latest fleet view needs order_by (time first, then tie-breakers)'
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
			FOREACH a IN ARRAY pg_catalog.array_cat(columns, order_by) LOOP
				SELECT * INTO it FROM fleet.view_split_item(a);
				CONTINUE WHEN it.name OPERATOR(pg_catalog.=) ANY (v_keys)
				           OR pg_catalog.format('(%s) AS %I', it.expr, it.name) OPERATOR(pg_catalog.=) ANY (v_sel);
				v_sel := v_sel OPERATOR(pg_catalog.||) pg_catalog.format('(%s) AS %I', it.expr, it.name);
			END LOOP;
			FOREACH a IN ARRAY order_by LOOP
				SELECT * INTO it FROM fleet.view_split_item(a);
				v_ocols := v_ocols OPERATOR(pg_catalog.||) it.name;
				v_where := pg_catalog.format('%s AND (%s) IS NOT NULL', v_where, it.expr);
			END LOOP;
			v_build_from := pg_catalog.format('SELECT DISTINCT ON (%1$s) %2$s FROM {{source}} WHERE %3$s ORDER BY %1$s, %4$s',
				(SELECT pg_catalog.string_agg(g::text, ', ') FROM pg_catalog.generate_series(1, pg_catalog.cardinality(v_keys)) g),
				pg_catalog.array_to_string(v_sel, ', '), v_where,
				(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(o) OPERATOR(pg_catalog.||) ' DESC', ', ') FROM pg_catalog.unnest(v_ocols) o));
		END IF;
		v_build := pg_catalog.replace(v_build_from, '{{source}}', source::text);
	END IF;

	-- the materialization: an ordinary table shaped by the build query,
	-- named <name>_data when it keeps merge state readers do not see
	v_store_name := v_relname;
	IF kind OPERATOR(pg_catalog.=) 'rollup' AND EXISTS (
	     SELECT 1 FROM pg_catalog.unnest(aggregates) ag
	      WHERE ag OPERATOR(pg_catalog.~) '^\s*[a-z_][a-z0-9_]*\s*=\s*(avg|first|last)\s*\(') THEN
		v_store_name := v_relname OPERATOR(pg_catalog.||) '_data';
	END IF;
	EXECUTE pg_catalog.format('CREATE TABLE %I.%I AS %s WITH NO DATA', v_schema, v_store_name, v_build);
	v_store := pg_catalog.format('%I.%I', v_schema, v_store_name)::pg_catalog.regclass;
	EXECUTE pg_catalog.format('ALTER TABLE %s ADD PRIMARY KEY (%s)', v_store,
		(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(k), ', ') FROM pg_catalog.unnest(v_keys) k));
	-- room on each page for a new version of every row on it: the refresh's
	-- updates stay HOT (no index entry, no new page) even when all the rows
	-- of a page are one day's groups, all updated by each refresh
	EXECUTE pg_catalog.format('ALTER TABLE %s SET (fillfactor = 50)', v_store);
	v_cols := ARRAY(SELECT a2.attname::text FROM pg_catalog.pg_attribute a2
	                 WHERE a2.attrelid OPERATOR(pg_catalog.=) v_store AND a2.attnum OPERATOR(pg_catalog.>) 0
	                   AND NOT a2.attisdropped ORDER BY a2.attnum);
	v_has_tenant := 'tenant_id' OPERATOR(pg_catalog.=) ANY (v_cols);
	IF v_has_tenant THEN
		IF NOT 'tenant_id' OPERATOR(pg_catalog.=) ANY (v_keys) THEN
			RAISE EXCEPTION 'fleet view % has a tenant_id column that is not a key', name
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Make tenant_id the first key.';
		END IF;
		PERFORM fleet.enable_tenant_rls(v_store);
	END IF;
	IF v_store_name OPERATOR(pg_catalog.=) v_relname THEN
		v_rel := v_store;
		EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', v_rel,
			pg_catalog.format('fleet view (%s, max staleness %s); freshness in fleet.view_status', kind, max_staleness));
	ELSE
		v_pub := ARRAY(SELECT c FROM pg_catalog.unnest(v_cols) c WHERE NOT pg_catalog.starts_with(c, '_fv_'));
		EXECUTE pg_catalog.format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT %s FROM %s',
			v_schema, v_relname,
			(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(v_pub) c), v_store);
		v_rel := pg_catalog.format('%I.%I', v_schema, v_relname)::pg_catalog.regclass;
		EXECUTE pg_catalog.format('COMMENT ON VIEW %s IS %L', v_rel,
			pg_catalog.format('fleet view (%s, max staleness %s); freshness in fleet.view_status', kind, max_staleness));
		EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', v_store,
			pg_catalog.format('Storage of fleet view %s: its rows with the merge state of its aggregates (_fv_ columns); read %s', v_rel, v_rel));
	END IF;

	INSERT INTO fleet.view_registry (relation, storage, kind, source, max_staleness, key_columns, build_sql, apply_sql, spec)
	VALUES (v_rel, v_store, kind, source, max_staleness, v_keys, v_build, '', pg_catalog.jsonb_build_object(
		'keys', keys, 'aggregates', aggregates, 'columns', columns, 'order_by', order_by,
		'filter', filter, 'definition', definition))
	RETURNING view_registry.view_id INTO v_id;

	IF kind OPERATOR(pg_catalog.=) 'general' THEN
		IF pg_catalog.cardinality(v_cols) OPERATOR(pg_catalog.=) pg_catalog.cardinality(v_keys) THEN
			v_set := NULL;
		ELSE
			v_set := ARRAY(SELECT pg_catalog.format('%1$I = excluded.%1$I', c) FROM pg_catalog.unnest(v_cols) c
			                WHERE NOT c OPERATOR(pg_catalog.=) ANY (v_keys));
		END IF;
		v_apply := pg_catalog.format(
			'WITH n AS MATERIALIZED (%1$s),'
			' del AS (DELETE FROM %2$s t WHERE NOT EXISTS (SELECT 1 FROM n WHERE %3$s) RETURNING 1),'
			' ups AS (INSERT INTO %2$s AS t SELECT * FROM n ON CONFLICT (%4$s) %5$s RETURNING 1)'
			' SELECT (SELECT pg_catalog.count(*) FROM del) OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM ups)',
			v_build, v_store,
			(SELECT pg_catalog.string_agg(pg_catalog.format('n.%1$I OPERATOR(pg_catalog.=) t.%1$I', k), ' AND ') FROM pg_catalog.unnest(v_keys) k),
			(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(k), ', ') FROM pg_catalog.unnest(v_keys) k),
			CASE WHEN v_set IS NULL THEN 'DO NOTHING' ELSE pg_catalog.format('DO UPDATE SET %s WHERE ROW(%s) IS DISTINCT FROM ROW(%s)',
				pg_catalog.array_to_string(v_set, ', '),
				(SELECT pg_catalog.string_agg(pg_catalog.format('t.%I', c), ', ') FROM pg_catalog.unnest(v_cols) c WHERE NOT c OPERATOR(pg_catalog.=) ANY (v_keys)),
				(SELECT pg_catalog.string_agg(pg_catalog.format('excluded.%I', c), ', ') FROM pg_catalog.unnest(v_cols) c WHERE NOT c OPERATOR(pg_catalog.=) ANY (v_keys))) END);
	ELSE
		-- the delta log: one row per writing statement (and tenant) with its
		-- partial result
		v_delta := pg_catalog.format('fleet.%I', 'view_delta_' OPERATOR(pg_catalog.||) v_id);
		EXECUTE pg_catalog.format(
			'CREATE TABLE %s (txid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),'
			' rebuild boolean NOT NULL DEFAULT false, for_tenant bigint, rows %s[])', v_delta, v_store);
		EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN rows SET STORAGE EXTERNAL', v_delta);
		EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', v_delta,
			pg_catalog.format('Delta log of fleet view %s: one row per writing statement of %s%s (partial result per group, writer txid), consumed by refresh', v_rel, source,
				CASE WHEN v_has_tenant THEN ' and tenant (for_tenant)' ELSE '' END));

		v_func := pg_catalog.format('fleet.%I', 'view_capture_' OPERATOR(pg_catalog.||) v_id);
		EXECUTE pg_catalog.format($f$
CREATE FUNCTION %1$s() RETURNS trigger
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because the writers of %3$s have no privilege on the delta log
-- it appends to; it only reads the statement's transition table.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $body$
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		%4$s
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
		INSERT INTO %2$s (rebuild) VALUES (true);
	ELSE
		INSERT INTO %2$s (rebuild) SELECT true WHERE EXISTS (SELECT 1 FROM fleet_old);
	END IF;
	RETURN NULL;
END
$body$$f$, v_func, v_delta, source,
			CASE WHEN v_has_tenant THEN pg_catalog.format(
				'INSERT INTO %s (for_tenant, rows) SELECT c.tenant_id, pg_catalog.array_agg(ROW(c.*)::%s) FROM (%s) c GROUP BY c.tenant_id;',
				v_delta, v_store, pg_catalog.replace(v_build_from, '{{source}}', 'fleet_new'))
			ELSE pg_catalog.format(
				'INSERT INTO %s (rows) SELECT pg_catalog.array_agg(ROW(c.*)::%s) FROM (%s) c HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0;',
				v_delta, v_store, pg_catalog.replace(v_build_from, '{{source}}', 'fleet_new')) END);
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', v_func);
		EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s() IS %L', v_func,
			pg_catalog.format('Capture trigger of fleet view %s: appends each statement''s partial result (or a rebuild marker) to its delta log', v_rel));
		EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS fleet_new'
			' FOR EACH STATEMENT EXECUTE FUNCTION %s()', 'fleet_view_' OPERATOR(pg_catalog.||) v_id OPERATOR(pg_catalog.||) '_ins', source, v_func);
		EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS fleet_old'
			' FOR EACH STATEMENT EXECUTE FUNCTION %s()', 'fleet_view_' OPERATOR(pg_catalog.||) v_id OPERATOR(pg_catalog.||) '_upd', source, v_func);
		EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS fleet_old'
			' FOR EACH STATEMENT EXECUTE FUNCTION %s()', 'fleet_view_' OPERATOR(pg_catalog.||) v_id OPERATOR(pg_catalog.||) '_del', source, v_func);
		EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER TRUNCATE ON %s'
			' FOR EACH STATEMENT EXECUTE FUNCTION %s()', 'fleet_view_' OPERATOR(pg_catalog.||) v_id OPERATOR(pg_catalog.||) '_trunc', source, v_func);

		-- The refresh: the delta rows (those of tenant $1 only, if $1 is not
		-- NULL) are deleted and their partials combined into one row per
		-- group (fleet.view_combine), then merged into the view
		-- (fleet.view_merge) in the order of fleet.view_key_order: the recent
		-- days' groups are written together, on few pages (and few full-page
		-- images after a checkpoint), whatever order the writers' statements
		-- had.
		IF kind OPERATOR(pg_catalog.=) 'latest' THEN
			v_tok := v_tok OPERATOR(pg_catalog.||) (SELECT pg_catalog.jsonb_object_agg(o.o, 'o' OPERATOR(pg_catalog.||) o.n)
			                                          FROM pg_catalog.unnest(ARRAY(SELECT x FROM pg_catalog.unnest(v_ocols) x
			                                                                        WHERE NOT x OPERATOR(pg_catalog.=) ANY (v_keys))) WITH ORDINALITY o(o, n));
		END IF;
		-- the keys, ranked in the write order
		v_tok := v_tok OPERATOR(pg_catalog.||) (SELECT pg_catalog.jsonb_object_agg(o.o, 'k' OPERATOR(pg_catalog.||) o.n)
		                                          FROM pg_catalog.unnest(fleet.view_key_order(v_store, v_keys)) WITH ORDINALITY o(o, n));
		v_spec := pg_catalog.array_to_string(ARRAY(SELECT COALESCE(v_tok OPERATOR(pg_catalog.->>) c, 'v')
		                                             FROM pg_catalog.unnest(v_cols) WITH ORDINALITY c(c, n) ORDER BY c.n), ' ');
		v_apply := pg_catalog.format(
			'WITH d AS (DELETE FROM %1$s WHERE NOT rebuild AND ($1::pg_catalog.int8 IS NULL OR for_tenant OPERATOR(pg_catalog.=) $1) RETURNING rows)'
			' SELECT fleet.view_merge(%2$L::pg_catalog.regclass, (SELECT fleet.view_combine(d.rows, %3$L) FROM d), %3$L)',
			v_delta, v_store::text, v_spec);
	END IF;

	UPDATE fleet.view_registry r SET apply_sql = v_apply, delta = v_delta::pg_catalog.regclass
	 WHERE r.view_id OPERATOR(pg_catalog.=) v_id;

	-- who may read it
	INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges)
	SELECT rn, 'TABLE', v_rel::text, 'SELECT' FROM pg_catalog.unnest(readers) rn
	ON CONFLICT DO NOTHING;
	IF v_store OPERATOR(pg_catalog.<>) v_rel THEN
		-- the view runs with the reader's privileges: the documented columns only
		INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges, columns)
		SELECT rn, 'TABLE', v_store::text, 'SELECT', v_pub FROM pg_catalog.unnest(readers) rn
		ON CONFLICT DO NOTHING;
	END IF;
	PERFORM fleet.apply_grants();

	-- first build: every writer of the source that started before the
	-- trigger existed has finished (CREATE TRIGGER waited for it)
	IF v_delta IS NOT NULL THEN
		EXECUTE pg_catalog.format('INSERT INTO %s (rebuild) VALUES (true)', v_delta);
	END IF;
	PERFORM fleet.refresh_view(v_rel);
	RETURN v_rel;
END
$fn$;
COMMENT ON FUNCTION fleet.create_view(text, text, interval, regclass, text[], text[], text[], text[], text, text, text[]) IS
	'Declare a fleet view: name (schema-qualified), kind (rollup | latest | general), max_staleness, then for rollup: source, keys (name = expr), aggregates (name = count|sum|min|max|avg|first|last(...)), filter; for latest: source, keys, columns, order_by (time, tie-breakers), filter; for general: keys (unique key) and definition. Builds it at once; returns the table. Extension owner only.';

-- ------------------------------------------------------------------ refresh

CREATE FUNCTION fleet.view_rebuild(p_view_id integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the generated statements are re-planned on every call: JIT compilation
-- (about a second) would cost more than the refresh itself
SET jit = off
AS $$
DECLARE
	r fleet.view_registry;
	n bigint;
BEGIN
	SELECT * INTO r FROM fleet.view_registry v WHERE v.view_id OPERATOR(pg_catalog.=) p_view_id;
	IF r.source IS NOT NULL AND r.kind OPERATOR(pg_catalog.<>) 'general' THEN
		-- wait for the source's writers and keep new ones out: the delta log
		-- and the source then describe the same set of transactions
		EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', r.source);
	END IF;
	IF r.delta IS NOT NULL THEN
		EXECUTE pg_catalog.format('DELETE FROM %s', r.delta);
	END IF;
	EXECUTE pg_catalog.format('DELETE FROM %s', r.storage);
	-- written in the refresh's order (date and time keys first), so that a
	-- day's groups share pages and a refresh of today's rows touches few
	EXECUTE pg_catalog.format('INSERT INTO %s SELECT * FROM (%s) b ORDER BY %s', r.storage, r.build_sql,
		(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(o), ', ') FROM pg_catalog.unnest(fleet.view_key_order(r.storage, r.key_columns)) o));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION fleet.view_rebuild(integer) IS
	'Internal: recompute a fleet view in full from its source (SHARE lock on the source while it runs) and empty its delta log';

-- The refresh itself, in the caller's transaction, as whoever calls it (the
-- SECURITY DEFINER entry points: fleet.refresh_view, fleet.ensure_fresh,
-- fleet.verify_view; the worker through fleet.run_view_refresh).  With a
-- tenant, only the delta rows of that tenant are consumed and the tenant's
-- own watermark (fleet.view_tenant_as_of) advances, not the view's; a
-- rebuild marker, a view without tenant_id or a general view makes it a
-- full refresh.
CREATE FUNCTION fleet.view_refresh(view regclass, skip_locked boolean, tenant bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- the generated statements are re-planned on every call: JIT compilation
-- (about a second) would cost more than the refresh itself
SET jit = off
AS $$
DECLARE
	r fleet.view_registry;
	v_t0 timestamptz := pg_catalog.clock_timestamp();
	v_as_of timestamptz;
	v_rows bigint := 0;
	v_rebuild boolean := false;
	v_snap pg_snapshot;
	v_miss boolean;
	v_tenant bigint := tenant;
	v_rr boolean := pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed';
BEGIN
	IF skip_locked THEN
		SELECT * INTO r FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view FOR UPDATE SKIP LOCKED;
		IF NOT FOUND THEN
			RETURN NULL;
		END IF;
	ELSE
		SELECT * INTO r FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view FOR UPDATE;
		IF NOT FOUND THEN
			RAISE EXCEPTION '% is not a fleet view', view USING ERRCODE = 'undefined_object',
				HINT = 'fleet.view_status lists the fleet views.';
		END IF;
	END IF;
	IF r.delta IS NULL OR NOT 'tenant_id' OPERATOR(pg_catalog.=) ANY (r.key_columns) THEN
		v_tenant := NULL;
	END IF;

	-- The watermark is read before the snapshot of the consuming statement
	-- is taken (at REPEATABLE READ the snapshot is the transaction's, taken
	-- after its start), so everything committed before it is consumed.
	v_as_of := CASE WHEN v_rr THEN pg_catalog.now() ELSE pg_catalog.clock_timestamp() END;
	IF r.delta IS NOT NULL THEN
		EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE rebuild)', r.delta) INTO v_rebuild;
	END IF;
	IF v_rebuild THEN
		v_tenant := NULL;
		PERFORM fleet.view_rebuild(r.view_id);
		-- the source lock was granted only after all its writers finished
		v_as_of := CASE WHEN v_rr THEN pg_catalog.now() ELSE pg_catalog.clock_timestamp() END;
		EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', r.storage) INTO v_rows;
	ELSE
		EXECUTE r.apply_sql INTO v_rows USING v_tenant;
	END IF;

	IF v_tenant IS NOT NULL THEN
		INSERT INTO fleet.view_tenant_as_of AS w (view_id, tenant_id, as_of, refreshed_at)
		VALUES (r.view_id, v_tenant, v_as_of, pg_catalog.clock_timestamp())
		ON CONFLICT (view_id, tenant_id) DO UPDATE
		   SET as_of = GREATEST(w.as_of, excluded.as_of), refreshed_at = excluded.refreshed_at,
		       refreshes = w.refreshes OPERATOR(pg_catalog.+) 1;
		PERFORM pg_catalog.pg_notify('fleet_view_refreshed', pg_catalog.json_build_object(
			'view', r.relation::text, 'as_of', v_as_of, 'rows_changed', v_rows, 'rebuild', false, 'tenant', v_tenant)::text);
		RETURN v_rows;
	END IF;

	v_miss := r.as_of IS NOT NULL AND v_t0 OPERATOR(pg_catalog.-) r.as_of OPERATOR(pg_catalog.>) r.max_staleness;
	v_snap := pg_catalog.pg_current_snapshot();
	UPDATE fleet.view_registry v
	   SET as_of = GREATEST(v_as_of, v.as_of),
	       snapshot = v_snap,
	       last_refresh_at = pg_catalog.clock_timestamp(),
	       last_duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_t0,
	       last_rows_changed = v_rows,
	       refreshes = v.refreshes OPERATOR(pg_catalog.+) 1,
	       rebuilds = v.rebuilds OPERATOR(pg_catalog.+) (CASE WHEN v_rebuild THEN 1 ELSE 0 END),
	       bound_misses = v.bound_misses OPERATOR(pg_catalog.+) (CASE WHEN v_miss THEN 1 ELSE 0 END)
	 WHERE v.view_id OPERATOR(pg_catalog.=) r.view_id;
	-- tenant watermarks the view's own has caught up with say nothing more
	DELETE FROM fleet.view_tenant_as_of w
	 WHERE w.view_id OPERATOR(pg_catalog.=) r.view_id AND w.as_of OPERATOR(pg_catalog.<=) GREATEST(v_as_of, r.as_of);
	PERFORM pg_catalog.pg_notify('fleet_view_refreshed', pg_catalog.json_build_object(
		'view', r.relation::text, 'as_of', v_as_of, 'rows_changed', v_rows, 'rebuild', v_rebuild)::text);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION fleet.view_refresh(regclass, boolean, bigint) IS
	'Internal: refresh a fleet view in the caller''s transaction (fleet.refresh_view, fleet.ensure_fresh); with a tenant, consume only that tenant''s changes and advance its watermark in fleet.view_tenant_as_of, not the view''s as_of';

CREATE FUNCTION fleet.refresh_view(view regclass, skip_locked boolean DEFAULT false) RETURNS bigint
LANGUAGE sql VOLATILE
-- SECURITY DEFINER because a refresh reads every tenant's source rows and
-- writes the shared materialization and registry, while callers (fleet_admin,
-- and readers through fleet.ensure_fresh) have only SELECT on them.  It runs
-- only SQL generated by fleet.create_view.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT fleet.view_refresh(view, skip_locked, NULL)
$$;
COMMENT ON FUNCTION fleet.refresh_view(regclass, boolean) IS
	'Refresh a fleet view now, in the caller''s transaction: merge the committed changes of its source (or recompute a general view), advance as_of, NOTIFY fleet_view_refreshed; returns the rows changed. With skip_locked, returns NULL if a refresh of that view is already running.';

CREATE FUNCTION fleet.run_view_refresh(view regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_msg text;
BEGIN
	RETURN fleet.refresh_view(view, true) IS NOT NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
	UPDATE fleet.view_registry v SET last_error = v_msg, last_error_at = pg_catalog.clock_timestamp()
	 WHERE v.relation OPERATOR(pg_catalog.=) view;
	RAISE WARNING 'fleet view % refresh failed: %', view, v_msg;
	RETURN false;
END
$$;
COMMENT ON FUNCTION fleet.run_view_refresh(regclass) IS
	'The background worker''s unit of work: refresh one view, skipping it if another refresh holds it; a failure is recorded in last_error instead of raised';

CREATE FUNCTION fleet.views_due() RETURNS SETOF regclass
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT v.relation FROM fleet.view_registry v
	 WHERE v.enabled
	   AND (v.as_of IS NULL
	        OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>=)
	           ((v.as_of OPERATOR(pg_catalog.+) (v.max_staleness OPERATOR(pg_catalog./) 2))
	            OPERATOR(pg_catalog.-) (COALESCE(v.last_duration, '0'::interval) OPERATOR(pg_catalog.*) 2)))
	 ORDER BY v.as_of OPERATOR(pg_catalog.+) v.max_staleness NULLS FIRST
$$;
COMMENT ON FUNCTION fleet.views_due() IS
	'Views the worker should refresh now, most urgent first: a view is due once its age reaches half its bound minus twice its last refresh duration';

-- ------------------------------------------------------------------ freshness

CREATE VIEW fleet.view_status WITH (security_invoker = true) AS
SELECT v.relation AS view, v.kind, v.source, v.max_staleness AS bound, v.as_of,
       pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v.as_of AS age,
       ((pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v.as_of) OPERATOR(pg_catalog.<=) v.max_staleness) AS within_bound,
       v.last_refresh_at, v.last_duration, v.last_rows_changed AS rows_changed,
       v.refreshes, v.rebuilds, v.bound_misses, v.enabled, v.last_error, v.last_error_at
  FROM fleet.view_registry v;
COMMENT ON VIEW fleet.view_status IS
	'Freshness of every fleet view: kind, bound, as_of watermark, age, whether it is within its bound, last refresh duration and rows changed, refresh, rebuild and bound-miss counts, last error';

CREATE FUNCTION fleet.view_age(view regclass) RETURNS interval
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v.as_of
	  FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view
$$;
COMMENT ON FUNCTION fleet.view_age(regclass) IS
	'Age of a fleet view (now minus its as_of watermark), for a UI''s "updated 42 seconds ago"; NULL if it is not a fleet view';

-- The guaranteed read.  as_of is a commit-time watermark: every transaction
-- that committed before it is reflected in the rows the caller reads.  A
-- caller under row-level security acting for one tenant (fleet.set_tenant;
-- not a superuser, not BYPASSRLS) reads only that tenant's rows of a view
-- keyed by tenant_id, so for it the view only has to be fresh for that
-- tenant: ensure_fresh then consumes only that tenant's delta rows (the
-- capture writes one per statement and tenant) and returns the tenant's
-- watermark, the later of the view's as_of and the tenant's own
-- (fleet.view_tenant_as_of).  The cost follows that tenant's new rows, not
-- every tenant's.  The watermark is read before the snapshot of the
-- consuming statement, as for a full refresh, so every commit of the tenant
-- before it is in; other tenants' rows may be older, which the caller cannot
-- see.  It holds for what the caller reads in that tenant context: after a
-- change of context (or for a caller who sees every tenant) the view's own
-- as_of (fleet.view_status, fleet.view_age) is the watermark.
CREATE FUNCTION fleet.ensure_fresh(view regclass, max_age interval DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because a reader that needs a guarantee may have to
-- refresh the view (see fleet.refresh_view) with only SELECT on it.
-- search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r fleet.view_registry;
	v_limit interval;
	v_age interval;
	v_tenant bigint;
	v_as_of timestamptz;
BEGIN
	SELECT * INTO r FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view;
	IF NOT FOUND THEN
		RAISE EXCEPTION '% is not a fleet view', view USING ERRCODE = 'undefined_object';
	END IF;
	v_limit := COALESCE(max_age, r.max_staleness);
	IF r.delta IS NOT NULL AND 'tenant_id' OPERATOR(pg_catalog.=) ANY (r.key_columns)
	   AND fleet.current_tenant() IS NOT NULL
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles s
	                WHERE s.oid OPERATOR(pg_catalog.=) fleet.session_role()::pg_catalog.oid
	                  AND NOT s.rolsuper AND NOT s.rolbypassrls) THEN
		v_tenant := fleet.current_tenant();
	END IF;
	v_as_of := GREATEST(r.as_of, (SELECT w.as_of FROM fleet.view_tenant_as_of w
	                               WHERE w.view_id OPERATOR(pg_catalog.=) r.view_id AND w.tenant_id OPERATOR(pg_catalog.=) v_tenant));
	IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_as_of OPERATOR(pg_catalog.<=) v_limit THEN
		RETURN v_as_of;
	END IF;
	IF pg_catalog.current_setting('transaction_read_only')::boolean THEN
		RAISE EXCEPTION 'fleet view % is older than the % asked for', view, v_limit
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'It cannot be refreshed in a read-only transaction.';
	END IF;
	PERFORM fleet.view_refresh(view, false, v_tenant);
	SELECT * INTO r FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view;
	v_as_of := GREATEST(r.as_of, (SELECT w.as_of FROM fleet.view_tenant_as_of w
	                               WHERE w.view_id OPERATOR(pg_catalog.=) r.view_id AND w.tenant_id OPERATOR(pg_catalog.=) v_tenant));
	v_age := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_as_of;
	IF v_age OPERATOR(pg_catalog.>) v_limit THEN
		RAISE EXCEPTION 'fleet view % cannot be brought within % of now', view, v_limit
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = pg_catalog.format('After a refresh it is as of %s, %s old.', v_as_of, v_age),
			      HINT = 'Ask for a larger max_age, or read outside a long REPEATABLE READ transaction.';
	END IF;
	RETURN v_as_of;
END
$$;
COMMENT ON FUNCTION fleet.ensure_fresh(regclass, interval) IS
	'Guaranteed read: returns the view''s as_of once the view is at most max_age (default: its bound) old, refreshing it in the caller''s transaction if needed; raises object_not_in_prerequisite_state if that cannot be achieved. Never returns for older data. A caller under row-level security acting for one tenant gets that tenant''s watermark: only its tenant''s changes are merged (the rows it can read), and every transaction that committed before the returned as_of is in those rows.';

-- ------------------------------------------------------------------ manage

CREATE FUNCTION fleet.alter_view(view regclass, max_staleness interval DEFAULT NULL, enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because fleet_admin manages bounds without write access
-- to the registry (which holds the SQL the owner runs).  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF max_staleness IS NOT NULL AND max_staleness OPERATOR(pg_catalog.<=) '0'::interval THEN
		RAISE EXCEPTION 'max_staleness must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE fleet.view_registry v
	   SET max_staleness = COALESCE(alter_view.max_staleness, v.max_staleness),
	       enabled = COALESCE(alter_view.enabled, v.enabled)
	 WHERE v.relation OPERATOR(pg_catalog.=) view;
	IF NOT FOUND THEN
		RAISE EXCEPTION '% is not a fleet view', view USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.alter_view(regclass, interval, boolean) IS
	'Change a fleet view''s bound (max_staleness) or switch its scheduled refresh on or off (fleet_admin)';

CREATE FUNCTION fleet.drop_view(view regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER for the same reason as fleet.create_view (owner only,
-- checked first).  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r fleet.view_registry;
BEGIN
	PERFORM fleet.view_owner_check();
	SELECT * INTO r FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION '% is not a fleet view', view USING ERRCODE = 'undefined_object';
	END IF;
	IF r.delta IS NOT NULL THEN
		EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', 'fleet_view_' OPERATOR(pg_catalog.||) r.view_id OPERATOR(pg_catalog.||) '_ins', r.source);
		EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', 'fleet_view_' OPERATOR(pg_catalog.||) r.view_id OPERATOR(pg_catalog.||) '_upd', r.source);
		EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', 'fleet_view_' OPERATOR(pg_catalog.||) r.view_id OPERATOR(pg_catalog.||) '_del', r.source);
		EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', 'fleet_view_' OPERATOR(pg_catalog.||) r.view_id OPERATOR(pg_catalog.||) '_trunc', r.source);
		EXECUTE pg_catalog.format('DROP FUNCTION fleet.%I()', 'view_capture_' OPERATOR(pg_catalog.||) r.view_id);
		EXECUTE pg_catalog.format('DROP TABLE %s', r.delta);
	END IF;
	DELETE FROM fleet.role_grant g WHERE g.object_kind OPERATOR(pg_catalog.=) 'TABLE'
	   AND g.object_name OPERATOR(pg_catalog.=) ANY (ARRAY[r.relation::text, r.storage::text]);
	DELETE FROM fleet.view_tenant_as_of w WHERE w.view_id OPERATOR(pg_catalog.=) r.view_id;
	DELETE FROM fleet.view_registry v WHERE v.view_id OPERATOR(pg_catalog.=) r.view_id;
	IF r.storage OPERATOR(pg_catalog.<>) r.relation THEN
		EXECUTE pg_catalog.format('DROP VIEW %s', r.relation);
	END IF;
	EXECUTE pg_catalog.format('DROP TABLE %s', r.storage);
END
$$;
COMMENT ON FUNCTION fleet.drop_view(regclass) IS 'Drop a fleet view with its delta log and capture triggers (extension owner only)';

-- ------------------------------------------------------------------ verify

CREATE FUNCTION fleet.verify_view(view regclass)
RETURNS TABLE (difference text, row_data jsonb)
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because the comparison needs every tenant's rows of the
-- view and its source (see fleet.refresh_view).  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- the generated statements are re-planned on every call: JIT compilation
-- (about a second) would cost more than the refresh itself
SET jit = off
AS $$
DECLARE
	r fleet.view_registry;
BEGIN
	SELECT * INTO r FROM fleet.view_registry v WHERE v.relation OPERATOR(pg_catalog.=) view;
	IF NOT FOUND THEN
		RAISE EXCEPTION '% is not a fleet view', view USING ERRCODE = 'undefined_object';
	END IF;
	-- Writers of the source wait while we bring the view up to date and
	-- compare it with a recomputation: both then see the same transactions.
	IF r.source IS NOT NULL THEN
		EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', r.source);
	END IF;
	PERFORM fleet.refresh_view(view);
	RETURN QUERY EXECUTE pg_catalog.format(
		'SELECT ''missing''::text, pg_catalog.to_jsonb(x) FROM (SELECT * FROM (%1$s) b EXCEPT ALL SELECT * FROM %2$s) x'
		' UNION ALL '
		'SELECT ''extra''::text, pg_catalog.to_jsonb(x) FROM (SELECT * FROM %2$s EXCEPT ALL SELECT * FROM (%1$s) b) x'
		' ORDER BY 1, 2',
		r.build_sql, r.storage);
END
$$;
COMMENT ON FUNCTION fleet.verify_view(regclass) IS
	'Compare a fleet view with a full recomputation of its definition (after bringing it up to date, with the source''s writers held back): one row per difference, "missing" (in the recomputation, not the view) or "extra"; no rows means identical';

-- ------------------------------------------------------------------ zones

-- A tenant's time zone change re-cuts its days: every rollup or latest view
-- keyed by fleet.local_day() gets a rebuild marker, so its next refresh
-- recomputes it in full (general views are recomputed on every refresh).
CREATE FUNCTION fleet.view_zone_changed() RETURNS trigger
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because fleet_admin, who may change a tenant's zone, has
-- no privilege on the delta logs.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM fleet_old o JOIN fleet_new n ON n.tenant_id OPERATOR(pg_catalog.=) o.tenant_id
	                WHERE n.timezone OPERATOR(pg_catalog.<>) o.timezone) THEN
		RETURN NULL;
	END IF;
	FOR r IN SELECT v.delta FROM fleet.view_registry v
	          WHERE v.delta IS NOT NULL
	            AND pg_catalog.strpos(v.build_sql, 'fleet.local_day(') OPERATOR(pg_catalog.>) 0
	          ORDER BY v.view_id LOOP
		EXECUTE pg_catalog.format('INSERT INTO %s (rebuild) VALUES (true)', r.delta);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION fleet.view_zone_changed() IS
	'Trigger of fleet.tenant: after a tenant''s time zone changes, mark every fleet view keyed by fleet.local_day() for a full rebuild at its next refresh';
CREATE TRIGGER tenant_zone_changed AFTER UPDATE ON fleet.tenant
	REFERENCING OLD TABLE AS fleet_old NEW TABLE AS fleet_new
	FOR EACH STATEMENT EXECUTE FUNCTION fleet.view_zone_changed();

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.view_registry', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.view_registry', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.view_registry', 'SELECT'),
	('fleet_admin',   'TABLE', 'fleet.view_status', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.view_status', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.view_status', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.view_age(regclass)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.view_age(regclass)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.view_age(regclass)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.ensure_fresh(regclass,interval)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.ensure_fresh(regclass,interval)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.ensure_fresh(regclass,interval)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.refresh_view(regclass,boolean)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.alter_view(regclass,interval,boolean)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.verify_view(regclass)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.first_by(anyelement,anycompatible)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.first_by(anyelement,anycompatible)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.first_by(anyelement,anycompatible)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.last_by(anyelement,anycompatible)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.last_by(anyelement,anycompatible)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.last_by(anyelement,anycompatible)', 'EXECUTE');
