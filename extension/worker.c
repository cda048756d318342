/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  fleet's pipeline background workers: one per event class.
 *
 * Each class (financial, audit, operational, telemetry) has its own worker
 * process, so a telemetry flood never delays a financial or audit event:
 * the classes are consumed in parallel, each with its own cursor row.  A
 * worker connects to the database named by fleet.database, and in a loop
 * runs one consumer pass (pipeline.c) per transaction; after a pass that
 * found work it goes again at once, otherwise it sleeps fleet.pipeline_naptime.
 * While fleet is not installed in that database, or fleet.pipeline_enabled
 * is off, the worker only sleeps.  A worker that fails (for instance while
 * fleet is being dropped) exits and is restarted by the postmaster after
 * FLEET_WORKER_RESTART seconds; the failed pass rolled back, so nothing is
 * lost or applied twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "fleet.h"

#define FLEET_WORKER_RESTART	10

PGDLLEXPORT void fleet_pipeline_main(Datum main_arg);

static char *fleet_database = NULL;		/* fleet.database */
static bool fleet_pipeline_enabled = true;	/* fleet.pipeline_enabled */
static int	fleet_pipeline_naptime = 250;	/* fleet.pipeline_naptime, ms */
static int	fleet_replay_window = 86400;	/* fleet.replay_window, s */
static int	fleet_telemetry_nice = 5;	/* fleet.pipeline_telemetry_nice */

static bool run_pass(const char *class_name);

/*
 * Define the pipeline settings (workers, replay window) and register one
 * worker per class.
 */
void
FleetPipelineInit(void)
{
	int			c;

	DefineCustomStringVariable("fleet.database",
							   gettext_noop("Database whose fleet event pipeline the background workers run."),
							   NULL,
							   &fleet_database,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("fleet.pipeline_enabled",
							 gettext_noop("Whether fleet's pipeline workers consume events."),
							 gettext_noop("When off, events wait in the log; fleet.process_pending() still works."),
							 &fleet_pipeline_enabled,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("fleet.pipeline_naptime",
							gettext_noop("How long a pipeline worker sleeps after a pass that found nothing to do."),
							NULL,
							&fleet_pipeline_naptime,
							250, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("fleet.replay_window",
							gettext_noop("Default time range of fleet.replay(), and the least time idempotency keys and log partitions are kept."),
							NULL,
							&fleet_replay_window,
							86400, 3600, 366 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("fleet.pipeline_telemetry_nice",
							gettext_noop("CPU scheduling niceness of the telemetry class's pipeline worker."),
							gettext_noop("A telemetry flood then yields the CPU to the financial, audit and operational workers."),
							&fleet_telemetry_nice,
							5, 0, 19,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	for (c = 0; c < FleetClassCount(); c++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = FLEET_WORKER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "fleet");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "fleet_pipeline_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "fleet pipeline %s", FleetClassName(c));
		snprintf(worker.bgw_type, BGW_MAXLEN, "fleet pipeline");
		worker.bgw_main_arg = Int32GetDatum(c);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * One pass in its own transaction; true if it found work.
 */
static bool
run_pass(const char *class_name)
{
	int			applied = 0;
	int			failed = 0;
	int			dead = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "fleet pipeline pass");
	if (OidIsValid(get_extension_oid("fleet", true)))
		FleetProcessClass(class_name, 0, &applied, &failed, &dead);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (dead > 0)
		ereport(LOG,
				(errmsg("fleet pipeline %s: %d event(s) moved to dead letters", class_name, dead)));
	return applied + failed > 0;
}

/*
 * Main loop of a pipeline worker; main_arg is the class number.
 */
void
fleet_pipeline_main(Datum main_arg)
{
	int			c = DatumGetInt32(main_arg);
	const char *class_name = FleetClassName(c);
	char		appname[64];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(fleet_database, NULL, 0);
	/* the worker runs as a superuser: names resolve in pg_catalog, then
	 * pg_temp, never in a schema another role can create objects in */
	SetConfigOption("search_path", FLEET_PINNED_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION);
	snprintf(appname, sizeof(appname), "fleet pipeline %s", class_name);
	pgstat_report_appname(appname);

	/*
	 * The telemetry class carries the floods (vehicle state reports by the
	 * thousand); at a lower CPU priority its worker leaves the cores to the
	 * other classes first, so a flood costs a financial event little
	 * latency on a saturated machine.  It holds no lock another class's
	 * handlers wait for (each class has its own cursor, and the built-in
	 * telemetry handlers write only vehicle state), so it does not hold back
	 * another class; a user handler of the telemetry class that shares locks
	 * with other classes can set fleet.pipeline_telemetry_nice to 0.
	 */
	if (strcmp(class_name, "telemetry") == 0 && fleet_telemetry_nice > 0)
	{
		errno = 0;
		if (nice(fleet_telemetry_nice) == -1 && errno != 0)
			ereport(LOG,
					(errmsg("fleet pipeline telemetry worker could not lower its CPU priority: %m")));
	}

	for (;;)
	{
		bool		busy = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (fleet_pipeline_enabled)
			busy = run_pass(class_name);
		if (!busy)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 fleet_pipeline_naptime, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
