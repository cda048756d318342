#!/bin/bash
# bench/peers_ivm.sh: fleet's daily rollup beside pg_ivm (incremental
# materialized views, IMMV), on one throwaway cluster and the same rows.
# Prints a markdown section and writes it into bench/results.md as
# "## peers: pg_ivm".
#
#   bench/peers_ivm.sh                       # after make install
#   IVM_FIXES=20000 ROUNDS=1 bench/peers_ivm.sh   # quicker
#
# Measured, at 100 and at 1,000 vehicles of one tenant (time zone UTC),
# IVM_FIXES fixes per run spread over one day, in transactions of 1,000:
#   - fleet: fleet.ingest_positions() batches into fleet.position with the
#     built-in rollup fleet.vehicle_daily_activity capturing (its statement
#     trigger appends each batch's partial aggregates to the view's delta log);
#     the views worker is off and the view is brought up to date after the run
#     by a guaranteed-fresh read (fleet.ensure_fresh, timed: the reader's wait);
#   - pg_ivm: INSERTs of the same rows into a plain table with the same
#     columns and key, under an IMMV grouped by tenant, vehicle and UTC day
#     with the aggregates pg_ivm supports (count, count of moving fixes, max,
#     avg, min/max time; fleet's view also keeps the first/last positions,
#     which pg_ivm cannot);
#   - the floor: the same INSERTs into the same plain table without a view;
#   - fleet without the rollup's capture trigger (its own ingest cost).
# The other capture trigger on fleet.position (vehicle_last_position) is
# disabled in this cluster, so each side maintains exactly one rollup.
# Rounds alternate the four runs (rotating their order); medians of ROUNDS.
# Each fleet run and its peers write one day of their own (the no-view run
# another day), so fleet.position and the peer table hold the same rows.
# Checked: the fleet view's pings, moving_pings, max/avg speed and first/last
# fix per (tenant, vehicle, day) equal the IMMV's, and the row counts match.
#
# Needs pg_ivm (bench/peers_ivm.sh installs it as root with
# ${FLEET_DEPS:-../shared/deps}/build.sh pg_ivm pgmq, or says what to run).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
IVM_FIXES=${IVM_FIXES:-100000}
IVM_VEHICLES=${IVM_VEHICLES:-100 1000}
ROUNDS=${ROUNDS:-3}
DEPS=${FLEET_DEPS:-$BENCH_REPO/../shared/deps}

# ---------------------------------------------------------------- peers
sharedir=$(pg_config --sharedir)
if [ ! -f "$sharedir/extension/pg_ivm.control" ] || [ ! -f "$(pg_config --pkglibdir)/pg_ivm.so" ]; then
	if [ "$(id -u)" = 0 ] && [ -x "$DEPS/build.sh" ]; then
		log "pg_ivm is not installed: $DEPS/build.sh pg_ivm pgmq"
		"$DEPS/build.sh" pg_ivm pgmq >&2 || { echo "peers_ivm: $DEPS/build.sh pg_ivm pgmq failed; area skipped" >&2; exit 0; }
	else
		echo "peers_ivm: pg_ivm is not installed; run as root: $(cd "$DEPS" 2>/dev/null && pwd || echo "$DEPS")/build.sh pg_ivm pgmq -- area skipped" >&2
		exit 0
	fi
fi

bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off" \
	"shared_preload_libraries = 'fleet,pg_cron,pg_ivm'" "shared_buffers = 1GB" "work_mem = 64MB" \
	"maintenance_work_mem = 512MB" "max_wal_size = 8GB"
q -c 'CREATE EXTENSION pg_ivm' >/dev/null
ivm_version=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_ivm'")
# pg_ivm 1.10 moved its functions into schema pgivm
create_immv=$(q -c "SELECT CASE WHEN to_regproc('pgivm.create_immv') IS NULL THEN 'create_immv' ELSE 'pgivm.create_immv' END")

