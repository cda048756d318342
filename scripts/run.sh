#!/usr/bin/env bash
# make run: a living fleet under ./var, in the foreground until Ctrl-C.
#
# Creates (once) a PostgreSQL 15 cluster in var/pgdata with fleet and pg_cron
# preloaded, the database "fleet" with the extension, the fleet roles and a
# demo tenant with FLEET_VEHICLES vans, trackers, drivers and driver apps
# (scripts/demo.sql); starts it on a free port, then fleet-gateway, then the
# simulator (services/sim/fleet-sim: a day in fast-forward through the
# gateway, driver apps syncing, a dispatcher, a provider retry storm).  It
# prints a live summary and how to connect, and stops everything cleanly on
# Ctrl-C or SIGTERM (simulator, gateway, then PostgreSQL).
#
#   FLEET_VEHICLES=N      vans, trackers and drivers                  [300]
#   FLEET_SPEED=X         simulated seconds per second (1..1000)      [60: a day in 24 min]
#   FLEET_FIX_RATE=R      tracker fixes per second in total           [vehicles / 2]
#   FLEET_SIM=0           no simulator: an idle fleet to explore
#   FLEET_SYNC_VIA=sql    driver apps push with fleet.sync_push() over libpq instead
#                         of through fleet-sync (HTTP, the default)
#   FLEET_RUN_SECONDS=N   stop by itself after N seconds (used by tests)
#   FLEET_VAR=DIR         where the cluster, logs and journals live    [./var]
#   FLEET_PORT, FLEET_OSMAND_PORT, FLEET_TELTONIKA_PORT, FLEET_GT06_PORT,
#   FLEET_ADMIN_PORT, FLEET_SYNC_PORT, FLEET_SYNC_ADMIN_PORT
#                         fixed ports instead of free ones
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
var=${FLEET_VAR:-$repo/var}
mkdir -p "$var"
var=$(cd "$var" && pwd)
bindir=$(pg_config --bindir)
pgdata="$var/pgdata"
sock="$var/run"
vehicles=${FLEET_VEHICLES:-300}
speed=${FLEET_SPEED:-60}
mkdir -p "$var/log" "$sock"

as_pg=()
if [ "$(id -u)" = 0 ]; then
	# PostgreSQL will not run as root: run it as the postgres user.
	chown -R postgres "$var"
	as_pg=(runuser -u postgres --)
fi

free_port() {
	local p
	for p in $(seq "${1:-5440}" 65000); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"; return 0
		fi
	done
	return 1
}
port=${FLEET_PORT:-$(free_port 5440)}

if [ ! -s "$pgdata/PG_VERSION" ]; then
	echo "fleet: creating cluster in $pgdata"
	"${as_pg[@]}" "$bindir/initdb" -D "$pgdata" -A trust -U postgres --no-instructions >"$var/log/initdb.log"
	cat >>"$pgdata/postgresql.conf" <<CONF
# --- fleet (make run) ---
shared_preload_libraries = 'fleet,pg_cron'
cron.database_name = 'fleet'
fleet.database = 'fleet'
listen_addresses = 'localhost'
unix_socket_directories = '$sock'
max_worker_processes = 16
max_connections = 200
logging_collector = off
CONF
fi

# PostgreSQL, the gateway and the simulator run in sessions of their own, so
# Ctrl-C reaches only this script, which stops them in order.
setsid -w "${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -l "$var/log/postgresql.log" -o "-p $port" -w start >/dev/null
pids=()
stop() {
	trap - INT TERM EXIT
	trap '' INT TERM	# a second Ctrl-C does not cut the shutdown short
	echo
	echo "fleet: stopping"
	# the simulator first (its drivers push what they kept), then the gateway
	# (it answers every frame in flight and drains), then PostgreSQL
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	"${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
	echo "fleet: stopped"
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres)
if [ "$("${psql[@]}" -d postgres -Atc "SELECT count(*) FROM pg_database WHERE datname = 'fleet'")" = 0 ]; then
	"${psql[@]}" -d postgres -c 'CREATE DATABASE fleet'
fi
"${psql[@]}" -d fleet -v vehicles="$vehicles" -v teltonika_base=356307042440000 -v osmand_prefix=demo \
	-f "$repo/scripts/demo.sql" >"$var/log/demo.log"
