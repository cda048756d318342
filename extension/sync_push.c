/*-------------------------------------------------------------------------
 *
 * sync_push.c
 *	  The fast path of fleet.sync_push(): a run of a driver app's mutations
 *	  that meet no conflict, decided in memory and written set-based.
 *
 * fleet.sync_apply() (sql/parts/51_sync_push.sql) decides one mutation in
 * about twenty statements.  Most pushes are a driver's ordinary day: their
 * own stops going en route, arrived, proof of delivery, completed, each
 * written against the version the app last saw.  fleet.sync_apply_run()
 * takes a run of consecutive new mutations and reads it up to the first
 * one that cannot be plain whatever the state (its workflow, arguments or
 * clock); it locks the stops of that prefix in one statement (in stop id
 * order; none when the run starts with a mutation for the single path) and
 * walks the prefix in id order with the stops' state in memory.
 * It stops at the first mutation that needs more than the plain rules: a
 * conflict of any kind (stale base version, stop reassigned or cancelled),
 * a rejection, a job, a field adjustment, the clock rule or a custom merge
 * function, or anything it cannot read exactly as fleet.sync_apply() would.
 * What it decided is written with one statement per table (the stops' final
 * state, the status history, the proofs of delivery), and one row per
 * decided mutation comes back with the same fields fleet.sync_apply()
 * returns, trail event included (its id taken here, its payload built by
 * the same expressions).  The caller decides the mutation it stopped at
 * one at a time and calls it again for the rest.  If a write fails (a
 * constraint, an unparsable captured_at), the caller rolls the whole run
 * back and decides it one at a time, so a bad mutation is rejected alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_sync_apply_run);

enum
{
	A_TENANT, A_CLIENT, A_DRIVER, A_ID, A_WORKFLOW, A_ARGS, A_CLIENT_TIME,
	A_BASE_VERSION, A_HLC, NARGS
};

typedef enum
{
	ACT_STATUS, ACT_EVIDENCE, ACT_OTHER
} Action;

typedef enum
{
	RULE_SERVER_WINS, RULE_CLIENT_WINS, RULE_FORWARD, RULE_EVIDENCE, RULE_OTHER
} Rule;

/* a row of fleet.sync_workflow, as far as the fast path needs it */
typedef struct Workflow
{
	char	   *name;
	bool		stop;			/* entity is a stop */
	Action		action;
	Rule		rule;
	char	   *rule_name;
	char	   *evidence_kind;	/* NULL: the app names it */
} Workflow;

/* a locked stop, as the run has left it so far */
typedef struct StopState
{
	int64		stop_id;
	char	   *status;
	int			rank;			/* fleet.stop_status_rank(status) */
	int64		version;
	bool		in_scope;
	char	   *job_code;
	Datum		seq;
	bool		seq_null;
	TimestampTz status_at;
	bool		status_at_null;
	int64		status_event;
	bool		status_event_null;
	TimestampTz arrived_at;
	bool		arrived_null;
	TimestampTz completed_at;
	bool		completed_null;
	ItemPointerData tid;		/* the locked version */
	bool		changed;
} StopState;

/* what the run decided for one mutation */
typedef enum
{
	EFFECT_STATUS = 1, EFFECT_EVIDENCE = 2, EFFECT_NONE = 3
} Effect;

typedef struct Decided
{
	int			m;				/* index into the run */
	int64		stop_id;		/* the stop its args name */
	Effect		effect;
	Workflow   *w;
	StopState  *stop;
	int64		event_id;
	int64		version;		/* the stop's, after the mutation */
	TimestampTz occurred;
	char	   *status;			/* a status mutation's new status */
	int			rank;			/* and its fleet.stop_status_rank() */
	char	   *old_status;		/* EFFECT_STATUS: the status history row */
	TimestampTz old_status_at;
	bool		old_status_at_null;
	int64		old_event;
	bool		old_event_null;
	char	   *job_code;		/* for the trail payload */
	Datum		seq;
	bool		seq_null;
	char	   *evidence_kind;	/* EFFECT_EVIDENCE */
	Jsonb	   *metadata;
	char	   *captured_at;	/* as sent, NULL if not */
	Datum		payload;		/* the trail event's */
	Datum		captured;		/* captured_at as stored */
} Decided;

static SPIPlanPtr workflow_plan = NULL;
static SPIPlanPtr rank_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr stop_plan = NULL;
static SPIPlanPtr history_plan = NULL;
static SPIPlanPtr pod_plan = NULL;