max_v=0
for v in $IVM_VEHICLES; do [ "$v" -gt "$max_v" ] && max_v=$v; done
runs=$(( 2 * ROUNDS * $(wc -w <<<"$IVM_VEHICLES") ))	# days written by fleet: with and without the view
log "setup: $max_v vehicles, $runs days of partitions, pg_ivm $ivm_version"
q >/dev/null <<SQL
-- only the daily rollup captures on fleet.position in this throwaway cluster
SELECT format('ALTER TABLE fleet.position DISABLE TRIGGER %I', 'fleet_view_' || view_id || '_ins')
  FROM fleet.view_registry WHERE source = 'fleet.position'::regclass AND delta IS NOT NULL
   AND relation <> 'fleet.vehicle_daily_activity'::regclass \gexec
SELECT fleet.alter_view(relation, enabled => false) FROM fleet.view_registry;
SELECT fleet.create_daily_partitions('fleet.position', current_date - $runs - 4, current_date + 2);
SELECT fleet.create_tenant('Bench Peers', 'UTC') AS t \gset
SELECT fleet.set_tenant(:t);
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :t, 'PV' || g FROM generate_series(1, $max_v) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :t, 'PD' || substr(code, 3), 'osmand', vehicle_id FROM fleet.vehicle;
SELECT fleet.clear_tenant();
CREATE TABLE bench_dev AS
SELECT d.tenant_id, d.device_id, d.identifier, d.vehicle_id, substr(d.identifier, 3)::int AS n FROM fleet.device d;
CREATE UNIQUE INDEX ON bench_dev (n);

-- run k: batches of 1,000 fixes of day current_date - $((runs + 1)) + k, fix i of vehicle 1 + i % vehicles,
-- times in whole milliseconds (fleet keeps fix times to the millisecond)
CREATE TABLE bench_batch (run int, n int, tenant bigint, dev text[], dev_id bigint[], veh_id bigint[], ts timestamptz[],
	lat float8[], lon float8[], speed real[], heading real[], PRIMARY KEY (run, n));
CREATE PROCEDURE bench_make(k int, vehicles int, fixes int) LANGUAGE sql AS \$\$
	INSERT INTO bench_batch
	SELECT k, i / 1000, min(b.tenant_id), array_agg(b.identifier ORDER BY i), array_agg(b.device_id ORDER BY i), array_agg(b.vehicle_id ORDER BY i),
	       array_agg(((current_date - $((runs + 1)) + k)::timestamp AT TIME ZONE 'UTC') + (i * (86400000 / fixes)) * interval '1 ms' ORDER BY i),
	       array_agg(48 + random() * 6 ORDER BY i), array_agg(6 + random() * 9 ORDER BY i),
	       array_agg((random() * 110)::real ORDER BY i), array_agg((random() * 359)::real ORDER BY i)
	  FROM generate_series(0, fixes - 1) i JOIN bench_dev b ON b.n = 1 + i % vehicles
	 GROUP BY i / 1000
\$\$;

CREATE PROCEDURE bench_fleet(k int) LANGUAGE plpgsql AS \$\$
DECLARE
	b record;
BEGIN
	FOR b IN SELECT * FROM bench_batch WHERE run = k ORDER BY n LOOP
		PERFORM count(*) FROM fleet.ingest_positions(b.dev, b.ts, b.lat, b.lon, b.speed, b.heading, NULL, NULL, NULL, NULL);
		COMMIT;
	END LOOP;
END \$\$;

-- the peers' table: fleet.position's columns and key, not partitioned (pg_ivm
-- takes no partitioned tables)
CREATE TABLE ivm_position (LIKE fleet.position INCLUDING DEFAULTS, PRIMARY KEY (tenant_id, device_id, fix_time));
CREATE TABLE ivmv_position (LIKE fleet.position INCLUDING DEFAULTS, PRIMARY KEY (tenant_id, device_id, fix_time));
CREATE TABLE plain_position (LIKE fleet.position INCLUDING DEFAULTS, PRIMARY KEY (tenant_id, device_id, fix_time));
SELECT $create_immv('ivm_daily', \$q\$
	SELECT tenant_id, vehicle_id, (fix_time AT TIME ZONE 'UTC')::date AS day, count(*) AS pings,
	       count(CASE WHEN speed >= 3 THEN 1 END) AS moving_pings, max(speed) AS max_speed,
	       avg(speed::numeric) AS avg_speed, min(fix_time) AS first_fix, max(fix_time) AS last_fix
	  FROM ivm_position GROUP BY tenant_id, vehicle_id, (fix_time AT TIME ZONE 'UTC')::date\$q\$);
