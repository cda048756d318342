/*-------------------------------------------------------------------------
 *
 * first_last.c
 *	  fleet.first_by(value, key) and fleet.last_by(value, key): the value of
 *	  the row with the smallest (largest) (key, value), the first(x, time)
 *	  and last(x, time) aggregates of rollup views; and fleet.view_combine(),
 *	  the aggregate a refresh of a rollup or latest view combines the partial
 *	  results of its delta log with.
 *
 * first_by/last_by were (array_agg(x ORDER BY time, x) FILTER (WHERE x IS
 * NOT NULL AND time IS NOT NULL))[1]: an ordered aggregate, which sorts each
 * group's rows in a sort of its own and collects all of them to keep one.  A
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
 * fleet.view_combine(rows, spec): see the comment above its code.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/sortsupport.h"
#include "utils/typcache.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_first_by_trans);
PG_FUNCTION_INFO_V1(fleet_last_by_trans);
PG_FUNCTION_INFO_V1(fleet_by_final);
PG_FUNCTION_INFO_V1(fleet_view_combine_trans);
PG_FUNCTION_INFO_V1(fleet_view_combine_final);

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


/*
 * fleet.view_combine(rows anyarray, spec text) RETURNS anyarray
 *
 * A refresh of a rollup or latest view consumes the rows of its delta log:
 * each holds one writing statement's partial result, an array of the view's
 * row type with one element per group.  The partials of a group that several
 * statements wrote must be combined before they are merged into the view.
 * This aggregate takes those arrays and returns one array with one element
 * per group, combined column by column as the view's combining SQL would
 * (fleet.create_view, sql/parts/60_views.sql), which a GROUP BY over the
 * unnested partials did before: that copied every partial row three times
 * (the unnest's tuplestore, a CTE, the hash table) and ran one transition
 * function per aggregate and row, most of a refresh's time after 100k new
 * rows in 1k-row statements.  Here a partial is deformed once and combined
 * into a hash table of groups in place.  A single array (one statement since
 * the last refresh, whose groups are distinct already) is returned as it is.
 *
 * spec names each column of the row type, in order, by one token
 * (separated by spaces):
 *   k    a group key (hashed and compared with the type's default hash
 *        opclass and equality, under the column's collation)
 *   c    a bigint sum of counts (count(*), count(x), avg's count)
 *   s    a numeric sum, NULLs skipped (sum(x), avg's sum)
 *   m M  min, max, NULLs skipped (btree comparison of the type)
 *   a    avg: the following s column divided by the c column after it
 *        (NULL for a count of 0), computed once the group is complete
 *   f l  first/last value: kept from the partial with the smallest (largest)
 *        (time, value), NULLs skipped; its time is the next column, an m
 *        (for f) or M (for l) column
 *   v    (latest) a value of the newest partial
 *   oN   (latest) the N-th column (1-based) of the order: the partial with
 *        the largest order (compared column by column, NULL largest, as
 *        DISTINCT ON ... ORDER BY ... DESC chose it) gives every v and o
 *        column; on a tie the first one read stays
 *-------------------------------------------------------------------------
 */

typedef enum CombineKind
{
	CK_KEY,
	CK_COUNT,
	CK_SUM,
	CK_MIN,
	CK_MAX,
	CK_AVG,
	CK_FIRST,
	CK_LAST,
	CK_VALUE,
	CK_ORDER
} CombineKind;

typedef struct CombineCol
{
	CombineKind kind;
	int16		typlen;
	bool		typbyval;
	Oid			collation;
	SortSupportData ssup;		/* the type's ordering: m M f l, their times, o */
	FmgrInfo	hash;			/* keys */
	FmgrInfo	eq;				/* keys */
} CombineCol;

typedef struct CombineGroup
{
	uint32		hash;
	int			next;			/* next group in its bucket, -1 at the end */
	Datum	   *values;
	bool	   *isnull;
} CombineGroup;

typedef struct CombineState
{
	MemoryContext cxt;
	Oid			elemtype;
	int16		elemlen;
	bool		elembyval;
	char		elemalign;
	TupleDesc	tupdesc;
	int			natts;
	CombineCol *cols;
	uint8	   *kinds;			/* cols[i].kind, compact for the merge loop */
	int		   *keys;
	int			nkeys;
	int		   *order;			/* latest: column of each rank */
	int			norder;
	bool		latest;
	ArrayType  *single;			/* the only array so far, kept whole */
	int			inputs;			/* non-empty arrays read */
	CombineGroup *groups;
	int			ngroups;
	int			maxgroups;
	int		   *buckets;		/* first group of each bucket, or -1 */
	int			nbuckets;		/* a power of two */
	Datum	   *pvalues;		/* the partial being combined */
	bool	   *pnull;
} CombineState;

