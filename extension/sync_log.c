/*-------------------------------------------------------------------------
 *
 * sync_log.c
 *	  Change-log triggers of driver-app sync on fleet.stop and
 *	  fleet.proof_of_delivery.
 *
 * Pulls read fleet.sync_change: one row per driver whose copy of an entity
 * may have changed (sql/parts/50_sync_model.sql).  Every writer of a stop
 * or a proof of delivery (dispatch apps, event handlers, driver-app pushes)
 * feeds it through these triggers.  They are statement triggers with
 * transition tables, read here in C: a push's run updates a dozen stops and
 * adds a few proofs in one statement each, and their change-log rows go in
 * one insert per statement, not one trigger call and insert per row (which
 * was a tenth of a push).  An update's old and new rows are paired by the
 * stop's key; a row whose key changed counts as one deleted and one added.
 * The rarer parts, a stop entering or leaving a driver's scope (its job and
 * vehicle) and the server clock of a stop whose adjustable fields changed,
 * are one statement each per trigger call too: a dispatcher moving a job's
 * hundred stops to another driver costs three inserts, not two hundred.
 * No role may write the change log or the clocks, so the statements run as
 * the extension owner (SetUserIdAndSecContext, as ingest does) rather than
 * through SECURITY DEFINER; every name in them is schema-qualified and each
 * names the row's own tenant.
 *
 * fleet.sync_log_stop(): the stop for its old and new driver; when the
 * stop's driver or job changes (or it is inserted or deleted), its job and
 * the job's vehicle too; and when an adjustable field (address, lat, lon,
 * window_start, window_end) changes, the stop's server clock advances (the
 * push sets the client's clock afterwards when the client wins).
 * fleet.sync_log_pod(): new evidence changes its stop for the stop's driver
 * (one row per stop of the statement's proofs).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "utils/tuplestore.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_sync_log_stop);
PG_FUNCTION_INFO_V1(fleet_sync_log_pod);

static SPIPlanPtr stops_plan = NULL;
static SPIPlanPtr scope_plan = NULL;
static SPIPlanPtr clock_plan = NULL;
static SPIPlanPtr pod_plan = NULL;

static const FleetPlanSpec plans[] = {
	/* the statement's stops: $1 tenants, $2 drivers, $3 stops */
	{&stops_plan, FLEET_PLAN_GENERIC, 3, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID},
		"INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)"
		" SELECT u.t, u.d, 'stop', u.s FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) u (t, d, s)"},

	/*
	 * Stops that entered or left a driver's scope: $1 tenants, $2/$3 old and
	 * new drivers, $4/$5 old and new jobs (NULL: none); each driver gets
	 * each of the jobs and its vehicle, once per statement
	 */
	{&scope_plan, FLEET_PLAN_GENERIC, 5, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID},
		"WITH u AS ("
		"  SELECT DISTINCT u.t, d.d, x.j"
		"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"                    pg_catalog.unnest($4), pg_catalog.unnest($5)) u (t, od, nd, oj, nj)"
		"   CROSS JOIN LATERAL (VALUES (u.od), (u.nd)) d (d)"
		"   CROSS JOIN LATERAL (VALUES (u.oj), (u.nj)) x (j)"
		"   WHERE d.d IS NOT NULL AND x.j IS NOT NULL)"
		" INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)"
		" SELECT DISTINCT u.t, u.d, e.entity, e.id"
		"   FROM u JOIN fleet.job j ON j.tenant_id OPERATOR(pg_catalog.=) u.t AND j.job_id OPERATOR(pg_catalog.=) u.j"
		"  CROSS JOIN LATERAL (VALUES ('job'::pg_catalog.text, j.job_id), ('vehicle', j.vehicle_id)) e (entity, id)"
		"  WHERE e.id IS NOT NULL"},

	/*
	 * Stops whose adjustable fields changed: $1 tenants, $2 stops, $3 now in
	 * unix milliseconds
	 */
	{&clock_plan, FLEET_PLAN_GENERIC, 3, {INT8ARRAYOID, INT8ARRAYOID, INT8OID},
		"INSERT INTO fleet.sync_clock AS c (tenant_id, entity, entity_id, hlc_ms, hlc_counter, origin)"
		" SELECT u.t, 'stop', u.s, $3, 0, 'server'"
		"   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) u (t, s)"
		" ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE"
		"    SET hlc_ms = GREATEST(c.hlc_ms, EXCLUDED.hlc_ms),"
		"        hlc_counter = CASE WHEN EXCLUDED.hlc_ms OPERATOR(pg_catalog.>) c.hlc_ms THEN 0"
		"                           ELSE c.hlc_counter OPERATOR(pg_catalog.+) 1 END,"
		"        origin = 'server'"},

	/*
	 * $1 tenants, $2 stops of the statement's proofs: each stop's driver by
	 * the stop's key, one probe per proof (the LIMIT keeps the subquery a
	 * probe; as a join, the generic plan made while fleet.stop was small or
	 * had no statistics hashed every stop of every tenant for each proof)
	 */
	{&pod_plan, FLEET_PLAN_GENERIC, 2, {INT8ARRAYOID, INT8ARRAYOID},
		"INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)"
		" SELECT DISTINCT u.t, s.driver_id, 'stop', u.x"
		"   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) u (t, x)"
		"  CROSS JOIN LATERAL (SELECT s.driver_id FROM fleet.stop s"
		"                       WHERE s.tenant_id OPERATOR(pg_catalog.=) u.t AND s.stop_id OPERATOR(pg_catalog.=) u.x"
		"                         AND s.driver_id IS NOT NULL"
		"                       LIMIT 1) s"},
};