-- the same IMMV with the vehicle first in GROUP BY, hence in the unique index
-- pg_ivm builds: its maintenance query matches a group with
-- (mv.k = diff.k OR (mv.k IS NULL AND diff.k IS NULL)) per key column, which
-- the planner turns into an index condition on the leading column only
SELECT $create_immv('ivmv_daily', \$q\$
	SELECT vehicle_id, (fix_time AT TIME ZONE 'UTC')::date AS day, tenant_id, count(*) AS pings,
	       count(CASE WHEN speed >= 3 THEN 1 END) AS moving_pings, max(speed) AS max_speed,
	       avg(speed::numeric) AS avg_speed, min(fix_time) AS first_fix, max(fix_time) AS last_fix
	  FROM ivmv_position GROUP BY vehicle_id, (fix_time AT TIME ZONE 'UTC')::date, tenant_id\$q\$);
SQL
for t in ivm ivmv plain; do
	q >/dev/null <<SQL
CREATE PROCEDURE bench_$t(k int) LANGUAGE plpgsql AS \$\$
DECLARE
	b record;
BEGIN
	FOR b IN SELECT * FROM bench_batch WHERE run = k ORDER BY n LOOP
		INSERT INTO ${t}_position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
		SELECT b.tenant, u.* FROM unnest(b.dev_id, b.ts, b.veh_id, b.lat, b.lon, b.speed, b.heading) u;
		COMMIT;
	END LOOP;
END \$\$;
SQL
done
q -c "SELECT fleet.refresh_view('fleet.vehicle_daily_activity')" >/dev/null

# days: run k writes day current_date - (runs + 1) + k, so that the fleet
# runs, with and without the view, each write a day later than every fix
# stored before (fleet.vehicle_state moves as in live ingest); a round's two
# days are taken by its two fleet runs in the order they run, and the peers
# write the day of the run with the view
k=0
declare -A DAY
for v in $IVM_VEHICLES; do
	for ((r = 0; r < ROUNDS; r++)); do
		DAY[$v,$r]=$k
		q -c "CALL bench_make($k, $v, $IVM_FIXES)" -c "CALL bench_make($((k + 1)), $v, $IVM_FIXES)"
		k=$((k + 2))
	done
done
q -c 'VACUUM ANALYZE' >/dev/null
log "$k runs of $IVM_FIXES fixes prepared"

trig() { q -c "ALTER TABLE fleet.position $1 TRIGGER fleet_view_$(q -c "SELECT view_id FROM fleet.view_registry WHERE relation = 'fleet.vehicle_daily_activity'::regclass")_ins"; }
# the guaranteed-fresh read after a fleet run: ensure_fresh with a bound of
# 1 s (a bound of 0 s can never be met: the view's as_of is the refresh's
# start, older than its end), then the run's day read from the view; the sum
# of its pings must be the run's fixes.  ensure_fresh refreshes only a view
# older than the bound: a run shorter than that waits for it first, outside
# the timing.
fresh_read() {	# k -> "ms_total ms_ensure pings"
	local k=$1 out
	q -c "SELECT pg_sleep(greatest(0, 1.05 - extract(epoch FROM clock_timestamp() - as_of))) FROM fleet.view_registry
	       WHERE relation = 'fleet.vehicle_daily_activity'::regclass" >/dev/null
	out=$(q -c '\timing on' -c 'BEGIN' -c "SELECT fleet.ensure_fresh('fleet.vehicle_daily_activity', '1 second') IS NOT NULL" \
		-c "SELECT sum(pings) FROM fleet.vehicle_daily_activity WHERE local_day = current_date - $((runs + 1)) + $k" -c 'COMMIT')
	awk '/^Time:/ { t += $2; n++; if (n == 2) e = $2 } !/^Time:/ && NF && $0 != "t" { p = $0 }
	     END { printf "%.3f %.3f %s\n", t, e, p }' <<<"$out"
}
ivm_read() {	# k -> ms of the same read from the IMMV
	ms "SELECT sum(pings) FROM ivm_daily WHERE day = current_date - $((runs + 1)) + $1"
}

