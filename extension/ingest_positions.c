/*-------------------------------------------------------------------------
 *
 * ingest_positions.c
 *	  fleet.ingest_positions(): idempotent batch ingest of GPS fixes.
 *
 * One call stores a batch of fixes (parallel arrays, one element per fix)
 * in the caller's transaction and returns one (idx, status, reason) row per
 * element:
 *	 accepted	the fix is new and stored;
 *	 duplicate	a fix with the same (tenant, device, fix time) and the same
 *				values is already stored (or earlier in the same batch);
 *	 conflict	such a fix exists with different values: the stored fix stays;
 *	 rejected	with a reason: unknown_device, inactive_device, foreign_device
 *				(another tenant's device while a tenant context is set),
 *				missing_fix_time, bad_fix_time (infinite, or before
 *				FLEET_EARLIEST_INSTANT: see instant.c), bad_coordinates,
 *				bad_measurement, future_fix_time (later than now +
 *				fleet.future_margin);
 *	 quarantined	no partition is prepared for the fix's day (reason
 *				no_partition): the fix is kept in fleet.position_quarantine
 *				with its reason, for an operator to replay or discard
 *				(fleet.quarantine_replay()).
 * A rejected or quarantined row never fails the batch: the rest goes in.  Errors (bad
 * arguments) fail the whole call, so a batch never half-applies.
 *
 * The steps, all set-based:
 *	1. resolve the distinct device identifiers through fleet.device_route
 *	   in one query, as the extension owner (the gateway has no tenant
 *	   context and may not read the routing table);
 *	2. validate each row and truncate its fix time to milliseconds;
 *	3. lock the batch's devices (ingest.c explains why
 *	   this replaces ON CONFLICT);
 *	4. fetch the already-stored fixes in one join: one primary-key range
 *	   scan per device over the batch's time range for that device, for the
 *	   devices that need it: a device whose fixes in the batch are all
 *	   newer than its last batch through this backend is not looked up,
 *	   the primary key proving it (see store_batch);
 *	5. classify, then insert the new fixes, sorted by vehicle and newest
 *	   first, with one INSERT ... SELECT from unnest() of one array of
 *	   fleet.position_row, and move each vehicle's latest state forward to
 *	   its newest accepted fix (never backward): an UPDATE of the rows that
 *	   are older, an insert of those missing.
 * The SPI plans are prepared once per backend and kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "fleet.h"

PG_FUNCTION_INFO_V1(fleet_ingest_positions);

#define MAX_IDENTIFIER	64

/* argument positions of fleet.ingest_positions() */
enum
{
	A_DEVICE, A_FIX, A_LAT, A_LON, A_SPEED, A_HEADING, A_ALT, A_ACC, A_SEQ, A_ATTRS, NARGS
};

typedef enum
{
	ST_PENDING, ST_ACCEPTED, ST_DUPLICATE, ST_CONFLICT, ST_REJECTED, ST_QUARANTINED
} RowStatus;

static const char *const status_names[] = {
	"pending", "accepted", "duplicate", "conflict", "rejected", "quarantined"
};

/* one device identifier of the batch and what it resolved to */
typedef struct DeviceEntry
{
	char		identifier[MAX_IDENTIFIER + 1];	/* hash key */
	bool		found;
	bool		active;
	bool		has_vehicle;
	int64		tenant;
	int64		device;
	int64		vehicle;
	bool		has_range;		/* the batch has valid fixes of this device */
	TimestampTz lo;				/* ... from lo to hi */
	TimestampTz hi;
	bool		probe;			/* look up its stored fixes in [lo, hi] */
} DeviceEntry;

/* one (tenant, device, fix time) key of the batch */
typedef struct FixKey
{
	int64		tenant;
	int64		device;
	TimestampTz fix;
} FixKey;

typedef struct FixEntry
{
	FixKey		key;			/* hash key */
	int			first;			/* first batch row with this key */
	bool		stored;			/* a fix with this key is already stored */
	int			stored_row;		/* row of the stored values in 'stored' */
} FixEntry;

/* a vehicle of the batch */
typedef struct VehicleKey
{
	int64		tenant;
	int64		vehicle;
} VehicleKey;

typedef struct VehicleMark
{
	VehicleKey	key;			/* hash key */
	TimestampTz fix;
} VehicleMark;

/* a stored fix's values, for duplicate/conflict comparison */
typedef struct StoredFix
{
	Datum		v[8];			/* lat lon speed heading altitude accuracy seq attrs */
	bool		n[8];
} StoredFix;

typedef struct PosRow
{
	RowStatus	status;
	const char *reason;
	DeviceEntry *dev;
	TimestampTz fix;
	FixEntry   *entry;
} PosRow;

/* the newest fix of a device's last batch through this backend (see store_batch) */
typedef struct Watermark
{
	int64		device;			/* hash key */
	TimestampTz fix;
} Watermark;

/* what store_batch works on: one call's arguments and its validated rows */
typedef struct Batch
{
	int			n;
	Datum	  **av;
	bool	  **an;
	PosRow	   *rows;
	HTAB	   *devices;
	HTAB	   *fixes;
	TimestampTz minfix;			/* of the pending rows */
	TimestampTz maxfix;
	bool		probe_all;		/* look up every device's stored fixes */
	int			skipped;		/* devices whose look-up was skipped */
} Batch;

/* store_batch as an argument of FleetTrySubtransaction */
static void store_batch_fn(void *arg);

