#!/bin/bash
# bench/views.sh: issue 4 benchmarks (staleness-bounded fleet views), each a
# ratio measured in the same run on a throwaway cluster.  Prints a markdown
# section on stdout and writes it into bench/results.md as the section
# "## views" (other sections are left as they are).
#
#   bench/views.sh                          # after make install
#   SOURCE_ROWS=2000000 SOAK_SECONDS=60 bench/views.sh   # quicker
#
# The views measured are fleet's built-in fleet.vehicle_daily_activity
# (rollup per vehicle and day) and fleet.vehicle_last_position (latest per
# vehicle, the dispatch board's source), over fleet.position with
# VEHICLES vehicles and SOURCE_ROWS fixes spread over 30 days.  The general
# view fleet.vehicle_daily_utilization (full recomputation by design) is
# switched off so that it does not run a full recompute in the middle of a
# measurement.  Each activity refresh also records the WAL it wrote; one
# series runs right after a CHECKPOINT (every page it changes then writes a
# full-page image).  The guaranteed read (fleet.ensure_fresh) is timed after
# a burst of 100k new rows in 1k-row statements: as the DBA (the whole view)
# and as fleet_analyst acting for a second tenant (BURST_SHARE of the rows,
# its own only).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
VEHICLES=${VEHICLES:-10000}
SOURCE_ROWS=${SOURCE_ROWS:-10000000}
SOAK_SECONDS=${SOAK_SECONDS:-300}
INGEST_SECONDS=${INGEST_SECONDS:-15}
SOAK_RATE=${SOAK_RATE:-20}			# ingest calls per second in the soak (x 100 fixes)
VIEWS_NICE=${VIEWS_NICE:-10}			# fleet.views_worker_nice
BURST_VEHICLES=${BURST_VEHICLES:-1000}	# the burst: statements of one fix per vehicle of these
BURST_STATEMENTS=${BURST_STATEMENTS:-100}
BURST_SHARE=${BURST_SHARE:-10}			# of which this many are the second tenant's

bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off" "fleet.views_naptime = 100ms" \
	"fleet.views_worker_nice = $VIEWS_NICE" "shared_buffers = 1GB" "work_mem = 64MB" "maintenance_work_mem = 512MB" \
	"max_wal_size = 8GB"
worker() { q -c "ALTER SYSTEM SET fleet.views_enabled = $1" -c 'SELECT pg_reload_conf()' >/dev/null; sleep 0.5; }

log "setup: $VEHICLES vehicles and devices, 32 daily partitions"
q >/dev/null <<SQL
SELECT fleet.alter_view('fleet.vehicle_daily_utilization', enabled => false);
SELECT fleet.create_daily_partitions('fleet.position', current_date - 32, current_date + 2);
SELECT fleet.create_tenant('Bench Freight') AS t \gset
SELECT fleet.set_tenant(:t);
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :t, 'BV' || g FROM generate_series(1, $VEHICLES) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :t, 'BD' || substr(code, 3), 'osmand', vehicle_id FROM fleet.vehicle;
SELECT fleet.create_tenant('Bench Two') AS t2 \gset
SELECT fleet.set_tenant(:t2);
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :t2, 'TV' || g FROM generate_series(1, $BURST_VEHICLES) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :t2, 'TD' || substr(code, 3), 'osmand', vehicle_id FROM fleet.vehicle WHERE tenant_id = :t2;
SELECT fleet.clear_tenant();
SELECT fleet.create_roles();
-- fixes: point k (0..per-1) of vehicle v, spread over the last 30 days
CREATE TABLE bench_dev AS SELECT d.tenant_id, d.device_id, d.vehicle_id, row_number() OVER (ORDER BY d.device_id) AS n
  FROM fleet.device d WHERE d.tenant_id = :t;
