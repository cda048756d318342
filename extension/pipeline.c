/*-------------------------------------------------------------------------
 *
 * pipeline.c
 *	  One consumer pass over one event class: fleet.process_pending() and
 *	  the unit of work of the background workers (worker.c).
 *
 * A pass runs in the caller's transaction and:
 *	1. locks the class's row in fleet.consumer_cursor (so two passes of one
 *	   class never overlap; other classes are independent);
 *	2. applies the class's due retries (fleet.event_retry);
 *	3. reads the next batch of new events: those whose writing transaction
 *	   is visible in the batch snapshot "hi" and was not visible in "lo",
 *	   ordered by (txid, event_id), resuming after (pos_txid, pos_event).
 *	   When hi is not set a new batch starts at pg_current_snapshot().  A
 *	   transaction still running at hi is not visible in it, so its events
 *	   belong to a later batch: a late commit is never skipped;
 *	4. applies each event's handler in its own subtransaction, as the owner
 *	   of the handler function and in the event's tenant context; a
 *	   failure rolls back only that event, which goes to the retry queue
 *	   (or, once the class's max_attempts are used up, to dead letters);
 *	5. moves the cursor: one UPDATE of one row per pass, and when new events
 *	   were applied counts the pass and samples its lag for fleet.metrics()
 *	   (fleet.pipeline_stat, fleet.pipeline_lag).
 * Effects and the cursor move commit or roll back together, so every event
 * is applied exactly once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_process_pending);

static const char *const class_names[] = {"financial", "audit", "operational", "telemetry"};

#define NCLASSES	lengthof(class_names)

/* events applied per subtransaction (see FleetApplyEvents) */
#define FLEET_APPLY_CHUNK	50

/* a kind's handler, as far as a pass needs it */
typedef struct HandlerEntry
{
	char		kind[101];		/* hash key */
	Oid			handler;
	Oid			owner;
	bool		looked_up;		/* flinfo and kind_text are set */
	FmgrInfo	flinfo;
	Datum		kind_text;		/* the kind as a text argument */
} HandlerEntry;

/*
 * The last kind looked up, by the address of its name: a batch's events
 * share one name per kind (see batch_receive), so runs of one kind are
 * looked up once.  Forgotten when an applier is set up.
 */
static HTAB *last_handlers = NULL;
static const char *last_kind = NULL;
static HandlerEntry *last_entry = NULL;

/* state of one pass */
typedef struct Pass
{
	const char *class_name;
	FleetApplier applier;
	int			max_attempts;
	int			applied;
	int			failed;
	int			dead;
} Pass;

static SPIPlanPtr cursor_plan = NULL;
static SPIPlanPtr kinds_plan = NULL;
static SPIPlanPtr retries_plan = NULL;
static SPIPlanPtr snapshot_plan = NULL;
static SPIPlanPtr batch_plan = NULL;
static SPIPlanPtr stat_plan = NULL;
static SPIPlanPtr fail_plan = NULL;
static SPIPlanPtr bury_plan = NULL;
static SPIPlanPtr done_retry_plan = NULL;
static SPIPlanPtr move_plan = NULL;

/*
 * A batch's events as the executor produces them (see read_batch): the
 * values a pass needs, without a tuple table of whole rows.
 */
typedef struct BatchReceiver
{
	DestReceiver pub;
	FleetApplier *applier;
	MemoryContext cxt;			/* the kinds' names and the payloads */
	FleetEvent *ev;
	int			n;
	int			cap;
	FullTransactionId last_txid;	/* of the last event */
	char	   *last_kind;		/* the last event's kind, to reuse its name */
	bool		own;			/* ev is this pass's own (a pass in a pass) */
} BatchReceiver;

/*
 * Memory of one pass's batch: payloads and kind names, in a context whose
 * first megabyte is kept from pass to pass (reset, not freed); the events'
 * array is kept and grown as needed.  A pass used to build the batch in
 * SPI's tuple table, freed and allocated again every pass: with copying
 * whole rows, a quarter of an empty-handler pass in perf (heap_form_tuple,
 * page faults, brk and munmap).
 */
static MemoryContext batch_cxt = NULL;
static FleetEvent *batch_ev = NULL;
static int	batch_cap = 0;

/*
 * Passes under way in this backend: a pass inside another (a handler that
 * runs fleet.process_pending()) reads its batch into memory of its own.
 * Reset when a transaction ends, so a pass that failed does not count.
 */
