#!/bin/bash
# bench/sync.sh: issue 8 benchmark (the driver-app sync service), measured
# in one run on a throwaway cluster.  Prints a markdown section on stdout
# and writes it into bench/results.md as "## sync service" (other sections
# are left as they are).
#
#   bench/sync.sh                       # after make install and make services
#   ROUNDS=1 PAGES=10 bench/sync.sh     # quicker
#
# 1. Throughput: CLIENTS driver apps push PAGES batches of BATCH mutations
#    each (route adjustments and every 5th a proof of delivery), once
#    through fleet-sync (POST /v1/sync/push, bearer token, keep-alive) and
#    once straight over libpq (fleet.sync_push with the same batches, the
#    tenant set once per session), fresh clients and stops for each; ROUNDS
#    rounds (which goes first alternates).  Target: HTTP / libpq >= 0.7.
#    Every round adds its mutations, trail events, proofs and stop versions
#    to the same tenant, so the rate per round shows whether a push's cost
#    grows with what is stored (the table's last / first round; ROUNDS=5
#    for a longer trend).  The stored results are counted by outcome.
# 2. Latency: requests at half the HTTP maximum rate (open loop), p50/p99.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
SYNC_BIN=${SYNC_BIN:-$BENCH_REPO/services/build/fleet-sync}
CLIENTS=${CLIENTS:-4}
PAGES=${PAGES:-20}
BATCH=${BATCH:-100}
ROUNDS=${ROUNDS:-3}
LAT_SECONDS=${LAT_SECONDS:-20}
STOPS=40
SYNC_PID=

[ -x "$SYNC_BIN" ] || { echo "build the services first (make services)" >&2; exit 1; }
# max_worker_processes: PostgreSQL's default, as this bench has always run
bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off" "max_worker_processes = 8"
at_exit '[ -n "$SYNC_PID" ] && kill "$SYNC_PID" 2>/dev/null && wait "$SYNC_PID" 2>/dev/null'
q -c 'SELECT fleet.create_roles()' -c 'CREATE ROLE sync_svc LOGIN IN ROLE fleet_app' >/dev/null

# one driver (job, STOPS stops, registered client, token) per client of every run
NSETS=$((ROUNDS * 2 + 1))
log "setup: $((NSETS * CLIENTS)) drivers with $STOPS stops each"
T=$(q -c "SELECT fleet.create_tenant('Bench Sync')")
q >/dev/null <<SQL
SELECT fleet.set_tenant($T);
INSERT INTO fleet.driver (tenant_id, code, name) SELECT $T, 'BD' || g, 'Driver ' || g FROM generate_series(1, $((NSETS * CLIENTS))) g;
INSERT INTO fleet.vehicle (tenant_id, code) SELECT $T, 'BV' || g FROM generate_series(1, $((NSETS * CLIENTS))) g;
INSERT INTO fleet.job (tenant_id, code, driver_id, vehicle_id, status)
SELECT $T, 'BJ' || substr(d.code, 3), d.driver_id, v.vehicle_id, 'assigned'
  FROM fleet.driver d JOIN fleet.vehicle v ON v.tenant_id = d.tenant_id AND substr(v.code, 3) = substr(d.code, 3)
 WHERE d.tenant_id = $T;
INSERT INTO fleet.stop (tenant_id, job_id, seq, driver_id, address)
SELECT $T, j.job_id, g, j.driver_id, 'Street ' || g FROM fleet.job j, generate_series(1, $STOPS) g WHERE j.tenant_id = $T;
SELECT fleet.sync_register_client(('00000000-0000-4000-8000-' || lpad(substr(code, 3), 12, '0'))::uuid, driver_id)
  FROM fleet.driver WHERE tenant_id = $T;
SQL
for s in $(seq 0 $((NSETS - 1))); do
	q -F ' ' >"$WORK/clients.$s" <<SQL
SELECT fleet.set_tenant($T) \g /dev/null
SELECT c.client_id, (fleet.sync_issue_token(c.client_id)).token,
       (SELECT string_agg(s.stop_id::text, ',' ORDER BY s.stop_id) FROM fleet.stop s WHERE s.tenant_id = $T AND s.driver_id = c.driver_id)
  FROM fleet.sync_client c JOIN fleet.driver d ON d.tenant_id = c.tenant_id AND d.driver_id = c.driver_id
 WHERE c.tenant_id = $T AND substr(d.code, 3)::int BETWEEN $((s * CLIENTS + 1)) AND $(((s + 1) * CLIENTS))
 ORDER BY d.driver_id;
SQL
done

SPORT=$(free_port)
"$SYNC_BIN" --dsn "host=$WORK port=$PORT dbname=bench user=sync_svc" --bind 127.0.0.1 --port "$SPORT" \
	--admin-port 0 --workers "$CLIENTS" --rate 0 --log-level info >"$WORK/sync.log" 2>&1 &