CREATE TABLE bench_dev2 AS SELECT d.tenant_id, d.device_id, d.vehicle_id FROM fleet.device d WHERE d.tenant_id = :t2;
-- a burst: statements of one new fix for each of the first $BURST_VEHICLES vehicles,
-- the last of them for the second tenant's vehicles
CREATE PROCEDURE bench_burst(statements int, second int) LANGUAGE plpgsql AS \$\$
BEGIN
	FOR k IN 1 .. statements LOOP
		INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
		SELECT b.tenant_id, b.device_id, clock_timestamp() - interval '3 s', b.vehicle_id, 50 + random(), 10 + random(),
		       (random() * 90)::real, 0
		  FROM bench_dev b WHERE k <= statements - second AND b.n <= $BURST_VEHICLES
		UNION ALL
		SELECT b.tenant_id, b.device_id, clock_timestamp() - interval '3 s', b.vehicle_id, 50 + random(), 10 + random(),
		       (random() * 90)::real, 0
		  FROM bench_dev2 b WHERE k > statements - second
		ON CONFLICT DO NOTHING;
	END LOOP;
END
\$\$;
CREATE PROCEDURE bench_load(k_from int, k_to int, k_step int, k_total int) LANGUAGE sql AS \$\$
	INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
	SELECT b.tenant_id, b.device_id,
	       date_trunc('hour', now()) - interval '30 days' + (k::float8 / k_total) * interval '30 days' + b.n * interval '1 ms',
	       b.vehicle_id, 48 + random() * 6, 6 + random() * 9, (random() * 110)::real, (random() * 359)::real
	  FROM bench_dev b, generate_series(k_from, k_to, k_step) k
\$\$;
-- 10k new fixes, one per vehicle, a few seconds old; late_share of them
-- (for late_vehicles vehicles) 20-29 days old
CREATE PROCEDURE bench_new(late_share float8, late_vehicles int) LANGUAGE sql AS \$\$
	INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
	SELECT b.tenant_id,
	       CASE WHEN b.n <= late_share * count(*) OVER () THEN (SELECT x.device_id FROM bench_dev x WHERE x.n = 1 + b.n % late_vehicles) ELSE b.device_id END,
	       CASE WHEN b.n <= late_share * count(*) OVER () THEN now() - interval '20 days' - random() * interval '9 days'
	            ELSE clock_timestamp() - random() * interval '5 s' END,
	       CASE WHEN b.n <= late_share * count(*) OVER () THEN (SELECT x.vehicle_id FROM bench_dev x WHERE x.n = 1 + b.n % late_vehicles) ELSE b.vehicle_id END,
	       50, 10, (random() * 90)::real, 0
	  FROM bench_dev b
	ON CONFLICT DO NOTHING
\$\$;
SQL

PER=$(( SOURCE_ROWS / VEHICLES ))		# points per vehicle at full size
STEP=10
# a refresh of VIEW: its milliseconds (with the commit) and the WAL bytes it wrote
refresh_wal() {
	q <<SQL | awk '/^Time:/ { t = $2 } /^[0-9]+$/ { w = $1 } END { print t, w }'
SELECT pg_current_wal_insert_lsn() AS l0 \gset
\timing on
SELECT fleet.refresh_view('$1') IS NOT NULL AS refreshed \gset
\timing off
SELECT pg_current_wal_insert_lsn() - :'l0';
SQL
}
refresh_both() {
	local a l
	a=$(refresh_wal fleet.vehicle_daily_activity)
	l=$(ms "SELECT fleet.refresh_view('fleet.vehicle_last_position')")
	echo "$a $l"
}
# time the refresh of both views after 10k new rows (median of 3), and the
# activity refresh's WAL (median, kB); "ckpt": each right after a CHECKPOINT
measure() {
	local share=$1 a=() w=() l=() r i
	for i in 1 2 3; do
		q -c "CALL bench_new($share, 10)"
		[ "${2:-}" = ckpt ] && q -c CHECKPOINT
		r=($(refresh_both))
		a+=("${r[0]}"); w+=("$(awk -v b="${r[1]}" 'BEGIN { printf "%.0f", b / 1024 }')"); l+=("${r[2]}")
	done
	echo "$(median "${a[@]}") $(median "${l[@]}") $(median -f %.0f "${w[@]}")"
}
# the pages of the activity view's storage holding today's (local) groups
today_pages() {
	q -c "SELECT count(DISTINCT (ctid::text::point)[0]) || ' pages for ' || count(*) || ' groups'
	        FROM fleet.vehicle_daily_activity_data WHERE local_day = (SELECT max(local_day) FROM fleet.vehicle_daily_activity_data)"
}

