/*-------------------------------------------------------------------------
 *
 * fleet.c
 *	  Entry point of the fleet extension: module magic and _PG_init.
 *
 * fleet must be loaded through shared_preload_libraries: it defines
 * server-wide settings and (in later subsystems) background workers that
 * can only be registered while the postmaster starts.  _PG_init reads as the
 * table of contents of the extension: one Init call per subsystem, each in
 * its own file.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "fleet.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Register fleet's settings, hooks and workers.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("fleet can only be loaded via shared_preload_libraries"),
				 errhint("Add fleet to the shared_preload_libraries configuration variable in postgresql.conf and restart the server.")));

	FleetTenantInit();			/* fleet.tenant: per-session tenant context */
	FleetGuardInit();			/* utility hook: clean DROP EXTENSION, legal holds */
	FleetIngestInit();			/* fleet.future_margin etc.: ingest settings */
	FleetPipelineInit();		/* event pipeline: settings, one worker per class */

	FleetViewsInit();			/* fleet views: settings, the refresh worker */
	FleetTierInit();			/* tiering: fleet.tier_nice for maintenance */
	FleetTierGuardInit();		/* legal hold: object access hook on column drops */

	MarkGUCPrefixReserved("fleet");
}