static int	batch_depth = 0;
static bool batch_callback = false;

static void prepare_plans(void);
static void record_failure(Pass *pass, FleetEvent *e);
static void read_event(SPITupleTable *tt, uint64 i, FleetEvent *e);
static int	read_batch(FleetApplier *a, Datum *args, int budget, FullTransactionId *last_txid,
					   FleetEvent **events);

/*
 * Number of event classes.
 */
int
FleetClassCount(void)
{
	return NCLASSES;
}

/*
 * Name of class i, in priority order.
 */
const char *
FleetClassName(int i)
{
	return class_names[i];
}

/*
 * Prepare the statements of a pass (once per backend).
 */
static void
prepare_plans(void)
{
	Oid			t1[1] = {TEXTOID};
	Oid			t2[2] = {TEXTOID, INT4OID};
	Oid			tf[7] = {INT8OID, INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Oid			td[2] = {INT8OID, INT8OID};
	Oid			tm[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, BOOLOID};

	if (move_plan != NULL)		/* prepared last: all are there */
		return;
	cursor_plan = FleetKeepPlan(
		"SELECT c.lo::pg_catalog.text, c.hi::pg_catalog.text, c.pos_txid::pg_catalog.text, c.pos_event,"
		"       k.max_attempts, k.batch_size"
		"  FROM fleet.consumer_cursor c JOIN fleet.event_class k ON k.class OPERATOR(pg_catalog.=) c.class"
		" WHERE c.class OPERATOR(pg_catalog.=) $1 FOR UPDATE OF c", 1, t1, FLEET_PLAN_GENERIC);
	kinds_plan = FleetKeepPlan(
		"SELECT k.kind, k.handler::pg_catalog.oid, p.proowner FROM fleet.event_kind k"
		"  LEFT JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) k.handler::pg_catalog.oid"
		" WHERE $1 IS NULL OR k.class OPERATOR(pg_catalog.=) $1", 1, t1, FLEET_PLAN_GENERIC);
	retries_plan = FleetKeepPlan(
		"SELECT r.tenant_id, r.event_id, r.logged_at, e.kind, e.payload, e.occurred_at"
		"  FROM fleet.event_retry r"
		"  JOIN fleet.event_log e ON e.tenant_id OPERATOR(pg_catalog.=) r.tenant_id"
		"   AND e.event_id OPERATOR(pg_catalog.=) r.event_id AND e.logged_at OPERATOR(pg_catalog.=) r.logged_at"
		" WHERE r.class OPERATOR(pg_catalog.=) $1 AND r.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()"
		" ORDER BY r.next_attempt_at, r.event_id LIMIT $2", 2, t2, FLEET_PLAN_GENERIC);
	snapshot_plan = FleetKeepPlan("SELECT pg_catalog.pg_current_snapshot()::pg_catalog.text", 0, NULL, FLEET_PLAN_GENERIC);
	/*
	 * The lower bound is one row comparison: the resume position, or the
	 * start of the batch (xmin of lo) when the position lies before it.  A
	 * scalar "txid >= xmin(lo)" next to a row comparison on the same index
	 * column cannot be merged by btree, which may then start the scan at
	 * the row key and walk every older index entry of the class (the whole
	 * consumed log) on each pass.
	 */
	batch_plan = FleetKeepPlan(
		"SELECT e.tenant_id, e.event_id, e.logged_at, e.kind, e.payload, e.occurred_at, e.txid"
		"  FROM fleet.event_log e"
		" WHERE e.class OPERATOR(pg_catalog.=) $1"
		"   AND ROW(e.txid, e.event_id) OPERATOR(pg_catalog.>)"
		"       ROW(GREATEST($4::pg_catalog.xid8, pg_catalog.pg_snapshot_xmin($2::pg_catalog.pg_snapshot)),"
		"           CASE WHEN $4::pg_catalog.xid8 OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin($2::pg_catalog.pg_snapshot)"
		"                THEN $5 ELSE '-9223372036854775808'::pg_catalog.int8 END)"
		"   AND e.txid OPERATOR(pg_catalog.<) pg_catalog.pg_snapshot_xmax($3::pg_catalog.pg_snapshot)"
		"   AND pg_catalog.pg_visible_in_snapshot(e.txid, $3::pg_catalog.pg_snapshot)"
		"   AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, $2::pg_catalog.pg_snapshot)"
		" ORDER BY e.txid, e.event_id LIMIT $6", 6,
		(Oid[]) {TEXTOID, PG_SNAPSHOTOID, PG_SNAPSHOTOID, TEXTOID, INT8OID, INT4OID}, FLEET_PLAN_GENERIC);
	fail_plan = FleetKeepPlan(
		"INSERT INTO fleet.event_retry AS r (tenant_id, event_id, logged_at, class, kind, attempts,"
		"                                     next_attempt_at, last_error, last_sqlstate, history)"
		" SELECT $1, $2, $3, $4, $5, 1,"
		"        pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)"
		"          (LEAST(k.backoff_max, k.backoff_base) OPERATOR(pg_catalog.*)"
		"           (0.5::pg_catalog.float8 OPERATOR(pg_catalog.+) (0.5::pg_catalog.float8 OPERATOR(pg_catalog.*) pg_catalog.random()))),"
		"        $6, $7,"
		"        pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('attempt', 1,"
		"          'at', pg_catalog.clock_timestamp(), 'error', $6, 'sqlstate', $7))"
		"   FROM fleet.event_class k WHERE k.class OPERATOR(pg_catalog.=) $4"
		" ON CONFLICT (tenant_id, event_id) DO UPDATE"
		"   SET attempts = r.attempts OPERATOR(pg_catalog.+) 1,"
		"       next_attempt_at = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+)"
		"         ((SELECT LEAST(k.backoff_max, k.backoff_base OPERATOR(pg_catalog.*)"
		"                    pg_catalog.power(2::pg_catalog.float8, LEAST(r.attempts, 30)::pg_catalog.float8))"
		"             FROM fleet.event_class k WHERE k.class OPERATOR(pg_catalog.=) r.class)"
		"          OPERATOR(pg_catalog.*) (0.5::pg_catalog.float8 OPERATOR(pg_catalog.+) (0.5::pg_catalog.float8 OPERATOR(pg_catalog.*) pg_catalog.random()))),"
		"       last_error = EXCLUDED.last_error, last_sqlstate = EXCLUDED.last_sqlstate,"
		"       history = r.history OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object("
		"         'attempt', r.attempts OPERATOR(pg_catalog.+) 1, 'at', pg_catalog.clock_timestamp(),"
		"         'error', EXCLUDED.last_error, 'sqlstate', EXCLUDED.last_sqlstate))"
		" RETURNING r.attempts", 7, tf, FLEET_PLAN_GENERIC);
	bury_plan = FleetKeepPlan(
		"WITH gone AS (DELETE FROM fleet.event_retry r"
		"               WHERE r.tenant_id OPERATOR(pg_catalog.=) $1 AND r.event_id OPERATOR(pg_catalog.=) $2"
		"              RETURNING r.*)"
		" INSERT INTO fleet.dead_letter (tenant_id, event_id, logged_at, class, kind, attempts, error, sqlstate,"
		"                                history, payload)"
		" SELECT g.tenant_id, g.event_id, g.logged_at, g.class, g.kind, g.attempts, g.last_error, g.last_sqlstate,"
		"        g.history, e.payload"
		"   FROM gone g LEFT JOIN fleet.event_log e ON e.tenant_id OPERATOR(pg_catalog.=) g.tenant_id"
		"    AND e.event_id OPERATOR(pg_catalog.=) g.event_id AND e.logged_at OPERATOR(pg_catalog.=) g.logged_at", 2, td, FLEET_PLAN_GENERIC);
	done_retry_plan = FleetKeepPlan(
		"DELETE FROM fleet.event_retry r"
		" WHERE r.tenant_id OPERATOR(pg_catalog.=) $1 AND r.event_id OPERATOR(pg_catalog.=) $2", 2, td, FLEET_PLAN_GENERIC);
	/*
	 * Counters and the lag ring for fleet.metrics(): the pass knows the log
	 * times of its first and last new event, so no look-up is needed.
	 */
	stat_plan = FleetKeepPlan(
		"WITH s AS (UPDATE fleet.pipeline_stat ps"
		"              SET passes = ps.passes OPERATOR(pg_catalog.+) 1, last_pass_at = pg_catalog.now(),"
		"                  last_event_logged_at = GREATEST(ps.last_event_logged_at, $3)"
		"            WHERE ps.class OPERATOR(pg_catalog.=) $1 RETURNING ps.passes)"
		" INSERT INTO fleet.pipeline_lag AS l (class, slot, sampled_at, lag_first, lag_last)"
		" SELECT $1, (s.passes OPERATOR(pg_catalog.%) 256)::pg_catalog.int4, pg_catalog.now(),"
		"        EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) $2)::pg_catalog.float8,"
		"        EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) $3)::pg_catalog.float8"
		"   FROM s"
		" ON CONFLICT (class, slot) DO UPDATE"
		"   SET sampled_at = EXCLUDED.sampled_at, lag_first = EXCLUDED.lag_first, lag_last = EXCLUDED.lag_last",
		3, (Oid[]) {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, FLEET_PLAN_GENERIC);
	move_plan = FleetKeepPlan(
		"UPDATE fleet.consumer_cursor c"
		"   SET lo = $2::pg_catalog.pg_snapshot, hi = $3::pg_catalog.pg_snapshot, pos_txid = $4::pg_catalog.xid8,"
		"       pos_event = $5, events = c.events OPERATOR(pg_catalog.+) $6,"
		"       batches = c.batches OPERATOR(pg_catalog.+) CASE WHEN $7 THEN 1 ELSE 0 END,"
		"       updated_at = pg_catalog.now()"
		" WHERE c.class OPERATOR(pg_catalog.=) $1", 7, tm, FLEET_PLAN_GENERIC);
}

/*
 * Prepare an applier for the handlers of one class (NULL: every class).
 * Runs as the extension owner inside an SPI connection.
 */
void
FleetApplierInit(FleetApplier *a, const char *class_name)
{
	HASHCTL		ctl;
	Datum		args[1];
	char		nulls[1] = {' '};
	bool		isnull;
	uint64		i;

	prepare_plans();
	a->cxt = CurrentMemoryContext;
	a->tenant_set = -1;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(((HandlerEntry *) 0)->kind);
	ctl.entrysize = sizeof(HandlerEntry);
	ctl.hcxt = CurrentMemoryContext;
	a->handlers = hash_create("fleet pipeline handlers", 32, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	last_handlers = NULL;
	last_kind = NULL;

	if (class_name)
		args[0] = CStringGetTextDatum(class_name);
	else
	{
		args[0] = (Datum) 0;
		nulls[0] = 'n';
	}
	if (SPI_execute_plan(kinds_plan, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "handler look-up failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		char	   *kind = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
		HandlerEntry *h;

		if (strlen(kind) >= sizeof(h->kind))
			continue;
		h = hash_search(a->handlers, kind, HASH_ENTER, NULL);
		h->looked_up = false;
		h->handler = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull)
			h->handler = InvalidOid;
		h->owner = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		if (isnull)				/* function dropped: see call_handlers */
			h->owner = InvalidOid;
	}
}

/*
 * Is there a handler to run for this event?
 */
static HandlerEntry *
handler_for(FleetApplier *a, FleetEvent *e)
{
	HandlerEntry *h;

	if (a->handlers == last_handlers && e->kind == last_kind)
		h = last_entry;
	else
	{
		h = hash_search(a->handlers, e->kind, HASH_FIND, NULL);
		last_handlers = a->handlers;
		last_kind = e->kind;
		last_entry = h;
	}

	/* a kind without handler (or no longer registered) has no projection */
	if (h == NULL || !OidIsValid(h->handler))
		return NULL;
	return h;
}

/*
 * Call the handlers of events [0, m), as each handler function's owner and
 * in each event's tenant context.  Errors propagate to the caller.
 */
static void
call_handlers(FleetApplier *a, FleetEvent *ev, int m, Oid saved_uid, int saved_ctx)
{
	int			i;

	for (i = 0; i < m; i++)
	{
		FleetEvent *e = &ev[i];
		HandlerEntry *h = handler_for(a, e);
		LOCAL_FCINFO(fc, 5);

		if (h == NULL)
			continue;
		/* a handler function that was dropped fails the event (to be retried) */
		if (!OidIsValid(h->owner))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("handler function %u of event kind \"%s\" does not exist", h->handler, e->kind)));
		if (a->tenant_set != e->tenant)
		{
			(void) DirectFunctionCall2(fleet_set_tenant, Int64GetDatum(e->tenant), BoolGetDatum(true));
			a->tenant_set = e->tenant;
		}
		/* handlers return void: a NULL result is fine, so no OidFunctionCall */
		if (!h->looked_up)
		{
			MemoryContext old = MemoryContextSwitchTo(a->cxt);

			h->kind_text = CStringGetTextDatum(h->kind);
			MemoryContextSwitchTo(old);
			fmgr_info_cxt(h->handler, &h->flinfo, a->cxt);
			h->looked_up = true;
		}
		InitFunctionCallInfoData(*fc, &h->flinfo, 5, InvalidOid, NULL, NULL);
		fc->args[0].value = Int64GetDatum(e->tenant);
		fc->args[0].isnull = false;
		fc->args[1].value = Int64GetDatum(e->event_id);
		fc->args[1].isnull = false;
		fc->args[2].value = h->kind_text;
		fc->args[2].isnull = false;
		fc->args[3].value = e->payload;
		fc->args[3].isnull = false;
		fc->args[4].value = e->occurred;
		fc->args[4].isnull = false;
		SetUserIdAndSecContext(h->owner, saved_ctx | SECURITY_LOCAL_USERID_CHANGE);
		(void) FunctionCallInvoke(fc);
		SetUserIdAndSecContext(saved_uid, saved_ctx);
	}
}

/* call_handlers' arguments, for FleetTrySubtransaction */
typedef struct HandlerCall
{
	FleetApplier *a;
	FleetEvent *ev;
	int			m;
	Oid			saved_uid;
	int			saved_ctx;
} HandlerCall;

static void
call_handlers_fn(void *arg)
{
	HandlerCall *c = arg;

	call_handlers(c->a, c->ev, c->m, c->saved_uid, c->saved_ctx);
}

/*
 * Apply events [0, m) in one subtransaction.  Returns false with the error
 * message and SQLSTATE when one of them fails; the effects of all m are then
 * rolled back.
 */
static bool
apply_chunk(FleetApplier *a, FleetEvent *ev, int m, char **errmsg, char **sqlstate)
{
	HandlerCall c = {a, ev, m};
	ErrorData  *edata;

	GetUserIdAndSecContext(&c.saved_uid, &c.saved_ctx);
	edata = FleetTrySubtransaction(call_handlers_fn, &c);
	if (edata == NULL)
		return true;
	/* the tenant context set inside the subtransaction is gone too */
	a->tenant_set = -1;
	*errmsg = pstrdup(edata->message ? edata->message : "unknown error");
	*sqlstate = pstrdup(unpack_sql_state(edata->sqlerrcode));
	FreeErrorData(edata);
	return false;
}

/*
 * Apply a batch of events in order, setting ok (or errmsg and sqlstate) on
 * each.  Events run FLEET_APPLY_CHUNK to a subtransaction, so a pass does
 * not pile up one subtransaction id per event (past 64 the snapshot's
 * subtransaction cache overflows, which slows every session); when a chunk
 * fails it is rolled back and applied again one event per subtransaction,
 * so only the failing event is set aside.
 */
void
FleetApplyEvents(FleetApplier *a, FleetEvent *ev, int n)
{
	int			start;
	int			i;

	for (i = 0; i < n; i++)
	{
		ev[i].ok = true;
		ev[i].errmsg = NULL;
		ev[i].sqlstate = NULL;
	}
	for (start = 0; start < n; start += FLEET_APPLY_CHUNK)
	{
		int			m = Min(FLEET_APPLY_CHUNK, n - start);
		bool		any = false;
		char	   *emsg;
		char	   *sqlstate;

		for (i = start; i < start + m && !any; i++)
			any = handler_for(a, &ev[i]) != NULL;
		if (!any || apply_chunk(a, ev + start, m, &emsg, &sqlstate))
			continue;
		for (i = start; i < start + m; i++)
		{
			if (handler_for(a, &ev[i]) == NULL)
				continue;
			if (!apply_chunk(a, &ev[i], 1, &emsg, &sqlstate))
			{
				ev[i].ok = false;
				ev[i].errmsg = emsg;
				ev[i].sqlstate = sqlstate;
			}
		}
	}
}

/*
 * Read row i of a result with columns (tenant_id, event_id, logged_at,
 * kind, payload, occurred_at, ...) into an event; values stay in SPI memory.
 */
static void
read_event(SPITupleTable *tt, uint64 i, FleetEvent *e)
{
	HeapTuple	tup = tt->vals[i];
	bool		isnull;

	e->tenant = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
	e->event_id = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));
	e->logged_at = SPI_getbinval(tup, tt->tupdesc, 3, &isnull);
	e->kind = TextDatumGetCString(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
	e->payload = SPI_getbinval(tup, tt->tupdesc, 5, &isnull);
	e->occurred = SPI_getbinval(tup, tt->tupdesc, 6, &isnull);
}

