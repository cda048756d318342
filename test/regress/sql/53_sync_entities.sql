-- fleet.sync_entities(): every entity a driver's app may hold, built in one
-- query; pulls, fleet.sync_scope() and fleet.sync_entity() all use it.  It
-- must build exactly the JSON of the per-entity definition it replaced
-- (kept here as the oracle): for every key of every driver, in scope or not,
-- and for keys that name nothing.  Then pulls in both modes against the
-- oracle, and the error path.
\set VERBOSITY terse
SELECT fleet.create_tenant('Entities Co') AS te \gset
SELECT fleet.set_tenant(:te) IS NOT NULL AS entities_co;
INSERT INTO fleet.driver (tenant_id, code, name) VALUES (:te, 'ann', 'Ann'), (:te, 'bob', 'Bob'), (:te, 'cy', 'Cy');
SELECT driver_id AS ann FROM fleet.driver WHERE tenant_id = :te AND code = 'ann' \gset
SELECT driver_id AS bob FROM fleet.driver WHERE tenant_id = :te AND code = 'bob' \gset
SELECT driver_id AS cy FROM fleet.driver WHERE tenant_id = :te AND code = 'cy' \gset
INSERT INTO fleet.vehicle (tenant_id, code, name, plate) VALUES (:te, 'E-1', 'Van', 'B-E 1'), (:te, 'E-2', NULL, NULL), (:te, 'E-3', 'Idle', NULL);
-- E-J1: Ann drives it, stops for Ann and Bob; E-J2: Bob drives, one stop
-- for Ann; E-J3: nobody drives it, stops for Bob and one unassigned
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status, planned_start)
SELECT :te, 'E-J1', :ann, vehicle_id, 'assigned', '2026-03-01 08:00Z' FROM fleet.vehicle WHERE tenant_id = :te AND code = 'E-1';
INSERT INTO fleet.job (tenant_id, code, driver_id, status) VALUES (:te, 'E-J2', :bob, 'assigned');
INSERT INTO fleet.job (tenant_id, code, vehicle_id, status)
SELECT :te, 'E-J3', vehicle_id, 'planned' FROM fleet.vehicle WHERE tenant_id = :te AND code = 'E-2';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address, lat, lon)
SELECT :te, j.job_id, g, CASE WHEN g = 3 THEN :bob ELSE :ann END, j.code || '/' || g, 52.5 + g / 100.0, 13.4
  FROM fleet.job j, generate_series(1, 3) g WHERE j.tenant_id = :te AND j.code = 'E-J1';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT :te, j.job_id, 1, :ann, 'E-J2/1' FROM fleet.job j WHERE j.tenant_id = :te AND j.code = 'E-J2';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT :te, j.job_id, g, CASE WHEN g = 1 THEN :bob END, 'E-J3/' || g FROM fleet.job j, generate_series(1, 2) g
 WHERE j.tenant_id = :te AND j.code = 'E-J3';
-- evidence, several per stop, on stops of both drivers
INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at, metadata)
SELECT :te, s.stop_id, k, s.driver_id, '2026-03-01 09:00Z'::timestamptz + g * interval '1 minute', jsonb_build_object('n', g)
  FROM fleet.stop s, generate_series(1, 3) g, unnest(ARRAY['photo', 'signature']) k
 WHERE s.tenant_id = :te AND s.address IN ('E-J1/1', 'E-J1/3', 'E-J3/2');
-- another tenant's job and stop: in no scope of this tenant's drivers
SELECT fleet.create_tenant('Entities Other') AS tx \gset
SELECT fleet.set_tenant(:tx) IS NOT NULL AS entities_other;
INSERT INTO fleet.job (tenant_id, code) VALUES (:tx, 'X-J1');
INSERT INTO fleet.stop (tenant_id, job_id, seq, address) SELECT :tx, job_id, 1, 'X-J1/1' FROM fleet.job WHERE tenant_id = :tx;
SELECT fleet.set_tenant(:te) IS NOT NULL AS entities_co;

