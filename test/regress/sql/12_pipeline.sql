-- The pipeline: fleet.process_pending() consumes each class, applies the
-- handlers to the projections (forward-only status, proof of delivery,
-- charges and invoices, vehicle state), retries failures with backoff,
-- dead-letters poison events and requeues them after a fix.
\set VERBOSITY terse
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset

-- A handler registered by fleet_admin runs as its owner, in the event's tenant context.
SET ROLE fleet_admin;
CREATE TABLE acme.fuel_log (tenant bigint, event_id bigint, runs_as name, card text, volume numeric);
CREATE FUNCTION acme.on_fuel(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void LANGUAGE sql AS $$
	-- idempotent, keyed by the event, so fleet.replay() may apply it again
	INSERT INTO acme.fuel_log SELECT fleet.current_tenant(), event_id, current_user,
	                                 payload ->> 'card', (payload ->> 'volume_l')::numeric
	 WHERE NOT EXISTS (SELECT 1 FROM acme.fuel_log l WHERE l.event_id = on_fuel.event_id)
$$;
SELECT fleet.register_event_kind('acme.fuel_card', 'financial', 3, '{"card": "string", "volume_l": "number"}',
	'acme.on_fuel(bigint,bigint,text,jsonb,timestamptz)');
RESET ROLE;

-- What the earlier tests logged is consumed now, class by class.
SELECT * FROM fleet.process_pending();
SELECT * FROM fleet.process_pending();
SELECT tenant = :north AS north, runs_as, card, volume FROM acme.fuel_log ORDER BY card;
SELECT code, status, status_event_id IS NOT NULL AS by_event FROM fleet.job WHERE code = 'J-1';

-- Fixture: a job with two stops.
SET ROLE fleet_admin;
SELECT fleet.set_tenant(:north);
INSERT INTO fleet.job (tenant_id, code, customer_id, vehicle_id, driver_id, status)
	SELECT :north, 'PJ-1', c.customer_id, v.vehicle_id, d.driver_id, 'planned'
	  FROM fleet.customer c, fleet.vehicle v, fleet.driver d WHERE c.code = 'nc1' AND v.code = 'N-1' AND d.code = 'nd1';
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, status)
	SELECT :north, job_id, s, driver_id, 'assigned' FROM fleet.job, generate_series(1, 2) s WHERE code = 'PJ-1';
UPDATE fleet.event_class SET backoff_base = '0', max_attempts = 3 WHERE class = 'operational';
RESET ROLE;

-- Out of order: "completed" arrives (and is applied) before the older
-- "assigned" and "en_route"; stop 1 "arrived" before its older "en_route".
SET ROLE fleet_app;
SELECT fleet.set_tenant(:north);
SELECT date_trunc('minute', now()) - interval '30 minutes' AS t \gset
SELECT idx, status FROM fleet.ingest_events(
	ARRAY['app', 'app', 'app', 'app', 'app', 'app'], ARRAY['o-3', 's1-arr', 'pod-1', 'ch-1', 'ch-2', 'vs-2'],
	ARRAY['job.status', 'stop.status', 'pod.captured', 'charge.created', 'charge.created', 'vehicle.state'], NULL,
	ARRAY[:'t'::timestamptz + interval '3 min', :'t'::timestamptz + interval '2 min', :'t'::timestamptz + interval '2 min',
	      :'t', :'t', :'t'::timestamptz + interval '2 min']::timestamptz[],
	ARRAY['{"job": "PJ-1", "status": "completed"}', '{"job": "PJ-1", "seq": 1, "status": "arrived"}',
	      '{"job": "PJ-1", "seq": 1, "kind": "signature", "metadata": {"signed_by": "R. Miller"}}',
	      '{"customer": "nc1", "kind": "delivery", "amount": 80.25, "currency": "EUR", "job": "PJ-1"}',
	      '{"customer": "nc1", "kind": "waiting", "amount": 19.75, "currency": "EUR"}',
	      '{"vehicle": "N-1", "odometer_km": 120400, "fuel_pct": 61}']::jsonb[]);
