-- 42_handlers: fleet's built-in event kinds and the handlers projecting them.
--
-- A handler is called once per event by the pipeline, as the owner of the
-- handler function and in the event's tenant context, with (tenant_id,
-- event_id, kind, payload, occurred_at).  Raising an error makes the pipeline
-- retry the event, then dead-letter it.  Every projection is order-independent
-- so replay reproduces it exactly:
--   job and stop status only move forward: the status with the highest rank
--     wins, ties broken by (occurred_at, event_id); a late "assigned" never
--     overwrites a newer "completed".  Each change is recorded in
--     fleet.status_change (old and new status), which replay uses to rewind;
--   proof of delivery and charges are keyed by the event that produced them;
--   an invoice total is recomputed from its charges;
--   vehicle telemetry state is newer-wins by (occurred_at, event_id).

ALTER TABLE fleet.job ADD COLUMN status_event_id bigint;
COMMENT ON COLUMN fleet.job.status_event_id IS 'Event that set the current status (NULL: set by the app)';
ALTER TABLE fleet.stop ADD COLUMN status_event_id bigint;
COMMENT ON COLUMN fleet.stop.status_event_id IS 'Event that set the current status (NULL: set by the app)';
ALTER TABLE fleet.proof_of_delivery ADD COLUMN source_event_id bigint;
COMMENT ON COLUMN fleet.proof_of_delivery.source_event_id IS 'Event that recorded this evidence (NULL: written directly)';
CREATE UNIQUE INDEX proof_of_delivery_source_event ON fleet.proof_of_delivery (tenant_id, source_event_id);
COMMENT ON INDEX fleet.proof_of_delivery_source_event IS 'One piece of evidence per event: handlers are idempotent';
ALTER TABLE fleet.charge ADD COLUMN source_event_id bigint;
COMMENT ON COLUMN fleet.charge.source_event_id IS 'Event that created this charge (NULL: written directly)';
CREATE UNIQUE INDEX charge_source_event ON fleet.charge (tenant_id, source_event_id);
COMMENT ON INDEX fleet.charge_source_event IS 'One charge per event: handlers are idempotent';

CREATE TABLE fleet.status_change (
	tenant_id     bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	change_id     bigint GENERATED ALWAYS AS IDENTITY,
	entity        text NOT NULL CHECK (entity OPERATOR(pg_catalog.=) ANY (ARRAY['job', 'stop'])),
	entity_id     bigint NOT NULL,
	event_id      bigint NOT NULL,
	old_status    text NOT NULL,
	old_status_at timestamptz,
	old_event_id  bigint,
	new_status    text NOT NULL,
	changed_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, change_id)
);
COMMENT ON TABLE fleet.status_change IS
	'Every job and stop status change made by an event, with the status before it: the status history, and what replay rewinds';
CREATE INDEX status_change_event ON fleet.status_change (tenant_id, event_id);
COMMENT ON INDEX fleet.status_change_event IS 'Replay finds the changes made by the events it re-applies';
SELECT fleet.enable_tenant_rls('fleet.status_change');

-- The two rank functions have no SET clause so that the planner inlines
-- them (a SET clause made every call a full SQL function execution, about
-- 30 us, three per pushed status mutation); every operator is
-- schema-qualified, so the inlined body means the same under any
-- search_path.
CREATE FUNCTION fleet.job_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN status OPERATOR(pg_catalog.=) 'planned' THEN 0 WHEN status OPERATOR(pg_catalog.=) 'assigned' THEN 1
	            WHEN status OPERATOR(pg_catalog.=) 'en_route' THEN 2 WHEN status OPERATOR(pg_catalog.=) 'in_progress' THEN 3
	            WHEN status OPERATOR(pg_catalog.=) 'completed' THEN 4 WHEN status OPERATOR(pg_catalog.=) 'cancelled' THEN 4 END
$$;
COMMENT ON FUNCTION fleet.job_status_rank(text) IS 'Order of job statuses: a job''s status only moves to a higher rank (NULL: not a job status)';

