# fleet: PGXS build of the extension, plus the test, run and bench drivers.
#
#   make            build the extension module
#   make install    install it into the PostgreSQL found by $(PG_CONFIG)
#   make test       build, install, then every test layer (regress, isolation, TAP, services),
#                   regress and isolation also under a faked clock just before UTC midnight
#                   and at a DST change
#   make test-clock the regress, isolation and date-dependent TAP tests at every faked instant
#   make run        a local cluster under ./var with fleet, its workers and the services
#   make bench      benchmarks, written to bench/results.md
#   make soak       the fault scenarios (test/tap/2xx) run longer; figures into docs/RELIABILITY.md;
#                   then make sync-chaos
#   make sync-chaos the offline-sync chaos test with 100 interleavings (make test runs 20)

EXTENSION  = fleet
EXTVERSION = 0.1
MODULE_big = fleet
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard extension/*.c)))

# The install script is assembled from sql/parts/*.sql (one file per concern,
# applied in name order).  Once a version is released its assembled script is
# frozen and committed as sql/fleet--X.Y.sql; changes then go into
# sql/fleet--X.Y--X.Z.sql upgrade scripts, which are installed as they are.
SQL_PARTS  = $(sort $(wildcard sql/parts/*.sql))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA       = $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/extension -I$(shell $(PG_CONFIG) --includedir)
PG_CFLAGS   = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
SHLIB_LINK  = -lz

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every module includes fleet.h: a change there rebuilds them all (PGXS
# tracks no header dependencies; a stale object would link and fail on load)
$(OBJS) $(OBJS:.o=.bc): extension/fleet.h

PG_BINDIR := $(shell $(PG_CONFIG) --bindir)
PG_PKGLIB := $(shell $(PG_CONFIG) --pkglibdir)
PGXS_DIR  := $(dir $(PGXS))..
PG_REGRESS_BIN   := $(PGXS_DIR)/test/regress/pg_regress
PG_ISOLATION_BIN := $(PGXS_DIR)/test/isolation/pg_isolation_regress

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	@{ echo '-- generated from sql/parts/*.sql by make; edit the parts, not this file'; \
	   printf '%s\n' '\echo Use "CREATE EXTENSION fleet CASCADE" to load this file. \quit'; \
	   for f in $(SQL_PARTS); do echo; echo "-- ==== $$f"; cat $$f; done; } > $@

.PHONY: test-lint
# SQL text in the C files names every type and relation with its schema
# (test/lint/owner_sql.pl); its negative control must report all 5 findings
test-lint:
	perl test/lint/owner_sql.pl
	@n=$$(perl test/lint/owner_sql.pl test/lint/owner_sql_bad.c.txt | wc -l); \
	  if [ "$$n" -ne 5 ]; then echo "owner_sql.pl found $$n of the 5 planted findings"; exit 1; fi

.PHONY: test test-regress test-isolation test-tap test-services services run bench fuzz soak sync-chaos reliability-table

REGRESS_TESTS   = $(shell sed -n 's/^test: *//p' test/regress/schedule)
ISOLATION_TESTS = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))

# Each layer gets its own throwaway cluster on a free port (pg_regress picks
# one) under tmp_check/.  PostgreSQL refuses to run as root, so as root the
# test programs run as the "postgres" user (created by the postgresql
# package), writing only inside tmp_check/.
TESTOUT := $(CURDIR)/tmp_check
ifeq ($(shell id -u),0)
AS_TESTUSER := runuser -u postgres --
else
AS_TESTUSER :=
endif

define testdir
	rm -rf $(TESTOUT)/$(1) && mkdir -p $(TESTOUT)/$(1)
	if [ "$$(id -u)" = 0 ]; then chown -R postgres $(TESTOUT); fi
endef

test: all
	$(MAKE) test-lint
	$(MAKE) install
	$(MAKE) services
	$(MAKE) test-regress
	$(MAKE) test-isolation
	$(MAKE) test-clock-run CLOCK=before-midnight CLOCK_LAYERS='regress isolation'
	$(MAKE) test-clock-run CLOCK=berlin-spring CLOCK_LAYERS='regress isolation'
	$(MAKE) test-services
	$(MAKE) test-tap
	@echo "fleet: all test layers passed"

test-regress:
	$(call testdir,regress)
	$(AS_TESTUSER) $(PG_REGRESS_BIN) --bindir=$(PG_BINDIR) --temp-instance=$(TESTOUT)/regress/instance \
	  --temp-config=test/fleet_test.conf --dbname=fleet_test \
	  --inputdir=test/regress --outputdir=$(TESTOUT)/regress \
	  --schedule=test/regress/schedule \
	  || { cat $(TESTOUT)/regress/regression.diffs 2>/dev/null | head -300; exit 1; }

