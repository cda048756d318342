#!/bin/bash
# bench/tiering.sh: issue 6 benchmarks (tiered partitioning), each a ratio or
# a figure measured in the same run on a throwaway cluster.  Prints a
# markdown section on stdout and writes it into bench/results.md as the
# section "## tiering" (other sections are left as they are).
#
#   bench/tiering.sh                           # after make install
#   SMALL_VEHICLES=10 BIG_VEHICLES=60 INGEST_SECONDS=10 bench/tiering.sh   # quicker
#
# Telemetry: one fix every ~10 s per vehicle for a whole day (8,640 fixes
# per vehicle), smooth tracks with GPS noise at six decimals, speed,
# heading, altitude, accuracy, a sequence number, ms-precision fix times,
# receive times a few seconds later and an attrs object every 60th fix.
#   day -40 (small, SMALL_VEHICLES vehicles, ~50 MB): hot -> warm -> cold
#   day -41 (big, BIG_VEHICLES vehicles, ~500 MB):   hot -> warm
#   day -39 (small copy): stays hot; its in-place ALTER TABLE SET TABLESPACE
#     is the baseline for the lock time of the copy-then-swap move
set -euo pipefail

. "$(dirname "$0")/lib.sh"
SMALL_VEHICLES=${SMALL_VEHICLES:-35}
BIG_VEHICLES=${BIG_VEHICLES:-350}
INGEST_SECONDS=${INGEST_SECONDS:-20}
DUTY=${DUTY:-0.25}			# share of time the warm copy may run (fleet.tier_maintenance p_duty)

COMMIT_MEASURED=$(bench_commit)	# before the run: the tree may change while it runs
bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off" "shared_buffers = 1GB" "work_mem = 64MB" \
	"maintenance_work_mem = 512MB" "max_wal_size = 8GB"
mkdir -p "$WORK/warm" "$WORK/warm_baseline"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/warm" "$WORK/warm_baseline"
q -c 'CREATE EXTENSION pg_visibility' >/dev/null
q -c 'SELECT fleet.create_roles()' >/dev/null

log "setup: $SMALL_VEHICLES + $BIG_VEHICLES + $SMALL_VEHICLES vehicles, one day of telemetry each"
q >/dev/null <<SQL
SET timezone = 'UTC';
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'fleet.maintenance';
CREATE TABLESPACE bench_warm LOCATION '$WORK/warm';
CREATE TABLESPACE bench_warm_baseline LOCATION '$WORK/warm_baseline';
UPDATE fleet.tier_policy SET warm_tablespace = 'bench_warm' WHERE relation = 'fleet.position'::regclass;
SELECT fleet.create_daily_partitions('fleet.position', current_date - 41, current_date + 2);
SELECT fleet.create_tenant('Bench Freight') AS t \gset
SELECT fleet.set_tenant(:t);
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :t, 'TV' || g FROM generate_series(1, $SMALL_VEHICLES * 2 + $BIG_VEHICLES) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :t, 'TD' || substr(code, 3), 'teltonika', vehicle_id FROM fleet.vehicle;
SELECT fleet.clear_tenant();
SELECT setseed(0.42);
CREATE FUNCTION pg_temp.day_of_telemetry(p_day date, p_first int, p_last int) RETURNS void LANGUAGE sql AS \$\$
INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading, altitude, accuracy,
                            seq, attrs, received_at)
SELECT d.tenant_id, d.device_id, f.t, d.vehicle_id,
       round((47 + v * 0.013 + 0.02 * sin(i / 400.0 + v) + 0.003 * sin(i / 23.0) + (random() - 0.5) * 0.00003)::numeric, 6)::float8,
       round((9 + v * 0.011 + 0.03 * cos(i / 500.0 + v) + 0.004 * cos(i / 29.0) + (random() - 0.5) * 0.00003)::numeric, 6)::float8,
       round(greatest(0, 45 + 40 * sin(i / 60.0 + v) + random() * 4)::numeric, 1)::real,
       round(((v * 37 + i * 0.7 + 25 * sin(i / 30.0))::numeric % 360), 1)::real,
       round((300 + 40 * sin(i / 900.0 + v) + random())::numeric, 1)::real,
       (3 + floor(random() * 6))::real,
       i,
       CASE WHEN i % 60 = 0 THEN jsonb_build_object('ign', true, 'odo', 100000 + i * 3, 'fuel', round((60 - i / 300.0)::numeric, 1)) END,
       f.t + (500 + floor(random() * 2500)) * interval '1 ms'
  FROM generate_series(p_first, p_last) v
  JOIN fleet.device d ON d.identifier = 'TD' || v
 CROSS JOIN generate_series(0, 8639) i
 CROSS JOIN LATERAL (SELECT p_day + i * interval '10 s' + floor(random() * 1000) * interval '1 ms' AS t) f
