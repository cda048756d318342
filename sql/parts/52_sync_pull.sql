-- 52_sync_pull: a driver app catching up from its cursor.
--
-- A cursor is "fleet1:<epoch>:c:<txid>:<change_id>": everything in the
-- driver's change log up to that (transaction id, change id) position has
-- been delivered.  A pull reads the rows after it whose transaction id is
-- below the oldest transaction still running (pg_snapshot_xmin of the
-- current snapshot): every such transaction has ended, and any transaction
-- that commits later has a transaction id at or above that horizon, so a
-- row committed late is delivered by a later pull, never skipped.  A row is
-- delivered as a put (the entity as the driver sees it now) when the entity
-- is in the driver's scope, else as a removal.  The entities of a page are
-- built by one call of fleet.sync_entities() (50_sync_model), the same
-- definition fleet.sync_scope() uses.
--
-- Without a cursor (or with one from another installation: another epoch)
-- the app gets a full copy first: a "clear", then its whole scope in pages
-- under a cursor "fleet1:<epoch>:s:<horizon>:<entity>:<id>", continuing
-- with the change log from the horizon of the first page.  The reported
-- last_mutation_id counts only mutations whose push transaction lies below
-- the horizon of what was delivered, so once has_more is false the app's
-- copy contains the effects of every mutation up to it.

CREATE FUNCTION fleet.sync_pull(client_id uuid, cursor text DEFAULT NULL, max_changes integer DEFAULT 500)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant bigint := fleet.current_tenant();
	c record;
	v_epoch bigint;
	v_parts text[];
	v_mode text;
	v_reset boolean := false;
	v_xmin xid8;			-- snapshot mode: horizon of the first page
	v_ent text := '';
	v_eid bigint := 0;
	v_txid xid8;			-- change mode: position
	v_pos bigint;
	v_horizon xid8;
	v_lmid_h xid8;			-- horizon for last_mutation_id
	v_changes jsonb;
	v_n integer;
	v_more boolean;
	v_last_ent text;
	v_last_id bigint;
	v_last_txid xid8;
	v_last_pos bigint;
	v_cursor text;
	v_lmid bigint;
	v_max integer;
