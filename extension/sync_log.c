/*-------------------------------------------------------------------------
 *
 * sync_log.c
 *	  Change-log triggers of driver-app sync on fleet.stop and
 *	  fleet.proof_of_delivery.
 *
 * Pulls read fleet.sync_change: one row per driver whose copy of an entity
 * may have changed (sql/parts/50_sync_model.sql).  Every writer of a stop
 * or a proof of delivery (dispatch apps, event handlers, driver-app pushes)
 * feeds it through these row triggers, which run on every such row: they
 * are C so a status change costs one insert, not a PL/pgSQL call under a
 * SET search_path (the clause alone cost more than the insert).  No role
 * may write the change log or the clocks, so the statements run as the
 * extension owner (SetUserIdAndSecContext, as ingest does) rather than
 * through SECURITY DEFINER; every name in them is schema-qualified and each
 * names the row's own tenant.
 *
 * fleet.sync_log_stop(): the stop for its old and new driver; when the
 * stop's driver or job changes (or it is inserted or deleted), its job and
 * the job's vehicle too; and when an adjustable field (address, lat, lon,
 * window_start, window_end) changes, the stop's server clock advances (the
 * push sets the client's clock afterwards when the client wins).
 * fleet.sync_log_pod(): new evidence changes its stop for the stop's driver.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_sync_log_stop);
PG_FUNCTION_INFO_V1(fleet_sync_log_pod);

static SPIPlanPtr one_plan = NULL;
static SPIPlanPtr pair_plan = NULL;
static SPIPlanPtr scope_plan = NULL;
static SPIPlanPtr clock_plan = NULL;
static SPIPlanPtr pod_plan = NULL;

static const FleetPlanSpec plans[] = {
	/* $1 tenant, $2 driver, $3 stop */
	{&one_plan, FLEET_PLAN_GENERIC, 3, {INT8OID, INT8OID, INT8OID},
		"INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id) VALUES ($1, $2, 'stop', $3)"},

	/* $1 tenant, $2/$3 old driver and stop, $4/$5 new driver and stop */
	{&pair_plan, FLEET_PLAN_GENERIC, 5, {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID},
		"INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)"
		" SELECT DISTINCT $1, v.d, 'stop', v.x FROM (VALUES ($2, $3), ($4, $5)) v (d, x)"
		"  WHERE v.d IS NOT NULL AND v.x IS NOT NULL"},

	/* $1 tenant, $2/$3 old and new driver, $4/$5 old and new job (NULL: none) */
	{&scope_plan, FLEET_PLAN_GENERIC, 5, {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID},
		"INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)"
		" SELECT DISTINCT $1, d.d, e.entity, e.id"
		"   FROM (VALUES ($2), ($3)) d (d)"
		"  CROSS JOIN LATERAL ("
		"        SELECT 'job'::text AS entity, j.job_id AS id FROM fleet.job j"
		"         WHERE j.tenant_id OPERATOR(pg_catalog.=) $1 AND j.job_id OPERATOR(pg_catalog.=) ANY (ARRAY[$4, $5])"
		"        UNION"
		"        SELECT 'vehicle', j.vehicle_id FROM fleet.job j"
		"         WHERE j.tenant_id OPERATOR(pg_catalog.=) $1 AND j.vehicle_id IS NOT NULL"
		"           AND j.job_id OPERATOR(pg_catalog.=) ANY (ARRAY[$4, $5])) e"
		"  WHERE d.d IS NOT NULL"},

	/* $1 tenant, $2 stop, $3 now in unix milliseconds */
	{&clock_plan, FLEET_PLAN_GENERIC, 3, {INT8OID, INT8OID, INT8OID},
		"INSERT INTO fleet.sync_clock AS c (tenant_id, entity, entity_id, hlc_ms, hlc_counter, origin)"
		" VALUES ($1, 'stop', $2, $3, 0, 'server')"
		" ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE"
		"    SET hlc_ms = GREATEST(c.hlc_ms, EXCLUDED.hlc_ms),"
		"        hlc_counter = CASE WHEN EXCLUDED.hlc_ms OPERATOR(pg_catalog.>) c.hlc_ms THEN 0"
		"                           ELSE c.hlc_counter OPERATOR(pg_catalog.+) 1 END,"
		"        origin = 'server'"},

	/* $1 tenant, $2 the proof's stop */
	{&pod_plan, FLEET_PLAN_GENERIC, 2, {INT8OID, INT8OID},
		"INSERT INTO fleet.sync_change (tenant_id, driver_id, entity, entity_id)"
		" SELECT s.tenant_id, s.driver_id, 'stop', s.stop_id FROM fleet.stop s"
		"  WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 AND s.stop_id OPERATOR(pg_catalog.=) $2"
		"    AND s.driver_id IS NOT NULL"},
};

