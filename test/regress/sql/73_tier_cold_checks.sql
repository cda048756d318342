-- The cold steps' own checks, for both tables with a cold tier (one
-- implementation serves fleet.position and fleet.event_log): a pack whose
-- segments do not read back equal to the source is refused and leaves the
-- source; a restore that finds fewer rows than the segments hold stops
-- before removing them, and finishes when run again; the ledger names what
-- was packed, restored and purged in each table's words.
\set VERBOSITY terse
SET timezone = 'UTC';
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';
-- regress_tier.try() (made by 70_tiering): errors with dates and hashes masked

SELECT fleet.create_tenant('Cold Checks Ltd') AS t \gset
-- a fixed day, so the restore's messages (psql prints them) name it
\set d80 '2001-02-05'
SELECT fleet.create_daily_partitions('fleet.position', :'d80', :'d80') AS created;
SELECT fleet.create_daily_partitions('fleet.event_log', :'d80', :'d80') AS created;
-- two devices (one without a vehicle) and a day of events
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, seq, attrs)
SELECT :t, d, :'d80'::timestamptz + i * interval '67 s', CASE WHEN d = 1 THEN 7 END, 48 + i * 1e-5, 11 + i * 1e-5,
       CASE WHEN i % 3 = 0 THEN NULL ELSE (i % 80)::real END, i, CASE WHEN i % 2 = 0 THEN jsonb_build_object('i', i) END
  FROM generate_series(1, 2) d, generate_series(1, 500) i;
INSERT INTO fleet.event_log (tenant_id, event_id, logged_at, class, kind, schema_version, original_version, source,
                             idem_key, occurred_at, payload)
SELECT :t, 3000000 + i, :'d80'::timestamptz + i * interval '89 s', 'tier-test', 'job.status', 1, 1, 'app',
       'check-' || i, :'d80'::timestamptz + i * interval '89 s' - interval '2 s', jsonb_build_object('i', i)
  FROM generate_series(1, 400) i;
CREATE TEMP TABLE before AS
SELECT 'fleet.position' AS rel, * FROM fleet.tier_hash('fleet.position', :'d80')
UNION ALL SELECT 'fleet.event_log', * FROM fleet.tier_hash('fleet.event_log', :'d80');
SELECT rel, n FROM before ORDER BY rel;
SELECT fleet.cold_detach(:'d80') ~ '_c$' AS detached, fleet.event_cold_detach(:'d80') ~ '_c$' AS events_detached;

-- 1. A pack whose segments read back different from the source is refused.
CREATE FUNCTION pg_temp.spoil() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_TABLE_NAME = 'cold_segment' THEN
		NEW.data := fleet.cold_encode(ARRAY[NEW.lo], ARRAY[1.0]::float8[], ARRAY[1.0]::float8[], '{NULL}', '{NULL}', '{NULL}',
		                              '{NULL}', '{NULL}', '{NULL}', ARRAY[NEW.lo]);
	ELSE
		NEW.data := fleet.cold_event_encode(ARRAY[1], ARRAY[NEW.lo], ARRAY['1'::xid8], ARRAY['c'], ARRAY['k'], ARRAY[1], ARRAY[1],
		                                    ARRAY['s'], ARRAY['i'], ARRAY[NEW.lo], ARRAY['{}'::jsonb]);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER spoil BEFORE INSERT ON fleet.cold_segment FOR EACH ROW EXECUTE FUNCTION pg_temp.spoil();
CREATE TRIGGER spoil BEFORE INSERT ON fleet.cold_event_segment FOR EACH ROW EXECUTE FUNCTION pg_temp.spoil();
SELECT regress_tier.try(format('SELECT fleet.cold_pack(%L)', :'d80'));
SELECT regress_tier.try(format('SELECT fleet.event_cold_pack(%L)', :'d80'));
DROP TRIGGER spoil ON fleet.cold_segment;
DROP TRIGGER spoil ON fleet.cold_event_segment;
SELECT relation, tier, work ~ '_c$' AS work_kept FROM fleet.tier_state WHERE lo = :'d80' ORDER BY 1;
SELECT (SELECT count(*) FROM fleet.cold_segment WHERE part_lo = :'d80') AS segments,
       (SELECT count(*) FROM fleet.cold_event_segment WHERE part_lo = :'d80') AS event_segments;
