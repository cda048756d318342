/*-------------------------------------------------------------------------
 *
 * sync_batch.c
 *	  fleet.sync_push(): a driver app's batch of offline writes, checked,
 *	  put in id order, decided once each and stored with its trail.
 *
 * The push locks its client's row (one push per client at a time; a later
 * push waits and then sees what this one processed), checks every
 * mutation's envelope before anything is decided (a bad one fails the
 * whole push, naming it), and walks the batch in id order:
 *
 *   - an id at or below the client's last processed one is a duplicate:
 *     the same payload gets the stored result again (and its counter goes
 *     up), another payload is an error;
 *   - an id beyond the next expected one is refused, naming the expected id;
 *   - a run of consecutive new ids goes to FleetSyncRun() (sync_push.c),
 *     which decides and writes its plain leading part at once; the mutation
 *     it stops at is decided alone by fleet.sync_apply() (the merge rules,
 *     sql/parts/51_sync_push.sql), and the run goes on after it.  Each is
 *     a subtransaction: a run that fails is rolled back and the rest of the
 *     push goes one mutation at a time; a single mutation that fails is
 *     rejected alone, with the error as its reason.  Errors that say the
 *     transaction or the server is in trouble (serialization, deadlock,
 *     resources, limits, lock timeout, cancel, internal) end the push.
 *
 * Every processed mutation is stored in fleet.sync_mutation (with the
 * result a duplicate gets back) in one insert per stretch of new ids, and
 * its trail event enters the event log through the ingest path in one
 * fleet.ingest_events_reserved() call (idempotency key "<client>:<id>",
 * under the id its effects already name).  Last, the client's row records
 * the last processed id and the push's transaction.
 *
 * This was PL/pgSQL until 2026-11-29; the interpreter's per-mutation work
 * (outcome records, array appends, the stored result's jsonb) was a quarter
 * of a push.  The decisions themselves are unchanged: the same rules in
 * FleetSyncRun() and fleet.sync_apply(), the same results, trail and
 * errors (regress 50_sync_push).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/xid8.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_sync_push);

/* one mutation of the batch, as received */
typedef struct Mutation
{
	int			ord;			/* position in the batch, from 0 */
	int64		id;
} Mutation;

static SPIPlanPtr setting_plan = NULL;
static SPIPlanPtr client_plan = NULL;
static SPIPlanPtr stored_plan = NULL;
static SPIPlanPtr duplicate_plan = NULL;
static SPIPlanPtr apply_plan = NULL;
static SPIPlanPtr rule_plan = NULL;
static SPIPlanPtr rejected_plan = NULL;
static SPIPlanPtr review_plan = NULL;
static SPIPlanPtr trail_plan = NULL;
static SPIPlanPtr client_update_plan = NULL;

