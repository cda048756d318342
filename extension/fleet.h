/*-------------------------------------------------------------------------
 *
 * fleet.h
 *	  Declarations shared by the C files of the fleet extension.
 *
 * Each subsystem owns one .c file and exposes an Init function that
 * _PG_init (fleet.c) calls; the list of those calls is the extension's table
 * of contents.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FLEET_H
#define FLEET_H

#include "postgres.h"

/* tenant.c: tenant context (fleet.tenant) */
extern void FleetTenantInit(void);
extern bool FleetTenantIsSet(void);
extern int64 FleetCurrentTenant(void);

/* guard.c: utility hook around DDL on fleet itself */
extern void FleetGuardInit(void);

/* tier.c: tier maintenance helpers (fleet.tier_nice, fleet.tier_duty) */
extern void FleetTierInit(void);
extern double fleet_tier_duty;

/* tier_guard.c: legal hold refusals of DDL (called from guard.c's hook) */
struct Node;
extern void FleetTierGuard(struct Node *parsetree);
extern void FleetTierGuardInit(void);

/* owner.c: running internal SQL as the extension owner */
#define FLEET_PINNED_SEARCH_PATH	"pg_catalog, pg_temp"
typedef struct FleetOwnerSwitch
{
	Oid			saved_uid;
	int			saved_ctx;
	int			guc_level;
} FleetOwnerSwitch;
extern Oid	FleetExtensionOwner(void);
extern void FleetAsOwner(FleetOwnerSwitch *sw);
extern void FleetAsCaller(FleetOwnerSwitch *sw);
extern void FleetAsRole(Oid role, int extra_ctx, void (*fn) (void *arg), void *arg);
extern int	FleetPinSearchPath(void);
extern void FleetUnpinSearchPath(int level);

/* ingest.c: what the ingest entry points share */
#include "fmgr.h"
#include "utils/array.h"
#include "executor/spi.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define FLEET_MAX_KEY_LOCKS			512	/* more keys: the batch runs alone */
#define FLEET_LOCK_MAGIC			0x666C6565	/* "flee" */
#define FLEET_LOCKSPACE_POSITIONS	3
#define FLEET_LOCKSPACE_EVENTS		4
#define FLEET_LOCKSPACE_GATE		2	/* + lockspace: the gate lock (5, 6) */

extern int	fleet_future_margin_ms;
extern int	fleet_ingest_max_batch;
extern void FleetIngestInit(void);
extern Oid	FleetEventIdSequence(void);
extern void FleetIngestCheckIsolation(const char *funcname);
extern void FleetBatchArg(FunctionCallInfo fcinfo, int argno, const char *argname,
						  Oid elemtype, bool required, int *n,
						  Datum **values, bool **nulls);
extern void FleetLockKeys(uint16 lockspace, uint64 *keys, int n);
extern ArrayType *FleetMakeArray(Datum *values, bool *nulls, int n, Oid elemtype);
/*
 * The array arguments of a set-based statement, built row by row: ncols
 * columns of room for nrows values each, with NULL flags (all false to
 * start); FleetColumnsArgs turns the first nrows of each into an array.
 */
#define FLEET_COLUMNS_MAX	16
typedef struct FleetColumns
{
	int			ncols;
	Datum	   *v[FLEET_COLUMNS_MAX];
	bool	   *n[FLEET_COLUMNS_MAX];
} FleetColumns;
extern void FleetColumnsInit(FleetColumns *cs, int ncols, int nrows);
extern void FleetColumnsArgs(const FleetColumns *cs, const Oid *elemtypes, int nrows, Datum *args);
/* plan modes of FleetKeepPlan (see ingest.c) */
#define FLEET_PLAN_AUTO		0
#define FLEET_PLAN_GENERIC	1
#define FLEET_PLAN_CUSTOM	2
extern SPIPlanPtr FleetKeepPlan(const char *sql, int nargs, Oid *argtypes, int mode);
/* a statement a file keeps, prepared on first use by FleetKeepPlans */
#define FLEET_PLAN_MAXARGS	16
typedef struct FleetPlanSpec
{
	SPIPlanPtr *plan;
	int			mode;
	int			nargs;
	Oid			argtypes[FLEET_PLAN_MAXARGS];
	const char *sql;
} FleetPlanSpec;
extern void FleetKeepPlans(const FleetPlanSpec *specs, int n);
/*
 * A batch insert whose $1 is one array of a composite type of schema fleet
 * (one unnest() to scan, not one per column); prepared on first use and
 * again when the type is not the one it was prepared for (see ingest.c).
 */