log "load $(( SOURCE_ROWS / STEP )) fixes (1/$STEP of the full size)"
q -c "CALL bench_load(0, $((PER - 1)), $STEP, $PER)"
refresh_both >/dev/null
q -c 'VACUUM ANALYZE' >/dev/null
rows_small=$(q -c 'SELECT count(*) FROM fleet.position')
measure 0 >/dev/null		# warm-up
read -r a_small l_small w_small <<<"$(measure 0)"
note_load "refresh at small size"
log "at $rows_small rows: activity ${a_small} ms, latest ${l_small} ms"

log "load the other $(( STEP - 1 ))/$STEP"
for j in $(seq 1 $((STEP - 1))); do
	q -c "CALL bench_load($j, $((PER - 1)), $STEP, $PER)"
	refresh_both >/dev/null
	log "  chunk $j done"
done
q -c 'VACUUM ANALYZE' >/dev/null
rows_big=$(q -c 'SELECT count(*) FROM fleet.position')
measure 0 >/dev/null		# warm-up
read -r a_big l_big w_big <<<"$(measure 0)"
note_load "refresh at full size"
pages_big=$(today_pages)
ontime_changed=$(q -c "SELECT rows_changed FROM fleet.view_status WHERE view = 'fleet.vehicle_daily_activity'::regclass")
log "at $rows_big rows: activity ${a_big} ms, latest ${l_big} ms"
read -r a_late l_late w_late <<<"$(measure 0.01)"
note_load "late refresh"
log "1% late: activity ${a_late} ms, latest ${l_late} ms"
late_changed=$(q -c "SELECT rows_changed FROM fleet.view_status WHERE view = 'fleet.vehicle_daily_activity'::regclass")
read -r a_ckpt l_ckpt w_ckpt <<<"$(measure 0 ckpt)"
note_load "refresh after checkpoint"
log "right after a CHECKPOINT: activity ${a_ckpt} ms (${w_ckpt} kB WAL, on time ${w_big} kB), latest ${l_ckpt} ms; today: $pages_big"

log "guaranteed read after a burst of $((BURST_STATEMENTS * BURST_VEHICLES)) new rows ($BURST_STATEMENTS statements)"
t2=$(q -c "SELECT tenant_id FROM fleet.tenant WHERE name = 'Bench Two'")
# ensure_fresh refreshes only a view older than the bound asked for (1 s):
# wait for that first, outside the timing; the burst's delta rows of the
# other views are drained after each run
burst_read() {	# as: dba | tenant -> ms of ensure_fresh
	q -c "CALL bench_burst($BURST_STATEMENTS, $BURST_SHARE)"
	q -c "SELECT pg_sleep(greatest(0, 1.05 - extract(epoch FROM clock_timestamp() - as_of))) FROM fleet.view_registry
	       WHERE relation = 'fleet.vehicle_daily_activity'::regclass" >/dev/null
	if [ "$1" = dba ]; then
		ms "SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '1 second')"
	else
		ms -c 'SET ROLE fleet_analyst' -c "SELECT fleet.set_tenant($t2)" \
		   -c "SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '1 second')"
	fi
	q -c "SELECT fleet.refresh_view(relation) FROM fleet.view_registry WHERE enabled" >/dev/null
}
fd=(); ft=()
for i in 1 2 3; do fd+=("$(burst_read dba)"); ft+=("$(burst_read tenant)"); done
fresh_dba=$(median "${fd[@]}"); fresh_tenant=$(median "${ft[@]}")
note_load "guaranteed reads"
# the tenant's rows right after its guaranteed read hold every fix of it
q -c "CALL bench_burst($BURST_STATEMENTS, $BURST_SHARE)" -c 'SELECT pg_sleep(1.05)' >/dev/null
fresh_check=$(q <<SQL
SET ROLE fleet_analyst;
SELECT fleet.set_tenant($t2) IS NOT NULL AS in_context \gset
SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '1 second') IS NOT NULL AS fresh \gset
SELECT (SELECT sum(pings) FROM fleet.vehicle_daily_activity) = (SELECT count(*) FROM fleet.position WHERE tenant_id = $t2);
SQL
)
q -c "SELECT fleet.refresh_view(relation) FROM fleet.view_registry WHERE enabled" >/dev/null
log "ensure_fresh after the burst: DBA ${fd[*]} ms, tenant ${ft[*]} ms; tenant's pings match its fixes: $fresh_check"

