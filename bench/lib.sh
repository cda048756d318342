# bench/lib.sh: what every fleet bench script needs, sourced by them.
#
#   bench_cluster [extra postgresql.conf lines...]
#       initdb a throwaway cluster in a temp dir ($WORK) on a random free
#       port ($PORT), with fleet and pg_cron preloaded, create database
#       "bench" with fleet in it.  The extra lines come after the defaults
#       below, so they may also override them (the last setting wins).
#       Stopped and removed on exit (KEEP=1 keeps it and prints how to connect).
#   at_exit 'COMMAND'    run COMMAND on exit, before the cluster is stopped
#                        (services a script started; also with KEEP=1)
#   q ...            psql -At against it (ON_ERROR_STOP)
#   ms "SQL"         milliseconds one statement took (psql's \timing)
#   ms -c SQL -c SQL ...   the same for the last of several statements in one session
#   pgb ...          pgbench against it (as the cluster's owner)
#   pgbench_tps OUT ARGS...   pgbench ARGS against database bench, output kept
#                    in OUT (shown, and the script stopped, on failure); prints tps
#   median [-f FMT | -l] [V...]   the middle of V... (or of stdin's lines);
#                    for an even count the mean of the two middle ones
#                    printed with FMT (default %.2f), or as awk prints it
#                    with -f '', or the lower one with -l
#   ratio A B        A / B with two decimals ("n/a" when B is 0)
#   rate N MS        N per second
#   bench_commit     the commit measured: its short hash, "+changes" when the
#                    extension, SQL, services or bench differ from it
#   machine [--short]    one line describing this machine and its load
#                    (--short: cores, memory, CPU, PostgreSQL; no kernel, no load)
#   cpu_model, pg_version    pieces of that line, for scripts that word it their way
#   log MESSAGE      "[NAME bench HH:MM:SS load L] MESSAGE" on stderr; NAME is
#                    $BENCH_NAME, by default the script's name without .sh
#   note_load WHAT   remember the 1-minute load average as a measurement ends;
#   loads_line       all of them, "WHAT L;WHAT L;..."
#   put_section HEADING   replace that section of bench/results.md with stdin
#                    (see put_section.py for how the heading is matched)
#
# As root, PostgreSQL runs as the postgres user.

BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(cd "$BENCH_HERE/.." && pwd)
BENCH_NAME=${BENCH_NAME:-$(basename "$0" .sh)}
BINDIR=$(pg_config --bindir)
RESULTS=${RESULTS:-$BENCH_HERE/results.md}
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi
BENCH_AT_EXIT=()
loads=()

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

bench_cluster() {
	local out
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
	# quiet (CASCADE's notices), but an error is shown
	out=$(q -c 'CREATE EXTENSION fleet CASCADE' 2>&1) || { echo "$out" >&2; return 1; }
}

at_exit() { BENCH_AT_EXIT+=("$1"); }

bench_cleanup() {
	local c
	for c in "${BENCH_AT_EXIT[@]}"; do eval "$c" || true; done
	if [ -n "${KEEP:-}" ]; then echo "cluster kept: PGHOST=$WORK PGPORT=$PORT" >&2; return; fi
	"${AS[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

q() { "${AS[@]}" "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d bench "$@"; }
ms() {
	if [ "${1:0:1}" = - ]; then q -c '\timing on' "$@"; else q -c '\timing on' -c "$1"; fi |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
pgb() { "${AS[@]}" "$BINDIR/pgbench" -h "$WORK" -p "$PORT" "$@"; }
pgbench_tps() {
	local out=$1
	shift
	pgb "$@" bench > "$out" 2>&1 || { cat "$out" >&2; exit 1; }
	sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out"
}
median() {
	local fmt=%.2f
	case ${1:-} in
	-f) fmt=$2; shift 2 ;;
	-l) fmt=low; shift ;;
	esac
	if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cat; fi | sort -g | awk -v fmt="$fmt" '
		{ v[NR] = $1 }
		END {
			if (NR % 2) print v[(NR + 1) / 2]
			else if (fmt == "low") print v[NR / 2]
			else if (fmt == "") print (v[NR / 2] + v[NR / 2 + 1]) / 2
			else printf fmt "\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t == 0) print "n/a"; else printf "%.0f", n / (t / 1000) }'; }
cpu_model() { sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1; }
pg_version() { pg_config --version | awk '{ print $2 }'; }
bench_commit() {
	local h
	h=$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if ! git -C "$BENCH_REPO" diff --quiet HEAD -- extension sql services bench 2>/dev/null; then
		h="$h+changes"
	fi
	echo "$h"
}

machine() {
	local mem
	mem=$(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
	if [ "${1:-}" = --short ]; then
		echo "$(nproc) cores, $mem, $(cpu_model), PostgreSQL $(pg_version)"
	else
		echo "$(nproc) cores, $mem, $(cpu_model), $(uname -r), PostgreSQL $(pg_version)," \
			"load average $(cut -d' ' -f1-3 /proc/loadavg)"
	fi
}
log() { echo "[$BENCH_NAME bench $(date -u +%H:%M:%S) load $(cut -d" " -f1 /proc/loadavg)] $*" >&2; }
note_load() { loads+=("$1 $(cut -d" " -f1 /proc/loadavg)"); }
loads_line() { local IFS=';'; echo "${loads[*]}"; }
put_section() { "$BENCH_HERE/put_section.py" "$RESULTS" "$1"; }