static const FleetPlanSpec plans[] = {
	{&setting_plan, FLEET_PLAN_GENERIC, 0, {InvalidOid},
		"SELECT s.max_batch FROM fleet.sync_setting s"},

	/* $1 tenant, $2 client */
	{&client_plan, FLEET_PLAN_GENERIC, 2, {INT8OID, UUIDOID},
		"SELECT x.driver_id, x.active, x.last_mutation_id FROM fleet.sync_client x"
		" WHERE x.tenant_id OPERATOR(pg_catalog.=) $1 AND x.client_id OPERATOR(pg_catalog.=) $2"
		"   FOR UPDATE"},

	/* $1 tenant, $2 client, $3 mutation id */
	/* ... and whether its payload differs from $4 */
	{&stored_plan, FLEET_PLAN_GENERIC, 4, {INT8OID, UUIDOID, INT8OID, JSONBOID},
		"SELECT x.payload, x.result, x.rule, x.reason, x.conflict_id, x.stored, x.payload OPERATOR(pg_catalog.<>) $4"
		"  FROM fleet.sync_mutation x"
		" WHERE x.tenant_id OPERATOR(pg_catalog.=) $1 AND x.client_id OPERATOR(pg_catalog.=) $2"
		"   AND x.mutation_id OPERATOR(pg_catalog.=) $3"},
	{&duplicate_plan, FLEET_PLAN_GENERIC, 3, {INT8OID, UUIDOID, INT8OID},
		"UPDATE fleet.sync_mutation x SET duplicates = x.duplicates OPERATOR(pg_catalog.+) 1"
		" WHERE x.tenant_id OPERATOR(pg_catalog.=) $1 AND x.client_id OPERATOR(pg_catalog.=) $2"
		"   AND x.mutation_id OPERATOR(pg_catalog.=) $3"},

	/* the single path: one mutation by its workflow's merge rule */
	{&apply_plan, FLEET_PLAN_GENERIC, 9,
		{INT8OID, UUIDOID, INT8OID, INT8OID, TEXTOID, JSONBOID, TIMESTAMPTZOID, INT8OID, TEXTOID},
		"SELECT r.result, r.rule, r.reason, r.entity, r.entity_id, r.conflict_id, r.event_id, r.version,"
		"       r.trail_kind, r.trail_payload, r.trail_occurred"
		"  FROM fleet.sync_apply($1, $2, $3, $4, $5, $6, $7, $8, $9) r"},
	{&rule_plan, FLEET_PLAN_GENERIC, 1, {TEXTOID},
		"SELECT w.rule FROM fleet.sync_workflow w WHERE w.workflow OPERATOR(pg_catalog.=) $1"},

	/* a rejection's trail payload: what was received and why */
	{&rejected_plan, FLEET_PLAN_GENERIC, 9,
		{TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TIMESTAMPTZOID},
		"SELECT pg_catalog.jsonb_build_object('client', $1, 'mutation_id', $2, 'workflow', $3,"
		"    'result', $4, 'rule', $5, 'reason', $6, 'args', $7, 'driver_id', $8, 'client_time', $9)"},

	/* $1 tenant, $2 conflict: a review item keeps the mutation unreconciled */
	{&review_plan, FLEET_PLAN_GENERIC, 2, {INT8OID, INT8OID},
		"SELECT EXISTS (SELECT 1 FROM fleet.sync_review v"
		"                WHERE v.tenant_id OPERATOR(pg_catalog.=) $1 AND v.conflict_id OPERATOR(pg_catalog.=) $2)"},

	/* the page's trail events: the first one refused, if any */
	{&trail_plan, FLEET_PLAN_GENERIC, 6,
		{TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID, INT8ARRAYOID},
		"SELECT e.idx, e.status, e.reason, e.event_id"
		"  FROM fleet.ingest_events_reserved($1, $2, $3, NULL, $4, $5, $6) e"
		" WHERE e.status OPERATOR(pg_catalog.<>) 'accepted'"
		" LIMIT 1"},

	/* $1 tenant, $2 client, $3 last processed id, $4 the one before the push */
	{&client_update_plan, FLEET_PLAN_GENERIC, 4, {INT8OID, UUIDOID, INT8OID, INT8OID},
		"UPDATE fleet.sync_client x"
		"   SET last_mutation_id = $3, last_push_at = pg_catalog.now(),"
		"       last_push_txid = CASE WHEN $3 OPERATOR(pg_catalog.>) $4 THEN pg_catalog.pg_current_xact_id()"
		"                             ELSE x.last_push_txid END"
		" WHERE x.tenant_id OPERATOR(pg_catalog.=) $1 AND x.client_id OPERATOR(pg_catalog.=) $2"},
};

/* the processed mutations, as one array of fleet.sync_mutation */
static FleetRowsPlan record_rows = {"sync_mutation",
	"INSERT INTO fleet.sync_mutation SELECT * FROM pg_catalog.unnest($1)"};

/* the columns of fleet.sync_mutation this file fills, by name */
enum
{
	R_TENANT, R_CLIENT, R_ID, R_WORKFLOW, R_PAYLOAD, R_CLIENT_TIME, R_RESULT, R_RULE, R_REASON,
	R_ENTITY, R_ENTITY_ID, R_CONFLICT, R_EVENT, R_STORED, R_DUPLICATES, R_TXID, R_APPLIED,
	R_RECONCILED, R_NCOLS
};
static const char *const record_columns[R_NCOLS] = {
	"tenant_id", "client_id", "mutation_id", "workflow", "payload", "client_time", "result", "rule",
	"reason", "entity", "entity_id", "conflict_id", "event_id", "stored", "duplicates", "txid",
	"applied_at", "reconciled_at"
};

/* the push's state while it walks the batch */
typedef struct Push
{
	MemoryContext cxt;
	int64		tenant;
	Datum		client;			/* uuid */
	char	   *client_text;
	int64		driver;
	int64		last;			/* the last processed id so far */
	/* the batch in id order, one column per FleetSyncField, and the payloads */
	int			n;
	Datum	   *v[SYNC_NFIELDS];
	bool	   *isnull[SYNC_NFIELDS];
	Datum	   *payload;
	const char **fault;			/* why a mutation is rejected before it is decided, or NULL */
	/* processed mutations not yet stored */
	TupleDesc	recdesc;
	int			recmap[R_NCOLS];	/* attribute index of each column */
	Datum	   *records;
	int			nrecords;
	/* the trail events, logged after the walk */
	FleetColumns trail;			/* key, kind, occurred, payload, id */
	int			ntrail;
	/* the rows returned */
	ReturnSetInfo *rsinfo;
} Push;

/* errors a push does not turn into a rejection: they end it */
static bool
ends_push(int code)
{
	int			category = ERRCODE_TO_CATEGORY(code);

	return category == ERRCODE_TRANSACTION_ROLLBACK || category == ERRCODE_INSUFFICIENT_RESOURCES ||
		category == ERRCODE_PROGRAM_LIMIT_EXCEEDED || code == ERRCODE_LOCK_NOT_AVAILABLE ||
		category == ERRCODE_OPERATOR_INTERVENTION || category == ERRCODE_SYSTEM_ERROR ||
		category == ERRCODE_INTERNAL_ERROR;
}