static SPIPlanPtr route_plan = NULL;
static SPIPlanPtr lookup_plan = NULL;
/* the new fixes, as one array of fleet.position_row (see FleetRowsPrepare) */
static FleetRowsPlan insert_rows = {"position_row",
	"INSERT INTO fleet.position (tenant_id, device_id, fix_time, vehicle_id, lat, lon,"
	"                            speed, heading, altitude, accuracy, seq, attrs)"
	" SELECT u.tenant_id, u.device_id, u.fix_time, u.vehicle_id, u.lat, u.lon,"
	"        u.speed, u.heading, u.altitude, u.accuracy, u.seq, u.attrs"
	"   FROM pg_catalog.unnest($1) u"};
static SPIPlanPtr state_update_plan = NULL;
static SPIPlanPtr state_plan = NULL;
static SPIPlanPtr quarantine_plan = NULL;

/* device id -> Watermark, in TopMemoryContext; reset past WATERMARKS_MAX devices */
static HTAB *watermarks = NULL;
#define WATERMARKS_MAX	1000000

/*
 * (tenant, vehicle) -> VehicleMark: the newest fix this backend knows a
 * vehicle's state to have (written, or found newer), which only chooses the
 * statement that moves it (see store_batch); reset past WATERMARKS_MAX.
 */
static HTAB *vehicle_marks = NULL;

static void resolve_devices(HTAB *devices);
static bool has_partition(Relation rel, TimestampTz ts);
static bool same_value(Datum a, bool an, Datum b, bool bn, Oid type);
static void mark_probes(Batch *b);
static void remember_watermarks(Batch *b);
static void store_batch(Batch *b);

/* the statements of the position ingest path, prepared once per backend */
static const FleetPlanSpec plans[] = {
	{&route_plan, FLEET_PLAN_AUTO, 1, {TEXTARRAYOID},
		"SELECT r.identifier, r.tenant_id, r.device_id, r.vehicle_id, r.active"
		"  FROM fleet.device_route r"
		" WHERE r.identifier OPERATOR(pg_catalog.=) ANY ($1)"},

	/*
	 * The stored fixes of the devices to look up, each in the batch's time
	 * range for it: one primary-key range scan per device, whatever the
	 * statistics.  The plan is generic and kept; the LATERAL subquery
	 * (OFFSET 0 keeps it from being flattened) puts tenant, device and the
	 * range into the index condition as restriction clauses, so no plan can
	 * scan a day's whole index by time (the custom plans this replaced did,
	 * as a bitmap scan on fix_time alone once the partition had rows).  $5
	 * and $6, the batch's earliest and latest fix, prune the partitions it
	 * does not touch when the executor starts.
	 */
	{&lookup_plan, FLEET_PLAN_GENERIC, 6,
		{INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID},
		"SELECT p.tenant_id, p.device_id, p.fix_time,"
		"       p.lat, p.lon, p.speed, p.heading, p.altitude, p.accuracy, p.seq, p.attrs"
		"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"                  pg_catalog.unnest($4)) AS k(t, d, lo, hi)"
		"  CROSS JOIN LATERAL (SELECT x.* FROM fleet.position x"
		"                       WHERE x.tenant_id OPERATOR(pg_catalog.=) k.t"
		"                         AND x.device_id OPERATOR(pg_catalog.=) k.d"
		"                         AND x.fix_time OPERATOR(pg_catalog.>=) k.lo"
		"                         AND x.fix_time OPERATOR(pg_catalog.<=) k.hi"
		"                         AND x.fix_time OPERATOR(pg_catalog.>=) $5"
		"                         AND x.fix_time OPERATOR(pg_catalog.<=) $6 OFFSET 0) p"},

	/*
	 * Each vehicle's latest state moves forward to its newest accepted fix
	 * (never backward).  A plain UPDATE of the rows that exist and are
	 * older, in (tenant, vehicle) order (the rows arrive sorted; a nested
	 * loop over them, so concurrent calls lock them in one order): no
	 * speculative insertion and no extra tuple lock per vehicle, as ON
	 * CONFLICT DO UPDATE takes, and the update is HOT (the table leaves room
	 * on its pages, the key never changes).  The vehicles it did not move go
	 * to state_plan below, which inserts the missing rows and re-checks the
	 * others.  Planned for each batch (a generic plan made while the table
	 * was empty scanned it whole for every row of the batch); the join
	 * order must not matter for locking, as both orders visit the rows in
	 * (tenant, vehicle) order.
	 */
	{&state_update_plan, FLEET_PLAN_CUSTOM, 9,
		{INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
		FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT4ARRAYOID},
		"UPDATE fleet.vehicle_state s"
		"   SET device_id = u.d, fix_time = u.f, lat = u.lat, lon = u.lon, speed = u.speed,"
		"       heading = u.heading, altitude = u.altitude, updated_at = pg_catalog.now()"
		"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
		"   pg_catalog.unnest($8), pg_catalog.unnest($9)) AS u(t, v, d, f, lat, lon, speed, heading, altitude)"
		" WHERE s.tenant_id OPERATOR(pg_catalog.=) u.t AND s.vehicle_id OPERATOR(pg_catalog.=) u.v"
		"   AND (s.fix_time IS NULL OR s.fix_time OPERATOR(pg_catalog.<) u.f)"
		" RETURNING s.tenant_id, s.vehicle_id"},
	/*
	 * The vehicles whose state row is missing or older: a row as new as the
	 * fix or newer (in this statement's snapshot; it only ever moves
	 * forward) leaves the vehicle out without a lock (a look-up by primary
	 * key per vehicle: OFFSET 0 keeps the subquery from becoming an anti
	 * join, which a generic plan made while the table was empty ran as a
	 * scan of the whole table per vehicle), a missing one is
	 * inserted, an older one (or one inserted meanwhile) is updated if still
	 * older.  Rows arrive sorted by (tenant, vehicle): concurrent calls lock
	 * them in one order.
	 */
	{&state_plan, FLEET_PLAN_GENERIC, 9,
		{INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
		FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT4ARRAYOID},
		"INSERT INTO fleet.vehicle_state AS s (tenant_id, vehicle_id, device_id, fix_time,"
		"                                      lat, lon, speed, heading, altitude)"
		" SELECT u.* FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
		"   pg_catalog.unnest($8), pg_catalog.unnest($9)) AS u(t, v, d, f, lat, lon, speed, heading, altitude)"
		"  WHERE NOT EXISTS (SELECT 1 FROM fleet.vehicle_state x"
		"                     WHERE x.tenant_id OPERATOR(pg_catalog.=) u.t AND x.vehicle_id OPERATOR(pg_catalog.=) u.v"
		"                       AND x.fix_time OPERATOR(pg_catalog.>=) u.f OFFSET 0)"
		" ON CONFLICT (tenant_id, vehicle_id) DO UPDATE"
		"   SET device_id = EXCLUDED.device_id, fix_time = EXCLUDED.fix_time,"
		"       lat = EXCLUDED.lat, lon = EXCLUDED.lon, speed = EXCLUDED.speed,"
		"       heading = EXCLUDED.heading, altitude = EXCLUDED.altitude,"
		"       updated_at = pg_catalog.now()"
		" WHERE s.fix_time IS NULL OR s.fix_time OPERATOR(pg_catalog.<) EXCLUDED.fix_time"
		" RETURNING s.tenant_id, s.vehicle_id"},
	{&quarantine_plan, FLEET_PLAN_AUTO, 13,
		{INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
		FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT4ARRAYOID, INT8ARRAYOID, JSONBARRAYOID, TEXTARRAYOID},
		"INSERT INTO fleet.position_quarantine (tenant_id, device_id, fix_time, vehicle_id, lat, lon,"
		"                            speed, heading, altitude, accuracy, seq, attrs, reason)"
		" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
		"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
		"   pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11),"
		"   pg_catalog.unnest($12), pg_catalog.unnest($13))"},
};

