/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  fleet.replay(): rebuild projections from a time range of the event log.
 *
 * In one transaction, as the extension owner:
 *	1. lock every class cursor (in class order, like the workers), so live
 *	   consumption waits and the set of applied events cannot move;
 *	2. fleet.replay_rewind() collects the events to re-apply into a
 *	   temporary table and rewinds the projections they produced (see
 *	   sql/parts/45_replay.sql);
 *	3. apply them again, in commit order (txid, event_id), through the same
 *	   handler calls as the live pipeline (pipeline.c), each in its own
 *	   subtransactions (pipeline.c);
 *	4. fleet.replay_finish() recomputes the touched invoices.
 * The log itself is only read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_replay);

/*
 * fleet.replay(from_time timestamptz, to_time timestamptz)
 *	RETURNS TABLE (replayed bigint, failed bigint)
 */
Datum
fleet_replay(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz from_time;
	TimestampTz to_time;
	FleetApplier applier;
	FleetOwnerSwitch owner_sw;
	int			save_nestlevel;
	Oid			argtypes[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[2];
	SPITupleTable *tt;
	uint64		ntup;
	uint64		i;
	int64		failed = 0;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("replay range bounds must not be null")));
	from_time = PG_GETARG_TIMESTAMPTZ(0);
	to_time = PG_GETARG_TIMESTAMPTZ(1);
	if (to_time <= from_time)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replay range is empty"),
				 errdetail("to_time must be later than from_time.")));
	InitMaterializedSRF(fcinfo, 0);

	FleetAsOwner(&owner_sw);
	save_nestlevel = NewGUCNestLevel();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* 1. pause live consumption */
	if (SPI_execute("SELECT c.class FROM fleet.consumer_cursor c ORDER BY c.class FOR UPDATE",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the consumer cursors");

	/* 2. collect and rewind */
	args[0] = TimestampTzGetDatum(from_time);
	args[1] = TimestampTzGetDatum(to_time);
	if (SPI_execute_with_args("SELECT fleet.replay_rewind($1, $2)", 2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "replay rewind failed");

	/* 3. re-apply in commit order */
	FleetApplierInit(&applier, NULL);
	if (SPI_execute("SELECT r.tenant_id, r.event_id, r.kind, r.payload, r.occurred_at FROM pg_temp.fleet_replay_event r"
					" ORDER BY r.txid, r.event_id", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "replay read failed");
	tt = SPI_tuptable;
	ntup = SPI_processed;
	if (ntup > 0)
	{
		FleetEvent *ev = palloc(sizeof(FleetEvent) * ntup);

		for (i = 0; i < ntup; i++)
		{
			HeapTuple	tup = tt->vals[i];
			bool		isnull;

			ev[i].tenant = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
			ev[i].event_id = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));
			ev[i].kind = SPI_getvalue(tup, tt->tupdesc, 3);
			ev[i].payload = SPI_getbinval(tup, tt->tupdesc, 4, &isnull);
			ev[i].occurred = SPI_getbinval(tup, tt->tupdesc, 5, &isnull);
			ev[i].logged_at = (Datum) 0;
		}
		FleetApplyEvents(&applier, ev, (int) ntup);
		for (i = 0; i < ntup; i++)
		{
			if (ev[i].ok)
				continue;
			failed++;
			ereport(WARNING,
					(errmsg("replay of event " INT64_FORMAT " (%s) failed: %s", ev[i].event_id, ev[i].kind, ev[i].errmsg),
					 errdetail("SQLSTATE %s", ev[i].sqlstate)));
		}
	}

	/* 4. invoices */
	if (SPI_execute("SELECT fleet.replay_finish()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "replay finish failed");
	SPI_finish();
	AtEOXact_GUC(false, save_nestlevel);
	FleetAsCaller(&owner_sw);

	values[0] = Int64GetDatum((int64) ntup);
	values[1] = Int64GetDatum(failed);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