/* elem->key as ->> reads it (NULL: absent or JSON null) */
static char *
field_text(Jsonb *elem, const char *key, JsonbValue *v, bool *present)
{
	*present = FleetJsonbKey(elem, key, v);
	if (!*present)
		return NULL;
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;
}

/* elem->key as a value inside another object: JSON null when absent */
static void
field_value(Jsonb *elem, const char *key, JsonbValue *out)
{
	if (!FleetJsonbKey(elem, key, out))
		FleetJvNull(out);
}

/*
 * What is wrong with one mutation's envelope: "malformed" (not an object
 * with a positive integer "id" of at most 18 digits and a string
 * "workflow"), "base_version" (present and not a number or null), "hlc"
 * (present and not a string or null); NULL when nothing is.  *id is set
 * when the id is good.
 */
static const char *
envelope_fault(Jsonb *elem, int64 *id)
{
	JsonbValue	v;
	bool		present;
	char	   *text;
	const char *p;

	if (!JB_ROOT_IS_OBJECT(elem))
		return "malformed";
	text = field_text(elem, "id", &v, &present);
	if (!present || v.type != jbvNumeric)
		return "malformed";
	for (p = text; *p >= '0' && *p <= '9'; p++)
		;
	if (*p != '\0' || p == text || p - text > 18)
		return "malformed";
	*id = strtoi64(text, NULL, 10);
	if (*id < 1)
		return "malformed";
	if (!FleetJsonbKey(elem, "workflow", &v) || v.type != jbvString)
		return "malformed";
	if (FleetJsonbKey(elem, "base_version", &v) && v.type != jbvNumeric && v.type != jbvNull)
		return "base_version";
	if (FleetJsonbKey(elem, "hlc", &v) && v.type != jbvString && v.type != jbvNull)
		return "hlc";
	return NULL;
}

/*
 * elem's client_time: true with *ts when it is a string holding an RFC 3339
 * date-time in the accepted window (instant.c); false when it is absent or
 * null (*fault NULL) or anything else (*fault says what, naming the field:
 * the mutation is rejected with it).
 */
static bool
client_time(Jsonb *elem, TimestampTz *ts, const char **fault)
{
	JsonbValue	v;
	char	   *text;
	const char *window;

	*fault = NULL;
	if (!FleetJsonbKey(elem, "client_time", &v) || v.type == jbvNull)
		return false;
	if (v.type != jbvString)
	{
		*fault = "invalid client_time: not a string";
		return false;
	}
	text = pnstrdup(v.val.string.val, v.val.string.len);
	if (!FleetParseInstant(text, ts))
	{
		*fault = "invalid client_time: not an RFC 3339 date-time";
		return false;
	}
	window = FleetInstantFault(*ts, FleetLatestInstant());
	if (window != NULL)
	{
		*fault = psprintf("invalid client_time: %s", window);
		return false;
	}
	return true;
}

static int
cmp_mutation(const void *a, const void *b)
{
	const Mutation *x = a;
	const Mutation *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->ord - y->ord;
}

/*
 * The payload a duplicate must match: jsonb_build_object('workflow',
 * e->'workflow', 'args', e->'args', 'client_time', EXTRACT(epoch FROM
 * client_time), 'base_version', e->'base_version', 'hlc', e->'hlc'); a
 * client_time that was refused (ct_bad) as it was sent.
 */
static Datum
mutation_payload(Jsonb *elem, bool ct_null, bool ct_bad, TimestampTz ct)
{
	FleetJsonbFields f = {0};

	field_value(elem, "workflow", FleetJsonbField(&f, "workflow"));
	field_value(elem, "args", FleetJsonbField(&f, "args"));
	if (ct_bad)
		field_value(elem, "client_time", FleetJsonbField(&f, "client_time"));
	else if (ct_null)
		FleetJvNull(FleetJsonbField(&f, "client_time"));
	else
		FleetJvNumeric(FleetJsonbField(&f, "client_time"),
					   DatumGetNumeric(DirectFunctionCall2(extract_timestamptz, CStringGetTextDatum("epoch"),
														   TimestampTzGetDatum(ct))));
	field_value(elem, "base_version", FleetJsonbField(&f, "base_version"));
	field_value(elem, "hlc", FleetJsonbField(&f, "hlc"));
	return FleetJsonbFieldsObject(&f, false);
}

/*
 * Check the envelopes, then read the batch into push->v/isnull/payload in
 * id order (a duplicate inside the batch right after its original).
 */
