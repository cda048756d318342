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
# 2. Latency: requests at half the HTTP maximum rate (open loop), p50/p99.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BINDIR=$(pg_config --bindir)
SYNC_BIN=${SYNC_BIN:-$REPO/services/build/fleet-sync}
CLIENTS=${CLIENTS:-4}
PAGES=${PAGES:-20}
BATCH=${BATCH:-100}
ROUNDS=${ROUNDS:-3}
LAT_SECONDS=${LAT_SECONDS:-20}
STOPS=40
WORK=$(mktemp -d /tmp/fleet-bench-sync.XXXXXX)
PORT=$((50000 + RANDOM % 10000))
AS=()
if [ "$(id -u)" = 0 ]; then
	chown postgres "$WORK"
	AS=(runuser -u postgres --)
fi
export PGHOST="$WORK" PGPORT="$PORT" PGDATABASE=bench

pg() { "${AS[@]}" "$BINDIR/$@"; }
q() { "${AS[@]}" "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d bench "$@"; }
log() { echo "[sync bench $(date -u +%H:%M:%S) load $(cut -d" " -f1 /proc/loadavg)] $*" >&2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
loads=()
note_load() { loads+=("$1 $(cut -d" " -f1 /proc/loadavg)"); }
SYNC_PID=
cleanup() {
	[ -n "$SYNC_PID" ] && kill "$SYNC_PID" 2>/dev/null && wait "$SYNC_PID" 2>/dev/null || true
	pg pg_ctl -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$SYNC_BIN" ] || { echo "build the services first (make services)" >&2; exit 1; }
pg initdb -D "$WORK/data" -A trust >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$WORK'
listen_addresses = ''
shared_preload_libraries = 'fleet,pg_cron'
cron.database_name = 'bench'
fleet.database = 'bench'
fleet.pipeline_enabled = off
fleet.views_enabled = off
shared_buffers = 256MB
max_wal_size = 4GB
log_min_messages = warning
CONF
pg pg_ctl -D "$WORK/data" -l "$WORK/log" -w start >/dev/null
"${AS[@]}" "$BINDIR/createdb" -h "$WORK" -p "$PORT" bench
q -c 'CREATE EXTENSION fleet CASCADE' -c 'SELECT fleet.create_roles()' -c 'CREATE ROLE sync_svc LOGIN IN ROLE fleet_app' >/dev/null

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

SPORT=$((PORT + 1))
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
		d=$(python3 "$HERE/sync_load.py" throughput libpq "$WORK/clients.$(((r - 1) * 2))" "$PAGES" "$BATCH")
		note_load "libpq round $r"
	fi
	h=$(python3 "$HERE/sync_load.py" throughput http "$WORK/clients.$(((r - 1) * 2 + 1))" "$PAGES" "$BATCH")
	note_load "http round $r"
	if [ $((r % 2)) = 0 ]; then
		d=$(python3 "$HERE/sync_load.py" throughput libpq "$WORK/clients.$(((r - 1) * 2))" "$PAGES" "$BATCH")
		note_load "libpq round $r"
	fi
	log "round $r: libpq $d mutations/s, http $h mutations/s"
	direct+=("$d"); http+=("$h"); ratios+=("$(ratio "$h" "$d")")
done
H=$(median "${http[@]}"); D=$(median "${direct[@]}"); R=$(median "${ratios[@]}")
MAXREQ=$(awk -v h="$H" -v b="$BATCH" 'BEGIN { printf "%.1f", h / b }')
HALF=$(awk -v m="$MAXREQ" 'BEGIN { printf "%.1f", m / 2 }')
log "latency at $HALF requests/s for $LAT_SECONDS s"
read -r P50 P99 NREQ < <(python3 "$HERE/sync_load.py" latency "$WORK/clients.$((NSETS - 1))" "$HALF" "$LAT_SECONDS" "$BATCH")
note_load "latency"
CHECK=$(q -c "SELECT count(*) || ' mutations, ' || count(DISTINCT (client_id, mutation_id)) || ' distinct, ' || coalesce(sum(duplicates), 0) || ' duplicates' FROM fleet.sync_mutation WHERE tenant_id = $T")
kill "$SYNC_PID"; wait "$SYNC_PID" || true; SYNC_PID=
verdict=$(awk -v r="$R" 'BEGIN { print (r >= 0.7) ? "met" : "**missed**" }')

section=$(cat <<MD
## sync service

Issue 8, \`bench/sync.sh\` on $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),
$(free -g | awk '/Mem:/ { print $2 }') GB RAM, PostgreSQL $(pg_config --version | awk '{ print $2 }'); fleet-sync ($CLIENTS database workers), the load driver
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
| request latency at half the maximum rate ($HALF requests/s of $BATCH mutations, open loop, $NREQ requests): p50 | $P50 ms | report |
| same: p99 | $P99 ms | report |

Stored afterwards: $CHECK.
The box is shared: 1-minute load average when each measurement ended (2 cores): $(IFS=';'; echo "${loads[*]}").
MD
)
echo "$section"
RESULTS=${RESULTS:-$HERE/results.md}
touch "$RESULTS"
python3 - "$RESULTS" "$section" <<'PY'
# replace the "## sync service" section (up to the next "## " heading), or append it
import re, sys
path, section = sys.argv[1], sys.argv[2].rstrip('\n') + '\n'
text = open(path).read()
if not text.strip():
    text = '# fleet benchmark results\n'
m = re.search(r'^## sync service\n.*?(?=^## |\Z)', text, re.S | re.M)
if m:
    text = text[:m.start()] + section + ('\n' if text[m.end():] else '') + text[m.end():]
else:
    text = text.rstrip('\n') + '\n\n' + section
open(path, 'w').write(text)
PY