RESET ROLE;
SELECT * FROM fleet.process_pending();
SET ROLE fleet_app;
SELECT fleet.set_tenant(:north);
SELECT idx, status FROM fleet.ingest_events(
	ARRAY['app', 'app', 'app', 'app', 'app'], ARRAY['o-1', 'o-2', 's1-er', 'vs-1', 'ghost'],
	ARRAY['job.status', 'job.status', 'stop.status', 'vehicle.state', 'job.status'], NULL,
	ARRAY[:'t'::timestamptz + interval '1 min', :'t'::timestamptz + interval '2 min', :'t'::timestamptz + interval '1 min',
	      :'t'::timestamptz + interval '1 min', :'t']::timestamptz[],
	ARRAY['{"job": "PJ-1", "status": "assigned"}', '{"job": "PJ-1", "status": "en_route"}',
	      '{"job": "PJ-1", "seq": 1, "status": "en_route"}', '{"vehicle": "N-1", "odometer_km": 120000}',
	      '{"job": "PJ-GHOST", "status": "completed"}']::jsonb[]);
RESET ROLE;
-- The poison event (unknown job) fails; the others are applied.
SELECT * FROM fleet.process_pending('operational');
SELECT * FROM fleet.process_pending('telemetry');

-- Projections only moved forward.
SELECT code, status, status_at - :'t'::timestamptz AS at FROM fleet.job WHERE code = 'PJ-1';
SELECT s.seq, s.status, s.arrived_at - :'t'::timestamptz AS arrived FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id)
 WHERE j.code = 'PJ-1' ORDER BY s.seq;
SELECT c.entity, c.old_status, c.new_status FROM fleet.status_change c JOIN fleet.job j ON j.job_id = c.entity_id AND c.entity = 'job'
 WHERE j.code = 'PJ-1' ORDER BY c.change_id;
SELECT p.kind, p.metadata FROM fleet.proof_of_delivery p JOIN fleet.stop s USING (tenant_id, stop_id)
  JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'PJ-1';
SELECT kind, amount, currency, job_id IS NOT NULL AS for_job FROM fleet.charge WHERE source_event_id IS NOT NULL ORDER BY kind;
SELECT i.period_start = date_trunc('month', :'t'::timestamptz AT TIME ZONE 'UTC')::date AS this_month, i.currency, i.status,
       i.total = (SELECT sum(c.amount) FROM fleet.charge c
                   WHERE c.customer_id = i.customer_id AND c.currency = i.currency
                     AND date_trunc('month', c.occurred_at AT TIME ZONE 'UTC')::date = i.period_start) AS total_is_sum
  FROM fleet.invoice i;
SELECT v.code, s.state, s.state_at - :'t'::timestamptz AS at FROM fleet.vehicle_state s JOIN fleet.vehicle v USING (tenant_id, vehicle_id)
 WHERE v.code = 'N-1';

-- Retries: attempt 2, then attempt 3 moves it to dead letters (max_attempts 3).
SELECT attempts, last_sqlstate, last_error FROM fleet.event_retry;
SELECT * FROM fleet.process_pending('operational');
SELECT * FROM fleet.process_pending('operational');
SELECT count(*) AS retrying FROM fleet.event_retry;
SELECT d.class, d.kind, d.attempts, d.sqlstate, d.error, d.payload,
       jsonb_path_query_array(d.history, '$[*].attempt') AS attempts_made,
       jsonb_path_query_array(d.history, '$[*].sqlstate') AS sqlstates
  FROM fleet.dead_letter d;

-- After the fix (the job exists), requeue: it is applied exactly once.
SET ROLE fleet_admin;
SELECT fleet.set_tenant(:north);
INSERT INTO fleet.job (tenant_id, code, status) VALUES (:north, 'PJ-GHOST', 'assigned');
SELECT fleet.requeue_dead_letters();
SELECT * FROM fleet.process_pending('operational');
SELECT * FROM fleet.process_pending('operational');
SELECT code, status FROM fleet.job WHERE code = 'PJ-GHOST';
SELECT count(*) AS changes FROM fleet.status_change c JOIN fleet.job j ON j.job_id = c.entity_id AND c.entity = 'job'
 WHERE j.code = 'PJ-GHOST';
SELECT count(*) AS dead, (SELECT count(*) FROM fleet.event_retry) AS retrying FROM fleet.dead_letter;
RESET ROLE;