static const FleetPlanSpec plans[] = {
	{&workflow_plan, FLEET_PLAN_AUTO, 0, {InvalidOid},
		"SELECT w.workflow, w.entity, w.action, w.rule, w.evidence_kind FROM fleet.sync_workflow w"},

	/*
	 * The ranks of statuses come from fleet.stop_status_rank() itself, so
	 * the forward-only rule here is the one fleet.sync_apply() applies.
	 */
	{&rank_plan, FLEET_PLAN_GENERIC, 1, {TEXTARRAYOID},
		"SELECT fleet.stop_status_rank(x.s) FROM ROWS FROM (pg_catalog.unnest($1)) WITH ORDINALITY x (s, o)"
		" ORDER BY x.o"},

	/*
	 * $1 tenant, $2 stop ids (ascending), $3 the pushing driver: each stop
	 * by its whole primary key, locked in the order of $2, and its job by
	 * its own key, so a run reads the stops it names whatever the tenant's
	 * size (the probes a foreign key check makes).  As one join of the
	 * tenant's stops and jobs with stop_id = ANY ($2), the generic plan is
	 * free to reach the stops through the tenant: while fleet.job had no
	 * statistics (fewer rows than autoanalyze waits for) it walked every job
	 * of the tenant and every stop and stop version of each, for every run,
	 * and the push slowed down with every version the tenant's stops left.
	 */
	{&lock_plan, FLEET_PLAN_GENERIC, 3, {INT8OID, INT8ARRAYOID, INT8OID},
		"SELECT s.stop_id, s.status, s.version, s.driver_id OPERATOR(pg_catalog.=) $3, s.code, s.seq,"
		"       s.status_at, s.status_event_id, s.arrived_at, s.completed_at, fleet.stop_status_rank(s.status),"
		"       s.ctid"
		"  FROM ROWS FROM (pg_catalog.unnest($2)) WITH ORDINALITY k (id, o)"
		" CROSS JOIN LATERAL ("
		"       SELECT x.ctid, x.stop_id, x.status, x.version, x.driver_id, x.seq, x.status_at, x.status_event_id,"
		"              x.arrived_at, x.completed_at,"
		"              (SELECT j.code FROM fleet.job j"
		"                WHERE j.tenant_id OPERATOR(pg_catalog.=) x.tenant_id"
		"                  AND j.job_id OPERATOR(pg_catalog.=) x.job_id) AS code"
		"         FROM fleet.stop x"
		"        WHERE x.tenant_id OPERATOR(pg_catalog.=) $1 AND x.stop_id OPERATOR(pg_catalog.=) k.id"
		"          FOR UPDATE OF x) s"
		" ORDER BY k.o"},

	/*
	 * The changed stops' final state, each stop by the version the lock
	 * returned ($1: the run holds the lock, so it is still the current one),
	 * its tenant returned and checked.  No condition on the tenant in the
	 * statement: with one, the generic plan may read the whole tenant's
	 * stops by it (a generic estimate of a tenant's rows is the average
	 * tenant's), while a tid reaches its one row.
	 */
	{&stop_plan, FLEET_PLAN_GENERIC, 8,
		{TIDARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID,
		TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID},
		"UPDATE fleet.stop s"
		"   SET status = u.status, status_at = u.status_at, status_event_id = u.event_id,"
		"       arrived_at = u.arrived_at, completed_at = u.completed_at, version = u.version,"
		"       updated_at = pg_catalog.now()"
		"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"                  pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
		"                  pg_catalog.unnest($7), pg_catalog.unnest($8))"
		"       u (tid, stop_id, status, status_at, event_id, arrived_at, completed_at, version)"
		" WHERE s.ctid OPERATOR(pg_catalog.=) u.tid AND s.stop_id OPERATOR(pg_catalog.=) u.stop_id"
		" RETURNING s.tenant_id"},

	/* $1 tenant, then one status history row per status change */
	{&history_plan, FLEET_PLAN_GENERIC, 7,
		{INT8OID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, TEXTARRAYOID},
		"INSERT INTO fleet.status_change (tenant_id, entity, entity_id, event_id, old_status, old_status_at,"
		"                                 old_event_id, new_status)"
		"SELECT $1, 'stop', u.*"
		"  FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4),"
		"                  pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7)) u"},

	/* $1 tenant, $2 driver, then one proof per evidence */
	{&pod_plan, FLEET_PLAN_GENERIC, 7,
		{INT8OID, INT8OID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID, INT8ARRAYOID},
		"INSERT INTO fleet.proof_of_delivery (tenant_id, stop_id, kind, driver_id, captured_at, metadata,"
		"                                     source_event_id)"
		"SELECT $1, u.stop_id, u.kind, $2, u.captured_at, u.metadata, u.event_id"
		"  FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
		"                  pg_catalog.unnest($6), pg_catalog.unnest($7))"
		"       u (stop_id, kind, captured_at, metadata, event_id)"},
};

