#!/bin/bash
# bench/local_days.sh: issue 19, the daily rollups by the tenant's local day
# against the same rollups by UTC day, on the same data in one cluster.
# Prints a markdown section and writes it into bench/results.md as
# "## local_days".
#
#   bench/local_days.sh                       # after make install
#   SOURCE_ROWS=500000 bench/local_days.sh    # quicker
#
# Two rollup fleet views over fleet.position with the aggregates of
# fleet.vehicle_daily_activity, keyed by (tenant, vehicle, day): one by
# fleet.local_day(tenant_id, fix_time), one by (fix_time AT TIME ZONE
# 'UTC')::date.  TENANTS tenants in ten zones, their devices interleaved in
# every batch (the worst case for a per-tenant zone lookup).  Measured:
#   - the full build (the rebuild a zone change or an UPDATE causes);
#   - the refresh after one new fix per vehicle, 1% of them late;
#   - the capture at ingest: INSERTs of one fix per vehicle with only one of the two
#     views declared (the capture triggers of the built-in views on
#     fleet.position are disabled in this throwaway cluster, so nothing
#     else captures).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
TENANTS=${TENANTS:-20}
VEHICLES=${VEHICLES:-5000}
SOURCE_ROWS=${SOURCE_ROWS:-2000000}
ROUNDS=${ROUNDS:-7}

bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off" "shared_buffers = 1GB" \
	"work_mem = 64MB" "maintenance_work_mem = 512MB" "max_wal_size = 8GB"

log "setup: $TENANTS tenants in ten zones, $VEHICLES vehicles, $SOURCE_ROWS fixes over 30 days"
q >/dev/null <<SQL
-- the built-in views on fleet.position stop capturing in this throwaway cluster
SELECT format('ALTER TABLE fleet.position DISABLE TRIGGER %I', 'fleet_view_' || view_id || '_ins')
  FROM fleet.view_registry WHERE source = 'fleet.position'::regclass AND delta IS NOT NULL \gexec
SELECT fleet.alter_view(relation, enabled => false) FROM fleet.view_registry;
SELECT fleet.create_daily_partitions('fleet.position', current_date - 32, current_date + 2);
INSERT INTO fleet.tenant (name, timezone)
SELECT 'Bench ' || g, (ARRAY['America/Los_Angeles', 'America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Tokyo',
                             'Australia/Sydney', 'UTC', 'America/Sao_Paulo', 'Africa/Johannesburg', 'Pacific/Auckland'])[1 + g % 10]
  FROM generate_series(1, $TENANTS) g;
INSERT INTO fleet.vehicle (tenant_id, code)
SELECT t.tenant_id, 'BV' || g FROM generate_series(1, $VEHICLES) g JOIN fleet.tenant t ON t.name = 'Bench ' || (1 + g % $TENANTS);
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
SELECT tenant_id, 'BD' || substr(code, 3), 'osmand', vehicle_id FROM fleet.vehicle;
-- device n: consecutive n belong to different tenants
CREATE TABLE bench_dev AS SELECT d.tenant_id, d.device_id, d.vehicle_id, row_number() OVER (ORDER BY substr(d.identifier, 3)::int) AS n
  FROM fleet.device d;
CREATE PROCEDURE bench_load(k_from int, k_to int, k_total int) LANGUAGE sql AS \$\$
	INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
	SELECT b.tenant_id, b.device_id,
	       date_trunc('hour', now()) - interval '30 days' + (k::float8 / k_total) * interval '30 days' + b.n * interval '1 ms',
	       b.vehicle_id, 48 + random() * 6, 6 + random() * 9, (random() * 110)::real, (random() * 359)::real
	  FROM generate_series(k_from, k_to) k, bench_dev b
\$\$;
-- one new fix per vehicle, a few seconds old; 1% of them 20-29 days old
CREATE PROCEDURE bench_new() LANGUAGE sql AS \$\$
	INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
	SELECT b.tenant_id, b.device_id,
	       CASE WHEN b.n % 100 = 0 THEN now() - interval '20 days' - random() * interval '9 days'
	            ELSE clock_timestamp() - random() * interval '5 s' END,
	       b.vehicle_id, 50, 10, (random() * 90)::real, 0
	  FROM bench_dev b ORDER BY b.n
	ON CONFLICT DO NOTHING
\$\$;
SQL
PER=$(( SOURCE_ROWS / VEHICLES ))
CHUNK=$(( PER / 10 > 0 ? PER / 10 : 1 ))
for ((k = 0; k < PER; k += CHUNK)); do
	q -c "CALL bench_load($k, $(( k + CHUNK - 1 < PER - 1 ? k + CHUNK - 1 : PER - 1 )), $PER)"
done
q -c 'VACUUM ANALYZE' >/dev/null
rows=$(q -c 'SELECT count(*) FROM fleet.position')

AGGS="ARRAY['pings = count(*)', 'moving_pings = count(CASE WHEN speed OPERATOR(pg_catalog.>=) 3 THEN 1 END)',
            'max_speed = max(speed)', 'avg_speed = avg(speed)', 'first_fix = min(fix_time)', 'last_fix = max(fix_time)',
            'first_lat = first(lat, fix_time)', 'first_lon = first(lon, fix_time)',
            'last_lat = last(lat, fix_time)', 'last_lon = last(lon, fix_time)']"
