-- Housekeeping: partitions are created ahead, expired ones are dropped
-- whole (keys and log kept at least fleet.replay_window, log partitions only
-- once consumed), scheduled with pg_cron.
\set VERBOSITY terse
SELECT jobname, schedule, command FROM cron.job WHERE jobname = 'fleet.maintenance';
-- (paused while this test runs, so the counts below are its own)
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';
SELECT relation, days_ahead, days_back, retention FROM fleet.partitioned_table ORDER BY relation::text;

SELECT relation, created >= 0 AS ran, dropped FROM fleet.run_maintenance();
-- Every table has its partitions from days_back to days_ahead (UTC).
SELECT t.relation,
       bool_and(EXISTS (SELECT 1 FROM fleet.daily_partitions(t.relation) p WHERE p.day = d::date)) AS all_there
  FROM fleet.partitioned_table t,
       generate_series((now() AT TIME ZONE 'UTC')::date - t.days_back, (now() AT TIME ZONE 'UTC')::date + t.days_ahead,
                       interval '1 day') d
 GROUP BY t.relation ORDER BY t.relation::text;
-- Partitions carry a comment like every fleet relation.
SELECT count(*) AS uncommented FROM pg_class c
 WHERE c.relnamespace = 'fleet'::regnamespace AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') IS NULL;

-- Old key partitions are dropped; yesterday's stays because it is within
-- the replay window even when the retention is set shorter.
UPDATE fleet.partitioned_table SET retention = '1 hour' WHERE relation = 'fleet.event_key'::regclass;
SELECT fleet.create_daily_partitions('fleet.event_key', (now() AT TIME ZONE 'UTC')::date - 20, (now() AT TIME ZONE 'UTC')::date - 20);
INSERT INTO fleet.event_key (tenant_id, source, idem_key, first_seen, payload_hash, event_id)
SELECT tenant_id, 'old', 'k', now() - interval '20 days', 0, 0 FROM fleet.tenant WHERE name = 'North Freight';
SELECT count(*) AS old_keys FROM fleet.event_key WHERE source = 'old';
-- (with the old one, the install's partition of the day before it once a
-- UTC midnight has passed since the install: counted as "at least one")
SELECT relation, dropped >= 1 AS dropped FROM fleet.run_maintenance() WHERE relation = 'fleet.event_key'::regclass;
SELECT count(*) AS old_keys FROM fleet.event_key WHERE source = 'old';
SELECT EXISTS (SELECT 1 FROM fleet.daily_partitions('fleet.event_key') WHERE day = (now() AT TIME ZONE 'UTC')::date - 1)
       AS yesterday_kept;
UPDATE fleet.partitioned_table SET retention = '7 days' WHERE relation = 'fleet.event_key'::regclass;

-- An old log partition with an event not yet consumed stays until it is.
SELECT fleet.create_daily_partitions('fleet.event_log', (now() AT TIME ZONE 'UTC')::date - 20, (now() AT TIME ZONE 'UTC')::date - 20);
INSERT INTO fleet.event_log (tenant_id, event_id, logged_at, class, kind, schema_version, original_version,
                             source, idem_key, occurred_at, payload)
SELECT tenant_id, nextval('fleet.event_id_seq'), now() - interval '20 days', 'audit', 'audit.note', 1, 1,
       'old', 'k', now() - interval '20 days', '{"text": "old"}'
  FROM fleet.tenant WHERE name = 'North Freight';
SELECT relation, dropped FROM fleet.run_maintenance() WHERE relation = 'fleet.event_log'::regclass;
SELECT count(*) AS old_events FROM fleet.event_log WHERE source = 'old';
SELECT applied FROM fleet.process_pending('audit');
SELECT relation, dropped FROM fleet.run_maintenance() WHERE relation = 'fleet.event_log'::regclass;
SELECT count(*) AS old_events FROM fleet.event_log WHERE source = 'old';

-- Positions have no retention here (tiered storage takes them later).
SELECT relation, dropped FROM fleet.run_maintenance() WHERE relation = 'fleet.position'::regclass;