declare -A T	# T[system,vehicles] = run times (ms) of the rounds
declare -A FRESH ENSURE RIVM
VIEW_DAYS=()
bad_fresh=0
for v in $IVM_VEHICLES; do
	for ((r = 0; r < ROUNDS; r++)); do
		order=(fleet ivm ivmv plain noview)
		order=("${order[@]:$((r % 5))}" "${order[@]:0:$((r % 5))}")
		if [[ " ${order[*]} " =~ \ fleet\ .*\ noview\  ]]; then kv=${DAY[$v,$r]}; kn=$((kv + 1)); else kn=${DAY[$v,$r]}; kv=$((kn + 1)); fi
		VIEW_DAYS+=("$kv")
		for s in "${order[@]}"; do
			q -c 'CHECKPOINT' >/dev/null
			case $s in
			fleet)
				t=$(ms "CALL bench_fleet($kv)")
				read -r ft fe fp <<<"$(fresh_read "$kv")"
				FRESH[$v]+="$ft "; ENSURE[$v]+="$fe "
				[ "$fp" = "$IVM_FIXES" ] || { bad_fresh=$((bad_fresh + 1)); log "fresh read saw $fp pings, not $IVM_FIXES"; }
				;;
			ivm) t=$(ms "CALL bench_ivm($kv)"); RIVM[$v]+="$(ivm_read "$kv") " ;;
			ivmv) t=$(ms "CALL bench_ivmv($kv)") ;;
			plain) t=$(ms "CALL bench_plain($kv)") ;;
			noview) trig DISABLE; t=$(ms "CALL bench_fleet($kn)"); trig ENABLE ;;
			esac
			T[$s,$v]+="$t "
		done
		log "$v vehicles, round $((r + 1)): fleet ${T[fleet,$v]}/ pg_ivm ${T[ivm,$v]}/ pg_ivm vehicle first ${T[ivmv,$v]}/ plain ${T[plain,$v]}/ fleet without view ${T[noview,$v]}ms"
	done
	note_load "$v vehicles"
done

log "check: the fleet view against the IMMV, row counts"
q -c "SELECT fleet.refresh_view('fleet.vehicle_daily_activity')" >/dev/null
immv_diffs() {	# IMMV -> rows differing from the fleet view, both ways
	q <<SQL
WITH f AS (SELECT tenant_id, vehicle_id, local_day AS day, pings, moving_pings, max_speed, avg_speed, first_fix, last_fix
             FROM fleet.vehicle_daily_activity),
     i AS (SELECT tenant_id, vehicle_id, day, pings, moving_pings, max_speed, avg_speed, first_fix, last_fix FROM $1)
SELECT (SELECT count(*) FROM (TABLE f EXCEPT ALL TABLE i) a) + (SELECT count(*) FROM (TABLE i EXCEPT ALL TABLE f) b)
SQL
}
diffs=$(immv_diffs ivm_daily)
diffs_v=$(immv_diffs ivmv_daily)
groups=$(q -c "SELECT count(*) FROM ivm_daily")
fleet_groups=$(q -c "SELECT count(*) FROM fleet.vehicle_daily_activity")
in_days=$(IFS=,; echo "${VIEW_DAYS[*]}")
rows_fleet=$(q -c "SELECT count(*) FROM fleet.position WHERE (fix_time AT TIME ZONE 'UTC')::date IN (SELECT current_date - $((runs + 1)) + k FROM unnest('{$in_days}'::int[]) k)")
rows_ivm=$(q -c "SELECT count(*) FROM ivm_position")
rows_ivmv=$(q -c "SELECT count(*) FROM ivmv_position")
rows_plain=$(q -c "SELECT count(*) FROM plain_position")
rows_all=$(q -c "SELECT count(*) FROM fleet.position")
expected=$(( IVM_FIXES * ROUNDS * $(wc -w <<<"$IVM_VEHICLES") ))
log "differences $diffs and $diffs_v; groups $fleet_groups / $groups; rows fleet $rows_fleet ($rows_all with the no-view days), pg_ivm $rows_ivm and $rows_ivmv, plain $rows_plain, expected $expected"