static void
batch_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
batch_shutdown(DestReceiver *self)
{
}

static void
batch_destroy(DestReceiver *self)
{
}

/*
 * One row of the batch query (tenant_id, event_id, logged_at, kind, payload,
 * occurred_at, txid) into the next event.  The payload is copied only for a
 * kind with a handler: the others are never applied, and a failure record
 * does not need it.
 */
static bool
batch_receive(TupleTableSlot *slot, DestReceiver *self)
{
	BatchReceiver *r = (BatchReceiver *) self;
	FleetEvent *e;
	text	   *kind;
	int			klen;
	HandlerEntry *h;
	MemoryContext old;

	slot_getallattrs(slot);
	if (r->n == r->cap)
	{
		int			cap = Max(r->cap * 2, 1024);

		if (r->own)
			r->ev = repalloc(r->ev, sizeof(FleetEvent) * cap);
		else
		{
			batch_ev = batch_ev == NULL ?
				MemoryContextAlloc(TopMemoryContext, sizeof(FleetEvent) * cap) :
				repalloc(batch_ev, sizeof(FleetEvent) * cap);
			batch_cap = cap;
			r->ev = batch_ev;
		}
		r->cap = cap;
	}
	e = &r->ev[r->n++];
	e->tenant = DatumGetInt64(slot->tts_values[0]);
	e->event_id = DatumGetInt64(slot->tts_values[1]);
	e->logged_at = slot->tts_values[2];
	e->occurred = slot->tts_values[5];
	r->last_txid = DatumGetFullTransactionId(slot->tts_values[6]);

	old = MemoryContextSwitchTo(r->cxt);
	kind = DatumGetTextPP(slot->tts_values[3]);
	klen = VARSIZE_ANY_EXHDR(kind);
	if (r->last_kind != NULL && strlen(r->last_kind) == klen &&
		memcmp(r->last_kind, VARDATA_ANY(kind), klen) == 0)
		e->kind = r->last_kind;
	else
		e->kind = r->last_kind = text_to_cstring(kind);
	h = hash_search(r->applier->handlers, e->kind, HASH_FIND, NULL);
	e->payload = (h != NULL && OidIsValid(h->handler)) ? datumCopy(slot->tts_values[4], false, -1) : (Datum) 0;
	MemoryContextSwitchTo(old);
	return true;
}