CREATE FUNCTION fleet.stop_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN status OPERATOR(pg_catalog.=) 'planned' THEN 0 WHEN status OPERATOR(pg_catalog.=) 'assigned' THEN 1
	            WHEN status OPERATOR(pg_catalog.=) 'en_route' THEN 2 WHEN status OPERATOR(pg_catalog.=) 'arrived' THEN 3
	            WHEN status OPERATOR(pg_catalog.=) 'completed' THEN 4 WHEN status OPERATOR(pg_catalog.=) 'failed' THEN 4
	            WHEN status OPERATOR(pg_catalog.=) 'cancelled' THEN 4 END
$$;
COMMENT ON FUNCTION fleet.stop_status_rank(text) IS 'Order of stop statuses: a stop''s status only moves to a higher rank (NULL: not a stop status)';

-- Inlined like the ranks (no SET clause, every operator schema-qualified).
CREATE FUNCTION fleet.status_moves_forward(new_rank integer, old_rank integer, new_status text, old_status text,
	old_event_id bigint, old_status_at timestamptz, occurred_at timestamptz, event_id bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT new_rank OPERATOR(pg_catalog.>) old_rank
	    OR (new_rank OPERATOR(pg_catalog.=) old_rank AND new_status OPERATOR(pg_catalog.<>) old_status
	        AND old_event_id IS NOT NULL
	        AND ROW(occurred_at, event_id) OPERATOR(pg_catalog.>) ROW(old_status_at, old_event_id))
$$;
COMMENT ON FUNCTION fleet.status_moves_forward(integer, integer, text, text, bigint, timestamptz, timestamptz, bigint) IS
	'Whether an event''s status replaces the current one (the job and stop status handlers): a higher rank; or, between two statuses of one rank (completed and failed), the later of two events by (occurred_at, event_id), when the current status came from an event too';

CREATE FUNCTION fleet.handle_job_status(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j record;
	v_new text := payload OPERATOR(pg_catalog.->>) 'status';
BEGIN
	IF fleet.job_status_rank(v_new) IS NULL THEN
		RAISE EXCEPTION 'unknown job status "%"', v_new USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT x.job_id, x.status, x.status_at, x.status_event_id INTO j
	  FROM fleet.job x
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) handle_job_status.tenant_id
	   AND x.code OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'job')
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job "%" does not exist', payload OPERATOR(pg_catalog.->>) 'job' USING ERRCODE = 'no_data_found';
	END IF;
	IF fleet.status_moves_forward(fleet.job_status_rank(v_new), fleet.job_status_rank(j.status), v_new, j.status,
	                              j.status_event_id, j.status_at, occurred_at, event_id) THEN
		INSERT INTO fleet.status_change (tenant_id, entity, entity_id, event_id, old_status, old_status_at, old_event_id, new_status)
		VALUES (handle_job_status.tenant_id, 'job', j.job_id, event_id, j.status, j.status_at, j.status_event_id, v_new);
		UPDATE fleet.job x
		   SET status = v_new, status_at = occurred_at, status_event_id = event_id,
		       version = x.version OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now()
		 WHERE x.tenant_id OPERATOR(pg_catalog.=) handle_job_status.tenant_id AND x.job_id OPERATOR(pg_catalog.=) j.job_id;
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.handle_job_status(bigint, bigint, text, jsonb, timestamptz) IS
	'Handler of job.status {job, status}: moves the job''s status forward only';