/*
 * The evidence kinds of fleet.proof_of_delivery's CHECK (and of
 * fleet.sync_apply()).  Only a shortcut: a kind accepted here that the
 * table refused would fail the run's insert, and the run would then be
 * decided one mutation at a time.
 */
static bool
valid_evidence_kind(const char *kind)
{
	return strcmp(kind, "signature") == 0 || strcmp(kind, "photo") == 0 || strcmp(kind, "barcode") == 0 ||
		strcmp(kind, "note") == 0 || strcmp(kind, "inspection") == 0;
}

/*
 * "<1-15 digits>:<1-9 digits>" whose wall time (unix ms) is at most the
 * statement's start + fleet.future_margin, as fleet.sync_parse_hlc()
 * accepts (it reads statement_timestamp(), the same instant)
 */
static bool
valid_hlc(const char *s)
{
	int			d = 0;
	int64		ms = 0;
	int64		limit_us;

	while (*s >= '0' && *s <= '9')
		ms = ms * 10 + (*s++ - '0'), d++;
	if (d < 1 || d > 15 || *s++ != ':')
		return false;
	d = 0;
	while (*s >= '0' && *s <= '9')
		s++, d++;
	if (d < 1 || d > 9 || *s != '\0')
		return false;
	/* in unix microseconds: 15 digits of ms times 1000 fit an int64 */
	limit_us = GetCurrentStatementStartTimestamp() + (int64) fleet_future_margin_ms * 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	return ms * 1000 <= limit_us;
}

/* a JSON number that (args->>key)::bigint reads without error */
static bool
jsonb_int64(JsonbValue *v, int64 *out)
{
	char	   *text;
	char	   *p;

	if (v->type != jbvNumeric)
		return false;
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	p = text;
	if (*p == '-')
		p++;
	if (*p == '\0' || strlen(p) > 18)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	*out = strtoi64(text, NULL, 10);
	return true;
}

