#!/bin/bash
# bench/partman.sh: fleet's partition maintenance vs pg_partman's on the
# same kind of table (issue 6, report only), one throwaway cluster (KEEP=1 keeps it):
#
#   two copies of fleet.position's shape (daily RANGE partitions on
#   fix_time, the same primary key), one registered with fleet
#   (fleet.partitioned_table, run by fleet.run_maintenance()), one with
#   pg_partman 4.x native partitioning (partman.create_parent,
#   partman.run_maintenance());
#   1. create DAYS_BACK days back and DAYS_AHEAD ahead from nothing;
#   2. a maintenance run with nothing to do;
#   3. after loading ROWS_PER_DAY fixes a day, a retention of KEEP days:
#      the run that drops the expired partitions.
#
# Needs Debian's postgresql-15-partman (installed by .ci/run); without it
# the section says so.  Writes the section "## tiering vs pg_partman".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DAYS_BACK=${DAYS_BACK:-60}
DAYS_AHEAD=${DAYS_AHEAD:-30}
KEEP_D=${KEEP_DAYS:-30}
ROWS_PER_DAY=${ROWS_PER_DAY:-5000}

if [ ! -f "$(pg_config --sharedir)/extension/pg_partman.control" ]; then
	printf '## tiering vs pg_partman\n\npg_partman (Debian postgresql-15-partman) is not installed in %s: not measured.\n' \
		"$(pg_config --sharedir)" | put_section "tiering vs pg_partman"
	exit 0
fi

COMMIT_MEASURED=$(bench_commit)	# before the run: the tree may change while it runs
bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off"
q <<SQL >/dev/null
CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
CREATE TABLE public.fl_pos (LIKE fleet.position INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (fix_time);
ALTER TABLE public.fl_pos ADD PRIMARY KEY (tenant_id, device_id, fix_time);
CREATE TABLE public.pm_pos (LIKE fleet.position INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (fix_time);
ALTER TABLE public.pm_pos ADD PRIMARY KEY (tenant_id, device_id, fix_time);
SQL
pm_version=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'")
today=$(q -c "SELECT (now() AT TIME ZONE 'UTC')::date")

# 1. create from nothing
q -c "INSERT INTO fleet.partitioned_table (relation, days_ahead, days_back, retention, description)
      VALUES ('public.fl_pos', $DAYS_AHEAD, $DAYS_BACK, NULL, 'bench copy of fleet.position')" >/dev/null
t_fl_create=$(ms "SELECT * FROM fleet.run_maintenance()")
t_pm_create=$(ms "SELECT partman.create_parent('public.pm_pos', 'fix_time', 'native', 'daily',
                  p_premake := $DAYS_AHEAD, p_start_partition := (date '$today' - $DAYS_BACK)::text)")
n_fl=$(q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.fl_pos'::regclass")
n_pm=$(q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.pm_pos'::regclass")
pm_default=$(q -c "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'public.pm_pos'::regclass AND c.relname LIKE '%default'")

# 2. nothing to do
t_fl_noop=$(ms "SELECT * FROM fleet.run_maintenance()")
t_pm_noop=$(ms "SELECT partman.run_maintenance('public.pm_pos')")

# 3. fixes in every past day, then a retention: the run that drops
q <<SQL >/dev/null
INSERT INTO public.fl_pos (tenant_id, device_id, fix_time, vehicle_id, lat, lon, speed)
SELECT 1, g % 200, (date '$today' - d)::timestamptz + (g * interval '86399 seconds') / $ROWS_PER_DAY, g % 200, 52.5, 13.4, 30
  FROM generate_series(0, $DAYS_BACK) d, generate_series(0, $ROWS_PER_DAY - 1) g;
INSERT INTO public.pm_pos SELECT * FROM public.fl_pos;
VACUUM ANALYZE public.fl_pos, public.pm_pos;
UPDATE fleet.partitioned_table SET retention = interval '$KEEP_D days' WHERE relation = 'public.fl_pos'::regclass;
UPDATE partman.part_config SET retention = '$KEEP_D days', retention_keep_table = false WHERE parent_table = 'public.pm_pos';
SQL
rows=$(q -c "SELECT count(*) FROM public.fl_pos")
t_fl_drop=$(ms "SELECT * FROM fleet.run_maintenance()")
t_pm_drop=$(ms "SELECT partman.run_maintenance('public.pm_pos')")
left_fl=$(q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.fl_pos'::regclass")
left_pm=$(q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.pm_pos'::regclass")
rows_fl=$(q -c "SELECT count(*) FROM public.fl_pos")
rows_pm=$(q -c "SELECT count(*) FROM public.pm_pos")

section=$(cat <<MD
## tiering vs pg_partman

Issue 6, \`bench/partman.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) at commit $COMMIT_MEASURED; $(machine); pg_partman $pm_version (Debian).
Two tables shaped like fleet.position (daily RANGE partitions on fix_time, same primary key), one
run by fleet.run_maintenance() (which also visits fleet's own tables, already up to date), one by
pg_partman's native mode. One measurement each: report only.

| step | fleet | pg_partman | fleet / partman time |
| --- | --- | --- | --- |
| create $DAYS_BACK days back and $DAYS_AHEAD ahead from nothing, ms | $t_fl_create ($n_fl partitions) | $t_pm_create ($n_pm partitions, $pm_default of them a default partition) | $(ratio "$t_fl_create" "$t_pm_create") |
| maintenance with nothing to do, ms | $t_fl_noop | $t_pm_noop | $(ratio "$t_fl_noop" "$t_pm_noop") |
| drop what is older than $KEEP_D days ($rows fixes loaded), ms | $t_fl_drop ($left_fl partitions, $rows_fl fixes left) | $t_pm_drop ($left_pm partitions, $rows_pm fixes left) | $(ratio "$t_fl_drop" "$t_pm_drop") |

Behaviour, not speed: pg_partman's native mode adds a default partition, so a row for a day without
partition lands there and later blocks creating that day's partition until it is moved out; fleet
has no default partition on its hot tables and quarantines such rows instead
(fleet.position_quarantine). fleet's expiry also skips partitions a legal hold covers.
MD
)
echo "$section"
echo "$section" | put_section "tiering vs pg_partman"
