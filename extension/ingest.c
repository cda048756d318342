/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  What the two ingest entry points (ingest_positions.c, ingest_events.c)
 *	  share: their settings, batch-argument checks, key locks and the switch
 *	  to the extension owner.
 *
 * Idempotency without ON CONFLICT.  Both entry points decide "new, duplicate
 * or conflict" by looking for the key first and then inserting the new rows
 * with a plain INSERT ... SELECT.  That is only correct if no concurrent
 * transaction can insert the same key between the look-up and the commit,
 * so every call first takes an exclusive transaction-level lock per key it
 * will write -- per device for positions (device ids are unique), per
 * 64-bit hash of (tenant, source, key) for events -- in ascending order, so
 * two calls never deadlock on them, and calls with disjoint keys never wait
 * for each other.  The locks are held until commit and released after the
 * commit is visible, and each SPI statement of the call takes a fresh
 * snapshot at READ COMMITTED, so a call that waited sees every key the
 * previous holder committed.  That is why both entry points refuse to run at
 * REPEATABLE READ or SERIALIZABLE, where the snapshot predates the wait.
 *
 * To keep the shared lock table bounded, every call also takes a "gate" lock
 * per entry point: in share mode when it locks its keys one by one, or, when
 * a batch has more than FLEET_MAX_KEY_LOCKS distinct keys, in exclusive mode
 * instead of any key lock (such a batch then runs alone, which for bulk
 * loads costs little).  The gate is always taken first.
 *
 * The locks are advisory locks in their own key space (locktag field4 is
 * one of the FLEET_LOCKSPACE_* values, which the SQL-level pg_advisory_*
 * functions never use), so they cannot collide with an application's
 * advisory locks; in pg_locks they are advisory locks with objsubid 3 to 6.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"

#include "fleet.h"

/* fleet.future_margin: how far (ms) a fix or event may lie in the future */
int			fleet_future_margin_ms = 5 * 60 * 1000;

/* fleet.ingest_max_batch: most elements one ingest call accepts */
int			fleet_ingest_max_batch = 100000;

static int	cmp_uint64(const void *a, const void *b);

/*
 * Define the ingest settings.
 */
void
FleetIngestInit(void)
{
	DefineCustomIntVariable("fleet.future_margin",
							gettext_noop("How far in the future a fix time or event time may lie before the row is rejected."),
							gettext_noop("Device clocks drift; anything later than now plus this margin is rejected as future_fix_time or future_occurred_at."),
							&fleet_future_margin_ms,
							5 * 60 * 1000, 0, 7 * 24 * 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("fleet.ingest_max_batch",
							gettext_noop("Most elements one call of fleet.ingest_positions() or fleet.ingest_events() accepts."),
							NULL,
							&fleet_ingest_max_batch,
							100000, 1, 10000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}

/*
 * Refuse to run an ingest call outside READ COMMITTED (see file header).
 */
void
FleetIngestCheckIsolation(const char *funcname)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s must run at isolation level READ COMMITTED", funcname),
				 errdetail("Duplicate detection needs a fresh snapshot after waiting for concurrent writers of the same keys."),
				 errhint("Call it outside an explicit transaction, or in one started with BEGIN ISOLATION LEVEL READ COMMITTED.")));
}

/*
 * Deconstruct one array argument of a batch call.  A NULL array is allowed
 * only for optional arguments and then reads as all-NULL.  Sets *n to the
 * length on the first array and checks the others against it.
 */
void
FleetBatchArg(FunctionCallInfo fcinfo, int argno, const char *argname,
			  Oid elemtype, bool required, int *n,
			  Datum **values, bool **nulls)
{
	ArrayType  *arr;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			count;

	if (PG_ARGISNULL(argno))
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" must not be null", argname)));
		*values = NULL;
		*nulls = NULL;
		return;
	}
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"%s\" must be a one-dimensional array", argname)));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign,
					  values, nulls, &count);
	if (*n < 0)
	{
		*n = count;
		if (count > fleet_ingest_max_batch)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("batch of %d elements exceeds fleet.ingest_max_batch (%d)",
							count, fleet_ingest_max_batch),
					 errhint("Split the batch into smaller calls.")));
	}
	else if (count != *n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"%s\" has %d elements, expected %d", argname, count, *n),
				 errdetail("Every array of a batch call has one element per row.")));
}

/*
 * qsort comparator for lock keys.
 */
static int
cmp_uint64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

/*
 * Take the locks guarding the keys a batch will write (see the file
 * header), held until the end of the transaction.  keys may contain
 * duplicates; the array is sorted in place.
 */
void
FleetLockKeys(uint16 lockspace, uint64 *keys, int n)
{
	LOCKTAG		tag;
	int			distinct = 0;
	int			i;

	qsort(keys, n, sizeof(uint64), cmp_uint64);
	for (i = 0; i < n; i++)
		if (i == 0 || keys[i] != keys[i - 1])
			distinct++;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, FLEET_LOCK_MAGIC, 0, lockspace + FLEET_LOCKSPACE_GATE);
	if (distinct > FLEET_MAX_KEY_LOCKS)
	{
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		return;
	}
	(void) LockAcquire(&tag, ShareLock, false, false);
	for (i = 0; i < n; i++)
	{
		if (i > 0 && keys[i] == keys[i - 1])
			continue;
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (keys[i] >> 32), (uint32) keys[i], lockspace);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
}

