/*-------------------------------------------------------------------------
 *
 * sync_version.c
 *	  fleet.sync_bump_version(): the version of a job or stop moves with
 *	  every change, for driver apps' optimistic concurrency.
 *
 * A BEFORE UPDATE row trigger on fleet.job and fleet.stop.  An update that
 * changes anything but does not set the version increments it, so an app
 * that saw the old version detects the conflict; a status change that does
 * not name its event clears status_event_id (the status no longer comes
 * from an event), except while fleet.reconcile() restores an event's status
 * (the transaction-local setting fleet_sync.repair = on).
 *
 * It runs on every update of every stop: as PL/pgSQL under a SET
 * search_path it cost a call of the interpreter and a GUC save and restore
 * per row.  "Changes anything" is the row's IS DISTINCT FROM (record_eq:
 * each column by its type's equality, NULLs equal), as PL/pgSQL had it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_sync_bump_version);

static int
column(TupleDesc desc, const char *name)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("fleet.sync_bump_version() needs a column \"%s\"", name)));
	return attno;
}

/*
 * a IS DISTINCT FROM b for one column of two rows, by the equality operator
 * of the column's type (its default btree or hash opclass) and collation;
 * also used by the change-log triggers (sync_log.c)
 */
bool
FleetColumnDistinct(HeapTuple a, HeapTuple b, TupleDesc desc, int attno)
{
	Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
	TypeCacheEntry *tc;
	bool		an;
	bool		bn;
	Datum		x = heap_getattr(a, attno, desc, &an);
	Datum		y = heap_getattr(b, attno, desc, &bn);

	if (an || bn)
		return an != bn;
	tc = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR_FINFO);
	if (!OidIsValid(tc->eq_opr_finfo.fn_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not identify an equality operator for type %s", format_type_be(att->atttypid))));
	return !DatumGetBool(FunctionCall2Coll(&tc->eq_opr_finfo, att->attcollation, x, y));
}

/* the rows differ: NOT record_eq(old, new) (rows are never NULL here) */
static bool
row_distinct(HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	static FmgrInfo *record_eq_fn = NULL;

	if (record_eq_fn == NULL)
	{
		FmgrInfo   *f = MemoryContextAlloc(TopMemoryContext, sizeof(FmgrInfo));

		fmgr_info_cxt(F_RECORD_EQ, f, TopMemoryContext);
		record_eq_fn = f;
	}
	/*
	 * record_eq keeps its per-column comparison data in fn_extra (in
	 * TopMemoryContext here), redone when the row type is not the one it
	 * was made for
	 */
	return !DatumGetBool(FunctionCall2Coll(record_eq_fn, InvalidOid,
										   heap_copy_tuple_as_datum(oldtup, desc),
										   heap_copy_tuple_as_datum(newtup, desc)));
}

/*
 * fleet.sync_bump_version() RETURNS trigger: BEFORE UPDATE ... FOR EACH ROW
 * on a table with columns version (bigint), status (text) and
 * status_event_id (bigint).
 */
Datum
fleet_sync_bump_version(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	oldtup;
	HeapTuple	newtup;
	int			att_version;
	int			att_status;
	int			att_event;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			n = 0;
	bool		vn;
	bool		on;
	Datum		v;
	Datum		ov;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("fleet.sync_bump_version() must be called as a BEFORE UPDATE ... FOR EACH ROW trigger")));
	desc = td->tg_relation->rd_att;
	oldtup = td->tg_trigtuple;
	newtup = td->tg_newtuple;
	att_version = column(desc, "version");
	att_status = column(desc, "status");
	att_event = column(desc, "status_event_id");

	/* IF NEW.version = OLD.version AND NEW IS DISTINCT FROM OLD */
	v = heap_getattr(newtup, att_version, desc, &vn);
	ov = heap_getattr(oldtup, att_version, desc, &on);
	if (!vn && !on && DatumGetInt64(v) == DatumGetInt64(ov) && row_distinct(oldtup, newtup, desc))
	{
		cols[n] = att_version;
		values[n] = Int64GetDatum(DatumGetInt64(ov) + 1);
		n++;
	}

	/*
	 * status_event_id names the event that set the status: a status set any
	 * other way (a dispatcher) no longer comes from that event
	 */
	if (FleetColumnDistinct(oldtup, newtup, desc, att_status) &&
		!FleetColumnDistinct(oldtup, newtup, desc, att_event))
	{
		const char *repair = GetConfigOption("fleet_sync.repair", true, false);

		if (repair == NULL || strcmp(repair, "on") != 0)
		{
			cols[n] = att_event;
			values[n] = (Datum) 0;
			nulls[n] = true;
			n++;
		}
	}
	if (n == 0)
		return PointerGetDatum(newtup);
	return PointerGetDatum(heap_modify_tuple_by_cols(newtup, desc, n, cols, values, nulls));
}
