#!/bin/bash
# bench/run.sh: every fleet benchmark, one after the other (make bench).
#
# Each script starts its own throwaway cluster on a free port, measures its
# figures as ratios against a baseline taken in the same run (COPY, plain
# INSERT, REFRESH MATERIALIZED VIEW, direct libpq calls...) and writes its
# own "## <area>" section of bench/results.md, noting the machine.  The
# machine is small and shared, so the figures are reports, never test
# thresholds.
#
#   make bench                     # all of them
#   BENCH_ONLY="ingest views" make bench
#   QUICK=1 make bench             # smaller sizes for every script, for a smoke
#                                  # run (below; a variable already set wins)
set -uo pipefail

. "$(dirname "$0")/lib.sh"
export RESULTS

if [ -n "${QUICK:-}" ]; then
	export HOLD_SECONDS=${HOLD_SECONDS:-10} DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-1} IDLE=${IDLE:-1000} \
		SOURCE_ROWS=${SOURCE_ROWS:-500000} VEHICLES=${VEHICLES:-1000} SOAK_SECONDS=${SOAK_SECONDS:-30} \
		POSITIONS=${POSITIONS:-1000000} EVENTS=${EVENTS:-20000} INGEST_SECONDS=${INGEST_SECONDS:-10} \
		SMALL_VEHICLES=${SMALL_VEHICLES:-10} BIG_VEHICLES=${BIG_VEHICLES:-60} PAGES=${PAGES:-10} \
		PUSH_RUNS=${PUSH_RUNS:-1} SCALE_DRIVERS=${SCALE_DRIVERS:-20} \
		IVM_FIXES=${IVM_FIXES:-20000} QUEUE_EVENTS=${QUEUE_EVENTS:-20000}
fi

# area name -> how to run it; scripts that print their section get it stored
# by put_section.py, the others write bench/results.md themselves.
declare -a AREAS=(ingest gateway views local_days offline_sync tiering partman sync metrics peers_ivm peers_queue)
ONLY=${BENCH_ONLY:-${AREAS[*]}}
failed=()
make -C "$BENCH_REPO/services" all >/dev/null

for area in $ONLY; do
	script=$BENCH_HERE/$area.sh
	if [ ! -x "$script" ]; then
		echo "bench: no $script, skipped" >&2
		continue
	fi
	echo "== bench $area ($(date -u +%H:%M:%SZ); $(machine))"
	case $area in
	ingest)
		if out=$("$script"); then
			printf '%s\n\nMachine: %s. Commit: %s.\n' "$out" "$(machine)" \
				"$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" | put_section "Ingest and pipeline (issue 3)"
			echo "$out"
		else
			failed+=("$area")
		fi
		;;
	*)
		"$script" || failed+=("$area")
		;;
	esac
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "bench: failed: ${failed[*]}" >&2
	exit 1
fi
echo "bench: results in $RESULTS"
