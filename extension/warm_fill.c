/*-------------------------------------------------------------------------
 *
 * warm_fill.c
 *	  Hot -> warm: write the warm copy of a partition already frozen.
 *
 * fleet.warm_copy() (sql/parts/72_tier_ops.sql) creates the warm shadow
 * table and fills it in the same transaction through
 * fleet.warm_fill(source, target, delta, order_by).  The rows are read
 * sorted (per vehicle over time) through an SPI cursor and written with
 * table_multi_insert() and TABLE_INSERT_FROZEN, the mechanism of COPY
 * FREEZE: every tuple is stored frozen and each page filled from empty is
 * marked all-visible and all-frozen in the visibility map at once, so the
 * warm partition never needs an anti-wraparound rewrite by autovacuum and
 * index-only scans on it skip the heap from the start.
 *
 * Freezing at insert is only correct for a table no other transaction can
 * see yet: the target must have been created (or given a new relfilenode)
 * in the current transaction.  Older snapshots of this same transaction
 * cannot have read it either, since it did not exist for them.  Otherwise
 * the rows are written unfrozen and a NOTICE says so.  The target's indexes
 * are maintained batch by batch, as COPY does (so that work, too, is paced
 * by the duty cycle below); it must have no triggers, and its CHECK
 * constraints are not evaluated: the rows come from the partition whose
 * bounds the CHECK repeats.
 *
 * Rows written into the hot partition while the move runs are mirrored by a
 * trigger into a delta table.  Those the fill's snapshot sees are already
 * copied: the fill deletes them from the delta under the same snapshot, so
 * the delta keeps exactly the rows the swap must still add.
 *
 * The fill yields the CPU and disk to live ingest: after each batch it
 * sleeps so that it runs at most fleet.tier_duty of the time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_warm_fill);

#define FILL_BATCH 1000

/* Sleep so that the work of the last batch is at most duty of the time. */
static void
yield_share(double busy_ms, double duty)
{
	long		pause_ms;

	if (duty >= 1.0 || duty <= 0.0)
		return;
	pause_ms = (long) (busy_ms * (1.0 - duty) / duty);
	if (pause_ms > 60000)
		pause_ms = 60000;
	if (pause_ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 pause_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * fleet.warm_fill(source regclass, target regclass, delta regclass,
 *                 order_by text) RETURNS bigint
 *
 * Copy every row of source into target sorted by order_by (a list of
 * columns of the source, already quoted), frozen when target was created in
 * this transaction; delete from delta (may be NULL) the rows the copy saw.
 * Returns the number of rows copied.
 */
Datum
fleet_warm_fill(PG_FUNCTION_ARGS)
{
	Oid			source;
	Oid			target;
	Oid			delta;
	char	   *order_by;
	Relation	rel;
	TupleDesc	desc;
	StringInfoData sql;
	int			ti_options = TABLE_INSERT_SKIP_FSM;
	bool		frozen;
	bool		first = true;
	int			natts;
	int		   *map;
	int			i;
	BulkInsertState bistate;
	TupleTableSlot **slots;
	MemoryContext batchcxt;
	EState	   *estate;
	ResultRelInfo *rri;
	Snapshot	snap;
	SPIPlanPtr	plan;
	Portal		portal;
	int64		copied = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("fleet.warm_fill needs a source, a target and a sort order")));
	source = PG_GETARG_OID(0);
	target = PG_GETARG_OID(1);
	delta = PG_ARGISNULL(2) ? InvalidOid : PG_GETARG_OID(2);
	order_by = text_to_cstring(PG_GETARG_TEXT_PP(3));
	for (i = 0; i < 3; i++)
	{
		Oid			r = i == 0 ? source : i == 1 ? target : delta;

		if (i == 2 && !OidIsValid(r))
			continue;
		if (get_rel_relkind(r) == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("fleet.warm_fill: relation with OID %u does not exist", r)));
		if (IsCatalogRelationOid(r))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("fleet.warm_fill does not work on system catalog \"%s\"", get_rel_name(r))));
	}

	rel = table_open(target, RowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("warm copy target \"%s\" is not a plain table", RelationGetRelationName(rel))));
	if (rel->trigdesc != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("warm copy target \"%s\" has triggers", RelationGetRelationName(rel)),
				 errdetail("Rows are written without firing triggers.")));

	frozen = rel->rd_createSubid != InvalidSubTransactionId ||
		rel->rd_firstRelfilenodeSubid != InvalidSubTransactionId;
	if (frozen)
		ti_options |= TABLE_INSERT_FROZEN;
	else
		ereport(NOTICE,
				(errmsg("warm copy target \"%s\" was not created in this transaction: its rows are written unfrozen",
						RelationGetRelationName(rel)),
				 errdetail("Only a table no other transaction can see yet may be filled frozen."),
				 errhint("Autovacuum freezes it later.")));

	/* the target's columns, by name, read from the source in that order */
	desc = RelationGetDescr(rel);
	natts = desc->natts;
	map = palloc(sizeof(int) * natts);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	{
		int			col = 0;

		for (i = 0; i < natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped)
			{
				map[i] = -1;
				continue;
			}
			appendStringInfo(&sql, "%sx.%s", first ? "" : ", ", quote_identifier(NameStr(att->attname)));
			first = false;
			map[i] = col++;
		}
	}
	appendStringInfo(&sql, " FROM %s x ORDER BY %s",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
												get_rel_name(source)),
					 order_by);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* one snapshot for the read and for trimming the delta */
	snap = RegisterSnapshot(GetTransactionSnapshot());
	if (OidIsValid(delta))
	{
		char	   *del = psprintf("DELETE FROM %s",
								   quote_qualified_identifier(get_namespace_name(get_rel_namespace(delta)),
															  get_rel_name(delta)));
		SPIPlanPtr	dplan = SPI_prepare(del, 0, NULL);

		if (dplan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", del, SPI_result_code_string(SPI_result));
		if (SPI_execute_snapshot(dplan, NULL, NULL, snap, InvalidSnapshot, false, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not trim the warm copy's delta table");
	}

	plan = SPI_prepare(sql.data, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql.data, SPI_result_code_string(SPI_result));
	PushActiveSnapshot(snap);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	PopActiveSnapshot();

	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * FILL_BATCH);
	for (i = 0; i < FILL_BATCH; i++)
		slots[i] = table_slot_create(rel, NULL);
	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "fleet warm fill batch",
									 ALLOCSET_DEFAULT_SIZES);
	/* the target's indexes, filled as the rows go in (as COPY does) */
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);

	for (;;)
	{
		instr_time	t0,
					t1;
		uint64		n;
		uint64		r;
		MemoryContext old;

		INSTR_TIME_SET_CURRENT(t0);
		SPI_cursor_fetch(portal, true, FILL_BATCH);
		n = SPI_processed;
		if (n == 0)
			break;
		old = MemoryContextSwitchTo(batchcxt);
		for (r = 0; r < n; r++)
		{
			TupleTableSlot *slot = slots[r];
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	sdesc = SPI_tuptable->tupdesc;

			ExecClearTuple(slot);
			for (i = 0; i < natts; i++)
			{
				if (map[i] < 0)
				{
					slot->tts_values[i] = (Datum) 0;
					slot->tts_isnull[i] = true;
				}
				else
					slot->tts_values[i] = SPI_getbinval(tup, sdesc, map[i] + 1, &slot->tts_isnull[i]);
			}
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(rel, slots, (int) n, GetCurrentCommandId(true), ti_options, bistate);
		if (rri->ri_NumIndices > 0)
			for (r = 0; r < n; r++)
				(void) ExecInsertIndexTuples(rri, slots[r], estate, false, false, NULL, NIL);
		ResetPerTupleExprContext(estate);
		for (r = 0; r < n; r++)
			ExecClearTuple(slots[r]);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batchcxt);
		SPI_freetuptable(SPI_tuptable);
		copied += n;
		CHECK_FOR_INTERRUPTS();
		INSTR_TIME_SET_CURRENT(t1);
		INSTR_TIME_SUBTRACT(t1, t0);
		yield_share(INSTR_TIME_GET_MILLISEC(t1), fleet_tier_duty);
	}

	SPI_cursor_close(portal);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	for (i = 0; i < FILL_BATCH; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, ti_options);
	MemoryContextDelete(batchcxt);
	UnregisterSnapshot(snap);
	SPI_finish();
	table_close(rel, NoLock);

	PG_RETURN_INT64(copied);
}
