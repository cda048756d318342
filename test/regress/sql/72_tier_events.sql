-- The event log's cold tier: a consumed partition is detached, packed per
-- tenant and day (delta-encoded ids, times and transaction ids, text and
-- jsonb compressed), read back through fleet.event_log_range() and
-- fleet.event_log_all, checked before the source is dropped, protected by
-- legal holds, ledgered, and restored losslessly.
\set VERBOSITY terse
SET timezone = 'UTC';
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';
-- regress_tier.try() (made by 70_tiering): errors with dates and hashes masked

SELECT fleet.create_tenant('Cold Events Ltd') AS t \gset
SELECT fleet.create_tenant('Other Events Ltd') AS t2 \gset
SELECT ((now() AT TIME ZONE 'UTC')::date - 60) AS d60 \gset
SELECT fleet.create_daily_partitions('fleet.event_log', :'d60', :'d60') AS created;
-- a day of events of two tenants, awkward payloads included
INSERT INTO fleet.event_log (tenant_id, event_id, logged_at, class, kind, schema_version, original_version, source,
                             idem_key, occurred_at, payload)
SELECT CASE WHEN i % 3 = 0 THEN :t2 ELSE :t END, 1000000 + i, :'d60'::timestamptz + i * interval '97 s' + (i % 7) * interval '1 ms',
       'tier-test', CASE WHEN i % 2 = 0 THEN 'stop.arrived' ELSE 'job.status' END, 2, 1 + i % 2,
       'app-' || (i % 4), 'key-' || i, :'d60'::timestamptz + i * interval '97 s' - (i % 11) * interval '1 s',
       CASE i % 5
         WHEN 0 THEN jsonb_build_object('job', i, 'state', 'done', 'note', 'Grüße, 東京 ✓')
         WHEN 1 THEN jsonb_build_object('lat', 52.123456789, 'lon', -13.000001, 'big', 12345678901234567890.5)
         WHEN 2 THEN jsonb_build_object('nested', jsonb_build_object('a', jsonb_build_array(1, 'x', NULL, true)), 'empty', '{}'::jsonb)
         WHEN 3 THEN '[]'::jsonb
         ELSE to_jsonb('a "quoted" \ string'::text) END
  FROM generate_series(1, 800) i;
CREATE TEMP TABLE before AS SELECT * FROM fleet.tier_hash('fleet.event_log', :'d60');
CREATE TEMP TABLE before_t AS SELECT count(*) AS n, md5(string_agg(ROW(e.*)::text, E'\n' ORDER BY ROW(e.*)::text)) AS hash
  FROM fleet.event_log e WHERE e.tenant_id = :t AND e.logged_at >= :'d60' AND e.logged_at < :'d60'::date + 1;
SELECT n FROM before;

-- 1. Not before every class has consumed the partition.
INSERT INTO fleet.event_log (tenant_id, event_id, logged_at, class, kind, schema_version, original_version, source,
                             idem_key, occurred_at, payload)
SELECT :t, 1, :'d60'::timestamptz + interval '23 hours', c.class, 'x', 1, 1, 'app', 'unconsumed', :'d60'::timestamptz, '{}'
  FROM fleet.consumer_cursor c ORDER BY c.class LIMIT 1;
SELECT regress_tier.try(format('SELECT fleet.event_cold_detach(%L)', :'d60'));
DELETE FROM fleet.event_log WHERE tenant_id = :t AND event_id = 1 AND logged_at = :'d60'::timestamptz + interval '23 hours';

-- 2. Detach and pack (through fleet.tier_step, as maintenance runs them).
SELECT fleet.tier_step('fleet.event_log', :'d60', 'cold_detach') ~ '^detached as event_log_p[0-9]{8}_c$' AS detached;
SELECT regexp_replace(fleet.tier_step('fleet.event_log', :'d60', 'cold_pack'), '[0-9]+ bytes', 'N bytes') AS packed;
SELECT tenant_id = :t AS first_tenant, day = :'d60'::date AS same_day, nrows, octet_length(data) < nrows * 40 AS compact
  FROM fleet.cold_event_segment ORDER BY tenant_id;
SELECT tier, rows, range_hi - range_lo AS span FROM fleet.tier_status
 WHERE relation = 'fleet.event_log'::regclass AND range_lo = :'d60';
SELECT count(*) AS live_rows_left FROM fleet.event_log WHERE logged_at >= :'d60' AND logged_at < :'d60'::date + 1;
-- every event reads back identically, through the range function and the view
SELECT count(*) AS n,
       md5(string_agg(ROW(r.*)::text, E'\n' ORDER BY ROW(r.*)::text)) = (SELECT hash FROM before) AS same_rows
  FROM fleet.event_log_range(:'d60', :'d60'::timestamptz + interval '1 day') r;
SELECT count(*) AS via_view FROM fleet.event_log_all WHERE logged_at >= :'d60' AND logged_at < :'d60'::date + 1;
SELECT count(*) AS one_class_one_hour FROM fleet.event_log_range(:'d60'::timestamptz + interval '1 hour',
	:'d60'::timestamptz + interval '2 hours', 'tier-test');
SELECT payload FROM fleet.event_log_range(:'d60', :'d60'::timestamptz + interval '1 day') WHERE event_id IN (1000001, 1000002, 1000004, 1000005)
 ORDER BY event_id;
