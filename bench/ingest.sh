#!/bin/bash
# bench/ingest.sh: issue 3 benchmarks (ingest and pipeline), each a ratio
# measured in the same run on a throwaway cluster.  Prints a markdown
# section on stdout (bench/run.sh collects it into bench/results.md).
#
#   bench/ingest.sh            # after make install
#   HOLD_SECONDS=60 bench/ingest.sh
#   KEEP=1 bench/ingest.sh     # leave the cluster running for a closer look
#
# Settings are PostgreSQL defaults (fsync and synchronous_commit on) plus
# shared_buffers=256MB, so absolute numbers are the box's; the ratios are
# what the issue's targets are about.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
HOLD_SECONDS=${HOLD_SECONDS:-60}

bench_cluster "fleet.pipeline_enabled = off" "fleet.pipeline_naptime = 20ms"
q -v csv="$WORK/pos.csv" -f "$BENCH_HERE/ingest.sql" >/dev/null

ROWS=100000		# fixed: bench/ingest.sql generates this many fixes

# 1-2. positions batch ingest vs COPY (plain table, same unique key); duplicates.
t_copy=$(ms "COPY plain_position FROM '$WORK/pos.csv'")
t_ingest=$(ms "CALL bench_ingest_positions()")
t_dup=$(ms "CALL bench_ingest_positions()")
stored=$(q -c "SELECT count(*) FROM fleet.position")

# 3. one autocommit INSERT per fix (pgbench, prepared, one client, 10 s).
cat > "$WORK/insert.sql" <<'SQL'
\set d random(1, 200)
INSERT INTO tracker_position (deviceid, fixtime, latitude, longitude, speed, course, altitude, accuracy, attributes)
VALUES (:d, clock_timestamp(), 50.1, 10.2, 42, 180, 120, 5, '{"ignition": true}');
SQL
chmod 644 "$WORK/insert.sql"
tps_single=$(pgbench_tps "$WORK/pgbench.out" -n -M prepared -c 1 -T 10 -f "$WORK/insert.sql")

# 4. consumer throughput vs a FOR UPDATE SKIP LOCKED queue, batch 1000.
q -c "CALL bench_log_ops(1, $ROWS)"
q -c "CALL bench_fill_queue($ROWS)"
q -c "VACUUM ANALYZE"
t_consume=$(ms "CALL bench_consume(1000)")
t_pop=$(ms "CALL bench_pop(1000)")

# 5. the same while another connection holds a snapshot open.
q -c "CALL bench_log_ops($((ROWS + 1)), $ROWS)"
q -c "CALL bench_fill_queue($ROWS)"
q -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM fleet.event_class; SELECT pg_sleep($HOLD_SECONDS); COMMIT;" \
	>/dev/null 2>&1 &
holder=$!
sleep 1
t_consume_held=$(ms "CALL bench_consume(1000)")
t_pop_held=$(ms "CALL bench_pop(1000)")
kill "$holder" 2>/dev/null || true
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null
wait "$holder" 2>/dev/null || true

# 6. financial p99 latency with and without a telemetry flood (workers on).
q -c "ALTER SYSTEM SET fleet.pipeline_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q -c "CALL bench_pay('calm', 200)"
q -c "CALL bench_flood(40)" >/dev/null 2>&1 &
flood=$!
q -c "CALL bench_pay('flood', 200)"
wait "$flood" || true
sleep 2
p99_calm=$(q -c "SELECT round(bench_pay_p99('calm')::numeric, 2)")
p99_flood=$(q -c "SELECT round(bench_pay_p99('flood')::numeric, 2)")
q -c "ALTER SYSTEM SET fleet.pipeline_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
# let the workers finish the flood before replaying
for _ in $(seq 1 120); do
	left=$(q -c "SELECT count(*) FROM fleet.process_pending()" >/dev/null; q -c "SELECT 0")
	[ "$left" = 0 ] && break
done

# 7. replay of the last 24 h vs COPY TO of the same rows.
logged=$(q -c "SELECT count(*) FROM fleet.event_log WHERE logged_at > now() - interval '24 hours'")
t_copyto=$(ms "COPY (SELECT * FROM fleet.event_log WHERE logged_at > now() - interval '24 hours') TO '/dev/null'")
t_replay=$(ms "SELECT * FROM fleet.replay()")

r_copy=$(rate $ROWS "$t_copy"); r_ingest=$(rate $ROWS "$t_ingest"); r_dup=$(rate $ROWS "$t_dup")
r_consume=$(rate $ROWS "$t_consume"); r_pop=$(rate $ROWS "$t_pop")
r_consume_held=$(rate $ROWS "$t_consume_held"); r_pop_held=$(rate $ROWS "$t_pop_held")
r_copyto=$(rate "$logged" "$t_copyto"); r_replay=$(rate "$logged" "$t_replay")

cat <<MD
## Ingest and pipeline (issue 3) -- $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs

| Measure | Rate (rows or events/s) | Baseline (same run) | Ratio | Target |
|---|---|---|---|---|
| positions batch ingest (10 x 10k) vs COPY into a plain table with the same unique index | $r_ingest | $r_copy | $(ratio "$r_ingest" "$r_copy") | >= 0.75 |
| batch of 100% duplicates vs that COPY | $r_dup | $r_copy | $(ratio "$r_dup" "$r_copy") | >= 2 |
| positions batch ingest vs one autocommit INSERT per fix (pgbench, 1 client) | $r_ingest | ${tps_single%.*} | $(ratio "$r_ingest" "${tps_single%.*}") | report |
| consumer (snapshot cursor, batch 1000) vs FOR UPDATE SKIP LOCKED pop (batch 1000) | $r_consume | $r_pop | $(ratio "$r_consume" "$r_pop") | >= 3 |
| consumer while a snapshot is held vs idle | $r_consume_held | $r_consume | $(ratio "$r_consume_held" "$r_consume") | >= 0.9 |
| (for contrast) SKIP LOCKED while a snapshot is held vs idle | $r_pop_held | $r_pop | $(ratio "$r_pop_held" "$r_pop") | -- |
| financial p99 latency (ms) during a telemetry flood vs without | $p99_flood | $p99_calm | $(ratio "$p99_flood" "$p99_calm") | <= 2 |
| replay of the last 24 h vs COPY TO of the same rows | $r_replay | $r_copyto | $(ratio "$r_replay" "$r_copyto") | >= 0.5 |

Stored fixes after the duplicate round: $stored (of $ROWS). Events replayed: $logged.
The snapshot was held by a REPEATABLE READ transaction for up to ${HOLD_SECONDS} s, covering the measurement.

Where targets are missed, and why (from profiles on the 2-core development box, which other work
shares; ratios swing by a factor of up to 1.5 between runs):
- *batch ingest vs COPY* (target 0.75): the ingest does what COPY into a plain table does not: it
  resolves every device through fleet.device_route, looks up the fixes already stored for the
  batch's devices and time range (dedupe and conflict detection), updates fleet.vehicle_state, and
  fires the statement-level capture triggers of the two fleet views over positions (a quarter to
  a third of its time in a perf profile: they aggregate each batch per group into the views'
  delta logs, the price of refreshes that follow the change instead of the table). Three costs a
  profile found (2026-11-29) are gone: the fixes went in in the gateway's order, interleaved by
  device, so the triggers sorted every batch (now inserted by vehicle, newest first: their sort
  order); they went in through one unnest() per column, which the executor materializes as twelve
  single-column result sets (now one array of fleet.position_row); and the daily rollup's
  first/last positions were ordered aggregates sorting every vehicle-day (now the C aggregates
  fleet.first_by/last_by). 0.46 before them on this box; 0.66-0.78 after, COPY unchanged. Since
  (2026-12-08): a device whose batch is wholly newer than its last one through the connection is
  not looked up (the primary key proves it; a violation redoes the batch with the look-up), the
  look-up that remains is a per-device range scan on a kept plan (it had become a scan of the day
  partition's whole index by time), vehicle state moves by a plain HOT UPDATE instead of an
  upsert, and the insert runs with work_mem of at least 32 MB so the rollup trigger's aggregation
  no longer spills to temporary files. The duplicate round looks up every device (a device found
  re-sending keeps being looked up until a batch of it is all new).
- *consumer vs SKIP LOCKED* (target 3) and *with a held snapshot* (target 0.9): the bench kind has
  no handler, so this is the pipeline's own cost per batch. A perf profile (2026-11-29) found and
  removed three costs: at the start of every batch window the log index was walked from the
  oldest consumed entry (a scalar and a row lower bound on the same index column, which btree
  cannot merge: an empty pass over 300k consumed events took 75 ms, now 1 ms); both snapshot
  texts were parsed again for every row; a plpgsql trigger on the cursor re-read the pass's
  first and last events (15% of a pass); and later each row's txid was cast to text and its
  kind read through an output function (about 7%). Since (2026-12-08) the batch's rows go to a
  receiver that keeps only what the pass needs (a payload only for kinds with a handler) in
  memory kept from pass to pass: SPI's tuple table of whole rows, allocated and freed every pass,
  was a quarter of a pass (backend CPU per event without handler 1.1-1.3 -> 0.8-0.9 us, SKIP
  LOCKED 2.6 us). What remains is flat: the ordered index scan over the class's partitions, the
  per-50-events subtransaction of the applier, the tenant context set once per pass
  (fleet.set_tenant plans its look-up on every call: 13% of a pass with an empty handler), and
  the commit's WAL flush, which the SKIP LOCKED baseline also pays once per batch but with a
  DELETE instead of a read; on this shared box the commit's flush dominates wall time when
  other work writes. The held snapshot keeps the cursor and counter rows' old versions (one per
  pass) unprunable; runs on this shared box swing by more than the gap to both targets (held vs
  idle: 0.76 and 1.5 in two runs the same hour).
- *financial p99 during a telemetry flood* (target 2): on two cores the flood's client and the
  telemetry worker compete with the financial worker for CPU; the telemetry worker now runs at a
  lower priority (fleet.pipeline_telemetry_nice), the flood's client backend cannot be.
- *replay vs COPY TO* (target 0.5): replay re-runs every handler in commit order inside one
  transaction (the projections must end equal to live processing), COPY TO only serialises rows.
  Most of its time is the rewind (collecting the range's applied events into temporary tables
  and joining them to the projections); analyzing those tables with the default 30,000-row
  sample was a fifth of it, a 3,000-row sample does (2026-11-29: 0.47-0.49 -> 0.62).
MD
