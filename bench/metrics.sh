#!/bin/bash
# bench/metrics.sh: issue 9 benchmark -- how long fleet.metrics() and
# fleet.health() take on a big fleet, against the same calls on an empty
# database measured in the same run.  Prints a markdown section on stdout
# and writes it into bench/results.md as the section "## metrics" (other
# sections are left as they are).
#
#   bench/metrics.sh                                  # after make install: 10M fixes, 5k vehicles
#   POSITIONS=1000000 EVENTS=20000 bench/metrics.sh   # quicker
#
# Data: VEHICLES vehicles with a device each, POSITIONS fixes spread over
# 30 daily partitions, EVENTS telemetry events left unconsumed (a backlog:
# the pipeline workers are off), a few hundred dead letters and retries,
# and the built-in views built once.  Target: fleet.metrics() under 50 ms.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
VEHICLES=${VEHICLES:-5000}
POSITIONS=${POSITIONS:-10000000}
EVENTS=${EVENTS:-100000}
RUNS=${RUNS:-15}
# median milliseconds of RUNS executions of one statement (as timed by psql), after one warm-up
ms_median() {
	local args=(-c '\timing on') i
	for i in $(seq 0 "$RUNS"); do args+=(-c "$1"); done
	q "${args[@]}" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n +2 | median -f %.3f
}

bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off" "shared_buffers = 1GB" "work_mem = 64MB" \
	"maintenance_work_mem = 512MB" "max_wal_size = 8GB"
q -c "SELECT fleet.create_daily_partitions('fleet.position', current_date - 31, current_date + 2)" >/dev/null

log "baseline: an empty fleet"
m_empty=$(ms_median 'SELECT count(*) FROM fleet.metrics()')
h_empty=$(ms_median 'SELECT count(*) FROM fleet.health()')
n_empty=$(q -c 'SELECT count(*) FROM fleet.metrics()')
log "empty: metrics ${m_empty} ms (${n_empty} series), health ${h_empty} ms"

log "setup: $VEHICLES vehicles, $POSITIONS fixes over 30 days, $EVENTS pending events"
q >/dev/null <<SQL
SELECT fleet.create_tenant('Bench Freight') AS t \gset
SELECT fleet.set_tenant(:t);
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :t, 'BV' || g FROM generate_series(1, $VEHICLES) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
	SELECT :t, 'BD' || substr(code, 3), 'osmand', vehicle_id FROM fleet.vehicle;
SELECT fleet.register_event_kind('bench.ping', 'telemetry');
SELECT fleet.clear_tenant();
CREATE TABLE bench_dev AS SELECT d.tenant_id, d.device_id, d.vehicle_id, row_number() OVER (ORDER BY d.device_id) AS n
  FROM fleet.device d;
SQL
per=$(( POSITIONS / VEHICLES ))
chunks=10
for c in $(seq 0 $((chunks - 1))); do
	q -c "INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading)
	      SELECT b.tenant_id, b.device_id,
	             date_trunc('hour', now()) - interval '30 days' + (k::float8 / $per) * interval '30 days' + b.n * interval '1 ms',
	             b.vehicle_id, 48 + random() * 6, 6 + random() * 9, (random() * 110)::real, (random() * 359)::real
	        FROM bench_dev b, generate_series($c, $((per - 1)), $chunks) k"
	log "  fixes chunk $((c + 1))/$chunks"
done
q >/dev/null <<SQL
-- the backlog: written straight into the log (as ingest would, without its
-- per-key checks, which are not what is measured here), never consumed
INSERT INTO fleet.event_log (tenant_id, event_id, class, kind, schema_version, original_version, source, idem_key,
                             occurred_at, payload)
SELECT t.tenant_id, nextval('fleet.event_id_seq'), 'telemetry', 'bench.ping', 1, 1, 'bench', 'e' || g, now(), '{}'
  FROM fleet.tenant t, generate_series(1, $EVENTS) g;
INSERT INTO fleet.dead_letter (tenant_id, event_id, logged_at, class, kind, attempts, error, sqlstate, history)
SELECT t.tenant_id, -g, now(), (ARRAY['financial', 'operational', 'audit'])[1 + g % 3], 'bench.ping', 5, 'bench', 'P0001', '[]'
  FROM fleet.tenant t, generate_series(1, 300) g;
INSERT INTO fleet.event_retry (tenant_id, event_id, logged_at, class, kind, attempts, next_attempt_at)
SELECT t.tenant_id, -1000 - g, now(), 'operational', 'bench.ping', 1, now() + interval '1 hour'
  FROM fleet.tenant t, generate_series(1, 300) g;
SELECT fleet.refresh_view(relation) FROM fleet.view_registry ORDER BY view_id;
VACUUM ANALYZE;
SQL
rows=$(q -c 'SELECT count(*) FROM fleet.position')
backlog=$(q -c "SELECT value::bigint FROM fleet.metrics() WHERE name = 'fleet_event_backlog' AND labels ->> 'class' = 'telemetry'")
log "loaded: $rows fixes, telemetry backlog $backlog"

m_big=$(ms_median 'SELECT count(*) FROM fleet.metrics()')
h_big=$(ms_median 'SELECT count(*) FROM fleet.health()')
n_big=$(q -c 'SELECT count(*) FROM fleet.metrics()')
scan=$(RUNS=1 ms_median 'SELECT count(*) FROM fleet.position')
log "big: metrics ${m_big} ms (${n_big} series), health ${h_big} ms, a full count of positions ${scan} ms"
verdict=$(awk -v m="$m_big" 'BEGIN { print (m < 50) ? "met" : "**missed**" }')

section=$(cat <<MD
## metrics

\`bench/metrics.sh\`, $(date -u +%Y-%m-%d) at commit $(bench_commit), $(machine --short); shared machine, load average at the end $(cut -d" " -f1 /proc/loadavg).
Median of $RUNS calls after a warm-up. Big fleet: $VEHICLES vehicles, $rows fixes over 30 daily partitions,
$backlog telemetry events waiting (pipeline off; the backlog count stops at fleet.metric_setting.backlog_cap),
300 dead letters, 300 retries, every view built. Baseline: the same calls on an empty fleet in the same run.

| call | empty fleet | big fleet | ratio big / empty |
| --- | --- | --- | --- |
| \`fleet.metrics()\` | ${m_empty} ms (${n_empty} series) | ${m_big} ms (${n_big} series) | $(ratio "$m_big" "$m_empty") |
| \`fleet.health()\` (metrics + thresholds) | ${h_empty} ms | ${h_big} ms | $(ratio "$h_big" "$h_empty") |
| for scale: \`count(*)\` of fleet.position (one run) | | ${scan} ms | metrics / scan $(ratio "$m_big" "$scan") |

Target fleet.metrics() < 50 ms on the big fleet: $verdict (${m_big} ms).
MD
)
echo "$section"
echo "$section" | put_section "metrics"
