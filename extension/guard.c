/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  fleet's utility hook: what must happen around DDL on fleet itself.
 *
 * DROP EXTENSION fleet (or DROP SCHEMA fleet CASCADE) must remove everything
 * fleet created, including what lives outside the extension's membership:
 *	 - pg_cron jobs fleet scheduled (job names starting with "fleet.") are
 *	   unscheduled before the drop, so they do not fail every minute after;
 *	 - the schema "fleet", which CREATE EXTENSION creates from fleet.control
 *	   and therefore does not record as a member, is dropped afterwards when
 *	   nothing else is left in it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/extension.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "fleet.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void fleet_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
								 bool readOnlyTree, ProcessUtilityContext context,
								 ParamListInfo params, QueryEnvironment *queryEnv,
								 DestReceiver *dest, QueryCompletion *qc);

/*
 * Install the utility hook.
 */
void
FleetGuardInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = fleet_ProcessUtility;
}

/*
 * Does this DROP statement name fleet's extension or schema?
 */
static bool
drops_fleet(Node *parsetree)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION && stmt->removeType != OBJECT_SCHEMA)
		return false;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);

		if (IsA(obj, String) && strcmp(strVal(obj), "fleet") == 0)
			return true;
	}
	return false;
}

/*
 * Unschedule fleet's pg_cron jobs in this database.
 */
static void
unschedule_cron_jobs(void)
{
	if (!OidIsValid(get_extension_oid("pg_cron", true)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_execute("SELECT cron.unschedule(j.jobid) FROM cron.job j"
				" WHERE j.jobname OPERATOR(pg_catalog.~~) 'fleet.%'"
				" AND j.database OPERATOR(pg_catalog.=) pg_catalog.current_database()",
				false, 0);
	SPI_finish();
}

/*
 * Drop schema fleet if DROP EXTENSION left it behind empty.
 */
static void
drop_empty_schema(void)
{
	CommandCounterIncrement();
	if (!OidIsValid(get_namespace_oid("fleet", true)) ||
		OidIsValid(get_extension_oid("fleet", true)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	SPI_execute("SELECT 1 FROM pg_catalog.pg_depend d"
				" WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass"
				" AND d.refobjid OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace",
				false, 1);
	if (SPI_processed == 0)
		SPI_execute("DROP SCHEMA fleet", false, 0);
	else
		ereport(NOTICE,
				(errmsg("schema \"fleet\" is kept because objects not created by fleet remain in it")));
	SPI_finish();
}

/*
 * The hook itself: act before and after DROP of fleet, pass everything on.
 */
static void
fleet_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	bool		dropping = drops_fleet(pstmt->utilityStmt) &&
		OidIsValid(get_extension_oid("fleet", true));

	FleetTierGuard(pstmt->utilityStmt);	/* legal hold: tier_guard.c */

	if (dropping)
		unschedule_cron_jobs();

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (dropping)
		drop_empty_schema();
}