CREATE FUNCTION pg_temp.oracle(driver_id bigint, entity text, entity_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT CASE entity
	WHEN 'stop' THEN (
		SELECT jsonb_build_object(
			'stop_id', s.stop_id, 'job_id', s.job_id, 'seq', s.seq, 'kind', s.kind, 'address', s.address,
			'lat', s.lat, 'lon', s.lon, 'window_start', s.window_start, 'window_end', s.window_end,
			'driver_id', s.driver_id, 'status', s.status, 'version', s.version,
			'arrived_at', s.arrived_at, 'completed_at', s.completed_at,
			'evidence', COALESCE((
				SELECT jsonb_agg(jsonb_build_object(
					'pod_id', p.pod_id, 'kind', p.kind, 'driver_id', p.driver_id,
					'captured_at', p.captured_at, 'metadata', p.metadata) ORDER BY p.pod_id)
				  FROM fleet.proof_of_delivery p
				 WHERE p.tenant_id = s.tenant_id AND p.stop_id = s.stop_id), '[]'))
		  FROM fleet.stop s
		 WHERE s.tenant_id = fleet.current_tenant() AND s.stop_id = oracle.entity_id AND s.driver_id = oracle.driver_id)
	WHEN 'job' THEN (
		SELECT jsonb_build_object(
			'job_id', j.job_id, 'code', j.code, 'customer_id', j.customer_id, 'vehicle_id', j.vehicle_id,
			'driver_id', j.driver_id, 'status', j.status, 'version', j.version,
			'planned_start', j.planned_start, 'planned_end', j.planned_end)
		  FROM fleet.job j
		 WHERE j.tenant_id = fleet.current_tenant() AND j.job_id = oracle.entity_id
		   AND (j.driver_id = oracle.driver_id
		        OR EXISTS (SELECT 1 FROM fleet.stop s
		                    WHERE s.tenant_id = j.tenant_id AND s.job_id = j.job_id AND s.driver_id = oracle.driver_id)))
	WHEN 'vehicle' THEN (
		SELECT jsonb_build_object('vehicle_id', v.vehicle_id, 'code', v.code, 'name', v.name, 'plate', v.plate, 'status', v.status)
		  FROM fleet.vehicle v
		 WHERE v.tenant_id = fleet.current_tenant() AND v.vehicle_id = oracle.entity_id
		   AND EXISTS (SELECT 1 FROM fleet.job j
		                WHERE j.tenant_id = v.tenant_id AND j.vehicle_id = v.vehicle_id
		                  AND (j.driver_id = oracle.driver_id
		                       OR EXISTS (SELECT 1 FROM fleet.stop s
		                                   WHERE s.tenant_id = j.tenant_id AND s.job_id = j.job_id AND s.driver_id = oracle.driver_id))))
	END
$$;
-- every key of the tenant, keys of another tenant, and keys naming nothing
CREATE TEMP TABLE probe (entity text, entity_id bigint);
INSERT INTO probe
SELECT 'stop', stop_id FROM fleet.stop WHERE tenant_id = :te
UNION ALL SELECT 'job', job_id FROM fleet.job WHERE tenant_id = :te
UNION ALL SELECT 'vehicle', vehicle_id FROM fleet.vehicle WHERE tenant_id = :te
UNION ALL SELECT 'stop', stop_id FROM fleet.stop WHERE tenant_id = :tx
UNION ALL SELECT 'job', job_id FROM fleet.job WHERE tenant_id = :tx
UNION ALL VALUES ('stop', -1), ('truck', 1), (NULL, 1), ('stop', NULL);
GRANT SELECT ON probe TO fleet_app;

SET ROLE fleet_app;
-- one row per distinct key, each equal to the oracle, for every driver
SELECT d.code, count(*) AS keys, count(e.data) AS in_scope,
       count(*) FILTER (WHERE e.data IS DISTINCT FROM pg_temp.oracle(d.driver_id, e.entity, e.entity_id)) AS differ
  FROM fleet.driver d
 CROSS JOIN LATERAL fleet.sync_entities(d.driver_id,
       ARRAY(SELECT p.entity FROM probe p ORDER BY p.entity, p.entity_id),
       ARRAY(SELECT p.entity_id FROM probe p ORDER BY p.entity, p.entity_id)) e
 WHERE d.tenant_id = :te
 GROUP BY d.code ORDER BY d.code;
SELECT count(*) AS probe_keys FROM (SELECT DISTINCT entity, entity_id FROM probe) x;
-- Ann's scope as the app sees it (evidence in capture order)
SELECT e.entity, e.data ->> 'code' AS code, e.data ->> 'address' AS address,
       jsonb_path_query_array(e.data, '$.evidence[*].kind') AS evidence
  FROM fleet.sync_entities(:ann,
       ARRAY(SELECT p.entity FROM probe p), ARRAY(SELECT p.entity_id FROM probe p)) e
 WHERE e.data IS NOT NULL ORDER BY e.entity, e.data ->> 'code', e.data ->> 'address';
-- duplicates are one row; fleet.sync_entity() is one row of it
SELECT count(*) AS rows FROM fleet.sync_entities(:ann, ARRAY['job', 'job', 'stop'], ARRAY[1, 1, NULL]::bigint[]);
SELECT count(*) AS keys,
       count(*) FILTER (WHERE fleet.sync_entity(:bob, p.entity, p.entity_id) IS DISTINCT FROM pg_temp.oracle(:bob, p.entity, p.entity_id)) AS differ
  FROM probe p;
-- the scope query equals the oracle over the driver's keys
SELECT d.code, count(*) AS entities,
       count(*) FILTER (WHERE s.data IS DISTINCT FROM pg_temp.oracle(d.driver_id, s.entity, s.entity_id)) AS differ
  FROM fleet.driver d CROSS JOIN LATERAL fleet.sync_scope(d.driver_id) s
 WHERE d.tenant_id = :te GROUP BY d.code ORDER BY d.code;
SELECT count(*) AS cy_scope FROM fleet.sync_scope(:cy);
-- no tenant context: nothing is in anyone's scope
RESET ROLE;
SELECT fleet.clear_tenant();
SELECT fleet.current_tenant() IS NULL AS no_tenant;
SET ROLE fleet_app;
SELECT count(*) AS rows, count(e.data) AS in_scope
  FROM fleet.sync_entities(:ann, ARRAY(SELECT p.entity FROM probe p), ARRAY(SELECT p.entity_id FROM probe p)) e;
RESET ROLE;
SELECT fleet.set_tenant(:te) IS NOT NULL AS entities_co;
SET ROLE fleet_app;

-- Pulls: a full copy is "clear" and then, in (entity, id) order, a put of
-- every key of the scope with exactly the oracle's JSON.
\set A '''00000000-0000-0000-0000-0000000000e1'''
SELECT fleet.sync_register_client(:A, :ann) IS NOT NULL AS ann_app;
SELECT fleet.sync_pull(:A, NULL, 1000) AS full \gset
SELECT (:'full'::jsonb -> 'changes') = '[{"op": "clear"}]'::jsonb || (
	SELECT jsonb_agg(jsonb_build_object('op', 'put', 'entity', k.entity, 'id', k.entity_id,
	                                    'data', pg_temp.oracle(:ann, k.entity, k.entity_id)) ORDER BY k.entity, k.entity_id)
	  FROM fleet.sync_scope_keys(:ann) k) AS full_copy_equals_oracle,
       jsonb_array_length(:'full'::jsonb -> 'changes') AS ops;
-- the same copy in pages of two
CREATE TEMP TABLE paged (n serial, op jsonb);
DO $$
DECLARE r jsonb; c text;
BEGIN
	LOOP
		r := fleet.sync_pull('00000000-0000-0000-0000-0000000000e1', c, 2);
		INSERT INTO paged (op) SELECT x FROM jsonb_array_elements(r -> 'changes') x;
		c := r ->> 'cursor';
		EXIT WHEN NOT (r ->> 'has_more')::boolean;
	END LOOP;
END $$;
SELECT (SELECT jsonb_agg(op ORDER BY n) FROM paged) = :'full'::jsonb -> 'changes' AS pages_equal_full_copy;
-- Changes: evidence, an edit, a stop leaving Ann and a job entering her
-- scope come as puts with the oracle's JSON, and removals where the oracle
-- says the entity is out of scope.
RESET ROLE;
INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at)
SELECT :te, stop_id, 'note', :ann, '2026-03-01 10:00Z' FROM fleet.stop WHERE tenant_id = :te AND address = 'E-J2/1';
UPDATE fleet.stop SET address = 'E-J1/2 (moved)', window_start = '2026-03-01 11:00Z' WHERE tenant_id = :te AND address = 'E-J1/2';
UPDATE fleet.stop SET driver_id = :bob WHERE tenant_id = :te AND address = 'E-J1/1';
UPDATE fleet.stop SET driver_id = :ann WHERE tenant_id = :te AND address = 'E-J3/2';
UPDATE fleet.job SET driver_id = :cy WHERE tenant_id = :te AND code = 'E-J2';
SET ROLE fleet_app;
SELECT fleet.sync_pull(:A, :'full'::jsonb ->> 'cursor', 1000) AS page \gset
SELECT count(*) AS ops,
       count(*) FILTER (WHERE c ->> 'op' = 'put') AS puts,
       count(*) FILTER (WHERE c ->> 'op' = 'del') AS dels,
       count(*) FILTER (WHERE CASE c ->> 'op'
                              WHEN 'put' THEN c -> 'data' IS DISTINCT FROM pg_temp.oracle(:ann, c ->> 'entity', (c ->> 'id')::bigint)
                              ELSE pg_temp.oracle(:ann, c ->> 'entity', (c ->> 'id')::bigint) IS NOT NULL END) AS differ,
       (SELECT array_agg(x.k ORDER BY x.n) FROM (SELECT (c2 ->> 'entity') || ':' || (c2 ->> 'id') AS k, n
                                                   FROM jsonb_array_elements(:'page'::jsonb -> 'changes') WITH ORDINALITY y (c2, n)) x)
         = (SELECT array_agg(x.k ORDER BY x.e, x.i) FROM (SELECT DISTINCT c3 ->> 'entity' AS e, (c3 ->> 'id')::bigint AS i,
                                                          (c3 ->> 'entity') || ':' || (c3 ->> 'id') AS k
                                                     FROM jsonb_array_elements(:'page'::jsonb -> 'changes') c3) x) AS in_key_order
  FROM jsonb_array_elements(:'page'::jsonb -> 'changes') c;
