/*-------------------------------------------------------------------------
 *
 * first_last.c
 *	  fleet.first_by(value, key) and fleet.last_by(value, key): the value of
 *	  the row with the smallest (largest) (key, value), the first(x, time)
 *	  and last(x, time) aggregates of rollup views; and fleet.view_combine(),
 *	  the aggregate a refresh of a rollup or latest view combines the partial
 *	  results of its delta log with; and fleet.view_merge(), which writes
 *	  those combined groups into the view's table.
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
 * fleet.view_combine(rows, spec) and fleet.view_merge(storage, rows, spec):
 * see the comments above their code.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/acl.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/sortsupport.h"
#include "utils/typcache.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_first_by_trans);
PG_FUNCTION_INFO_V1(fleet_last_by_trans);
PG_FUNCTION_INFO_V1(fleet_by_final);
PG_FUNCTION_INFO_V1(fleet_view_combine_trans);
PG_FUNCTION_INFO_V1(fleet_view_combine_final);
PG_FUNCTION_INFO_V1(fleet_view_merge);

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
 *        opclass and equality, under the column's collation); kN: the
 *        key is the N-th (1-based) of the order fleet.view_merge() writes
 *        the groups in
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
	int		   *worder;			/* keys in the order groups are written */
	int			nworder;
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
	st->worder = palloc(sizeof(int) * st->natts);
	for (i = 0; i < st->natts; i++)
		st->order[i] = st->worder[i] = -1;
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
		if (tok[0] == 'k' && (tok[1] == '\0' || (tok[1] >= '1' && tok[1] <= '9')))
		{
			TypeCacheEntry *tc = lookup_type_cache(att->atttypid,
												   TYPECACHE_HASH_PROC_FINFO | TYPECACHE_EQ_OPR_FINFO);

			if (tok[1] != '\0')
			{
				int			rank = atoi(tok + 1) - 1;

				if (rank < 0 || rank >= st->natts || st->worder[rank] >= 0)
					combine_spec_error(spec, "key ranks must be 1, 2, ... once each");
				st->worder[rank] = i;
				st->nworder = Max(st->nworder, rank + 1);
				combine_cmp_init(col, att->atttypid, cxt);
			}

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
	for (i = 0; i < st->nworder; i++)
		if (st->worder[i] < 0)
			combine_spec_error(spec, "key ranks must be 1, 2, ... once each");
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


/*
 * fleet.view_merge(storage regclass, rows anyarray, spec text) RETURNS bigint
 *
 * The second half of a refresh of a rollup or latest view: merge the
 * combined partials (fleet.view_combine's result, one element per group) into
 * the view's table, which has the elements' row type.  A group that exists is
 * updated as the view's ON CONFLICT ... DO UPDATE SET list would update it
 * (count + count, sum + sum NULLs skipped, LEAST/GREATEST, the average of the
 * new sum and count, first/last by (time, value); a latest view's row only
 * when the partial's order is greater), a new group inserted.  Returns the
 * rows changed.  The groups are written in the order the kN keys give (date
 * and time keys first: fleet.view_key_order), so that a day's new groups
 * share pages.
 *
 * That upsert cost most of a refresh in the executor's per-row machinery:
 * a speculative-insertion probe with its own index scan set up and torn
 * down, a tuple lock with its WAL record, the SET list's expressions, a
 * projection and a RETURNING row per group.  Here one index scan is
 * re-keyed per group, the merged row is computed in C, and
 * ExecSimpleRelationUpdate/Insert (what logical replication applies rows
 * with) write it: heap update (HOT when it fits), constraints, index
 * entries when not HOT.
 *
 * It writes the table directly, so it refuses a table it does not own, one
 * under row-level security for the current role, one with triggers, and
 * elements of another row type.  Callers: the SECURITY DEFINER refresh, as
 * the extension owner; it is granted to no role.
 *-------------------------------------------------------------------------
 */

typedef struct MergePart
{
	Datum	   *values;
	bool	   *isnull;
} MergePart;

static int
merge_part_cmp(const void *a, const void *b, void *arg)
{
	const MergePart *pa = (const MergePart *) a;
	const MergePart *pb = (const MergePart *) b;
	CombineState *st = (CombineState *) arg;
	int			k;

	for (k = 0; k < st->nworder; k++)
	{
		int			i = st->worder[k];
		int			c = ApplySortComparator(pa->values[i], pa->isnull[i], pb->values[i], pb->isnull[i],
											&st->cols[i].ssup);

		if (c != 0)
			return c;
	}
	return 0;
}

/* numeric sum of two values, NULLs skipped (COALESCE(a + b, a, b)) */
static void
merge_sum(Datum a, bool an, Datum b, bool bn, Datum *out, bool *outnull)
{
	*outnull = an && bn;
	if (an)
		*out = b;
	else if (bn)
		*out = a;
	else
		*out = NumericGetDatum(numeric_add_opt_error(DatumGetNumeric(a), DatumGetNumeric(b), NULL));
}

/*
 * The new row of group t given the partial e (both deformed), into out;
 * false if the row is to be left alone (a latest view's older partial).
 * Every new value is computed from the old row, as a SET list does.
 */
static bool
merge_row(CombineState *st, Datum *t, bool *tn, Datum *e, bool *en, Datum *out, bool *outn)
{
	int			i;

	memcpy(out, t, sizeof(Datum) * st->natts);
	memcpy(outn, tn, sizeof(bool) * st->natts);
	if (st->latest)
	{
		/* ROW(e.o1, ...) > ROW(t.o1, ...): NULL (not greater) at a NULL */
		int			c = 0;

		for (i = 0; i < st->norder && c == 0; i++)
		{
			int			o = st->order[i];

			if (en[o] || tn[o])
				return false;
			c = combine_cmp(&st->cols[o], e[o], t[o]);
		}
		if (c <= 0)
			return false;
		for (i = 0; i < st->natts; i++)
			if (st->kinds[i] != CK_KEY)
			{
				out[i] = e[i];
				outn[i] = en[i];
			}
		return true;
	}
	for (i = 0; i < st->natts; i++)
	{
		CombineCol *col = &st->cols[i];

		switch ((CombineKind) st->kinds[i])
		{
			case CK_KEY:
			case CK_VALUE:
			case CK_ORDER:
				break;
			case CK_COUNT:
				/* t + e */
				if (tn[i] || en[i])
					outn[i] = true;
				else
				{
					int64		r;

					if (pg_add_s64_overflow(DatumGetInt64(t[i]), DatumGetInt64(e[i]), &r))
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("bigint out of range")));
					out[i] = Int64GetDatum(r);
				}
				break;
			case CK_SUM:
				merge_sum(t[i], tn[i], e[i], en[i], &out[i], &outn[i]);
				break;
			case CK_AVG:
				{
					/* new sum / NULLIF(t.n + e.n, 0) */
					Datum		sum;
					bool		sumnull;

					int64		n = 0;

					merge_sum(t[i + 1], tn[i + 1], e[i + 1], en[i + 1], &sum, &sumnull);
					if (!tn[i + 2] && !en[i + 2] &&
						pg_add_s64_overflow(DatumGetInt64(t[i + 2]), DatumGetInt64(e[i + 2]), &n))
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("bigint out of range")));
					if (sumnull || tn[i + 2] || en[i + 2] || n == 0)
						outn[i] = true;
					else
					{
						outn[i] = false;
						out[i] = DirectFunctionCall2(numeric_div, sum, NumericGetDatum(int64_to_numeric(n)));
					}
				}
				break;
			case CK_MIN:
			case CK_MAX:
				/* LEAST / GREATEST: NULLs skipped */
				if (en[i])
					break;
				if (tn[i] ||
					(col->kind == CK_MIN ? combine_cmp(col, e[i], t[i]) < 0 : combine_cmp(col, e[i], t[i]) > 0))
				{
					out[i] = e[i];
					outn[i] = false;
				}
				break;
			case CK_FIRST:
			case CK_LAST:
				{
					/*
					 * CASE WHEN e.time IS NULL THEN t.v WHEN t.time IS NULL
					 * THEN e.v WHEN ROW(e.time, e.v) < (>) ROW(t.time, t.v)
					 * THEN e.v ELSE t.v END
					 */
					bool		take;

					if (en[i + 1])
						take = false;
					else if (tn[i + 1])
						take = true;
					else
					{
						int			c = combine_cmp(&st->cols[i + 1], e[i + 1], t[i + 1]);

						if (c == 0)
						{
							if (en[i] || tn[i])
								break;	/* the row comparison is NULL */
							c = combine_cmp(col, e[i], t[i]);
						}
						take = col->kind == CK_FIRST ? c < 0 : c > 0;
					}
					if (take)
					{
						out[i] = e[i];
						outn[i] = en[i];
					}
				}
				break;
		}
	}
	return true;
}