log "baselines: REFRESH MATERIALIZED VIEW of the same queries"
q >/dev/null <<'SQL'
SELECT format('CREATE MATERIALIZED VIEW mv_activity AS %s WITH NO DATA', build_sql) FROM fleet.view_registry WHERE relation = 'fleet.vehicle_daily_activity'::regclass \gexec
SELECT format('CREATE MATERIALIZED VIEW mv_latest AS %s WITH NO DATA', build_sql) FROM fleet.view_registry WHERE relation = 'fleet.vehicle_last_position'::regclass \gexec
SQL
q -c 'REFRESH MATERIALIZED VIEW mv_activity' >/dev/null	# warm the cache once
mv_a=$(ms 'REFRESH MATERIALIZED VIEW mv_activity')
mv_l=$(ms 'REFRESH MATERIALIZED VIEW mv_latest')
note_load "REFRESH MATERIALIZED VIEW"
log "REFRESH MATERIALIZED VIEW: activity ${mv_a} ms, latest ${mv_l} ms"
q -c 'DROP MATERIALIZED VIEW mv_activity, mv_latest'
verify=$(q -c "SELECT count(*) FROM fleet.view_status s, LATERAL fleet.verify_view(s.view) d WHERE s.enabled")

log "ingest with the views worker stopped vs running"
cat > "$WORK/ingest.sql" <<'SQL'
\set d random(0, :maxd)
SELECT count(*) FROM fleet.ingest_positions(
	ARRAY(SELECT 'BD' || (:d + g) FROM generate_series(1, 100) g),
	ARRAY(SELECT clock_timestamp() - random() * interval '2 s' FROM generate_series(1, 100) g),
	ARRAY(SELECT 50 + random() FROM generate_series(1, 100) g),
	ARRAY(SELECT 10 + random() FROM generate_series(1, 100) g),
	ARRAY(SELECT (random() * 90)::real FROM generate_series(1, 100) g),
	ARRAY(SELECT 0::real FROM generate_series(1, 100) g), NULL, NULL, NULL, NULL);
SQL
chmod 644 "$WORK/ingest.sql"
q >/dev/null <<'SQL'
SELECT fleet.alter_view('fleet.vehicle_last_position', max_staleness => '10 seconds');
SELECT fleet.alter_view('fleet.vehicle_daily_activity', max_staleness => '30 seconds');
SQL
bench_tps() {	# clients
	pgbench_tps "$WORK/pgbench.out" -n -M prepared -c "$1" -j "$1" -T "$INGEST_SECONDS" -D maxd=$((VEHICLES - 100)) -f "$WORK/ingest.sql"
}
# one run: worker on or off, the delta log drained first so that a run
# never pays for the rows of the one before
run_tps() {	# on|off clients
	worker "$1"
	q -c "SELECT fleet.refresh_view('fleet.vehicle_daily_activity'), fleet.refresh_view('fleet.vehicle_last_position')" >/dev/null
	q -c 'CHECKPOINT' >/dev/null
	bench_tps "$2"
}
off2=(); on2=(); off1=(); on1=()
for i in 1 2 3; do
	off2+=("$(run_tps off 2)"); on2+=("$(run_tps on 2)")