/*
 * The trigger data of a statement trigger with the transition tables its
 * event needs (old rows for UPDATE and DELETE, new rows for INSERT and
 * UPDATE).
 */
static TriggerData *
statement_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		((TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)) &&
		 trigdata->tg_oldtable == NULL) ||
		((TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) || TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)) &&
		 trigdata->tg_newtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as an AFTER ... FOR EACH STATEMENT trigger with transition tables", name),
				 errhint("REFERENCING OLD TABLE AS ... for UPDATE and DELETE, NEW TABLE AS ... for INSERT and UPDATE.")));
	return trigdata;
}

/* the attribute number of a column of the trigger's table */
static int
attno_of(TupleDesc desc, const char *name)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		elog(ERROR, "column \"%s\" not found in the row of the change-log trigger", name);
	return attno;
}

/* the adjustable fields of a stop: a change to any moves its server clock */
static const char *const adjustable[] = {"address", "lat", "lon", "window_start", "window_end"};

/*
 * Run an insert whose first parameters are the first nrows of each of the
 * bigint columns of cs, as arrays; args has room for them and holds any
 * parameters after them.  Nothing to insert, nothing run.
 */
static void
run_columns(SPIPlanPtr plan, const FleetColumns *cs, int nrows, Datum *args)
{
	static const Oid types[FLEET_COLUMNS_MAX] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID};

	Assert(cs->ncols <= 5);
	if (nrows == 0)
		return;
	FleetColumnsArgs(cs, types, nrows, args);
	if (SPI_execute_plan(plan, args, NULL, false, 0) < 0)
		elog(ERROR, "sync change-log insert failed");
}

/* one row of a transition table, with the columns the triggers read */
typedef struct StopRow
{
	HeapTuple	tup;
	int64		tenant;
	int64		stop;
	bool		stop_null;
	int64		driver;
	bool		driver_null;
	int64		job;
	bool		job_null;
	bool		paired;
} StopRow;

/*
 * The rows of a transition table (through a read pointer of its own: other
 * triggers of the statement read the same table).  With key_only, only
 * tenant_id and stop_id are read.
 */
static StopRow *
read_rows(Tuplestorestate *ts, TupleDesc desc, bool key_only, int *n)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	int			att_tenant = attno_of(desc, "tenant_id");
	int			att_stop = attno_of(desc, "stop_id");
	int			att_driver = key_only ? 0 : attno_of(desc, "driver_id");
	int			att_job = key_only ? 0 : attno_of(desc, "job_id");
	int64		count = tuplestore_tuple_count(ts);
	StopRow    *rows = palloc0(sizeof(StopRow) * Max(count, 1));
	int			i = 0;

	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
	while (i < count && tuplestore_gettupleslot(ts, true, false, slot))
	{
		StopRow    *r = &rows[i++];
		bool		isnull;

		r->tup = ExecCopySlotHeapTuple(slot);
		r->tenant = DatumGetInt64(heap_getattr(r->tup, att_tenant, desc, &isnull));
		r->stop = DatumGetInt64(heap_getattr(r->tup, att_stop, desc, &r->stop_null));
		if (!key_only)
		{
			r->driver = DatumGetInt64(heap_getattr(r->tup, att_driver, desc, &r->driver_null));
			r->job = DatumGetInt64(heap_getattr(r->tup, att_job, desc, &r->job_null));
		}
	}
	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(slot);
	*n = i;
	return rows;
}