typedef struct FleetRowsPlan
{
	const char *typname;		/* the row type, in schema fleet */
	const char *sql;
	SPIPlanPtr	plan;
	Oid			rowtype;
} FleetRowsPlan;
extern TupleDesc FleetRowsPrepare(FleetRowsPlan *rp);
extern void FleetRowsExecute(FleetRowsPlan *rp, Datum *rows, int n);

/* instant.c: times from outside (RFC 3339, the accepted window) */
#define FLEET_EARLIEST_INSTANT		"2000-01-01T00:00:00Z"
extern bool FleetParseInstant(const char *s, TimestampTz *out);
extern TimestampTz FleetEarliestInstant(void);
extern TimestampTz FleetLatestInstant(void);
extern const char *FleetInstantFault(TimestampTz t, TimestampTz limit);

/* tenant.c: SQL-callable, used to enter a tenant context for handlers */
extern Datum fleet_set_tenant(PG_FUNCTION_ARGS);

/* pipeline.c / worker.c: the event pipeline and its background workers */
typedef struct FleetApplier
{
	MemoryContext cxt;
	struct HTAB *handlers;		/* kind -> handler */
	int64		tenant_set;		/* tenant context set by the applier, -1: none */
} FleetApplier;

/* one event to apply, and the outcome */
typedef struct FleetEvent
{
	int64		tenant;
	int64		event_id;
	char	   *kind;
	Datum		payload;
	Datum		occurred;
	Datum		logged_at;
	bool		ok;				/* set by FleetApplyEvents */
	char	   *errmsg;
	char	   *sqlstate;
} FleetEvent;

extern void FleetApplierInit(FleetApplier *a, const char *class_name);
extern void FleetApplyEvents(FleetApplier *a, FleetEvent *ev, int n);
extern void FleetPipelineInit(void);
extern int	FleetClassCount(void);
extern const char *FleetClassName(int i);
extern void FleetProcessClass(const char *class_name, int max_events,
							  int *applied, int *failed, int *dead);

/* views_worker.c: the fleet views worker (staleness-bounded views) */
extern void FleetViewsInit(void);

/* subxact.c: work in a subtransaction, its error kept (NULL: it committed) */
extern ErrorData *FleetTrySubtransaction(void (*fn) (void *arg), void *arg);

/*
 * jsonb_build.c: jsonb objects built field by field, their values as
 * jsonb_build_object() and to_jsonb() make them; an object's key looked up
 */
#define FLEET_JSONB_MAX_FIELDS	16
typedef struct FleetJsonbFields
{
	int			n;
	const char *keys[FLEET_JSONB_MAX_FIELDS];
	JsonbValue	vals[FLEET_JSONB_MAX_FIELDS];
} FleetJsonbFields;
extern JsonbValue *FleetJsonbField(FleetJsonbFields *f, const char *key);
extern Datum FleetJsonbFieldsObject(FleetJsonbFields *f, bool strip);
extern bool FleetJsonbKey(Jsonb *jb, const char *key, JsonbValue *out);
extern void FleetJvNull(JsonbValue *v);
extern void FleetJvInt64(JsonbValue *v, int64 x);
extern void FleetJvNumeric(JsonbValue *v, Numeric x);
extern void FleetJvString(JsonbValue *v, const char *s);
extern void FleetJvText(JsonbValue *v, Datum t);
extern void FleetJvTimestamptz(JsonbValue *v, TimestampTz ts);
extern void FleetJvJsonb(JsonbValue *v, Datum jb);

/* sync_push.c: the set-based run of a driver app's plain mutations */
typedef enum FleetSyncField
{
	SYNC_ID, SYNC_WORKFLOW, SYNC_ARGS, SYNC_CLIENT_TIME, SYNC_BASE_VERSION, SYNC_HLC, SYNC_NFIELDS
} FleetSyncField;
/* how one mutation was decided: a fleet.sync_outcome (NULL strings are NULL) */
typedef struct FleetSyncOutcome
{
	const char *result;
	const char *rule;
	const char *reason;
	const char *entity;
	int64		entity_id;
	bool		entity_id_null;
	int64		conflict_id;
	bool		conflict_null;
	int64		event_id;
	bool		event_null;
	int64		version;
	bool		version_null;
	const char *trail_kind;
	Datum		trail_payload;	/* jsonb, 0 if NULL */
	TimestampTz trail_occurred;
	bool		trail_occurred_null;
} FleetSyncOutcome;
extern int	FleetSyncRun(int64 tenant, const char *client, int64 driver, int n,
						 Datum *const *v, bool *const *isnull, FleetSyncOutcome *out);
extern void FleetSyncOutcomeValues(const FleetSyncOutcome *o, Datum *values, bool *nulls);
/* sync_version.c: IS DISTINCT FROM for one column of two rows */
extern bool FleetColumnDistinct(HeapTuple a, HeapTuple b, TupleDesc desc, int attno);

#endif							/* FLEET_H */