/* fleet.view_merge(regclass, anyarray, text) RETURNS bigint */
Datum
fleet_view_merge(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *arr;
	MemoryContext cxt;
	MemoryContext rowcxt;
	MemoryContext old;
	Relation	rel;
	Relation	pk = NULL;
	CombineState *st;
	MergePart  *parts;
	int			nparts;
	int			i;
	int			k;
	ArrayIterator it;
	Datum		d;
	bool		isnull;
	EState	   *estate;
	RangeTblEntry *rte;
	ResultRelInfo *rri;
	EPQState	epqstate;
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
	IndexScanDesc scan;
	ScanKeyData skey[INDEX_MAX_KEYS];
	int			nkeys;
	int64		changed = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("fleet.view_merge() needs a table and a spec")));
	if (PG_ARGISNULL(1))
		PG_RETURN_INT64(0);
	arr = PG_GETARG_ARRAYTYPE_P(1);
	nparts = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (nparts == 0)
		PG_RETURN_INT64(0);

	rel = table_open(relid, RowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("fleet.view_merge() writes a table, not \"%s\"", RelationGetRelationName(rel))));
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("fleet.view_merge() writes only tables the current role owns, not \"%s\"",
						RelationGetRelationName(rel))));
	if (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("fleet.view_merge() cannot write \"%s\": row-level security applies to the current role",
						RelationGetRelationName(rel))));
	if (rel->trigdesc != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fleet.view_merge() does not write \"%s\": it has triggers", RelationGetRelationName(rel))));
	if (ARR_ELEMTYPE(arr) != rel->rd_rel->reltype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("fleet.view_merge() merges rows of type %s into \"%s\", not %s",
						format_type_be(rel->rd_rel->reltype), RelationGetRelationName(rel),
						format_type_be(ARR_ELEMTYPE(arr)))));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "fleet.view_merge", ALLOCSET_DEFAULT_SIZES);
	rowcxt = AllocSetContextCreate(cxt, "fleet.view_merge row", ALLOCSET_DEFAULT_SIZES);
	st = combine_init(cxt, ARR_ELEMTYPE(arr), text_to_cstring(PG_GETARG_TEXT_PP(2)));

	/* every partial deformed once, then ordered as the keys' ranks say */
	old = MemoryContextSwitchTo(cxt);
	parts = palloc(sizeof(MergePart) * nparts);
	nparts = 0;
	it = array_create_iterator(arr, 0, NULL);
	while (array_iterate(it, &d, &isnull))
	{
		HeapTupleHeader td;
		HeapTupleData tup;

		if (isnull)
			continue;
		td = DatumGetHeapTupleHeader(d);
		tup.t_len = HeapTupleHeaderGetDatumLength(td);
		ItemPointerSetInvalid(&tup.t_self);
		tup.t_tableOid = InvalidOid;
		tup.t_data = td;
		parts[nparts].values = palloc(sizeof(Datum) * st->natts);
		parts[nparts].isnull = palloc(sizeof(bool) * st->natts);
		heap_deform_tuple(&tup, st->tupdesc, parts[nparts].values, parts[nparts].isnull);
		nparts++;
	}
	array_free_iterator(it);
	MemoryContextSwitchTo(old);
	if (st->nworder > 0)
		qsort_arg(parts, nparts, sizeof(MergePart), merge_part_cmp, st);

	/* as logical replication applies rows: an executor state of one table */
	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = GetActiveSnapshot();
	ExecOpenIndices(rri, false);
	EvalPlanQualInit(&epqstate, estate, NULL, NIL, -1);
	for (i = 0; i < rri->ri_NumIndices; i++)
		if (rri->ri_IndexRelationDescs[i]->rd_index->indisprimary)
			pk = rri->ri_IndexRelationDescs[i];
	if (pk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("fleet.view_merge() needs a primary key on \"%s\"", RelationGetRelationName(rel))));
	nkeys = IndexRelationGetNumberOfKeyAttributes(pk);
	for (k = 0; k < nkeys; k++)
	{
		Oid			op = get_opfamily_member(pk->rd_opfamily[k], pk->rd_opcintype[k], pk->rd_opcintype[k],
											 BTEqualStrategyNumber);

		if (!OidIsValid(op))
			elog(ERROR, "missing equality operator for column %d of index \"%s\"", k + 1,
				 RelationGetRelationName(pk));
		ScanKeyInit(&skey[k], k + 1, BTEqualStrategyNumber, get_opcode(op), (Datum) 0);
		skey[k].sk_collation = pk->rd_indcollation[k];
	}
	oldslot = table_slot_create(rel, &estate->es_tupleTable);
	newslot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
	scan = index_beginscan(rel, pk, estate->es_snapshot, nkeys, 0);

	for (i = 0; i < nparts; i++)
	{
		MergePart  *p = &parts[i];
		bool		keynull = false;

		CHECK_FOR_INTERRUPTS();
		for (k = 0; k < nkeys; k++)
		{
			AttrNumber	att = pk->rd_index->indkey.values[k];

			keynull |= p->isnull[att - 1];
			skey[k].sk_argument = p->values[att - 1];
			skey[k].sk_flags = p->isnull[att - 1] ? SK_ISNULL : 0;
		}
		old = MemoryContextSwitchTo(rowcxt);
		ExecClearTuple(newslot);
		index_rescan(scan, skey, nkeys, NULL, 0);
		if (!keynull && index_getnext_slot(scan, ForwardScanDirection, oldslot))
		{
			slot_getallattrs(oldslot);
			if (merge_row(st, oldslot->tts_values, oldslot->tts_isnull, p->values, p->isnull,
						  newslot->tts_values, newslot->tts_isnull))
			{
				ExecStoreVirtualTuple(newslot);
				ExecSimpleRelationUpdate(rri, estate, &epqstate, oldslot, newslot);
				changed++;
			}
		}
		else
		{
			/* a new group, as it is (a NULL key fails the table's NOT NULL) */
			memcpy(newslot->tts_values, p->values, sizeof(Datum) * st->natts);
			memcpy(newslot->tts_isnull, p->isnull, sizeof(bool) * st->natts);
			ExecStoreVirtualTuple(newslot);
			ExecSimpleRelationInsert(rri, estate, newslot);
			changed++;
		}
		MemoryContextSwitchTo(old);
		ResetPerTupleExprContext(estate);
		MemoryContextReset(rowcxt);
	}

	index_endscan(scan);
	EvalPlanQualEnd(&epqstate);
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	MemoryContextDelete(cxt);
	PG_RETURN_INT64(changed);
}
