/*-------------------------------------------------------------------------
 *
 * first_last.c
 *	  fleet.first_by(value, key) and fleet.last_by(value, key): the value of
 *	  the row with the smallest (largest) (key, value), the first(x, time)
 *	  and last(x, time) aggregates of rollup views.
 *
 * Those were (array_agg(x ORDER BY time, x) FILTER (WHERE x IS NOT NULL
 * AND time IS NOT NULL))[1]: an ordered aggregate, which sorts each group's
 * rows in a sort of its own and collects all of them to keep one.  A
 * rollup's capture trigger runs it over every inserted batch, four times
 * per vehicle and day for fleet.vehicle_daily_activity; a perf profile of
 * the positions ingest found those per-group sorts to be most of the
 * trigger's time.  These keep the best row seen so far instead, with the
 * same answer: rows whose value or key is NULL are skipped (the FILTER),
 * the key decides and, between equal keys, the smaller value for first_by
 * and the larger for last_by (the ORDER BY's second column).  Keys and
 * values are compared with their types' default btree comparison, under
 * the aggregate's input collation, as the ORDER BY compared them.
 *
 * The state lives in the aggregate's memory context; values of by-reference
 * types are copied there and the replaced copy freed.  No combine function:
 * these never run in parallel (views' queries are small per group).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_first_by_trans);
PG_FUNCTION_INFO_V1(fleet_last_by_trans);
PG_FUNCTION_INFO_V1(fleet_by_final);

/* one side of the comparison: a value or a key */
typedef struct ByItem
{
	Datum		datum;
	int16		typlen;
	bool		typbyval;
	FmgrInfo	cmp;			/* the type's btree comparison */
} ByItem;

typedef struct ByState
{
	bool		valid;			/* a row has been kept */
	Oid			collation;
	ByItem		value;
	ByItem		key;
} ByState;

static void
by_item_init(ByItem *item, Oid type, MemoryContext cxt)
{
	TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_CMP_PROC_FINFO);

	if (!OidIsValid(tc->cmp_proc))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not identify a comparison function for type %s", format_type_be(type)),
				 errhint("fleet.first_by() and fleet.last_by() need values and keys of types with a default btree ordering.")));
	fmgr_info_cxt(tc->cmp_proc, &item->cmp, cxt);
	get_typlenbyval(type, &item->typlen, &item->typbyval);
}

static void
by_item_set(ByItem *item, Datum d, bool had)
{
	if (had && !item->typbyval)
		pfree(DatumGetPointer(item->datum));
	item->datum = datumCopy(d, item->typbyval, item->typlen);
}

/*
 * Transition: keep the row if it beats the kept one; sign 1 keeps the
 * smallest (key, value), -1 the largest.
 */
static Datum
by_trans(FunctionCallInfo fcinfo, int sign)
{
	MemoryContext aggcxt;
	MemoryContext old;
	ByState    *st;
	Datum		value;
	Datum		key;
	bool		take;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "fleet.first_by/last_by transition called outside an aggregate");
	if (PG_ARGISNULL(0))
	{
		st = MemoryContextAllocZero(aggcxt, sizeof(ByState));
		st->collation = PG_GET_COLLATION();
		by_item_init(&st->value, get_fn_expr_argtype(fcinfo->flinfo, 1), aggcxt);
		by_item_init(&st->key, get_fn_expr_argtype(fcinfo->flinfo, 2), aggcxt);
	}
	else
		st = (ByState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(st);

	value = PG_GETARG_DATUM(1);
	key = PG_GETARG_DATUM(2);
	if (!st->valid)
		take = true;
	else
	{
		int32		c = DatumGetInt32(FunctionCall2Coll(&st->key.cmp, st->collation, key, st->key.datum));

		if (c == 0)
			c = DatumGetInt32(FunctionCall2Coll(&st->value.cmp, st->collation, value, st->value.datum));
		take = (c < 0 && sign > 0) || (c > 0 && sign < 0);
	}
	if (take)
	{
		old = MemoryContextSwitchTo(aggcxt);
		by_item_set(&st->value, value, st->valid);
		by_item_set(&st->key, key, st->valid);
		MemoryContextSwitchTo(old);
		st->valid = true;
	}
	PG_RETURN_POINTER(st);
}

/* fleet.first_by_trans(internal, anyelement, anycompatible) RETURNS internal */
Datum
fleet_first_by_trans(PG_FUNCTION_ARGS)
{
	return by_trans(fcinfo, 1);
}

/* fleet.last_by_trans(internal, anyelement, anycompatible) RETURNS internal */
Datum
fleet_last_by_trans(PG_FUNCTION_ARGS)
{
	return by_trans(fcinfo, -1);
}

/* fleet.by_final(internal, anyelement, anycompatible) RETURNS anyelement */
Datum
fleet_by_final(PG_FUNCTION_ARGS)
{
	ByState    *st;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "fleet.first_by/last_by final function called outside an aggregate");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (ByState *) PG_GETARG_POINTER(0);
	if (!st->valid)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(datumCopy(st->value.datum, st->value.typbyval, st->value.typlen));
}