-- the same steps again pack both
SELECT segments, fixes FROM fleet.cold_pack(:'d80');
SELECT segments, events FROM fleet.event_cold_pack(:'d80');

-- 2. A restore that finds fewer rows than the segments hold stops, keeping them.
ALTER TABLE fleet.cold_segment DISABLE TRIGGER hold_row_guard;
ALTER TABLE fleet.cold_event_segment DISABLE TRIGGER hold_row_guard;
UPDATE fleet.cold_segment SET nrows = nrows + 1 WHERE part_lo = :'d80' AND device_id = 1;
UPDATE fleet.cold_event_segment SET nrows = nrows + 1 WHERE part_lo = :'d80';
CALL fleet.cold_restore(:'d80');
CALL fleet.event_cold_restore(:'d80');
SELECT relation, tier FROM fleet.tier_state WHERE lo = :'d80' ORDER BY 1;
SELECT (SELECT count(*) FROM fleet.cold_segment WHERE part_lo = :'d80') AS segments,
       (SELECT count(*) FROM fleet.cold_event_segment WHERE part_lo = :'d80') AS event_segments;
UPDATE fleet.cold_segment SET nrows = nrows - 1 WHERE part_lo = :'d80' AND device_id = 1;
UPDATE fleet.cold_event_segment SET nrows = nrows - 1 WHERE part_lo = :'d80';
ALTER TABLE fleet.cold_segment ENABLE TRIGGER hold_row_guard;
ALTER TABLE fleet.cold_event_segment ENABLE TRIGGER hold_row_guard;
-- run again, it finishes: every row back, no segment left
CALL fleet.cold_restore(:'d80');
CALL fleet.event_cold_restore(:'d80');
SELECT b.rel, h.n = b.n AND h.hash = b.hash AS same_rows
  FROM before b, LATERAL fleet.tier_hash(b.rel::regclass, :'d80') h ORDER BY 1;
SELECT count(*) AS states_left FROM fleet.tier_state WHERE lo = :'d80';
SELECT (SELECT count(*) FROM fleet.cold_segment WHERE part_lo = :'d80') AS segments,
       (SELECT count(*) FROM fleet.cold_event_segment WHERE part_lo = :'d80') AS event_segments;

-- 3. Pack and purge once more; the ledger counts fixes and events.
SELECT fleet.cold_detach(:'d80') IS NOT NULL, fleet.event_cold_detach(:'d80') IS NOT NULL;
SELECT segments, fixes FROM fleet.cold_pack(:'d80');
SELECT segments, events FROM fleet.event_cold_pack(:'d80');
UPDATE fleet.tier_policy SET retention = '60 days' WHERE relation = 'fleet.position'::regclass;
INSERT INTO fleet.tier_policy (relation, time_column, hot_for, cold_after, retention)
VALUES ('fleet.event_log', 'logged_at', '2 days', '10 days', '60 days');
SELECT fleet.tier_step('fleet.position', :'d80', 'purge_cold') AS purge,
       fleet.tier_step('fleet.event_log', :'d80', 'purge_cold') AS purge_events;
SELECT action, relation, (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(detail) k) AS keys,
       COALESCE(detail->'fixes', detail->'events') AS rows
  FROM fleet.tier_ledger
 WHERE action IN ('pack', 'restore', 'purge') AND detail->>'lo' = to_jsonb(:'d80'::timestamptz)->>0
 ORDER BY seq;
SELECT ok FROM fleet.verify_ledger();

-- clean up
UPDATE fleet.tier_policy SET retention = NULL WHERE relation = 'fleet.position'::regclass;
DELETE FROM fleet.tier_policy WHERE relation = 'fleet.event_log'::regclass;
SELECT cron.alter_job(jobid, active := true) FROM cron.job WHERE jobname = 'fleet.maintenance';