static int
cmp_row(const void *a, const void *b)
{
	const StopRow *x = a;
	const StopRow *y = b;

	if (x->tenant != y->tenant)
		return x->tenant < y->tenant ? -1 : 1;
	if (x->stop != y->stop)
		return x->stop < y->stop ? -1 : 1;
	return 0;
}

/* the old row of a new one (same key), among old rows sorted by key */
static StopRow *
find_row(StopRow *rows, int n, StopRow *key)
{
	StopRow    *r = bsearch(key, rows, n, sizeof(StopRow), cmp_row);

	return (r != NULL && !r->paired) ? r : NULL;
}

/* what one statement's rows change, written at its end */
typedef struct StopBatch
{
	FleetColumns cs;			/* change-log rows: tenant, driver, stop */
	int			n;
	FleetColumns scope;			/* scope moves: tenant, old and new driver and job */
	int			nscope;
	FleetColumns clock;			/* adjusted stops: tenant, stop */
	int			nclock;
	int			adjustable_att[lengthof(adjustable)];	/* their attribute numbers */
} StopBatch;

/* one column of a row of a batch, NULL or not */
static void
put(FleetColumns *cs, int col, int row, int64 value, bool isnull)
{
	cs->v[col][row] = Int64GetDatum(isnull ? 0 : value);
	cs->n[col][row] = isnull;
}

static void
batch_add(StopBatch *b, int64 tenant, int64 driver, int64 stop)
{
	put(&b->cs, 0, b->n, tenant, false);
	put(&b->cs, 1, b->n, driver, false);
	put(&b->cs, 2, b->n, stop, false);
	b->n++;
}

/* does any adjustable field differ between the old and new row? */
static bool
adjusted(StopBatch *b, TupleDesc desc, HeapTuple oldtup, HeapTuple newtup)
{
	int			k;

	for (k = 0; k < lengthof(adjustable); k++)
		if (FleetColumnDistinct(oldtup, newtup, desc, b->adjustable_att[k]))
			return true;
	return false;
}

/*
 * One changed row: o is the old row (NULL for an insert), nw the new one
 * (NULL for a delete).
 */
static void
log_stop(StopBatch *b, TupleDesc desc, StopRow *o, StopRow *nw)
{
	int64		tenant = nw ? nw->tenant : o->tenant;
	bool		odn = o ? o->driver_null : true;
	bool		ndn = nw ? nw->driver_null : true;
	bool		osn = o ? o->stop_null : true;
	bool		nsn = nw ? nw->stop_null : true;
	bool		ojn = o ? o->job_null : true;
	bool		njn = nw ? nw->job_null : true;
	int64		od = o ? o->driver : 0;
	int64		nd = nw ? nw->driver : 0;
	int64		oj = o ? o->job : 0;
	int64		nj = nw ? nw->job : 0;
	bool		upd = o != NULL && nw != NULL;

	/* the stop itself, for its old and new driver */
	if (upd && odn == ndn && (odn || od == nd))
	{
		/* the common case (a status or field change): one row */
		if (!ndn)
			batch_add(b, tenant, nd, nw->stop);
	}
	else
	{
		if (!odn && !osn)
			batch_add(b, tenant, od, o->stop);
		if (!ndn && !nsn && (odn || osn || od != nd || o->stop != nw->stop))
			batch_add(b, tenant, nd, nw->stop);
	}

	/* a stop entering or leaving a driver's scope moves its job and vehicle */
	if (!upd || odn != ndn || (!odn && od != nd) || ojn != njn || (!ojn && oj != nj))
	{
		put(&b->scope, 0, b->nscope, tenant, false);
		put(&b->scope, 1, b->nscope, od, odn);
		put(&b->scope, 2, b->nscope, nd, ndn);
		put(&b->scope, 3, b->nscope, oj, ojn);
		put(&b->scope, 4, b->nscope, nj, njn);
		b->nscope++;
	}

	/* anyone changing the adjustable fields advances the stop's clock */
	if (upd && adjusted(b, desc, o->tup, nw->tup))
	{
		put(&b->clock, 0, b->nclock, tenant, false);
		put(&b->clock, 1, b->nclock, nw->stop, false);
		b->nclock++;
	}
}