-- tenants see their own cold events only
SET ROLE fleet_app;
SELECT count(*) AS no_context FROM fleet.event_log_range(:'d60', :'d60'::timestamptz + interval '1 day');
SELECT fleet.set_tenant(:t2) > 0 AS in_context;
SELECT count(*) AS own_events, bool_and(tenant_id = :t2) AS only_own FROM fleet.event_log_range(:'d60', :'d60'::timestamptz + interval '1 day');
SELECT fleet.clear_tenant();
RESET ROLE;
-- steps out of order
SELECT regress_tier.try(format('SELECT fleet.event_cold_pack(%L)', :'d60'));
SELECT regress_tier.try(format('SELECT fleet.event_cold_detach(%L)', :'d60'));

-- 3. The codec: lossless for every column, strict about its input.
SELECT fleet.cold_event_decode(fleet.cold_event_encode(ARRAY[9223372036854775807, -5], ARRAY['infinity'::timestamptz, '2000-01-01'],
	ARRAY['18446744073709551615'::xid8, '3'::xid8], ARRAY['', 'c'], ARRAY['k', ''], ARRAY[2147483647, -2147483648],
	ARRAY[0, 1], ARRAY['s', 's'], ARRAY['i', E'\t'], ARRAY['-infinity'::timestamptz, '1999-12-31 23:59:59.999999'],
	ARRAY['null'::jsonb, '{"a": [1.50, "b"]}'])) AS rows;
SELECT * FROM fleet.cold_event_decode('\x00');
SELECT * FROM fleet.cold_event_decode(fleet.cold_encode(ARRAY[now()], ARRAY[1.5]::float8[], ARRAY[2.5]::float8[], ARRAY[1::real],
	ARRAY[1::real], ARRAY[1::real], ARRAY[1::real], ARRAY[1::bigint], ARRAY[NULL::jsonb], ARRAY[now()]));
SELECT fleet.cold_event_encode('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
SELECT fleet.cold_event_encode(ARRAY[1, 2], ARRAY[now()], ARRAY['1'::xid8], ARRAY['c'], ARRAY['k'], ARRAY[1], ARRAY[1],
	ARRAY['s'], ARRAY['i'], ARRAY[now()], ARRAY['{}'::jsonb]);
SELECT fleet.cold_event_encode(ARRAY[1], ARRAY[now()], ARRAY['1'::xid8], ARRAY[NULL::text], ARRAY['k'], ARRAY[1], ARRAY[1],
	ARRAY['s'], ARRAY['i'], ARRAY[now()], ARRAY['{}'::jsonb]);

-- 4. Legal hold: held cold events are neither deleted, truncated nor purged.
INSERT INTO fleet.tier_policy (relation, time_column, hot_for, cold_after, retention)
VALUES ('fleet.event_log', 'logged_at', '2 days', '10 days', '30 days');
SELECT fleet.place_hold(:t, :'d60'::timestamptz + interval '2 hours', :'d60'::timestamptz + interval '3 hours',
                        'complaint 88', NULL, 'fleet.event_log') AS hold \gset
CREATE ROLE tier_event_admin LOGIN;
GRANT fleet_admin TO tier_event_admin;
GRANT DELETE, TRUNCATE ON fleet.cold_event_segment TO tier_event_admin;
SET ROLE tier_event_admin;
SELECT fleet.set_tenant(:t) > 0 AS in_context;
SELECT regress_tier.try('DELETE FROM fleet.cold_event_segment') AS "DELETE FROM fleet.cold_event_segment";
SELECT regress_tier.try('TRUNCATE fleet.cold_event_segment') AS "TRUNCATE fleet.cold_event_segment";
SELECT regress_tier.try('DROP TABLE fleet.cold_event_segment') AS "DROP TABLE fleet.cold_event_segment";
SELECT fleet.clear_tenant();
RESET ROLE;
SELECT relation, (lo AT TIME ZONE 'UTC')::date - :'d60'::date AS day, action FROM fleet.tier_due()
 WHERE relation = 'fleet.event_log'::regclass AND lo = :'d60';
SELECT fleet.tier_step('fleet.event_log', :'d60', 'purge_cold') AS purge;
SELECT count(*) AS segments_left FROM fleet.cold_event_segment WHERE part_lo = :'d60';
SELECT fleet.release_hold(:t, :hold);

-- 5. Restore: the partition comes back with its bounds, every event identical.
CALL fleet.event_cold_restore(:'d60');
-- (the other tenant's segment, not held, was purged above)
SELECT count(*) AS restored, count(*) = (SELECT n FROM before_t) AS all_held_back,
       md5(string_agg(ROW(e.*)::text, E'\n' ORDER BY ROW(e.*)::text)) = (SELECT hash FROM before_t) AS same_rows,
       count(*) FILTER (WHERE tenant_id <> :t) AS other_tenant
  FROM fleet.event_log e WHERE e.logged_at >= :'d60' AND e.logged_at < :'d60'::date + 1;
SELECT regexp_replace(partition::text, '[0-9]{8}', 'YYYYMMDD') AS partition, hi - lo AS span
  FROM fleet.time_partitions('fleet.event_log') WHERE lo = :'d60';
SELECT count(*) AS cold_left FROM fleet.cold_event_segment WHERE part_lo = :'d60';
SELECT regress_tier.try(format('CALL fleet.event_cold_restore(%L)', :'d60'));
SELECT action, relation, count(*) FROM fleet.tier_ledger WHERE relation = 'fleet.event_log' GROUP BY 1, 2 ORDER BY 1;
SELECT ok FROM fleet.verify_ledger();

-- clean up
DELETE FROM fleet.tier_policy WHERE relation = 'fleet.event_log'::regclass;
REVOKE ALL ON fleet.cold_event_segment FROM tier_event_admin;
DROP OWNED BY tier_event_admin;
DROP ROLE tier_event_admin;
SELECT cron.alter_job(jobid, active := true) FROM cron.job WHERE jobname = 'fleet.maintenance';
