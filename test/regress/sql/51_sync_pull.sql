-- Offline sync, pull side: a full copy in pages, then changes from a
-- cursor; removals when entities leave the driver's scope; the last
-- processed mutation id; every cursor error.  A replica kept from the
-- pulled pages must equal the server's scope query for the driver.
\set VERBOSITY terse
SELECT fleet.create_tenant('Pull Co') AS tp \gset
SELECT fleet.set_tenant(:tp) IS NOT NULL AS pull_co;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:tp, 'carl', 'Carl'), (:tp, 'dave', 'Dave');
SELECT driver_id AS carl FROM fleet.driver WHERE tenant_id = :tp AND code = 'carl' \gset
SELECT driver_id AS dave FROM fleet.driver WHERE tenant_id = :tp AND code = 'dave' \gset
INSERT INTO fleet.vehicle (tenant_id, code, name) VALUES (:tp, 'TRK-1', 'Truck one'), (:tp, 'TRK-2', 'Truck two');
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
SELECT :tp, 'P-1', :carl, vehicle_id, 'assigned' FROM fleet.vehicle WHERE tenant_id = :tp AND code = 'TRK-1';
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
SELECT :tp, 'P-2', :dave, vehicle_id, 'assigned' FROM fleet.vehicle WHERE tenant_id = :tp AND code = 'TRK-2';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT :tp, j.job_id, g, j.driver_id, j.code || '/' || g FROM fleet.job j, generate_series(1, 3) g WHERE j.tenant_id = :tp;
SELECT s.stop_id AS p1s1 FROM fleet.stop s WHERE s.tenant_id = :tp AND s.address = 'P-1/1' \gset
SELECT s.stop_id AS p1s2 FROM fleet.stop s WHERE s.tenant_id = :tp AND s.address = 'P-1/2' \gset
SELECT s.stop_id AS p2s1 FROM fleet.stop s WHERE s.tenant_id = :tp AND s.address = 'P-2/1' \gset