/*
 * fleet.sync_log_stop() RETURNS trigger: AFTER INSERT, UPDATE, DELETE ON
 * fleet.stop FOR EACH STATEMENT, with transition tables.
 */
Datum
fleet_sync_log_stop(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = statement_trigger(fcinfo, "fleet.sync_log_stop");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	StopRow    *olds = NULL;
	StopRow    *news = NULL;
	int			nold = 0;
	int			nnew = 0;
	int			i;
	StopBatch	b;
	FleetOwnerSwitch owner_sw;

	if (trigdata->tg_oldtable)
		olds = read_rows(trigdata->tg_oldtable, desc, false, &nold);
	if (trigdata->tg_newtable)
		news = read_rows(trigdata->tg_newtable, desc, false, &nnew);
	if (nold == 0 && nnew == 0)
		return PointerGetDatum(NULL);
	FleetColumnsInit(&b.cs, 3, 2 * (nold + nnew));
	b.n = 0;
	FleetColumnsInit(&b.scope, 5, nold + nnew);
	b.nscope = 0;
	FleetColumnsInit(&b.clock, 2, nold + nnew);
	b.nclock = 0;
	for (i = 0; i < lengthof(adjustable); i++)
		b.adjustable_att[i] = attno_of(desc, adjustable[i]);

	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));

	/* new rows with their old row (same key), then old rows left alone */
	if (nold > 1)
		qsort(olds, nold, sizeof(StopRow), cmp_row);
	for (i = 0; i < nnew; i++)
	{
		StopRow    *o = (nold > 0 && !news[i].stop_null) ? find_row(olds, nold, &news[i]) : NULL;

		if (o)
			o->paired = true;
		log_stop(&b, desc, o, &news[i]);
	}
	for (i = 0; i < nold; i++)
		if (!olds[i].paired)
			log_stop(&b, desc, &olds[i], NULL);

	{
		Datum		scope_args[5];
		Datum		clock_args[3];
		Datum		stop_args[3];

		run_columns(scope_plan, &b.scope, b.nscope, scope_args);
		if (b.nclock > 0)
		{
			/* unix milliseconds of the clock, rounded as ::bigint does */
			int64		us = GetCurrentTimestamp() +
				(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC;

			clock_args[2] = Int64GetDatum((us + 500) / 1000);
			run_columns(clock_plan, &b.clock, b.nclock, clock_args);
		}
		run_columns(stops_plan, &b.cs, b.n, stop_args);
	}

	SPI_finish();
	FleetAsCaller(&owner_sw);
	return PointerGetDatum(NULL);
}

/*
 * fleet.sync_log_pod() RETURNS trigger: AFTER INSERT ON
 * fleet.proof_of_delivery FOR EACH STATEMENT, with the new rows.
 */
Datum
fleet_sync_log_pod(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = statement_trigger(fcinfo, "fleet.sync_log_pod");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	StopRow    *rows;
	int			n;
	int			m = 0;
	int			i;
	FleetColumns cs;
	FleetOwnerSwitch owner_sw;

	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("fleet.sync_log_pod() must be called as an AFTER INSERT trigger")));
	rows = read_rows(trigdata->tg_newtable, desc, true, &n);
	FleetColumnsInit(&cs, 2, Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (rows[i].stop_null)
			continue;
		cs.v[0][m] = Int64GetDatum(rows[i].tenant);
		cs.v[1][m] = Int64GetDatum(rows[i].stop);
		m++;
	}
	if (m == 0)
		return PointerGetDatum(NULL);

	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));
	{
		Datum		args[2];

		run_columns(pod_plan, &cs, m, args);
	}
	SPI_finish();
	FleetAsCaller(&owner_sw);
	return PointerGetDatum(NULL);
}
