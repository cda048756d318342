-- fleet.replay(): rebuilding the projections from the log gives exactly what
-- live processing produced (compared by fleet.projection_hash()), also after
-- the projections were damaged; the log is only read.
\set VERBOSITY terse
SELECT tenant_id AS north FROM fleet.tenant WHERE name = 'North Freight' \gset

-- Everything logged so far has been processed live.
SELECT sum(applied) >= 0 AS drained FROM fleet.process_pending();
SELECT fleet.projection_hash() AS live \gset
SELECT count(*) AS logged FROM fleet.event_log \gset

-- Replaying the last 24 hours reproduces the projections exactly.
SELECT replayed > 0 AS replayed_some, failed FROM fleet.replay();
SELECT fleet.projection_hash() = :'live' AS same_as_live;

-- Damage the projections, then rebuild them from the log.
UPDATE fleet.job SET status = 'assigned' WHERE code = 'PJ-1';
DELETE FROM fleet.charge WHERE kind = 'waiting';
UPDATE fleet.invoice SET total = 0 WHERE status = 'open';
DELETE FROM fleet.proof_of_delivery;
UPDATE fleet.vehicle_state SET state = '{"odometer_km": 1}' WHERE state_event_id IS NOT NULL;
SELECT fleet.projection_hash() = :'live' AS damaged_same_as_live;
SELECT replayed > 0 AS replayed_some, failed FROM fleet.replay(now() - interval '1 day', now() + interval '1 minute');
SELECT fleet.projection_hash() = :'live' AS rebuilt_same_as_live;
SELECT code, status FROM fleet.job WHERE code IN ('J-1', 'PJ-1', 'PJ-GHOST') ORDER BY code;
SELECT kind, amount FROM fleet.charge WHERE source_event_id IS NOT NULL ORDER BY kind;
-- A user handler is applied again; being idempotent it records each event once.
SELECT count(*) AS fuel_rows, count(DISTINCT event_id) AS fuel_events FROM acme.fuel_log;
-- The log was only read; nothing waits for a retry.
SELECT count(*) = :logged AS log_unchanged FROM fleet.event_log;
SELECT count(*) AS retrying FROM fleet.event_retry;

-- A range with nothing applied in it replays nothing.
SELECT replayed, failed FROM fleet.replay(now() - interval '10 days', now() - interval '9 days');

-- Errors.
SELECT * FROM fleet.replay(NULL, now());
SELECT * FROM fleet.replay(now(), now() - interval '1 hour');
SET ROLE fleet_app;
SELECT * FROM fleet.replay();
RESET ROLE;