-- The app's local copy, and how it applies a pulled page.
CREATE TEMP TABLE replica (client uuid, entity text, id bigint, data jsonb, PRIMARY KEY (client, entity, id));
CREATE TEMP TABLE last_pull (client uuid PRIMARY KEY, cursor text, lmid bigint, pages int);
GRANT ALL ON replica, last_pull TO fleet_app;
CREATE FUNCTION pg_temp.pull_all(p_client uuid, p_page int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r jsonb; c jsonb; v_cursor text; n int := 0; ops text := '';
BEGIN
	SELECT l.cursor INTO v_cursor FROM last_pull l WHERE l.client = p_client;
	LOOP
		r := fleet.sync_pull(p_client, v_cursor, p_page);
		n := n + 1;
		FOR c IN SELECT * FROM jsonb_array_elements(r -> 'changes') LOOP
			ops := ops || (c ->> 'op') || coalesce(':' || (c ->> 'entity'), '') || ' ';
			IF c ->> 'op' = 'clear' THEN
				DELETE FROM replica WHERE client = p_client;
			ELSIF c ->> 'op' = 'del' THEN
				DELETE FROM replica WHERE client = p_client AND entity = c ->> 'entity' AND id = (c ->> 'id')::bigint;
			ELSE
				INSERT INTO replica VALUES (p_client, c ->> 'entity', (c ->> 'id')::bigint, c -> 'data')
				ON CONFLICT (client, entity, id) DO UPDATE SET data = EXCLUDED.data;
			END IF;
		END LOOP;
		v_cursor := r ->> 'cursor';
		EXIT WHEN NOT (r ->> 'has_more')::boolean;
	END LOOP;
	INSERT INTO last_pull VALUES (p_client, v_cursor, (r ->> 'last_mutation_id')::bigint, n)
	ON CONFLICT (client) DO UPDATE SET cursor = EXCLUDED.cursor, lmid = EXCLUDED.lmid, pages = EXCLUDED.pages;
	RETURN btrim(ops);
END $$;
CREATE FUNCTION pg_temp.replica_matches(p_client uuid, p_driver bigint) RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (
		(SELECT entity, id, data FROM replica WHERE client = p_client
		 EXCEPT SELECT entity, entity_id, data FROM fleet.sync_scope(p_driver))
		UNION ALL
		(SELECT entity, entity_id, data FROM fleet.sync_scope(p_driver)
		 EXCEPT SELECT entity, id, data FROM replica WHERE client = p_client))
$$;
\set C '''00000000-0000-0000-0000-0000000000c1'''
\set D '''00000000-0000-0000-0000-0000000000d1'''

SET ROLE fleet_app;
SELECT fleet.sync_register_client(:C, :carl) IS NOT NULL AS carl_app, fleet.sync_register_client(:D, :dave) IS NOT NULL AS dave_app;

-- A first pull without a cursor: "clear", then the whole scope.  In pages
-- of two: the cursor names the snapshot position until the copy is done.
SELECT r -> 'changes' -> 0 AS first_op, jsonb_array_length(r -> 'changes') AS ops, r ->> 'has_more' AS has_more,
       split_part(r ->> 'cursor', ':', 1) AS version, split_part(r ->> 'cursor', ':', 3) AS phase,
       r ->> 'last_mutation_id' AS lmid
  FROM fleet.sync_pull(:C, NULL, 2) r;
SELECT pg_temp.pull_all(:C, 2) AS carl_ops;
SELECT pages, lmid, split_part(cursor, ':', 3) AS phase FROM last_pull WHERE client = :C;
SELECT entity, data ->> 'code' AS code, data ->> 'address' AS address, data ->> 'status' AS status
  FROM replica WHERE client = :C ORDER BY entity, id;
SELECT pg_temp.replica_matches(:C, :carl) AS carl_matches;
SELECT pg_temp.pull_all(:D, 100) AS dave_ops, pg_temp.replica_matches(:D, :dave) AS dave_matches;

-- Nothing changed: an empty page, the same cursor.
SELECT r -> 'changes' AS changes, r ->> 'has_more' AS has_more, r ->> 'cursor' = (SELECT cursor FROM last_pull WHERE client = :C) AS same_cursor
  FROM fleet.sync_pull(:C, (SELECT cursor FROM last_pull WHERE client = :C)) r;

-- Carl works offline and pushes; the dispatcher edits and reassigns.
SELECT mutation_id, result FROM fleet.sync_push(:C, format('[
    {"id": 1, "workflow": "stop_status", "args": {"stop_id": %1$s, "status": "arrived"}, "base_version": 1},
    {"id": 2, "workflow": "proof_of_delivery", "args": {"stop_id": %1$s, "kind": "signature", "metadata": {"by": "x"}},
     "client_time": "2026-02-01T12:00:00Z"}]', :p1s1)::jsonb);
RESET ROLE;
UPDATE fleet.stop SET address = 'P-1/2 (moved)' WHERE stop_id = :p1s2;
UPDATE fleet.stop SET driver_id = :dave WHERE stop_id = :p1s2;		-- P-1/2 leaves Carl's scope
UPDATE fleet.stop SET driver_id = :carl WHERE stop_id = :p2s1;		-- P-2/1 enters it, with its job and truck
UPDATE fleet.vehicle SET name = 'Truck two (serviced)' WHERE tenant_id = :tp AND code = 'TRK-2';
SET ROLE fleet_app;
SELECT pg_temp.pull_all(:C, 3) AS carl_ops;
SELECT pages, lmid FROM last_pull WHERE client = :C;
SELECT entity, data ->> 'code' AS code, data ->> 'name' AS name, data ->> 'address' AS address, data ->> 'status' AS status,
       jsonb_array_length(data -> 'evidence') AS evidence
  FROM replica WHERE client = :C ORDER BY entity, id;
SELECT pg_temp.replica_matches(:C, :carl) AS carl_matches;
SELECT pg_temp.pull_all(:D, 3) AS dave_ops, pg_temp.replica_matches(:D, :dave) AS dave_matches;
-- neither app ever holds anything outside its driver's scope
SELECT count(*) AS foreign_rows FROM replica r
 WHERE (r.client = :C AND fleet.sync_entity(:carl, r.entity, r.id) IS NULL)
    OR (r.client = :D AND fleet.sync_entity(:dave, r.entity, r.id) IS NULL);

-- A job leaving Carl entirely (driver and stops) comes as removals of the
-- job, its stops and its vehicle.
RESET ROLE;
UPDATE fleet.stop SET driver_id = :dave WHERE tenant_id = :tp AND job_id = (SELECT job_id FROM fleet.job WHERE tenant_id = :tp AND code = 'P-1');
UPDATE fleet.job SET driver_id = :dave WHERE tenant_id = :tp AND code = 'P-1';
SET ROLE fleet_app;
SELECT pg_temp.pull_all(:C, 50) AS carl_ops;
SELECT entity, data ->> 'code' AS code FROM replica WHERE client = :C ORDER BY entity, id;
SELECT pg_temp.replica_matches(:C, :carl) AS carl_matches;
SELECT pg_temp.pull_all(:D, 50) IS NOT NULL AS dave_pulled, pg_temp.replica_matches(:D, :dave) AS dave_matches;

-- A long-offline app catches up in pages: 40 changes, pages of 7.
RESET ROLE;
SELECT set_config('sync_test.stop', :'p2s1', false) IS NOT NULL AS ok;
DO $$ BEGIN FOR i IN 1..40 LOOP
	UPDATE fleet.stop SET address = 'P-2/1 rev ' || i WHERE stop_id = current_setting('sync_test.stop')::bigint;
END LOOP; END $$;
SET ROLE fleet_app;
SELECT pg_temp.pull_all(:C, 7) AS carl_ops;
SELECT pages, lmid FROM last_pull WHERE client = :C;
SELECT pg_temp.replica_matches(:C, :carl) AS carl_matches;

-- A cursor of another installation (epoch) restarts with a full copy.
SELECT r -> 'changes' -> 0 AS first_op
  FROM fleet.sync_pull(:C, 'fleet1:1:c:1:0') r;

-- Errors.
SELECT fleet.sync_pull(:C, 'garbage');
SELECT fleet.sync_pull(:C, 'fleet2:1:c:1:0');
SELECT fleet.sync_pull(:C, 'fleet1:' || (SELECT epoch FROM fleet.sync_state) || ':c:abc:0');
SELECT fleet.sync_pull(:C, 'fleet1:' || (SELECT epoch FROM fleet.sync_state) || ':c:1');
SELECT fleet.sync_pull(:C, 'fleet1:' || (SELECT epoch FROM fleet.sync_state) || ':s:1:truck:1');
SELECT fleet.sync_pull(:C, 'fleet1:' || (SELECT epoch FROM fleet.sync_state) || ':c:999999999999:0');
SELECT fleet.sync_pull(:C, NULL, 0);
SELECT fleet.sync_pull(:C, NULL, 100001);
SELECT fleet.sync_pull('00000000-0000-0000-0000-00000000dead', NULL);
RESET ROLE;
SELECT fleet.set_tenant((SELECT tenant_id FROM fleet.tenant WHERE name = 'Sync South')) IS NOT NULL AS south;
SET ROLE fleet_app;
SELECT fleet.sync_pull(:C, NULL);		-- another tenant does not know Carl's app
RESET ROLE;
SELECT fleet.clear_tenant();
SET ROLE fleet_app;
SELECT fleet.sync_pull(:C, NULL);
RESET ROLE;
SELECT fleet.set_tenant(:tp) IS NOT NULL AS pull_co;
SET ROLE fleet_admin;
SELECT fleet.sync_deactivate_client(:D);
SET ROLE fleet_app;
SELECT fleet.sync_pull(:D, NULL);
SET ROLE fleet_analyst;
SELECT fleet.sync_pull(:C, NULL);
RESET ROLE;