static void
read_batch(Push *push, Jsonb *batch)
{
	int			n = JB_ROOT_COUNT(batch);
	Jsonb	  **elems = palloc(sizeof(Jsonb *) * Max(n, 1));
	Mutation   *order = palloc(sizeof(Mutation) * Max(n, 1));
	JsonbIterator *it = JsonbIteratorInit(&batch->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	TimestampTz *ct;
	bool	   *ct_null;
	const char **ct_fault;
	int			i = 0;
	int			f;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		elems[i] = JsonbValueToJsonb(&v);
		i++;
	}
	Assert(i == n);

	/* the envelopes (client time included), in batch order: the first bad one fails the push */
	ct = palloc(sizeof(TimestampTz) * Max(n, 1));
	ct_null = palloc(sizeof(bool) * Max(n, 1));
	ct_fault = palloc(sizeof(char *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		const char *fault = envelope_fault(elems[i], &order[i].id);
		JsonbValue	idv;
		bool		present;

		order[i].ord = i;
		if (fault != NULL && strcmp(fault, "malformed") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("mutation %d of the batch is malformed", i + 1),
					 errdetail("Each mutation is an object with a positive integer \"id\" and a string \"workflow\".")));
		if (fault != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 strcmp(fault, "hlc") == 0 ?
					 errmsg("mutation %s of the batch has an hlc that is not a string",
							field_text(elems[i], "id", &idv, &present)) :
					 errmsg("mutation %s of the batch has a base_version that is not a number",
							field_text(elems[i], "id", &idv, &present))));
		ct_null[i] = !client_time(elems[i], &ct[i], &ct_fault[i]);
	}

	for (f = 0; f < SYNC_NFIELDS; f++)
	{
		push->v[f] = palloc0(sizeof(Datum) * Max(n, 1));
		push->isnull[f] = palloc0(sizeof(bool) * Max(n, 1));
	}
	push->payload = palloc(sizeof(Datum) * Max(n, 1));
	push->fault = palloc(sizeof(char *) * Max(n, 1));
	push->n = n;

	qsort(order, n, sizeof(Mutation), cmp_mutation);
	for (i = 0; i < n; i++)
	{
		Jsonb	   *e = elems[order[i].ord];
		JsonbValue	fv;

		push->v[SYNC_ID][i] = Int64GetDatum(order[i].id);
		FleetJsonbKey(e, "workflow", &fv);
		push->v[SYNC_WORKFLOW][i] = PointerGetDatum(cstring_to_text_with_len(fv.val.string.val, fv.val.string.len));
		/* e->'args': a JSON null is a jsonb null, not SQL NULL */
		if (FleetJsonbKey(e, "args", &fv))
			push->v[SYNC_ARGS][i] = JsonbPGetDatum(JsonbValueToJsonb(&fv));
		else
			push->isnull[SYNC_ARGS][i] = true;
		push->v[SYNC_CLIENT_TIME][i] = TimestampTzGetDatum(ct[order[i].ord]);
		push->isnull[SYNC_CLIENT_TIME][i] = ct_null[order[i].ord];
		/* (e->>'base_version')::numeric::bigint, rounded and range-checked (a number or null here) */
		if (FleetJsonbKey(e, "base_version", &fv) && fv.type == jbvNumeric)
			push->v[SYNC_BASE_VERSION][i] = DirectFunctionCall1(numeric_int8, NumericGetDatum(fv.val.numeric));
		else
			push->isnull[SYNC_BASE_VERSION][i] = true;
		/* e->>'hlc' (a string or null here) */
		if (FleetJsonbKey(e, "hlc", &fv) && fv.type == jbvString)
			push->v[SYNC_HLC][i] = PointerGetDatum(cstring_to_text_with_len(fv.val.string.val, fv.val.string.len));
		else
			push->isnull[SYNC_HLC][i] = true;
		push->fault[i] = ct_fault[order[i].ord];
		push->payload[i] = mutation_payload(e, ct_null[order[i].ord], push->fault[i] != NULL,
											ct[order[i].ord]);
	}
}

/* store the processed mutations not yet stored */
static void
flush_records(Push *push)
{
	if (push->nrecords == 0)
		return;
	FleetRowsExecute(&record_rows, push->records, push->nrecords);
	push->nrecords = 0;
}

/*
 * One processed mutation (batch index i): its trail event to log, its
 * record to store, its row to return.
 */