/* the default btree ordering of the type, as a sort comparator (no fmgr call) */
static void
combine_cmp_init(CombineCol *col, Oid type, MemoryContext cxt)
{
	TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_LT_OPR);

	if (!OidIsValid(tc->lt_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not identify a comparison function for type %s", format_type_be(type))));
	memset(&col->ssup, 0, sizeof(SortSupportData));
	col->ssup.ssup_cxt = cxt;
	col->ssup.ssup_collation = col->collation;
	col->ssup.ssup_nulls_first = false;
	col->ssup.abbreviate = false;
	PrepareSortSupportFromOrderingOp(tc->lt_opr, &col->ssup);
}

static void
combine_spec_error(const char *spec, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid fleet.view_combine() spec \"%s\": %s", spec, why)));
}

/*
 * Set up the state for arrays of elemtype combined by spec.
 */
static CombineState *
combine_init(MemoryContext cxt, Oid elemtype, const char *spec)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	CombineState *st = palloc0(sizeof(CombineState));
	char	   *copy = pstrdup(spec);
	char	   *tok;
	char	   *save = NULL;
	int			i = 0;
	bool		rollup = false;

	st->cxt = cxt;
	st->elemtype = elemtype;
	get_typlenbyvalalign(elemtype, &st->elemlen, &st->elembyval, &st->elemalign);
	st->tupdesc = lookup_rowtype_tupdesc_copy(elemtype, -1);
	st->natts = st->tupdesc->natts;
	st->cols = palloc0(sizeof(CombineCol) * st->natts);
	st->keys = palloc(sizeof(int) * st->natts);
	st->order = palloc(sizeof(int) * st->natts);
	for (i = 0; i < st->natts; i++)
		st->order[i] = -1;
	st->pvalues = palloc(sizeof(Datum) * st->natts);
	st->pnull = palloc(sizeof(bool) * st->natts);

	i = 0;
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
	{
		CombineCol *col;
		Form_pg_attribute att;

		if (i >= st->natts)
			combine_spec_error(spec, "more columns than the row type has");
		col = &st->cols[i];
		att = TupleDescAttr(st->tupdesc, i);
		if (att->attisdropped)
			combine_spec_error(spec, "the row type has a dropped column");
		col->typlen = att->attlen;
		col->typbyval = att->attbyval;
		col->collation = att->attcollation;
		if (strcmp(tok, "k") == 0)
		{
			TypeCacheEntry *tc = lookup_type_cache(att->atttypid,
												   TYPECACHE_HASH_PROC_FINFO | TYPECACHE_EQ_OPR_FINFO);

			if (!OidIsValid(tc->hash_proc) || !OidIsValid(tc->eq_opr_finfo.fn_oid))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_FUNCTION),
						 errmsg("could not identify hash and equality functions for type %s",
								format_type_be(att->atttypid))));
			col->kind = CK_KEY;
			fmgr_info_cxt(tc->hash_proc, &col->hash, cxt);
			fmgr_info_cxt(tc->eq_opr_finfo.fn_oid, &col->eq, cxt);
			st->keys[st->nkeys++] = i;
		}
		else if (strcmp(tok, "c") == 0 || strcmp(tok, "s") == 0 || strcmp(tok, "a") == 0)
		{
			col->kind = tok[0] == 'c' ? CK_COUNT : tok[0] == 's' ? CK_SUM : CK_AVG;
			if (att->atttypid != (tok[0] == 'c' ? INT8OID : NUMERICOID))
				combine_spec_error(spec, "a count is bigint, a sum or average numeric");
			rollup = true;
		}
		else if (strcmp(tok, "m") == 0 || strcmp(tok, "M") == 0 ||
				 strcmp(tok, "f") == 0 || strcmp(tok, "l") == 0)
		{
			col->kind = tok[0] == 'm' ? CK_MIN : tok[0] == 'M' ? CK_MAX : tok[0] == 'f' ? CK_FIRST : CK_LAST;
			combine_cmp_init(col, att->atttypid, cxt);
			rollup = true;
		}
		else if (strcmp(tok, "v") == 0)
		{
			col->kind = CK_VALUE;
			st->latest = true;
		}
		else if (tok[0] == 'o' && tok[1] >= '1' && tok[1] <= '9')
		{
			int			rank = atoi(tok + 1) - 1;

			if (rank < 0 || rank >= st->natts || st->order[rank] >= 0)
				combine_spec_error(spec, "order ranks must be 1, 2, ... once each");
			col->kind = CK_ORDER;
			combine_cmp_init(col, att->atttypid, cxt);
			st->order[rank] = i;
			st->norder = Max(st->norder, rank + 1);
			st->latest = true;
		}
		else
			combine_spec_error(spec, "unknown column token");
		i++;
	}
	if (i != st->natts)
		combine_spec_error(spec, "fewer columns than the row type has");
	if (st->nkeys == 0)
		combine_spec_error(spec, "no key column");
	if (rollup && st->latest)
		combine_spec_error(spec, "rollup and latest columns mixed");
	for (i = 0; i < st->norder; i++)
		if (st->order[i] < 0)
			combine_spec_error(spec, "order ranks must be 1, 2, ... once each");
	if (st->latest && st->norder == 0)
		combine_spec_error(spec, "a latest spec needs an order");
	st->kinds = palloc(st->natts);
	for (i = 0; i < st->natts; i++)
		st->kinds[i] = (uint8) st->cols[i].kind;
	for (i = 0; i < st->natts; i++)
	{
		CombineKind k = st->cols[i].kind;

		if (k == CK_AVG && (i + 2 >= st->natts || st->cols[i + 1].kind != CK_SUM ||
							st->cols[i + 2].kind != CK_COUNT))
			combine_spec_error(spec, "an a column must be followed by its s and c columns");
		if ((k == CK_FIRST || k == CK_LAST) &&
			(i + 1 >= st->natts || st->cols[i + 1].kind != (k == CK_FIRST ? CK_MIN : CK_MAX)))
			combine_spec_error(spec, "an f (l) column must be followed by its m (M) time column");
	}

	st->nbuckets = 1024;
	st->buckets = palloc(sizeof(int) * st->nbuckets);
	memset(st->buckets, -1, sizeof(int) * st->nbuckets);
	st->maxgroups = 1024;
	st->groups = palloc(sizeof(CombineGroup) * st->maxgroups);
	MemoryContextSwitchTo(old);
	return st;
}