test-isolation:
	$(call testdir,isolation)
	$(AS_TESTUSER) $(PG_ISOLATION_BIN) --bindir=$(PG_BINDIR) --temp-instance=$(TESTOUT)/isolation/instance \
	  --temp-config=test/fleet_test.conf --dbname=fleet_test \
	  --load-extension=pgcrypto --load-extension=pg_cron --load-extension=fleet \
	  --inputdir=test/isolation --outputdir=$(TESTOUT)/isolation \
	  $(ISOLATION_TESTS) \
	  || { cat $(TESTOUT)/isolation/regression.diffs 2>/dev/null | head -300; exit 1; }

# Clock-proof runs: the regress and isolation suites and the date-dependent
# TAP tests under a faked clock (libfaketime preloaded into the test
# postmaster, its workers and the clients), started at instants where naive
# time code breaks.  CLOCK_<name> is "<instant, UTC>|<time zone of the
# cluster and the TAP clients>".  Each layer starts at the instant (a
# constant offset from the real clock, so time runs at its real pace) and
# writes under $(TESTOUT)/clock/<name>.  Instants 5 s before a boundary put
# it inside a layer's run: UTC midnight (Sunday to Monday, an ISO week too),
# 29 February 2028 to 1 March, 31 December to 1 January, and the DST changes
# of Europe/Berlin (02:00 CET -> 03:00 CEST, 03:00 CEST -> 02:00 CET) and
# America/New_York (02:00 EST -> 03:00 EDT, 02:00 EDT -> 01:00 EST); midnight
# starts on it, month-end half an hour before April turns to May.  test/clock/realwait.c is preloaded
# ahead of libfaketime so that signal handlers, and the processes the
# postmaster forks from them, see the faked clock too.  make test runs the
# first two; make test-clock runs every instant and one real run.
FAKETIME_LIB ?= /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
CLOCK_before-midnight  = 2027-05-16 23:59:55|UTC
CLOCK_berlin-spring    = 2027-03-28 00:59:55|Europe/Berlin
CLOCK_midnight         = 2027-05-18 00:00:00|UTC
CLOCK_month-end        = 2027-04-30 23:30:00|UTC
CLOCK_leap-day         = 2028-02-29 23:59:55|UTC
CLOCK_new-year         = 2027-12-31 23:59:55|UTC
CLOCK_berlin-fall      = 2027-10-31 00:59:55|Europe/Berlin
CLOCK_new-york-spring  = 2027-03-14 06:59:55|America/New_York
CLOCK_new-york-fall    = 2027-11-07 05:59:55|America/New_York
CLOCKS       = before-midnight berlin-spring midnight month-end leap-day new-year berlin-fall new-york-spring new-york-fall
CLOCK_LAYERS ?= regress isolation tap
CLOCK_TAP_TESTS = $(CURDIR)/test/tap/101_ingest_crash.pl $(CURDIR)/test/tap/081_tier_kill.pl
REALWAIT = $(TESTOUT)/clock/realwait.so

.PHONY: test-clock test-clock-run
$(REALWAIT): test/clock/realwait.c
	mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

test-clock-run: $(REALWAIT)
	@spec='$(CLOCK_$(CLOCK))'; at="$${spec%|*}"; zone="$${spec#*|}"; \
	  if [ -z "$$spec" ]; then echo "unknown CLOCK '$(CLOCK)' (one of: $(CLOCKS))"; exit 2; fi; \
	  if [ ! -r $(FAKETIME_LIB) ]; then echo "$(FAKETIME_LIB) missing: install libfaketime"; exit 2; fi; \
	  for layer in $(CLOCK_LAYERS); do \
	    off=$$(( $$(date -u -d "$$at UTC" +%s) - $$(date -u +%s) )); \
	    echo "fleet: clock $(CLOCK): $$layer from $$at UTC ($$(TZ=$$zone date -d "$$at UTC" '+%F %T %Z'))"; \
	    $(MAKE) --no-print-directory test-$$layer TESTOUT=$(TESTOUT)/clock/$(CLOCK) TAP_TESTS='$(CLOCK_TAP_TESTS)' \
	      AS_TESTUSER="$(AS_TESTUSER) env LD_PRELOAD=$(REALWAIT):$(FAKETIME_LIB) FAKETIME=$$(printf '%+d' $$off) FAKETIME_DONT_FAKE_MONOTONIC=1 TZ=$$zone" \
	      || { echo "fleet: clock $(CLOCK): $$layer FAILED"; exit 1; }; \
	  done