SYNC_PID=$!
for _ in $(seq 100); do grep -q '"listening"' "$WORK/sync.log" 2>/dev/null && break; sleep 0.1; done
grep -q '"listening"' "$WORK/sync.log" 2>/dev/null || { log "fleet-sync did not start"; cat "$WORK/sync.log" >&2; exit 1; }
export PGDSN="host=$WORK port=$PORT dbname=bench user=sync_svc" SYNC_URL="http://127.0.0.1:$SPORT"

http=(); direct=(); ratios=()
for r in $(seq 1 "$ROUNDS"); do
	# alternate which goes first, so warm-up and drift do not favour one
	if [ $((r % 2)) = 1 ]; then
		d=$(python3 "$BENCH_HERE/sync_load.py" throughput libpq "$WORK/clients.$(((r - 1) * 2))" "$PAGES" "$BATCH")
		note_load "libpq round $r"
	fi
	h=$(python3 "$BENCH_HERE/sync_load.py" throughput http "$WORK/clients.$(((r - 1) * 2 + 1))" "$PAGES" "$BATCH")
	note_load "http round $r"
	if [ $((r % 2)) = 0 ]; then
		d=$(python3 "$BENCH_HERE/sync_load.py" throughput libpq "$WORK/clients.$(((r - 1) * 2))" "$PAGES" "$BATCH")
		note_load "libpq round $r"
	fi
	log "round $r: libpq $d mutations/s, http $h mutations/s"
	direct+=("$d"); http+=("$h"); ratios+=("$(ratio "$h" "$d")")
done
H=$(median -f '' "${http[@]}"); D=$(median -f '' "${direct[@]}"); R=$(median -f '' "${ratios[@]}")
# the trend: every round pushes as much into the same tenant as the one before
DTREND=$(ratio "${direct[$((ROUNDS - 1))]}" "${direct[0]}"); HTREND=$(ratio "${http[$((ROUNDS - 1))]}" "${http[0]}")
MAXREQ=$(awk -v h="$H" -v b="$BATCH" 'BEGIN { printf "%.1f", h / b }')
HALF=$(awk -v m="$MAXREQ" 'BEGIN { printf "%.1f", m / 2 }')
log "latency at $HALF requests/s for $LAT_SECONDS s"
read -r P50 P99 NREQ < <(python3 "$BENCH_HERE/sync_load.py" latency "$WORK/clients.$((NSETS - 1))" "$HALF" "$LAT_SECONDS" "$BATCH")
note_load "latency"
CHECK=$(q -c "SELECT count(*) || ' mutations, ' || count(DISTINCT (client_id, mutation_id)) || ' distinct, ' || coalesce(sum(duplicates), 0) || ' duplicates' FROM fleet.sync_mutation WHERE tenant_id = $T")
# what the pushes measured: a batch whose mutations are rejected early
# (a clock beyond fleet.future_margin, say) is not the cost of applying them
RESULTS_BY=$(q -c "SELECT string_agg(n || ' ' || workflow || ' ' || result || coalesce(' (' || reason || ')', ''), ', ' ORDER BY n DESC)
  FROM (SELECT workflow, result, reason, count(*) n FROM fleet.sync_mutation WHERE tenant_id = $T GROUP BY 1, 2, 3) x")
kill "$SYNC_PID"; wait "$SYNC_PID" || true; SYNC_PID=
verdict=$(awk -v r="$R" 'BEGIN { print (r >= 0.7) ? "met" : "**missed**" }')

section=$(cat <<MD
## sync service

Issue 8, \`bench/sync.sh\` on $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) vCPU $(cpu_model),
$(free -g | awk '/Mem:/ { print $2 }') GB RAM, PostgreSQL $(pg_version); fleet-sync ($CLIENTS database workers), the load driver
(\`bench/sync_load.py\`, Python threads) and PostgreSQL (fsync and synchronous_commit on) on the same box, over loopback.
$CLIENTS driver apps push $PAGES batches of $BATCH mutations each (route adjustments under lww_hlc, every 5th a proof
of delivery), one thread per app, each batch after the previous answer (2 untimed warm-up batches per app first);
fresh apps and stops for every run.
Baseline: the same batches as \`SELECT ... FROM fleet.sync_push(client, batch)\` over libpq (one connection per app,
tenant set once). HTTP adds per request: token resolution (fleet.sync_authenticate in the same statement), JSON
validation and re-encoding of the answer.

| measure | value | target |
| --- | --- | --- |
| mutations/s over libpq (rounds: ${direct[*]}) | $D | |
| mutations/s through fleet-sync (rounds: ${http[*]}) | $H | |
| HTTP / libpq (median of the rounds' ratios: ${ratios[*]}) | $R | >= 0.7 ($verdict) |
| last round / first round ($ROUNDS rounds), libpq | $DTREND | 1 (flat) |
| same, through fleet-sync | $HTREND | 1 (flat) |
| request latency at half the maximum rate ($HALF requests/s of $BATCH mutations, open loop, $NREQ requests): p50 | $P50 ms | report |
| same: p99 | $P99 ms | report |

Stored afterwards: $CHECK; by result: $RESULTS_BY.
The box is shared: 1-minute load average when each measurement ended (2 cores): $(loads_line).
MD
)
echo "$section"
echo "$section" | put_section "sync service"