# A login to explore as an app would: not a superuser (superusers and roles
# with BYPASSRLS are not subject to row-level security and see every
# tenant), in fleet_app and fleet_analyst, bound to the demo tenant.
demo_tenant=$("${psql[@]}" -d fleet -Atc "SELECT tenant_id FROM fleet.tenant WHERE name = 'Demo Fleet'")
"${psql[@]}" -d fleet -c "DO \$\$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_demo') THEN
		CREATE ROLE fleet_demo LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE fleet_app, fleet_analyst;
	END IF; END \$\$" -c "SELECT fleet.bind_login('fleet_demo', $demo_tenant)" >/dev/null

# The device gateway, on free ports (FLEET_*_PORT to choose).
gw="$repo/services/build/fleet-gateway"
osmand_port=${FLEET_OSMAND_PORT:-$(free_port 5055)}
teltonika_port=${FLEET_TELTONIKA_PORT:-$(free_port 5027)}
gt06_port=${FLEET_GT06_PORT:-$(free_port 5023)}
admin_port=${FLEET_ADMIN_PORT:-$(free_port 9105)}
FLEET_DSN="host=$sock port=$port dbname=fleet user=postgres application_name=fleet-gateway" \
	setsid "$gw" --bind 127.0.0.1 --osmand-port "$osmand_port" --teltonika-port "$teltonika_port" --gt06-port "$gt06_port" \
	--admin-port "$admin_port" --journal-dir "$var/gateway-journal" --report-interval 5 \
	>>"$var/log/gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 1 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$admin_port") 2>/dev/null; then break; fi
	sleep 0.1
done

# The driver-app sync service, as a login role in fleet_app.
sync_port=${FLEET_SYNC_PORT:-$(free_port 8088)}
sync_admin_port=${FLEET_SYNC_ADMIN_PORT:-$(free_port 9106)}
"${psql[@]}" -d fleet -c "DO \$\$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_sync_svc') THEN
		CREATE ROLE fleet_sync_svc LOGIN IN ROLE fleet_app;
	END IF; END \$\$"
FLEET_DSN="host=$sock port=$port dbname=fleet user=fleet_sync_svc application_name=fleet-sync" \
	setsid "$repo/services/build/fleet-sync" --bind 127.0.0.1 --port "$sync_port" --admin-port "$sync_admin_port" \
	--report-interval 5 --rate 0 >>"$var/log/sync.log" 2>&1 &
