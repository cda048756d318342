-- One fleet.ingest_events() call looks up only its own idempotency keys,
-- however many the tenant logged that day.  The key probe runs on a generic
-- plan kept for the session, made at its first call while the day's key
-- partition holds few rows; as a plain join that plan read all the
-- tenant's keys of the day on every call, so each trail event of a sync
-- push cost O(tenant's keys) (issue 5's push slowed as the tenant grew).
-- Counted with the index statistics of the key partitions, never timed.
\set VERBOSITY terse
SET stats_fetch_consistency = none;
SELECT fleet.create_tenant('Probe Freight') AS t \gset
SELECT fleet.set_tenant(:t) = :t AS tenant_set;

-- this session's first call makes the probe's plan
SELECT status FROM fleet.ingest_event('probe', 'p-0', 'audit.note', '{"text": "first"}');
-- 300 more keys of the tenant, one call each, as a push logs its trail
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		PERFORM fleet.ingest_event('probe', 'p-' || i, 'audit.note', jsonb_build_object('text', 'n' || i));
	END LOOP;
END
$$;
SELECT count(*) AS keys_of_the_tenant FROM fleet.event_key WHERE tenant_id = :t AND source = 'probe';

SELECT pg_stat_force_next_flush();
SELECT sum(idx_tup_read) AS before FROM pg_stat_user_indexes
 WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fleet.event_key'::regclass) \gset
-- one more call: a new key and a repeated one (a duplicate)
SELECT idx, status, reason FROM fleet.ingest_events(ARRAY['probe', 'probe'], ARRAY['p-new', 'p-7'],
	ARRAY['audit.note', 'audit.note'], NULL, NULL, ARRAY['{"text": "new"}', '{"text": "n7"}']::jsonb[]);
SELECT pg_stat_force_next_flush();
-- the index entries it read: the one stored key it found (1), not the
-- tenant's 301; the margin is for a background worker's own probe, the
-- lower bound shows the statistics were flushed
SELECT sum(idx_tup_read) - :before BETWEEN 1 AND 50 AS reads_only_its_own_keys FROM pg_stat_user_indexes
 WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fleet.event_key'::regclass);

-- The probe finds a key whichever partition holds it: one first seen
-- yesterday (written directly, as a key logged before midnight is) makes a
-- re-sent event a duplicate, and a different event under it a conflict.
SELECT e.event_id AS yesterday_event FROM fleet.ingest_event('probe', 'p-yesterday', 'audit.note', '{"text": "y"}') e \gset
RESET ROLE;
UPDATE fleet.event_key SET first_seen = now() - interval '1 day' WHERE idem_key = 'p-yesterday';
SELECT count(*) AS in_yesterdays_partition FROM fleet.event_key k
 WHERE k.idem_key = 'p-yesterday'
   AND k.tableoid = (SELECT p.partition FROM fleet.time_partitions('fleet.event_key') p
                      WHERE now() - interval '1 day' >= p.lo AND now() - interval '1 day' < p.hi);
SELECT fleet.set_tenant(:t) = :t AS tenant_set;
SELECT idx, status, event_id = :yesterday_event AS original FROM fleet.ingest_events(
	ARRAY['probe', 'probe', 'probe'], ARRAY['p-yesterday', 'p-yesterday', 'p-today'],
	ARRAY['audit.note', 'audit.note', 'audit.note'], NULL, NULL,
	ARRAY['{"text": "y"}', '{"text": "changed"}', '{"text": "t"}']::jsonb[]);

-- Keys are strings compared byte for byte, per source: the same key text
-- under another source, or in another case, is another key.
SELECT idx, status, reason FROM fleet.ingest_events(
	ARRAY['probe', 'other', 'probe', 'probe'], ARRAY['p-case', 'p-case', 'P-CASE', 'p-case'],
	ARRAY['audit.note', 'audit.note', 'audit.note', 'audit.note'], NULL, NULL,
	ARRAY['{"text": "a"}', '{"text": "b"}', '{"text": "c"}', '{"text": "a"}']::jsonb[]);

-- "The same event" is the same payload as JSON, however it is written or
-- built: key order, white space, escapes, an exponent and a payload built by
-- jsonb_build_object are duplicates; 1.0 against 1.00 is another payload, as
-- it prints differently.
SELECT status FROM fleet.ingest_event('probe', 'p-json', 'audit.note', '{"text": "é 100", "n": 100, "x": 1.0}');
SELECT status FROM fleet.ingest_event('probe', 'p-json', 'audit.note', '{ "x": 1.0, "n": 1e2,  "text": "\u00e9 100" }');
SELECT status FROM fleet.ingest_event('probe', 'p-json', 'audit.note', jsonb_build_object('n', 100, 'x', 1.0, 'text', 'é ' || 100));
SELECT status FROM fleet.ingest_event('probe', 'p-json', 'audit.note', '{"text": "é 100", "n": 100, "x": 1.00}');