CREATE FUNCTION fleet.handle_stop_status(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s record;
	v_new text := payload OPERATOR(pg_catalog.->>) 'status';
BEGIN
	IF fleet.stop_status_rank(v_new) IS NULL THEN
		RAISE EXCEPTION 'unknown stop status "%"', v_new USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT x.stop_id, x.status, x.status_at, x.status_event_id INTO s
	  FROM fleet.stop x JOIN fleet.job j ON j.tenant_id OPERATOR(pg_catalog.=) x.tenant_id AND j.job_id OPERATOR(pg_catalog.=) x.job_id
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) handle_stop_status.tenant_id
	   AND j.code OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'job')
	   AND x.seq OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'seq')::integer
	   FOR UPDATE OF x;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'stop % of job "%" does not exist', payload OPERATOR(pg_catalog.->>) 'seq', payload OPERATOR(pg_catalog.->>) 'job'
			USING ERRCODE = 'no_data_found';
	END IF;
	IF fleet.status_moves_forward(fleet.stop_status_rank(v_new), fleet.stop_status_rank(s.status), v_new, s.status,
	                              s.status_event_id, s.status_at, occurred_at, event_id) THEN
		INSERT INTO fleet.status_change (tenant_id, entity, entity_id, event_id, old_status, old_status_at, old_event_id, new_status)
		VALUES (handle_stop_status.tenant_id, 'stop', s.stop_id, event_id, s.status, s.status_at, s.status_event_id, v_new);
		UPDATE fleet.stop x
		   SET status = v_new, status_at = occurred_at, status_event_id = event_id,
		       arrived_at = CASE WHEN v_new OPERATOR(pg_catalog.=) 'arrived' THEN occurred_at ELSE x.arrived_at END,
		       completed_at = CASE WHEN v_new OPERATOR(pg_catalog.=) 'completed' THEN occurred_at ELSE x.completed_at END,
		       version = x.version OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.now()
		 WHERE x.tenant_id OPERATOR(pg_catalog.=) handle_stop_status.tenant_id AND x.stop_id OPERATOR(pg_catalog.=) s.stop_id;
	END IF;
END
$$;
COMMENT ON FUNCTION fleet.handle_stop_status(bigint, bigint, text, jsonb, timestamptz) IS
	'Handler of stop.status {job, seq, status}: moves the stop''s status forward only, stamping arrived_at/completed_at';

CREATE FUNCTION fleet.handle_pod(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- ON CONFLICT targets name columns that are also parameter names
#variable_conflict use_column
DECLARE
	s record;
BEGIN
	SELECT x.stop_id, x.driver_id INTO s
	  FROM fleet.stop x JOIN fleet.job j ON j.tenant_id OPERATOR(pg_catalog.=) x.tenant_id AND j.job_id OPERATOR(pg_catalog.=) x.job_id
	 WHERE x.tenant_id OPERATOR(pg_catalog.=) handle_pod.tenant_id
	   AND j.code OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'job')
	   AND x.seq OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'seq')::integer;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'stop % of job "%" does not exist', payload OPERATOR(pg_catalog.->>) 'seq', payload OPERATOR(pg_catalog.->>) 'job'
			USING ERRCODE = 'no_data_found';
	END IF;
	INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at, metadata, source_event_id)
	VALUES (handle_pod.tenant_id, s.stop_id, payload OPERATOR(pg_catalog.->>) 'kind', s.driver_id, occurred_at,
	        COALESCE(payload OPERATOR(pg_catalog.->) 'metadata', '{}'), event_id)
	ON CONFLICT (tenant_id, source_event_id) DO NOTHING;
END
$$;
COMMENT ON FUNCTION fleet.handle_pod(bigint, bigint, text, jsonb, timestamptz) IS
	'Handler of pod.captured {job, seq, kind, metadata}: records proof of delivery at the stop, once per event';

CREATE FUNCTION fleet.handle_vehicle_state(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- ON CONFLICT targets name columns that are also parameter names
#variable_conflict use_column
DECLARE
	v_vehicle bigint;
BEGIN
	SELECT v.vehicle_id INTO v_vehicle FROM fleet.vehicle v
	 WHERE v.tenant_id OPERATOR(pg_catalog.=) handle_vehicle_state.tenant_id
	   AND v.code OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'vehicle');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'vehicle "%" does not exist', payload OPERATOR(pg_catalog.->>) 'vehicle' USING ERRCODE = 'no_data_found';
	END IF;
	INSERT INTO fleet.vehicle_state AS s (tenant_id, vehicle_id, state, state_at, state_event_id)
	VALUES (handle_vehicle_state.tenant_id, v_vehicle, payload OPERATOR(pg_catalog.-) 'vehicle', occurred_at, event_id)
	ON CONFLICT (tenant_id, vehicle_id) DO UPDATE
	   SET state = EXCLUDED.state, state_at = EXCLUDED.state_at, state_event_id = EXCLUDED.state_event_id,
	       updated_at = pg_catalog.now()
	 WHERE s.state_at IS NULL
	    OR ROW(EXCLUDED.state_at, EXCLUDED.state_event_id) OPERATOR(pg_catalog.>) ROW(s.state_at, s.state_event_id);