declare -A KEY=([local]="local_day = fleet.local_day(tenant_id, fix_time)" [utc]="utc_day = (fix_time AT TIME ZONE ''UTC'')::date")
create() {	# local|utc
	q -c "SELECT fleet.create_view('public.act_$1', 'rollup', '1 minute', source => 'fleet.position',
		keys => ARRAY['tenant_id', 'vehicle_id', '${KEY[$1]}'], aggregates => $AGGS)" >/dev/null
}
drop() { q -c "SELECT fleet.drop_view('public.act_$1')" >/dev/null; }

log "capture at ingest: INSERTs of one fix per vehicle with one view declared ($ROUNDS rounds of 3, alternating)"
ins() {	# median of 3 INSERTs of one fix per vehicle, each the second in its session
	local t=() i
	for i in 1 2 3; do
		t+=("$(ms -c "CALL bench_new()" -c "CALL bench_new()")")
		q -c "SELECT fleet.refresh_view(relation) FROM fleet.view_registry WHERE relation::text LIKE 'act_%'" >/dev/null
	done
	median "${t[@]}"
}
cap_local=(); cap_utc=()
for ((r = 0; r < ROUNDS; r++)); do
	create local; cap_local+=("$(ins)"); drop local
	create utc; cap_utc+=("$(ins)"); drop utc
done
note_load "capture"

log "both views declared: full builds and refreshes"
create local; create utc
q -c 'VACUUM ANALYZE' >/dev/null
rows=$(q -c 'SELECT count(*) FROM fleet.position')
build() {	# local|utc: the full recomputation a rebuild runs
	ms "SELECT count(*) FROM ($(q -c "SELECT build_sql FROM fleet.view_registry WHERE relation = 'public.act_$1'::regclass")) b"
}
build local >/dev/null; build utc >/dev/null	# warm the cache
b_local=(); b_utc=()
for ((r = 0; r < ROUNDS; r++)); do b_local+=("$(build local)"); b_utc+=("$(build utc)"); done
note_load "builds"
r_local=(); r_utc=()
for ((r = 0; r <= ROUNDS; r++)); do
	q -c "CALL bench_new()"
	if [ $((r % 2)) = 1 ]; then
		r_local+=("$(ms "SELECT fleet.refresh_view('public.act_local')")"); r_utc+=("$(ms "SELECT fleet.refresh_view('public.act_utc')")")
	else
		r_utc+=("$(ms "SELECT fleet.refresh_view('public.act_utc')")"); r_local+=("$(ms "SELECT fleet.refresh_view('public.act_local')")")
	fi
done
r_local=("${r_local[@]:1}"); r_utc=("${r_utc[@]:1}")	# the first is a warm-up
note_load "refreshes"
verify=$(q -c "SELECT count(*) FROM fleet.view_status s, LATERAL fleet.verify_view(s.view) d WHERE s.view::text LIKE 'act_%'")
groups_local=$(q -c "SELECT count(*) FROM public.act_local")
groups_utc=$(q -c "SELECT count(*) FROM public.act_utc")
ml=$(median -f %.1f "${b_local[@]}"); mu=$(median -f %.1f "${b_utc[@]}")
rl=$(median -f %.1f "${r_local[@]}"); ru=$(median -f %.1f "${r_utc[@]}")
cl=$(median -f %.1f "${cap_local[@]}"); cu=$(median -f %.1f "${cap_utc[@]}")

section=$(cat <<MD
## local_days

Issue 19, daily rollups by the tenant's local day vs by UTC day; \`bench/local_days.sh\` on
$(date -u +%Y-%m-%d) at commit $(bench_commit), $(machine --short).
The same rollup (the aggregates of fleet.vehicle_daily_activity) declared twice over
fleet.position: keyed by \`fleet.local_day(tenant_id, fix_time)\` and by
\`(fix_time AT TIME ZONE 'UTC')::date\`. $rows fixes of $VEHICLES vehicles of $TENANTS tenants in ten
zones over 30 days ($groups_local local and $groups_utc UTC vehicle-days); every batch interleaves
the tenants. Medians of $ROUNDS rounds (an INSERT round: the median of 3); runs alternate between the two.

| measurement | by local day | by UTC day | local / UTC | target |
|---|---|---|---|---|
| full build (what a rebuild or a zone change runs), ms | $ml (${b_local[*]}) | $mu (${b_utc[*]}) | **$(ratio "$ml" "$mu")** | <= 1.2 |
| refresh after one new fix per vehicle ($VEHICLES, 1% of them late), ms | $rl (${r_local[*]}) | $ru (${r_utc[*]}) | **$(ratio "$rl" "$ru")** | <= 1.2 |
| INSERT of one fix per vehicle with its capture trigger, one view declared, ms | $cl (${cap_local[*]}) | $cu (${cap_utc[*]}) | **$(ratio "$cl" "$cu")** | <= 1.2 |

Both views verified equal to a full recomputation afterwards: $verify difference(s).
1-minute load average when each measurement ended (2 cores): $(loads_line).
MD
)
echo "$section"
echo "$section" | put_section "local_days"