/* replace a group's column i by d (copied into the state's context) */
static inline void
combine_set(CombineState *st, CombineGroup *g, int i, Datum d, bool isnull)
{
	CombineCol *col = &st->cols[i];

	if (!g->isnull[i] && !col->typbyval)
		pfree(DatumGetPointer(g->values[i]));
	g->isnull[i] = isnull;
	if (isnull)
		g->values[i] = (Datum) 0;
	else if (col->typbyval)
		g->values[i] = d;
	else
	{
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		g->values[i] = datumCopy(d, false, col->typlen);
		MemoryContextSwitchTo(old);
	}
}

static inline int
combine_cmp(CombineCol *col, Datum a, Datum b)
{
	return ApplySortComparator(a, false, b, false, &col->ssup);
}

/* merge the partial in st->pvalues into group g */
static void
combine_merge(CombineState *st, CombineGroup *g)
{
	Datum	   *p = st->pvalues;
	bool	   *pn = st->pnull;
	int			i;

	if (st->latest)
	{
		int32		c = 0;

		for (i = 0; i < st->norder && c == 0; i++)
		{
			int			o = st->order[i];

			if (pn[o] || g->isnull[o])
				c = (pn[o] ? 1 : 0) - (g->isnull[o] ? 1 : 0);
			else
				c = combine_cmp(&st->cols[o], p[o], g->values[o]);
		}
		if (c > 0)
			for (i = 0; i < st->natts; i++)
				if (st->cols[i].kind != CK_KEY)
					combine_set(st, g, i, p[i], pn[i]);
		return;
	}

	for (i = 0; i < st->natts; i++)
	{
		CombineCol *col = &st->cols[i];

		switch ((CombineKind) st->kinds[i])
		{
			case CK_KEY:
			case CK_AVG:		/* computed at the end */
			case CK_VALUE:
			case CK_ORDER:
				break;
			case CK_COUNT:
				if (pn[i])
					break;
				if (g->isnull[i])
					combine_set(st, g, i, p[i], false);
				else
				{
					int64		r;

					if (pg_add_s64_overflow(DatumGetInt64(g->values[i]), DatumGetInt64(p[i]), &r))
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("bigint out of range")));
					combine_set(st, g, i, Int64GetDatum(r), false);
				}
				break;
			case CK_SUM:
				if (pn[i])
					break;
				if (g->isnull[i])
					combine_set(st, g, i, p[i], false);
				else
				{
					/* the sum is made in the state's context, the old one freed */
					Numeric		a = DatumGetNumeric(g->values[i]);
					Numeric		b = DatumGetNumeric(p[i]);
					MemoryContext old = MemoryContextSwitchTo(st->cxt);
					Numeric		r = numeric_add_opt_error(a, b, NULL);

					MemoryContextSwitchTo(old);
					pfree(DatumGetPointer(g->values[i]));
					g->values[i] = NumericGetDatum(r);
				}
				break;
			case CK_MIN:
			case CK_MAX:
				if (pn[i])
					break;
				if (g->isnull[i])
					combine_set(st, g, i, p[i], false);
				else
				{
					int32		c = combine_cmp(col, p[i], g->values[i]);

					if ((c < 0 && col->kind == CK_MIN) || (c > 0 && col->kind == CK_MAX))
						combine_set(st, g, i, p[i], false);
				}
				break;
			case CK_FIRST:
			case CK_LAST:
				{
					/* against the group's time before column i + 1 is merged */
					bool		take;

					if (pn[i] || pn[i + 1])
						break;
					if (g->isnull[i] || g->isnull[i + 1])
						take = true;
					else
					{
						int32		c = combine_cmp(&st->cols[i + 1], p[i + 1], g->values[i + 1]);

						if (c == 0)
							c = combine_cmp(col, p[i], g->values[i]);
						take = col->kind == CK_FIRST ? c < 0 : c > 0;
					}
					if (take)
						combine_set(st, g, i, p[i], false);
				}
				break;
		}
	}
}