static TriggerData *
row_trigger(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() must be called as an AFTER ... FOR EACH ROW trigger", name)));
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

/* a column of the row by name, as a Datum (isnull set) */
static Datum
column(HeapTuple tup, TupleDesc desc, const char *name, bool *isnull)
{
	return heap_getattr(tup, attno_of(desc, name), desc, isnull);
}

/* IS DISTINCT FROM for the adjustable fields' types */
static bool
distinct(HeapTuple a, HeapTuple b, TupleDesc desc, const char *name, Oid type)
{
	int			attno = attno_of(desc, name);
	bool		an;
	bool		bn;
	Datum		x = heap_getattr(a, attno, desc, &an);
	Datum		y = heap_getattr(b, attno, desc, &bn);

	if (an || bn)
		return an != bn;
	switch (type)
	{
		case TEXTOID:
			return !DatumGetBool(DirectFunctionCall2Coll(texteq, DEFAULT_COLLATION_OID, x, y));
		case FLOAT8OID:
			return float8_cmp_internal(DatumGetFloat8(x), DatumGetFloat8(y)) != 0;
		case TIMESTAMPTZOID:
			return DatumGetTimestampTz(x) != DatumGetTimestampTz(y);
	}
	elog(ERROR, "unexpected type %u", type);
	return true;
}

static void
run(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	if (SPI_execute_plan(plan, args, nulls, false, 0) < 0)
		elog(ERROR, "sync change-log insert failed");
}

/*
 * fleet.sync_log_stop() RETURNS trigger: AFTER INSERT OR UPDATE OR DELETE
 * ON fleet.stop FOR EACH ROW.
 */
Datum
fleet_sync_log_stop(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = row_trigger(fcinfo, "fleet.sync_log_stop");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	bool		ins = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event);
	bool		del = TRIGGER_FIRED_BY_DELETE(trigdata->tg_event);
	bool		upd = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event);
	HeapTuple	oldtup = ins ? NULL : trigdata->tg_trigtuple;
	HeapTuple	newtup = ins ? trigdata->tg_trigtuple : upd ? trigdata->tg_newtuple : NULL;
	Datum		tenant;
	Datum		od = 0, nd = 0, os = 0, ns = 0, oj = 0, nj = 0;
	bool		odn = true, ndn = true, osn = true, nsn = true, ojn = true, njn = true;
	bool		isnull;
	Oid			saved_uid;
	int			saved_ctx;

	tenant = column(del ? oldtup : newtup, desc, "tenant_id", &isnull);
	if (oldtup)
	{
		od = column(oldtup, desc, "driver_id", &odn);
		os = column(oldtup, desc, "stop_id", &osn);
		oj = column(oldtup, desc, "job_id", &ojn);
	}
	if (newtup)
	{
		nd = column(newtup, desc, "driver_id", &ndn);
		ns = column(newtup, desc, "stop_id", &nsn);
		nj = column(newtup, desc, "job_id", &njn);
	}

	FleetAsOwner(&saved_uid, &saved_ctx);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));

	/* the stop itself, for its old and new driver */
	if (upd && odn == ndn && (odn || DatumGetInt64(od) == DatumGetInt64(nd)) &&
		DatumGetInt64(os) == DatumGetInt64(ns))
	{
		/* the common case (a status or field change): one row */
		if (!ndn)
		{
			Datum		args[3] = {tenant, nd, ns};

			run(one_plan, args, NULL);
		}
	}
	else
	{
		Datum		args[5] = {tenant, od, os, nd, ns};
		char		nulls[5] = {' ', odn ? 'n' : ' ', osn ? 'n' : ' ', ndn ? 'n' : ' ', nsn ? 'n' : ' '};

		run(pair_plan, args, nulls);
	}

	/* a stop entering or leaving a driver's scope moves its job and vehicle */
	if (!upd || odn != ndn || (!odn && DatumGetInt64(od) != DatumGetInt64(nd)) ||
		ojn != njn || (!ojn && DatumGetInt64(oj) != DatumGetInt64(nj)))
	{
		Datum		args[5] = {tenant, od, nd, oj, nj};
		char		nulls[5] = {' ', odn ? 'n' : ' ', ndn ? 'n' : ' ', ojn ? 'n' : ' ', njn ? 'n' : ' '};

		run(scope_plan, args, nulls);
	}

	/* anyone changing the adjustable fields advances the stop's clock */
	if (upd &&
		(distinct(oldtup, newtup, desc, "address", TEXTOID) ||
		 distinct(oldtup, newtup, desc, "lat", FLOAT8OID) ||
		 distinct(oldtup, newtup, desc, "lon", FLOAT8OID) ||
		 distinct(oldtup, newtup, desc, "window_start", TIMESTAMPTZOID) ||
		 distinct(oldtup, newtup, desc, "window_end", TIMESTAMPTZOID)))
	{
		/* unix milliseconds of clock_timestamp(), rounded as ::bigint does */
		int64		us = GetCurrentTimestamp() +
			(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC;
		Datum		args[3] = {tenant, ns, Int64GetDatum((us + 500) / 1000)};

		run(clock_plan, args, NULL);
	}

	SPI_finish();
	FleetAsCaller(saved_uid, saved_ctx);
	return PointerGetDatum(NULL);
}

/*
 * fleet.sync_log_pod() RETURNS trigger: AFTER INSERT ON
 * fleet.proof_of_delivery FOR EACH ROW.
 */
Datum
fleet_sync_log_pod(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = row_trigger(fcinfo, "fleet.sync_log_pod");
	TupleDesc	desc = trigdata->tg_relation->rd_att;
	HeapTuple	tup = trigdata->tg_trigtuple;
	Datum		args[2];
	bool		tn;
	bool		sn;
	Oid			saved_uid;
	int			saved_ctx;

	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("fleet.sync_log_pod() must be called as an AFTER INSERT trigger")));
	args[0] = column(tup, desc, "tenant_id", &tn);
	args[1] = column(tup, desc, "stop_id", &sn);
	if (tn || sn)
		return PointerGetDatum(NULL);

	FleetAsOwner(&saved_uid, &saved_ctx);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));
	run(pod_plan, args, NULL);
	SPI_finish();
	FleetAsCaller(saved_uid, saved_ctx);
	return PointerGetDatum(NULL);
}
