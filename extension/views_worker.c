/*-------------------------------------------------------------------------
 *
 * views_worker.c
 *	  The fleet views worker: keeps every fleet view within its bound.
 *
 * One background worker connects to the database named by fleet.database.
 * Every fleet.views_naptime it asks fleet.views_due() (sql/parts/60_views.sql)
 * which views should be refreshed now: a view is due once its age reaches
 * half its max_staleness minus twice its last refresh duration, so the
 * schedule follows each view's bound and its measured refresh time, at a
 * granularity of the nap time (well below a second, where pg_cron offers a
 * minute).  Each due view is then refreshed by fleet.run_view_refresh() in
 * its own transaction: one slow or failing view never holds back the
 * others, a failure is recorded in fleet.view_registry.last_error, and a
 * view already being refreshed by someone else (fleet.ensure_fresh, a
 * manual fleet.refresh_view) is skipped rather than waited for.
 *
 * The worker runs at a lower CPU priority (fleet.views_worker_nice), so on
 * a saturated machine the writers keep their throughput and refreshes use
 * the idle time; if that is not enough to keep a bound, the view's
 * bound_misses says so.  While fleet is not installed in that database, or
 * fleet.views_enabled is off, the worker only sleeps.  It exits on error and is restarted by the
 * postmaster after FLEET_VIEWS_RESTART seconds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "fleet.h"

#define FLEET_VIEWS_RESTART		5
#define FLEET_VIEWS_MAX_BATCH	1000

PGDLLEXPORT void fleet_views_main(Datum main_arg);

static bool fleet_views_enabled = true;	/* fleet.views_enabled */
static int	fleet_views_naptime = 250;	/* fleet.views_naptime, ms */
static int	fleet_views_nice = 10;		/* fleet.views_worker_nice */
static int	fleet_utilization_gap_limit = 300;	/* fleet.utilization_gap_limit, s */

static int	due_views(Oid *out, int max);
static void refresh_one(Oid view);

/*
 * Define the views worker's settings and register it.
 */
void
FleetViewsInit(void)
{
	BackgroundWorker worker;

	DefineCustomBoolVariable("fleet.views_enabled",
							 gettext_noop("Whether the fleet views worker refreshes fleet views."),
							 gettext_noop("When off, views age until refreshed by hand (fleet.refresh_view, fleet.ensure_fresh)."),
							 &fleet_views_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("fleet.views_naptime",
							gettext_noop("How often the fleet views worker looks for views due for a refresh."),
							NULL,
							&fleet_views_naptime,
							250, 10, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("fleet.views_worker_nice",
							gettext_noop("CPU scheduling niceness of the fleet views worker process."),
							gettext_noop("A positive value lets ingest backends win the CPU when the machine is saturated; refreshes then use the idle time, and a bound that cannot be kept shows up as bound misses."),
							&fleet_views_nice,
							10, 0, 19,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	/*
	 * Read by the definition of fleet.vehicle_daily_utilization (SQL).  Not
	 * settable per session: the views worker and fleet.verify_view must
	 * recompute the view with the same limit.
	 */
	DefineCustomIntVariable("fleet.utilization_gap_limit",
							gettext_noop("Longest gap between two fixes of a vehicle that counts as moving or idle time in fleet.vehicle_daily_utilization."),
							gettext_noop("A longer gap is offline time and its distance is not counted as driven."),
							&fleet_utilization_gap_limit,
							300, 1, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = FLEET_VIEWS_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "fleet");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "fleet_views_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "fleet views");
	snprintf(worker.bgw_type, BGW_MAXLEN, "fleet views");
	RegisterBackgroundWorker(&worker);
}

/*
 * In its own transaction: the oids of the views due now, most urgent first.
 */
static int
due_views(Oid *out, int max)
{
	int			n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "fleet views: looking for due views");
	if (OidIsValid(get_extension_oid("fleet", true)))
	{
		uint64		i;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT v::pg_catalog.oid FROM fleet.views_due() v", true, max) != SPI_OK_SELECT)
			elog(ERROR, "fleet.views_due() failed");
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				out[n++] = DatumGetObjectId(d);
		}
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return n;
}

/*
 * In its own transaction: refresh one view (errors are caught and recorded
 * by fleet.run_view_refresh itself).
 */
static void
refresh_one(Oid view)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		args[1];

	args[0] = ObjectIdGetDatum(view);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "fleet views: refreshing a view");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT fleet.run_view_refresh($1)", 1, argtypes, args,
							  NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "fleet.run_view_refresh() failed");
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Main loop of the views worker.
 */
void
fleet_views_main(Datum main_arg)
{
	const char *dbname = GetConfigOption("fleet.database", false, false);
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	/* the worker runs as a superuser: names resolve in pg_catalog, then
	 * pg_temp, never in a schema another role can create objects in */
	SetConfigOption("search_path", FLEET_PINNED_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("fleet views");
	if (fleet_views_nice > 0)
	{
		errno = 0;
		if (nice(fleet_views_nice) == -1 && errno != 0)
			ereport(LOG,
					(errmsg("fleet views worker could not lower its CPU priority: %m")));
	}

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "fleet views loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (fleet_views_enabled)
		{
			MemoryContext old = MemoryContextSwitchTo(loop_cxt);
			Oid		   *due = palloc(sizeof(Oid) * FLEET_VIEWS_MAX_BATCH);
			int			n = due_views(due, FLEET_VIEWS_MAX_BATCH);
			int			i;

			for (i = 0; i < n; i++)
			{
				CHECK_FOR_INTERRUPTS();
				refresh_one(due[i]);
			}
			MemoryContextSwitchTo(old);
			MemoryContextReset(loop_cxt);
			pgstat_report_stat(false);
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 fleet_views_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