test-clock: all
	$(MAKE) install
	@failed=""; \
	  for layer in regress isolation; do \
	    $(MAKE) --no-print-directory test-$$layer TESTOUT=$(TESTOUT)/clock/real || failed="$$failed real"; \
	  done; \
	  $(MAKE) --no-print-directory test-tap TESTOUT=$(TESTOUT)/clock/real TAP_TESTS='$(CLOCK_TAP_TESTS)' || failed="$$failed real"; \
	  for c in $(CLOCKS); do $(MAKE) --no-print-directory test-clock-run CLOCK=$$c || failed="$$failed $$c"; done; \
	  if [ -n "$$failed" ]; then echo "fleet: clock runs failed:$$failed"; exit 1; fi; \
	  echo "fleet: every clock run passed (real, $(CLOCKS))"

# The disk-full scenario (test/tap/203) needs a small size-limited file
# system: as root a tmpfs (SMALLFS_SIZE) is mounted at tmp_check/smallfs for
# the TAP run and unmounted after it (elsewhere that part of 203 skips, saying
# so).  It must hold today's position partitions, which 203 moves there after
# its earlier phases: 48 MiB does for make test, make soak stores ~8x more.
# The scenario then fills what is left with a file, whatever the size.
# TAP_TESTS picks scripts; FLEET_SOAK=1 makes the 2xx scenarios run longer.
SMALLFS   := $(TESTOUT)/smallfs
TAP_TESTS ?= $(CURDIR)/test/tap/*.pl
SMALLFS_SIZE ?= 48m
test-tap:
	$(call testdir,tap)
	if mountpoint -q $(SMALLFS); then umount $(SMALLFS); fi; mkdir -p $(SMALLFS)
	if [ "$$(id -u)" = 0 ]; then mount -t tmpfs -o size=$(SMALLFS_SIZE),mode=1777 fleet-smallfs $(SMALLFS) || true; fi
	status=0; cd $(TESTOUT)/tap && $(AS_TESTUSER) env TESTDIR=$(TESTOUT)/tap PATH="$(PG_BINDIR):$$PATH" \
	  PG_REGRESS=$(PG_REGRESS_BIN) FLEET_REPO=$(CURDIR) FLEET_SOAK=$(FLEET_SOAK) \
	  FLEET_SMALLFS=$$(mountpoint -q $(SMALLFS) && echo $(SMALLFS)) \
	  prove -I $(PGXS_DIR)/test/perl -I $(CURDIR)/test/tap $(PROVE_FLAGS) $(TAP_TESTS) || status=$$?; \
	  if mountpoint -q $(SMALLFS); then umount $(SMALLFS); fi; exit $$status

# The fault scenarios (test/tap/2xx) run longer and harder, then their
# figures are rendered into docs/RELIABILITY.md.
soak: all
	$(MAKE) install
	$(MAKE) services
	$(MAKE) test-tap FLEET_SOAK=1 SMALLFS_SIZE=768m TAP_TESTS='$(CURDIR)/test/tap/2*.pl'
	$(MAKE) reliability-table
	$(MAKE) sync-chaos TESTOUT=$(TESTOUT)/sync-chaos

# The sync chaos test (test/tap/50_sync_chaos.pl) with more seeds and
# interleavings than make test's 4 x 5: by default 10 seeds x 10 runs.
CHAOS_SEEDS  ?= 11,12,13,14,15,16,17,18,19,20
CHAOS_REPEAT ?= 10
sync-chaos: all
	$(MAKE) install
	SYNC_CHAOS_SEEDS=$(CHAOS_SEEDS) SYNC_CHAOS_REPEAT=$(CHAOS_REPEAT) \
	  $(MAKE) test-tap TAP_TESTS='$(CURDIR)/test/tap/50_sync_chaos.pl'

# docs/RELIABILITY.md's table from the last TAP run's figures
reliability-table:
	perl scripts/reliability-table.pl $(TESTOUT)/tap/reliability.tsv docs/RELIABILITY.md

services:
	$(MAKE) -C services all

# the services' unit tests (no database) and a short fuzz run of every parser
FUZZ_SHORT_SECONDS ?= 10
test-services:
	$(MAKE) -C services check
	$(MAKE) -C services fuzz-short FUZZ_SHORT_SECONDS=$(FUZZ_SHORT_SECONDS)

fuzz:
	$(MAKE) -C services fuzz

run: all
	$(MAKE) install
	$(MAKE) services
	./scripts/run.sh

bench: all
	$(MAKE) install
	./bench/run.sh