-- A long batch is consumed in pieces, resuming where the last pass stopped.
SET ROLE fleet_app;
SELECT fleet.set_tenant(:north);
SELECT count(*) FROM fleet.ingest_events(array_fill('audit'::text, ARRAY[5]), ARRAY['a-1', 'a-2', 'a-3', 'a-4', 'a-5'],
	array_fill('audit.note'::text, ARRAY[5]), NULL, NULL, array_fill('{"text": "n"}'::jsonb, ARRAY[5]));
RESET ROLE;
SELECT * FROM fleet.process_pending('audit', 2);
SELECT hi IS NOT NULL AS in_batch, pos_event > 0 AS has_position FROM fleet.consumer_cursor WHERE class = 'audit';
SELECT * FROM fleet.process_pending('audit', 2);
SELECT * FROM fleet.process_pending('audit', 2);
SELECT hi IS NULL AS batch_done FROM fleet.consumer_cursor WHERE class = 'audit';
SELECT * FROM fleet.process_pending('audit');

-- The caller's tenant context is left as it was.
SELECT fleet.set_tenant(:north);
SELECT * FROM fleet.process_pending('financial');
SELECT fleet.current_tenant() = :north AS unchanged;
SELECT fleet.clear_tenant();

-- Two statuses of one rank (failed, completed): the later event by
-- (occurred_at, event_id) wins, whichever is applied first; a lower rank
-- never moves a stop back (fleet.status_moves_forward).
SET ROLE fleet_app;
SELECT fleet.set_tenant(:north);
SELECT idx, status FROM fleet.ingest_events(ARRAY['app', 'app', 'app'], ARRAY['s2-arr', 's2-comp', 's2-fail-old'],
	ARRAY['stop.status', 'stop.status', 'stop.status'], NULL,
	ARRAY[:'t'::timestamptz + interval '1 min', :'t'::timestamptz + interval '5 min', :'t'::timestamptz + interval '3 min']::timestamptz[],
	ARRAY['{"job": "PJ-1", "seq": 2, "status": "arrived"}', '{"job": "PJ-1", "seq": 2, "status": "completed"}',
	      '{"job": "PJ-1", "seq": 2, "status": "failed"}']::jsonb[]);
RESET ROLE;
SELECT * FROM fleet.process_pending('operational');
SELECT s.status, s.status_at = :'t'::timestamptz + interval '5 min' AS from_latest
  FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'PJ-1' AND s.seq = 2;
SET ROLE fleet_app;
SELECT fleet.set_tenant(:north);
SELECT idx, status FROM fleet.ingest_events(ARRAY['app', 'app'], ARRAY['s2-fail-new', 's2-arr-late'],
	ARRAY['stop.status', 'stop.status'], NULL,
	ARRAY[:'t'::timestamptz + interval '6 min', :'t'::timestamptz + interval '7 min']::timestamptz[],
	ARRAY['{"job": "PJ-1", "seq": 2, "status": "failed"}', '{"job": "PJ-1", "seq": 2, "status": "arrived"}']::jsonb[]);
RESET ROLE;
SELECT * FROM fleet.process_pending('operational');
SELECT s.status, s.status_at = :'t'::timestamptz + interval '6 min' AS from_latest
  FROM fleet.stop s JOIN fleet.job j USING (tenant_id, job_id) WHERE j.code = 'PJ-1' AND s.seq = 2;
SELECT c.old_status, c.new_status FROM fleet.status_change c
  JOIN fleet.stop s ON s.tenant_id = c.tenant_id AND s.stop_id = c.entity_id
  JOIN fleet.job j ON j.tenant_id = s.tenant_id AND j.job_id = s.job_id
 WHERE c.entity = 'stop' AND j.code = 'PJ-1' AND s.seq = 2 ORDER BY c.change_id;

-- Errors.
SELECT * FROM fleet.process_pending('nosuch');
SELECT * FROM fleet.process_pending(NULL, 0);
SET ROLE fleet_admin;
SELECT fleet.requeue_dead_letters();
SELECT fleet.set_tenant(:north);
SELECT fleet.requeue_dead_letters(NULL, 'nosuch');
SELECT fleet.clear_tenant();
RESET ROLE;
SET ROLE fleet_app;
SELECT * FROM fleet.process_pending();
RESET ROLE;
UPDATE fleet.event_class SET backoff_base = '1 second', max_attempts = 8 WHERE class = 'operational';
SELECT * FROM fleet.check_schema_rules();
