#!/usr/bin/env bash
# make run: a local fleet under ./var, in the foreground until Ctrl-C.
#
# Creates (once) a PostgreSQL 15 cluster in var/pgdata with fleet and pg_cron
# preloaded, the database "fleet" with the extension, the fleet roles and a
# demo tenant; starts it on a free port (FLEET_PORT to choose one), prints
# how to connect, and stops it cleanly on Ctrl-C or SIGTERM.
#   FLEET_RUN_SECONDS=N   stop by itself after N seconds (used by tests)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
var="$repo/var"
bindir=$(pg_config --bindir)
pgdata="$var/pgdata"
sock="$var/run"
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
logging_collector = off
CONF
fi

"${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -l "$var/log/postgresql.log" -o "-p $port" -w start >/dev/null
pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "fleet: stopping"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
}
trap stop INT TERM EXIT

psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres)
if [ "$("${psql[@]}" -d postgres -Atc "SELECT count(*) FROM pg_database WHERE datname = 'fleet'")" = 0 ]; then
	"${psql[@]}" -d postgres -c 'CREATE DATABASE fleet'
fi
"${psql[@]}" -d fleet -f "$repo/scripts/demo.sql"

# The device gateway, on free ports (FLEET_*_PORT to choose).
gw="$repo/services/build/fleet-gateway"
osmand_port=${FLEET_OSMAND_PORT:-$(free_port 5055)}
teltonika_port=${FLEET_TELTONIKA_PORT:-$(free_port 5027)}
gt06_port=${FLEET_GT06_PORT:-$(free_port 5023)}
admin_port=${FLEET_ADMIN_PORT:-$(free_port 9105)}
FLEET_DSN="host=$sock port=$port dbname=fleet user=postgres application_name=fleet-gateway" \
	"$gw" --osmand-port "$osmand_port" --teltonika-port "$teltonika_port" --gt06-port "$gt06_port" \
	--admin-port "$admin_port" --journal-dir "$var/gateway-journal" >>"$var/log/gateway.log" 2>&1 &
pids+=($!)

cat <<MSG

fleet is running (PostgreSQL $("${psql[@]}" -d fleet -Atc 'SHOW server_version'), extension $("${psql[@]}" -d fleet -Atc "SELECT extversion FROM pg_extension WHERE extname = 'fleet'")).
  psql:  psql -h $sock -p $port -U postgres fleet
  or:    psql "postgresql://postgres@localhost:$port/fleet"
  gateway: OsmAnd http://localhost:$osmand_port/  Teltonika tcp/udp :$teltonika_port  GT06 tcp :$gt06_port
           metrics http://localhost:$admin_port/metrics   log $var/log/gateway.log
  log:   $var/log/postgresql.log
Press Ctrl-C to stop.
MSG

if [ -n "${FLEET_RUN_SECONDS:-}" ]; then
	sleep "$FLEET_RUN_SECONDS"
else
	while true; do sleep 3600 & wait $!; done
fi