END
$$;
COMMENT ON FUNCTION fleet.handle_vehicle_state(bigint, bigint, text, jsonb, timestamptz) IS
	'Handler of vehicle.state {vehicle, ...}: the newest report (by occurred_at, then event id) becomes the vehicle''s telemetry state';

CREATE FUNCTION fleet.recompute_invoice(tenant_id bigint, customer_id bigint, period_start date, currency character)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- ON CONFLICT targets name columns that are also parameter names
#variable_conflict use_column
DECLARE
	v_total numeric;
BEGIN
	SELECT COALESCE(pg_catalog.sum(c.amount), 0) INTO v_total
	  FROM fleet.charge c
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) recompute_invoice.tenant_id
	   AND c.customer_id OPERATOR(pg_catalog.=) recompute_invoice.customer_id
	   AND c.currency OPERATOR(pg_catalog.=) recompute_invoice.currency
	   AND c.occurred_at OPERATOR(pg_catalog.>=) (period_start::timestamp AT TIME ZONE 'UTC')
	   AND c.occurred_at OPERATOR(pg_catalog.<) ((period_start OPERATOR(pg_catalog.+) '1 month'::interval) AT TIME ZONE 'UTC');
	INSERT INTO fleet.invoice AS i (tenant_id, customer_id, period_start, period_end, currency, total)
	VALUES (recompute_invoice.tenant_id, recompute_invoice.customer_id, period_start,
	        (period_start OPERATOR(pg_catalog.+) '1 month'::interval OPERATOR(pg_catalog.-) '1 day'::interval)::date,
	        recompute_invoice.currency, v_total)
	ON CONFLICT (tenant_id, customer_id, period_start, currency) DO UPDATE
	   SET total = EXCLUDED.total
	 WHERE i.status OPERATOR(pg_catalog.=) 'open';
END
$$;
COMMENT ON FUNCTION fleet.recompute_invoice(bigint, bigint, date, character) IS
	'Set an open monthly invoice''s total to the sum of its charges (UTC months), creating the invoice if needed; issued, paid and void invoices are left alone';

CREATE FUNCTION fleet.handle_charge(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- ON CONFLICT targets name columns that are also parameter names
#variable_conflict use_column
DECLARE
	v_customer bigint;
	v_job bigint;
	v_currency text := payload OPERATOR(pg_catalog.->>) 'currency';
BEGIN
	SELECT c.customer_id INTO v_customer FROM fleet.customer c
	 WHERE c.tenant_id OPERATOR(pg_catalog.=) handle_charge.tenant_id
	   AND c.code OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'customer');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'customer "%" does not exist', payload OPERATOR(pg_catalog.->>) 'customer' USING ERRCODE = 'no_data_found';
	END IF;
	IF payload OPERATOR(pg_catalog.?) 'job' THEN
		SELECT j.job_id INTO v_job FROM fleet.job j
		 WHERE j.tenant_id OPERATOR(pg_catalog.=) handle_charge.tenant_id
		   AND j.code OPERATOR(pg_catalog.=) (payload OPERATOR(pg_catalog.->>) 'job');
		IF NOT FOUND THEN
			RAISE EXCEPTION 'job "%" does not exist', payload OPERATOR(pg_catalog.->>) 'job' USING ERRCODE = 'no_data_found';
		END IF;
	END IF;
	INSERT INTO fleet.charge (tenant_id, customer_id, job_id, kind, amount, currency, occurred_at, source_event_id)
	VALUES (handle_charge.tenant_id, v_customer, v_job, payload OPERATOR(pg_catalog.->>) 'kind',
	        (payload OPERATOR(pg_catalog.->>) 'amount')::numeric, v_currency, occurred_at, event_id)
	ON CONFLICT (tenant_id, source_event_id) DO NOTHING;
	PERFORM fleet.recompute_invoice(handle_charge.tenant_id, v_customer,
		pg_catalog.date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date, v_currency);
END
$$;
COMMENT ON FUNCTION fleet.handle_charge(bigint, bigint, text, jsonb, timestamptz) IS
	'Handler of charge.created {customer, kind, amount, currency, job?}: records the charge once per event and recomputes the month''s open invoice';