static void
processed(Push *push, int i, FleetSyncOutcome *o)
{
	int64		id = DatumGetInt64(push->v[SYNC_ID][i]);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz clock = GetCurrentTimestamp();
	FleetJsonbFields f = {0};
	JsonbValue *jv;
	Datum		stored;
	Datum		values[R_NCOLS];
	bool		nulls[R_NCOLS];
	Datum	   *rec;
	bool	   *recnulls;
	bool		reconciled = true;
	int			c;
	char		key[64];

	if (o->event_null)
	{
		/* rejected: the trail still records what was received and why */
		Datum		args[9];
		char		nn[9];

		memset(nn, ' ', sizeof(nn));
		o->event_id = nextval_internal(FleetEventIdSequence(), false);
		o->event_null = false;
		o->trail_kind = "sync.mutation";
		o->trail_occurred = push->isnull[SYNC_CLIENT_TIME][i] ? now :
			Min(DatumGetTimestampTz(push->v[SYNC_CLIENT_TIME][i]), now);
		o->trail_occurred_null = false;
		args[0] = CStringGetTextDatum(push->client_text);
		args[1] = Int64GetDatum(id);
		args[2] = push->v[SYNC_WORKFLOW][i];
		args[3] = CStringGetTextDatum(o->result);
		if (o->rule)
			args[4] = CStringGetTextDatum(o->rule);
		else
			nn[4] = 'n';
		if (o->reason)
			args[5] = CStringGetTextDatum(o->reason);
		else
			nn[5] = 'n';
		args[6] = push->v[SYNC_ARGS][i];
		nn[6] = push->isnull[SYNC_ARGS][i] ? 'n' : ' ';
		args[7] = Int64GetDatum(push->driver);
		args[8] = push->v[SYNC_CLIENT_TIME][i];
		nn[8] = push->isnull[SYNC_CLIENT_TIME][i] ? 'n' : ' ';
		if (SPI_execute_plan(rejected_plan, args, nn, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "trail payload of a rejected mutation failed");
		{
			bool		isnull;
			Datum		p = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			MemoryContext old = MemoryContextSwitchTo(push->cxt);

			o->trail_payload = datumCopy(p, false, -1);
			MemoryContextSwitchTo(old);
		}
	}
	MemoryContextSwitchTo(push->cxt);

	/* the trail event */
	snprintf(key, sizeof(key), "%s:" INT64_FORMAT, push->client_text, id);
	c = push->ntrail++;
	push->trail.v[0][c] = CStringGetTextDatum(key);
	push->trail.v[1][c] = CStringGetTextDatum(o->trail_kind);
	push->trail.v[2][c] = TimestampTzGetDatum(o->trail_occurred);
	push->trail.n[2][c] = o->trail_occurred_null;
	push->trail.v[3][c] = o->trail_payload;
	push->trail.n[3][c] = o->trail_payload == (Datum) 0;
	push->trail.v[4][c] = Int64GetDatum(o->event_id);

	/* the result a duplicate gets back (no null keys) */
	FleetJvInt64(FleetJsonbField(&f, "id"), id);
	FleetJvString(FleetJsonbField(&f, "result"), o->result);
	FleetJvString(FleetJsonbField(&f, "rule"), o->rule);
	FleetJvString(FleetJsonbField(&f, "reason"), o->reason);
	FleetJvString(FleetJsonbField(&f, "entity"), o->entity);
	jv = FleetJsonbField(&f, "entity_id");
	if (o->entity_id_null)
		FleetJvNull(jv);
	else
		FleetJvInt64(jv, o->entity_id);
	jv = FleetJsonbField(&f, "version");
	if (o->version_null)
		FleetJvNull(jv);
	else
		FleetJvInt64(jv, o->version);
	jv = FleetJsonbField(&f, "conflict_id");
	if (o->conflict_null)
		FleetJvNull(jv);
	else
		FleetJvInt64(jv, o->conflict_id);
	FleetJvInt64(FleetJsonbField(&f, "event_id"), o->event_id);
	stored = FleetJsonbFieldsObject(&f, true);

	/* reconciled now, unless a review item waits on its conflict */
	if (!o->conflict_null)
	{
		Datum		args[2] = {Int64GetDatum(push->tenant), Int64GetDatum(o->conflict_id)};
		bool		isnull;

		if (SPI_execute_plan(review_plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "review look-up failed");
		reconciled = !DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContextSwitchTo(push->cxt);
	}

	/* the record */
	memset(nulls, 0, sizeof(nulls));
	values[R_TENANT] = Int64GetDatum(push->tenant);
	values[R_CLIENT] = push->client;
	values[R_ID] = Int64GetDatum(id);
	values[R_WORKFLOW] = push->v[SYNC_WORKFLOW][i];
	values[R_PAYLOAD] = push->payload[i];
	values[R_CLIENT_TIME] = push->v[SYNC_CLIENT_TIME][i];
	nulls[R_CLIENT_TIME] = push->isnull[SYNC_CLIENT_TIME][i];
	values[R_RESULT] = CStringGetTextDatum(o->result);
	values[R_RULE] = o->rule ? CStringGetTextDatum(o->rule) : (Datum) 0;
	nulls[R_RULE] = o->rule == NULL;
	values[R_REASON] = o->reason ? CStringGetTextDatum(o->reason) : (Datum) 0;
	nulls[R_REASON] = o->reason == NULL;
	values[R_ENTITY] = o->entity ? CStringGetTextDatum(o->entity) : (Datum) 0;
	nulls[R_ENTITY] = o->entity == NULL;
	values[R_ENTITY_ID] = Int64GetDatum(o->entity_id);
	nulls[R_ENTITY_ID] = o->entity_id_null;
	values[R_CONFLICT] = Int64GetDatum(o->conflict_id);
	nulls[R_CONFLICT] = o->conflict_null;
	values[R_EVENT] = Int64GetDatum(o->event_id);
	values[R_STORED] = stored;
	values[R_DUPLICATES] = Int32GetDatum(0);
	values[R_TXID] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	values[R_APPLIED] = TimestampTzGetDatum(clock);
	values[R_RECONCILED] = TimestampTzGetDatum(clock);
	nulls[R_RECONCILED] = !reconciled;
	/* the table's row type, dropped columns included (NULL) */
	rec = palloc0(sizeof(Datum) * push->recdesc->natts);
	recnulls = palloc(sizeof(bool) * push->recdesc->natts);
	for (c = 0; c < push->recdesc->natts; c++)
		recnulls[c] = true;
	for (c = 0; c < R_NCOLS; c++)
	{
		rec[push->recmap[c]] = values[c];
		recnulls[push->recmap[c]] = nulls[c];
	}
	push->records[push->nrecords++] = HeapTupleGetDatum(heap_form_tuple(push->recdesc, rec, recnulls));
	push->last = id;

	/* the row returned */
	{
		Datum		out[6];
		bool		outnulls[6] = {false, false, o->rule == NULL, o->reason == NULL, o->conflict_null, false};

		out[0] = Int64GetDatum(id);
		out[1] = values[R_RESULT];
		out[2] = values[R_RULE];
		out[3] = values[R_REASON];
		out[4] = values[R_CONFLICT];
		out[5] = stored;
		tuplestore_putvalues(push->rsinfo->setResult, push->rsinfo->setDesc, out, outnulls);
	}
}

/* a duplicate (batch index i): the stored result again, or an error */
static void
duplicate(Push *push, int i)
{
	int64		id = DatumGetInt64(push->v[SYNC_ID][i]);
	Datum		args[4] = {Int64GetDatum(push->tenant), push->client, Int64GetDatum(id), push->payload[i]};
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		out[6];
	bool		outnulls[6];
	bool		isnull;
	int			c;

	flush_records(push);
	if (SPI_execute_plan(stored_plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "stored mutation look-up failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("mutation " INT64_FORMAT " of client %s was processed but its result is no longer kept",
						id, push->client_text)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("mutation " INT64_FORMAT " of client %s was already processed with a different payload",
						id, push->client_text),
				 errdetail("Stored: %s; received: %s.", SPI_getvalue(tup, desc, 1),
						   DatumGetCString(DirectFunctionCall1(jsonb_out, push->payload[i]))),
				 errhint("A mutation id is used once; a reinstalled app must register as a new client.")));
	out[0] = Int64GetDatum(id);
	out[1] = CStringGetTextDatum("duplicate");
	outnulls[0] = outnulls[1] = false;
	for (c = 2; c < 6; c++)
	{
		/* rule, reason, conflict_id, stored: columns 3 to 6 */
		Datum		d = SPI_getbinval(tup, desc, c + 1, &outnulls[c]);

		out[c] = outnulls[c] ? (Datum) 0 : datumCopy(d, TupleDescAttr(desc, c)->attbyval,
													 TupleDescAttr(desc, c)->attlen);
	}
	tuplestore_putvalues(push->rsinfo->setResult, push->rsinfo->setDesc, out, outnulls);
	if (SPI_execute_plan(duplicate_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "duplicate count failed");
	MemoryContextSwitchTo(push->cxt);
}

/*
 * FleetTrySubtransaction for the push: NULL if fn committed; else its error
 * (its writes rolled back), unless the error ends the push, which is thrown
 * again.
 */
static ErrorData *
in_subtransaction(Push *push, void (*fn) (void *), void *arg)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(push->cxt);
	edata = FleetTrySubtransaction(fn, arg);
	if (edata != NULL && ends_push(edata->sqlerrcode))
		ReThrowError(edata);
	return edata;
}

/* FleetSyncRun over the batch from index run->from to run->to */
typedef struct RunArgs
{
	Push	   *push;
	int			from;
	int			to;
	FleetSyncOutcome *out;
	int			nout;			/* how many it decided */
} RunArgs;

static void
run_fn(void *arg)
{
	RunArgs    *r = arg;
	Push	   *push = r->push;
	Datum	   *v[SYNC_NFIELDS];
	bool	   *isnull[SYNC_NFIELDS];
	int			f;

	for (f = 0; f < SYNC_NFIELDS; f++)
	{
		v[f] = push->v[f] + r->from;
		isnull[f] = push->isnull[f] + r->from;
	}
	r->nout = FleetSyncRun(push->tenant, push->client_text, push->driver, r->to - r->from + 1, v, isnull, r->out);
}

/* fleet.sync_apply() for batch index i, its outcome into *out (in the push's context) */
typedef struct ApplyArgs
{
	Push	   *push;
	int			i;
	FleetSyncOutcome *out;
} ApplyArgs;

static void
apply_fn(void *arg)
{
	ApplyArgs  *a = arg;
	Push	   *push = a->push;
	int			i = a->i;
	FleetSyncOutcome *o = a->out;
	Datum		args[9];
	char		nn[9];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	memset(nn, ' ', sizeof(nn));
	args[0] = Int64GetDatum(push->tenant);
	args[1] = push->client;
	args[2] = Int64GetDatum(push->driver);
	args[3] = push->v[SYNC_ID][i];
	args[4] = push->v[SYNC_WORKFLOW][i];
	args[5] = push->v[SYNC_ARGS][i];
	nn[5] = push->isnull[SYNC_ARGS][i] ? 'n' : ' ';
	args[6] = push->v[SYNC_CLIENT_TIME][i];
	nn[6] = push->isnull[SYNC_CLIENT_TIME][i] ? 'n' : ' ';
	args[7] = push->v[SYNC_BASE_VERSION][i];
	nn[7] = push->isnull[SYNC_BASE_VERSION][i] ? 'n' : ' ';
	args[8] = push->v[SYNC_HLC][i];
	nn[8] = push->isnull[SYNC_HLC][i] ? 'n' : ' ';
	if (SPI_execute_plan(apply_plan, args, nn, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "fleet.sync_apply() returned no outcome");
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	MemoryContextSwitchTo(push->cxt);
	memset(o, 0, sizeof(*o));
	o->result = SPI_getvalue(tup, desc, 1);
	if (o->result == NULL)
		elog(ERROR, "fleet.sync_apply() returned no result");
	o->rule = SPI_getvalue(tup, desc, 2);
	o->reason = SPI_getvalue(tup, desc, 3);
	o->entity = SPI_getvalue(tup, desc, 4);
	d = SPI_getbinval(tup, desc, 5, &o->entity_id_null);
	o->entity_id = o->entity_id_null ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 6, &o->conflict_null);
	o->conflict_id = o->conflict_null ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 7, &o->event_null);
	o->event_id = o->event_null ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 8, &o->version_null);
	o->version = o->version_null ? 0 : DatumGetInt64(d);
	o->trail_kind = SPI_getvalue(tup, desc, 9);
	d = SPI_getbinval(tup, desc, 10, &isnull);
	o->trail_payload = isnull ? (Datum) 0 : datumCopy(d, false, -1);
	d = SPI_getbinval(tup, desc, 11, &o->trail_occurred_null);
	o->trail_occurred = o->trail_occurred_null ? 0 : DatumGetTimestampTz(d);
}