SELECT c ->> 'op' AS op, c ->> 'entity' AS entity, c -> 'data' ->> 'address' AS address, c -> 'data' ->> 'code' AS code,
       jsonb_array_length(c -> 'data' -> 'evidence') AS evidence
  FROM jsonb_array_elements(:'page'::jsonb -> 'changes') c
 ORDER BY c ->> 'entity', c ->> 'op', c -> 'data' ->> 'address';

-- Errors: the two arrays must pair up.
SELECT * FROM fleet.sync_entities(:ann, ARRAY['stop', 'job'], ARRAY[1]::bigint[]);
SELECT * FROM fleet.sync_entities(:ann, ARRAY['stop'], NULL);
SELECT count(*) AS none FROM fleet.sync_entities(:ann, NULL, NULL);
SELECT count(*) AS none FROM fleet.sync_entities(:ann, '{}', '{}');
RESET ROLE;
-- analysts may read the scope query (and so its builder), nobody else
SET ROLE fleet_analyst;
SELECT count(*) > 0 AS analyst_reads_scope FROM fleet.sync_scope(:ann);
RESET ROLE;
SELECT has_function_privilege('fleet_ingest', 'fleet.sync_entities(bigint,text[],bigint[])', 'EXECUTE') AS ingest_may,
       has_function_privilege('public', 'fleet.sync_entities(bigint,text[],bigint[])', 'EXECUTE') AS public_may;
SELECT fleet.clear_tenant();