BEGIN
	IF v_tenant IS NULL THEN
		RAISE EXCEPTION 'no tenant context is set'
			USING ERRCODE = 'insufficient_privilege', HINT = 'Call SELECT fleet.set_tenant(tenant_id) first.';
	END IF;
	SELECT s.max_page INTO v_max FROM fleet.sync_setting s;
	IF max_changes IS NULL OR max_changes OPERATOR(pg_catalog.<) 1 OR max_changes OPERATOR(pg_catalog.>) v_max THEN
		RAISE EXCEPTION 'max_changes must be between 1 and %', v_max USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT * INTO c FROM fleet.sync_client x
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.client_id OPERATOR(pg_catalog.=) sync_pull.client_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown sync client %', client_id
			USING ERRCODE = 'undefined_object', HINT = 'Register the app with fleet.sync_register_client() first.';
	END IF;
	IF NOT c.active THEN
		RAISE EXCEPTION 'sync client % is deactivated', client_id USING ERRCODE = 'insufficient_privilege';
	END IF;
	SELECT s.epoch INTO v_epoch FROM fleet.sync_state s;

	IF cursor IS NULL THEN
		v_mode := 's'; v_reset := true;
	ELSE
		v_parts := pg_catalog.string_to_array(cursor, ':');
		BEGIN
			IF v_parts[1] OPERATOR(pg_catalog.<>) 'fleet1' OR v_parts[2] OPERATOR(pg_catalog.!~) '^[0-9]{1,19}$' OR v_parts[4] OPERATOR(pg_catalog.!~) '^[0-9]{1,20}$'
			   OR NOT ((v_parts[3] OPERATOR(pg_catalog.=) 'c' AND pg_catalog.cardinality(v_parts) OPERATOR(pg_catalog.=) 5 AND v_parts[5] OPERATOR(pg_catalog.~) '^[0-9]{1,19}$')
			           OR (v_parts[3] OPERATOR(pg_catalog.=) 's' AND pg_catalog.cardinality(v_parts) OPERATOR(pg_catalog.=) 6
			               AND v_parts[5] OPERATOR(pg_catalog.=) ANY (ARRAY['', 'job', 'stop', 'vehicle']) AND v_parts[6] OPERATOR(pg_catalog.~) '^[0-9]{1,19}$')) THEN
				RAISE EXCEPTION 'malformed' USING ERRCODE = 'data_exception';
			END IF;
			IF v_parts[2]::bigint OPERATOR(pg_catalog.<>) v_epoch THEN
				v_mode := 's'; v_reset := true;		-- another installation: start over
			ELSIF v_parts[3] OPERATOR(pg_catalog.=) 's' THEN
				v_mode := 's';
				v_xmin := v_parts[4]::xid8; v_ent := v_parts[5]; v_eid := v_parts[6]::bigint;
			ELSE
				v_mode := 'c';
				v_txid := v_parts[4]::xid8; v_pos := v_parts[5]::bigint;
			END IF;
		EXCEPTION WHEN data_exception THEN
			RAISE EXCEPTION 'invalid sync cursor'
				USING ERRCODE = 'invalid_parameter_value', DETAIL = pg_catalog.format('Cursor: %s', cursor),
				      HINT = 'Pass the cursor of the previous pull unchanged, or NULL for a full copy.';
		END;
		IF v_mode OPERATOR(pg_catalog.=) 'c' AND v_txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()) THEN
			RAISE EXCEPTION 'invalid sync cursor: it names a transaction that has not started yet'
				USING ERRCODE = 'invalid_parameter_value', DETAIL = pg_catalog.format('Cursor: %s', cursor);
		END IF;
	END IF;

	IF v_mode OPERATOR(pg_catalog.=) 's' THEN
		IF v_xmin IS NULL THEN
			v_xmin := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
		END IF;
		WITH page AS (
			SELECT k.entity, k.entity_id
			  FROM fleet.sync_scope_keys(c.driver_id) k
			 WHERE ROW(k.entity, k.entity_id) OPERATOR(pg_catalog.>) ROW(v_ent, v_eid)
			 ORDER BY k.entity, k.entity_id
			 LIMIT max_changes OPERATOR(pg_catalog.+) 1),
		numbered AS (
			SELECT p.entity, p.entity_id, pg_catalog.row_number() OVER (ORDER BY p.entity, p.entity_id) AS rn
			  FROM page p),
		keys AS (
			SELECT pg_catalog.array_agg(n.entity) AS entities, pg_catalog.array_agg(n.entity_id) AS entity_ids
			  FROM numbered n WHERE n.rn OPERATOR(pg_catalog.<=) max_changes),
		built AS (
			SELECT e.entity, e.entity_id, e.data
			  FROM keys k CROSS JOIN LATERAL fleet.sync_entities(c.driver_id, k.entities, k.entity_ids) e)
		SELECT (SELECT pg_catalog.count(*) FROM numbered) OPERATOR(pg_catalog.>) max_changes,
		       -- the page's keys are distinct and in (entity, id) order, as built's rows
		       (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
		                   'op', 'put', 'entity', b.entity, 'id', b.entity_id, 'data', b.data) ORDER BY b.entity, b.entity_id), '[]')
		          FROM built b),
		       (SELECT n.entity FROM numbered n WHERE n.rn OPERATOR(pg_catalog.<=) max_changes ORDER BY n.rn DESC LIMIT 1),
		       (SELECT n.entity_id FROM numbered n WHERE n.rn OPERATOR(pg_catalog.<=) max_changes ORDER BY n.rn DESC LIMIT 1)
		  INTO v_more, v_changes, v_last_ent, v_last_id;
		IF v_reset THEN
			v_changes := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('op', 'clear')) OPERATOR(pg_catalog.||) v_changes;
		END IF;
		IF v_more THEN
			v_cursor := pg_catalog.format('fleet1:%s:s:%s:%s:%s', v_epoch, v_xmin, v_last_ent, v_last_id);
		ELSE
			v_cursor := pg_catalog.format('fleet1:%s:c:%s:0', v_epoch, v_xmin);
			v_txid := v_xmin; v_pos := 0;
		END IF;
		v_lmid_h := v_xmin;
	ELSE
		v_horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
		WITH page AS (
			SELECT x.txid, x.change_id, x.entity, x.entity_id
			  FROM fleet.sync_change x
			 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.driver_id OPERATOR(pg_catalog.=) c.driver_id
			   AND ROW(x.txid, x.change_id) OPERATOR(pg_catalog.>) ROW(v_txid, v_pos)
			   AND x.txid OPERATOR(pg_catalog.<) v_horizon
			 ORDER BY x.txid, x.change_id
			 LIMIT max_changes OPERATOR(pg_catalog.+) 1),
		numbered AS (
			SELECT p.*, pg_catalog.row_number() OVER (ORDER BY p.txid, p.change_id) AS rn FROM page p),
		keys AS (
			SELECT pg_catalog.array_agg(n.entity) AS entities, pg_catalog.array_agg(n.entity_id) AS entity_ids
			  FROM numbered n WHERE n.rn OPERATOR(pg_catalog.<=) max_changes),
		ops AS (	-- one row per distinct entity of the page
			SELECT e.entity, e.entity_id, e.data
			  FROM keys k CROSS JOIN LATERAL fleet.sync_entities(c.driver_id, k.entities, k.entity_ids) e)
		SELECT (SELECT pg_catalog.count(*) FROM numbered) OPERATOR(pg_catalog.>) max_changes,
		       (SELECT COALESCE(pg_catalog.jsonb_agg(
		               CASE WHEN o.data IS NULL
		                    THEN pg_catalog.jsonb_build_object('op', 'del', 'entity', o.entity, 'id', o.entity_id)
		                    ELSE pg_catalog.jsonb_build_object('op', 'put', 'entity', o.entity, 'id', o.entity_id, 'data', o.data)
		               END ORDER BY o.entity, o.entity_id), '[]') FROM ops o),
		       (SELECT n.txid FROM numbered n WHERE n.rn OPERATOR(pg_catalog.<=) max_changes ORDER BY n.rn DESC LIMIT 1),
		       (SELECT n.change_id FROM numbered n WHERE n.rn OPERATOR(pg_catalog.<=) max_changes ORDER BY n.rn DESC LIMIT 1)
		  INTO v_more, v_changes, v_last_txid, v_last_pos;
		IF v_last_txid IS NOT NULL THEN
			v_txid := v_last_txid; v_pos := v_last_pos;
		END IF;
		v_cursor := pg_catalog.format('fleet1:%s:c:%s:%s', v_epoch, v_txid, v_pos);
		-- a page that stops inside the log vouches only for transactions
		-- before the last one it delivered
		v_lmid_h := CASE WHEN v_more THEN v_txid ELSE v_horizon END;
	END IF;

	SELECT COALESCE(
	         (SELECT pg_catalog.min(m.mutation_id) OPERATOR(pg_catalog.-) 1 FROM fleet.sync_mutation m
	           WHERE m.tenant_id OPERATOR(pg_catalog.=) v_tenant AND m.client_id OPERATOR(pg_catalog.=) sync_pull.client_id AND m.txid OPERATOR(pg_catalog.>=) v_lmid_h),
	         x.last_mutation_id)
	  INTO v_lmid
	  FROM fleet.sync_client x
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.client_id OPERATOR(pg_catalog.=) sync_pull.client_id;

	-- remember how far the app got (for backlog figures); never wait for
	-- a push of the same app that holds the row
	PERFORM 1 FROM fleet.sync_client x
	  WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.client_id OPERATOR(pg_catalog.=) sync_pull.client_id
	    FOR NO KEY UPDATE SKIP LOCKED;
	IF FOUND THEN
	UPDATE fleet.sync_client x
	   SET last_pull_at = pg_catalog.now(),
	       pull_txid = CASE WHEN v_mode OPERATOR(pg_catalog.=) 'c' OR NOT v_more THEN v_txid ELSE x.pull_txid END,
	       pull_change = CASE WHEN v_mode OPERATOR(pg_catalog.=) 'c' OR NOT v_more THEN v_pos ELSE x.pull_change END
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) v_tenant AND x.client_id OPERATOR(pg_catalog.=) sync_pull.client_id;
	END IF;

	RETURN pg_catalog.jsonb_build_object('changes', v_changes, 'last_mutation_id', v_lmid,
	                                     'cursor', v_cursor, 'has_more', v_more);
END
$$;
COMMENT ON FUNCTION fleet.sync_pull(uuid, text, integer) IS
	'Pull a driver app''s changes after its cursor (NULL: a full copy, starting with a "clear"): {changes: [{op: put|del|clear, entity: job|stop|vehicle, id, data}], last_mutation_id, cursor, has_more}. Gap-free: rows are read below the oldest running transaction, so a late commit is delivered later, never skipped. At most max_changes change-log rows (or entities of a full copy) per page.';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_app',   'FUNCTION', 'fleet.sync_pull(uuid,text,integer)', 'EXECUTE'),
	('fleet_admin', 'FUNCTION', 'fleet.sync_pull(uuid,text,integer)', 'EXECUTE');