/*
 * Resolve every identifier in the hash table through fleet.device_route.
 */
static void
resolve_devices(HTAB *devices)
{
	HASH_SEQ_STATUS seq;
	DeviceEntry *d;
	Datum	   *ids;
	int			n = 0;
	Datum		args[1];
	uint64		i;

	ids = palloc(sizeof(Datum) * Max(hash_get_num_entries(devices), 1));
	hash_seq_init(&seq, devices);
	while ((d = hash_seq_search(&seq)) != NULL)
		ids[n++] = CStringGetTextDatum(d->identifier);
	if (n == 0)
		return;
	args[0] = PointerGetDatum(FleetMakeArray(ids, NULL, n, TEXTOID));
	if (SPI_execute_plan(route_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "device look-up failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *ident = SPI_getvalue(tup, desc, 1);
		bool		isnull;
		Datum		v;

		d = hash_search(devices, ident, HASH_FIND, NULL);
		if (d == NULL)
			continue;
		d->found = true;
		d->tenant = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		d->device = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		v = SPI_getbinval(tup, desc, 4, &isnull);
		d->has_vehicle = !isnull;
		d->vehicle = isnull ? 0 : DatumGetInt64(v);
		d->active = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	}
}

/*
 * Is there a partition of fleet.position for this fix time?
 */
static bool
has_partition(Relation rel, TimestampTz ts)
{
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	PartitionKey key = RelationGetPartitionKey(rel);
	PartitionBoundInfo bi = pd->boundinfo;
	Datum		value = TimestampTzGetDatum(ts);
	bool		is_equal;
	int			off;

	if (bi == NULL || pd->nparts == 0)
		return false;
	off = partition_range_datum_bsearch(key->partsupfunc, key->partcollation,
										bi, 1, &value, &is_equal);
	return bi->indexes[off + 1] >= 0;
}

/*
 * Are two optional values equal (NULL equals NULL)?
 */
static bool
same_value(Datum a, bool an, Datum b, bool bn, Oid type)
{
	if (an || bn)
		return an && bn;
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(a) == DatumGetFloat8(b);
		case FLOAT4OID:
			return DatumGetFloat4(a) == DatumGetFloat4(b);
		case INT8OID:
			return DatumGetInt64(a) == DatumGetInt64(b);
		case JSONBOID:
			return DatumGetBool(DirectFunctionCall2(jsonb_eq, a, b));
	}
	elog(ERROR, "unexpected type %u", type);
	return false;
}

/*
 * qsort_arg comparator: accepted batch rows (indexes into the PosRow array)
 * in the order they are inserted: by tenant, vehicle (none last), then
 * newest fix first (ties: highest device first).  A gateway's batch
 * interleaves its devices; inserted in this order, the capture triggers of
 * the views over fleet.position get a transition table already in their
 * sort order (fleet.vehicle_last_position's DISTINCT ON takes the newest
 * fix per vehicle, ties to the highest device; the daily rollup groups by
 * vehicle and day), so their sorts only check it, and the primary key's
 * insertions stay together per device.
 */
static int
cmp_insert_order(const void *a, const void *b, void *arg)
{
	const PosRow *rows = (const PosRow *) arg;
	const PosRow *x = &rows[*(const int *) a];
	const PosRow *y = &rows[*(const int *) b];

	if (x->dev->tenant != y->dev->tenant)
		return x->dev->tenant < y->dev->tenant ? -1 : 1;
	if (x->dev->has_vehicle != y->dev->has_vehicle)
		return x->dev->has_vehicle ? -1 : 1;
	if (x->dev->has_vehicle && x->dev->vehicle != y->dev->vehicle)
		return x->dev->vehicle < y->dev->vehicle ? -1 : 1;
	if (x->fix != y->fix)
		return x->fix > y->fix ? -1 : 1;
	if (x->dev->device != y->dev->device)
		return x->dev->device > y->dev->device ? -1 : 1;
	return 0;
}