static void
combine_grow(CombineState *st)
{
	int			i;

	st->nbuckets *= 2;
	st->buckets = repalloc(st->buckets, sizeof(int) * st->nbuckets);
	memset(st->buckets, -1, sizeof(int) * st->nbuckets);
	for (i = 0; i < st->ngroups; i++)
	{
		int			b = st->groups[i].hash & (st->nbuckets - 1);

		st->groups[i].next = st->buckets[b];
		st->buckets[b] = i;
	}
}

/* combine one partial row (a composite datum) into its group */
static void
combine_add(CombineState *st, Datum row)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	HeapTupleData tup;
	uint32		h = 0;
	int			gi;
	int			k;
	CombineGroup *g;

	tup.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tup.t_self);
	tup.t_tableOid = InvalidOid;
	tup.t_data = td;
	heap_deform_tuple(&tup, st->tupdesc, st->pvalues, st->pnull);

	for (k = 0; k < st->nkeys; k++)
	{
		int			i = st->keys[k];
		uint32		hk = 0;

		if (!st->pnull[i])
			hk = DatumGetUInt32(FunctionCall1Coll(&st->cols[i].hash, st->cols[i].collation, st->pvalues[i]));
		h = hash_combine(h, hk);
	}
	for (gi = st->buckets[h & (st->nbuckets - 1)]; gi >= 0; gi = st->groups[gi].next)
	{
		bool		same = st->groups[gi].hash == h;

		g = &st->groups[gi];
		for (k = 0; same && k < st->nkeys; k++)
		{
			int			i = st->keys[k];

			if (st->pnull[i] || g->isnull[i])
				same = st->pnull[i] && g->isnull[i];
			else
				same = DatumGetBool(FunctionCall2Coll(&st->cols[i].eq, st->cols[i].collation,
													  st->pvalues[i], g->values[i]));
		}
		if (same)
		{
			combine_merge(st, g);
			return;
		}
	}

	/* a new group: a copy of the partial */
	if (st->ngroups == st->maxgroups)
	{
		st->maxgroups *= 2;
		st->groups = repalloc(st->groups, sizeof(CombineGroup) * st->maxgroups);
	}
	g = &st->groups[st->ngroups];
	g->hash = h;
	g->values = MemoryContextAlloc(st->cxt, sizeof(Datum) * st->natts);
	g->isnull = MemoryContextAlloc(st->cxt, sizeof(bool) * st->natts);
	for (k = 0; k < st->natts; k++)
	{
		g->isnull[k] = true;
		combine_set(st, g, k, st->pvalues[k], st->pnull[k]);
	}
	g->next = st->buckets[h & (st->nbuckets - 1)];
	st->buckets[h & (st->nbuckets - 1)] = st->ngroups;
	st->ngroups++;
	if (st->ngroups > st->nbuckets)
		combine_grow(st);
}