/*
 * Build a one-dimensional array from n Datums (nulls may be NULL).
 */
ArrayType *
FleetMakeArray(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1];

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	dims[0] = n;
	lbs[0] = 1;
	if (n == 0)
		return construct_empty_array(elemtype);
	return construct_md_array(values, nulls, 1, dims, lbs, elemtype,
							  typlen, typbyval, typalign);
}

/*
 * Room for ncols columns of nrows values each (see FleetColumns), in the
 * current memory context.
 */
void
FleetColumnsInit(FleetColumns *cs, int ncols, int nrows)
{
	int			k;

	Assert(ncols <= FLEET_COLUMNS_MAX);
	cs->ncols = ncols;
	for (k = 0; k < ncols; k++)
	{
		cs->v[k] = palloc0(sizeof(Datum) * Max(nrows, 1));
		cs->n[k] = palloc0(sizeof(bool) * Max(nrows, 1));
	}
}

/* args[k] = the first nrows values of column k, as an array of elemtypes[k] */
void
FleetColumnsArgs(const FleetColumns *cs, const Oid *elemtypes, int nrows, Datum *args)
{
	int			k;

	for (k = 0; k < cs->ncols; k++)
		args[k] = PointerGetDatum(FleetMakeArray(cs->v[k], cs->n[k], nrows, elemtypes[k]));
}

/*
 * Prepare a statement once per backend and keep its plan.
 *
 * FLEET_PLAN_GENERIC: the plan cache uses the generic plan from the first
 * execution on.  The hot per-call statements of the ingest and pipeline
 * paths are probes by key and inserts from arrays, whose best plan does not
 * depend on the parameter values (partitions are pruned at executor start
 * either way); left to itself the plan cache keeps choosing custom plans
 * for statements over partitioned tables and replans them on every call,
 * which measured as 40% of a single-event ingest.
 *
 * FLEET_PLAN_CUSTOM: planned for every call with its values and the
 * current statistics, never a generic plan.  For a statement over a whole
 * batch (10,000 rows) whose best plan depends on how full today's partition
 * is: a generic plan made while it was empty reads it by sequential scan.
 *
 * FLEET_PLAN_AUTO: the plan cache's own choice.
 */
SPIPlanPtr
FleetKeepPlan(const char *sql, int nargs, Oid *argtypes, int mode)
{
	SPIPlanPtr	plan;
	int			opts = mode == FLEET_PLAN_GENERIC ? CURSOR_OPT_GENERIC_PLAN :
		mode == FLEET_PLAN_CUSTOM ? CURSOR_OPT_CUSTOM_PLAN : 0;

	plan = SPI_prepare_cursor(sql, nargs, argtypes, opts);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * Batch inserts take their rows as one array of a composite type: INSERT
 * ... SELECT FROM ROWS FROM (one unnest() per column) makes the executor
 * materialize one single-column result set per column and put each row
 * together from them, about a fifth of a positions batch's time.  The
 * argument's type is an OID known only at run time, so these statements
 * are prepared here rather than from a spec table, and again when the type
 * is not the one they were prepared for (the extension dropped and created
 * again in this backend: regress 99_reinstall).  Must run inside
 * SPI_connect(); returns the row type's descriptor, for heap_form_tuple.
 */
TupleDesc
FleetRowsPrepare(FleetRowsPlan *rp)
{
	Oid			rowtype = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum(rp->typname),
										  ObjectIdGetDatum(get_namespace_oid("fleet", false)));
	Oid			arraytype;

	if (!OidIsValid(rowtype) || !OidIsValid(arraytype = get_array_type(rowtype)))
		elog(ERROR, "type fleet.%s is missing", rp->typname);
	if (rp->plan == NULL || rp->rowtype != rowtype)
	{
		if (rp->plan != NULL)
			SPI_freeplan(rp->plan);
		rp->plan = NULL;
		rp->plan = FleetKeepPlan(rp->sql, 1, &arraytype, FLEET_PLAN_GENERIC);
		rp->rowtype = rowtype;
	}
	return lookup_rowtype_tupdesc_copy(rowtype, -1);
}

/*
 * Run a batch insert prepared by FleetRowsPrepare over n rows (composite
 * datums of its row type, from HeapTupleGetDatum).
 */
void
FleetRowsExecute(FleetRowsPlan *rp, Datum *rows, int n)
{
	Datum		arg = PointerGetDatum(FleetMakeArray(rows, NULL, n, rp->rowtype));

	if (SPI_execute_plan(rp->plan, &arg, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "batch insert of fleet.%s rows failed", rp->typname);
}

/*
 * Prepare, once per backend, the statements a file keeps: each spec names
 * where its plan lives (NULL until prepared), its mode, argument types and
 * text.  Must run inside SPI_connect().
 */
void
FleetKeepPlans(const FleetPlanSpec *specs, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (*specs[i].plan == NULL)
			*specs[i].plan = FleetKeepPlan(specs[i].sql, specs[i].nargs,
										   (Oid *) specs[i].argtypes, specs[i].mode);
}
