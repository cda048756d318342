/*-------------------------------------------------------------------------
 *
 * ingest_events.c
 *	  fleet.ingest_events(): idempotent batch ingest of events into the
 *	  append-only event log.
 *
 * Events are tenant-scoped: the tenant is the caller's tenant context
 * (fleet.set_tenant), which apps and webhook receivers set.  Each element
 * carries a source, an idempotency key unique per (tenant, source), a kind,
 * a schema version (NULL: the kind's current one), an occurred-at time
 * (NULL: now) and a JSON payload.  One (idx, status, reason, event_id) row
 * comes back per element:
 *	 accepted	logged as a new event (event_id is the new id);
 *	 duplicate	the key was already used for the same event: nothing logged,
 *				event_id is the original;
 *	 conflict	the key was used for a different event: the original stays,
 *				what was sent is recorded in fleet.event_conflict;
 *	 rejected	bad_key (missing or too long source/key), unknown_kind,
 *				unsupported_version (newer than the kind's, or no upcaster
 *				path), upcast_failed: <error>, invalid_payload: <what>,
 *				future_occurred_at (beyond fleet.future_margin),
 *				bad_occurred_at: <why> (infinite, or before
 *				FLEET_EARLIEST_INSTANT: see instant.c).  A NULL element
 *				of source, idem_key or kind is bad_key or unknown_kind, of
 *				payload "invalid_payload: missing".
 *
 * "Same event" means the same 64-bit hash over kind, the version it was
 * sent at, occurred-at as sent (NULL, "now", hashes as such, so a retry that
 * again leaves it out is a duplicate) and the payload's canonical jsonb form
 * (see event_hash).  Payloads
 * of older versions are upcast, one version at a time, by the kind's
 * upcasters (each run as the owner of its function, in a subtransaction
 * so a failing upcaster rejects only its row) and validated against the
 * kind's required fields; the log stores the upcast payload with both
 * versions.
 *
 * Keys live in fleet.event_key, partitioned by day, so its primary key is
 * only unique per partition.  Uniqueness across partitions comes from the
 * key locks of ingest.c: lock, probe every partition, insert.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/bufmgr.h"
#include "utils/numeric.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_ingest_events);
PG_FUNCTION_INFO_V1(fleet_ingest_events_reserved);

#define MAX_SOURCE		64
#define MAX_KEY			255
#define MAX_KIND		100
#define MAX_VERSIONS	64

enum
{
	A_SOURCE, A_KEY, A_KIND, A_VERSION, A_OCCURRED, A_PAYLOAD, NARGS
};

typedef enum
{
	ST_PENDING, ST_ACCEPTED, ST_DUPLICATE, ST_CONFLICT, ST_REJECTED
} RowStatus;

static const char *const status_names[] = {
	"pending", "accepted", "duplicate", "conflict", "rejected"
};

/* a registered kind, as far as ingest needs it */
typedef struct KindEntry
{
	char		kind[MAX_KIND + 1];	/* hash key */
	bool		found;
	char		class_name[32];
	int			version;
	Jsonb	   *required;
	Oid			upcaster[MAX_VERSIONS + 1];	/* by from_version */
	Oid			upcaster_owner[MAX_VERSIONS + 1];
} KindEntry;

/* a kind's and its class's names as text datums, made once per batch */
typedef struct KindText
{
	KindEntry  *entry;			/* hash key */
	Datum		class_name;
	Datum		kind;
} KindText;

/* an idempotency key of the batch */
typedef struct KeyEntry
{
	uint64		hash;			/* hash key: of (source, key) */
	int			first;			/* first batch row with this key */
} KeyEntry;

typedef struct EventRow
{
	RowStatus	status;
	char	   *reason;
	KindEntry  *kind;
	Jsonb	   *payload;		/* upcast */
	int			version;		/* as sent */
	TimestampTz occurred;
	uint64		hash;			/* of the event */
	uint64		keyhash;		/* of (source, key) */
	int64		event_id;
	int			first;			/* first row with this key, or -1 */
	int			other;			/* first row of the next key with the same keyhash,
								 * or -1 (a chain from KeyEntry.first) */
	bool		stored;
	int64		stored_event;
	uint64		stored_hash;
} EventRow;

static SPIPlanPtr kind_plan = NULL;
static SPIPlanPtr upcaster_plan = NULL;
static SPIPlanPtr probe_plan = NULL;
/*
 * The new events and their keys, each as one array of the table's own row
 * type (see FleetRowsPrepare): the columns named here are filled, the others
 * are left NULL and take their defaults (logged_at, txid, first_seen).
 */
static FleetRowsPlan log_rows = {"event_log",
	"INSERT INTO fleet.event_log (tenant_id, event_id, class, kind, schema_version,"
	"                             original_version, source, idem_key, occurred_at, payload)"
	" SELECT u.tenant_id, u.event_id, u.class, u.kind, u.schema_version, u.original_version,"
	"        u.source, u.idem_key, u.occurred_at, u.payload"
	"   FROM pg_catalog.unnest($1) u"};
static FleetRowsPlan key_rows = {"event_key",
	"INSERT INTO fleet.event_key (tenant_id, source, idem_key, payload_hash, event_id)"
	" SELECT u.tenant_id, u.source, u.idem_key, u.payload_hash, u.event_id"
	"   FROM pg_catalog.unnest($1) u"};