/* a transaction's end: no pass is under way any more */
static void
batch_xact_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		batch_depth = 0;
}

/*
 * Run the batch query (batch_plan, its six arguments) and read its events
 * into batch_ev, returning how many; *last_txid is the last one's.
 */
static int
read_batch(FleetApplier *a, Datum *args, int budget, FullTransactionId *last_txid,
		   FleetEvent **events)
{
	static const Oid types[6] = {TEXTOID, PG_SNAPSHOTOID, PG_SNAPSHOTOID, TEXTOID, INT8OID, INT4OID};
	ParamListInfo params = makeParamList(6);
	SPIExecuteOptions options;
	BatchReceiver r;
	int			i;

	memset(&r, 0, sizeof(r));
	if (batch_depth > 1)
	{
		/* a pass inside a pass: its own memory, until the transaction ends */
		r.cxt = CurrentMemoryContext;
		r.cap = budget;
		r.ev = palloc(sizeof(FleetEvent) * Max(budget, 1));
		r.own = true;
	}
	else
	{
		if (batch_cxt == NULL)
			batch_cxt = AllocSetContextCreate(TopMemoryContext, "fleet pipeline batch",
											  1024 * 1024, 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
		MemoryContextReset(batch_cxt);
		last_kind = NULL;		/* names at the same addresses may be other kinds now */
		r.cxt = batch_cxt;
		r.ev = batch_ev;
		r.cap = batch_cap;
	}
	for (i = 0; i < 6; i++)
	{
		params->params[i].value = args[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}
	r.pub.receiveSlot = batch_receive;
	r.pub.rStartup = batch_startup;
	r.pub.rShutdown = batch_shutdown;
	r.pub.rDestroy = batch_destroy;
	r.pub.mydest = DestNone;
	r.applier = a;
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = false;
	options.dest = (DestReceiver *) &r;
	/* SPI_OK_UTILITY: the rows went to the receiver (whose mydest is DestNone) */
	if (SPI_execute_plan_extended(batch_plan, &options) != SPI_OK_UTILITY)
		elog(ERROR, "event batch look-up failed");
	Assert(r.n <= budget);
	*last_txid = r.last_txid;
	*events = r.ev;
	return r.n;
}

/*
 * Record a failed attempt: into the retry queue, or into dead letters once
 * the class's attempts are used up.
 */
static void
record_failure(Pass *pass, FleetEvent *e)
{
	Datum		args[7];
	bool		isnull;
	int			attempts;
	int64		event_id = e->event_id;

	args[0] = Int64GetDatum(e->tenant);
	args[1] = Int64GetDatum(e->event_id);
	args[2] = e->logged_at;
	args[3] = CStringGetTextDatum(pass->class_name);
	args[4] = CStringGetTextDatum(e->kind);
	args[5] = CStringGetTextDatum(e->errmsg);
	args[6] = CStringGetTextDatum(e->sqlstate);
	if (SPI_execute_plan(fail_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not record the failure of event " INT64_FORMAT, event_id);
	attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pass->failed++;
	if (attempts >= pass->max_attempts)
	{
		if (SPI_execute_plan(bury_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not dead-letter event " INT64_FORMAT, event_id);
		pass->dead++;
	}
}

/*
 * One consumer pass over one class, in the current transaction (see the
 * file header).  max_events <= 0 means the class's batch size.
 */
void
FleetProcessClass(const char *class_name, int max_events,
				  int *applied, int *failed, int *dead)
{
	Pass		pass;
	FleetOwnerSwitch owner_sw;
	int			save_nestlevel;
	int			plan_nestlevel;
	Datum		args[7];
	char	   *lo;
	char	   *hi;
	char	   *pos_txid;
	int64		pos_event;
	int			budget;
	bool		isnull;
	bool		new_batch = false;
	bool		batch_done = false;
	int			nevents = 0;
	Datum		first_logged = (Datum) 0;
	Datum		last_logged = (Datum) 0;
	uint64		i;
	SPITupleTable *tt;
	uint64		ntup;
	FullTransactionId last_txid;
	FleetEvent *batch;

	memset(&pass, 0, sizeof(pass));
	if (!batch_callback)
	{
		RegisterXactCallback(batch_xact_end, NULL);
		batch_callback = true;
	}
	batch_depth++;
	pass.class_name = class_name;

	FleetAsOwner(&owner_sw);
	save_nestlevel = NewGUCNestLevel();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();

	/* 1. lock the cursor */
	args[0] = CStringGetTextDatum(class_name);
	if (SPI_execute_plan(cursor_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "cursor look-up failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown event class \"%s\"", class_name),
				 errhint("The classes are telemetry, operational, financial and audit.")));
	tt = SPI_tuptable;
	lo = SPI_getvalue(tt->vals[0], tt->tupdesc, 1);
	hi = SPI_getvalue(tt->vals[0], tt->tupdesc, 2);
	pos_txid = SPI_getvalue(tt->vals[0], tt->tupdesc, 3);
	pos_event = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
	pass.max_attempts = DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 5, &isnull));
	budget = max_events > 0 ? max_events : DatumGetInt32(SPI_getbinval(tt->vals[0], tt->tupdesc, 6, &isnull));

	/* the class's handlers */
	FleetApplierInit(&pass.applier, class_name);

	/* 2. due retries */
	args[1] = Int32GetDatum(budget);
	if (SPI_execute_plan(retries_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "retry look-up failed");
	tt = SPI_tuptable;
	ntup = SPI_processed;
	if (ntup > 0)
	{
		FleetEvent *ev = palloc(sizeof(FleetEvent) * ntup);

		for (i = 0; i < ntup; i++)
			read_event(tt, i, &ev[i]);
		budget -= (int) ntup;
		FleetApplyEvents(&pass.applier, ev, (int) ntup);
		for (i = 0; i < ntup; i++)
		{
			if (ev[i].ok)
			{
				Datum		dargs[2] = {Int64GetDatum(ev[i].tenant), Int64GetDatum(ev[i].event_id)};

				if (SPI_execute_plan(done_retry_plan, dargs, NULL, false, 0) != SPI_OK_DELETE)
					elog(ERROR, "could not remove retried event " INT64_FORMAT, ev[i].event_id);
				pass.applied++;
			}
			else
				record_failure(&pass, &ev[i]);
		}
	}

	/* 3. the next batch of new events */
	if (budget > 0)
	{
		if (hi == NULL)
		{
			if (SPI_execute_plan(snapshot_plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not take a snapshot");
			hi = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			new_batch = true;
		}
		/* snapshots as values, parsed once here rather than per row */
		args[1] = DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(lo));
		args[2] = DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(hi));
		args[3] = CStringGetTextDatum(pos_txid);
		args[4] = Int64GetDatum(pos_event);
		args[5] = Int32GetDatum(budget);
		/*
		 * The batch must come from the (class, txid, event_id) index in
		 * order, stopping after the limit, whatever the statistics of a
		 * freshly filled partition suggest: a sort of the whole remaining
		 * batch on every pass would make consumption quadratic.
		 */
		plan_nestlevel = NewGUCNestLevel();
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		ntup = (uint64) read_batch(&pass.applier, args, budget, &last_txid, &batch);
		AtEOXact_GUC(true, plan_nestlevel);
		if (ntup > 0)
		{
			FleetEvent *ev = batch;

			FleetApplyEvents(&pass.applier, ev, (int) ntup);
			for (i = 0; i < ntup; i++)
			{
				if (ev[i].ok)
					pass.applied++;
				else
					record_failure(&pass, &ev[i]);
			}
			/* the batch's last transaction id, as text (xid8's output) */
			pos_txid = DatumGetCString(DirectFunctionCall1(xid8out, FullTransactionIdGetDatum(last_txid)));
			pos_event = ev[ntup - 1].event_id;
			nevents = (int) ntup;
			first_logged = ev[0].logged_at;
			last_logged = ev[ntup - 1].logged_at;
		}
		batch_done = ntup < (uint64) budget;

		/* 4. move the cursor (skipped when an empty batch changed nothing) */
		if (!(new_batch && nevents == 0 && strcmp(lo, hi) == 0))
		{
			Datum		margs[7];
			char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

			margs[0] = CStringGetTextDatum(class_name);
			if (batch_done)
			{
				margs[1] = CStringGetTextDatum(hi);
				nulls[2] = 'n';
				margs[2] = (Datum) 0;
				margs[3] = CStringGetTextDatum("0");
				margs[4] = Int64GetDatum(0);
			}
			else
			{
				margs[1] = CStringGetTextDatum(lo);
				margs[2] = CStringGetTextDatum(hi);
				margs[3] = CStringGetTextDatum(pos_txid);
				margs[4] = Int64GetDatum(pos_event);
			}
			margs[5] = Int64GetDatum(nevents);
			margs[6] = BoolGetDatum(batch_done);
			if (SPI_execute_plan(move_plan, margs, nulls, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not move the cursor of class \"%s\"", class_name);
		}

		/* 5. the pass's counters and lag sample (passes that applied new events) */
		if (nevents > 0)
		{
			Datum		sargs[3] = {CStringGetTextDatum(class_name), first_logged, last_logged};

			if (SPI_execute_plan(stat_plan, sargs, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not record the pass of class \"%s\"", class_name);
		}
	}

	SPI_finish();
	/* leave the caller's tenant context as it was (isCommit false: restore) */
	AtEOXact_GUC(false, save_nestlevel);
	FleetAsCaller(&owner_sw);
	batch_depth--;

	*applied = pass.applied;
	*failed = pass.failed;
	*dead = pass.dead;
}

/*
 * fleet.process_pending(class text DEFAULT NULL, max_events int DEFAULT NULL)
 *	RETURNS TABLE (class text, applied int, failed int, dead_lettered int)
 */
Datum
fleet_process_pending(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *only = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			max_events = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	int			c;
	bool		matched = false;

	if (!PG_ARGISNULL(1) && max_events < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be at least 1")));
	InitMaterializedSRF(fcinfo, 0);
	for (c = 0; c < (int) NCLASSES; c++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		int			applied;
		int			failed;
		int			dead;

		if (only != NULL && strcmp(only, class_names[c]) != 0)
			continue;
		matched = true;
		FleetProcessClass(class_names[c], max_events, &applied, &failed, &dead);
		values[0] = CStringGetTextDatum(class_names[c]);
		values[1] = Int32GetDatum(applied);
		values[2] = Int32GetDatum(failed);
		values[3] = Int32GetDatum(dead);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (!matched)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown event class \"%s\"", only),
				 errhint("The classes are telemetry, operational, financial and audit.")));
	return (Datum) 0;
}