/* the vehicle of a batch row, as a hash key */
static VehicleKey
vehicle_key(const PosRow *r)
{
	VehicleKey	vk;

	memset(&vk, 0, sizeof(vk));
	vk.tenant = r->dev->tenant;
	vk.vehicle = r->dev->vehicle;
	return vk;
}

/* a batch row's vehicle's mark, made if asked (see vehicle_marks); NULL if none */
static VehicleMark *
vehicle_mark(const PosRow *r, bool make)
{
	VehicleKey	vk = vehicle_key(r);
	VehicleMark *vm;
	bool		found;

	if (vehicle_marks == NULL || (make && hash_get_num_entries(vehicle_marks) > WATERMARKS_MAX))
	{
		HASHCTL		ctl;

		if (!make)
			return NULL;
		if (vehicle_marks != NULL)
			hash_destroy(vehicle_marks);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(VehicleKey);
		ctl.entrysize = sizeof(VehicleMark);
		ctl.hcxt = TopMemoryContext;
		vehicle_marks = hash_create("fleet ingest vehicle marks", 1024, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	vm = hash_search(vehicle_marks, &vk, make ? HASH_ENTER : HASH_FIND, &found);
	if (make && !found)
		vm->fix = DT_NOBEGIN;
	return vm;
}

/* the (tenant_id, vehicle_id) rows the last statement returned, as a set */
static HTAB *
returned_vehicles(void)
{
	HASHCTL		ctl;
	HTAB	   *set;
	uint64		k;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(VehicleKey);
	ctl.entrysize = sizeof(VehicleKey);
	ctl.hcxt = CurrentMemoryContext;
	set = hash_create("fleet ingest moved vehicles", Max(SPI_processed, 16), &ctl,
					  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (k = 0; k < SPI_processed; k++)
	{
		VehicleKey	vk;
		bool		isnull;

		memset(&vk, 0, sizeof(vk));
		vk.tenant = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1, &isnull));
		vk.vehicle = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 2, &isnull));
		(void) hash_search(set, &vk, HASH_ENTER, NULL);
	}
	return set;
}

/*
 * qsort_arg comparator: batch rows (indexes into the PosRow array) by
 * (tenant, vehicle), the order vehicle states are written in.
 */
static int
cmp_vehicle_rows(const void *a, const void *b, void *arg)
{
	const PosRow *rows = (const PosRow *) arg;
	const PosRow *x = &rows[*(const int *) a];
	const PosRow *y = &rows[*(const int *) b];

	if (x->dev->tenant != y->dev->tenant)
		return x->dev->tenant < y->dev->tenant ? -1 : 1;
	if (x->dev->vehicle != y->dev->vehicle)
		return x->dev->vehicle < y->dev->vehicle ? -1 : 1;
	return 0;
}

/*
 * Run a vehicle state statement (state_update_plan or state_plan) over the
 * given batch rows, each its vehicle's newest accepted fix.
 */
static void
state_rows(Batch *b, SPIPlanPtr plan, int expected, const int *which, int nv)
{
	static const Oid sttypes[9] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
	FLOAT8OID, FLOAT8OID, FLOAT4OID, FLOAT4OID, FLOAT4OID};
	static const int stargs[5] = {A_LAT, A_LON, A_SPEED, A_HEADING, A_ALT};
	FleetColumns cs;
	Datum		sargs[9];
	int			m;
	int			c;

	FleetColumnsInit(&cs, 9, nv);
	for (m = 0; m < nv; m++)
	{
		PosRow	   *r = &b->rows[which[m]];

		cs.v[0][m] = Int64GetDatum(r->dev->tenant);
		cs.v[1][m] = Int64GetDatum(r->dev->vehicle);
		cs.v[2][m] = Int64GetDatum(r->dev->device);
		cs.v[3][m] = TimestampTzGetDatum(r->fix);
		for (c = 0; c < 5; c++)
		{
			int			arg = stargs[c];

			if (b->av[arg] == NULL || b->an[arg][which[m]])
				cs.n[4 + c][m] = true;
			else
				cs.v[4 + c][m] = b->av[arg][which[m]];
		}
	}
	FleetColumnsArgs(&cs, sttypes, nv, sargs);
	if (SPI_execute_plan(plan, sargs, NULL, false, 0) != expected)
		elog(ERROR, "vehicle state update failed");
}

/*
 * Which devices store_batch looks up: all (probe_all), or those without a
 * watermark in this backend or with a fix of this batch at or before it.
 */
static void
mark_probes(Batch *b)
{
	HASH_SEQ_STATUS seq;
	DeviceEntry *d;

	b->skipped = 0;
	hash_seq_init(&seq, b->devices);
	while ((d = hash_seq_search(&seq)) != NULL)
	{
		Watermark  *w;

		if (!d->has_range)
			continue;
		d->probe = true;
		if (b->probe_all || watermarks == NULL)
			continue;
		w = hash_search(watermarks, &d->device, HASH_FIND, NULL);
		if (w != NULL && d->lo > w->fix)
		{
			d->probe = false;
			b->skipped++;
		}
	}
}

/*
 * After a batch is stored: each device's newest fix in it is its watermark
 * (the newest of its last batch, not of all time: a device that re-sends an
 * older day is looked up for its first batch of that day, then no more).  A
 * device that had fixes stored already (it is re-sending its buffer) is
 * looked up again next time, until a batch of it is all new.
 */