static SPIPlanPtr conflict_plan = NULL;

static void load_kinds(HTAB *kinds, MemoryContext cxt);
static char *check_payload(Jsonb *required, Jsonb *payload);
static Jsonb *upcast_step(Oid fn, Oid fnowner, Jsonb *payload, char **error);
static Jsonb *upcast(KindEntry *k, int version, Jsonb *payload, char **error);
static uint64 event_hash(const char *kind, int version, TimestampTz occurred, Jsonb *payload);
static Datum ingest_events(FunctionCallInfo fcinfo, bool reserved);

/* the statements of the event ingest path, prepared once per backend */
static const FleetPlanSpec plans[] = {
	{&kind_plan, FLEET_PLAN_GENERIC, 1, {TEXTARRAYOID},
		"SELECT k.kind, k.class, k.schema_version, k.required FROM fleet.event_kind k"
		" WHERE k.kind OPERATOR(pg_catalog.=) ANY ($1)"},
	{&upcaster_plan, FLEET_PLAN_GENERIC, 1, {TEXTARRAYOID},
		"SELECT u.kind, u.from_version, u.upcaster::pg_catalog.oid, p.proowner"
		"  FROM fleet.event_upcaster u"
		"  LEFT JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) u.upcaster::pg_catalog.oid"
		" WHERE u.kind OPERATOR(pg_catalog.=) ANY ($1)"},

	/*
	 * One index look-up per key, whatever the statistics: the plan is
	 * generic and kept for the backend's life, usually made while the day's
	 * key partition is still empty.  As a plain join it was then planned as
	 * a materialized scan of all the tenant's keys (index condition on
	 * tenant_id only) filtered per key, which made every call O(tenant's
	 * keys of the day).  The LATERAL subquery (OFFSET 0 keeps it from being
	 * flattened) puts the three columns into the index condition as
	 * restriction clauses, so no plan can drop them.  (As one scan with the
	 * keys as an array, the plan made on an empty partition filtered the
	 * array instead, which read every key of the source.)  The caller
	 * passes the keys sorted as the index is, so consecutive look-ups read
	 * neighbouring pages.
	 *
	 * $5 bounds first_seen from above, which leaves out the partitions
	 * made ahead for days to come (pruned when the executor starts, not
	 * looked up once per key): a key is stored with its writer's
	 * transaction start, before its commit and so before this look-up,
	 * which waited for that commit (the key locks).  The bound is an hour
	 * after now, so a clock set back by up to that much (a failover to a
	 * server whose clock is behind) still finds every key.  $6 bounds it
	 * from below: the oldest partitions that are empty (see
	 * key_partitions_from) are pruned too.
	 */
	{&probe_plan, FLEET_PLAN_GENERIC, 6, {INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID},
		"SELECT k.n, e.payload_hash, e.event_id"
		"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS k(n, s, i)"
		"  CROSS JOIN LATERAL (SELECT x.payload_hash, x.event_id FROM fleet.event_key x"
		"                       WHERE x.tenant_id OPERATOR(pg_catalog.=) $4"
		"                         AND x.source OPERATOR(pg_catalog.=) k.s"
		"                         AND x.idem_key OPERATOR(pg_catalog.=) k.i"
		"                         AND x.first_seen OPERATOR(pg_catalog.<=) $5"
		"                         AND x.first_seen OPERATOR(pg_catalog.>=) $6 OFFSET 0) e"},
	{&conflict_plan, FLEET_PLAN_GENERIC, 10,
		{INT8OID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
		INT4ARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID, INT8ARRAYOID, INT8ARRAYOID},
		"INSERT INTO fleet.event_conflict (tenant_id, source, idem_key, event_id, kind, schema_version,"
		"                                  occurred_at, payload, payload_hash, original_hash)"
		" SELECT $1, u.* FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
		"   pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10)) AS u"},
};

/*
 * Fill the kind entries of the batch from the registry; results are
 * allocated in cxt so they outlive SPI.
 */