table=""
fresh_table=""
for v in $IVM_VEHICLES; do
	# rows/s per run, then medians
	declare -A R=()
	for s in fleet ivm ivmv plain noview; do
		rates=()
		for t in ${T[$s,$v]}; do rates+=("$(rate "$IVM_FIXES" "$t")"); done
		R[$s]=$(median -f %.0f "${rates[@]}")
		R[$s,all]="${rates[*]}"
	done
	table+="| $v | ${R[fleet]} (${R[fleet,all]}) | ${R[ivm]} (${R[ivm,all]}) | ${R[ivmv]} (${R[ivmv,all]}) | ${R[plain]} (${R[plain,all]}) | ${R[noview]} (${R[noview,all]}) | **$(ratio "${R[fleet]}" "${R[ivm]}")** | **$(ratio "${R[fleet]}" "${R[ivmv]}")** | $(ratio "${R[fleet]}" "${R[plain]}") | $(ratio "${R[ivm]}" "${R[plain]}") | $(ratio "${R[fleet]}" "${R[noview]}") |"$'\n'
	tf=$(median -f %.0f ${T[fleet,$v]}); ti=$(median -f %.0f ${T[ivm,$v]})
	fr=$(median -f %.1f ${FRESH[$v]}); en=$(median -f %.1f ${ENSURE[$v]}); ri=$(median -f %.1f ${RIVM[$v]})
	eff=$(rate "$IVM_FIXES" "$(awk -v a="$tf" -v b="$fr" 'BEGIN { print a + b }')")
	fresh_table+="| $v | $fr (${FRESH[$v]% }) | $en | $ri (${RIVM[$v]% }) | $eff | $(rate "$IVM_FIXES" "$ti") | **$(ratio "$eff" "$(rate "$IVM_FIXES" "$ti")")** |"$'\n'
done