done
for i in 1 2; do
	off1+=("$(run_tps off 1)"); on1+=("$(run_tps on 1)")
done
tps_off=$(median -f %.1f "${off2[@]}"); tps_on=$(median -f %.1f "${on2[@]}")
tps_off1=$(median -f %.1f "${off1[@]}"); tps_on1=$(median -f %.1f "${on1[@]}")
note_load "ingest runs"
log "ingest tps (100 fixes each), 2 clients: off ${off2[*]}, on ${on2[*]}; 1 client: off ${off1[*]}, on ${on1[*]}"
worker on

log "soak: ${SOAK_SECONDS}s at $SOAK_RATE ingest calls/s, every view's age sampled each second"
misses_before=$(q -c "SELECT sum(bound_misses) FROM fleet.view_status WHERE enabled")
: > "$WORK/ages"
pgb -n -M prepared -c 2 -j 2 -T "$SOAK_SECONDS" -R "$SOAK_RATE" -D maxd=$((VEHICLES - 100)) \
	-f "$WORK/ingest.sql" bench > "$WORK/soak.out" 2>&1 &
soak_pid=$!
end=$(( $(date +%s) + SOAK_SECONDS ))
while [ "$(date +%s)" -lt "$end" ]; do
	q -F ' ' -c "SELECT view, extract(epoch FROM age), extract(epoch FROM bound) FROM fleet.view_status WHERE enabled" >> "$WORK/ages"
	sleep 1