static void
load_kinds(HTAB *kinds, MemoryContext cxt)
{
	HASH_SEQ_STATUS seq;
	KindEntry  *k;
	Datum	   *names;
	int			n = 0;
	Datum		args[1];
	uint64		i;

	names = palloc(sizeof(Datum) * Max(hash_get_num_entries(kinds), 1));
	hash_seq_init(&seq, kinds);
	while ((k = hash_seq_search(&seq)) != NULL)
		names[n++] = CStringGetTextDatum(k->kind);
	if (n == 0)
		return;
	args[0] = PointerGetDatum(FleetMakeArray(names, NULL, n, TEXTOID));

	if (SPI_execute_plan(kind_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "event kind look-up failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old;

		k = hash_search(kinds, SPI_getvalue(tup, desc, 1), HASH_FIND, NULL);
		if (k == NULL)
			continue;
		k->found = true;
		strlcpy(k->class_name, SPI_getvalue(tup, desc, 2), sizeof(k->class_name));
		k->version = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		old = MemoryContextSwitchTo(cxt);
		k->required = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
		MemoryContextSwitchTo(old);
	}

	if (SPI_execute_plan(upcaster_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "event upcaster look-up failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			from;

		k = hash_search(kinds, SPI_getvalue(tup, desc, 1), HASH_FIND, NULL);
		if (k == NULL)
			continue;
		from = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		if (from < 1 || from > MAX_VERSIONS)
			continue;
		k->upcaster[from] = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		k->upcaster_owner[from] = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
		if (isnull)				/* function dropped: see upcast */
			k->upcaster_owner[from] = InvalidOid;
	}
}

/* spec->key as a JSON value; false when absent */
static bool
spec_key(JsonbContainer *spec, const char *key, JsonbValue *out)
{
	return getKeyJsonValueFromContainer(spec, key, strlen(key), out) != NULL;
}

/* the numeric value of a spec's "min" or "max" (a number), or NULL */
static Numeric
spec_number(JsonbContainer *spec, const char *key)
{
	JsonbValue	v;

	if (!spec_key(spec, key, &v) || v.type != jbvNumeric)
		return NULL;
	return v.val.numeric;
}

/* whether a JSON value has a field spec's type */
static bool
type_matches(const char *type, JsonbValue *got)
{
	if (strcmp(type, "any") == 0)
		return true;
	if (strcmp(type, "string") == 0)
		return got->type == jbvString;
	if (strcmp(type, "number") == 0)
		return got->type == jbvNumeric;
	if (strcmp(type, "integer") == 0)
		return got->type == jbvNumeric &&
			DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(got->val.numeric),
											 DirectFunctionCall1(numeric_floor,
																 NumericGetDatum(got->val.numeric))));
	if (strcmp(type, "boolean") == 0)
		return got->type == jbvBool;
	if (strcmp(type, "object") == 0)
		return got->type == jbvBinary && JsonContainerIsObject(got->val.binary.data);
	if (strcmp(type, "array") == 0)
		return got->type == jbvBinary && JsonContainerIsArray(got->val.binary.data);
	return false;
}

/*
 * What is wrong with one field's value: its type, then the rest of its spec
 * (NULL: a type name only; see check_payload).  NULL when nothing is.
 */
static char *
check_field(const char *field, const char *type, JsonbContainer *spec, JsonbValue *got)
{
	JsonbValue	v;
	Numeric		bound;

	if (!type_matches(type, got))
		return psprintf("invalid_payload: field \"%s\" must be %s %s", field,
						strcmp(type, "array") == 0 || strcmp(type, "object") == 0 ||
						strcmp(type, "integer") == 0 ? "an" : "a",
						type);

	if (spec == NULL)
		return NULL;
	if (got->type == jbvString)
	{
		if (spec_key(spec, "enum", &v) && v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
		{
			JsonbIterator *it = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	e;
			JsonbIteratorToken tok;
			StringInfoData allowed;
			bool		found = false;

			initStringInfo(&allowed);
			while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			{
				if (tok != WJB_ELEM || e.type != jbvString)
					continue;
				if (e.val.string.len == got->val.string.len &&
					memcmp(e.val.string.val, got->val.string.val, e.val.string.len) == 0)
					found = true;
				appendStringInfo(&allowed, "%s%.*s", allowed.len > 0 ? ", " : "",
								 e.val.string.len, e.val.string.val);
			}
			if (!found)
				return psprintf("invalid_payload: field \"%s\" must be one of %s", field, allowed.data);
		}
		if (spec_key(spec, "max_length", &v) && v.type == jbvNumeric &&
			pg_mbstrlen_with_len(got->val.string.val, got->val.string.len) >
			DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v.val.numeric))))
			return psprintf("invalid_payload: field \"%s\" must be at most %s characters", field,
							DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric))));
		if (spec_key(spec, "format", &v) && v.type == jbvString)
		{
			char	   *format = pnstrdup(v.val.string.val, v.val.string.len);
			char	   *text = pnstrdup(got->val.string.val, got->val.string.len);

			if (strcmp(format, "date-time") == 0)
			{
				TimestampTz t;

				if (!FleetParseInstant(text, &t))
					return psprintf("invalid_payload: field \"%s\" must be an RFC 3339 date-time", field);
			}
			else if (strcmp(format, "currency") == 0)
			{
				if (strlen(text) != 3 || text[0] < 'A' || text[0] > 'Z' || text[1] < 'A' ||
					text[1] > 'Z' || text[2] < 'A' || text[2] > 'Z')
					return psprintf("invalid_payload: field \"%s\" must be a currency code (three capital letters)", field);
			}
		}
	}
	if (got->type == jbvNumeric && !numeric_is_nan(got->val.numeric))
	{
		if ((bound = spec_number(spec, "min")) != NULL &&
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(got->val.numeric),
											  NumericGetDatum(bound))) < 0)
			return psprintf("invalid_payload: field \"%s\" must be at least %s", field,
							DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(bound))));
		if ((bound = spec_number(spec, "max")) != NULL &&
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(got->val.numeric),
											  NumericGetDatum(bound))) > 0)
			return psprintf("invalid_payload: field \"%s\" must be at most %s", field,
							DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(bound))));
	}
	return NULL;
}

/*
 * Check a payload against a kind's schema (fleet.event_kind.required);
 * NULL if it passes, else the reason.  Each field of the schema maps to
 * either a type name (string, number, integer, boolean, object, array,
 * any: the field is required and of that type) or an object {"type",
 * "optional", "enum" (allowed strings), "min", "max" (numbers), "max_length"
 * (characters), "format" ("date-time": RFC 3339; "currency": three capital
 * letters)}, checked when the field is present and required unless
 * "optional" is true.  fleet.register_event_kind() accepts only such specs.
 */