static char *
jsonb_string(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static StopState *
find_stop(StopState *stops, int n, int64 id)
{
	int			lo = 0;
	int			hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (stops[mid].stop_id == id)
			return &stops[mid];
		if (stops[mid].stop_id < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static Workflow *
find_workflow(Workflow *wfs, int n, const char *name)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(wfs[i].name, name) == 0)
			return &wfs[i];
	return NULL;
}

/* the stop a mutation's args name, if its workflow is one the fast path takes */
static bool
mutation_stop(Workflow *w, Datum args, bool args_null, int64 *stop_id)
{
	Jsonb	   *jb;
	JsonbValue	v;

	if (w == NULL || !w->stop || w->action == ACT_OTHER || w->rule == RULE_OTHER || args_null)
		return false;
	jb = DatumGetJsonbP(args);
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		return false;
	return FleetJsonbKey(jb, "stop_id", &v) && jsonb_int64(&v, stop_id);
}

/*
 * FleetSyncRun: decide and write the leading plain part of a run of n
 * consecutive new mutations of a client (v[field][i], isnull[field][i] for
 * the fields of FleetSyncField) and fill out[] with one outcome per decided
 * mutation, in order; returns how many (0 when the first one needs
 * fleet.sync_apply()).  What it returns is allocated in the caller's
 * current memory context.
 */
int
FleetSyncRun(int64 tenant, const char *client, int64 driver, int n,
			 Datum *const *v, bool *const *isnull, FleetSyncOutcome *out)
{
	MemoryContext callcxt = CurrentMemoryContext;
	int			i;
	Workflow   *wfs;
	int			nwfs;
	int			nplain;
	int64	   *ids;
	StopState  *stops;
	int			nstops = 0;
	Decided    *dec;
	int			ndec = 0;
	int			nstatus = 0;
	int			npod = 0;
	TimestampTz now;
	Oid			seq;

	if (n <= 0)
		return 0;
	for (i = 0; i < n; i++)
		if (isnull[SYNC_ID][i] || isnull[SYNC_WORKFLOW][i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("mutation %d of the run has no id or workflow", i + 1)));
	now = GetCurrentTransactionStartTimestamp();
	seq = FleetEventIdSequence();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));

	/* 1. the workflows */
	if (SPI_execute_plan(workflow_plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "workflow look-up failed");
	nwfs = (int) SPI_processed;
	wfs = MemoryContextAllocZero(callcxt, sizeof(Workflow) * Max(nwfs, 1));
	for (i = 0; i < nwfs; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(callcxt);
		char	   *entity = SPI_getvalue(tup, desc, 2);
		char	   *action = SPI_getvalue(tup, desc, 3);
		char	   *rule = SPI_getvalue(tup, desc, 4);

		wfs[i].name = SPI_getvalue(tup, desc, 1);
		wfs[i].stop = strcmp(entity, "stop") == 0;
		wfs[i].action = strcmp(action, "status") == 0 ? ACT_STATUS :
			strcmp(action, "evidence") == 0 ? ACT_EVIDENCE : ACT_OTHER;
		wfs[i].rule = strcmp(rule, "server_wins") == 0 ? RULE_SERVER_WINS :
			strcmp(rule, "client_wins") == 0 ? RULE_CLIENT_WINS :
			strcmp(rule, "forward_only_status") == 0 ? RULE_FORWARD :
			strcmp(rule, "append_only_evidence") == 0 ? RULE_EVIDENCE : RULE_OTHER;
		/* forward-only is about statuses: evidence under it is not plain */
		if (wfs[i].action == ACT_EVIDENCE && wfs[i].rule == RULE_FORWARD)
			wfs[i].rule = RULE_OTHER;
		wfs[i].rule_name = rule;
		wfs[i].evidence_kind = SPI_getvalue(tup, desc, 5);
		MemoryContextSwitchTo(old);
	}

	/*
	 * 2. read the run up to the first mutation that is not plain whatever
	 * its stop's state (workflow, arguments, clock): only that prefix's stops
	 * are locked, so a run that starts with a mutation for fleet.sync_apply()
	 * costs no lock (a stop locked here and updated by a later subtransaction
	 * of the push would need a MultiXact).  What is read (and decided) must
	 * outlive SPI_finish(): the outcomes are returned after it.  Every SPI
	 * call leaves the current context at SPI's procedure context, so switch
	 * back explicitly.
	 */
	MemoryContextSwitchTo(callcxt);
	dec = palloc0(sizeof(Decided) * n);
	ids = palloc(sizeof(int64) * n);
	for (nplain = 0; nplain < n; nplain++)
	{
		Decided    *d = &dec[nplain];
		Workflow   *w = find_workflow(wfs, nwfs, TextDatumGetCString(v[SYNC_WORKFLOW][nplain]));
		Jsonb	   *args;
		JsonbValue	jv;

		if (!mutation_stop(w, v[SYNC_ARGS][nplain],
						   isnull[SYNC_ARGS][nplain], &d->stop_id))
			break;
		if (!isnull[SYNC_HLC][nplain] && !valid_hlc(TextDatumGetCString(v[SYNC_HLC][nplain])))
			break;
		args = DatumGetJsonbP(v[SYNC_ARGS][nplain]);
		d->m = nplain;
		d->w = w;
		if (w->action == ACT_STATUS)
		{
			if (!FleetJsonbKey(args, "status", &jv) || jv.type != jbvString)
				break;
			d->status = jsonb_string(&jv);
		}
		else
		{
			/* evidence */
			if (w->evidence_kind != NULL)
				d->evidence_kind = w->evidence_kind;
			else
			{
				if (!FleetJsonbKey(args, "kind", &jv) || jv.type != jbvString)
					break;
				d->evidence_kind = jsonb_string(&jv);
			}
			if (!valid_evidence_kind(d->evidence_kind))
				break;
			if (FleetJsonbKey(args, "metadata", &jv))
			{
				if (jv.type != jbvBinary || !JsonContainerIsObject(jv.val.binary.data))
					break;
				d->metadata = JsonbValueToJsonb(&jv);
			}
			else
				d->metadata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
			if (FleetJsonbKey(args, "captured_at", &jv))
			{
				if (jv.type != jbvString)
					break;
				d->captured_at = jsonb_string(&jv);
			}
		}
		ids[nplain] = d->stop_id;
	}

	/* the ranks of the statuses asked for: the prefix ends before an unknown one */
	{
		Datum	   *st = palloc(sizeof(Datum) * Max(nplain, 1));
		int			m = 0;
		uint64		j;

		for (i = 0; i < nplain; i++)
			if (dec[i].w->action == ACT_STATUS)
				st[m++] = CStringGetTextDatum(dec[i].status);
		if (m > 0)
		{
			Datum		args[1] = {PointerGetDatum(FleetMakeArray(st, NULL, m, TEXTOID))};
			bool		isnull;

			if (SPI_execute_plan(rank_plan, args, NULL, true, 0) != SPI_OK_SELECT || SPI_processed != (uint64) m)
				elog(ERROR, "status rank look-up failed");
			for (i = 0, j = 0; i < nplain; i++)
			{
				Datum		r;

				if (dec[i].w->action != ACT_STATUS)
					continue;
				r = SPI_getbinval(SPI_tuptable->vals[j++], SPI_tuptable->tupdesc, 1, &isnull);
				if (isnull)
				{
					nplain = i;
					break;
				}
				dec[i].rank = DatumGetInt32(r);
			}
			MemoryContextSwitchTo(callcxt);
		}
	}
	if (nplain == 0)
	{
		SPI_finish();
		return 0;
	}

	/* lock the prefix's stops, in stop id order */
	qsort(ids, nplain, sizeof(int64), cmp_int64);
	{
		Datum	   *d = palloc(sizeof(Datum) * nplain);
		Datum		args[3];
		int			m = 0;
		uint64		j;

		for (i = 0; i < nplain; i++)
			if (i == 0 || ids[i] != ids[i - 1])
				d[m++] = Int64GetDatum(ids[i]);
		args[0] = Int64GetDatum(tenant);
		args[1] = PointerGetDatum(FleetMakeArray(d, NULL, m, INT8OID));
		args[2] = Int64GetDatum(driver);
		if (SPI_execute_plan(lock_plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "stop look-up failed");
		nstops = (int) SPI_processed;
		stops = MemoryContextAllocZero(callcxt, sizeof(StopState) * Max(nstops, 1));
		MemoryContextSwitchTo(callcxt);
		for (j = 0; j < SPI_processed; j++)
		{
			HeapTuple	tup = SPI_tuptable->vals[j];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			StopState  *s = &stops[j];
			bool		isnull;
			Datum		v;

			s->stop_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			s->status = SPI_getvalue(tup, desc, 2);
			s->version = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
			v = SPI_getbinval(tup, desc, 4, &isnull);
			s->in_scope = !isnull && DatumGetBool(v);
			s->job_code = SPI_getvalue(tup, desc, 5);
			s->seq = SPI_getbinval(tup, desc, 6, &s->seq_null);
			s->status_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 7, &s->status_at_null));
			s->status_event = DatumGetInt64(SPI_getbinval(tup, desc, 8, &s->status_event_null));
			s->arrived_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &s->arrived_null));
			s->completed_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 10, &s->completed_null));
			s->rank = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
			ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 12, &isnull)), &s->tid);
		}
	}

	/* 3. decide the prefix in id order, up to the first conflict */
	for (ndec = 0; ndec < nplain; ndec++)
	{
		Decided    *d = &dec[ndec];
		Workflow   *w = d->w;
		int			k = d->m;
		StopState  *s = find_stop(stops, nstops, d->stop_id);
		bool		bv_null = isnull[SYNC_BASE_VERSION][k];
		int64		bv = bv_null ? 0 : DatumGetInt64(v[SYNC_BASE_VERSION][k]);
		bool		ct_null = isnull[SYNC_CLIENT_TIME][k];

		/* not found, not the driver's (now), a base version beyond the stop's */
		if (s == NULL || !s->in_scope || (!bv_null && (bv < 1 || bv > s->version)))
			break;
		/* a cancelled stop, or (for a status) a stale base: conflicts */
		if (strcmp(s->status, "cancelled") == 0 || (w->action == ACT_STATUS && !bv_null && bv < s->version))
			break;
		/* forward-only: a lower rank, or another status of the same rank, is refused */
		if (w->action == ACT_STATUS && w->rule == RULE_FORWARD && strcmp(d->status, s->status) != 0 &&
			d->rank <= s->rank)
			break;
		d->stop = s;
		d->occurred = ct_null ? now : Min(DatumGetTimestampTz(v[SYNC_CLIENT_TIME][k]), now);
		d->job_code = s->job_code;
		d->seq = s->seq;
		d->seq_null = s->seq_null;
		d->event_id = nextval_internal(seq, false);
		if (w->action == ACT_EVIDENCE)
		{
			d->effect = EFFECT_EVIDENCE;
			npod++;
		}
		else if (strcmp(d->status, s->status) == 0)
			d->effect = EFFECT_NONE;
		else
		{
			d->effect = EFFECT_STATUS;
			d->old_status = s->status;
			d->old_status_at = s->status_at;
			d->old_status_at_null = s->status_at_null;
			d->old_event = s->status_event;
			d->old_event_null = s->status_event_null;
			s->status = d->status;
			s->rank = d->rank;
			s->status_at = d->occurred;
			s->status_at_null = false;
			if (strcmp(d->status, "arrived") == 0)
				s->arrived_at = d->occurred, s->arrived_null = false;
			if (strcmp(d->status, "completed") == 0)
				s->completed_at = d->occurred, s->completed_null = false;
			s->version++;
			s->status_event = d->event_id;
			s->status_event_null = false;
			s->changed = true;
			nstatus++;
		}
		d->version = s->version;
	}
	if (ndec == 0)
	{
		SPI_finish();
		return 0;
	}

	/*
	 * 4. the trail payloads, as fleet.sync_apply() builds them for an
	 * applied mutation without conflict (decision "client"), and the proofs'
	 * captured_at (as sent, else the client's time, else now; one that does
	 * not parse fails the run, which is then decided one at a time)
	 */
	for (i = 0; i < ndec; i++)
	{
		Decided    *d = &dec[i];
		int			m = d->m;
		FleetJsonbFields f = {0};
		FleetJsonbFields effect = {0};
		JsonbValue *jv;

		if (d->effect == EFFECT_EVIDENCE)
		{
			if (d->captured_at != NULL)
				d->captured = DirectFunctionCall3(timestamptz_in, CStringGetDatum(d->captured_at),
												  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
			else if (!isnull[SYNC_CLIENT_TIME][m])
				d->captured = v[SYNC_CLIENT_TIME][m];
			else
				d->captured = TimestampTzGetDatum(now);
		}
		/* what the mutation names, then how it was decided */
		if (d->effect == EFFECT_NONE)
			FleetJvJsonb(FleetJsonbField(&f, "args"), isnull[SYNC_ARGS][m] ? (Datum) 0 : v[SYNC_ARGS][m]);
		else
		{
			FleetJvString(FleetJsonbField(&f, "job"), d->job_code);
			jv = FleetJsonbField(&f, "seq");
			if (d->seq_null)
				FleetJvNull(jv);
			else
				FleetJvInt64(jv, DatumGetInt32(d->seq));
		}
		if (d->effect == EFFECT_STATUS)
		{
			FleetJvString(FleetJsonbField(&f, "status"), d->status);
			FleetJvString(FleetJsonbField(&effect, "status"), d->status);
		}
		else if (d->effect == EFFECT_EVIDENCE)
		{
			FleetJvString(FleetJsonbField(&f, "kind"), d->evidence_kind);
			FleetJvJsonb(FleetJsonbField(&f, "metadata"), JsonbPGetDatum(d->metadata));
			FleetJvString(FleetJsonbField(&effect, "kind"), d->evidence_kind);
			FleetJvJsonb(FleetJsonbField(&effect, "metadata"), JsonbPGetDatum(d->metadata));
			FleetJvTimestamptz(FleetJsonbField(&effect, "captured_at"), DatumGetTimestampTz(d->captured));
		}
		FleetJvString(FleetJsonbField(&f, "client"), client);
		FleetJvInt64(FleetJsonbField(&f, "mutation_id"), DatumGetInt64(v[SYNC_ID][m]));
		FleetJvText(FleetJsonbField(&f, "workflow"), v[SYNC_WORKFLOW][m]);
		FleetJvString(FleetJsonbField(&f, "result"), "applied");
		FleetJvString(FleetJsonbField(&f, "rule"), d->w->rule_name);
		FleetJvString(FleetJsonbField(&f, "decision"), "client");
		FleetJvNull(FleetJsonbField(&f, "conflict"));
		FleetJvInt64(FleetJsonbField(&f, "driver_id"), driver);
		jv = FleetJsonbField(&f, "client_time");
		if (isnull[SYNC_CLIENT_TIME][m])
			FleetJvNull(jv);
		else
			FleetJvTimestamptz(jv, DatumGetTimestampTz(v[SYNC_CLIENT_TIME][m]));
		/* effect: what it changed (null when nothing) */
		jv = FleetJsonbField(&f, "effect");
		if (effect.n > 0)
			FleetJvJsonb(jv, FleetJsonbFieldsObject(&effect, false));
		else
			FleetJvNull(jv);
		d->payload = FleetJsonbFieldsObject(&f, false);
	}

	/* 5. the stops' final state, the status history, the proofs */
	if (nstatus > 0)
	{
		static const Oid stop_types[8] = {TIDOID, INT8OID, TEXTOID, TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, INT8OID};
		static const Oid history_types[6] = {INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTOID};
		FleetColumns cs;
		Datum		args[8];
		int			m = 0;
		uint64		j;

		FleetColumnsInit(&cs, 8, nstops);
		for (i = 0; i < nstops; i++)
		{
			StopState  *s = &stops[i];

			if (!s->changed)
				continue;
			cs.v[0][m] = PointerGetDatum(&s->tid);
			cs.v[1][m] = Int64GetDatum(s->stop_id);
			cs.v[2][m] = CStringGetTextDatum(s->status);
			cs.v[3][m] = TimestampTzGetDatum(s->status_at);
			cs.n[3][m] = s->status_at_null;
			cs.v[4][m] = Int64GetDatum(s->status_event);
			cs.n[4][m] = s->status_event_null;
			cs.v[5][m] = TimestampTzGetDatum(s->arrived_at);
			cs.n[5][m] = s->arrived_null;
			cs.v[6][m] = TimestampTzGetDatum(s->completed_at);
			cs.n[6][m] = s->completed_null;
			cs.v[7][m] = Int64GetDatum(s->version);
			m++;
		}
		FleetColumnsArgs(&cs, stop_types, m, args);
		if (SPI_execute_plan(stop_plan, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING ||
			SPI_processed != (uint64) m)
			elog(ERROR, "stop update of the sync run failed");
		for (j = 0; j < SPI_processed; j++)
		{
			bool		isnull;

			if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull)) != tenant)
				elog(ERROR, "stop update of the sync run reached another tenant's stop");
		}

		FleetColumnsInit(&cs, 6, nstatus);
		m = 0;
		for (i = 0; i < ndec; i++)
		{
			Decided    *d = &dec[i];

			if (d->effect != EFFECT_STATUS)
				continue;
			cs.v[0][m] = Int64GetDatum(d->stop->stop_id);
			cs.v[1][m] = Int64GetDatum(d->event_id);
			cs.v[2][m] = CStringGetTextDatum(d->old_status);
			cs.v[3][m] = TimestampTzGetDatum(d->old_status_at);
			cs.n[3][m] = d->old_status_at_null;
			cs.v[4][m] = Int64GetDatum(d->old_event);
			cs.n[4][m] = d->old_event_null;
			cs.v[5][m] = CStringGetTextDatum(d->status);
			m++;
		}
		args[0] = Int64GetDatum(tenant);
		FleetColumnsArgs(&cs, history_types, m, args + 1);
		if (SPI_execute_plan(history_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "status history of the sync run failed");
	}
	if (npod > 0)
	{
		static const Oid types[5] = {INT8OID, TEXTOID, TIMESTAMPTZOID, JSONBOID, INT8OID};
		FleetColumns cs;
		Datum		args[7];
		int			m = 0;

		FleetColumnsInit(&cs, 5, npod);
		for (i = 0; i < ndec; i++)
		{
			Decided    *d = &dec[i];

			if (d->effect != EFFECT_EVIDENCE)
				continue;
			cs.v[0][m] = Int64GetDatum(d->stop->stop_id);
			cs.v[1][m] = CStringGetTextDatum(d->evidence_kind);
			cs.v[2][m] = d->captured;
			cs.v[3][m] = JsonbPGetDatum(d->metadata);
			cs.v[4][m] = Int64GetDatum(d->event_id);
			m++;
		}
		args[0] = Int64GetDatum(tenant);
		args[1] = Int64GetDatum(driver);
		FleetColumnsArgs(&cs, types, m, args + 2);
		if (SPI_execute_plan(pod_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "proofs of delivery of the sync run failed");
	}
	SPI_finish();

	/* 6. one outcome per decided mutation */
	for (i = 0; i < ndec; i++)
	{
		Decided    *d = &dec[i];
		FleetSyncOutcome *o = &out[i];

		memset(o, 0, sizeof(*o));
		o->result = "applied";
		o->rule = d->w->rule_name;
		o->entity = "stop";
		o->entity_id = d->stop->stop_id;
		o->conflict_null = true;
		o->event_id = d->event_id;
		o->version = d->version;
		o->trail_kind = d->effect == EFFECT_STATUS ? "stop.status" :
			d->effect == EFFECT_EVIDENCE ? "pod.captured" : "sync.mutation";
		o->trail_payload = d->payload;
		o->trail_occurred = d->occurred;
	}
	return ndec;
}

