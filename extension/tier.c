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
 * fleet.time_partitions() reads the time range of each partition of a
 * table from its bound in the catalog (the node tree pg_get_expr would
 * deparse), without deparsing it to text and parsing that back: partition
 * maintenance, the tier steps and the status view all ask for it, the
 * maintenance once per table and run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <sys/resource.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_tier_background);
PG_FUNCTION_INFO_V1(fleet_time_partitions);

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

/*
 * One bound of a range partition as a time (UTC): a value of a timestamptz,
 * timestamp (read in UTC) or date (its midnight, UTC) key.  false for
 * MINVALUE, MAXVALUE and a key of any other type.
 */
static bool
bound_time(Node *node, TimestampTz *out)
{
	PartitionRangeDatum *d = castNode(PartitionRangeDatum, node);
	Const	   *c;

	if (d->kind != PARTITION_RANGE_DATUM_VALUE || !IsA(d->value, Const))
		return false;
	c = (Const *) d->value;
	if (c->constisnull)
		return false;
	switch (c->consttype)
	{
		case TIMESTAMPTZOID:
			*out = DatumGetTimestampTz(c->constvalue);
			return true;
		case TIMESTAMPOID:
			*out = (TimestampTz) DatumGetTimestamp(c->constvalue);
			return true;
		case DATEOID:
			*out = (TimestampTz) DatumGetTimestamp(DirectFunctionCall1(date_timestamp, c->constvalue));
			return true;
		default:
			return false;
	}
}

typedef struct TimePartition
{
	Oid			relid;
	TimestampTz lo;
	TimestampTz hi;
} TimePartition;

static int
time_partition_cmp(const void *a, const void *b)
{
	const TimePartition *x = a;
	const TimePartition *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return x->relid < y->relid ? -1 : (x->relid > y->relid ? 1 : 0);
}

/*
 * fleet.time_partitions(parent regclass) RETURNS TABLE (partition regclass,
 * lo timestamptz, hi timestamptz): the direct partitions of parent bounded
 * FROM (one time) TO (one time), ordered by lo.  A default partition, a
 * bound with MINVALUE or MAXVALUE, a key of more than one column or of
 * another type than timestamptz, timestamp or date has no row.  Reads
 * pg_inherits and pg_class like a query of them would, without locking the
 * parent or its partitions.
 */
Datum
fleet_time_partitions(PG_FUNCTION_ARGS)
{
	Oid			parent = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	inh;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	TimePartition *parts;
	int			n = 0;
	int			cap = 32;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	parts = palloc(cap * sizeof(TimePartition));

	inh = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_inherits_inhparent, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(parent));
	scan = systable_beginscan(inh, InheritsParentIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Oid			child = ((Form_pg_inherits) GETSTRUCT(tup))->inhrelid;
		HeapTuple	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(child));
		Datum		boundd;
		bool		isnull;
		PartitionBoundSpec *spec;
		TimestampTz lo;
		TimestampTz hi;

		if (!HeapTupleIsValid(ctup))
			continue;			/* dropped meanwhile */
		boundd = SysCacheGetAttr(RELOID, ctup, Anum_pg_class_relpartbound, &isnull);
		if (isnull)
		{
			ReleaseSysCache(ctup);
			continue;			/* an inheritance child, not a partition */
		}
		spec = (PartitionBoundSpec *) stringToNode(TextDatumGetCString(boundd));
		ReleaseSysCache(ctup);
		if (!IsA(spec, PartitionBoundSpec) || spec->is_default ||
			spec->strategy != PARTITION_STRATEGY_RANGE ||
			list_length(spec->lowerdatums) != 1 || list_length(spec->upperdatums) != 1 ||
			!bound_time(linitial(spec->lowerdatums), &lo) ||
			!bound_time(linitial(spec->upperdatums), &hi))
			continue;
		if (n == cap)
		{
			cap *= 2;
			parts = repalloc(parts, cap * sizeof(TimePartition));
		}
		parts[n].relid = child;
		parts[n].lo = lo;
		parts[n].hi = hi;
		n++;
	}
	systable_endscan(scan);
	table_close(inh, AccessShareLock);

	qsort(parts, n, sizeof(TimePartition), time_partition_cmp);
	for (i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = ObjectIdGetDatum(parts[i].relid);
		values[1] = TimestampTzGetDatum(parts[i].lo);
		values[2] = TimestampTzGetDatum(parts[i].hi);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