static char *
check_payload(Jsonb *required, Jsonb *payload)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *field = NULL;

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		return pstrdup("invalid_payload: not a JSON object");
	if (required == NULL)
		return NULL;

	it = JsonbIteratorInit(&required->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			field = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && field != NULL)
		{
			JsonbValue	got;
			JsonbValue	opt;
			JsonbContainer *spec;
			char	   *type;
			char	   *fault;

			if (v.type == jbvString)
				spec = NULL;	/* a type name: required, of that type */
			else if (v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
				spec = v.val.binary.data;
			else
				continue;
			if (getKeyJsonValueFromContainer(&payload->root, field, strlen(field), &got) == NULL)
			{
				if (spec != NULL && spec_key(spec, "optional", &opt) && opt.type == jbvBool && opt.val.boolean)
					continue;
				return psprintf("invalid_payload: missing field \"%s\"", field);
			}
			if (spec == NULL)
				type = pnstrdup(v.val.string.val, v.val.string.len);
			else if (spec_key(spec, "type", &opt) && opt.type == jbvString)
				type = pnstrdup(opt.val.string.val, opt.val.string.len);
			else
				type = "any";
			if ((fault = check_field(field, type, spec, &got)) != NULL)
				return fault;
		}
	}
	return NULL;
}

/* one upcaster call, for FleetTrySubtransaction */
typedef struct UpcastCall
{
	Oid			fn;
	Oid			fnowner;
	Jsonb	   *payload;
	Datum		result;
} UpcastCall;

static void
upcast_invoke(void *arg)
{
	UpcastCall *c = arg;

	c->result = OidFunctionCall1(c->fn, JsonbPGetDatum(c->payload));
}

/* the upcaster runs as its owner, search_path pinned (the caller's planted
 * types must not reach a function written for another role) */
static void
upcast_call(void *arg)
{
	UpcastCall *c = arg;

	FleetAsRole(c->fnowner, 0, upcast_invoke, c);
}

/*
 * Run one upcaster as its owner inside a subtransaction.  Returns NULL
 * with *error set if it fails.
 */
static Jsonb *
upcast_step(Oid fn, Oid fnowner, Jsonb *payload, char **error)
{
	UpcastCall	c = {fn, fnowner, payload, (Datum) 0};
	ErrorData  *edata = FleetTrySubtransaction(upcast_call, &c);

	if (edata != NULL)
	{
		*error = psprintf("upcast_failed: %s", edata->message);
		return NULL;
	}
	return DatumGetJsonbP(c.result);
}

/*
 * Upcast a payload from version to the kind's current version, one step
 * at a time.  Returns NULL with *error set when a step is missing or fails.
 */
static Jsonb *
upcast(KindEntry *k, int version, Jsonb *payload, char **error)
{
	int			v;

	for (v = version; v < k->version; v++)
	{
		Oid			fn = v <= MAX_VERSIONS ? k->upcaster[v] : InvalidOid;

		if (!OidIsValid(fn))
		{
			*error = pstrdup("unsupported_version");
			return NULL;
		}
		if (!OidIsValid(k->upcaster_owner[v]))
		{
			*error = pstrdup("upcast_failed: the upcaster function does not exist");
			return NULL;
		}
		payload = upcast_step(fn, k->upcaster_owner[v], payload, error);
		if (payload == NULL)
			return NULL;
	}
	return payload;
}

/*
 * The 64-bit identity hash of an event as sent.
 *
 * The payload is hashed in its binary jsonb form, which is canonical: jsonb
 * input sorts an object's keys and keeps the last of duplicates, stores
 * strings decoded, numbers as normalized numerics (leading and trailing zero
 * digits stripped, the display scale kept, so 1.0 and 1.00 stay apart as in
 * their text) and pads with zero bytes.  Two payloads have the same binary
 * form exactly when they have the same canonical text (jsonb's output), the
 * identity this used to hash at the cost of printing every payload (6% of a
 * batch).
 */
static uint64
event_hash(const char *kind, int version, TimestampTz occurred, Jsonb *payload)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) kind, strlen(kind), 0x666c656574ULL);
	h = hash_combine64(h, (uint64) version);
	h = hash_combine64(h, (uint64) occurred);
	h = hash_combine64(h, hash_bytes_extended((const unsigned char *) VARDATA(payload),
											  VARSIZE(payload) - VARHDRSZ, 0));
	return h;
}

/*
 * The index in a row type's descriptor of a column, by name; an error if
 * the type (a table's) has no such column.
 */
static int
row_attr(TupleDesc desc, const char *relname, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	elog(ERROR, "%s has no column \"%s\"", relname, name);
	return -1;					/* keep the compiler quiet */
}