sync_pid=$!
for _ in $(seq 1 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$sync_admin_port") 2>/dev/null; then break; fi
	sleep 0.1
done

# The simulated day (stopped before the services: it is first in pids).
if [ "${FLEET_SIM:-1}" != 0 ]; then
	sim_args=(--pghost "$sock" --pgport "$port" --gateway-host 127.0.0.1
		--osmand-port "$osmand_port" --teltonika-port "$teltonika_port"
		--loadgen "$repo/services/build/fleet-loadgen" --vehicles "$vehicles" --speed "$speed"
		--log "$var/log/sim-errors.log")
	[ -n "${FLEET_FIX_RATE:-}" ] && sim_args+=(--fix-rate "$FLEET_FIX_RATE")
	[ "${FLEET_SYNC_VIA:-http}" = sql ] || sim_args+=(--sync-url "http://127.0.0.1:$sync_port")
	setsid python3 "$repo/services/sim/fleet-sim" "${sim_args[@]}" >>"$var/log/sim.log" 2>&1 &
	pids+=($!)
fi
pids+=("$sync_pid" "$gw_pid")

intro() {
	cat <<MSG
fleet is running: PostgreSQL $("${psql[@]}" -d fleet -Atc 'SHOW server_version'), extension $("${psql[@]}" -d fleet -Atc "SELECT extversion FROM pg_extension WHERE extname = 'fleet'"), $vehicles vans, speed ${speed}x
  psql:    psql -h $sock -p $port -U postgres fleet      (try: TABLE fleet.workflow_health;)
           a superuser: row-level security does not apply to it (nor to BYPASSRLS roles), it sees every tenant
  as app:  psql -h $sock -p $port -U fleet_demo fleet    (fleet_app + fleet_analyst, bound to tenant $demo_tenant;
           first: SELECT fleet.set_tenant($demo_tenant);  then e.g. TABLE fleet.dispatch_board;)
  gateway: OsmAnd http://localhost:$osmand_port/  Teltonika :$teltonika_port  GT06 :$gt06_port  metrics http://localhost:$admin_port/metrics
  sync:    http://localhost:$sync_port/v1/  metrics http://localhost:$sync_admin_port/metrics
  logs:    $var/log/  (postgresql.log gateway.log sync.log sim.log)
MSG
}

# One screen: fixes/s, backlog, view ages, conflicts, health per workflow.
summary_sql=$(cat <<'SQL'
WITH m AS (SELECT * FROM fleet.metrics())
SELECT 'fixes ' || COALESCE((SELECT value::bigint FROM m WHERE name = 'fleet_rows_inserted_total' AND labels ->> 'table' = 'position'), 0)
UNION ALL
SELECT 'backlog ' || string_agg(format('%s=%s (oldest %ss)', b.labels ->> 'class', b.value::bigint,
       round((SELECT o.value FROM m o WHERE o.name = 'fleet_event_backlog_oldest_seconds' AND o.labels = b.labels)::numeric, 1)), '  '
       ORDER BY b.labels ->> 'class')
  FROM m b WHERE b.name = 'fleet_event_backlog'
UNION ALL
SELECT 'views ' || string_agg(format('%s %ss/%ss', replace(v.labels ->> 'view', 'fleet.', ''), round(v.value::numeric, 1),
       (SELECT bd.value FROM m bd WHERE bd.name = 'fleet_view_bound_seconds' AND bd.labels = v.labels)), '  '
       ORDER BY v.labels ->> 'view')
  FROM m v WHERE v.name = 'fleet_view_age_seconds'
UNION ALL
SELECT format('sync %s mutations, %s conflicts, %s reviews open (last 15 min)',
       (SELECT count(*) FROM fleet.sync_mutation WHERE applied_at > now() - interval '15 minutes'),
       (SELECT count(*) FROM fleet.sync_conflict WHERE decided_at > now() - interval '15 minutes'),
       (SELECT count(*) FROM fleet.sync_review WHERE status = 'open'))
UNION ALL
SELECT format('events %s consumed, %s retrying, %s dead letters',
       (SELECT sum(value)::bigint FROM m WHERE name = 'fleet_pipeline_events_total'),
       COALESCE((SELECT sum(value)::bigint FROM m WHERE name = 'fleet_event_retries'), 0),
       COALESCE((SELECT sum(value)::bigint FROM m WHERE name = 'fleet_dead_letters'), 0))
UNION ALL
SELECT 'health ' || string_agg(format('%s=%s', h.workflow, h.state), '  ' ORDER BY ord)
  FROM (SELECT w.*, row_number() OVER () AS ord FROM fleet.health() w) h
UNION ALL
SELECT '  ' || h.workflow || ': ' || (r ->> 'meaning') || format(' (%s %s)', r ->> 'metric', round((r ->> 'value')::numeric, 2))
  FROM fleet.health() h, jsonb_array_elements(h.reasons) r
SQL
)

started=$(date +%s)
last_fixes=""
last_t=$started
tty=0
[ -t 1 ] && tty=1
[ "$tty" = 1 ] || intro
while true; do
	now=$(date +%s)
	if [ -n "${FLEET_RUN_SECONDS:-}" ] && [ $((now - started)) -ge "$FLEET_RUN_SECONDS" ]; then
		break
	fi
	if ! kill -0 "$gw_pid" 2>/dev/null; then
		echo "fleet: the gateway exited, see $var/log/gateway.log"
		exit 1
	fi
	if ! kill -0 "$sync_pid" 2>/dev/null; then
		echo "fleet: the sync service exited, see $var/log/sync.log"
		exit 1
	fi
	if out=$("${psql[@]}" -d fleet -At -c "$summary_sql" 2>>"$var/log/summary-errors.log"); then
		fixes=$(sed -n 's/^fixes //p' <<<"$out")
		fixes=${fixes:-0}
		rate="-"
		if [ -n "$last_fixes" ] && [ "$now" -gt "$last_t" ]; then
			rate=$(( (fixes - last_fixes) / (now - last_t) ))
		fi
		last_fixes=$fixes
		last_t=$now
		if [ "$tty" = 1 ]; then
			printf '\033[H\033[2J'
			intro
			echo
			echo "$(date '+%H:%M:%S')  up $((now - started)) s   fixes/s $rate   fixes stored $fixes"
			grep -v '^fixes ' <<<"$out"
			echo
			echo "Press Ctrl-C to stop."
		else
			echo "[$((now - started)) s] fixes/s $rate stored $fixes | $(grep '^health ' <<<"$out")"
		fi
	fi
	sleep "${FLEET_SUMMARY_EVERY:-2}" & wait $!
done