-- Errors.
SELECT fleet.create_daily_partitions('fleet.job', '2026-01-01', '2026-01-01');
SELECT fleet.create_daily_partitions('fleet.position', '2026-01-02', '2026-01-01');
SELECT fleet.create_daily_partitions('fleet.position', '2026-01-01', '2040-01-01');
SELECT fleet.create_daily_partitions('fleet.position', NULL, '2026-01-01');
UPDATE fleet.partitioned_table SET days_ahead = 0 WHERE relation = 'fleet.position'::regclass;
SET fleet.replay_window = '10min';
SET ROLE fleet_app;
SELECT * FROM fleet.run_maintenance();
RESET ROLE;
SELECT cron.alter_job(jobid, active := true) FROM cron.job WHERE jobname = 'fleet.maintenance';

-- Partitions are known by their bounds, read in UTC whatever the type of
-- the time key (timestamptz, timestamp, date); a default partition, a
-- MINVALUE or MAXVALUE bound, a key of two columns or of another type
-- bound no time range.
SET timezone = 'America/New_York';
CREATE TABLE public.pm_days (d date NOT NULL) PARTITION BY RANGE (d);
CREATE TABLE public.pm_days_a PARTITION OF public.pm_days FOR VALUES FROM ('2026-03-01') TO ('2026-03-08');
CREATE TABLE public.pm_days_b PARTITION OF public.pm_days FOR VALUES FROM (MINVALUE) TO ('2026-03-01');
CREATE TABLE public.pm_days_c PARTITION OF public.pm_days FOR VALUES FROM ('2026-03-08') TO (MAXVALUE);
CREATE TABLE public.pm_stamps (t timestamp NOT NULL) PARTITION BY RANGE (t);
CREATE TABLE public.pm_stamps_a PARTITION OF public.pm_stamps FOR VALUES FROM ('2026-03-08 01:00') TO ('2026-03-08 03:00');
CREATE TABLE public.pm_stamps_d PARTITION OF public.pm_stamps DEFAULT;
CREATE TABLE public.pm_pair (a timestamptz NOT NULL, b timestamptz NOT NULL) PARTITION BY RANGE (a, b);
CREATE TABLE public.pm_pair_a PARTITION OF public.pm_pair FOR VALUES FROM ('2026-03-01', '2026-03-01') TO ('2026-03-02', '2026-03-02');
CREATE TABLE public.pm_ints (n integer NOT NULL) PARTITION BY RANGE (n);
CREATE TABLE public.pm_ints_a PARTITION OF public.pm_ints FOR VALUES FROM (1) TO (10);
SET timezone = 'UTC';
SELECT partition, lo, hi FROM fleet.time_partitions('public.pm_days');
SELECT partition, lo, hi FROM fleet.time_partitions('public.pm_stamps');
SELECT (SELECT count(*) FROM fleet.time_partitions('public.pm_pair')) AS two_columns,
       (SELECT count(*) FROM fleet.time_partitions('public.pm_ints')) AS integers,
       (SELECT count(*) FROM fleet.time_partitions('public.pm_stamps_a')) AS not_partitioned;
-- Creating around existing partitions: a month spanning many daily
-- periods, three hours inside one; only the uncovered parts get partitions,
-- named by their ranges, and a second run creates none.
CREATE TABLE public.pm_span (tenant_id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.pm_span_month PARTITION OF public.pm_span FOR VALUES FROM ('2026-03-01 00:00+00') TO ('2026-04-01 00:00+00');
CREATE TABLE public.pm_span_hours PARTITION OF public.pm_span FOR VALUES FROM ('2026-04-02 06:00+00') TO ('2026-04-02 09:00+00');
SELECT fleet.create_partitions('public.pm_span', '2026-02-27 12:00+00', '2026-04-04 00:00+00') AS created;
SELECT partition, lo, hi FROM fleet.time_partitions('public.pm_span');
SELECT fleet.create_partitions('public.pm_span', '2026-02-27 12:00+00', '2026-04-04 00:00+00') AS created_again;
DROP TABLE public.pm_days, public.pm_stamps, public.pm_pair, public.pm_ints, public.pm_span;
RESET timezone;