/*
 * log the trail events; a key already taken by another writer fails the
 * push (23505, the detail naming the event that holds it)
 */
static void
log_trail(Push *push)
{
	static const Oid types[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID, INT8OID};
	Datum		args[6];
	Datum	   *sources;
	int			i;

	if (push->ntrail == 0)
		return;
	sources = palloc(sizeof(Datum) * push->ntrail);
	for (i = 0; i < push->ntrail; i++)
		sources[i] = CStringGetTextDatum("sync");
	args[0] = PointerGetDatum(FleetMakeArray(sources, NULL, push->ntrail, TEXTOID));
	FleetColumnsArgs(&push->trail, types, push->ntrail, args + 1);
	if (SPI_execute_plan(trail_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "trail events of the push failed");
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			idx = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *key = TextDatumGetCString(push->trail.v[0][idx - 1]);
		char	   *reason = SPI_getvalue(tup, desc, 3);
		char	   *event = SPI_getvalue(tup, desc, 4);

		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("the trail event of mutation %s of client %s was refused: %s%s%s%s",
						strchr(key, ':') + 1, push->client_text, SPI_getvalue(tup, desc, 2),
						reason ? " (" : "", reason ? reason : "", reason ? ")" : ""),
				 errdetail("Its idempotency key (source \"sync\", key \"%s\") is already taken by event %s.",
						   key, event ? event : ""),
				 errhint("Source \"sync\" holds the trail of fleet.sync_push(): no other writer may log events under it. Nothing of this push was stored.")));
	}
}