static void
combine_array(CombineState *st, ArrayType *arr)
{
	ArrayIterator it = array_create_iterator(arr, 0, NULL);
	Datum		d;
	bool		isnull;

	while (array_iterate(it, &d, &isnull))
	{
		CHECK_FOR_INTERRUPTS();
		if (!isnull)
			combine_add(st, d);
	}
	array_free_iterator(it);
}

/* fleet.view_combine_trans(internal, anyarray, text) RETURNS internal */
Datum
fleet_view_combine_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	CombineState *st;
	ArrayType  *arr;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "fleet.view_combine transition called outside an aggregate");
	st = PG_ARGISNULL(0) ? NULL : (CombineState *) PG_GETARG_POINTER(0);
	arr = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	if (arr == NULL || ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) == 0)
	{
		/* nothing to combine (a state is only made for a first partial) */
		if (st == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(st);
	}
	if (st == NULL)
	{
		if (PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("fleet.view_combine() needs a spec")));
		if (!type_is_rowtype(ARR_ELEMTYPE(arr)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("fleet.view_combine() combines arrays of a row type, not %s",
							format_type_be(ARR_ELEMTYPE(arr)))));
		st = combine_init(aggcxt, ARR_ELEMTYPE(arr), text_to_cstring(PG_GETARG_TEXT_PP(2)));
	}
	else if (ARR_ELEMTYPE(arr) != st->elemtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("fleet.view_combine() got arrays of different row types")));

	st->inputs++;
	if (st->inputs == 1)
	{
		/* kept whole: alone, its groups are distinct already */
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		st->single = (ArrayType *) DatumGetPointer(datumCopy(PointerGetDatum(arr), false, -1));
		MemoryContextSwitchTo(old);
		PG_RETURN_POINTER(st);
	}
	if (st->single)
	{
		combine_array(st, st->single);
		pfree(st->single);
		st->single = NULL;
	}
	combine_array(st, arr);
	PG_RETURN_POINTER(st);
}

/* fleet.view_combine_final(internal, anyarray, text) RETURNS anyarray */
Datum
fleet_view_combine_final(PG_FUNCTION_ARGS)
{
	CombineState *st;
	Datum	   *elems;
	int			gi;
	int			i;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "fleet.view_combine final function called outside an aggregate");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (CombineState *) PG_GETARG_POINTER(0);
	if (st == NULL)
		PG_RETURN_NULL();
	if (st->single)
		PG_RETURN_ARRAYTYPE_P(st->single);

	elems = palloc(sizeof(Datum) * Max(st->ngroups, 1));
	for (gi = 0; gi < st->ngroups; gi++)
	{
		CombineGroup *g = &st->groups[gi];
		HeapTuple	tup;

		for (i = 0; i < st->natts; i++)
		{
			if (st->cols[i].kind != CK_AVG)
				continue;
			/* sum / NULLIF(count, 0), as numeric / bigint divides */
			if (g->isnull[i + 1] || g->isnull[i + 2] || DatumGetInt64(g->values[i + 2]) == 0)
				combine_set(st, g, i, (Datum) 0, true);
			else
			{
				Datum		r = DirectFunctionCall2(numeric_div, g->values[i + 1],
													NumericGetDatum(int64_to_numeric(DatumGetInt64(g->values[i + 2]))));

				combine_set(st, g, i, r, false);
			}
		}
		tup = heap_form_tuple(st->tupdesc, g->values, g->isnull);
		elems[gi] = heap_copy_tuple_as_datum(tup, st->tupdesc);
		heap_freetuple(tup);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, st->ngroups, st->elemtype,
										  st->elemlen, st->elembyval, st->elemalign));
}
