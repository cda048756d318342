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
 * statement's plan state), resolved to PostgreSQL's pg_tz once, and the
 * span between two of the zone's transitions around the first instant is
 * kept too: inside it the local day is an addition and a division, no
 * calendar computation (a named zone's localtime costs about 1.5 us).
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
typedef struct LocalDaySlot
{
	int64		tenant_id;
	pg_tz	   *zone;			/* NULL: slot empty */
	bool		have_range;
	TimestampTz lo;				/* the zone's UTC offset is gmtoff on [lo, hi) */
	TimestampTz hi;
	int32		gmtoff;			/* seconds east of UTC */
} LocalDaySlot;

typedef struct LocalDayCache
{
	LocalDaySlot slot[LOCAL_DAY_SLOTS];
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
 * The zone's UTC offset at "at" and the span around it, between two of the
 * zone's transitions, over which that offset holds: every instant of the
 * span then has its local day by one addition and one division.  The
 * offset comes from timestamp2tm() for "at" itself; the span's ends from
 * pg_next_dst_boundary() (transitions fall on whole seconds).
 */
static void
offset_span(LocalDaySlot *s, TimestampTz at)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	pg_time_t	t;
	pg_time_t	from;
	pg_time_t	b;
	long int	before_gmtoff;
	long int	after_gmtoff;
	int			before_isdst;
	int			after_isdst;
	int			i;

	if (timestamp2tm(at, &tz, &tm, &fsec, NULL, s->zone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	s->gmtoff = -tz;

	/* whole seconds since 1970, rounded down (also before 1970) */
	t = (pg_time_t) (at / USECS_PER_SEC)
		+ (pg_time_t) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	if (at % USECS_PER_SEC < 0)
		t--;

	/* the first transition after t (0: none, the offset holds from now on) */
	switch (pg_next_dst_boundary(&t, &before_gmtoff, &before_isdst, &b,
								 &after_gmtoff, &after_isdst, s->zone))
	{
		case 0:
			s->hi = DT_NOEND;
			break;
		case 1:
			s->hi = b > t ? time_t_to_timestamptz(b) : at + 1;
			break;
		default:
			s->hi = at + 1;		/* unknown: the span is "at" alone */
			break;
	}

	/* the last transition at or before t, looked for within a year */
	from = t - (pg_time_t) 370 * SECS_PER_DAY;
	s->lo = time_t_to_timestamptz(from);
	for (i = 0; i < 8; i++)
	{
		if (pg_next_dst_boundary(&from, &before_gmtoff, &before_isdst, &b,
								 &after_gmtoff, &after_isdst, s->zone) != 1 || b > t || b <= from)
			break;
		s->lo = time_t_to_timestamptz(b);
		from = b;
	}
	if (i == 8 || s->lo > at)
		s->lo = at;				/* many transitions: the span is "at" alone */
	if (s->hi <= at)
		s->hi = at + 1;
	s->have_range = true;
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
	LocalDaySlot *s;
	TimestampTz local;
	DateADT		day;

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
	s = &cache->slot[(uint64) tenant_id % LOCAL_DAY_SLOTS];
	if (s->zone == NULL || s->tenant_id != tenant_id)
	{
		s->zone = NULL;
		s->zone = tenant_zone(tenant_id);
		s->tenant_id = tenant_id;
		s->have_range = false;
	}
	if (!s->have_range || at < s->lo || at >= s->hi)
		offset_span(s, at);
	local = at + (TimestampTz) s->gmtoff * USECS_PER_SEC;
	day = (DateADT) (local / USECS_PER_DAY);
	if (local % USECS_PER_DAY < 0)
		day--;
	PG_RETURN_DATEADT(day);
}