/*
 * fleet.sync_push(client_id uuid, mutations jsonb) RETURNS TABLE
 *	(mutation_id bigint, result text, rule text, reason text,
 *	 conflict_id bigint, stored jsonb)
 */
Datum
fleet_sync_push(PG_FUNCTION_ARGS)
{
	Push		push;
	Jsonb	   *batch;
	Datum		args[4];
	bool		isnull;
	int64		first_last;
	bool		fast = true;
	int			i;
	int			c;
	FleetSyncOutcome *out;

	if (!FleetTenantIsSet())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no tenant context is set"),
				 errhint("Call SELECT fleet.set_tenant(tenant_id) first.")));
	if (XactIsoLevel != XACT_READ_COMMITTED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("fleet.sync_push must run at isolation level READ COMMITTED"),
				 errdetail("Mutations are decided against the latest committed state of their entity, under its row lock.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("client id must not be null")));
	batch = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	if (batch == NULL || !JB_ROOT_IS_ARRAY(batch) || JB_ROOT_IS_SCALAR(batch))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mutations must be a JSON array"),
				 errhint("Send [{\"id\": 1, \"workflow\": \"stop_status\", \"args\": {...}, \"client_time\": \"...\", \"base_version\": 3, \"hlc\": \"<ms>:<counter>\"}, ...].")));

	memset(&push, 0, sizeof(push));
	push.tenant = FleetCurrentTenant();
	push.client = PG_GETARG_DATUM(0);
	push.client_text = DatumGetCString(DirectFunctionCall1(uuid_out, push.client));
	InitMaterializedSRF(fcinfo, 0);
	push.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));
	push.recdesc = FleetRowsPrepare(&record_rows);
	/* work in a context of the push's own: SPI's is reset by its calls */
	push.cxt = AllocSetContextCreate(TopTransactionContext, "fleet.sync_push", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(push.cxt);

	if (SPI_execute_plan(setting_plan, NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "sync setting look-up failed");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull && JB_ROOT_COUNT(batch) > DatumGetInt32(d))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("batch of %d mutations exceeds the limit of %d", (int) JB_ROOT_COUNT(batch),
							DatumGetInt32(d)),
					 errhint("Push in smaller batches (fleet.sync_setting.max_batch).")));
	}

	/* one push per client at a time */
	args[0] = Int64GetDatum(push.tenant);
	args[1] = push.client;
	if (SPI_execute_plan(client_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "sync client look-up failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown sync client %s", push.client_text),
				 errhint("Register the app with fleet.sync_register_client() first.")));
	push.driver = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("sync client %s is deactivated", push.client_text)));
	push.last = first_last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	MemoryContextSwitchTo(push.cxt);

	read_batch(&push, batch);
	for (c = 0; c < R_NCOLS; c++)
	{
		int			attno = SPI_fnumber(push.recdesc, record_columns[c]);

		if (attno <= 0)
			elog(ERROR, "column \"%s\" of fleet.sync_mutation is missing", record_columns[c]);
		push.recmap[c] = attno - 1;
	}
	push.records = palloc(sizeof(Datum) * Max(push.n, 1));
	FleetColumnsInit(&push.trail, 5, Max(push.n, 1));
	out = palloc(sizeof(FleetSyncOutcome) * Max(push.n, 1));

	i = 0;
	while (i < push.n)
	{
		int64		id = DatumGetInt64(push.v[SYNC_ID][i]);
		int			nout = 0;
		int			k;

		if (id <= push.last)
		{
			duplicate(&push, i);
			i++;
			continue;
		}
		if (id > push.last + 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("mutation id " INT64_FORMAT " of client %s skips ahead", id, push.client_text),
					 errdetail("The next mutation id expected is " INT64_FORMAT ".", push.last + 1),
					 errhint("Push the mutations in id order without gaps, starting from the expected id.")));

		/*
		 * The run of new ids from here: its plain part is decided and
		 * written at once; if that fails, the rest of the push goes one
		 * mutation at a time.
		 */
		if (fast && push.fault[i] == NULL)
		{
			RunArgs		r = {&push, i, i, out, 0};
			ErrorData  *edata;

			while (r.to + 1 < push.n && push.fault[r.to + 1] == NULL &&
				   DatumGetInt64(push.v[SYNC_ID][r.to + 1]) == DatumGetInt64(push.v[SYNC_ID][r.to]) + 1)
				r.to++;
			edata = in_subtransaction(&push, run_fn, &r);
			nout = r.nout;
			if (edata != NULL)
			{
				/* for the server log: a push that keeps falling back is slow */
				ereport(LOG,
						(errmsg("fleet.sync_push: the set-based run from mutation " INT64_FORMAT " of client %s failed (%s: %s); deciding one at a time",
								id, push.client_text, unpack_sql_state(edata->sqlerrcode), edata->message)));
				fast = false;
				nout = 0;
			}
		}
		if (nout == 0)
		{
			/* the next one alone: a permanent failure rejects it only */
			ApplyArgs	a = {&push, i, &out[0]};
			ErrorData  *edata = NULL;

			if (push.fault[i] == NULL)
				edata = in_subtransaction(&push, apply_fn, &a);
			if (edata != NULL || push.fault[i] != NULL)
			{
				Datum		wf = push.v[SYNC_WORKFLOW][i];

				memset(&out[0], 0, sizeof(out[0]));
				out[0].result = "rejected";
				if (SPI_execute_plan(rule_plan, &wf, NULL, true, 1) != SPI_OK_SELECT)
					elog(ERROR, "workflow look-up failed");
				MemoryContextSwitchTo(push.cxt);
				out[0].rule = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
				out[0].reason = push.fault[i] != NULL ? pstrdup(push.fault[i]) :
					psprintf("error: %s %s", unpack_sql_state(edata->sqlerrcode), edata->message);
				out[0].entity_id_null = out[0].conflict_null = out[0].event_null = out[0].version_null = true;
				out[0].trail_occurred_null = true;
			}
			nout = 1;
		}
		for (k = 0; k < nout; k++)
			processed(&push, i + k, &out[k]);
		i += nout;
	}

	flush_records(&push);
	log_trail(&push);
	args[0] = Int64GetDatum(push.tenant);
	args[1] = push.client;
	args[2] = Int64GetDatum(push.last);
	args[3] = Int64GetDatum(first_last);
	if (SPI_execute_plan(client_update_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "sync client update failed");
	SPI_finish();
	MemoryContextDelete(push.cxt);
	return (Datum) 0;
}