/*
 * fleet.sync_apply_run(tenant_id bigint, client_id uuid, driver_id bigint,
 *		mutation_id bigint[], workflow text[], args jsonb[],
 *		client_time timestamptz[], base_version bigint[], hlc text[])
 *	RETURNS SETOF fleet.sync_outcome
 *
 * FleetSyncRun from SQL (for tests): one row per mutation of the run's
 * leading part that has no conflict, in order; none when the first one
 * needs fleet.sync_apply().
 */
Datum
fleet_sync_apply_run(PG_FUNCTION_ARGS)
{
	static const char *const argnames[NARGS] = {
		NULL, NULL, NULL, "mutation_id", "workflow", "args", "client_time", "base_version", "hlc"
	};
	static const Oid elemtypes[NARGS] = {
		InvalidOid, InvalidOid, InvalidOid, INT8OID, TEXTOID, JSONBOID, TIMESTAMPTZOID, INT8OID, TEXTOID
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *av[NARGS];
	bool	   *an[NARGS];
	Datum	   *v[SYNC_NFIELDS];
	bool	   *isnull[SYNC_NFIELDS];
	FleetSyncOutcome *out;
	int			n = -1;
	int			a;
	int			i;
	int			ndec;

	if (PG_ARGISNULL(A_TENANT) || PG_ARGISNULL(A_CLIENT) || PG_ARGISNULL(A_DRIVER))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant, client and driver must not be null")));
	InitMaterializedSRF(fcinfo, 0);
	for (a = A_ID; a < NARGS; a++)
		FleetBatchArg(fcinfo, a, argnames[a], elemtypes[a], a == A_ID || a == A_WORKFLOW, &n, &av[a], &an[a]);
	if (n <= 0)
		return (Datum) 0;
	for (a = A_ID; a < NARGS; a++)
	{
		/* a NULL array: every value NULL */
		v[a - A_ID] = av[a] ? av[a] : palloc0(sizeof(Datum) * n);
		isnull[a - A_ID] = an[a] ? an[a] : memset(palloc(sizeof(bool) * n), true, sizeof(bool) * n);
	}
	out = palloc(sizeof(FleetSyncOutcome) * n);
	ndec = FleetSyncRun(PG_GETARG_INT64(A_TENANT),
						DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(A_CLIENT))),
						PG_GETARG_INT64(A_DRIVER), n, v, isnull, out);
	for (i = 0; i < ndec; i++)
	{
		Datum		values[11];
		bool		nulls[11];

		FleetSyncOutcomeValues(&out[i], values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* an outcome as the 11 columns of fleet.sync_outcome */
void
FleetSyncOutcomeValues(const FleetSyncOutcome *o, Datum *values, bool *nulls)
{
	memset(nulls, 0, sizeof(bool) * 11);
	values[0] = CStringGetTextDatum(o->result);
	if (o->rule)
		values[1] = CStringGetTextDatum(o->rule);
	else
		nulls[1] = true;
	if (o->reason)
		values[2] = CStringGetTextDatum(o->reason);
	else
		nulls[2] = true;
	if (o->entity)
		values[3] = CStringGetTextDatum(o->entity);
	else
		nulls[3] = true;
	values[4] = Int64GetDatum(o->entity_id);
	nulls[4] = o->entity_id_null;
	values[5] = Int64GetDatum(o->conflict_id);
	nulls[5] = o->conflict_null;
	values[6] = Int64GetDatum(o->event_id);
	nulls[6] = o->event_null;
	values[7] = Int64GetDatum(o->version);
	nulls[7] = o->version_null;
	if (o->trail_kind)
		values[8] = CStringGetTextDatum(o->trail_kind);
	else
		nulls[8] = true;
	values[9] = o->trail_payload;
	nulls[9] = o->trail_payload == (Datum) 0;
	values[10] = TimestampTzGetDatum(o->trail_occurred);
	nulls[10] = o->trail_occurred_null;
}
