# bench/lib.sh: what every fleet bench script needs, sourced by them.
#
#   bench_cluster [extra postgresql.conf lines...]
#       initdb a throwaway cluster in a temp dir on a random free port, with
#       fleet and pg_cron preloaded, create database "bench" with fleet in it;
#       stopped and removed on exit (KEEP=1 keeps it and prints how to connect).
#   q ...            psql -At against it (ON_ERROR_STOP)
#   ms "SQL"         milliseconds one statement took (psql's \timing)
#   ratio A B        A / B with two decimals ("n/a" when B is 0)
#   rate N MS        N per second
#   machine          one line describing this machine and its load
#   put_section HEADING   replace that section of bench/results.md with stdin
#
# As root, PostgreSQL runs as the postgres user.

BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BINDIR=$(pg_config --bindir)
RESULTS=${RESULTS:-$BENCH_HERE/results.md}
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

bench_cluster() {
	WORK=$(mktemp -d /tmp/fleet-bench.XXXXXX)
	PORT=$(free_port)
	[ "$(id -u)" = 0 ] && chown postgres "$WORK"
	export PGHOST="$WORK" PGPORT="$PORT" PGDATABASE=bench
	trap bench_cleanup EXIT
	"${AS[@]}" "$BINDIR/initdb" -D "$WORK/data" -A trust >/dev/null
	{
		cat <<CONF
port = $PORT
unix_socket_directories = '$WORK'
listen_addresses = ''
shared_preload_libraries = 'fleet,pg_cron'
cron.database_name = 'bench'
fleet.database = 'bench'
shared_buffers = 256MB
max_wal_size = 4GB
max_worker_processes = 16
log_min_messages = warning
CONF
		for line in "$@"; do echo "$line"; done
	} | "${AS[@]}" tee -a "$WORK/data/postgresql.conf" >/dev/null
	"${AS[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w start >/dev/null
	"${AS[@]}" "$BINDIR/createdb" -h "$WORK" -p "$PORT" bench
	q -c 'CREATE EXTENSION fleet CASCADE' >/dev/null 2>&1
}

bench_cleanup() {
	if [ -n "${KEEP:-}" ]; then echo "cluster kept: PGHOST=$WORK PGPORT=$PORT" >&2; return; fi
	"${AS[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

q() { "${AS[@]}" "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d bench "$@"; }
ms() { q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t == 0) print "n/a"; else printf "%.0f", n / (t / 1000) }'; }
machine() {
	echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)," \
		"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(uname -r)," \
		"PostgreSQL $(pg_config --version | awk '{ print $2 }'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
put_section() { "$BENCH_HERE/put_section.py" "$RESULTS" "$1"; }
