/*-------------------------------------------------------------------------
 *
 * local_day.c
 *	  fleet.local_day(tenant_id, at): the tenant's calendar day of an instant.
 *
 * Daily read models cut days at the tenant's local midnight (fleet.tenant.
 * timezone), so a day of a tenant in a zone with daylight saving time has
 * 23 or 25 hours.  The function is called once per source row by the
 * capture triggers and builds of those models, so it must cost about what
 * "(at AT TIME ZONE 'UTC')::date" costs: the tenant's zone is read once per
 * tenant per call site (kept in fn_extra, which lives as long as the
 * statement's plan state), and the zone is resolved to PostgreSQL's pg_tz
 * once, not parsed on every row.
 *
 * The tenant row is read by an index scan of fleet.tenant's primary key
 * under the statement's snapshot, not through SQL: the models are built by
 * the extension owner across tenants, and the lookup must not depend on
 * row-level security or on the caller's search_path.  EXECUTE on the
 * function is not granted to any fleet role (it would tell any tenant's
 * zone); readers see its results in the models.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_local_day);

/*
 * The zones of the tenants seen by one call site: direct-mapped by the low
 * bits of the tenant id (ids are an identity sequence, so up to 256 tenants
 * each keep their own slot; more share slots and are looked up again).
 */
#define LOCAL_DAY_SLOTS 256
typedef struct LocalDayCache
{
	int64		tenant_id[LOCAL_DAY_SLOTS];
	pg_tz	   *zone[LOCAL_DAY_SLOTS];	/* NULL: slot empty */
} LocalDayCache;

/* The time zone of a tenant, resolved; errors if the tenant is unknown. */
static pg_tz *
tenant_zone(int64 tenant_id)
{
	Oid			nsp = get_namespace_oid("fleet", false);
	Oid			relid = get_relname_relid("tenant", nsp);
	Oid			indid = get_relname_relid("tenant_pkey", nsp);
	Relation	rel;
	AttrNumber	att_id;
	AttrNumber	att_zone;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *name = NULL;
	pg_tz	   *zone;

	if (!OidIsValid(relid) || !OidIsValid(indid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("fleet.tenant or its primary key is missing")));
	att_id = get_attnum(relid, "tenant_id");
	att_zone = get_attnum(relid, "timezone");
	if (att_id == InvalidAttrNumber || att_zone == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("fleet.tenant has no tenant_id or timezone column")));

	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(tenant_id));
	scan = systable_beginscan(rel, indid, true,
							  ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(),
							  1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, att_zone, RelationGetDescr(rel), &isnull);

		if (!isnull)
			name = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("tenant %lld does not exist", (long long) tenant_id),
				 errdetail("fleet.local_day() cuts days in the time zone of the row's tenant.")));
	zone = pg_tzset(name);
	if (zone == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant %lld has an unknown time zone \"%s\"", (long long) tenant_id, name),
				 errhint("Set fleet.tenant.timezone to a name from pg_timezone_names.")));
	pfree(name);
	return zone;
}

/*
 * fleet.local_day(tenant_id bigint, at timestamptz) RETURNS date
 *
 * STRICT: a NULL tenant or instant gives NULL (a model's key filter then
 * leaves the row out, as for any NULL key).  An infinite instant gives the
 * infinite date of the same sign.
 */
Datum
fleet_local_day(PG_FUNCTION_ARGS)
{
	int64		tenant_id = PG_GETARG_INT64(0);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	LocalDayCache *cache = (LocalDayCache *) fcinfo->flinfo->fn_extra;
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	DateADT		day;
	pg_tz	   *zone;
	int			slot;

	if (TIMESTAMP_IS_NOBEGIN(at))
	{
		DATE_NOBEGIN(day);
		PG_RETURN_DATEADT(day);
	}
	if (TIMESTAMP_IS_NOEND(at))
	{
		DATE_NOEND(day);
		PG_RETURN_DATEADT(day);
	}
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(LocalDayCache));
		fcinfo->flinfo->fn_extra = cache;
	}
	slot = (int) ((uint64) tenant_id % LOCAL_DAY_SLOTS);
	if (cache->zone[slot] != NULL && cache->tenant_id[slot] == tenant_id)
		zone = cache->zone[slot];
	else
	{
		zone = tenant_zone(tenant_id);
		cache->tenant_id[slot] = tenant_id;
		cache->zone[slot] = zone;
	}
	if (timestamp2tm(at, &tz, &tm, &fsec, NULL, zone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	PG_RETURN_DATEADT(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) - POSTGRES_EPOCH_JDATE);
}