done
wait "$soak_pid" || { cat "$WORK/soak.out" >&2; exit 1; }
note_load "soak end"
soak_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/soak.out")
soak_table=$(sort -k1,1 -k2,2g "$WORK/ages" | awk '
	{ n[$1]++; a[$1, n[$1]] = $2; b[$1] = $3; if ($2 > $3) over[$1]++ }
	END { for (v in n) { i = int(0.99 * n[v]); if (i < 1) i = 1; if (i > n[v]) i = n[v];
	      printf "| %s | %d s | %d | %d | %.1f s | %.1f s |\n", v, b[v], n[v], over[v] + 0, a[v, i], a[v, n[v]] } }' | sort)
misses=$(q -c "SELECT string_agg(view || ': ' || bound_misses, ', ' ORDER BY view::text) FROM fleet.view_status WHERE enabled")
soak_misses=$(( $(q -c "SELECT sum(bound_misses) FROM fleet.view_status WHERE enabled") - misses_before ))
verify_after=$(q -c "SELECT count(*) FROM fleet.view_status s, LATERAL fleet.verify_view(s.view) d WHERE s.enabled")

section=$(cat <<MD
## views

Issue 4, staleness-bounded fleet views; \`bench/views.sh\` on $(date -u +%Y-%m-%d) at commit $(git -C "$BENCH_REPO" rev-parse --short HEAD), $(machine --short).
Source: fleet.position with $rows_big fixes over $VEHICLES vehicles and 30 days (daily
partitions). Views: fleet.vehicle_daily_activity (rollup per vehicle and day: count, count
of moving fixes, max, avg, min/max time, first/last position; local days of the tenant, zone UTC) and fleet.vehicle_last_position
(latest fix per vehicle). "10k new rows" = one new fix for each vehicle, written with one
INSERT; refresh times are the median of 3. shared_buffers 1GB, fsync on.

| measurement | activity (rollup) | last position (latest) | target |
|---|---|---|---|
| REFRESH MATERIALIZED VIEW, same query, $rows_big rows | $mv_a ms | $mv_l ms | |
| fleet refresh after 10k new rows, $rows_big rows | $a_big ms | $l_big ms | |
| speed-up vs REFRESH MATERIALIZED VIEW | $(ratio "$mv_a" "$a_big")x | $(ratio "$mv_l" "$l_big")x | >= 200x |
| fleet refresh after 10k new rows, $rows_small rows | $a_small ms | $l_small ms | |
| time ratio $rows_big vs $rows_small rows | $(ratio "$a_big" "$a_small") | $(ratio "$l_big" "$l_small") | <= 1.5 |
| refresh after 10k new rows, 1% of them 20-29 days late (10 vehicles) | $a_late ms | $l_late ms | |
| time ratio late vs on-time | $(ratio "$a_late" "$a_big") | $(ratio "$l_late" "$l_big") | <= 2 |
| refresh after 10k new rows, each the first after a CHECKPOINT | $a_ckpt ms | $l_ckpt ms | |
| speed-up vs REFRESH MATERIALIZED VIEW, after a CHECKPOINT | $(ratio "$mv_a" "$a_ckpt")x | $(ratio "$mv_l" "$l_ckpt")x | >= 200x |
| WAL written by the activity refresh: on time / after a CHECKPOINT | $w_big kB / $w_ckpt kB | | |

Guaranteed read (\`fleet.ensure_fresh('fleet.vehicle_daily_activity', '1 second')\`) after a burst of
$((BURST_STATEMENTS * BURST_VEHICLES)) new rows in $BURST_STATEMENTS statements of one fix for each of $BURST_VEHICLES vehicles
($BURST_SHARE of the statements for the second tenant's $BURST_VEHICLES vehicles); medians of 3 (runs in brackets):

| reader | ensure_fresh, ms | target |
|---|---|---|
| the DBA: the whole view ($((BURST_STATEMENTS * BURST_VEHICLES)) partial rows into $BURST_VEHICLES x 2 groups) | $fresh_dba (${fd[*]}) | <= 100 ms |
| fleet_analyst acting for the second tenant: its own $((BURST_SHARE * BURST_VEHICLES)) rows only | $fresh_tenant (${ft[*]}) | <= 100 ms |

After the tenant's guaranteed read its pings equal its fixes: $fresh_check.
Today's groups of the activity view (what a refresh after on-time rows touches) at full size: $pages_big.

Groups (vehicle-days) changed by the last activity refresh: $ontime_changed on time, $late_changed with 1% late
rows: the late fixes touched only their own vehicle-days, not every vehicle's day. Every view verified equal to a full recomputation after
these steps: $verify difference(s).

Ingest (pgbench, ${INGEST_SECONDS} s per run, each transaction one fleet.ingest_positions() call of 100
fixes; view bounds 10 s / 30 s; runs alternate worker stopped / running, each after draining the
delta log; medians), worker process at nice ${VIEWS_NICE}:

| clients | worker stopped (tps) | worker running (tps) | ratio | target |
|---|---|---|---|---|
| 2 (both cores busy with ingest) | $tps_off (${off2[*]}) | $tps_on (${on2[*]}) | **$(ratio "$tps_on" "$tps_off")** | >= 0.95 |
| 1 | $tps_off1 (${off1[*]}) | $tps_on1 (${on1[*]}) | **$(ratio "$tps_on1" "$tps_off1")** | >= 0.95 |

Soak: ${SOAK_SECONDS} s at $SOAK_RATE ingest calls/s x 100 fixes (achieved $soak_tps calls/s), every
enabled view's age sampled once a second (vehicle_daily_utilization, a full-recompute view, is
switched off for the run):

| view | bound | samples | samples over bound | p99 age | max age |
|---|---|---|---|---|---|
$soak_table

Bound misses counted by the views (refreshes that found the view older than its bound) during
the soak: $soak_misses; over the whole run, including the phases with the worker stopped on
purpose: $misses.
Verification after the soak: $verify_after difference(s).

The box is shared: 1-minute load average when each measurement ended (2 cores): $(loads_line).
MD
)
echo "$section"
echo "$section" | put_section "views"
