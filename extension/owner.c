/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Running internal SQL as the extension owner.
 *
 * Internal queries that must see across tenants (resolving a device to its
 * tenant, validating a tenant id, writing the change logs) run as the
 * extension owner through SetUserIdAndSecContext, the way pg_cron does,
 * instead of widening the privileges of the calling role or adding SECURITY
 * DEFINER functions.
 *
 * Such a statement is parsed while the caller's search_path is in force
 * unless something pins it: the caller could plant a type, domain or table
 * in pg_temp (searched first for types and relations) or in a schema of its
 * own and have the owner run it.  FleetAsOwner therefore also pins
 * search_path to "pg_catalog, pg_temp" (temporary schema last) at a new GUC
 * nest level, which FleetAsCaller pops and an error pops with the
 * (sub)transaction; the statements' texts are schema-qualified besides
 * (test/lint/owner_sql.pl checks that).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/genam.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "fleet.h"

/*
 * Oid of the role that owns the fleet extension.
 */
Oid
FleetExtensionOwner(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("fleet"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"fleet\" is not installed in this database")));
	return owner;
}

/*
 * Pin search_path to pg_catalog, pg_temp (temporary schema last) at a new GUC
 * nest level; FleetUnpinSearchPath(level) restores the caller's.  For code
 * that already runs with the rights it needs (background workers, the
 * caller's own identity) but parses statements whose text must not be
 * redirected by the session's search_path.
 */
int
FleetPinSearchPath(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", FLEET_PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
FleetUnpinSearchPath(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * Switch to the extension owner for internal SPI, with search_path pinned;
 * FleetAsCaller returns to the caller's identity and search_path.  An error
 * unwinds both with the (sub)transaction.
 */
void
FleetAsOwner(FleetOwnerSwitch *sw)
{
	Oid			owner = FleetExtensionOwner();

	GetUserIdAndSecContext(&sw->saved_uid, &sw->saved_ctx);
	SetUserIdAndSecContext(owner, sw->saved_ctx | SECURITY_LOCAL_USERID_CHANGE);
	sw->guc_level = FleetPinSearchPath();
}

void
FleetAsCaller(FleetOwnerSwitch *sw)
{
	FleetUnpinSearchPath(sw->guc_level);
	SetUserIdAndSecContext(sw->saved_uid, sw->saved_ctx);
}

/*
 * Run fn(arg) as role (not necessarily the extension owner: a handler's or
 * upcaster's owner) with search_path pinned, restoring both afterwards.
 */
void
FleetAsRole(Oid role, int extra_ctx, void (*fn) (void *arg), void *arg)
{
	FleetOwnerSwitch sw;

	GetUserIdAndSecContext(&sw.saved_uid, &sw.saved_ctx);
	SetUserIdAndSecContext(role, sw.saved_ctx | SECURITY_LOCAL_USERID_CHANGE | extra_ctx);
	sw.guc_level = FleetPinSearchPath();
	fn(arg);
	FleetAsCaller(&sw);
}