CREATE FUNCTION fleet.upcast_job_status_v1(payload jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT (payload OPERATOR(pg_catalog.-) 'job_code' OPERATOR(pg_catalog.-) 'state')
	       OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('job', payload OPERATOR(pg_catalog.->) 'job_code',
	                                                             'status', payload OPERATOR(pg_catalog.->) 'state')
$$;
COMMENT ON FUNCTION fleet.upcast_job_status_v1(jsonb) IS
	'Upcaster of job.status from version 1 {job_code, state} to version 2 {job, status}: old driver-app builds keep working';

-- The built-in kinds' schemas hold what the handlers need to apply an
-- event (codes, statuses the projections know, ranges of the columns they
-- write), so an event that could never apply is rejected at ingest.
SELECT fleet.register_event_kind('job.status', 'operational', 2,
	'{"job": {"type": "string", "max_length": 64},
	  "status": {"type": "string", "enum": ["planned", "assigned", "en_route", "in_progress", "completed", "cancelled"]}}',
	'fleet.handle_job_status(bigint,bigint,text,jsonb,timestamptz)', 'A job''s status changed (app or dispatcher)');
SELECT fleet.register_event_upcaster('job.status', 1, 'fleet.upcast_job_status_v1(jsonb)');
SELECT fleet.register_event_kind('stop.status', 'operational', 1,
	'{"job": {"type": "string", "max_length": 64}, "seq": {"type": "integer", "min": 1, "max": 2147483647},
	  "status": {"type": "string", "enum": ["planned", "assigned", "en_route", "arrived", "completed", "failed", "cancelled"]}}',
	'fleet.handle_stop_status(bigint,bigint,text,jsonb,timestamptz)', 'A stop''s status changed (driver app)');
SELECT fleet.register_event_kind('pod.captured', 'operational', 1,
	'{"job": {"type": "string", "max_length": 64}, "seq": {"type": "integer", "min": 1, "max": 2147483647},
	  "kind": {"type": "string", "enum": ["signature", "photo", "barcode", "note", "inspection"]}}',
	'fleet.handle_pod(bigint,bigint,text,jsonb,timestamptz)', 'Proof of delivery captured at a stop (signature, photo, barcode, note, inspection)');
SELECT fleet.register_event_kind('vehicle.state', 'telemetry', 1, '{"vehicle": {"type": "string", "max_length": 64}}',
	'fleet.handle_vehicle_state(bigint,bigint,text,jsonb,timestamptz)', 'Vehicle telemetry state report (odometer, fuel, ignition, ...)');
SELECT fleet.register_event_kind('charge.created', 'financial', 1,
	'{"customer": {"type": "string", "max_length": 64}, "kind": {"type": "string", "max_length": 100},
	  "amount": {"type": "number", "min": -999999999999.99, "max": 999999999999.99},
	  "currency": {"type": "string", "format": "currency"},
	  "job": {"type": "string", "max_length": 64, "optional": true}}',
	'fleet.handle_charge(bigint,bigint,text,jsonb,timestamptz)', 'A billable charge for a customer');
SELECT fleet.register_event_kind('audit.note', 'audit', 1, '{"text": "string"}', NULL,
	'Free-form audit record: logged, no projection');
SELECT fleet.register_event_kind('webhook.received', 'audit', 1, '{}', NULL,
	'A provider webhook as received: logged for audit and replay, no projection');

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin',   'TABLE', 'fleet.status_change', 'SELECT'),
	('fleet_app',     'TABLE', 'fleet.status_change', 'SELECT'),
	('fleet_analyst', 'TABLE', 'fleet.status_change', 'SELECT'),
	('fleet_admin',   'FUNCTION', 'fleet.job_status_rank(text)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.job_status_rank(text)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.job_status_rank(text)', 'EXECUTE'),
	('fleet_admin',   'FUNCTION', 'fleet.stop_status_rank(text)', 'EXECUTE'),
	('fleet_app',     'FUNCTION', 'fleet.stop_status_rank(text)', 'EXECUTE'),
	('fleet_analyst', 'FUNCTION', 'fleet.stop_status_rank(text)', 'EXECUTE');