section=$(cat <<MD
## peers: pg_ivm

Ingest with a daily rollup per vehicle kept: fleet against pg_ivm $ivm_version (IMMV); \`bench/peers_ivm.sh\` on
$(date -u +%Y-%m-%d) at commit $(git -C "$BENCH_REPO" rev-parse --short HEAD), $(machine --short).
One cluster, one tenant (time zone UTC), the same rows on both sides: per run $IVM_FIXES fixes of one
day, the vehicles interleaved in every batch, in transactions of 1,000 fixes (fleet: one
\`fleet.ingest_positions()\` call; the others: one \`INSERT ... SELECT FROM unnest(...)\` of the
batch's arrays, devices and vehicles already resolved). fleet writes \`fleet.position\` (daily
partitions) with \`fleet.vehicle_daily_activity\` capturing (views worker off); pg_ivm writes a plain
table with the same columns and primary key under an IMMV grouped by (tenant, vehicle,
\`(fix_time AT TIME ZONE 'UTC')::date\`) with count, count of moving fixes, max and
\`avg(speed::numeric)\`, min/max fix time (fleet's view also keeps the first and last position,
four more aggregates pg_ivm does not offer). "pg_ivm, vehicle first": the same IMMV over a third
table, its GROUP BY (hence the unique index pg_ivm builds) led by the vehicle instead of the tenant.
Floor: the same INSERTs into the same kind of table without a view. The five runs rotate their order
each round; medians of $ROUNDS rounds (each run's figure in brackets).

| vehicles | fleet + rollup, rows/s | pg_ivm IMMV, rows/s | pg_ivm, vehicle first, rows/s | plain table (floor), rows/s | fleet, capture off, rows/s | fleet / pg_ivm | fleet / pg_ivm vehicle first | fleet / floor | pg_ivm / floor | fleet: with / without the view |
|---|---|---|---|---|---|---|---|---|---|---|
$table
The peers' INSERTs get devices and vehicles already resolved; fleet's call resolves every device
identifier, deduplicates against the stored fixes, updates \`fleet.vehicle_state\` and checks each
fix, which the floor does not (the last column isolates the view's share of fleet's cost).
pg_ivm maintains the IMMV in each INSERT's AFTER trigger with one UPDATE ... FROM the batch's
grouped delta plus an INSERT of the groups not found; both match a group per key column with
\`(mv.k = diff.k OR (mv.k IS NULL AND diff.k IS NULL))\`, which the planner can use as an index
condition on the leading column only (auto_explain of one 1,000-group batch: a BitmapOr on
\`tenant_id\` per delta group, about a thousand rows filtered each, and a nested-loop anti join over
the updated groups, 499,500 comparisons). Its cost per batch therefore grows with the groups a
batch touches times the groups of the tenant already in the view (all days kept), which is what
the 1,000-vehicle row shows, its runs (in brackets, in the order run) slowing down round after round
as the view grows; leading with the vehicle bounds the first part by the vehicle's days.

Guaranteed-fresh read after each fleet run ($IVM_FIXES new fixes): \`BEGIN; SELECT
fleet.ensure_fresh('fleet.vehicle_daily_activity', '1 second'); SELECT sum(pings) ... WHERE
local_day = <the run's day>; COMMIT\`, from the end of the ingest (the view's bound exceeded) to the
answer. A bound of \`'0 s'\` is refused by design: the refreshed view's \`as_of\` is the start of the
refresh, so it is never 0 s old when the call returns (\`object_not_in_prerequisite_state\`). pg_ivm's
view is fresh at commit: its read is the same SELECT on the IMMV.

| vehicles | fleet: fresh read, ms | of which ensure_fresh (refresh), ms | pg_ivm: read, ms | fleet, ingest then fresh read, rows/s | pg_ivm, ingest (fresh at commit), rows/s | fleet / pg_ivm |
|---|---|---|---|---|---|---|
$fresh_table
Every fresh read saw all the run's fixes ($bad_fresh short). Checked at the end (after a
refresh): the fleet view's pings, moving_pings, max_speed, avg_speed, first_fix and last_fix per
(tenant, vehicle, day) against each IMMV's: $diffs and $diffs_v differing row(s) of $groups groups (fleet
$fleet_groups); fixes stored: fleet $rows_fleet on the view's days ($rows_all with the capture-off days),
pg_ivm $rows_ivm and $rows_ivmv, floor $rows_plain, of $expected sent.

$(cat <<'QUAL'
| | fleet view (rollup) | pg_ivm IMMV |
|---|---|---|
| when the view changes | a statement trigger appends each batch's partial aggregates to a delta log; the views worker (or `fleet.refresh_view`/`ensure_fresh`) merges them within the view's bound | in the writing transaction (AFTER triggers): fresh at commit, the writer pays |
| reads | `fleet.view_age()`, `fleet.ensure_fresh(view, max_age)` for a guaranteed read | always current |
| aggregates | count, sum, min, max, avg, first/last by time; keys may be expressions (`fleet.local_day`: the tenant's day) | count, sum, avg, min, max (built-in only); deleting a row that held a min/max recomputes the group from the base table |
| source | partitioned tables (fleet.position by day) | plain tables only: no partitioned tables, partitions, views or foreign tables |
| late fixes, deletes, updates | a late fix re-aggregates its own day; an UPDATE or DELETE of the source marks the view for a full rebuild at its next refresh | maintained incrementally in the writing statement |
| tenants | the view's rows are tenant-owned (forced RLS), readers get the documented columns | a table: no tenant policy of its own |
QUAL
)

1-minute load average when each measurement ended (2 cores, a shared box): $(loads_line).
MD
)
echo "$section"
echo "$section" | put_section "peers: pg_ivm"
