#!/bin/bash
# bench/gateway.sh: issue 7 benchmarks (the device gateway), measured in one
# run on a throwaway cluster next to a fleet-gateway on free ports, driven
# by fleet-loadgen over loopback:
#
#   1. fixes/s acknowledged after commit, closed loop (median of $ROUNDS rounds), with $TLT Teltonika TCP
#      connections ($PER_PACKET records per packet) plus $OSM OsmAnd HTTP
#      clients (dead zones and re-sent buffers on), every acknowledged fix
#      checked in the database afterwards;
#   2. vs COPY of the same rows into fleet.position          [target >= 0.4]
#   3. vs one autocommit INSERT per fix into fleet.position   [report]
#   4. p50/p99 acknowledgement latency at half that rate      [report]
#   5. gateway RSS with $IDLE idle (logged-in) Teltonika connections [report]
#
# Writes its figures into bench/results.md, section "## gateway" (other
# sections are left as they are), and prints the section.
#
#   bench/gateway.sh                      # after make install && make services
#   DURATION=30 ROUNDS=3 TLT=1000 OSM=50 IDLE=10000 PER_PACKET=5 bench/gateway.sh
#   GW_FLAGS="--writers 4" bench/gateway.sh   # extra fleet-gateway flags
#
# PostgreSQL defaults (fsync and synchronous_commit on) plus
# shared_buffers=256MB; absolute numbers are this box's, the ratios are
# what the targets are about.
set -euo pipefail

. "$(dirname "$0")/lib.sh"
GATEWAY=$BENCH_REPO/services/build/fleet-gateway
LOADGEN=$BENCH_REPO/services/build/fleet-loadgen
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
TLT=${TLT:-1000}
OSM=${OSM:-50}
PER_PACKET=${PER_PACKET:-5}
IDLE=${IDLE:-10000}
[ -x "$GATEWAY" ] && [ -x "$LOADGEN" ] || { echo "build the services first: make -C services all" >&2; exit 1; }

# 10,000 idle connections need as many descriptors in the gateway and in the load generator
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((IDLE + 2000)) ]; then
	echo "ulimit -n is $(ulimit -n): lowering IDLE to $(( $(ulimit -n) - 2000 ))" >&2
	IDLE=$(( $(ulimit -n) - 2000 ))
fi

kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
GW_PID=

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# max_worker_processes: PostgreSQL's default, as this bench has always run
bench_cluster "fleet.pipeline_enabled = off" "max_worker_processes = 8"
at_exit '[ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null'
TENANT=$(q -c "SELECT fleet.create_roles() * 0 + fleet.create_tenant('Bench Freight')" | tail -1)
# fleet-loadgen's device ids: IMEIs 350000000000000 + i for Teltonika, lg-osm-<i> for OsmAnd;
# the idle run uses IMEIs from 360000000000000.
q <<SQL >/dev/null
CREATE ROLE gw LOGIN IN ROLE fleet_ingest;
SELECT fleet.set_tenant($TENANT);
INSERT INTO fleet.device (tenant_id, identifier, protocol)
SELECT $TENANT, (350000000000000 + g)::text, 'teltonika' FROM generate_series(0, $TLT - 1) g
UNION ALL SELECT $TENANT, 'lg-osm-' || g, 'osmand' FROM generate_series(0, $OSM - 1) g
UNION ALL SELECT $TENANT, (360000000000000 + g)::text, 'teltonika' FROM generate_series(0, $IDLE - 1) g;
SELECT fleet.clear_tenant();
-- statistics as autovacuum would have them on a running system (without them
-- the device look-up of fleet.ingest_positions may plan a sequential scan)
ANALYZE;
SQL

"$GATEWAY" --dsn "host=$WORK port=$PORT dbname=bench user=gw" --bind 127.0.0.1 ${GW_FLAGS:-} \
	--osmand-port 0 --teltonika-port 0 --gt06-port 0 --admin-port 0 \
	--journal-dir "$WORK/journal" --max-conns 30000 2>"$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 100); do grep -q 'msg="listening"' "$WORK/gateway.log" 2>/dev/null && break; sleep 0.1; done