\$\$;
SELECT pg_temp.day_of_telemetry(current_date - 40, 1, $SMALL_VEHICLES);
SELECT pg_temp.day_of_telemetry(current_date - 41, $SMALL_VEHICLES + 1, $SMALL_VEHICLES + $BIG_VEHICLES);
SELECT pg_temp.day_of_telemetry(current_date - 39, $SMALL_VEHICLES + $BIG_VEHICLES + 1, $SMALL_VEHICLES * 2 + $BIG_VEHICLES);
VACUUM ANALYZE fleet.position;
CHECKPOINT;
SQL
part() { q -c "SET timezone = 'UTC'" -c "SELECT fleet.tier_partition('fleet.position', current_date - $1)"; }
size_of() { q -c "SELECT pg_total_relation_size('$1')"; }
rows_of() { q -c "SELECT count(*) FROM $1"; }
P40=$(part 40); P41=$(part 41); P42=$(part 39)
S40=$(size_of "$P40"); S41=$(size_of "$P41"); S42=$(size_of "$P42")
R40=$(rows_of "$P40"); R41=$(rows_of "$P41"); R42=$(rows_of "$P42")
log "day -40: $R40 fixes, $S40 B; day -41: $R41 fixes, $S41 B; day -39: $R42 fixes, $S42 B"
H40=$(q -c "SELECT hash FROM fleet.tier_hash('$P40')")
H41=$(q -c "SELECT hash FROM fleet.tier_hash('$P41')")

# --- ingest into today's partition: idle, then while the big day moves -----
cat > "$WORK/ingest.sql" <<'SQL'
\set dev random(1, 100)
SELECT count(*) FROM fleet.ingest_positions(
	(SELECT array_agg('TD' || (:dev + g % 5) ORDER BY g) FROM generate_series(1, 200) g),
	(SELECT array_agg(clock_timestamp() - random() * interval '5 s' ORDER BY g) FROM generate_series(1, 200) g),
	(SELECT array_agg(47 + random() ORDER BY g)::float8[] FROM generate_series(1, 200) g),
	(SELECT array_agg(9 + random() ORDER BY g)::float8[] FROM generate_series(1, 200) g),
	NULL, NULL, NULL, NULL, NULL, NULL);
SQL
[ "$(id -u)" = 0 ] && chown postgres "$WORK/ingest.sql"
# pgbench with a progress line per second; tps averaged over a window of elapsed seconds
log "ingest: $INGEST_SECONDS s idle, then while fleet.tier_maintenance() moves day -41 (duty $DUTY), then $INGEST_SECONDS s idle"
"$BINDIR/pgbench" -U postgres -h "$WORK" -p "$PORT" -n -c 2 -j 2 -T 3600 -P 1 -f "$WORK/ingest.sql" bench \
	> "$WORK/pgbench.out" 2> "$WORK/progress" &