/* whether two text datums hold the same string */
static bool
same_text(Datum a, Datum b)
{
	text	   *x = (text *) PG_DETOAST_DATUM_PACKED(a);
	text	   *y = (text *) PG_DETOAST_DATUM_PACKED(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/*
 * The 64-bit hash of an idempotency key (source, key), by which the batch's
 * keys are told apart and locked.
 */
static uint64
key_hash(const char *source, int slen, const char *key, int klen)
{
	return hash_combine64(hash_bytes_extended((const unsigned char *) source, slen, 1),
						  hash_bytes_extended((const unsigned char *) key, klen, 2));
}

/* bytewise order of two text datums (collation "C") */
static int
cmp_text(Datum a, Datum b)
{
	text	   *x = (text *) PG_DETOAST_DATUM_PACKED(a);
	text	   *y = (text *) PG_DETOAST_DATUM_PACKED(b);
	int			lx = VARSIZE_ANY_EXHDR(x);
	int			ly = VARSIZE_ANY_EXHDR(y);
	int			c = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(lx, ly));

	return c != 0 ? c : (lx > ly) - (lx < ly);
}

/* qsort_arg comparator: batch rows by (source, idem_key), as fleet.event_key's index orders them */
static int
cmp_key(const void *a, const void *b, void *arg)
{
	Datum	  **av = (Datum **) arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;
	int			c = cmp_text(av[A_SOURCE][x], av[A_SOURCE][y]);

	return c != 0 ? c : cmp_text(av[A_KEY][x], av[A_KEY][y]);
}

/*
 * The lower bound of the oldest partition of fleet.event_key that holds any
 * row, as the probe's lower bound of first_seen (DT_NOBEGIN: no bound;
 * DT_NOEND: every partition up to "upto" is empty, there is nothing to
 * look up).  A partition without a single block holds no committed key,
 * and none of the batch's keys can be written into it meanwhile: this runs
 * after the batch's key locks are taken.  Days with keys before it are not
 * skipped, only the oldest empty ones (on a new install, or after a gap).
 */
static TimestampTz
key_partitions_from(TimestampTz upto)
{
	Relation	parent = table_openrv(makeRangeVar("fleet", "event_key", -1), AccessShareLock);
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	PartitionBoundInfo bi = pd->boundinfo;
	TimestampTz from = DT_NOEND;
	int			i;

	if (bi == NULL || bi->strategy != PARTITION_STRATEGY_RANGE || bi->kind == NULL)
		from = DT_NOBEGIN;
	/* range bounds in order: datums[i] is the lower bound of partition indexes[i + 1] */
	for (i = 0; bi != NULL && from == DT_NOEND && i < bi->ndatums; i++)
	{
		int			part = bi->indexes[i + 1];
		Relation	rel;
		bool		empty;

		if (part < 0)
			continue;
		if (bi->kind[i][0] != PARTITION_RANGE_DATUM_VALUE)
		{
			from = DT_NOBEGIN;
			break;
		}
		if (DatumGetTimestampTz(bi->datums[i][0]) > upto)
			break;
		rel = table_open(pd->oids[part], AccessShareLock);
		empty = rel->rd_rel->relkind == RELKIND_RELATION && RelationGetNumberOfBlocks(rel) == 0;
		table_close(rel, NoLock);
		if (!empty)
			from = DatumGetTimestampTz(bi->datums[i][0]);
	}
	/* a default partition, or one with no lower bound, can hold anything */
	if (pd->nparts > 0 && bi != NULL && bi->default_index >= 0)
		from = DT_NOBEGIN;
	table_close(parent, NoLock);
	return from;
}

/*
 * fleet.event_id_seq, where every event id comes from: here, in the
 * set-based run of a push (sync_push.c) and for a push's rejections
 * (sync_batch.c), which take a trail event's id before logging it.
 */
Oid
FleetEventIdSequence(void)
{
	return RangeVarGetRelid(makeRangeVar("fleet", "event_id_seq", -1), NoLock, false);
}

/*
 * fleet.ingest_events(source text[], idem_key text[], kind text[],
 *		schema_version int[], occurred_at timestamptz[], payload jsonb[])
 *	RETURNS TABLE (idx int, status text, reason text, event_id bigint)
 */
Datum
fleet_ingest_events(PG_FUNCTION_ARGS)
{
	return ingest_events(fcinfo, false);
}

/*
 * fleet.ingest_events_reserved(source text[], idem_key text[], kind text[],
 *		schema_version int[], occurred_at timestamptz[], payload jsonb[],
 *		event_id bigint[])
 *	RETURNS TABLE (idx int, status text, reason text, event_id bigint)
 *
 * The same, except that an accepted event takes the id given for it, taken
 * by the caller from fleet.event_id_seq beforehand.  Internal (owner only):
 * fleet.sync_push() decides a page of mutations, writing each one's effect
 * with the id of the trail event it will log, and then logs the page's
 * trail in one call instead of one call per mutation.  A duplicate or
 * conflicting key keeps its original event, as in fleet.ingest_events();
 * the caller must check that every row was accepted.
 */
Datum
fleet_ingest_events_reserved(PG_FUNCTION_ARGS)
{
	return ingest_events(fcinfo, true);
}

static Datum
ingest_events(FunctionCallInfo fcinfo, bool reserved)
{
	static const char *const argnames[NARGS] = {
		"source", "idem_key", "kind", "schema_version", "occurred_at", "payload"
	};
	static const Oid elemtypes[NARGS] = {
		TEXTOID, TEXTOID, TEXTOID, INT4OID, TIMESTAMPTZOID, JSONBOID
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callcxt;
	Datum	   *av[NARGS];
	bool	   *an[NARGS];
	int			n = -1;
	int			i;
	int			a;
	int64		tenant;
	EventRow   *rows;
	HTAB	   *kinds;
	HTAB	   *keys;
	HASHCTL		ctl;
	TimestampTz now;
	TimestampTz limit;
	const char *fault;
	uint64	   *locks;
	int			nlocks = 0;
	int			nnew = 0;
	int			nconf = 0;
	FleetOwnerSwitch owner_sw;
	Datum	   *ids = NULL;
	bool	   *idnulls = NULL;
	TimestampTz upto;
	TimestampTz from = DT_NOBEGIN;
	KindEntry  *last_kind = NULL;
	const char *last_text = NULL;
	int			last_len = 0;

	FleetIngestCheckIsolation("fleet.ingest_events()");
	tenant = FleetCurrentTenant();
	InitMaterializedSRF(fcinfo, 0);
	callcxt = CurrentMemoryContext;

	for (a = 0; a < NARGS; a++)
		FleetBatchArg(fcinfo, a, argnames[a], elemtypes[a],
					  a == A_SOURCE || a == A_KEY || a == A_KIND || a == A_PAYLOAD,
					  &n, &av[a], &an[a]);
	if (reserved)
	{
		FleetBatchArg(fcinfo, NARGS, "event_id", INT8OID, true, &n, &ids, &idnulls);
		for (i = 0; i < n; i++)
			if (idnulls[i] || DatumGetInt64(ids[i]) < 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("reserved event id %d of the batch is not a positive number", i + 1)));
	}
	if (n == 0)
		return (Datum) 0;

	rows = palloc0(sizeof(EventRow) * n);
	now = GetCurrentTransactionStartTimestamp();
	limit = FleetLatestInstant();

	/* 1. the kinds of the batch, from the registry */
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = MAX_KIND + 1;
	ctl.entrysize = sizeof(KindEntry);
	ctl.hcxt = callcxt;
	kinds = hash_create("fleet ingest kinds", 32, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (i = 0; i < n; i++)
	{
		text	   *kt;
		int			len;
		char		kind[MAX_KIND + 1];
		bool		found;

		if (an[A_KIND][i])
			continue;
		kt = DatumGetTextPP(av[A_KIND][i]);
		len = VARSIZE_ANY_EXHDR(kt);
		if (len == 0 || len > MAX_KIND)
			continue;
		/* a run of one kind: looked up once */
		if (last_kind != NULL && len == last_len && memcmp(VARDATA_ANY(kt), last_text, len) == 0)
		{
			rows[i].kind = last_kind;
			continue;
		}
		memcpy(kind, VARDATA_ANY(kt), len);
		kind[len] = '\0';
		rows[i].kind = hash_search(kinds, kind, HASH_ENTER, &found);
		last_kind = rows[i].kind;
		last_text = VARDATA_ANY(kt);
		last_len = len;
		if (!found)
		{
			KindEntry  *k = rows[i].kind;

			k->found = false;
			k->required = NULL;
			memset(k->upcaster, 0, sizeof(k->upcaster));
			memset(k->upcaster_owner, 0, sizeof(k->upcaster_owner));
		}
	}
	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));
	load_kinds(kinds, callcxt);
	SPI_finish();
	FleetAsCaller(&owner_sw);

	/* 2. validate, upcast, hash */
	for (i = 0; i < n; i++)
	{
		EventRow   *r = &rows[i];
		KindEntry  *k = r->kind;
		text	   *source = an[A_SOURCE][i] ? NULL : DatumGetTextPP(av[A_SOURCE][i]);
		text	   *key = an[A_KEY][i] ? NULL : DatumGetTextPP(av[A_KEY][i]);
		int			slen = source ? VARSIZE_ANY_EXHDR(source) : 0;
		int			klen = key ? VARSIZE_ANY_EXHDR(key) : 0;
		char	   *error = NULL;

		r->status = ST_REJECTED;
		r->first = -1;
		r->other = -1;
		if (slen == 0 || klen == 0 || slen > MAX_SOURCE || klen > MAX_KEY)
		{
			r->reason = "bad_key";
			continue;
		}
		if (k == NULL || !k->found)
		{
			r->reason = "unknown_kind";
			continue;
		}
		r->version = (av[A_VERSION] == NULL || an[A_VERSION][i]) ? k->version : DatumGetInt32(av[A_VERSION][i]);
		if (r->version < 1 || r->version > k->version)
		{
			r->reason = "unsupported_version";
			continue;
		}
		r->occurred = (av[A_OCCURRED] == NULL || an[A_OCCURRED][i]) ? now : DatumGetTimestampTz(av[A_OCCURRED][i]);
		if (r->occurred > limit && !TIMESTAMP_NOT_FINITE(r->occurred))
		{
			r->reason = "future_occurred_at";
			continue;
		}
		if ((fault = FleetInstantFault(r->occurred, limit)) != NULL)
		{
			r->reason = psprintf("bad_occurred_at: %s", fault);
			continue;
		}
		if (an[A_PAYLOAD][i])
		{
			r->reason = "invalid_payload: missing";
			continue;
		}
		r->payload = DatumGetJsonbP(av[A_PAYLOAD][i]);
		/* hash what was sent: a retry that again leaves occurred_at to the server is the same event */
		r->hash = event_hash(k->kind, r->version,
							 (av[A_OCCURRED] == NULL || an[A_OCCURRED][i]) ? DT_NOBEGIN : r->occurred,
							 r->payload);
		if (r->version < k->version)
		{
			if (!JB_ROOT_IS_OBJECT(r->payload) || JB_ROOT_IS_SCALAR(r->payload))
			{
				r->reason = "invalid_payload: not a JSON object";
				continue;
			}
			r->payload = upcast(k, r->version, r->payload, &error);
			if (r->payload == NULL)
			{
				r->reason = error;
				continue;
			}
		}
		if ((r->reason = check_payload(k->required, r->payload)) != NULL)
			continue;
		r->status = ST_PENDING;
		r->keyhash = key_hash(VARDATA_ANY(source), slen, VARDATA_ANY(key), klen);
	}

	/* 3. distinct keys, to lock */
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hcxt = callcxt;
	keys = hash_create("fleet ingest keys", Max(n, 16), &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	locks = palloc(sizeof(uint64) * n);
	for (i = 0; i < n; i++)
	{
		EventRow   *r = &rows[i];
		KeyEntry   *e;
		bool		found;

		if (r->status != ST_PENDING)
			continue;
		e = hash_search(keys, &r->keyhash, HASH_ENTER, &found);
		if (!found)
		{
			e->first = i;
			locks[nlocks++] = hash_combine64(r->keyhash, (uint64) tenant);
		}
		else
		{
			int			j;

			/* same 64-bit hash of (source, key): the same key as one seen, or another */
			for (j = e->first; j >= 0 && r->first < 0; j = rows[j].other)
				if (same_text(av[A_SOURCE][i], av[A_SOURCE][j]) && same_text(av[A_KEY][i], av[A_KEY][j]))
					r->first = j;
			if (r->first < 0)
			{
				/* another key with this hash: chained after the hash's first key */
				r->other = rows[e->first].other;
				rows[e->first].other = i;
			}
		}
	}

	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetLockKeys(FLEET_LOCKSPACE_EVENTS, locks, nlocks);

	/* 4. probe the key store (every partition that can hold a key) for the batch's keys */
	upto = GetCurrentTimestamp() + USECS_PER_HOUR;
	if (nlocks > 0 && (from = key_partitions_from(upto)) != DT_NOEND)
	{
		int		   *order = palloc(sizeof(int) * n);
		Datum	   *pn = palloc(sizeof(Datum) * n);
		Datum	   *ps = palloc(sizeof(Datum) * n);
		Datum	   *pk = palloc(sizeof(Datum) * n);
		Datum		args[6];
		int			m = 0;
		int			save_nestlevel;
		uint64		j;

		for (i = 0; i < n; i++)
			if (rows[i].status == ST_PENDING && rows[i].first < 0)
				order[m++] = i;
		/* in the index's order (collation "C"): neighbouring look-ups, neighbouring pages */
		qsort_arg(order, m, sizeof(int), cmp_key, av);
		for (i = 0; i < m; i++)
		{
			pn[i] = Int32GetDatum(order[i]);
			ps[i] = av[A_SOURCE][order[i]];
			pk[i] = av[A_KEY][order[i]];
		}
		args[0] = PointerGetDatum(FleetMakeArray(pn, NULL, m, INT4OID));
		args[1] = PointerGetDatum(FleetMakeArray(ps, NULL, m, TEXTOID));
		args[2] = PointerGetDatum(FleetMakeArray(pk, NULL, m, TEXTOID));
		args[3] = Int64GetDatum(tenant);
		args[4] = TimestampTzGetDatum(upto);
		args[5] = TimestampTzGetDatum(from);
		save_nestlevel = NewGUCNestLevel();
		(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		/* not read-only: a fresh snapshot, taken after the key locks (see ingest.c) */
		if (SPI_execute_plan(probe_plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "idempotency key look-up failed");
		AtEOXact_GUC(true, save_nestlevel);
		for (j = 0; j < SPI_processed; j++)
		{
			HeapTuple	tup = SPI_tuptable->vals[j];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int			row = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));

			rows[row].stored = true;
			rows[row].stored_hash = (uint64) DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			rows[row].stored_event = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		}
	}

	/* 5. classify; new events get their ids */
	{
		Oid			seq = reserved ? InvalidOid : FleetEventIdSequence();

		for (i = 0; i < n; i++)
		{
			EventRow   *r = &rows[i];
			EventRow   *ref;

			if (r->status != ST_PENDING)
				continue;
			ref = r->first >= 0 ? &rows[r->first] : r;
			if (ref->stored)
			{
				r->status = ref->stored_hash == r->hash ? ST_DUPLICATE : ST_CONFLICT;
				r->event_id = ref->stored_event;
			}
			else if (ref != r)
			{
				r->status = ref->hash == r->hash ? ST_DUPLICATE : ST_CONFLICT;
				r->event_id = ref->event_id;
			}
			else
			{
				r->status = ST_ACCEPTED;
				r->event_id = reserved ? DatumGetInt64(ids[i]) : nextval_internal(seq, false);
				nnew++;
			}
			if (r->status == ST_CONFLICT)
				nconf++;
		}
	}

	/* 6. log the new events and their keys; record conflicts */
	if (nnew > 0)
	{
		static const char *const logcols[] = {"tenant_id", "event_id", "class", "kind", "schema_version",
		"original_version", "source", "idem_key", "occurred_at", "payload"};
		static const char *const keycols[] = {"tenant_id", "source", "idem_key", "payload_hash", "event_id"};
		TupleDesc	logdesc = FleetRowsPrepare(&log_rows);
		TupleDesc	keydesc = FleetRowsPrepare(&key_rows);
		int			la[lengthof(logcols)];
		int			ka[lengthof(keycols)];
		Datum	   *lv = palloc(sizeof(Datum) * logdesc->natts);
		bool	   *ln = palloc(sizeof(bool) * logdesc->natts);
		Datum	   *kv = palloc(sizeof(Datum) * keydesc->natts);
		bool	   *kn = palloc(sizeof(bool) * keydesc->natts);
		Datum	   *logs = palloc(sizeof(Datum) * nnew);
		Datum	   *keyrows = palloc(sizeof(Datum) * nnew);
		HTAB	   *names;
		int			m = 0;
		int			c;

		for (c = 0; c < lengthof(logcols); c++)
			la[c] = row_attr(logdesc, "fleet.event_log", logcols[c]);
		for (c = 0; c < lengthof(keycols); c++)
			ka[c] = row_attr(keydesc, "fleet.event_key", keycols[c]);
		memset(ln, true, sizeof(bool) * logdesc->natts);
		memset(kn, true, sizeof(bool) * keydesc->natts);
		for (c = 0; c < lengthof(logcols); c++)
			ln[la[c]] = false;
		for (c = 0; c < lengthof(keycols); c++)
			kn[ka[c]] = false;

		/* each kind's and class's name as text once per batch, not once per row */
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(KindEntry *);
		ctl.entrysize = sizeof(KindText);
		ctl.hcxt = CurrentMemoryContext;
		names = hash_create("fleet ingest kind names", 32, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		for (i = 0; i < n; i++)
		{
			EventRow   *r = &rows[i];
			KindText   *kt;
			bool		found;

			if (r->status != ST_ACCEPTED)
				continue;
			kt = hash_search(names, &r->kind, HASH_ENTER, &found);
			if (!found)
			{
				kt->class_name = CStringGetTextDatum(r->kind->class_name);
				kt->kind = CStringGetTextDatum(r->kind->kind);
			}
			lv[la[0]] = Int64GetDatum(tenant);
			lv[la[1]] = Int64GetDatum(r->event_id);
			lv[la[2]] = kt->class_name;
			lv[la[3]] = kt->kind;
			lv[la[4]] = Int32GetDatum(r->kind->version);
			lv[la[5]] = Int32GetDatum(r->version);
			lv[la[6]] = av[A_SOURCE][i];
			lv[la[7]] = av[A_KEY][i];
			lv[la[8]] = TimestampTzGetDatum(r->occurred);
			lv[la[9]] = JsonbPGetDatum(r->payload);
			logs[m] = HeapTupleGetDatum(heap_form_tuple(logdesc, lv, ln));
			kv[ka[0]] = Int64GetDatum(tenant);
			kv[ka[1]] = av[A_SOURCE][i];
			kv[ka[2]] = av[A_KEY][i];
			kv[ka[3]] = Int64GetDatum((int64) r->hash);
			kv[ka[4]] = Int64GetDatum(r->event_id);
			keyrows[m] = HeapTupleGetDatum(heap_form_tuple(keydesc, kv, kn));
			m++;
		}
		FleetRowsExecute(&log_rows, logs, nnew);
		FleetRowsExecute(&key_rows, keyrows, nnew);
	}
	if (nconf > 0)
	{
		FleetColumns cs;
		Datum		args[10];
		int			m = 0;
		static const Oid types[9] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID,
		TIMESTAMPTZOID, JSONBOID, INT8OID, INT8OID};

		FleetColumnsInit(&cs, 9, nconf);
		for (i = 0; i < n; i++)
		{
			EventRow   *r = &rows[i];
			EventRow   *ref;

			if (r->status != ST_CONFLICT)
				continue;
			ref = r->first >= 0 ? &rows[r->first] : r;
			cs.v[0][m] = av[A_SOURCE][i];
			cs.v[1][m] = av[A_KEY][i];
			cs.v[2][m] = Int64GetDatum(r->event_id);
			cs.v[3][m] = CStringGetTextDatum(r->kind->kind);
			cs.v[4][m] = Int32GetDatum(r->version);
			cs.v[5][m] = TimestampTzGetDatum(r->occurred);
			cs.v[6][m] = av[A_PAYLOAD][i];
			cs.v[7][m] = Int64GetDatum((int64) r->hash);
			cs.v[8][m] = Int64GetDatum((int64) (ref->stored ? ref->stored_hash : ref->hash));
			m++;
		}
		args[0] = Int64GetDatum(tenant);
		FleetColumnsArgs(&cs, types, nconf, args + 1);
		if (SPI_execute_plan(conflict_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "event conflict insert failed");
	}
	SPI_finish();
	FleetAsCaller(&owner_sw);

	/* 7. one result row per element (each status's text made once) */
	{
		Datum		status_text[lengthof(status_names)];

		for (i = 0; i < lengthof(status_names); i++)
			status_text[i] = CStringGetTextDatum(status_names[i]);
		for (i = 0; i < n; i++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			values[0] = Int32GetDatum(i + 1);
			values[1] = status_text[rows[i].status];
			if (rows[i].reason)
				values[2] = CStringGetTextDatum(rows[i].reason);
			else
				nulls[2] = true;
			if (rows[i].status == ST_REJECTED)
				nulls[3] = true;
			else
				values[3] = Int64GetDatum(rows[i].event_id);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