LISTEN=$(grep -m1 'msg="listening"' "$WORK/gateway.log" || true)
[ -n "$LISTEN" ] || { echo "fleet-gateway did not start:" >&2; cat "$WORK/gateway.log" >&2; exit 1; }
P_TLT=$(kv teltonika "$LISTEN"); P_OSM=$(kv osmand "$LISTEN"); P_ADMIN=$(kv admin "$LISTEN")
metric() { curl -s "http://127.0.0.1:$P_ADMIN/metrics" | sed -n "s/^$1 //p" | head -1; }

# 1-2. maximum acknowledged rate (closed loop) and COPY of the same rows, in
# $ROUNDS alternating rounds (the box may be shared: the median ratio counts)
RATES=(); COPYS=(); RATIOS=(); ACKED=0; MISSING=0
q -c "CREATE TABLE bench_acks (device text, ms bigint)"
for round in $(seq "$ROUNDS"); do
	R0=$(q -c "SELECT now()")
	OUT1=$("$LOADGEN" --teltonika-port "$P_TLT" --osmand-port "$P_OSM" --teltonika "$TLT" --osmand "$OSM" \
		--per-packet "$PER_PACKET" --duration "$DURATION" --dead-zone-pct 2 --resend-pct 2 --seed "$round" \
		--ack-file "$WORK/acks.tsv")
	RATES+=("$(kv acked_per_s "$OUT1")")
	ACKED=$((ACKED + $(kv acked_fixes "$OUT1")))
	chmod 644 "$WORK/acks.tsv"
	q -c "COPY bench_acks FROM '$WORK/acks.tsv'"
	M=$(curl -s "http://127.0.0.1:$P_ADMIN/metrics")
	# the same rows, shifted back one day (a fresh key range; the partitions exist)
	ROWS=$(q -c "COPY (SELECT tenant_id, device_id, fix_time - interval '1 day', vehicle_id, lat, lon, speed, heading,
		altitude, accuracy, seq, attrs, received_at FROM fleet.position WHERE received_at >= '$R0') TO '$WORK/pos.copy'" \
		-c "SELECT count(*) FROM fleet.position WHERE received_at >= '$R0'" | tail -1)
	T_COPY=$(ms "COPY fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed, heading, altitude,
		accuracy, seq, attrs, received_at) FROM '$WORK/pos.copy'")
	COPYS+=("$(rate "$ROWS" "$T_COPY")")
	RATIOS+=("$(ratio "${RATES[-1]}" "${COPYS[-1]}")")