PGBENCH=$!
T_START=$(date +%s.%N)
sleep "$INGEST_SECONDS"
q -c "UPDATE fleet.tier_policy SET hot_for = '40 days', cold_after = NULL WHERE relation = 'fleet.position'::regclass"
M_FROM=$(awk -v s="$T_START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.0f", n - s + 1 }')
MOVE_MS=$(ms -c "SET client_min_messages = warning" -c "CALL fleet.tier_maintenance(p_duty => $DUTY)")
M_TO=$(awk -v s="$T_START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.0f", n - s }')
sleep "$INGEST_SECONDS"
kill -TERM $PGBENCH 2>/dev/null || true
wait $PGBENCH 2>/dev/null || true
avg_tps() { awk -v a="$1" -v b="$2" '/^progress:/ { t = $2 + 0; if (t >= a && t <= b) { s += $4; n++ } } END { if (n) printf "%.1f", s / n; else print 0 }' "$WORK/progress"; }
TPS_IDLE=$(avg_tps 2 "$INGEST_SECONDS")
TPS_BUSY=$(avg_tps "$M_FROM" "$M_TO")
TPS_AFTER=$(avg_tps $((M_TO + 2)) $((M_TO + INGEST_SECONDS)))
note_load "ingest and move"
q -c "UPDATE fleet.tier_policy SET hot_for = '2 days' WHERE relation = 'fleet.position'::regclass"
SW41="$(q -c "SET timezone = 'UTC'" -c "SELECT round(lock_ms::numeric, 2) FROM fleet.tier_state WHERE lo = current_date - 41");n/a"
# the warm copy is written frozen: pages all-frozen / all pages of the moved partition (rows that
# arrived during the copy, added by the swap, may leave a page or two unfrozen until vacuum)
FROZEN41=$(q -c "SET timezone = 'UTC'" -c "SELECT v.all_frozen || ' / ' || pg_relation_size(p.p) / current_setting('block_size')::int
	FROM (SELECT fleet.tier_partition('fleet.position', current_date - 41) AS p) p, pg_visibility_map_summary(p.p) v")

# --- lock time of the swap, big and small, and the in-place baseline -------
swap() {	# prints "lock ms inside the function;wall ms of the transaction including commit"
	local wall lock
	wall=$(ms -c "SET timezone = 'UTC'" -c "SET lock_timeout = '5s'" -c "SELECT fleet.warm_swap('fleet.position', current_date - $1)")
	lock=$(q -c "SET timezone = 'UTC'" -c "SELECT round(lock_ms::numeric, 2) FROM fleet.tier_state WHERE lo = current_date - $1")
	echo "$lock;$wall"
}
log "move day -40 (small)"
q -c "SET timezone = 'UTC'" -c "SELECT fleet.warm_begin('fleet.position', current_date - 40)" >/dev/null
until [ "$(q -c "SET timezone = 'UTC'" -c "SELECT tier FROM fleet.tier_state WHERE lo = current_date - 40")" = copied ]; do
	q -c "SET timezone = 'UTC'" -c "SELECT fleet.warm_copy('fleet.position', current_date - 40)" >/dev/null
done
SW40=$(swap 40); note_load "swap small"
log "baseline: ALTER TABLE SET TABLESPACE of day -39 (small, hot)"
BASE42_MS=$(ms -c "ALTER TABLE $P42 SET TABLESPACE bench_warm_baseline"); note_load "baseline"
H41_AFTER=$(q -c "SELECT hash FROM fleet.tier_hash('$(part 41)')")

# --- cold --------------------------------------------------------------------
log "pack day -40 into the cold tier"
PACK_MS=$(ms -c "SET timezone = 'UTC'" -c "SELECT fleet.cold_detach(current_date - 40)" -c "SELECT fleet.cold_pack(current_date - 40)")
COLD_BYTES=$(q -c "SELECT sum(octet_length(data)) FROM fleet.cold_segment")
COLD_STORED=$(q -c "SELECT pg_total_relation_size('fleet.cold_segment')")
COLD_FIXES=$(q -c "SELECT sum(nrows) FROM fleet.cold_segment")
BPF_COLD=$(ratio "$COLD_BYTES" "$COLD_FIXES")
BPF_COLD_TABLE=$(ratio "$COLD_STORED" "$COLD_FIXES")
BPF_HOT=$(ratio "$S40" "$R40")
COLD_OK=$([ "$(q -c "SELECT ok FROM fleet.verify_ledger()")" = t ] && echo yes || echo NO)

# --- one vehicle, one hour, in each tier (tenant context, as an application) --
query_ms() {	# $1 days back, $2 vehicle number
	local runs=() i
	for i in 1 2 3 4 5; do
		runs+=("$(ms -c "SET timezone = 'UTC'" -c 'SET ROLE fleet_app' \
			-c "SELECT fleet.set_tenant(tenant_id) FROM fleet.tenant WHERE name = 'Bench Freight'" \
			-c "SELECT count(*) FROM fleet.position_range(current_date - $1 + interval '12 hours', current_date - $1 + interval '13 hours',
			       (SELECT device_id FROM fleet.device WHERE identifier = 'TD$2'))")")
	done
	median "${runs[@]}"
}
log "one-vehicle one-hour queries"
Q_HOT=$(query_ms 39 $((SMALL_VEHICLES + BIG_VEHICLES + 3)))
Q_WARM=$(query_ms 41 $((SMALL_VEHICLES + 3)))
Q_COLD=$(query_ms 40 3)
N_HOUR=$(q -c "SET timezone = 'UTC'" -c "SELECT count(*) FROM fleet.position_range(current_date - 40 + interval '12 hours', current_date - 40 + interval '13 hours', (SELECT device_id FROM fleet.device WHERE identifier = 'TD3'))")
note_load "queries"

# --- pg_partman --------------------------------------------------------------
if [ -f "$(pg_config --sharedir)/extension/pg_partman.control" ]; then
	PARTMAN="pg_partman comparison: see the section \"tiering vs pg_partman\" (bench/partman.sh)."
else
	PARTMAN="pg_partman (Debian postgresql-15-partman) is not installed in the PostgreSQL tree used ($(pg_config --sharedir)): the comparison of its run_maintenance() with fleet's was not run."
fi

lock_of() { echo "${1%%;*}"; }
wall_of() { echo "${1##*;}"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1048576 }'; }
ok() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }
okge() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "met" : "MISSED" }'; }
TPS_RATIO=$(ratio "$TPS_BUSY" "$(awk -v a="$TPS_IDLE" -v b="$TPS_AFTER" 'BEGIN { printf "%.1f", (a + b) / 2 }')")
section=$(cat <<MD
## tiering

Issue 6, \`bench/tiering.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) at commit $COMMIT_MEASURED; $(machine --short); one throwaway cluster
(shared_buffers 1GB; fsync on), warm tablespace in a directory of the same disk.
Telemetry: one fix every ~10 s per vehicle for a day, smooth tracks with GPS noise at six decimals, speed,
heading, altitude, accuracy, sequence, attrs on every 60th fix.
Day -41: $R41 fixes, $(mb "$S41") heap + primary key; day -40: $R40 fixes, $(mb "$S40"); day -39: $R42 fixes, $(mb "$S42").

| measure | value | target |
| --- | --- | --- |
| hot -> warm, $(mb "$S41") partition, moved by fleet.tier_maintenance(): lock held by the swap (lock request to end of DDL) | $(lock_of "$SW41") ms | <= 100 ms: $(ok "$(lock_of "$SW41")" 100) |
| hot -> warm, $(mb "$S40") partition: lock held by the swap (in the function / whole transaction) | $(lock_of "$SW40") ms / $(wall_of "$SW40") ms | <= 100 ms: $(ok "$(wall_of "$SW40")" 100) |
| baseline: in-place ALTER TABLE SET TABLESPACE of a $(mb "$S42") partition (lock held throughout) | $BASE42_MS ms | |
| swap lock / in-place lock, same size | $(ratio "$(wall_of "$SW40")" "$BASE42_MS") | report |
| whole move of the $(mb "$S41") partition by fleet.tier_maintenance() (copy written frozen at duty $DUTY, sorted, indexes, BRIN, analyze, swap) | $MOVE_MS ms | |
| pages of the moved $(mb "$S41") partition all-frozen after the move, without any vacuum (all-frozen / all) | $FROZEN41 | all |
| every row kept by the big move (hash before = after) | $([ "$H41" = "$H41_AFTER" ] && echo yes || echo NO) | yes |
| cold bytes per fix (segments) / with the table's own overhead | $BPF_COLD B / $BPF_COLD_TABLE B | <= 16 B: $(ok "$BPF_COLD" 16) |
| heap + primary key bytes per fix (hot) | $BPF_HOT B | |
| hot / cold size ratio | $(ratio "$BPF_HOT" "$BPF_COLD") | report |
| pack of the $(mb "$S40") day (encode, decode, compare every row, drop) | $PACK_MS ms | |
| one device, one hour ($N_HOUR fixes), median of 5: hot / warm / cold | $Q_HOT ms / $Q_WARM ms / $Q_COLD ms | report |
| ingest calls/s (200 fixes each, 2 clients, mean of per-second progress): idle before / during the move / idle after | $TPS_IDLE / $TPS_BUSY / $TPS_AFTER | |
| ingest during maintenance / idle (mean of before and after) | $TPS_RATIO | >= 0.9: $(okge "$TPS_RATIO" 0.9) |
| ledger verifies after the run | $COLD_OK | yes |

$PARTMAN

The box is shared (2 cores, other helpers' builds and tests): 1-minute load average when each measurement
ended: $(loads_line).
MD
)
echo "$section"
echo "$section" | put_section "tiering"