static void
remember_watermarks(Batch *b)
{
	HASH_SEQ_STATUS seq;
	DeviceEntry *d;
	int			i;

	if (watermarks == NULL || hash_get_num_entries(watermarks) > WATERMARKS_MAX)
	{
		HASHCTL		ctl;

		if (watermarks != NULL)
			hash_destroy(watermarks);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(Watermark);
		ctl.hcxt = TopMemoryContext;
		watermarks = hash_create("fleet ingest watermarks", 1024, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	hash_seq_init(&seq, b->devices);
	while ((d = hash_seq_search(&seq)) != NULL)
	{
		Watermark  *w;

		if (!d->has_range)
			continue;
		w = hash_search(watermarks, &d->device, HASH_ENTER, NULL);
		w->fix = d->hi;
	}
	for (i = 0; i < b->n; i++)
		if (b->rows[i].entry != NULL && b->rows[i].entry->stored)
		{
			Watermark  *w = hash_search(watermarks, &b->rows[i].dev->device, HASH_FIND, NULL);

			if (w != NULL)
				w->fix = DT_NOEND;
		}
}

/*
 * Steps 4 to 6 of a call (see the file header): look up the stored fixes of
 * the devices marked to probe, classify every pending row, insert the new
 * fixes and move each vehicle's state forward.  Runs again from the start
 * (every row pending again) when a first run failed on a fix it did not
 * look up.
 */
static void
store_batch(Batch *b)
{
	static const Oid cmptypes[8] = {FLOAT8OID, FLOAT8OID, FLOAT4OID, FLOAT4OID,
	FLOAT4OID, FLOAT4OID, INT8OID, JSONBOID};
	static const int cmpargs[8] = {A_LAT, A_LON, A_SPEED, A_HEADING, A_ALT, A_ACC, A_SEQ, A_ATTRS};
	Datum	  **av = b->av;
	bool	  **an = b->an;
	PosRow	   *rows = b->rows;
	StoredFix  *stored = NULL;
	HASH_SEQ_STATUS seq;
	FixEntry   *e;
	DeviceEntry *d;
	int			ndev = hash_get_num_entries(b->devices);
	int			nnew = 0;
	int			m = 0;
	int			i;

	/* every pending row pending again, nothing known stored */
	for (i = 0; i < b->n; i++)
		if (rows[i].status == ST_ACCEPTED || rows[i].status == ST_DUPLICATE ||
			rows[i].status == ST_CONFLICT)
			rows[i].status = ST_PENDING;
	hash_seq_init(&seq, b->fixes);
	while ((e = hash_seq_search(&seq)) != NULL)
		e->stored = false;

	/* 4. stored fixes in the per-device time ranges of the devices to look up */
	hash_seq_init(&seq, b->devices);
	while ((d = hash_seq_search(&seq)) != NULL)
		if (d->has_range && d->probe)
			m++;
	if (m > 0)
	{
		Datum	   *kt = palloc(sizeof(Datum) * ndev);
		Datum	   *kd = palloc(sizeof(Datum) * ndev);
		Datum	   *klo = palloc(sizeof(Datum) * ndev);
		Datum	   *khi = palloc(sizeof(Datum) * ndev);
		Datum		args[6];
		int			save_nestlevel;
		uint64		j;

		m = 0;
		hash_seq_init(&seq, b->devices);
		while ((d = hash_seq_search(&seq)) != NULL)
		{
			if (!d->has_range || !d->probe)
				continue;
			kt[m] = Int64GetDatum(d->tenant);
			kd[m] = Int64GetDatum(d->device);
			klo[m] = TimestampTzGetDatum(d->lo);
			khi[m] = TimestampTzGetDatum(d->hi);
			m++;
		}
		args[0] = PointerGetDatum(FleetMakeArray(kt, NULL, m, INT8OID));
		args[1] = PointerGetDatum(FleetMakeArray(kd, NULL, m, INT8OID));
		args[2] = PointerGetDatum(FleetMakeArray(klo, NULL, m, TIMESTAMPTZOID));
		args[3] = PointerGetDatum(FleetMakeArray(khi, NULL, m, TIMESTAMPTZOID));
		args[4] = TimestampTzGetDatum(b->minfix);
		args[5] = TimestampTzGetDatum(b->maxfix);

		/*
		 * The look-up must scan the primary key of the few partitions the
		 * batch touches, per device, whatever the statistics say: a hash join
		 * against every partition, or a bitmap scan by time alone, would read
		 * far more than the batch's devices.
		 */
		save_nestlevel = NewGUCNestLevel();
		(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		if (SPI_execute_plan(lookup_plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "fix look-up failed");
		AtEOXact_GUC(true, save_nestlevel);

		if (SPI_processed > 0)
			stored = palloc(sizeof(StoredFix) * SPI_processed);
		for (j = 0; j < SPI_processed; j++)
		{
			HeapTuple	tup = SPI_tuptable->vals[j];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			FixKey		k;
			int			c;

			memset(&k, 0, sizeof(k));
			k.tenant = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			k.device = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			k.fix = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			e = hash_search(b->fixes, &k, HASH_FIND, NULL);
			if (e == NULL)
				continue;		/* a stored fix in range that the batch does not carry */
			/* by-reference values stay valid in SPI memory until SPI_finish */
			for (c = 0; c < 8; c++)
				stored[j].v[c] = SPI_getbinval(tup, desc, c + 4, &stored[j].n[c]);
			e->stored = true;
			e->stored_row = (int) j;
		}
	}

	/* 5. classify */
	for (i = 0; i < b->n; i++)
	{
		PosRow	   *r = &rows[i];
		bool		same = true;
		int			c;

		if (r->status != ST_PENDING)
			continue;
		e = r->entry;
		if (!e->stored && e->first == i)
		{
			r->status = ST_ACCEPTED;
			nnew++;
			continue;
		}
		for (c = 0; c < 8 && same; c++)
		{
			int			arg = cmpargs[c];
			Datum		v = av[arg] ? av[arg][i] : (Datum) 0;
			bool		vn = av[arg] ? an[arg][i] : true;
			Datum		w;
			bool		wn;

			if (e->stored)
			{
				w = stored[e->stored_row].v[c];
				wn = stored[e->stored_row].n[c];
			}
			else
			{
				w = av[arg] ? av[arg][e->first] : (Datum) 0;
				wn = av[arg] ? an[arg][e->first] : true;
			}
			same = same_value(v, vn, w, wn, cmptypes[c]);
		}
		r->status = same ? ST_DUPLICATE : ST_CONFLICT;
	}

	/* 6. insert the new fixes, then move vehicle state forward */
	if (nnew > 0)
	{
		static const int optargs[8] = {A_LAT, A_LON, A_SPEED, A_HEADING, A_ALT, A_ACC, A_SEQ, A_ATTRS};
		TupleDesc	rowdesc = FleetRowsPrepare(&insert_rows);
		Datum	   *elems = palloc(sizeof(Datum) * nnew);
		int		   *order = palloc(sizeof(int) * nnew);
		int		   *newest = palloc(sizeof(int) * nnew);
		int			nv = 0;
		int			c;
		int			j;

		if (rowdesc->natts != 12)
			elog(ERROR, "type fleet.position_row has %d attributes, expected 12", rowdesc->natts);
		for (i = 0, j = 0; i < b->n; i++)
			if (rows[i].status == ST_ACCEPTED)
				order[j++] = i;
		Assert(j == nnew);
		qsort_arg(order, nnew, sizeof(int), cmp_insert_order, rows);
		for (j = 0; j < nnew; j++)
		{
			PosRow	   *r;
			Datum		v[12];
			bool		nul[12];

			i = order[j];
			r = &rows[i];
			v[0] = Int64GetDatum(r->dev->tenant);
			v[1] = Int64GetDatum(r->dev->device);
			v[2] = TimestampTzGetDatum(r->fix);
			v[3] = Int64GetDatum(r->dev->vehicle);
			nul[0] = nul[1] = nul[2] = false;
			nul[3] = !r->dev->has_vehicle;
			for (c = 0; c < 8; c++)
			{
				int			a = optargs[c];

				nul[4 + c] = av[a] == NULL || an[a][i];
				v[4 + c] = nul[4 + c] ? (Datum) 0 : av[a][i];
			}
			elems[j] = HeapTupleGetDatum(heap_form_tuple(rowdesc, v, nul));

			/*
			 * In this order a vehicle's rows come together, newest first: its
			 * first row is its newest accepted fix.
			 */
			if (r->dev->has_vehicle &&
				(nv == 0 || rows[newest[nv - 1]].dev->tenant != r->dev->tenant ||
				 rows[newest[nv - 1]].dev->vehicle != r->dev->vehicle))
				newest[nv++] = i;
		}
		/*
		 * The insert fires the capture triggers of the views over
		 * fleet.position, which aggregate the batch per group; at the default
		 * work_mem a batch of 1,000 vehicles spilled that aggregation to
		 * temporary files (created and removed every batch: ~1.5 ms of 15),
		 * as the planner budgets more per group than it uses.  The insert
		 * runs with at least 32 MB (the aggregation itself used 0.6 MB).
		 */
		{
			int			save_nestlevel = NewGUCNestLevel();

			if (work_mem < 32 * 1024)
				(void) set_config_option("work_mem", "32MB", PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_SAVE, true, 0, false);
			FleetRowsExecute(&insert_rows, elems, nnew);
			AtEOXact_GUC(true, save_nestlevel);
		}

		/*
		 * The vehicles' state: those whose newest fix here is newer than the
		 * state this backend last knew them to have (or of which it knows
		 * nothing) are UPDATEd; the ones that did not move and the others go
		 * to the insert (see state_update_plan), both in (tenant, vehicle)
		 * order.  Either statement is correct for any vehicle; the marks
		 * only save the one that would change nothing.
		 */
		if (nv > 0)
		{
			int			save_nestlevel;
			int			nfwd = 0;
			int			nrest = 0;

			for (m = 0; m < nv; m++)
			{
				VehicleMark *vm = vehicle_mark(&rows[newest[m]], false);

				if (vm == NULL || rows[newest[m]].fix > vm->fix)
					newest[nfwd++] = newest[m];
				else
					order[nrest++] = newest[m];
			}
			save_nestlevel = NewGUCNestLevel();
			(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			(void) set_config_option("enable_material", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			if (nfwd > 0)
			{
				HTAB	   *moved;
				int			before = nrest;

				state_rows(b, state_update_plan, SPI_OK_UPDATE_RETURNING, newest, nfwd);
				moved = returned_vehicles();
				for (m = 0; m < nfwd; m++)
				{
					VehicleKey	vk = vehicle_key(&rows[newest[m]]);

					if (hash_search(moved, &vk, HASH_FIND, NULL) != NULL)
						vehicle_mark(&rows[newest[m]], true)->fix = rows[newest[m]].fix;
					else
						order[nrest++] = newest[m];	/* did not move: to the insert */
				}
				if (before > 0 && nrest > before)
					qsort_arg(order, nrest, sizeof(int), cmp_vehicle_rows, rows);
			}
			if (nrest > 0)
			{
				HTAB	   *moved;

				state_rows(b, state_plan, SPI_OK_INSERT_RETURNING, order, nrest);
				moved = returned_vehicles();
				/* not moved: the state is newer than anything of this backend's so far */
				for (m = 0; m < nrest; m++)
				{
					VehicleKey	vk = vehicle_key(&rows[order[m]]);

					vehicle_mark(&rows[order[m]], true)->fix =
						hash_search(moved, &vk, HASH_FIND, NULL) != NULL ? rows[order[m]].fix : DT_NOEND;
				}
			}
			AtEOXact_GUC(true, save_nestlevel);
		}
	}
}

static void
store_batch_fn(void *arg)
{
	store_batch((Batch *) arg);
}

/*
 * fleet.ingest_positions(device text[], fix_time timestamptz[], lat float8[],
 *		lon float8[], speed real[], heading real[], altitude real[],
 *		accuracy real[], seq bigint[], attrs jsonb[])
 *	RETURNS TABLE (idx int, status text, reason text)
 */
Datum
fleet_ingest_positions(PG_FUNCTION_ARGS)
{
	static const char *const argnames[NARGS] = {
		"device", "fix_time", "lat", "lon", "speed", "heading", "altitude",
		"accuracy", "seq", "attrs"
	};
	static const Oid elemtypes[NARGS] = {
		TEXTOID, TIMESTAMPTZOID, FLOAT8OID, FLOAT8OID, FLOAT4OID, FLOAT4OID,
		FLOAT4OID, FLOAT4OID, INT8OID, JSONBOID
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *av[NARGS];
	bool	   *an[NARGS];
	int			n = -1;
	int			i;
	int			a;
	PosRow	   *rows;
	HTAB	   *devices;
	HTAB	   *fixes;
	HASHCTL		ctl;
	Relation	rel;
	TimestampTz now;
	TimestampTz limit;
	TimestampTz minfix = DT_NOBEGIN;
	TimestampTz maxfix = DT_NOEND;
	bool		have_range = false;
	bool		tenant_set = FleetTenantIsSet();
	int64		tenant = tenant_set ? FleetCurrentTenant() : 0;
	int			nkeys = 0;
	int			nlocks = 0;
	uint64	   *locks;
	FleetOwnerSwitch owner_sw;

	FleetIngestCheckIsolation("fleet.ingest_positions()");
	InitMaterializedSRF(fcinfo, 0);

	for (a = 0; a < NARGS; a++)
		FleetBatchArg(fcinfo, a, argnames[a], elemtypes[a],
					  a == A_DEVICE || a == A_FIX || a == A_LAT || a == A_LON,
					  &n, &av[a], &an[a]);
	if (n == 0)
		return (Datum) 0;

	rows = palloc0(sizeof(PosRow) * n);
	now = GetCurrentTimestamp();
	limit = now + (int64) fleet_future_margin_ms * 1000;

	/* 1. resolve devices */
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = MAX_IDENTIFIER + 1;
	ctl.entrysize = sizeof(DeviceEntry);
	ctl.hcxt = CurrentMemoryContext;
	devices = hash_create("fleet ingest devices", 256, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (i = 0; i < n; i++)
	{
		char	   *ident;
		bool		found;

		if (an[A_DEVICE][i])
			continue;
		ident = TextDatumGetCString(av[A_DEVICE][i]);
		if (strlen(ident) == 0 || strlen(ident) > MAX_IDENTIFIER)
			continue;
		rows[i].dev = hash_search(devices, ident, HASH_ENTER, &found);
		if (!found)
		{
			rows[i].dev->found = false;
			rows[i].dev->has_range = false;
		}
	}

	FleetAsOwner(&owner_sw);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	FleetKeepPlans(plans, lengthof(plans));
	resolve_devices(devices);

	/* 2. validate rows */
	rel = table_openrv(makeRangeVar("fleet", "position", -1), RowExclusiveLock);
	for (i = 0; i < n; i++)
	{
		PosRow	   *r = &rows[i];
		DeviceEntry *d = r->dev;
		double		lat = an[A_LAT][i] ? NAN : DatumGetFloat8(av[A_LAT][i]);
		double		lon = an[A_LON][i] ? NAN : DatumGetFloat8(av[A_LON][i]);

		r->status = ST_REJECTED;
		if (d == NULL || !d->found)
			r->reason = "unknown_device";
		else if (!d->active)
			r->reason = "inactive_device";
		else if (tenant_set && d->tenant != tenant)
			r->reason = "foreign_device";
		else if (an[A_FIX][i])
			r->reason = "missing_fix_time";
		else if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(av[A_FIX][i])) ||
				 DatumGetTimestampTz(av[A_FIX][i]) < FleetEarliestInstant())
			r->reason = "bad_fix_time";
		else if (isnan(lat) || isnan(lon) ||
				 lat < -90.0 || lat > 90.0 || lon < -180.0 || lon > 180.0)
			r->reason = "bad_coordinates";
		else if ((av[A_SPEED] && !an[A_SPEED][i] &&
				  !(DatumGetFloat4(av[A_SPEED][i]) >= 0.0f && DatumGetFloat4(av[A_SPEED][i]) < 2000.0f)) ||
				 (av[A_HEADING] && !an[A_HEADING][i] &&
				  !(DatumGetFloat4(av[A_HEADING][i]) >= 0.0f && DatumGetFloat4(av[A_HEADING][i]) <= 360.0f)) ||
				 (av[A_ALT] && !an[A_ALT][i] &&
				  !(DatumGetFloat4(av[A_ALT][i]) >= -1000.0f && DatumGetFloat4(av[A_ALT][i]) <= 100000.0f)) ||
				 (av[A_ACC] && !an[A_ACC][i] &&
				  !(DatumGetFloat4(av[A_ACC][i]) >= 0.0f && DatumGetFloat4(av[A_ACC][i]) < 1.0e7f)))
			r->reason = "bad_measurement";
		else
		{
			TimestampTz fix = DatumGetTimestampTz(av[A_FIX][i]);

			/* millisecond precision, rounding towards minus infinity */
			fix -= ((fix % 1000) + 1000) % 1000;
			r->fix = fix;
			if (fix > limit)
				r->reason = "future_fix_time";
			else if (!has_partition(rel, fix))
			{
				r->status = ST_QUARANTINED;
				r->reason = "no_partition";
			}
			else
			{
				r->status = ST_PENDING;
				r->reason = NULL;
				if (!d->has_range || fix < d->lo)
					d->lo = fix;
				if (!d->has_range || fix > d->hi)
					d->hi = fix;
				d->has_range = true;
				if (!have_range || fix < minfix)
					minfix = fix;
				if (!have_range || fix > maxfix)
					maxfix = fix;
				have_range = true;
			}
		}
	}

	/* 3. distinct keys, and their devices to lock */
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(FixKey);
	ctl.entrysize = sizeof(FixEntry);
	ctl.hcxt = CurrentMemoryContext;
	fixes = hash_create("fleet ingest fixes", Max(n, 16), &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	locks = palloc(sizeof(uint64) * n);
	for (i = 0; i < n; i++)
	{
		PosRow	   *r = &rows[i];
		FixKey		k;
		bool		found;

		if (r->status != ST_PENDING)
			continue;
		memset(&k, 0, sizeof(k));
		k.tenant = r->dev->tenant;
		k.device = r->dev->device;
		k.fix = r->fix;
		r->entry = hash_search(fixes, &k, HASH_ENTER, &found);
		if (!found)
		{
			r->entry->first = i;
			nkeys++;
			r->entry->stored = false;
			/* device ids are unique across tenants: one device, one lock */
			locks[nlocks++] = (uint64) k.device;
		}
	}
	FleetLockKeys(FLEET_LOCKSPACE_POSITIONS, locks, nlocks);

	/*
	 * 4-6. look up stored fixes, classify, insert the new ones and move the
	 * vehicles' state forward.  Devices whose fixes in this batch are all
	 * newer than the newest of their last batch through this backend are
	 * not looked up: normally nothing of theirs is stored there yet.  The
	 * primary key, unique per (tenant, device, fix time) on every partition,
	 * is the proof: should such a fix be stored after all (sent through
	 * another connection, written by fleet.quarantine_replay(), or stored by
	 * a transaction that then rolled back ...), the insert fails with a
	 * unique violation, its subtransaction is rolled back and the batch is
	 * stored again with every device looked up.  The device locks keep
	 * concurrent writers of a device out, so that violation comes from a
	 * stored fix, never a concurrent one.
	 */
	if (nkeys > 0)
	{
		Batch		b;

		b.n = n;
		b.av = av;
		b.an = an;
		b.rows = rows;
		b.devices = devices;
		b.fixes = fixes;
		b.minfix = minfix;
		b.maxfix = maxfix;
		b.probe_all = false;
		b.skipped = 0;
		mark_probes(&b);
		if (b.skipped == 0)
			store_batch(&b);
		else
		{
			ErrorData  *edata = FleetTrySubtransaction(store_batch_fn, &b);

			if (edata != NULL)
			{
				if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
					ReThrowError(edata);
				FreeErrorData(edata);
				b.probe_all = true;
				mark_probes(&b);
				store_batch(&b);
			}
		}
		remember_watermarks(&b);
	}

	/* 7. fixes for days without a partition go to the quarantine, with their reason */
	{
		int			nq = 0;

		for (i = 0; i < n; i++)
			if (rows[i].status == ST_QUARANTINED)
				nq++;
		if (nq > 0)
		{
			static const Oid qtypes[13] = {INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID,
				FLOAT8OID, FLOAT8OID, FLOAT4OID, FLOAT4OID, FLOAT4OID, FLOAT4OID,
			INT8OID, JSONBOID, TEXTOID};
			static const int optargs[8] = {A_LAT, A_LON, A_SPEED, A_HEADING, A_ALT, A_ACC, A_SEQ, A_ATTRS};
			FleetColumns cs;
			Datum		args[13];
			int			k = 0;
			int			c;

			FleetColumnsInit(&cs, 13, nq);
			for (i = 0; i < n; i++)
			{
				PosRow	   *r = &rows[i];

				if (r->status != ST_QUARANTINED)
					continue;
				cs.v[0][k] = Int64GetDatum(r->dev->tenant);
				cs.v[1][k] = Int64GetDatum(r->dev->device);
				cs.v[2][k] = TimestampTzGetDatum(r->fix);
				cs.v[3][k] = Int64GetDatum(r->dev->vehicle);
				cs.n[3][k] = !r->dev->has_vehicle;
				for (c = 0; c < 8; c++)
				{
					int			arg = optargs[c];

					if (av[arg] == NULL || an[arg][i])
						cs.n[4 + c][k] = true;
					else
						cs.v[4 + c][k] = av[arg][i];
				}
				cs.v[12][k] = CStringGetTextDatum(r->reason);
				k++;
			}
			FleetColumnsArgs(&cs, qtypes, nq, args);
			if (SPI_execute_plan(quarantine_plan, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "position quarantine insert failed");
		}
	}

	table_close(rel, NoLock);
	SPI_finish();
	FleetAsCaller(&owner_sw);

	/* 8. one result row per element */
	for (i = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int32GetDatum(i + 1);
		values[1] = CStringGetTextDatum(status_names[rows[i].status]);
		if (rows[i].reason)
			values[2] = CStringGetTextDatum(rows[i].reason);
		else
			nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