done
RATE_MAX=$(median -l "${RATES[@]}"); COPY_RATE=$(median -l "${COPYS[@]}"); RATIO=$(median -l "${RATIOS[@]}")
MISSING=$(q -c "SELECT count(*) FROM (SELECT DISTINCT device, ms FROM bench_acks) a
 WHERE NOT EXISTS (SELECT 1 FROM fleet.position p JOIN fleet.device d USING (tenant_id, device_id)
                    WHERE d.identifier = a.device AND p.fix_time = 'epoch'::timestamptz + a.ms * interval '1 ms')")
BATCH_MEAN=$(awk '/^fleet_gateway_batch_rows_sum/ { s = $2 } /^fleet_gateway_batch_rows_count/ { c = $2 } END { if (c) printf "%.0f", s / c }' <<<"$M")
COMMIT_MEAN=$(awk '/^fleet_gateway_commit_seconds_sum/ { s = $2 } /^fleet_gateway_commit_seconds_count/ { c = $2 } END { if (c) printf "%.1f", 1000 * s / c }' <<<"$M")

# 3. one autocommit INSERT per fix (pgbench, prepared, one client, 10 s)
cat > "$WORK/insert.sql" <<SQL
\set d random(1, $TLT)
INSERT INTO fleet.position (tenant_id, device_id, fix_time, lat, lon, speed, heading, altitude, attrs)
VALUES ($TENANT, :d, clock_timestamp() - interval '2 hours', 52.5, 13.4, 42, 180, 34, '{"io": {"239": 1}}');
SQL
chmod 644 "$WORK/insert.sql"
TPS_INSERT=$(pgbench_tps "$WORK/pgbench.out" -n -M prepared -c 1 -T 10 -f "$WORK/insert.sql")
TPS_INSERT=$(printf "%.0f" "$TPS_INSERT")

# 4. latency at half the maximum rate (paced)
HALF=$(awk -v r="$RATE_MAX" 'BEGIN { printf "%.0f", r / 2 }')
OUT4=$("$LOADGEN" --teltonika-port "$P_TLT" --osmand-port "$P_OSM" --teltonika "$TLT" --osmand "$OSM" \
	--per-packet "$PER_PACKET" --duration "$DURATION" --rate "$HALF" --dead-zone-pct 0 --resend-pct 0 --seed 2)
RATE_HALF=$(kv acked_per_s "$OUT4"); P50=$(kv ack_p50_ms "$OUT4"); P99=$(kv ack_p99_ms "$OUT4")

# 5. memory with $IDLE idle connections
RSS0=$(awk '/VmRSS/ { print $2 }' /proc/$GW_PID/status)
"$LOADGEN" --teltonika-port "$P_TLT" --osmand-port "$P_OSM" --teltonika 0 --osmand 0 --idle "$IDLE" \
	--imei-base 360000000000000 --duration 40 > "$WORK/idle.out" &
LG_PID=$!
OPEN=0
for _ in $(seq 300); do
	OPEN=$(curl -s "http://127.0.0.1:$P_ADMIN/metrics" | sed -n 's/^fleet_gateway_connections{protocol="teltonika"} //p')
	OPEN=${OPEN%.*}
	[ "${OPEN:-0}" -ge "$IDLE" ] && break
	sleep 0.1
done
CONNS=$(curl -s "http://127.0.0.1:$P_ADMIN/metrics" | sed -n 's/^fleet_gateway_connections{protocol="teltonika"} //p')
RSS1=$(awk '/VmRSS/ { print $2 }' /proc/$GW_PID/status)
kill "$LG_PID" 2>/dev/null; wait "$LG_PID" 2>/dev/null || true
PER_CONN=$(awk -v a="$RSS0" -v b="$RSS1" -v n="${CONNS%.*}" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "n/a" }')

kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=

MACHINE="$(nproc) vCPU $(cpu_model), $(free -g | awk '/Mem:/ { print $2 }') GB RAM, $(uname -r), PostgreSQL $(pg_version)"
SECTION=$(cat <<MD
## gateway

Issue 7, \`bench/gateway.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) at commit $(bench_commit); $MACHINE; gateway, load generator and
PostgreSQL (defaults: fsync and synchronous_commit on; shared_buffers 256MB) on the same box, over loopback.
Load average before the run: $LOAD0 (other work on the box skews absolute numbers; each round measures the
gateway and then COPY of the rows it stored).
Load: $TLT Teltonika TCP devices ($PER_PACKET records per packet) and $OSM OsmAnd HTTP clients, $DURATION s,
each device sending its next packet when the previous one is acknowledged; 2% of packets start a dead
zone (buffered, sent later as one burst), 2% of acknowledged packets are sent again.

| measure | value | target |
| --- | --- | --- |
| fixes/s acknowledged after commit (closed loop; median of $ROUNDS rounds: ${RATES[*]}) | $RATE_MAX | |
| mean fixes per ingest call / mean call time including commit | $BATCH_MEAN / $COMMIT_MEAN ms | |
| acknowledged fixes checked in the database: missing | $MISSING of $ACKED | 0 |
| COPY of the same rows into fleet.position, rows/s (rounds: ${COPYS[*]}) | $COPY_RATE | |
| gateway / COPY (median of the rounds' ratios: ${RATIOS[*]}) | $RATIO | >= 0.4 |
| one autocommit INSERT per fix (pgbench, 1 client), rows/s | $TPS_INSERT | |
| gateway / autocommit INSERT | $(ratio "$RATE_MAX" "$TPS_INSERT") | report |
| at half rate ($RATE_HALF fixes/s acknowledged): ack latency p50 / p99 | $P50 ms / $P99 ms | report |
| gateway RSS idle / with ${CONNS%.*} open Teltonika connections | $((RSS0 / 1024)) MB / $((RSS1 / 1024)) MB ($PER_CONN KB per connection) | report |

Load generator, closed loop: \`$OUT1\`

Load generator, half rate: \`$OUT4\`
MD
)
echo "$SECTION"
echo "$SECTION" | put_section "gateway"
