/*-------------------------------------------------------------------------
 *
 * tier.c
 *	  Helpers of tier maintenance (sql/parts/72_tier_ops.sql, 74_tier_maint.sql).
 *
 * The heavy steps of a tier move -- copying a partition into its warm
 * shadow, packing a day into cold segments -- compete with live ingest for
 * the same two cores.  fleet.tier_background() lowers the CPU priority of
 * the backend running such a step to fleet.tier_nice (setpriority), so
 * ingest keeps its throughput while maintenance runs.  An unprivileged
 * process cannot raise its priority again, so the backend stays at that
 * niceness until it exits: pg_cron runs each maintenance call in a
 * connection of its own.  The swap, which holds the parent's lock, is
 * short and not CPU-bound.  fleet.tier_duty bounds the share of time the
 * warm copy runs (extension/warm_fill.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <sys/resource.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_tier_background);

static int	fleet_tier_nice = 10;
double		fleet_tier_duty = 1.0;

/*
 * Register fleet.tier_nice and fleet.tier_duty.
 */
void
FleetTierInit(void)
{
	DefineCustomIntVariable("fleet.tier_nice",
							"CPU niceness of a backend while it copies or packs a partition for tier maintenance.",
							"0 leaves the priority alone; 1 to 19 lowers it so that live ingest keeps its share.",
							&fleet_tier_nice,
							10, 0, 19,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomRealVariable("fleet.tier_duty",
							 "Share of the time the warm copy of a partition may run (warm_fill.c sleeps the rest).",
							 "1 runs it flat out; fleet.tier_maintenance() sets its p_duty here for each step.",
							 &fleet_tier_duty,
							 1.0, 0.01, 1.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

/*
 * fleet.tier_background() RETURNS integer: lower this backend's CPU priority
 * to fleet.tier_nice (never raise it); returns the niceness now in force.
 */
Datum
fleet_tier_background(PG_FUNCTION_ARGS)
{
	int			current;

	errno = 0;
	current = getpriority(PRIO_PROCESS, 0);
	if (current == -1 && errno != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not read the backend's priority: %m")));
	if (fleet_tier_nice > current)
	{
		if (setpriority(PRIO_PROCESS, 0, fleet_tier_nice) != 0)
			ereport(WARNING,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not lower the backend's priority to %d: %m", fleet_tier_nice)));
		else
			current = fleet_tier_nice;
	}
	PG_RETURN_INT32(current);
}
